//! [`TreeEnsemble`]: a validated binary-classifier forest as flat per-tree
//! arrays, and the walks over it (the leaf a row reaches, the forest's
//! prediction in f64 and exactly as tract sums it in f32).
//!
//! This module owns the tree model and its invariants (children after their
//! parent, one parent per node, positive covers that add up, bounded depth),
//! which TreeSHAP relies on. Reading the trees out of the ONNX protobuf, and
//! the layout rules that reading enforces, live in
//! [`ensemble_proto`](super::ensemble_proto).

use super::error::{EnsembleError, TreeError};

/// Marks a leaf in [`Tree::left`] / [`Tree::right`].
pub const LEAF: u32 = u32::MAX;

/// Trees deeper than this are rejected (TreeSHAP recurses once per level and
/// sizes its path buffer by the depth).
pub const MAX_DEPTH: usize = 64;

/// One decision tree as parallel arrays indexed by node id (0 = root).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Tree {
    /// Split feature (meaningless on leaves).
    pub feature: Vec<u32>,
    /// Split threshold: go left iff `x[feature] <= threshold` (f32 compare).
    pub threshold: Vec<f32>,
    /// True ("<=") child, or [`LEAF`].
    pub left: Vec<u32>,
    /// False child, or [`LEAF`].
    pub right: Vec<u32>,
    /// Node cover (training weight reaching the node), from `nodes_hitrates`.
    pub cover: Vec<f64>,
    /// Leaf value: this tree's share of P(positive), i.e. already divided by
    /// the number of trees; 0 on internal nodes.
    pub value: Vec<f64>,
}

impl Tree {
    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.feature.len()
    }

    /// True for a tree without nodes (never the case for a validated tree).
    pub fn is_empty(&self) -> bool {
        self.feature.is_empty()
    }

    /// Whether `node` is a leaf.
    #[inline]
    pub fn is_leaf(&self, node: usize) -> bool {
        self.left[node] == LEAF
    }

    /// `(hot, cold)` children of internal `node` for input `x`: hot is the one
    /// `x` follows. A feature beyond `x.len()` compares like NaN (false), i.e.
    /// takes the false branch, as ONNX does for a missing value when
    /// `missing_value_tracks_true` is 0.
    #[inline]
    pub fn children(&self, node: usize, x: &[f32]) -> (usize, usize) {
        let (l, r) = (self.left[node] as usize, self.right[node] as usize);
        let goes_left = x
            .get(self.feature[node] as usize)
            .is_some_and(|&v| v <= self.threshold[node]);
        if goes_left { (l, r) } else { (r, l) }
    }

    /// The leaf `x` reaches.
    pub fn leaf_for(&self, x: &[f32]) -> usize {
        let mut node = 0;
        while !self.is_leaf(node) {
            node = self.children(node, x).0;
        }
        node
    }

    /// Check the invariants everything else relies on; returns the depth
    /// (edges on the longest root-to-leaf path) and the width of input the
    /// tree reads (largest split feature + 1).
    fn validate(&self) -> Result<(usize, usize), TreeError> {
        let n = self.len();
        if n == 0 {
            return Err(TreeError::NoNodes);
        }
        for (what, len) in [
            ("threshold", self.threshold.len()),
            ("left", self.left.len()),
            ("right", self.right.len()),
            ("cover", self.cover.len()),
            ("value", self.value.len()),
        ] {
            if len != n {
                return Err(TreeError::ArrayLength {
                    array: what,
                    len,
                    nodes: n,
                });
            }
        }
        let mut parents = vec![0u32; n];
        let mut depth = vec![0usize; n];
        let (mut max_depth, mut width) = (0, 0);
        for node in 0..n {
            let cover = self.cover[node];
            if !(cover.is_finite() && cover > 0.0) {
                return Err(TreeError::CoverNotPositive { node, cover });
            }
            let (l, r) = (self.left[node], self.right[node]);
            if l == LEAF || r == LEAF {
                if l != r {
                    return Err(TreeError::OneChild { node });
                }
                if !self.value[node].is_finite() {
                    return Err(TreeError::LeafValue { node });
                }
                continue;
            }
            if self.threshold[node].is_nan() {
                return Err(TreeError::NanThreshold { node });
            }
            let (l, r) = (l as usize, r as usize);
            // Children after their parent: no cycles, and depths are known
            // when a child is reached in id order.
            for c in [l, r] {
                if c <= node || c >= n {
                    return Err(TreeError::ChildOutOfOrder {
                        node,
                        child: c,
                        nodes: n,
                    });
                }
                parents[c] += 1;
                depth[c] = depth[node] + 1;
                max_depth = max_depth.max(depth[c]);
            }
            if l == r {
                return Err(TreeError::SameChildren { node, child: l });
            }
            let sum = self.cover[l] + self.cover[r];
            if (sum - cover).abs() > 1e-4 * cover {
                return Err(TreeError::CoverNotSum { node, cover, sum });
            }
            width = width.max(self.feature[node] as usize + 1);
        }
        if let Some(node) = (1..n).find(|&node| parents[node] != 1) {
            return Err(TreeError::Parents {
                node,
                parents: parents[node],
            });
        }
        if max_depth > MAX_DEPTH {
            return Err(TreeError::TooDeep { depth: max_depth });
        }
        Ok((max_depth, width))
    }
}

/// A validated binary-classifier forest: P(positive) = Σ_trees value(leaf_t(x)).
#[derive(Debug, Clone, PartialEq)]
pub struct TreeEnsemble {
    trees: Vec<Tree>,
    class_labels: [i64; 2],
    n_features: usize,
    max_depth: usize,
}

impl TreeEnsemble {
    /// Validate hand-built trees (each: children after parents, one parent per
    /// node, positive covers that add up, depth <= [`MAX_DEPTH`]).
    pub fn new(trees: Vec<Tree>, class_labels: [i64; 2]) -> Result<Self, EnsembleError> {
        if trees.is_empty() {
            return Err(EnsembleError::NoTrees);
        }
        let (mut max_depth, mut n_features) = (0, 0);
        for (t, tree) in trees.iter().enumerate() {
            let (depth, width) = tree
                .validate()
                .map_err(|problem| EnsembleError::Tree { tree: t, problem })?;
            max_depth = max_depth.max(depth);
            n_features = n_features.max(width);
        }
        Ok(TreeEnsemble {
            trees,
            class_labels,
            n_features,
            max_depth,
        })
    }

    /// The trees, in ONNX tree-id order.
    pub fn trees(&self) -> &[Tree] {
        &self.trees
    }

    /// `[negative, positive]` labels (`classlabels_int64s`).
    pub fn class_labels(&self) -> [i64; 2] {
        self.class_labels
    }

    /// Input width the trees read: largest split feature + 1.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// Depth of the deepest tree (edges, root = 0).
    pub fn max_depth(&self) -> usize {
        self.max_depth
    }

    /// P(positive) for one scaled f32 row, summing leaf values in f64.
    ///
    /// This is the exact forest output; tract sums the f32 leaf weights in an
    /// f32 accumulator, so the two differ by at most a few 1e-7. Features
    /// beyond `x.len()` take the false branch (see [`Tree::children`]).
    pub fn predict_row(&self, x: &[f32]) -> f64 {
        self.trees.iter().map(|t| t.value[t.leaf_for(x)]).sum()
    }

    /// P(positive) accumulated exactly as tract 0.23.9 does it: the f32 leaf
    /// weights added into an f32 total starting at 0, in tree order. The
    /// result is bit-identical to tract's `probabilities[:, 1]` (and to the
    /// fixture's `proba_f32_tree_order`).
    pub fn predict_row_f32(&self, x: &[f32]) -> f32 {
        let mut total = 0.0f32;
        for t in &self.trees {
            // Leaf values were read from f32 weights: the cast back is exact.
            total += t.value[t.leaf_for(x)] as f32;
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structural_errors_are_caught() {
        let base = || Tree {
            feature: vec![0, 0, 0],
            threshold: vec![0.0; 3],
            left: vec![1, LEAF, LEAF],
            right: vec![2, LEAF, LEAF],
            cover: vec![2.0, 1.0, 1.0],
            value: vec![0.0, 0.1, 0.2],
        };
        assert!(TreeEnsemble::new(vec![base()], [0, 1]).is_ok());
        let mut cyclic = base();
        cyclic.right[0] = 0;
        assert!(
            TreeEnsemble::new(vec![cyclic], [0, 1])
                .unwrap_err()
                .to_string()
                .contains("child id 0")
        );
        let mut shared = base();
        shared.right[0] = 1;
        assert!(TreeEnsemble::new(vec![shared], [0, 1]).is_err());
        let mut zero_cover = base();
        zero_cover.cover[1] = 0.0;
        assert!(
            TreeEnsemble::new(vec![zero_cover], [0, 1])
                .unwrap_err()
                .to_string()
                .contains("cover")
        );
        assert!(TreeEnsemble::new(vec![], [0, 1]).is_err());
    }
}
