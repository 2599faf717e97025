//! Exact path-dependent TreeSHAP with the input-independent work done once,
//! at load: the same values as [`treeshap`](super::treeshap) (Algorithm 2
//! of Lundberg et al. 2018), many times faster per explanation. The idea
//! is Fast TreeSHAP v2's (Yang 2021, "Fast TreeSHAP: Accelerating SHAP Value
//! Computation for Trees"): precompute, per leaf, a table over the subsets
//! of the features on its path; derived and written here from the Shapley
//! formula below, not from that paper's code. Leaves are then merged into
//! subtrees ("units", below), so an explanation reads one table row per
//! unit instead of one per leaf.
//!
//! For one leaf with value `v`, let `U` be the distinct features split on
//! from the root to it (`k = |U|`), `z_j` the product of the cover ratios
//! (child / parent) at the splits on `j`, and `o_j` 1 when the input goes the
//! leaf's way at every split on `j`, else 0. The leaf's part of the forest
//! output is `f(S) = v · Π_{j∈S} o_j · Π_{j∈U∖S} z_j`, and its contribution
//! to feature `i` is that function's Shapley value
//! `Σ_{S ⊆ U∖i} w(|S|) (f(S∪i) − f(S))` with `w(s) = s!(k−s−1)!/k!`.
//! Since `o_j ∈ {0, 1}`, only subsets of `A = {j : o_j = 1}` count, and
//! with `Z(T) = Π_{j∈T} z_j`:
//!
//! - `i ∉ A`: `φ_i = −v Σ_{S⊆A} w(|S|) Z(U∖S) = −K[A]`
//! - `i ∈ A`: `φ_i = v (1 − z_i) Σ_{S'⊆A, i∈S'} w(|S'|−1) Z(U∖S')
//!   = (1 − z_i) (M[A] − M[A∖i])`
//!
//! `K` and `M` depend on the tree only: both are subset sums over `U`
//! (computed in `O(k·2^k)` per leaf), and so is each feature's entry for
//! every `A`.
//!
//! **Units.** A leaf's `A` is a function of a few yes/no tests on the input:
//! for each feature of its path, whether the input falls in the interval
//! the path's splits on it leave open. A subtree rooted at node `n` (a
//! unit) is then a function of `b = k' + s` tests: the `k'` intervals of
//! the path from the root to `n`, and the `s` splits inside the subtree
//! (`x ≤ t`, the interval `(−∞, t]`). Every leaf's `A` follows from those
//! `b` bits, so the sum of the unit's leaves' rows is a table of `2^b` rows
//! indexed by them. At explanation time each unit costs `b` interval tests
//! and one table row (a cache line for up to [`DENSE`] features): no tree
//! walk, no branch on the data. A unit of one leaf (`s = 0`) is the
//! per-leaf table above; a unit is made as large as `b ≤ unit_bits`
//! allows. Inside a subtree the features are often new to the path, and
//! then the merged table is no larger than its leaves' tables together:
//! the shipped forest's units are a fraction of its leaves in number, for
//! tables of about the same size (`cargo bench --bench explain` prints
//! both). An ensemble whose tables would pass [`MAX_TABLE_ENTRIES`] gets
//! no fast explainer and keeps Algorithm 2.

use super::ensemble::{Tree, TreeEnsemble};

/// Table entries (over all units) above which no fast explainer is built:
/// 4M entries are 32 MiB.
pub const MAX_TABLE_ENTRIES: usize = 1 << 22;

/// Tests a unit may have: its table has `2^b` rows.
const MAX_TESTS: usize = 16;

/// The largest merged unit [`FastTreeShap::new`] makes (`b` tests): 2^10
/// rows of 64 bytes, 64 KiB, at most.
pub const DEFAULT_UNIT_BITS: usize = 10;

/// Table rows held that weigh as much as one row read per explanation
/// when choosing units ([`FastTreeShap::plan`]).
const ROWS_PER_READ: f64 = 256.0;

/// Features a dense table row holds.
const DENSE: usize = 8;

/// The precomputed explainer of one ensemble: every unit of every tree,
/// grouped by its number of tests `b`, so that the loops over a unit's
/// tests have a fixed length within a group (a data-dependent loop length
/// costs a branch misprediction or two per unit, most of the time
/// otherwise).
///
/// Each test is an interval `(lo, hi]` of one scaled input feature (a left
/// turn at threshold `t` is `x <= t`, a right turn `x > t`, and a missing
/// or NaN value goes right, as in [`Tree::children`]); the tests' bits are
/// the row of the unit's table, which `φ` gets added. Reading the units in
/// order, with no branch on the data, keeps many table reads in flight at
/// once.
#[derive(Debug, Clone)]
pub struct FastTreeShap {
    /// `groups[b]`: the units with `b` tests.
    groups: Vec<Group>,
    n_features: usize,
    /// At most [`DENSE`] features: each table row holds all of them (zeros
    /// elsewhere), so a unit adds one short vector to a local accumulator
    /// instead of scattering its values.
    dense: bool,
    /// Units over all groups.
    units: usize,
}

/// Units with the same number of tests `b`, as flat arrays (`b` tests per
/// unit; dense: `2^b · DENSE` table entries per unit).
#[derive(Debug, Clone, Default)]
struct Group {
    features: Vec<u32>,
    /// `x > lo` (`-inf` when none).
    lo: Vec<f32>,
    /// `x <= hi` (`+inf` when none).
    hi: Vec<f32>,
    /// Dense: `units · 2^b` rows of [`DENSE`] entries. Otherwise unit `u`'s
    /// rows of `columns[column_start[u]..column_start[u + 1]]` entries from
    /// `table_start[u]`.
    table: Vec<f64>,
    columns: Vec<u32>,
    column_start: Vec<usize>,
    table_start: Vec<usize>,
}

impl Group {
    fn units(&self, b: usize) -> usize {
        self.features.len().checked_div(b).unwrap_or(0)
    }

    /// Units `start..end` of this group (`b` tests each), borrowed.
    fn slice(&self, b: usize, start: usize, end: usize) -> GroupSlice<'_> {
        GroupSlice {
            b,
            start,
            end,
            group: self,
        }
    }

    fn all(&self, b: usize) -> GroupSlice<'_> {
        self.slice(b, 0, self.units(b))
    }

    /// Append a unit: its tests and its table (dense rows, or rows of
    /// `columns` entries).
    fn push(&mut self, tests: &[Test], table: Vec<f64>, columns: Option<&[u32]>) {
        for t in tests {
            self.features.push(t.feature);
            self.lo.push(t.lo);
            self.hi.push(t.hi);
        }
        if let Some(columns) = columns {
            if self.column_start.is_empty() {
                self.column_start.push(0);
                self.table_start.push(0);
            }
            self.columns.extend_from_slice(columns);
            self.column_start.push(self.columns.len());
            self.table_start.push(self.table.len() + table.len());
        }
        self.table.extend(table);
    }
}

/// Units `start..end` of one group.
struct GroupSlice<'a> {
    b: usize,
    start: usize,
    end: usize,
    group: &'a Group,
}

impl GroupSlice<'_> {
    /// The table row of unit `u` (an index into the group) at input `x`.
    #[inline(always)]
    fn row_of<const B: usize>(&self, u: usize, x: &[f32]) -> usize {
        let g = self.group;
        let (features, lo, hi) = (
            &g.features[u * B..u * B + B],
            &g.lo[u * B..u * B + B],
            &g.hi[u * B..u * B + B],
        );
        let mut a = 0usize;
        for j in 0..B {
            a |= usize::from(agrees(x[features[j] as usize], lo[j], hi[j])) << j;
        }
        a
    }

    /// Add these units' contributions at input `x` to `acc` (dense rows);
    /// the common sizes get loops of a fixed length.
    fn add_dense(&self, x: &[f32], acc: &mut [f64; DENSE]) {
        match self.b {
            0 => {}
            1 => self.add_dense_b::<1>(x, acc),
            2 => self.add_dense_b::<2>(x, acc),
            3 => self.add_dense_b::<3>(x, acc),
            4 => self.add_dense_b::<4>(x, acc),
            5 => self.add_dense_b::<5>(x, acc),
            6 => self.add_dense_b::<6>(x, acc),
            7 => self.add_dense_b::<7>(x, acc),
            8 => self.add_dense_b::<8>(x, acc),
            9 => self.add_dense_b::<9>(x, acc),
            10 => self.add_dense_b::<10>(x, acc),
            11 => self.add_dense_b::<11>(x, acc),
            12 => self.add_dense_b::<12>(x, acc),
            13 => self.add_dense_b::<13>(x, acc),
            14 => self.add_dense_b::<14>(x, acc),
            15 => self.add_dense_b::<15>(x, acc),
            _ => self.add_dense_b::<16>(x, acc),
        }
    }

    #[inline]
    fn add_dense_b<const B: usize>(&self, x: &[f32], acc: &mut [f64; DENSE]) {
        // Two passes over each chunk of units: first every unit's row (the
        // interval tests, no memory beyond the test arrays), then the rows'
        // loads back to back, so many table reads are in flight at once
        // (the tables are larger than L2).
        const CHUNK: usize = 32;
        let size = (1 << B) * DENSE;
        let table = &self.group.table;
        let mut rows = [0usize; CHUNK];
        let mut start = self.start;
        while start < self.end {
            let end = (start + CHUNK).min(self.end);
            for (slot, u) in rows.iter_mut().zip(start..end) {
                *slot = u * size + self.row_of::<B>(u, x) * DENSE;
                prefetch(&table[*slot]);
            }
            for &offset in &rows[..end - start] {
                let row = &table[offset..offset + DENSE];
                for j in 0..DENSE {
                    acc[j] += row[j];
                }
            }
            start = end;
        }
    }

    /// Add these units' contributions at input `x` to `phi` (rows of each
    /// unit's own columns).
    fn add_sparse(&self, x: &[f32], phi: &mut [f64]) {
        let (g, b) = (self.group, self.b);
        for u in self.start..self.end {
            let mut a = 0usize;
            for j in 0..b {
                let t = u * b + j;
                a |= usize::from(agrees(x[g.features[t] as usize], g.lo[t], g.hi[t])) << j;
            }
            let columns = &g.columns[g.column_start[u]..g.column_start[u + 1]];
            let m = columns.len();
            let row = &g.table[g.table_start[u] + a * m..g.table_start[u] + a * m + m];
            for (c, e) in columns.iter().zip(row) {
                phi[*c as usize] += e;
            }
        }
    }
}

/// Ask the CPU to start loading `value`'s cache line (a hint: no effect on
/// results, and nothing on other architectures).
#[inline(always)]
fn prefetch(value: &f64) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint that never faults; SSE is part of every
    // x86_64 target, and the pointer comes from a reference.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>((value as *const f64).cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

/// Whether `v` falls in `(lo, hi]`, the way splits send it: a NaN (a
/// missing value) fails every left turn (`hi` finite) and passes every
/// right turn.
#[inline]
fn agrees(v: f32, lo: f32, hi: f32) -> bool {
    let left_ok = (v <= hi) | (hi == f32::INFINITY);
    let right_ok = (v > lo) | v.is_nan() | (lo == f32::NEG_INFINITY);
    left_ok & right_ok
}

/// One test of a unit: the input's `feature` in `(lo, hi]`.
#[derive(Debug, Clone, Copy)]
struct Test {
    feature: u32,
    lo: f32,
    hi: f32,
}

/// One split on a path: feature, threshold, whether the path turns left
/// (`x <= threshold`), the child's share of the node's cover, and the
/// unit's test that decides this turn: for a split above the unit's root
/// the interval of its feature (the bit must be 1), for one inside it the
/// split's own test (1 means left).
#[derive(Debug, Clone, Copy)]
struct Step {
    feature: u32,
    threshold: f32,
    left: bool,
    ratio: f64,
    test: usize,
    inside: bool,
}

impl Step {
    /// The two turns at internal `node` (left, then right), each with the
    /// child it leads to.
    fn turns(tree: &Tree, node: usize, test: usize, inside: bool) -> [(usize, Step); 2] {
        let turn = |child: u32, left: bool| {
            let child = child as usize;
            let step = Step {
                feature: tree.feature[node],
                threshold: tree.threshold[node],
                left,
                ratio: tree.cover[child] / tree.cover[node],
                test,
                inside,
            };
            (child, step)
        };
        [turn(tree.left[node], true), turn(tree.right[node], false)]
    }
}

/// A leaf of a unit, with what its agree set needs of the unit's bits.
struct UnitLeaf {
    /// Distinct features of the leaf's path, in order of first split.
    features: Vec<u32>,
    /// Per feature: the bits that decide it and the values they must have.
    need_mask: Vec<usize>,
    need_value: Vec<usize>,
    /// Per feature: the product of its cover ratios.
    z: Vec<f64>,
    /// `K[A]` and `M[A]` over the subsets `A` of `features`.
    k_sums: Vec<f64>,
    m_sums: Vec<f64>,
}

impl UnitLeaf {
    fn new(path: &[Step], value: f64) -> Self {
        let mut features: Vec<u32> = Vec::with_capacity(path.len());
        let (mut z, mut need_mask, mut need_value) = (Vec::new(), Vec::new(), Vec::new());
        for step in path {
            let at = match features.iter().position(|&f| f == step.feature) {
                Some(at) => {
                    z[at] *= step.ratio;
                    at
                }
                None => {
                    features.push(step.feature);
                    z.push(step.ratio);
                    need_mask.push(0);
                    need_value.push(0);
                    features.len() - 1
                }
            };
            need_mask[at] |= 1 << step.test;
            if !step.inside || step.left {
                need_value[at] |= 1 << step.test;
            }
        }
        let (k_sums, m_sums) = leaf_sums(value, &z);
        Self {
            features,
            need_mask,
            need_value,
            z,
            k_sums,
            m_sums,
        }
    }

    /// Add this leaf's entries for the unit's bits `bits` to `row`, each at
    /// `column(feature)`.
    fn add_row(&self, bits: usize, row: &mut [f64], column: impl Fn(u32) -> usize) {
        let mut a = 0usize;
        for (j, (mask, value)) in self.need_mask.iter().zip(&self.need_value).enumerate() {
            a |= usize::from(bits & mask == *value) << j;
        }
        for (j, f) in self.features.iter().enumerate() {
            let bit = 1 << j;
            row[column(*f)] += if a & bit != 0 {
                (1.0 - self.z[j]) * (self.m_sums[a] - self.m_sums[a ^ bit])
            } else {
                -self.k_sums[a]
            };
        }
    }
}

/// `K[A]` and `M[A]` of a leaf with value `value` and cover-ratio products
/// `z` (one per distinct path feature), for every subset `A` (a bit mask).
fn leaf_sums(value: f64, z: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let k = z.len();
    let size = 1usize << k;
    // w(s) = s! (k − s − 1)! / k! = 1 / (k · C(k − 1, s)), s < k.
    let weights: Vec<f64> = (0..=k)
        .map(|s| {
            if s >= k {
                return 0.0;
            }
            let mut binom = 1.0;
            for j in 0..s {
                binom = binom * (k - 1 - j) as f64 / (j + 1) as f64;
            }
            1.0 / (k as f64 * binom)
        })
        .collect();
    let mut k_sums = vec![0.0; size];
    let mut m_sums = vec![0.0; size];
    for subset in 0..size {
        // Z(U ∖ S)
        let mut rest = 1.0;
        for (j, zj) in z.iter().enumerate() {
            if subset & (1 << j) == 0 {
                rest *= zj;
            }
        }
        let s = subset.count_ones() as usize;
        k_sums[subset] = value * weights[s] * rest;
        if s > 0 {
            m_sums[subset] = value * weights[s - 1] * rest;
        }
    }
    // Subset sums: T[B] = Σ_{S ⊆ B} g[S].
    for bit in 0..k {
        for subset in 0..size {
            if subset & (1 << bit) != 0 {
                k_sums[subset] += k_sums[subset ^ (1 << bit)];
                m_sums[subset] += m_sums[subset ^ (1 << bit)];
            }
        }
    }
    (k_sums, m_sums)
}

impl FastTreeShap {
    /// The explainer of `ensemble` with units of up to
    /// [`DEFAULT_UNIT_BITS`] tests (one per leaf if those tables would be
    /// too large), or `None` when even per-leaf tables would be too large
    /// (use Algorithm 2 then).
    pub fn new(ensemble: &TreeEnsemble) -> Option<Self> {
        Self::with_unit_bits(ensemble, DEFAULT_UNIT_BITS)
            .or_else(|| Self::with_unit_bits(ensemble, 0))
    }

    /// The explainer with units of up to `unit_bits` tests (0: a unit per
    /// leaf, the per-leaf tables), or `None` when its tables would pass
    /// [`MAX_TABLE_ENTRIES`] or a leaf's path splits on more than 16
    /// features.
    pub fn with_unit_bits(ensemble: &TreeEnsemble, unit_bits: usize) -> Option<Self> {
        let mut this = Self {
            groups: vec![Group::default(); MAX_TESTS + 1],
            n_features: ensemble.n_features(),
            dense: ensemble.n_features() <= DENSE,
            units: 0,
        };
        let mut path = Vec::with_capacity(ensemble.max_depth() + 1);
        for tree in ensemble.trees() {
            // Splits in each node's subtree (children come after their
            // parent, so one backward pass counts them).
            let mut splits = vec![0usize; tree.len()];
            for node in (0..tree.len()).rev() {
                if !tree.is_leaf(node) {
                    splits[node] =
                        1 + splits[tree.left[node] as usize] + splits[tree.right[node] as usize];
                }
            }
            let mut unit = vec![false; tree.len()];
            Self::plan(tree, 0, &splits, unit_bits, &mut Vec::new(), &mut unit);
            path.clear();
            if !this.add_units(tree, 0, &splits, &unit, &mut path) {
                return None;
            }
        }
        Some(this)
    }

    /// Choose the units of the subtree at `node` (reached by `path`):
    /// itself when its tests fit in `unit_bits` and one table of its size
    /// costs less than its children's units (a table row read weighs as
    /// much as [`ROWS_PER_READ`] rows held), else its children's choices.
    /// Returns the cost and marks the chosen roots in `unit`.
    fn plan(
        tree: &Tree,
        node: usize,
        splits: &[usize],
        unit_bits: usize,
        above: &mut Vec<u32>,
        unit: &mut [bool],
    ) -> f64 {
        let mut features = above.clone();
        features.sort_unstable();
        features.dedup();
        let b = features.len() + splits[node];
        let own = 1.0 + (b.min(63) as f64).exp2() / ROWS_PER_READ;
        if tree.is_leaf(node) {
            unit[node] = true;
            return own;
        }
        above.push(tree.feature[node]);
        let children = Self::plan(
            tree,
            tree.left[node] as usize,
            splits,
            unit_bits,
            above,
            unit,
        ) + Self::plan(
            tree,
            tree.right[node] as usize,
            splits,
            unit_bits,
            above,
            unit,
        );
        above.pop();
        unit[node] = b <= unit_bits && own <= children;
        if unit[node] { own } else { children }
    }

    /// Add the units chosen by [`plan`](Self::plan) below `node`.
    fn add_units(
        &mut self,
        tree: &Tree,
        node: usize,
        splits: &[usize],
        unit: &[bool],
        path: &mut Vec<Step>,
    ) -> bool {
        if unit[node] {
            let mut above: Vec<u32> = path.iter().map(|s| s.feature).collect();
            above.sort_unstable();
            above.dedup();
            return self.add_unit(tree, node, path, above.len() + splits[node]);
        }
        for (child, step) in Step::turns(tree, node, 0, false) {
            path.push(step);
            let ok = self.add_units(tree, child, splits, unit, path);
            path.pop();
            if !ok {
                return false;
            }
        }
        true
    }

    /// Add the subtree at `node`, reached by `path`, as one unit of `b`
    /// tests.
    fn add_unit(&mut self, tree: &Tree, node: usize, path: &[Step], b: usize) -> bool {
        if b > MAX_TESTS {
            return false;
        }
        if b == 0 {
            // A tree that is one leaf: its value is all base value.
            return true;
        }
        // The intervals of the path's features, then the splits inside.
        let mut tests: Vec<Test> = Vec::with_capacity(b);
        let mut steps: Vec<Step> = Vec::with_capacity(path.len() + b);
        for step in path {
            let test = match tests.iter().position(|t| t.feature == step.feature) {
                Some(at) => at,
                None => {
                    tests.push(Test {
                        feature: step.feature,
                        lo: f32::NEG_INFINITY,
                        hi: f32::INFINITY,
                    });
                    tests.len() - 1
                }
            };
            if step.left {
                tests[test].hi = tests[test].hi.min(step.threshold);
            } else {
                tests[test].lo = tests[test].lo.max(step.threshold);
            }
            steps.push(Step {
                test,
                inside: false,
                ..*step
            });
        }
        let mut leaves = Vec::new();
        collect_leaves(tree, node, &mut steps, &mut tests, &mut leaves);
        debug_assert_eq!(tests.len(), b);
        let mut columns: Vec<u32> = Vec::with_capacity(b);
        for t in &tests {
            if !columns.contains(&t.feature) {
                columns.push(t.feature);
            }
        }
        let width = if self.dense { DENSE } else { columns.len() };
        let size = (1usize << b) * width;
        if self.table_entries() + size > MAX_TABLE_ENTRIES {
            return false;
        }
        let mut table = vec![0.0; size];
        for (bits, row) in table.chunks_exact_mut(width).enumerate() {
            for leaf in &leaves {
                if self.dense {
                    leaf.add_row(bits, row, |f| f as usize);
                } else {
                    leaf.add_row(bits, row, |f| {
                        columns.iter().position(|c| *c == f).unwrap_or_default()
                    });
                }
            }
        }
        let columns = (!self.dense).then_some(&columns[..]);
        self.groups[b].push(&tests, table, columns);
        self.units += 1;
        true
    }

    /// SHAP values at scaled input `x` (as [`super::treeshap::shap_values`]).
    pub fn shap_values(&self, x: &[f32]) -> Vec<f64> {
        let mut phi = vec![0.0; x.len().max(self.n_features)];
        let x = self.padded(x);
        for (b, group) in self.groups.iter().enumerate() {
            self.add(group.all(b), &x, &mut phi);
        }
        phi
    }

    /// Add some units' contributions at `x` (padded) to `phi`.
    #[inline]
    fn add(&self, units: GroupSlice<'_>, x: &[f32], phi: &mut [f64]) {
        if self.dense {
            let mut acc = [0.0; DENSE];
            units.add_dense(x, &mut acc);
            for (p, a) in phi.iter_mut().zip(acc) {
                *p += a;
            }
        } else {
            units.add_sparse(x, phi);
        }
    }

    /// SHAP values of every row of `rows` (row-major, `n` values each), a
    /// block of units at a time for all rows, so the block's tables are
    /// read from memory once for the whole batch. Each row's values are
    /// summed in the same order as [`shap_values`](Self::shap_values)
    /// sums them: equal to the last bit, whatever else is in the batch.
    pub fn shap_values_batch(&self, rows: &[f32], n: usize) -> Vec<Vec<f64>> {
        let n = n.max(1);
        let padded: Vec<Vec<f32>> = rows.chunks_exact(n).map(|r| self.padded(r)).collect();
        let mut out = vec![vec![0.0; n.max(self.n_features)]; padded.len()];
        let mut acc = vec![[0.0; DENSE]; padded.len()];
        for (b, group) in self.groups.iter().enumerate() {
            let units = group.units(b);
            // ~256 KiB of table per block: it stays in L2 for all rows.
            let block = ((256 << 10) / ((8 * DENSE) << b)).max(1);
            let mut start = 0;
            while start < units {
                let end = (start + block).min(units);
                for ((x, phi), acc) in padded.iter().zip(&mut out).zip(&mut acc) {
                    let units = group.slice(b, start, end);
                    if self.dense {
                        units.add_dense(x, acc);
                    } else {
                        units.add_sparse(x, phi);
                    }
                }
                start = end;
            }
            if self.dense {
                for (phi, acc) in out.iter_mut().zip(&mut acc) {
                    for (p, a) in phi.iter_mut().zip(acc.iter_mut()) {
                        *p += std::mem::take(a);
                    }
                }
            }
        }
        out
    }

    /// `x` widened to every feature the trees read; a missing value is NaN,
    /// which goes right at every split, as a missing feature does.
    fn padded(&self, x: &[f32]) -> Vec<f32> {
        let mut padded = x.to_vec();
        if padded.len() < self.n_features {
            padded.resize(self.n_features, f32::NAN);
        }
        padded
    }

    /// Floats held in the tables (for the log and the benchmark).
    pub fn table_entries(&self) -> usize {
        self.groups.iter().map(|g| g.table.len()).sum()
    }

    /// Units (one table row read per explanation each), for the benchmark.
    pub fn units(&self) -> usize {
        self.units
    }
}

/// Add the splits of the subtree at `node` as tests, and its leaves with
/// their full paths (`steps`: the path to `node`, then the turns inside).
fn collect_leaves(
    tree: &Tree,
    node: usize,
    steps: &mut Vec<Step>,
    tests: &mut Vec<Test>,
    leaves: &mut Vec<UnitLeaf>,
) {
    if tree.is_leaf(node) {
        leaves.push(UnitLeaf::new(steps, tree.value[node]));
        return;
    }
    let test = tests.len();
    tests.push(Test {
        feature: tree.feature[node],
        lo: f32::NEG_INFINITY,
        hi: tree.threshold[node],
    });
    for (child, step) in Step::turns(tree, node, test, true) {
        steps.push(step);
        collect_leaves(tree, child, steps, tests, leaves);
        steps.pop();
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::treeshap::shap_values;
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};
    use rand_pcg::Pcg64;

    /// A random forest of `n_trees` trees over `m` features, depth up to 6,
    /// with repeated features on paths.
    fn random_forest(seed: u64, n_trees: usize, m: u32) -> TreeEnsemble {
        let mut rng = Pcg64::seed_from_u64(seed);
        let trees = (0..n_trees)
            .map(|_| {
                let mut t = Tree::default();
                grow(&mut rng, &mut t, m, 6, 100.0);
                t
            })
            .collect();
        TreeEnsemble::new(trees, [0, 1]).unwrap()
    }

    /// Add a subtree in preorder (children after their parent).
    fn grow(rng: &mut impl Rng, t: &mut Tree, m: u32, depth: usize, cover: f64) -> u32 {
        let id = t.feature.len() as u32;
        t.feature.push(rng.random_range(0..m));
        t.threshold.push(rng.random_range(-1.0..1.0));
        t.left.push(crate::models::ensemble::LEAF);
        t.right.push(crate::models::ensemble::LEAF);
        t.cover.push(cover);
        if depth == 0 || rng.random_bool(0.2) {
            t.value.push(rng.random_range(-0.1..0.1));
            return id;
        }
        t.value.push(0.0);
        let share = rng.random_range(0.05..0.95);
        let l = grow(rng, t, m, depth - 1, cover * share);
        let r = grow(rng, t, m, depth - 1, cover * (1.0 - share));
        t.left[id as usize] = l;
        t.right[id as usize] = r;
        id
    }

    proptest! {
        // Up to 11 features: dense table rows (at most 8) and per-feature
        // entries (more) both run.
        #![proptest_config(ProptestConfig::with_cases(96))]
        #[test]
        fn equals_algorithm_2_on_random_forests(seed in any::<u64>(), n_trees in 1usize..6,
                                                 m in 1u32..12, unit_bits in 0usize..12,
                                                 xs in proptest::collection::vec(-1.2f32..1.2, 12)) {
            // Units of every size, from one per leaf to whole subtrees.
            let forest = random_forest(seed, n_trees, m);
            let fast = FastTreeShap::with_unit_bits(&forest, unit_bits).unwrap();
            let x = &xs[..m as usize];
            let want = shap_values(&forest, x);
            let got = fast.shap_values(x);
            prop_assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                prop_assert!((g - w).abs() <= 1e-12 * (1.0 + w.abs()), "{:?} vs {:?}", got, want);
            }
            // Inputs exactly on thresholds (a split sends them left).
            let on: Vec<f32> = (0..m)
                .map(|j| {
                    let t = &forest.trees()[j as usize % n_trees];
                    (0..t.len()).find(|&i| !t.is_leaf(i) && t.feature[i] == j)
                        .map_or(xs[j as usize], |i| t.threshold[i])
                })
                .collect();
            let (got, want) = (fast.shap_values(&on), shap_values(&forest, &on));
            for (g, w) in got.iter().zip(&want) {
                prop_assert!((g - w).abs() <= 1e-12 * (1.0 + w.abs()), "{:?} vs {:?}", got, want);
            }
            // A row shorter than the features the trees read: the missing
            // ones go right, as in Algorithm 2.
            let short = &xs[..m as usize - 1];
            let (got, want) = (fast.shap_values(short), shap_values(&forest, short));
            for (g, w) in got.iter().zip(&want) {
                prop_assert!((g - w).abs() <= 1e-12 * (1.0 + w.abs()), "{:?} vs {:?}", got, want);
            }
            // A batch gives each row's values, bit for bit.
            let batch = fast.shap_values_batch(&xs[..2 * (m as usize).min(3)], (m as usize).min(3));
            for (row, values) in xs.chunks_exact((m as usize).min(3)).zip(&batch) {
                let alone = fast.shap_values(row);
                let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                prop_assert_eq!(bits(values), bits(&alone), "{:?} vs {:?}", values, alone);
            }
        }
    }

    #[test]
    fn too_large_tables_leave_algorithm_2() {
        // A chain of 40 splits on distinct features, each with a leaf on
        // its right: the deepest leaf's table would have 2^40 entries.
        let n = 40u32;
        let mut chain = Tree::default();
        let mut cover = 2f64.powi(n as i32 + 1);
        let mut next_id = 0u32;
        for d in 0..n {
            chain.feature.push(d);
            chain.threshold.push(0.0);
            chain.left.push(next_id + 2);
            chain.right.push(next_id + 1);
            chain.cover.push(cover);
            chain.value.push(0.0);
            // The leaf (right child).
            chain.feature.push(0);
            chain.threshold.push(0.0);
            chain.left.push(crate::models::ensemble::LEAF);
            chain.right.push(crate::models::ensemble::LEAF);
            chain.cover.push(cover / 2.0);
            chain.value.push(0.01);
            cover /= 2.0;
            next_id += 2;
        }
        chain.feature.push(0);
        chain.threshold.push(0.0);
        chain.left.push(crate::models::ensemble::LEAF);
        chain.right.push(crate::models::ensemble::LEAF);
        chain.cover.push(cover);
        chain.value.push(0.01);
        let forest = TreeEnsemble::new(vec![chain], [0, 1]).unwrap();
        assert!(FastTreeShap::new(&forest).is_none());
    }
}
