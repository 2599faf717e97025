//! [`RiskModel`]: the ONNX forest planned once with tract, its sidecar, and
//! the same trees parsed for TreeSHAP.
//!
//! Loading checks that the three agree (input width and feature names,
//! class labels, base value, and a tract-vs-trees prediction on a few rows),
//! so a model that loads is one whose predictions and explanations are
//! consistent. After loading, everything is `&self` and lock-free: tract's
//! `SimplePlan::run` takes `&Arc<Self>` and builds a fresh per-call state, so
//! one `Arc<RiskModel>` serves any number of concurrent tasks.
//!
//! Three tract facts shape the code:
//! * the graph takes *scaled* features (tract has no `ai.onnx.ml.Scaler`), so
//!   scaling happens here, in f64 — see [`ModelMetadata::scale`];
//! * tract's `label` output is wrong for this binary layout (always 0), so
//!   only `probabilities` is planned and the label is derived from column 1
//!   ([`ModelMetadata::label`]);
//! * tract 0.23.9's tree-ensemble kernel finds each reached leaf's weight with
//!   `outer_iter().skip(leaf_index)` over the ensemble-wide leaf array, and
//!   ndarray's axis iterator has no O(1) `nth`: every row costs
//!   Σ_trees (index of the reached leaf), ~3·10⁵ iterator steps for this
//!   forest, i.e. milliseconds per row even optimized. [`RiskModel::predict`]
//!   runs tract as specified; [`RiskModel::predict_trees`] gives the
//!   bit-identical result from the parsed trees in microseconds.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use tract_onnx::pb::ModelProto;
use tract_onnx::pb::tensor_shape_proto::dimension::Value as Dim;
use tract_onnx::pb::type_proto::Value as TypeValue;
use tract_onnx::prelude::{
    DatumType, Framework, InferenceFact, InferenceModelExt, IntoRunnable, Tensor, ToDim,
    TypedRunnableModel, tract_ndarray, tvec,
};

use super::ensemble::TreeEnsemble;
use super::fast_treeshap::FastTreeShap;
use super::{ModelError, ModelMetadata, treeshap};

/// ONNX `TensorProto.DataType.FLOAT`.
const ONNX_FLOAT: i32 = 1;

/// Tolerance of the load-time check between tract and the parsed trees:
/// tract sums the f32 leaf weights in f32, the trees in f64 (|diff| < 1e-6).
const SELF_CHECK_TOLERANCE: f64 = 1e-5;

/// A loaded, validated binary risk model.
pub struct RiskModel {
    plan: Arc<TypedRunnableModel>,
    metadata: ModelMetadata,
    ensemble: TreeEnsemble,
    base_value: f64,
    /// Exact TreeSHAP with per-leaf tables (none: Algorithm 2 explains).
    fast: Option<FastTreeShap>,
}

// The model sits in an `Arc` in server state and is called from many tasks.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<RiskModel>();
};

impl std::fmt::Debug for RiskModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RiskModel")
            .field("name", &self.metadata.name)
            .field("version", &self.metadata.version)
            .field("n_features", &self.n_features())
            .field("n_trees", &self.ensemble.trees().len())
            .finish_non_exhaustive()
    }
}

/// One row's prediction and its additive explanation:
/// `base_value + Σ contributions ≈ probability`.
///
/// `probability` comes from tract (f32 accumulation) while the contributions
/// are exact f64 TreeSHAP over the same trees, so the sum matches to ~1e-6,
/// not bit for bit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    /// P(positive class), as [`RiskModel::predict`] returns it.
    pub probability: f64,
    /// TreeSHAP expected value (the mean prediction over training covers).
    pub base_value: f64,
    /// One SHAP value per feature, in feature order.
    pub contributions: Vec<f64>,
}

impl RiskModel {
    /// Load `onnx_path` and its sidecar: the file next to it with the same
    /// stem and a `.json` extension (`diabetes_rf.onnx` → `diabetes_rf.json`).
    pub fn load(onnx_path: &Path) -> Result<Self, ModelError> {
        Self::load_with_sidecar(onnx_path, &onnx_path.with_extension("json"))
    }

    /// Load an ONNX model with an explicitly named sidecar.
    pub fn load_with_sidecar(onnx_path: &Path, sidecar_path: &Path) -> Result<Self, ModelError> {
        let bytes = std::fs::read(onnx_path).map_err(|source| ModelError::Read {
            path: onnx_path.to_path_buf(),
            source,
        })?;
        let onnx_error = |e: tract_onnx::prelude::TractError| ModelError::Onnx {
            path: onnx_path.to_path_buf(),
            message: format!("{e:#}"),
        };
        let onnx = tract_onnx::onnx();
        let proto = onnx
            .proto_model_for_read(&mut bytes.as_slice())
            .map_err(onnx_error)?;
        let metadata = ModelMetadata::from_file(sidecar_path)?;
        let ensemble = TreeEnsemble::from_model_proto(&proto, onnx_path)?;
        let base_value = treeshap::expected_value(&ensemble);

        let files = Files {
            onnx: onnx_path,
            sidecar: sidecar_path,
        };
        files.check(&proto, &ensemble, &metadata, base_value)?;
        files.check_digest(&bytes, &metadata)?;

        // Plan only `probabilities` (the classifier's second output): tract's
        // `label` is wrong here and computing it would be wasted work.
        let probabilities = proto
            .graph
            .as_ref()
            .and_then(|g| g.node.first())
            .and_then(|n| n.output.get(1))
            .ok_or_else(|| files.unsupported("the classifier has no probabilities output"))?;
        let mut model = onnx.parse(&proto, None).map_err(onnx_error)?.model;
        model
            .select_outputs_by_name([probabilities])
            .map_err(onnx_error)?;
        // A symbolic batch dimension: one plan serves every batch size, so a
        // call never re-plans.
        let batch = model.sym("N");
        let fact = InferenceFact::dt_shape(
            DatumType::F32,
            tvec![batch.to_dim(), metadata.n_features().to_dim()],
        );
        model.set_input_fact(0, fact).map_err(onnx_error)?;
        let plan = model
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .map_err(onnx_error)?;

        let fast = FastTreeShap::new(&ensemble);
        let model = RiskModel {
            plan,
            metadata,
            ensemble,
            base_value,
            fast,
        };
        model.self_check(&files)?;
        Ok(model)
    }

    /// The sidecar metadata (feature names, ranges, risk bands, ...).
    pub fn metadata(&self) -> &ModelMetadata {
        &self.metadata
    }

    /// The parsed trees (what TreeSHAP runs on).
    pub fn ensemble(&self) -> &TreeEnsemble {
        &self.ensemble
    }

    /// Number of input features per row.
    pub fn n_features(&self) -> usize {
        self.metadata.n_features()
    }

    /// TreeSHAP base value (expected model output), computed from the trees.
    pub fn base_value(&self) -> f64 {
        self.base_value
    }

    /// P(positive) for each row of `rows`: raw (unscaled) features,
    /// row-major, [`n_features`](Self::n_features) values per row.
    ///
    /// The whole batch goes through tract in one run. Values must be finite;
    /// range checks against [`ModelMetadata::feature_ranges`] are the
    /// caller's business (the API reports them per field). An empty slice
    /// gives an empty result without running tract.
    pub fn predict(&self, rows: &[f64]) -> Result<Vec<f64>, ModelError> {
        let n_rows = self.check_rows(rows)?;
        if n_rows == 0 {
            return Ok(Vec::new());
        }
        self.run_scaled(self.metadata.scale(rows), n_rows)
    }

    /// Same contract and bit-identical results as [`predict`](Self::predict),
    /// computed from the parsed trees instead of tract: f32 leaf weights summed
    /// in an f32 accumulator in tree order, which is exactly what tract's
    /// kernel does (checked on all 768 reference rows), without its
    /// per-row walk over the whole leaf table. Microseconds per row.
    pub fn predict_trees(&self, rows: &[f64]) -> Result<Vec<f64>, ModelError> {
        let n = self.n_features();
        self.check_rows(rows)?;
        let scaled = self.metadata.scale(rows);
        Ok(scaled
            .chunks_exact(n)
            .map(|row| f64::from(self.ensemble.predict_row_f32(row)))
            .collect())
    }

    /// Probability and per-feature SHAP contributions for one raw row.
    pub fn explain(&self, raw: &[f64]) -> Result<Explanation, ModelError> {
        if raw.len() != self.n_features() {
            return Err(ModelError::InvalidInput(format!(
                "expected one row of {} features ({}), got {} values",
                self.n_features(),
                self.metadata.feature_names.join(", "),
                raw.len()
            )));
        }
        self.check_rows(raw)?;
        let scaled = self.metadata.scale(raw);
        let contributions = match &self.fast {
            Some(fast) => fast.shap_values(&scaled),
            None => treeshap::shap_values(&self.ensemble, &scaled),
        };
        // The parsed trees give tract's probability bit for bit (checked at
        // load), without tract's scan of every leaf.
        let probability = f64::from(self.ensemble.predict_row_f32(&scaled));
        Ok(Explanation {
            probability,
            base_value: self.base_value,
            contributions,
        })
    }

    /// [`explain`](Self::explain) for every row of a row-major batch of raw
    /// rows, tree by tree over the whole batch (each tree's tables are read
    /// once for all rows).
    pub fn explain_batch(&self, rows: &[f64]) -> Result<Vec<Explanation>, ModelError> {
        let n = self.n_features();
        self.check_rows(rows)?;
        let scaled = self.metadata.scale(rows);
        let contributions = match &self.fast {
            Some(fast) => fast.shap_values_batch(&scaled, n),
            None => scaled
                .chunks_exact(n)
                .map(|row| treeshap::shap_values(&self.ensemble, row))
                .collect(),
        };
        Ok(scaled
            .chunks_exact(n)
            .zip(contributions)
            .map(|(row, contributions)| Explanation {
                probability: f64::from(self.ensemble.predict_row_f32(row)),
                base_value: self.base_value,
                contributions,
            })
            .collect())
    }

    /// Whether explanations use the precomputed tables ([`FastTreeShap`]).
    pub fn has_fast_explainer(&self) -> bool {
        self.fast.is_some()
    }

    /// Validate a row-major batch; returns the number of rows.
    fn check_rows(&self, rows: &[f64]) -> Result<usize, ModelError> {
        let n = self.n_features();
        if !rows.len().is_multiple_of(n) {
            return Err(ModelError::InvalidInput(format!(
                "{} values is not a whole number of rows of {n} features ({})",
                rows.len(),
                self.metadata.feature_names.join(", ")
            )));
        }
        if let Some(k) = rows.iter().position(|v| !v.is_finite()) {
            let name = &self.metadata.feature_names[k % n];
            return Err(ModelError::InvalidInput(format!(
                "row {}: {name} is {} (values must be finite)",
                k / n,
                rows[k]
            )));
        }
        Ok(rows.len() / n)
    }

    /// One tract run over `n_rows` scaled rows; column 1 of `probabilities`.
    fn run_scaled(&self, scaled: Vec<f32>, n_rows: usize) -> Result<Vec<f64>, ModelError> {
        let failed = |e: tract_onnx::prelude::TractError| ModelError::Inference(format!("{e:#}"));
        let input = tract_ndarray::Array2::from_shape_vec((n_rows, self.n_features()), scaled)
            .map_err(|e| ModelError::Inference(e.to_string()))?;
        let outputs = self
            .plan
            .run(tvec![Tensor::from(input).into()])
            .map_err(failed)?;
        let probabilities = outputs
            .first()
            .ok_or_else(|| ModelError::Inference("tract returned no output".into()))?;
        if probabilities.shape() != [n_rows, 2] {
            return Err(ModelError::Inference(format!(
                "probabilities has shape {:?}, expected [{n_rows}, 2]",
                probabilities.shape()
            )));
        }
        let values = probabilities
            .try_as_plain_ram()
            .and_then(|v| v.as_slice::<f32>())
            .map_err(failed)?;
        Ok(values.chunks_exact(2).map(|p| f64::from(p[1])).collect())
    }

    /// tract and the parsed trees must agree, or explanations would describe
    /// a different model than the one predicting. Checked on scaled rows at
    /// the mean and one standard deviation either side.
    fn self_check(&self, files: &Files) -> Result<(), ModelError> {
        let n = self.n_features();
        let rows: Vec<f32> = [0.0f32, -1.0, 1.0]
            .iter()
            .flat_map(|&v| std::iter::repeat_n(v, n))
            .collect();
        let tract = self
            .run_scaled(rows.clone(), 3)
            .map_err(|e| files.onnx_error(format!("test run failed: {e}")))?;
        for (row, p) in rows.chunks_exact(n).zip(tract) {
            let trees = self.ensemble.predict_row(row);
            if (trees - p).abs() > SELF_CHECK_TOLERANCE {
                return Err(files.onnx_error(format!(
                    "tract predicts {p} but the parsed trees give {trees} for scaled row {row:?}"
                )));
            }
            // The tables explain as Algorithm 2 does (a broken invariant
            // would show here, not in a clinician's chart).
            if let Some(fast) = &self.fast {
                let (got, want) = (
                    fast.shap_values(row),
                    treeshap::shap_values(&self.ensemble, row),
                );
                if let Some((g, w)) = got.iter().zip(&want).find(|(g, w)| (*g - *w).abs() > 1e-9) {
                    return Err(files.onnx_error(format!(
                        "the precomputed TreeSHAP gives {g} where Algorithm 2 gives {w} for scaled row {row:?}"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// The two files being loaded, for error messages.
struct Files<'a> {
    onnx: &'a Path,
    sidecar: &'a Path,
}

impl Files<'_> {
    fn mismatch(&self, message: String) -> ModelError {
        ModelError::Mismatch {
            onnx: self.onnx.to_path_buf(),
            sidecar: self.sidecar.to_path_buf(),
            message,
        }
    }

    fn unsupported(&self, message: &str) -> ModelError {
        ModelError::Unsupported {
            path: PathBuf::from(self.onnx),
            message: message.into(),
        }
    }

    fn onnx_error(&self, message: String) -> ModelError {
        ModelError::Onnx {
            path: self.onnx.to_path_buf(),
            message,
        }
    }

    /// The sidecar names the exact ONNX file it describes: a retrained model
    /// copied without its sidecar (or the reverse) must not load, because the
    /// scaler and feature order would silently no longer match.
    fn check_digest(&self, onnx_bytes: &[u8], metadata: &ModelMetadata) -> Result<(), ModelError> {
        let expected = metadata.onnx_sha256.as_str();
        let actual = crate::common::digest::sha256_hex(onnx_bytes);
        if !actual.eq_ignore_ascii_case(expected) {
            return Err(self.mismatch(format!(
                "the sidecar's onnx_sha256 is {expected} but the ONNX file's SHA-256 is {actual}: \
                 the two files come from different training runs"
            )));
        }
        Ok(())
    }

    /// Everything the ONNX file and the sidecar must agree on.
    fn check(
        &self,
        proto: &ModelProto,
        ensemble: &TreeEnsemble,
        metadata: &ModelMetadata,
        base_value: f64,
    ) -> Result<(), ModelError> {
        let n = metadata.n_features();
        let graph = proto
            .graph
            .as_ref()
            .ok_or_else(|| self.unsupported("the model has no graph"))?;

        // The graph input: f32 [batch, n_features].
        let initializers: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
        let inputs: Vec<_> = graph
            .input
            .iter()
            .filter(|i| !initializers.contains(&i.name.as_str()))
            .collect();
        let [input] = inputs.as_slice() else {
            return Err(self.unsupported(&format!(
                "expected exactly one graph input, found {}",
                inputs.len()
            )));
        };
        let Some(TypeValue::TensorType(tensor)) =
            input.r#type.as_ref().and_then(|t| t.value.as_ref())
        else {
            return Err(self.unsupported(&format!("input {} is not a tensor", input.name)));
        };
        if tensor.elem_type != ONNX_FLOAT {
            return Err(self.unsupported(&format!(
                "input {} has ONNX element type {}, expected float32 (1)",
                input.name, tensor.elem_type
            )));
        }
        let dims: Vec<Option<&Dim>> = tensor
            .shape
            .as_ref()
            .map(|s| s.dim.iter().map(|d| d.value.as_ref()).collect())
            .unwrap_or_default();
        match dims.as_slice() {
            [_, Some(Dim::DimValue(width))] if *width == n as i64 => {}
            [_, Some(Dim::DimValue(width))] => {
                return Err(self.mismatch(format!(
                    "the ONNX input {} is {width} features wide, the sidecar lists {n} features",
                    input.name
                )));
            }
            _ => {
                return Err(self.unsupported(&format!(
                    "input {} must have shape [batch, {n}] with a fixed feature width",
                    input.name
                )));
            }
        }
        if ensemble.n_features() > n {
            return Err(self.mismatch(format!(
                "the trees split on feature {} but the sidecar lists only {n} features",
                ensemble.n_features() - 1
            )));
        }

        // Metadata the exporter wrote into the ONNX file, where present.
        for prop in &proto.metadata_props {
            match prop.key.as_str() {
                "feature_names" => {
                    let names: Vec<&str> = prop.value.split(',').map(str::trim).collect();
                    if names != metadata.feature_names {
                        return Err(self.mismatch(format!(
                            "feature names differ: ONNX metadata_props has {names:?}, \
                             the sidecar has {:?}",
                            metadata.feature_names
                        )));
                    }
                }
                "model_version" if prop.value != metadata.version => {
                    return Err(self.mismatch(format!(
                        "versions differ: ONNX metadata_props has {:?}, the sidecar has {:?}",
                        prop.value, metadata.version
                    )));
                }
                _ => {}
            }
        }

        if ensemble.class_labels() != metadata.class_labels {
            return Err(self.mismatch(format!(
                "class labels differ: ONNX has {:?}, the sidecar has {:?}",
                ensemble.class_labels(),
                metadata.class_labels
            )));
        }
        if let Some(expected) = metadata.shap_base_value
            && (expected - base_value).abs() > 1e-6
        {
            return Err(self.mismatch(format!(
                "the trees' expected value is {base_value}, the sidecar's shap_base_value is \
                 {expected} (node covers or leaf weights differ from training)"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model_path() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("models/diabetes_rf.onnx")
    }

    #[test]
    fn shipped_model_loads_and_predicts_fixture_row_zero() {
        let m = RiskModel::load(&model_path()).unwrap();
        assert_eq!(m.n_features(), 8);
        assert_eq!(m.ensemble().trees().len(), 100);
        let row = [6.0, 148.0, 72.0, 35.0, 0.0, 33.6, 0.627, 50.0];
        let p = m.predict(&row).unwrap();
        assert_eq!(p.len(), 1);
        assert!((p[0] - 0.7518124580383301).abs() < 1e-6, "{p:?}");
        assert_eq!(m.metadata().risk_level(p[0]), "high");
        assert_eq!(m.metadata().label(p[0]), 1);
        assert_eq!(m.predict_trees(&row).unwrap(), p);
        assert!(m.predict_trees(&[]).unwrap().is_empty());
        assert!(m.predict(&[]).unwrap().is_empty());
    }

    #[test]
    fn bad_rows_are_invalid_input() {
        let m = RiskModel::load(&model_path()).unwrap();
        let row = [6.0, 148.0, 72.0, 35.0, 0.0, 33.6, 0.627, 50.0];
        let err = m.predict(&row[..7]).unwrap_err();
        assert!(matches!(err, ModelError::InvalidInput(_)), "{err}");
        let err = m.predict_trees(&row[..7]).unwrap_err();
        assert!(matches!(err, ModelError::InvalidInput(_)), "{err}");
        let mut nan = row.to_vec();
        nan.extend(row);
        nan[9] = f64::NAN;
        let err = m.predict(&nan).unwrap_err();
        assert!(err.to_string().contains("row 1: Glucose is NaN"), "{err}");
        let err = m
            .explain(&[row.as_slice(), row.as_slice()].concat())
            .unwrap_err();
        assert!(matches!(err, ModelError::InvalidInput(_)), "{err}");
        let mut inf = row;
        inf[7] = f64::INFINITY;
        assert!(matches!(m.explain(&inf), Err(ModelError::InvalidInput(_))));
    }
}
