//! [`TreeEnsemble`]: the forest read straight from the ONNX
//! `ai.onnx.ml.TreeEnsembleClassifier` attributes, as flat per-tree arrays.
//!
//! tract runs the model but does not expose its trees, and TreeSHAP needs them
//! (structure, thresholds, leaf values and node covers). So the same protobuf
//! tract parses is read once more here, through tract-onnx's own prost types
//! (no second protobuf stack), and validated against exactly the layout that
//! skl2onnx writes and `models/README.md` documents:
//!
//! * node modes `BRANCH_LEQ` / `LEAF` only, go to the true child iff
//!   `x_f32[feature] <= threshold_f32`; `nodes_missing_value_tracks_true` all 0;
//! * the binary "one score per leaf" layout: every `class_ids` entry is 0 and
//!   its weight is P(class 1) / n_trees, so P(class 1) is the plain sum of the
//!   reached leaves' weights; `post_transform` `NONE`; exactly 2 class labels;
//! * `nodes_hitrates` carries real node covers (sklearn
//!   `weighted_n_node_samples`); runtimes ignore the attribute, TreeSHAP
//!   cannot do without it.
//!
//! Anything else is rejected at load rather than explained wrongly later.

use std::collections::HashMap;
use std::path::Path;

use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::{AttributeProto, ModelProto, NodeProto};

use super::ModelError;

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
    fn validate(&self) -> Result<(usize, usize), String> {
        let n = self.len();
        if n == 0 {
            return Err("has no nodes".into());
        }
        for (what, len) in [
            ("threshold", self.threshold.len()),
            ("left", self.left.len()),
            ("right", self.right.len()),
            ("cover", self.cover.len()),
            ("value", self.value.len()),
        ] {
            if len != n {
                return Err(format!("{what} has {len} entries for {n} nodes"));
            }
        }
        let mut parents = vec![0u32; n];
        let mut depth = vec![0usize; n];
        let (mut max_depth, mut width) = (0, 0);
        for node in 0..n {
            let cover = self.cover[node];
            if !(cover.is_finite() && cover > 0.0) {
                return Err(format!("node {node}: cover {cover} is not positive"));
            }
            let (l, r) = (self.left[node], self.right[node]);
            if l == LEAF || r == LEAF {
                if l != r {
                    return Err(format!("node {node}: only one child"));
                }
                if !self.value[node].is_finite() {
                    return Err(format!("node {node}: leaf value is not finite"));
                }
                continue;
            }
            if self.threshold[node].is_nan() {
                return Err(format!("node {node}: threshold is NaN"));
            }
            let (l, r) = (l as usize, r as usize);
            // Children after their parent: no cycles, and depths are known
            // when a child is reached in id order.
            for c in [l, r] {
                if c <= node || c >= n {
                    return Err(format!(
                        "node {node}: child id {c} is not in {}..{n}",
                        node + 1
                    ));
                }
                parents[c] += 1;
                depth[c] = depth[node] + 1;
                max_depth = max_depth.max(depth[c]);
            }
            if l == r {
                return Err(format!("node {node}: both children are node {l}"));
            }
            let sum = self.cover[l] + self.cover[r];
            if (sum - cover).abs() > 1e-4 * cover {
                return Err(format!(
                    "node {node}: cover {cover} is not the sum of its children's ({sum})"
                ));
            }
            width = width.max(self.feature[node] as usize + 1);
        }
        if let Some(node) = (1..n).find(|&node| parents[node] != 1) {
            return Err(format!(
                "node {node} has {} parents (expected exactly 1)",
                parents[node]
            ));
        }
        if max_depth > MAX_DEPTH {
            return Err(format!("depth {max_depth} exceeds {MAX_DEPTH}"));
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
    pub fn new(trees: Vec<Tree>, class_labels: [i64; 2]) -> Result<Self, String> {
        if trees.is_empty() {
            return Err("the ensemble has no trees".into());
        }
        let (mut max_depth, mut n_features) = (0, 0);
        for (t, tree) in trees.iter().enumerate() {
            let (depth, width) = tree.validate().map_err(|e| format!("tree {t}: {e}"))?;
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

    /// Read the single `TreeEnsembleClassifier` node of an ONNX model.
    /// `path` names the file in errors.
    pub fn from_model_proto(proto: &ModelProto, path: &Path) -> Result<Self, ModelError> {
        let unsupported = |message: String| ModelError::Unsupported {
            path: path.to_path_buf(),
            message,
        };
        let graph = proto
            .graph
            .as_ref()
            .ok_or_else(|| unsupported("the model has no graph".into()))?;
        let node = match graph.node.as_slice() {
            [node] if node.op_type == "TreeEnsembleClassifier" && node.domain == "ai.onnx.ml" => {
                node
            }
            nodes => {
                let ops: Vec<String> = nodes
                    .iter()
                    .map(|n| format!("{}.{}", n.domain, n.op_type))
                    .collect();
                return Err(unsupported(format!(
                    "expected a graph of exactly one ai.onnx.ml.TreeEnsembleClassifier node \
                     (scaling is done outside the graph), found {ops:?}"
                )));
            }
        };
        parse_node(node).map_err(unsupported)
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

/// Attribute lookup with type checks.
struct Attrs<'a>(HashMap<&'a str, &'a AttributeProto>);

impl<'a> Attrs<'a> {
    fn get(&self, name: &str, want: AttributeType) -> Result<Option<&'a AttributeProto>, String> {
        match self.0.get(name) {
            None => Ok(None),
            Some(a) if a.r#type == want as i32 => Ok(Some(a)),
            Some(a) => Err(format!(
                "attribute {name} has type {}, expected {}",
                AttributeType::try_from(a.r#type).map_or("unknown", |t| t.as_str_name()),
                want.as_str_name()
            )),
        }
    }

    fn require(&self, name: &str, want: AttributeType) -> Result<&'a AttributeProto, String> {
        self.get(name, want)?
            .ok_or_else(|| format!("attribute {name} is missing"))
    }

    fn ints(&self, name: &str) -> Result<&'a [i64], String> {
        Ok(&self.require(name, AttributeType::Ints)?.ints)
    }

    fn floats(&self, name: &str) -> Result<&'a [f32], String> {
        Ok(&self.require(name, AttributeType::Floats)?.floats)
    }

    fn strings(&self, name: &str) -> Result<Vec<&'a str>, String> {
        self.require(name, AttributeType::Strings)?
            .strings
            .iter()
            .map(|s| std::str::from_utf8(s).map_err(|_| format!("attribute {name}: not UTF-8")))
            .collect()
    }
}

fn parse_node(node: &NodeProto) -> Result<TreeEnsemble, String> {
    let attrs = Attrs(
        node.attribute
            .iter()
            .map(|a| (a.name.as_str(), a))
            .collect(),
    );

    // Attributes that change the semantics in ways this reader does not model.
    for a in &node.attribute {
        if a.name.ends_with("_as_tensor") {
            return Err(format!(
                "attribute {} is not supported (only the plain FLOATS attributes, which tract reads)",
                a.name
            ));
        }
    }
    if attrs.0.contains_key("classlabels_strings") {
        return Err("string class labels are not supported (classlabels_strings)".into());
    }
    if let Some(a) = attrs.get("base_values", AttributeType::Floats)?
        && a.floats.iter().any(|&v| v != 0.0)
    {
        return Err(format!(
            "non-zero base_values {:?} are not supported",
            a.floats
        ));
    }
    if let Some(a) = attrs.get("post_transform", AttributeType::String)? {
        let pt = String::from_utf8_lossy(&a.s);
        if pt != "NONE" {
            return Err(format!(
                "post_transform {pt} is not supported (leaf weights must be probabilities: NONE)"
            ));
        }
    }
    let labels = attrs.ints("classlabels_int64s")?;
    let class_labels: [i64; 2] = labels.try_into().map_err(|_| {
        format!("expected a binary classifier (2 class labels), classlabels_int64s = {labels:?}")
    })?;

    // Node arrays.
    let tree_ids = attrs.ints("nodes_treeids")?;
    let node_ids = attrs.ints("nodes_nodeids")?;
    let features = attrs.ints("nodes_featureids")?;
    let thresholds = attrs.floats("nodes_values")?;
    let modes = attrs.strings("nodes_modes")?;
    let trues = attrs.ints("nodes_truenodeids")?;
    let falses = attrs.ints("nodes_falsenodeids")?;
    let covers = attrs.get("nodes_hitrates", AttributeType::Floats)?.ok_or(
        "attribute nodes_hitrates is missing: TreeSHAP needs the node covers \
         (sklearn weighted_n_node_samples) stored there",
    )?;
    let covers = covers.floats.as_slice();
    let n_nodes = tree_ids.len();
    if n_nodes == 0 {
        return Err("the ensemble has no nodes".into());
    }
    for (name, len) in [
        ("nodes_nodeids", node_ids.len()),
        ("nodes_featureids", features.len()),
        ("nodes_values", thresholds.len()),
        ("nodes_modes", modes.len()),
        ("nodes_truenodeids", trues.len()),
        ("nodes_falsenodeids", falses.len()),
        ("nodes_hitrates", covers.len()),
    ] {
        if len != n_nodes {
            return Err(format!(
                "{name} has {len} entries, nodes_treeids has {n_nodes}"
            ));
        }
    }
    if let Some(m) = attrs.get("nodes_missing_value_tracks_true", AttributeType::Ints)?
        && m.ints.iter().any(|&v| v != 0)
    {
        return Err(
            "nodes_missing_value_tracks_true must be all 0 (inputs never hold NaN here)".into(),
        );
    }
    if covers.iter().all(|&c| c == 1.0) {
        return Err(
            "nodes_hitrates are all 1.0, i.e. the node covers were not carried over; \
             TreeSHAP needs real covers (sklearn weighted_n_node_samples)"
                .into(),
        );
    }

    // Tree sizes, then every node into its slot.
    let tree_of = |k: usize| -> Result<usize, String> {
        usize::try_from(tree_ids[k])
            .ok()
            .filter(|&t| t < n_nodes)
            .ok_or_else(|| format!("nodes_treeids[{k}] = {} is out of range", tree_ids[k]))
    };
    let mut sizes: Vec<usize> = Vec::new();
    for k in 0..n_nodes {
        let t = tree_of(k)?;
        if t >= sizes.len() {
            sizes.resize(t + 1, 0);
        }
        sizes[t] += 1;
    }
    if let Some(t) = sizes.iter().position(|&s| s == 0) {
        return Err(format!(
            "tree ids are not contiguous: tree {t} has no nodes"
        ));
    }
    let mut trees: Vec<Tree> = sizes
        .iter()
        .map(|&n| Tree {
            feature: vec![0; n],
            threshold: vec![0.0; n],
            left: vec![LEAF; n],
            right: vec![LEAF; n],
            cover: vec![0.0; n],
            value: vec![0.0; n],
        })
        .collect();
    let mut seen: Vec<Vec<bool>> = sizes.iter().map(|&n| vec![false; n]).collect();
    let mut is_leaf: Vec<Vec<bool>> = sizes.iter().map(|&n| vec![false; n]).collect();
    let id = |name: &str, v: i64, size: usize| -> Result<u32, String> {
        u32::try_from(v)
            .ok()
            .filter(|&i| (i as usize) < size)
            .ok_or_else(|| format!("{name} {v} is not a node of its tree (0..{size})"))
    };
    for k in 0..n_nodes {
        let t = tree_of(k)?;
        let size = sizes[t];
        let n = id("node id", node_ids[k], size)? as usize;
        if std::mem::replace(&mut seen[t][n], true) {
            return Err(format!("tree {t}: node {n} is defined twice"));
        }
        let tree = &mut trees[t];
        tree.cover[n] = f64::from(covers[k]);
        match modes[k] {
            "LEAF" => is_leaf[t][n] = true,
            "BRANCH_LEQ" => {
                tree.feature[n] = u32::try_from(features[k])
                    .map_err(|_| format!("tree {t} node {n}: feature id {}", features[k]))?;
                tree.threshold[n] = thresholds[k];
                tree.left[n] = id("true child", trues[k], size)?;
                tree.right[n] = id("false child", falses[k], size)?;
            }
            other => {
                return Err(format!(
                    "tree {t} node {n}: mode {other} is not supported (only BRANCH_LEQ and LEAF)"
                ));
            }
        }
    }

    // Leaf weights: the binary layout, one entry per leaf.
    let c_trees = attrs.ints("class_treeids")?;
    let c_nodes = attrs.ints("class_nodeids")?;
    let c_ids = attrs.ints("class_ids")?;
    let c_weights = attrs.floats("class_weights")?;
    let n_leaf_entries = c_trees.len();
    for (name, len) in [
        ("class_nodeids", c_nodes.len()),
        ("class_ids", c_ids.len()),
        ("class_weights", c_weights.len()),
    ] {
        if len != n_leaf_entries {
            return Err(format!(
                "{name} has {len} entries, class_treeids has {n_leaf_entries}"
            ));
        }
    }
    if let Some(k) = c_ids.iter().position(|&c| c != 0) {
        return Err(format!(
            "class_ids[{k}] = {}: only the binary layout with one P(class 1) weight per leaf \
             (every class id 0) is supported",
            c_ids[k]
        ));
    }
    let mut has_weight: Vec<Vec<bool>> = sizes.iter().map(|&n| vec![false; n]).collect();
    for k in 0..n_leaf_entries {
        let t = usize::try_from(c_trees[k])
            .ok()
            .filter(|&t| t < trees.len())
            .ok_or_else(|| format!("class_treeids[{k}] = {} is not a tree", c_trees[k]))?;
        let n = id("class node id", c_nodes[k], sizes[t])? as usize;
        if !is_leaf[t][n] {
            return Err(format!(
                "tree {t}: class weight on node {n}, which is not a LEAF"
            ));
        }
        if std::mem::replace(&mut has_weight[t][n], true) {
            return Err(format!("tree {t}: leaf {n} has two class weights"));
        }
        trees[t].value[n] = f64::from(c_weights[k]);
    }
    for (t, leaves) in is_leaf.iter().enumerate() {
        if let Some(n) = (0..leaves.len()).find(|&n| leaves[n] && !has_weight[t][n]) {
            return Err(format!("tree {t}: leaf {n} has no class weight"));
        }
    }

    TreeEnsemble::new(trees, class_labels)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A one-split model proto in the skl2onnx layout; tests mutate it.
    pub(crate) fn stump_proto() -> ModelProto {
        use tract_onnx::pb::GraphProto;
        fn ints(name: &str, v: &[i64]) -> AttributeProto {
            AttributeProto {
                name: name.into(),
                r#type: AttributeType::Ints as i32,
                ints: v.to_vec(),
                ..Default::default()
            }
        }
        fn floats(name: &str, v: &[f32]) -> AttributeProto {
            AttributeProto {
                name: name.into(),
                r#type: AttributeType::Floats as i32,
                floats: v.to_vec(),
                ..Default::default()
            }
        }
        fn strings(name: &str, v: &[&str]) -> AttributeProto {
            AttributeProto {
                name: name.into(),
                r#type: AttributeType::Strings as i32,
                strings: v.iter().map(|s| s.as_bytes().to_vec()).collect(),
                ..Default::default()
            }
        }
        let node = NodeProto {
            op_type: "TreeEnsembleClassifier".into(),
            domain: "ai.onnx.ml".into(),
            attribute: vec![
                ints("classlabels_int64s", &[0, 1]),
                ints("nodes_treeids", &[0, 0, 0]),
                ints("nodes_nodeids", &[0, 1, 2]),
                ints("nodes_featureids", &[1, 0, 0]),
                floats("nodes_values", &[0.5, 0.0, 0.0]),
                strings("nodes_modes", &["BRANCH_LEQ", "LEAF", "LEAF"]),
                ints("nodes_truenodeids", &[1, 0, 0]),
                ints("nodes_falsenodeids", &[2, 0, 0]),
                ints("nodes_missing_value_tracks_true", &[0, 0, 0]),
                floats("nodes_hitrates", &[10.0, 4.0, 6.0]),
                ints("class_treeids", &[0, 0]),
                ints("class_nodeids", &[1, 2]),
                ints("class_ids", &[0, 0]),
                floats("class_weights", &[0.25, 0.75]),
                AttributeProto {
                    name: "post_transform".into(),
                    r#type: AttributeType::String as i32,
                    s: b"NONE".to_vec(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        ModelProto {
            graph: Some(GraphProto {
                node: vec![node],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn attr<'a>(p: &'a mut ModelProto, name: &str) -> &'a mut AttributeProto {
        p.graph.as_mut().unwrap().node[0]
            .attribute
            .iter_mut()
            .find(|a| a.name == name)
            .unwrap()
    }

    fn parse(p: &ModelProto) -> Result<TreeEnsemble, ModelError> {
        TreeEnsemble::from_model_proto(p, Path::new("m.onnx"))
    }

    #[test]
    fn stump_parses_and_predicts() {
        let e = parse(&stump_proto()).unwrap();
        assert_eq!(e.trees().len(), 1);
        assert_eq!(e.n_features(), 2);
        assert_eq!(e.max_depth(), 1);
        assert_eq!(e.class_labels(), [0, 1]);
        assert_eq!(e.predict_row(&[9.0, 0.5]), 0.25); // <= goes left
        assert_eq!(e.predict_row(&[9.0, 0.50001]), 0.75);
        assert_eq!(e.predict_row(&[9.0]), 0.75); // missing feature: false branch
        assert_eq!(e.predict_row_f32(&[9.0, 0.5]), 0.25f32);
    }

    #[test]
    fn unsupported_layouts_are_rejected_with_a_reason() {
        type Mutate = fn(&mut ModelProto);
        let cases: [(&str, Mutate); 9] = [
            ("mode BRANCH_LT", |p| {
                attr(p, "nodes_modes").strings[0] = b"BRANCH_LT".to_vec()
            }),
            ("nodes_missing_value_tracks_true must be all 0", |p| {
                attr(p, "nodes_missing_value_tracks_true").ints[0] = 1
            }),
            ("covers were not carried over", |p| {
                attr(p, "nodes_hitrates").floats = vec![1.0; 3]
            }),
            ("nodes_hitrates is missing", |p| {
                let a = attr(p, "nodes_hitrates");
                a.name = "something_else".into();
            }),
            ("post_transform LOGISTIC", |p| {
                attr(p, "post_transform").s = b"LOGISTIC".to_vec()
            }),
            ("2 class labels", |p| {
                attr(p, "classlabels_int64s").ints = vec![0, 1, 2]
            }),
            ("class_ids[1] = 1", |p| attr(p, "class_ids").ints[1] = 1),
            ("cover 10 is not the sum", |p| {
                attr(p, "nodes_hitrates").floats[2] = 7.0
            }),
            ("has type INTS, expected FLOATS", |p| {
                let a = attr(p, "nodes_values");
                a.r#type = AttributeType::Ints as i32;
            }),
        ];
        for (want, mutate) in cases {
            let mut p = stump_proto();
            mutate(&mut p);
            let err = parse(&p).unwrap_err().to_string();
            assert!(err.starts_with("m.onnx: unsupported model"), "{err}");
            assert!(err.contains(want), "expected {want:?} in {err}");
        }
    }

    #[test]
    fn other_graph_nodes_are_rejected() {
        let mut p = stump_proto();
        let g = p.graph.as_mut().unwrap();
        g.node.insert(
            0,
            NodeProto {
                op_type: "Scaler".into(),
                domain: "ai.onnx.ml".into(),
                ..Default::default()
            },
        );
        let err = parse(&p).unwrap_err().to_string();
        assert!(err.contains("ai.onnx.ml.Scaler"), "{err}");
    }

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
                .contains("cover")
        );
        assert!(TreeEnsemble::new(vec![], [0, 1]).is_err());
    }
}
