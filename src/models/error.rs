//! [`ModelError`]: everything that can go wrong loading or running a model.
//!
//! Load-time variants carry the path of the file at fault and say what is
//! wrong with it, so an operator who points the server at a bad model gets a
//! message that can be acted on without reading the code. Run-time input
//! problems are [`ModelError::InvalidInput`] (a client error: the REST API maps
//! it to a 4xx); [`ModelError::Inference`] is a failure inside tract on input
//! that passed validation (a server error).

use std::path::PathBuf;

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
    /// chain is kept as text: it is an `anyhow` chain, not a typed error).
    #[error("{}: cannot load the ONNX model: {message}", path.display())]
    Onnx { path: PathBuf, message: String },

    /// The sidecar JSON is malformed, lacks a key, or is internally inconsistent.
    #[error("{}: invalid model sidecar: {message}", path.display())]
    Sidecar { path: PathBuf, message: String },

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

    /// A feature row handed to `predict`/`explain` is unusable: wrong number
    /// of values or a non-finite value.
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// tract failed while running a validated batch.
    #[error("inference failed: {0}")]
    Inference(String),
}
