//! Risk models: the diabetes random forest, loaded from ONNX, run with tract,
//! explained with TreeSHAP.
//!
//! This is the model layer shared by the REST API and ML scoring in SQL, so it
//! is synchronous, allocation-light and `Send + Sync`: a [`RiskModel`] is
//! loaded once (validated against its sidecar JSON) and then shared behind an
//! `Arc` by any number of tasks.
//!
//! - [`metadata`]: the sidecar (feature order, f64 scaler, ranges, risk bands).
//! - [`onnx`]: [`RiskModel`], batch prediction through tract plus explanations.
//! - [`ensemble`]: the forest's trees, validated, and their predictions.
//! - [`ensemble_proto`]: those trees read from the same ONNX protobuf.
//! - [`treeshap`]: exact path-dependent TreeSHAP over those trees (Algorithm 2).
//! - [`fast_treeshap`]: the same values from tables of merged subtrees built at load.
//! - [`error`]: [`ModelError`], and the typed problems it reports for a file.
//!
//! The file formats and their exact semantics are documented in
//! `models/README.md`; the reference values the tests compare against are in
//! `models/fixtures/reference.json`.

pub mod ensemble;
pub mod ensemble_proto;
pub mod error;
pub mod fast_treeshap;
pub mod metadata;
pub mod onnx;
pub mod sql;
pub mod treeshap;

pub use ensemble::{Tree, TreeEnsemble};
pub use error::{EnsembleError, LayoutError, ModelError, SidecarError, TreeError};
pub use fast_treeshap::FastTreeShap;
pub use metadata::{FeatureRange, ModelMetadata, RiskBand, Scaler};
pub use onnx::{Explanation, RiskModel};
pub use sql::{ModelFunction, ModelRuntime};
pub use treeshap::{expected_value, shap_values};
