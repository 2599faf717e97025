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
//! (computed in `O(k·2^k)` per leaf). At explanation time a walk of each
//! tree carries the set of features the input still agrees with down both
//! branches; at a leaf, `A` indexes the tables and each feature of `U` gets
//! one update. Cost per explanation: one visit per node plus `k` updates
//! per leaf, against `O(depth²)` work per leaf for Algorithm 2. Memory:
//! `2 · 2^k` floats per leaf (`k ≤ depth`); an ensemble whose tables would
//! pass [`MAX_TABLE_ENTRIES`] gets no fast explainer and keeps Algorithm 2.

use super::ensemble::{Tree, TreeEnsemble};

/// Table entries (over all leaves, `K` and `M` each) above which no fast
/// explainer is built: 4M entries are 64 MiB.
pub const MAX_TABLE_ENTRIES: usize = 1 << 22;

/// Features a path may have for the fast explainer (the agree set is a
/// 64-bit mask of feature ids).
const MAX_FEATURES: usize = 64;

/// One leaf's precomputed part.
#[derive(Debug, Clone)]
struct Leaf {
    /// Offset of its `2^k` entries in [`FastTreeShap::k`] and `m`.
    offset: u32,
    /// `k`: the distinct features on its path.
    k: u8,
    /// Where its features start in [`FastTreeShap::features`] and
    /// `one_minus_z` (`k` entries).
    first: u32,
}

/// One tree's nodes as the walk needs them.
#[derive(Debug, Clone)]
struct FastTree {
    feature: Vec<u32>,
    threshold: Vec<f32>,
    left: Vec<u32>,
    right: Vec<u32>,
    /// Index into [`FastTreeShap::leaves`] for leaves, `u32::MAX` else.
    leaf: Vec<u32>,
}

/// The precomputed explainer of one ensemble.
#[derive(Debug, Clone)]
pub struct FastTreeShap {
    trees: Vec<FastTree>,
    leaves: Vec<Leaf>,
    /// Path features of every leaf, each leaf's `k` in a row.
    features: Vec<u32>,
    /// `1 − z_i`, aligned with `features`.
    one_minus_z: Vec<f64>,
    /// `K` (`−φ_i` of a feature the input disagrees with), leaf value
    /// included, `2^k` per leaf, indexed by the agree set over the leaf's
    /// own feature order.
    k: Vec<f64>,
    /// `M` (subset sums for agreeing features), same layout.
    m: Vec<f64>,
    n_features: usize,
}

impl FastTreeShap {
    /// The explainer of `ensemble`, or `None` when its tables would be too
    /// large or it reads more than 64 features (use Algorithm 2 then).
    pub fn new(ensemble: &TreeEnsemble) -> Option<Self> {
        if ensemble.n_features() > MAX_FEATURES {
            return None;
        }
        let mut this = Self {
            trees: Vec::with_capacity(ensemble.trees().len()),
            leaves: Vec::new(),
            features: Vec::new(),
            one_minus_z: Vec::new(),
            k: Vec::new(),
            m: Vec::new(),
            n_features: ensemble.n_features(),
        };
        let mut path = Vec::with_capacity(ensemble.max_depth() + 1);
        for tree in ensemble.trees() {
            let mut fast = FastTree {
                feature: tree.feature.clone(),
                threshold: tree.threshold.clone(),
                left: tree.left.clone(),
                right: tree.right.clone(),
                leaf: vec![u32::MAX; tree.len()],
            };
            path.clear();
            if !this.add_leaves(tree, &mut fast, 0, &mut path) {
                return None;
            }
            this.trees.push(fast);
        }
        Some(this)
    }

    /// Walk `tree` from `node`, with `path` the (feature, cover ratio) of
    /// every split above it, and add each leaf's tables.
    fn add_leaves(
        &mut self,
        tree: &Tree,
        fast: &mut FastTree,
        node: usize,
        path: &mut Vec<(u32, f64)>,
    ) -> bool {
        if tree.is_leaf(node) {
            fast.leaf[node] = self.leaves.len() as u32;
            return self.add_leaf(path, tree.value[node]);
        }
        let cover = tree.cover[node];
        for child in [tree.left[node] as usize, tree.right[node] as usize] {
            path.push((tree.feature[node], tree.cover[child] / cover));
            let ok = self.add_leaves(tree, fast, child, path);
            path.pop();
            if !ok {
                return false;
            }
        }
        true
    }

    fn add_leaf(&mut self, path: &[(u32, f64)], value: f64) -> bool {
        // Distinct features in order of first split, with the product of
        // their cover ratios.
        let mut features: Vec<u32> = Vec::with_capacity(path.len());
        let mut z: Vec<f64> = Vec::with_capacity(path.len());
        for &(feature, ratio) in path {
            match features.iter().position(|&f| f == feature) {
                Some(at) => z[at] *= ratio,
                None => {
                    features.push(feature);
                    z.push(ratio);
                }
            }
        }
        let k = features.len();
        let size = 1usize << k;
        if self.k.len() + size > MAX_TABLE_ENTRIES {
            return false;
        }
        // w(s) = s! (k − s − 1)! / k!, for s = 0 .. k − 1.
        let weight = |s: usize| -> f64 {
            if s >= k {
                return 0.0;
            }
            let mut w = 1.0 / k as f64;
            // s!(k−s−1)!/k! = 1 / (k · C(k−1, s))
            let mut binom = 1.0;
            for j in 0..s {
                binom = binom * (k - 1 - j) as f64 / (j + 1) as f64;
            }
            w /= binom;
            w
        };
        let weights: Vec<f64> = (0..=k).map(weight).collect();
        let mut k_table = vec![0.0; size];
        let mut m_table = vec![0.0; size];
        for subset in 0..size {
            // Z(U ∖ S)
            let mut rest = 1.0;
            for (j, zj) in z.iter().enumerate() {
                if subset & (1 << j) == 0 {
                    rest *= zj;
                }
            }
            let s = subset.count_ones() as usize;
            k_table[subset] = value * weights[s] * rest;
            if s > 0 {
                m_table[subset] = value * weights[s - 1] * rest;
            }
        }
        // Subset sums: T[B] = Σ_{S ⊆ B} g[S].
        for bit in 0..k {
            for subset in 0..size {
                if subset & (1 << bit) != 0 {
                    k_table[subset] += k_table[subset ^ (1 << bit)];
                    m_table[subset] += m_table[subset ^ (1 << bit)];
                }
            }
        }
        self.leaves.push(Leaf {
            offset: self.k.len() as u32,
            k: k as u8,
            first: self.features.len() as u32,
        });
        self.k.extend(k_table);
        self.m.extend(m_table);
        self.features.extend(features);
        self.one_minus_z.extend(z.iter().map(|z| 1.0 - z));
        true
    }

    /// SHAP values at scaled input `x` (as [`super::treeshap::shap_values`]).
    pub fn shap_values(&self, x: &[f32]) -> Vec<f64> {
        let mut phi = vec![0.0; x.len().max(self.n_features)];
        for tree in &self.trees {
            self.walk(tree, x, &mut phi);
        }
        phi
    }

    /// SHAP values of every row of `rows` (row-major, `n` values each),
    /// tree by tree so each tree's tables stay in cache for all rows.
    pub fn shap_values_batch(&self, rows: &[f32], n: usize) -> Vec<Vec<f64>> {
        let count = rows.len().checked_div(n).unwrap_or(0);
        let mut out = vec![vec![0.0; n.max(self.n_features)]; count];
        for tree in &self.trees {
            for (row, phi) in rows.chunks_exact(n.max(1)).zip(&mut out) {
                self.walk(tree, row, phi);
            }
        }
        out
    }

    /// Add one tree's contributions at `x` to `phi`.
    #[inline]
    fn walk(&self, tree: &FastTree, x: &[f32], phi: &mut [f64]) {
        // (node, features the input still agrees with); a stack as deep as
        // the tree has levels, times two.
        let mut stack: [(u32, u64); 2 * super::ensemble::MAX_DEPTH + 2] =
            [(0, 0); 2 * super::ensemble::MAX_DEPTH + 2];
        let mut top = 1;
        stack[0] = (0, u64::MAX);
        while top > 0 {
            top -= 1;
            let (node, agree) = stack[top];
            let node = node as usize;
            let leaf = tree.leaf[node];
            if leaf != u32::MAX {
                self.leaf_contribution(leaf as usize, agree, phi);
                continue;
            }
            let feature = tree.feature[node];
            let goes_left = x
                .get(feature as usize)
                .is_some_and(|&v| v <= tree.threshold[node]);
            let (hot, cold) = if goes_left {
                (tree.left[node], tree.right[node])
            } else {
                (tree.right[node], tree.left[node])
            };
            stack[top] = (cold, agree & !(1u64 << feature));
            stack[top + 1] = (hot, agree);
            top += 2;
        }
    }

    #[inline]
    fn leaf_contribution(&self, leaf: usize, agree: u64, phi: &mut [f64]) {
        let Leaf { offset, k, first } = self.leaves[leaf];
        let (k, first, offset) = (k as usize, first as usize, offset as usize);
        let features = &self.features[first..first + k];
        let mut a = 0usize;
        for (j, &f) in features.iter().enumerate() {
            a |= (((agree >> f) & 1) as usize) << j;
        }
        let k_table = &self.k[offset..offset + (1 << k)];
        let m_table = &self.m[offset..offset + (1 << k)];
        let one_minus_z = &self.one_minus_z[first..first + k];
        let (k_a, m_a) = (k_table[a], m_table[a]);
        for (j, &f) in features.iter().enumerate() {
            let bit = 1 << j;
            phi[f as usize] += if a & bit != 0 {
                one_minus_z[j] * (m_a - m_table[a ^ bit])
            } else {
                -k_a
            };
        }
    }

    /// Floats held in the tables (for the log and the benchmark).
    pub fn table_entries(&self) -> usize {
        self.k.len() + self.m.len()
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
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn equals_algorithm_2_on_random_forests(seed in any::<u64>(), n_trees in 1usize..6,
                                                 m in 1u32..7, xs in proptest::collection::vec(-1.2f32..1.2, 7)) {
            let forest = random_forest(seed, n_trees, m);
            let fast = FastTreeShap::new(&forest).unwrap();
            let x = &xs[..m as usize];
            let want = shap_values(&forest, x);
            let got = fast.shap_values(x);
            prop_assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                prop_assert!((g - w).abs() <= 1e-12 * (1.0 + w.abs()), "{:?} vs {:?}", got, want);
            }
            // A batch gives each row's values.
            let batch = fast.shap_values_batch(&xs[..2 * (m as usize).min(3)], (m as usize).min(3));
            for (row, values) in xs.chunks_exact((m as usize).min(3)).zip(&batch) {
                prop_assert_eq!(values, &fast.shap_values(row));
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
