//! Exact path-dependent TreeSHAP with the input-independent work done once,
//! at load: the same values as [`treeshap`](super::treeshap) (Algorithm 2
//! of Lundberg et al. 2018), several times faster per explanation. The idea
//! is Fast TreeSHAP v2's (Yang 2021, "Fast TreeSHAP: Accelerating SHAP Value
//! Computation for Trees"): precompute, per leaf, a table over the subsets
//! of the features on its path; derived and written here from the Shapley
//! formula below, not from that paper's code.
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
//! every `A`. At explanation time each leaf's `A` comes from `k` interval
//! tests on the input, and each feature of `U` gets one addition: `O(k)`
//! per leaf, no tree walk, no branch on the data, against `O(depth²)` per
//! leaf for Algorithm 2. Memory: `k · 2^k` floats per leaf (`k ≤ depth`);
//! an ensemble whose tables would pass [`MAX_TABLE_ENTRIES`] gets no fast
//! explainer and keeps Algorithm 2.

use super::ensemble::{Tree, TreeEnsemble};

/// Table entries (over all leaves) above which no fast explainer is built:
/// 4M entries are 32 MiB.
pub const MAX_TABLE_ENTRIES: usize = 1 << 22;

/// Features a leaf's path may split on for the fast explainer (its agree
/// set indexes a table of `2^k · k` entries).
const MAX_PATH_FEATURES: usize = 16;

/// The precomputed explainer of one ensemble: every leaf of every tree,
/// grouped by `k` so that the loops over a leaf's features have a fixed
/// length within a group (a data-dependent loop length costs a branch
/// misprediction or two per leaf, most of the time otherwise).
///
/// Per leaf, each distinct feature `j` of its path is an interval
/// `(lo, hi]` of the scaled input: the input agrees with every split on `j`
/// exactly when it falls inside (a left turn at threshold `t` is `x <= t`,
/// a right turn `x > t`, and a missing or NaN value goes right, as in
/// [`Tree::children`]). The agree set `A` is then computed without walking
/// the tree, and `φ` gets, for every `j`, the entry `E[A][j]`: `−K[A]` when
/// `j ∉ A`, `(1 − z_j)(M[A] − M[A∖j])` when `j ∈ A`. Reading the leaves in
/// order, with no branch on the data, keeps many table reads in flight at
/// once; the tables (a few MiB) stay in the last-level cache.
#[derive(Debug, Clone)]
pub struct FastTreeShap {
    /// `groups[k]`: the leaves whose paths split on `k` distinct features.
    groups: Vec<Group>,
    n_features: usize,
    /// At most [`DENSE`] features: each table row holds all of them (zeros
    /// off the path), so a leaf adds one short vector to a local
    /// accumulator instead of scattering `k` values.
    dense: bool,
}

/// Features a dense table row holds.
const DENSE: usize = 8;

/// Leaves with the same `k`, as flat arrays (`k` entries per leaf, and
/// `2^k · k` table entries per leaf).
#[derive(Debug, Clone, Default)]
struct Group {
    features: Vec<u32>,
    /// `x > lo` (a right turn at `lo`; `-inf` when none).
    lo: Vec<f32>,
    /// `x <= hi` (a left turn at `hi`; `+inf` when none).
    hi: Vec<f32>,
    /// `E[A][j]`, `A`-major, leaf value included.
    table: Vec<f64>,
}

impl Group {
    fn leaves(&self, k: usize) -> usize {
        self.features.len().checked_div(k).unwrap_or(0)
    }

    /// Leaves `start..end` of this group (`k` features each, `stride`
    /// table entries per agree set), borrowed.
    fn slice(&self, k: usize, start: usize, end: usize, stride: usize) -> GroupSlice<'_> {
        let size = (1 << k) * stride;
        GroupSlice {
            features: &self.features[start * k..end * k],
            lo: &self.lo[start * k..end * k],
            hi: &self.hi[start * k..end * k],
            table: &self.table[start * size..end * size],
        }
    }

    fn all(&self, k: usize, stride: usize) -> GroupSlice<'_> {
        self.slice(k, 0, self.leaves(k), stride)
    }
}

/// Some leaves of one group.
struct GroupSlice<'a> {
    features: &'a [u32],
    lo: &'a [f32],
    hi: &'a [f32],
    table: &'a [f64],
}

impl GroupSlice<'_> {
    /// Add the contributions of these leaves (`k` features each) at input
    /// `x` to `phi`; the common sizes get loops of a fixed length.
    fn add_k(&self, k: usize, x: &[f32], phi: &mut [f64]) {
        match k {
            0 => {}
            1 => self.add::<1>(x, phi),
            2 => self.add::<2>(x, phi),
            3 => self.add::<3>(x, phi),
            4 => self.add::<4>(x, phi),
            5 => self.add::<5>(x, phi),
            6 => self.add::<6>(x, phi),
            7 => self.add::<7>(x, phi),
            8 => self.add::<8>(x, phi),
            _ => self.add_any(k, x, phi),
        }
    }

    /// [`GroupSlice::add_k`] with dense table rows ([`DENSE`] entries).
    fn add_dense_k(&self, k: usize, x: &[f32], acc: &mut [f64; DENSE]) {
        match k {
            0 => {}
            1 => self.add_dense::<1>(x, acc),
            2 => self.add_dense::<2>(x, acc),
            3 => self.add_dense::<3>(x, acc),
            4 => self.add_dense::<4>(x, acc),
            5 => self.add_dense::<5>(x, acc),
            6 => self.add_dense::<6>(x, acc),
            7 => self.add_dense::<7>(x, acc),
            _ => self.add_dense::<8>(x, acc),
        }
    }

    #[inline]
    fn add_dense<const K: usize>(&self, x: &[f32], acc: &mut [f64; DENSE]) {
        // Two passes over each chunk of leaves: first every leaf's row (the
        // interval tests, no memory beyond the leaf arrays), then the rows'
        // loads back to back, so many table reads are in flight at once
        // (the tables are larger than L2).
        const CHUNK: usize = 32;
        let size = (1 << K) * DENSE;
        let mut rows = [0usize; CHUNK];
        let leaves = self.features.len() / K;
        let mut start = 0;
        while start < leaves {
            let end = (start + CHUNK).min(leaves);
            for (slot, leaf) in rows.iter_mut().zip(start..end) {
                let (features, lo, hi) = (
                    &self.features[leaf * K..leaf * K + K],
                    &self.lo[leaf * K..leaf * K + K],
                    &self.hi[leaf * K..leaf * K + K],
                );
                let mut a = 0usize;
                for j in 0..K {
                    a |= usize::from(agrees(x[features[j] as usize], lo[j], hi[j])) << j;
                }
                *slot = leaf * size + a * DENSE;
                prefetch(&self.table[*slot]);
            }
            for &offset in &rows[..end - start] {
                let row = &self.table[offset..offset + DENSE];
                for j in 0..DENSE {
                    acc[j] += row[j];
                }
            }
            start = end;
        }
    }

    #[inline]
    fn add<const K: usize>(&self, x: &[f32], phi: &mut [f64]) {
        let size = (1 << K) * K;
        for ((features, (lo, hi)), table) in self
            .features
            .chunks_exact(K)
            .zip(self.lo.chunks_exact(K).zip(self.hi.chunks_exact(K)))
            .zip(self.table.chunks_exact(size))
        {
            let mut a = 0usize;
            for j in 0..K {
                a |= usize::from(agrees(x[features[j] as usize], lo[j], hi[j])) << j;
            }
            let entries = &table[a * K..a * K + K];
            for j in 0..K {
                phi[features[j] as usize] += entries[j];
            }
        }
    }

    fn add_any(&self, k: usize, x: &[f32], phi: &mut [f64]) {
        let size = (1 << k) * k;
        for ((features, (lo, hi)), table) in self
            .features
            .chunks_exact(k)
            .zip(self.lo.chunks_exact(k).zip(self.hi.chunks_exact(k)))
            .zip(self.table.chunks_exact(size))
        {
            let mut a = 0usize;
            for j in 0..k {
                a |= usize::from(agrees(x[features[j] as usize], lo[j], hi[j])) << j;
            }
            for (f, e) in features.iter().zip(&table[a * k..a * k + k]) {
                phi[*f as usize] += e;
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

/// Whether `v` follows a path's turns on one feature: inside `(lo, hi]`,
/// where a NaN (a missing value) fails every left turn and passes every
/// right turn, as at a split.
#[inline]
fn agrees(v: f32, lo: f32, hi: f32) -> bool {
    let left_ok = (v <= hi) | (hi == f32::INFINITY);
    let right_ok = (v > lo) | v.is_nan();
    left_ok & right_ok
}

/// One split on a leaf's path: feature, threshold, whether the path turns
/// left (`x <= threshold`), and the child's share of the node's cover.
#[derive(Debug, Clone, Copy)]
struct Step {
    feature: u32,
    threshold: f32,
    left: bool,
    ratio: f64,
}

impl FastTreeShap {
    /// The explainer of `ensemble`, or `None` when its tables would be too
    /// large (use Algorithm 2 then).
    pub fn new(ensemble: &TreeEnsemble) -> Option<Self> {
        let mut this = Self {
            groups: vec![Group::default(); MAX_PATH_FEATURES + 1],
            n_features: ensemble.n_features(),
            dense: ensemble.n_features() <= DENSE,
        };
        let mut path = Vec::with_capacity(ensemble.max_depth() + 1);
        for tree in ensemble.trees() {
            path.clear();
            if !this.add_leaves(tree, 0, &mut path) {
                return None;
            }
        }
        Some(this)
    }

    fn add_leaves(&mut self, tree: &Tree, node: usize, path: &mut Vec<Step>) -> bool {
        if tree.is_leaf(node) {
            return self.add_leaf(path, tree.value[node]);
        }
        let cover = tree.cover[node];
        for (child, left) in [
            (tree.left[node] as usize, true),
            (tree.right[node] as usize, false),
        ] {
            path.push(Step {
                feature: tree.feature[node],
                threshold: tree.threshold[node],
                left,
                ratio: tree.cover[child] / cover,
            });
            let ok = self.add_leaves(tree, child, path);
            path.pop();
            if !ok {
                return false;
            }
        }
        true
    }

    fn add_leaf(&mut self, path: &[Step], value: f64) -> bool {
        // Distinct features in order of first split: the product of their
        // cover ratios and the interval of inputs that follow the path.
        let mut features: Vec<u32> = Vec::with_capacity(path.len());
        let mut z: Vec<f64> = Vec::new();
        let mut lo: Vec<f32> = Vec::new();
        let mut hi: Vec<f32> = Vec::new();
        for step in path {
            let at = match features.iter().position(|&f| f == step.feature) {
                Some(at) => {
                    z[at] *= step.ratio;
                    at
                }
                None => {
                    features.push(step.feature);
                    z.push(step.ratio);
                    lo.push(f32::NEG_INFINITY);
                    hi.push(f32::INFINITY);
                    features.len() - 1
                }
            };
            if step.left {
                hi[at] = hi[at].min(step.threshold);
            } else {
                lo[at] = lo[at].max(step.threshold);
            }
        }
        let k = features.len();
        if k > MAX_PATH_FEATURES {
            return false;
        }
        let size = 1usize << k;
        let stride = if self.dense { DENSE } else { k };
        if self.table_entries() + size * stride > MAX_TABLE_ENTRIES {
            return false;
        }
        if k == 0 {
            // A tree that is one leaf: its value is all base value.
            return true;
        }
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
        let dense = self.dense;
        let group = &mut self.groups[k];
        for a in 0..size {
            let entry = |j: usize| {
                let bit = 1 << j;
                if a & bit != 0 {
                    (1.0 - z[j]) * (m_sums[a] - m_sums[a ^ bit])
                } else {
                    -k_sums[a]
                }
            };
            if dense {
                let mut row = [0.0; DENSE];
                for (j, f) in features.iter().enumerate() {
                    row[*f as usize] = entry(j);
                }
                group.table.extend(row);
            } else {
                group.table.extend((0..k).map(entry));
            }
        }
        group.features.extend(features);
        group.lo.extend(lo);
        group.hi.extend(hi);
        true
    }

    /// SHAP values at scaled input `x` (as [`super::treeshap::shap_values`]).
    pub fn shap_values(&self, x: &[f32]) -> Vec<f64> {
        let mut phi = vec![0.0; x.len().max(self.n_features)];
        let x = self.padded(x);
        if self.dense {
            let mut acc = [0.0; DENSE];
            for (k, group) in self.groups.iter().enumerate() {
                group.all(k, DENSE).add_dense_k(k, &x, &mut acc);
            }
            for (p, a) in phi.iter_mut().zip(acc) {
                *p += a;
            }
            return phi;
        }
        for (k, group) in self.groups.iter().enumerate() {
            group.all(k, k).add_k(k, &x, &mut phi);
        }
        phi
    }

    /// SHAP values of every row of `rows` (row-major, `n` values each), a
    /// block of leaves at a time for all rows, so the block's tables are
    /// read from memory once for the whole batch.
    pub fn shap_values_batch(&self, rows: &[f32], n: usize) -> Vec<Vec<f64>> {
        let n = n.max(1);
        let padded: Vec<Vec<f32>> = rows.chunks_exact(n).map(|r| self.padded(r)).collect();
        let mut out = vec![vec![0.0; n.max(self.n_features)]; padded.len()];
        for (k, group) in self.groups.iter().enumerate() {
            let leaves = group.leaves(k);
            // ~256 KiB of table per block: it stays in L2 for all rows.
            let block = ((256 << 10) / ((8 * self.stride(k).max(1)) << k)).max(1);
            let mut start = 0;
            while start < leaves {
                let end = (start + block).min(leaves);
                let part = group.slice(k, start, end, self.stride(k));
                for (x, phi) in padded.iter().zip(&mut out) {
                    if self.dense {
                        let mut acc = [0.0; DENSE];
                        part.add_dense_k(k, x, &mut acc);
                        for (p, a) in phi.iter_mut().zip(acc) {
                            *p += a;
                        }
                    } else {
                        part.add_k(k, x, phi);
                    }
                }
                start = end;
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

    /// Table entries per agree set of a leaf with `k` path features.
    fn stride(&self, k: usize) -> usize {
        if self.dense { DENSE } else { k }
    }

    /// Floats held in the tables (for the log and the benchmark).
    pub fn table_entries(&self) -> usize {
        self.groups.iter().map(|g| g.table.len()).sum()
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
                                                 m in 1u32..12, xs in proptest::collection::vec(-1.2f32..1.2, 12)) {
            let forest = random_forest(seed, n_trees, m);
            let fast = FastTreeShap::new(&forest).unwrap();
            let x = &xs[..m as usize];
            let want = shap_values(&forest, x);
            let got = fast.shap_values(x);
            prop_assert_eq!(got.len(), want.len());
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
            // A batch gives each row's values.
            let batch = fast.shap_values_batch(&xs[..2 * (m as usize).min(3)], (m as usize).min(3));
            for (row, values) in xs.chunks_exact((m as usize).min(3)).zip(&batch) {
                // (Summed in another order: equal to the last bits.)
                for (b, s) in values.iter().zip(&fast.shap_values(row)) {
                    prop_assert!((b - s).abs() <= 1e-12, "{:?} vs {:?}", values, fast.shap_values(row));
                }
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
