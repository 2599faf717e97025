//! [`ModelError`]: everything that can go wrong loading or running a model.
//!
//! Load-time variants carry the path of the file at fault and say what is
//! wrong with it, so an operator who points the server at a bad model gets a
//! message that can be acted on without reading the code. Run-time input
//! problems are [`ModelError::InvalidInput`] (a client error: the REST API maps
//! it to a 4xx); [`ModelError::Inference`] is a failure inside tract on input
//! that passed validation (a server error).
//!
//! The problems found inside a file before its path is attached have their
//! own types: [`SidecarError`] (the sidecar JSON), [`LayoutError`] (the ONNX
//! tree-ensemble node), and [`EnsembleError`] / [`TreeError`] (the trees'
//! structure, also reported for hand-built trees).

use std::path::PathBuf;

use super::ensemble::MAX_DEPTH;

/// Errors from loading, validating and running a [`RiskModel`](super::RiskModel).
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A model or sidecar file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// tract could not decode, analyse or plan the ONNX file (tract's error
    /// chain is kept as text: tract's errors are not typed).
    #[error("{}: cannot load the ONNX model: {message}", path.display())]
    Onnx { path: PathBuf, message: String },

    /// The sidecar JSON is malformed, lacks a key, or is internally inconsistent.
    #[error("{}: invalid model sidecar: {problem}", path.display())]
    Sidecar {
        path: PathBuf,
        problem: SidecarError,
    },

    /// The ONNX model and its sidecar disagree (input width vs feature count,
    /// feature names, class labels, version, base value).
    #[error(
        "model {} and its sidecar {} do not match: {message}",
        onnx.display(),
        sidecar.display()
    )]
    Mismatch {
        onnx: PathBuf,
        sidecar: PathBuf,
        message: String,
    },

    /// The ONNX graph is well formed but outside what this crate supports
    /// (missing or unsupported attributes, non-binary classifier, no node
    /// covers for TreeSHAP, other ops in the graph).
    #[error("{}: unsupported model: {message}", path.display())]
    Unsupported { path: PathBuf, message: String },

    /// The graph's tree-ensemble node is not in the layout the tree reader
    /// supports, or its trees are malformed (same text as
    /// [`ModelError::Unsupported`]; the problem stays typed).
    #[error("{}: unsupported model: {problem}", path.display())]
    Layout { path: PathBuf, problem: LayoutError },

    /// A feature row handed to `predict`/`explain` is unusable: wrong number
    /// of values or a non-finite value.
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// tract failed while running a validated batch.
    #[error("inference failed: {0}")]
    Inference(String),
}

/// What is wrong with a sidecar's content; [`ModelError::Sidecar`] adds the
/// file. Grouped by kind; each message names the JSON key at fault.
#[derive(Debug, thiserror::Error)]
pub enum SidecarError {
    /// Not JSON, or not the sidecar's shape (serde names the line and column).
    #[error(transparent)]
    Json(#[from] serde_json::Error),

    /// A key that may be absent in the JSON shape but is required.
    #[error("{key} is missing: {why}")]
    Missing {
        key: &'static str,
        why: &'static str,
    },

    /// A value outside what the key allows (empty, not finite, out of range).
    #[error("{0}")]
    Invalid(String),

    /// Keys that disagree with each other (lengths, feature names, band
    /// boundaries).
    #[error("{0}")]
    Inconsistent(String),
}

/// Why the ONNX `TreeEnsembleClassifier` could not be read into trees;
/// [`ModelError::Layout`] adds the file.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// The model has no graph at all.
    #[error("the model has no graph")]
    NoGraph,

    /// The graph holds other nodes than the one tree ensemble (`ops` lists
    /// them as `domain.op_type`).
    #[error(
        "expected a graph of exactly one ai.onnx.ml.TreeEnsembleClassifier node \
         (scaling is done outside the graph), found {ops:?}"
    )]
    OtherNodes { ops: Vec<String> },

    /// A required attribute is absent.
    #[error("attribute {name} is missing")]
    MissingAttribute { name: String },

    /// `nodes_hitrates` is absent: TreeSHAP cannot work without covers.
    #[error(
        "attribute nodes_hitrates is missing: TreeSHAP needs the node covers \
         (sklearn weighted_n_node_samples) stored there"
    )]
    MissingCovers,

    /// An attribute has another protobuf type than the reader expects.
    #[error("attribute {name} has type {found}, expected {expected}")]
    AttributeType {
        name: String,
        found: &'static str,
        expected: &'static str,
    },

    /// A STRINGS attribute holds bytes that are not UTF-8.
    #[error("attribute {name}: not UTF-8")]
    NotUtf8 { name: String },

    /// Well formed, but with semantics the reader does not model
    /// (post-transforms, base values, string labels, other node modes...).
    #[error("{0}")]
    NotSupported(String),

    /// Attributes that contradict each other (array lengths, ids out of
    /// range, nodes defined twice, leaves without weights).
    #[error("{0}")]
    Malformed(String),

    /// The trees read are not a valid ensemble.
    #[error(transparent)]
    Ensemble(#[from] EnsembleError),
}

/// Why trees do not form a valid [`TreeEnsemble`](super::TreeEnsemble).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EnsembleError {
    #[error("the ensemble has no trees")]
    NoTrees,

    /// Tree number `tree` breaks an invariant.
    #[error("tree {tree}: {problem}")]
    Tree { tree: usize, problem: TreeError },
}

/// An invariant of one [`Tree`](super::Tree) that does not hold; everything
/// that walks trees (prediction, TreeSHAP) relies on these.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TreeError {
    #[error("has no nodes")]
    NoNodes,

    /// The parallel arrays disagree on the number of nodes.
    #[error("{array} has {len} entries for {nodes} nodes")]
    ArrayLength {
        array: &'static str,
        len: usize,
        nodes: usize,
    },

    #[error("node {node}: cover {cover} is not positive")]
    CoverNotPositive { node: usize, cover: f64 },

    #[error("node {node}: cover {cover} is not the sum of its children's ({sum})")]
    CoverNotSum { node: usize, cover: f64, sum: f64 },

    #[error("node {node}: only one child")]
    OneChild { node: usize },

    #[error("node {node}: leaf value is not finite")]
    LeafValue { node: usize },

    #[error("node {node}: threshold is NaN")]
    NanThreshold { node: usize },

    /// Children must come after their parent (no cycles) and exist.
    #[error("node {node}: child id {child} is not in {}..{nodes}", node + 1)]
    ChildOutOfOrder {
        node: usize,
        child: usize,
        nodes: usize,
    },

    #[error("node {node}: both children are node {child}")]
    SameChildren { node: usize, child: usize },

    #[error("node {node} has {parents} parents (expected exactly 1)")]
    Parents { node: usize, parents: u32 },

    #[error("depth {depth} exceeds {MAX_DEPTH}")]
    TooDeep { depth: usize },
}
