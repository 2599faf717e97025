//! Reading a [`TreeEnsemble`] out of the ONNX protobuf: the attributes of
//! the one `ai.onnx.ml.TreeEnsembleClassifier` node, as flat per-tree arrays.
//!
//! tract runs the model (see [`onnx`](super::onnx)) but does not expose its
//! trees, and TreeSHAP needs them (structure, thresholds, leaf values and node
//! covers). So the same protobuf tract parses is read once more here, through
//! tract-onnx's own prost types (no second protobuf stack), and validated
//! against exactly the layout that skl2onnx writes and `models/README.md`
//! documents:
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
use super::ensemble::{LEAF, Tree, TreeEnsemble};
use super::error::LayoutError;

impl TreeEnsemble {
    /// Read the single `TreeEnsembleClassifier` node of an ONNX model.
    /// `path` names the file in errors.
    pub fn from_model_proto(proto: &ModelProto, path: &Path) -> Result<Self, ModelError> {
        read_ensemble(proto).map_err(|problem| ModelError::Layout {
            path: path.to_path_buf(),
            problem,
        })
    }
}

/// The graph must be exactly the one tree-ensemble node.
fn read_ensemble(proto: &ModelProto) -> Result<TreeEnsemble, LayoutError> {
    let graph = proto.graph.as_ref().ok_or(LayoutError::NoGraph)?;
    match graph.node.as_slice() {
        [node] if node.op_type == "TreeEnsembleClassifier" && node.domain == "ai.onnx.ml" => {
            parse_node(node)
        }
        nodes => Err(LayoutError::OtherNodes {
            ops: nodes
                .iter()
                .map(|n| format!("{}.{}", n.domain, n.op_type))
                .collect(),
        }),
    }
}

/// Attribute lookup with type checks.
struct Attrs<'a>(HashMap<&'a str, &'a AttributeProto>);

impl<'a> Attrs<'a> {
    fn get(
        &self,
        name: &str,
        want: AttributeType,
    ) -> Result<Option<&'a AttributeProto>, LayoutError> {
        match self.0.get(name) {
            None => Ok(None),
            Some(a) if a.r#type == want as i32 => Ok(Some(a)),
            Some(a) => Err(LayoutError::AttributeType {
                name: name.to_string(),
                found: AttributeType::try_from(a.r#type).map_or("unknown", |t| t.as_str_name()),
                expected: want.as_str_name(),
            }),
        }
    }

    fn require(&self, name: &str, want: AttributeType) -> Result<&'a AttributeProto, LayoutError> {
        self.get(name, want)?
            .ok_or_else(|| LayoutError::MissingAttribute {
                name: name.to_string(),
            })
    }

    fn ints(&self, name: &str) -> Result<&'a [i64], LayoutError> {
        Ok(&self.require(name, AttributeType::Ints)?.ints)
    }

    fn floats(&self, name: &str) -> Result<&'a [f32], LayoutError> {
        Ok(&self.require(name, AttributeType::Floats)?.floats)
    }

    fn strings(&self, name: &str) -> Result<Vec<&'a str>, LayoutError> {
        self.require(name, AttributeType::Strings)?
            .strings
            .iter()
            .map(|s| {
                std::str::from_utf8(s).map_err(|_| LayoutError::NotUtf8 {
                    name: name.to_string(),
                })
            })
            .collect()
    }
}

fn parse_node(node: &NodeProto) -> Result<TreeEnsemble, LayoutError> {
    let attrs = Attrs(
        node.attribute
            .iter()
            .map(|a| (a.name.as_str(), a))
            .collect(),
    );

    // Attributes that change the semantics in ways this reader does not model.
    for a in &node.attribute {
        if a.name.ends_with("_as_tensor") {
            return Err(LayoutError::NotSupported(format!(
                "attribute {} is not supported (only the plain FLOATS attributes, which tract reads)",
                a.name
            )));
        }
    }
    if attrs.0.contains_key("classlabels_strings") {
        return Err(LayoutError::NotSupported(
            "string class labels are not supported (classlabels_strings)".into(),
        ));
    }
    if let Some(a) = attrs.get("base_values", AttributeType::Floats)?
        && a.floats.iter().any(|&v| v != 0.0)
    {
        return Err(LayoutError::NotSupported(format!(
            "non-zero base_values {:?} are not supported",
            a.floats
        )));
    }
    if let Some(a) = attrs.get("post_transform", AttributeType::String)? {
        let pt = String::from_utf8_lossy(&a.s);
        if pt != "NONE" {
            return Err(LayoutError::NotSupported(format!(
                "post_transform {pt} is not supported (leaf weights must be probabilities: NONE)"
            )));
        }
    }
    let labels = attrs.ints("classlabels_int64s")?;
    let class_labels: [i64; 2] = labels.try_into().map_err(|_| {
        LayoutError::NotSupported(format!(
            "expected a binary classifier (2 class labels), classlabels_int64s = {labels:?}"
        ))
    })?;

    // Node arrays.
    let tree_ids = attrs.ints("nodes_treeids")?;
    let node_ids = attrs.ints("nodes_nodeids")?;
    let features = attrs.ints("nodes_featureids")?;
    let thresholds = attrs.floats("nodes_values")?;
    let modes = attrs.strings("nodes_modes")?;
    let trues = attrs.ints("nodes_truenodeids")?;
    let falses = attrs.ints("nodes_falsenodeids")?;
    let covers = attrs
        .get("nodes_hitrates", AttributeType::Floats)?
        .ok_or(LayoutError::MissingCovers)?;
    let covers = covers.floats.as_slice();
    let n_nodes = tree_ids.len();
    if n_nodes == 0 {
        return Err(LayoutError::Malformed("the ensemble has no nodes".into()));
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
            return Err(LayoutError::Malformed(format!(
                "{name} has {len} entries, nodes_treeids has {n_nodes}"
            )));
        }
    }
    if let Some(m) = attrs.get("nodes_missing_value_tracks_true", AttributeType::Ints)?
        && m.ints.iter().any(|&v| v != 0)
    {
        return Err(LayoutError::NotSupported(
            "nodes_missing_value_tracks_true must be all 0 (inputs never hold NaN here)".into(),
        ));
    }
    if covers.iter().all(|&c| c == 1.0) {
        return Err(LayoutError::NotSupported(
            "nodes_hitrates are all 1.0, i.e. the node covers were not carried over; \
             TreeSHAP needs real covers (sklearn weighted_n_node_samples)"
                .into(),
        ));
    }

    // Tree sizes, then every node into its slot.
    let tree_of = |k: usize| -> Result<usize, LayoutError> {
        usize::try_from(tree_ids[k])
            .ok()
            .filter(|&t| t < n_nodes)
            .ok_or_else(|| {
                LayoutError::Malformed(format!(
                    "nodes_treeids[{k}] = {} is out of range",
                    tree_ids[k]
                ))
            })
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
        return Err(LayoutError::Malformed(format!(
            "tree ids are not contiguous: tree {t} has no nodes"
        )));
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
    let id = |name: &str, v: i64, size: usize| -> Result<u32, LayoutError> {
        u32::try_from(v)
            .ok()
            .filter(|&i| (i as usize) < size)
            .ok_or_else(|| {
                LayoutError::Malformed(format!("{name} {v} is not a node of its tree (0..{size})"))
            })
    };
    for k in 0..n_nodes {
        let t = tree_of(k)?;
        let size = sizes[t];
        let n = id("node id", node_ids[k], size)? as usize;
        if std::mem::replace(&mut seen[t][n], true) {
            return Err(LayoutError::Malformed(format!(
                "tree {t}: node {n} is defined twice"
            )));
        }
        let tree = &mut trees[t];
        tree.cover[n] = f64::from(covers[k]);
        match modes[k] {
            "LEAF" => is_leaf[t][n] = true,
            "BRANCH_LEQ" => {
                tree.feature[n] = u32::try_from(features[k]).map_err(|_| {
                    LayoutError::Malformed(format!("tree {t} node {n}: feature id {}", features[k]))
                })?;
                tree.threshold[n] = thresholds[k];
                tree.left[n] = id("true child", trues[k], size)?;
                tree.right[n] = id("false child", falses[k], size)?;
            }
            other => {
                return Err(LayoutError::NotSupported(format!(
                    "tree {t} node {n}: mode {other} is not supported (only BRANCH_LEQ and LEAF)"
                )));
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
            return Err(LayoutError::Malformed(format!(
                "{name} has {len} entries, class_treeids has {n_leaf_entries}"
            )));
        }
    }
    if let Some(k) = c_ids.iter().position(|&c| c != 0) {
        return Err(LayoutError::NotSupported(format!(
            "class_ids[{k}] = {}: only the binary layout with one P(class 1) weight per leaf \
             (every class id 0) is supported",
            c_ids[k]
        )));
    }
    let mut has_weight: Vec<Vec<bool>> = sizes.iter().map(|&n| vec![false; n]).collect();
    for k in 0..n_leaf_entries {
        let t = usize::try_from(c_trees[k])
            .ok()
            .filter(|&t| t < trees.len())
            .ok_or_else(|| {
                LayoutError::Malformed(format!("class_treeids[{k}] = {} is not a tree", c_trees[k]))
            })?;
        let n = id("class node id", c_nodes[k], sizes[t])? as usize;
        if !is_leaf[t][n] {
            return Err(LayoutError::Malformed(format!(
                "tree {t}: class weight on node {n}, which is not a LEAF"
            )));
        }
        if std::mem::replace(&mut has_weight[t][n], true) {
            return Err(LayoutError::Malformed(format!(
                "tree {t}: leaf {n} has two class weights"
            )));
        }
        trees[t].value[n] = f64::from(c_weights[k]);
    }
    for (t, leaves) in is_leaf.iter().enumerate() {
        if let Some(n) = (0..leaves.len()).find(|&n| leaves[n] && !has_weight[t][n]) {
            return Err(LayoutError::Malformed(format!(
                "tree {t}: leaf {n} has no class weight"
            )));
        }
    }

    Ok(TreeEnsemble::new(trees, class_labels)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-split model proto in the skl2onnx layout; tests mutate it.
    fn stump_proto() -> ModelProto {
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
}
