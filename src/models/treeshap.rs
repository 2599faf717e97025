//! Exact path-dependent TreeSHAP (Lundberg, Erion & Lee 2018, "Consistent
//! Individualized Feature Attribution for Tree Ensembles", Algorithm 2).
//!
//! For one input this gives each feature's Shapley value of the forest output
//! P(positive), where "feature unknown" means: at a split on that feature,
//! follow both children weighted by their share of the node's training cover
//! (the path-dependent conditional expectation `shap.TreeExplainer` uses for
//! sklearn forests). Values are computed per tree and summed; leaf values are
//! already divided by the number of trees, so no averaging happens here.
//! Additivity: `expected_value + Σ shap_values == ensemble.predict_row(x)`
//! (up to f64 rounding).
//!
//! Written from the paper's pseudo-code: a *path* is the list of features
//! split on from the root to the current node, each with the fraction of
//! "zero" (feature unknown) and "one" (feature known) paths that flow through
//! it, plus the permutation weights of subsets of the path. EXTEND grows the
//! path by one feature, UNWIND undoes it (used when a feature repeats on a
//! path: its earlier occurrence is removed and its fractions carried into the
//! new split), and the unwound sum gives the weight of one feature's
//! contribution at a leaf without materializing the unwound path.
//!
//! Memory: one buffer per call, sized from the ensemble's maximum depth; each
//! recursion level copies its parent's path into the next slice of it
//! (O(depth) per node), so nothing is allocated per node.

use super::ensemble::{Tree, TreeEnsemble};

/// Feature id of the dummy element at the root of every path.
const ROOT: u32 = u32::MAX;

/// `1 / k` for the small integers the weight updates divide by: the inner
/// loops multiply instead (a division costs several multiplications), which
/// halves the time of an explanation.
const RECIPROCALS: [f64; 130] = {
    let mut table = [0.0; 130];
    let mut k = 1;
    while k < table.len() {
        table[k] = 1.0 / k as f64;
        k += 1;
    }
    table
};

#[inline]
fn recip(k: usize) -> f64 {
    match RECIPROCALS.get(k) {
        Some(r) => *r,
        None => 1.0 / k as f64,
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct PathElement {
    feature: u32,
    zero_fraction: f64,
    one_fraction: f64,
    pweight: f64,
}

/// SHAP values of the forest output at scaled input `x`, one per feature.
///
/// The result has `max(x.len(), ensemble.n_features())` entries; a feature
/// beyond `x.len()` follows the false branch, as in
/// [`TreeEnsemble::predict_row`].
pub fn shap_values(ensemble: &TreeEnsemble, x: &[f32]) -> Vec<f64> {
    let mut phi = vec![0.0; x.len().max(ensemble.n_features())];
    // A node at depth k holds at most k + 1 path elements (root dummy + one per
    // split above it), in its own slice of the buffer: Σ_{k=0..=D} (k + 1).
    let d = ensemble.max_depth();
    let mut path = vec![PathElement::default(); (d + 1) * (d + 2) / 2];
    for tree in ensemble.trees() {
        recurse(tree, x, &mut phi, &mut path, 0, 0, 1.0, 1.0, ROOT);
    }
    phi
}

/// The forest's expected output under the training distribution as seen by
/// the trees: Σ_trees Σ_leaves cover(leaf) / cover(root) · value(leaf).
/// This is TreeSHAP's base value.
pub fn expected_value(ensemble: &TreeEnsemble) -> f64 {
    ensemble
        .trees()
        .iter()
        .map(|t| {
            let root = t.cover[0];
            (0..t.len())
                .filter(|&n| t.is_leaf(n))
                .map(|n| t.cover[n] / root * t.value[n])
                .sum::<f64>()
        })
        .sum()
}

/// RECURSE of Algorithm 2. `path[..depth]` holds the parent's path; this call
/// extends it with (`zero`, `one`, `feature`) in `path[depth]` and hands
/// `path[len..]` to its children.
#[allow(clippy::too_many_arguments)]
fn recurse(
    tree: &Tree,
    x: &[f32],
    phi: &mut [f64],
    path: &mut [PathElement],
    node: usize,
    depth: usize,
    zero: f64,
    one: f64,
    feature: u32,
) {
    extend(path, depth, zero, one, feature);
    let mut len = depth + 1;

    if tree.is_leaf(node) {
        let value = tree.value[node];
        if value != 0.0 {
            let path = &path[..len];
            for i in 1..len {
                let e = path[i];
                let w = unwound_sum(path, i);
                phi[e.feature as usize] += w * (e.one_fraction - e.zero_fraction) * value;
            }
        }
        return;
    }

    let split = tree.feature[node];
    let (hot, cold) = tree.children(node, x);
    // A feature already on the path: remove its earlier occurrence and carry
    // its fractions into this split.
    let (mut incoming_zero, mut incoming_one) = (1.0, 1.0);
    if let Some(k) = (1..len).find(|&k| path[k].feature == split) {
        incoming_zero = path[k].zero_fraction;
        incoming_one = path[k].one_fraction;
        unwind(&mut path[..len], k);
        len -= 1;
    }

    let cover = tree.cover[node];
    let (current, below) = path.split_at_mut(len);
    for (child, one) in [(hot, incoming_one), (cold, 0.0)] {
        below[..len].copy_from_slice(current);
        let zero = incoming_zero * tree.cover[child] / cover;
        recurse(tree, x, phi, below, child, len, zero, one, split);
    }
}

/// EXTEND: append an element to the path `path[..=l]` (its length becomes
/// `l + 1`) and update the permutation weights of every subset size.
#[inline]
fn extend(path: &mut [PathElement], l: usize, zero: f64, one: f64, feature: u32) {
    path[l] = PathElement {
        feature,
        zero_fraction: zero,
        one_fraction: one,
        pweight: if l == 0 { 1.0 } else { 0.0 },
    };
    let inv_denom = recip(l + 1);
    for i in (0..l).rev() {
        path[i + 1].pweight += one * path[i].pweight * (i + 1) as f64 * inv_denom;
        path[i].pweight = zero * path[i].pweight * (l - i) as f64 * inv_denom;
    }
}

/// UNWIND: remove element `i` from `path` (the whole slice is the path),
/// inverting its EXTEND on the weights. The caller shortens the path by one.
#[inline]
fn unwind(path: &mut [PathElement], i: usize) {
    let l = path.len() - 1;
    let (one, zero) = (path[i].one_fraction, path[i].zero_fraction);
    let denom = (l + 1) as f64;
    let mut next = path[l].pweight;
    for j in (0..l).rev() {
        if one != 0.0 {
            let tmp = path[j].pweight;
            path[j].pweight = next * denom / ((j + 1) as f64 * one);
            next = tmp - path[j].pweight * zero * (l - j) as f64 / denom;
        } else {
            path[j].pweight = path[j].pweight * denom / (zero * (l - j) as f64);
        }
    }
    // Shift the features and fractions (the weights were recomputed above).
    for j in i..l {
        path[j].feature = path[j + 1].feature;
        path[j].zero_fraction = path[j + 1].zero_fraction;
        path[j].one_fraction = path[j + 1].one_fraction;
    }
}

/// Σ of the weights UNWIND(path, i) would leave, without modifying `path`.
#[inline]
fn unwound_sum(path: &[PathElement], i: usize) -> f64 {
    let l = path.len() - 1;
    let (one, zero) = (path[i].one_fraction, path[i].zero_fraction);
    let denom = (l + 1) as f64;
    let inv_denom = recip(l + 1);
    let mut total = 0.0;
    if one != 0.0 {
        let scale = denom / one;
        let mut next = path[l].pweight;
        for j in (0..l).rev() {
            let tmp = next * scale * recip(j + 1);
            total += tmp;
            next = path[j].pweight - tmp * zero * (l - j) as f64 * inv_denom;
        }
    } else {
        let scale = denom / zero;
        for j in (0..l).rev() {
            total += path[j].pweight * scale * recip(l - j);
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::ensemble::LEAF;
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};

    /// E[f(x) | x_S] with the path-dependent rule: at a split on a feature in
    /// `known`, follow `x`; otherwise average the children by cover share.
    fn cond_exp(tree: &Tree, x: &[f32], known: u32, node: usize) -> f64 {
        if tree.is_leaf(node) {
            return tree.value[node];
        }
        let (hot, cold) = tree.children(node, x);
        if known & (1 << tree.feature[node]) != 0 {
            cond_exp(tree, x, known, hot)
        } else {
            let c = tree.cover[node];
            tree.cover[hot] / c * cond_exp(tree, x, known, hot)
                + tree.cover[cold] / c * cond_exp(tree, x, known, cold)
        }
    }

    /// Shapley values by enumerating every coalition of `m` features.
    fn brute_force(e: &TreeEnsemble, x: &[f32], m: usize) -> Vec<f64> {
        let f = |s: u32| e.trees().iter().map(|t| cond_exp(t, x, s, 0)).sum::<f64>();
        let fact = |n: usize| (1..=n).map(|k| k as f64).product::<f64>();
        let mut phi = vec![0.0; m];
        for (i, phi_i) in phi.iter_mut().enumerate() {
            for s in 0u32..(1 << m) {
                if s & (1 << i) != 0 {
                    continue;
                }
                let size = s.count_ones() as usize;
                let weight = fact(size) * fact(m - size - 1) / fact(m);
                *phi_i += weight * (f(s | (1 << i)) - f(s));
            }
        }
        phi
    }

    /// Builder: nodes appended in pre-order, so children follow parents.
    #[derive(Default)]
    struct Builder(Tree);

    impl Builder {
        fn leaf(&mut self, cover: f64, value: f64) -> u32 {
            let t = &mut self.0;
            t.feature.push(0);
            t.threshold.push(0.0);
            t.left.push(LEAF);
            t.right.push(LEAF);
            t.cover.push(cover);
            t.value.push(value);
            (t.len() - 1) as u32
        }

        fn split(
            &mut self,
            feature: u32,
            threshold: f32,
            left: impl FnOnce(&mut Self) -> u32,
            right: impl FnOnce(&mut Self) -> u32,
        ) -> u32 {
            let id = self.leaf(0.0, 0.0) as usize;
            let l = left(self);
            let r = right(self);
            let t = &mut self.0;
            t.feature[id] = feature;
            t.threshold[id] = threshold;
            t.left[id] = l;
            t.right[id] = r;
            t.cover[id] = t.cover[l as usize] + t.cover[r as usize];
            id as u32
        }
    }

    /// Random tree over `m` features (repeats on a path are frequent).
    fn random_tree(rng: &mut impl Rng, b: &mut Builder, m: u32, depth: usize) -> u32 {
        if depth == 0 || rng.random_bool(0.25) {
            let cover = f64::from(rng.random_range(1..20u32));
            return b.leaf(cover, rng.random_range(-1.0..1.0));
        }
        let feature = rng.random_range(0..m);
        let threshold = rng.random_range(-1.0f32..1.0);
        let left = random_tree(rng, b, m, depth - 1);
        let right = random_tree(rng, b, m, depth - 1);
        // Post-order (children before their parent); `to_preorder` renumbers.
        let t = &mut b.0;
        t.feature.push(feature);
        t.threshold.push(threshold);
        t.left.push(left);
        t.right.push(right);
        t.cover
            .push(t.cover[left as usize] + t.cover[right as usize]);
        t.value.push(0.0);
        (t.len() - 1) as u32
    }

    /// Renumber a post-order tree (root last) into pre-order (root 0).
    fn to_preorder(t: &Tree, root: u32) -> Tree {
        fn walk(t: &Tree, n: usize, out: &mut Builder) -> u32 {
            if t.left[n] == LEAF {
                out.leaf(t.cover[n], t.value[n])
            } else {
                out.split(
                    t.feature[n],
                    t.threshold[n],
                    |b| walk(t, t.left[n] as usize, b),
                    |b| walk(t, t.right[n] as usize, b),
                )
            }
        }
        let mut out = Builder::default();
        walk(t, root as usize, &mut out);
        out.0
    }

    fn assert_close(got: &[f64], want: &[f64], tol: f64) {
        assert_eq!(got.len(), want.len());
        for (j, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= tol,
                "feature {j}: {g} vs {w}\n{got:?}\n{want:?}"
            );
        }
    }

    #[test]
    fn depth_two_tree_with_a_repeated_feature_matches_brute_force() {
        // x0 <= 0 ? (x1 <= 0 ? 1 : 2) : (x0 <= 1 ? 3 : 4), covers 3/5, 4/6, 2/4
        let mut b = Builder::default();
        b.split(
            0,
            0.0,
            |b| b.split(1, 0.0, |b| b.leaf(3.0, 1.0), |b| b.leaf(5.0, 2.0)),
            |b| b.split(0, 1.0, |b| b.leaf(2.0, 3.0), |b| b.leaf(4.0, 4.0)),
        );
        let e = TreeEnsemble::new(vec![b.0], [0, 1]).unwrap();
        for x in [
            [-1.0f32, -1.0],
            [-1.0, 1.0],
            [0.5, -1.0],
            [2.0, 2.0],
            [0.0, 0.0],
        ] {
            let phi = shap_values(&e, &x);
            assert_close(&phi, &brute_force(&e, &x, 2), 1e-12);
            let total = expected_value(&e) + phi.iter().sum::<f64>();
            assert!((total - e.predict_row(&x)).abs() < 1e-12);
        }
        // Hand check for x = (2, 2): f = 4, E[f] = (3+10+6+16)/14 = 2.5;
        // x1 never matters on x's branch and only via x0's unknown side.
        let phi = shap_values(&e, &[2.0, 2.0]);
        assert!((phi.iter().sum::<f64>() - 1.5).abs() < 1e-12);
    }

    #[test]
    fn expected_value_is_the_cover_weighted_leaf_mean() {
        let mut b = Builder::default();
        b.split(0, 0.0, |b| b.leaf(1.0, 0.0), |b| b.leaf(3.0, 1.0));
        let e = TreeEnsemble::new(vec![b.0.clone(), b.0], [0, 1]).unwrap();
        assert!((expected_value(&e) - 1.5).abs() < 1e-15);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn random_forests_match_brute_force(seed in any::<u64>(), n_trees in 1usize..4) {
            let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
            let m = 4u32;
            let trees: Vec<Tree> = (0..n_trees)
                .map(|_| {
                    let mut b = Builder::default();
                    let root = random_tree(&mut rng, &mut b, m, 6);
                    to_preorder(&b.0, root)
                })
                .collect();
            let e = TreeEnsemble::new(trees, [0, 1]).unwrap();
            let x: Vec<f32> = (0..m).map(|_| rng.random_range(-1.2f32..1.2)).collect();
            let phi = shap_values(&e, &x);
            let want = brute_force(&e, &x, m as usize);
            for (g, w) in phi.iter().zip(&want) {
                prop_assert!((g - w).abs() < 1e-9, "{:?} vs {:?}", phi, want);
            }
            let total = expected_value(&e) + phi.iter().sum::<f64>();
            prop_assert!((total - e.predict_row(&x)).abs() < 1e-9);
        }
    }
}
