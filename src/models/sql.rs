//! A risk model as a SQL function: `diabetes_risk(pregnancies, glucose, ...)`
//! returns P(positive) for each row.
//!
//! Models are declared in the pipeline YAML (`models:`), loaded and checked
//! once at planning, and evaluated on whole batches: DataFusion hands the
//! function one batch of argument columns, which become one row-major
//! feature matrix and one model call. Two evaluators give bit-identical
//! results (checked at load on the sidecar's reference rows):
//! - `trees` (default): the forest parsed from the same ONNX file, summing
//!   f32 leaf weights exactly as tract does, in microseconds per row;
//! - `tract`: the ONNX graph through tract. tract 0.23.9's tree-ensemble
//!   kernel walks the forest's whole leaf table per row (milliseconds per
//!   row), too slow for a stream of windowed rows, so it is opt-in.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float64Array, new_empty_array};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use datafusion::common::{Result as DfResult, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::RiskModel;

/// Which evaluator scores rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelRuntime {
    #[default]
    Trees,
    Tract,
}

/// A loaded model registered under `name`.
pub struct ModelFunction {
    name: String,
    model: Arc<RiskModel>,
    runtime: ModelRuntime,
    signature: Signature,
}

impl std::fmt::Debug for ModelFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelFunction")
            .field("name", &self.name)
            .field("model", &self.model.metadata().version)
            .field("runtime", &self.runtime)
            .finish()
    }
}

impl PartialEq for ModelFunction {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && Arc::ptr_eq(&self.model, &other.model)
            && self.runtime == other.runtime
    }
}

impl Eq for ModelFunction {}

impl std::hash::Hash for ModelFunction {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
        self.model.metadata().version.hash(state);
    }
}

impl ModelFunction {
    pub fn new(name: &str, model: Arc<RiskModel>, runtime: ModelRuntime) -> Self {
        Self {
            name: name.to_string(),
            model,
            runtime,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }

    /// Score a row-major matrix of raw features.
    fn score(&self, rows: &[f64]) -> DfResult<Vec<f64>> {
        let result = match self.runtime {
            ModelRuntime::Trees => self.model.predict_trees(rows),
            ModelRuntime::Tract => self.model.predict(rows),
        };
        result.map_err(|e| {
            datafusion::error::DataFusionError::Execution(format!("model {}(): {e}", self.name))
        })
    }
}

impl ScalarUDFImpl for ModelFunction {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        let features = &self.model.metadata().feature_names;
        if arg_types.len() != features.len() {
            return plan_err!(
                "{}() takes the model's {} features in order ({}), got {} arguments",
                self.name,
                features.len(),
                features.join(", "),
                arg_types.len()
            );
        }
        Ok(vec![DataType::Float64; features.len()])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let rows = args.number_rows;
        if rows == 0 {
            return Ok(ColumnarValue::Array(new_empty_array(&DataType::Float64)));
        }
        let columns: Vec<Float64Array> = args
            .args
            .into_iter()
            .map(|a| {
                let array: ArrayRef = a.into_array(rows)?;
                let array = cast(&array, &DataType::Float64)?;
                Ok(array
                    .as_any()
                    .downcast_ref::<Float64Array>()
                    .cloned()
                    .unwrap_or_else(|| Float64Array::from(vec![None; rows])))
            })
            .collect::<DfResult<_>>()?;
        // Rows with a NULL or non-finite feature score NULL; the rest go
        // to the model in one call.
        let complete: Vec<usize> = (0..rows)
            .filter(|&r| {
                columns
                    .iter()
                    .all(|c| c.is_valid(r) && c.value(r).is_finite())
            })
            .collect();
        let mut matrix = Vec::with_capacity(complete.len() * columns.len());
        for &r in &complete {
            matrix.extend(columns.iter().map(|c| c.value(r)));
        }
        let scores = self.score(&matrix)?;
        if scores.len() != complete.len() {
            return exec_err!(
                "model {}() returned {} scores for {} rows",
                self.name,
                scores.len(),
                complete.len()
            );
        }
        let mut out = vec![None; rows];
        for (&r, score) in complete.iter().zip(scores) {
            out[r] = Some(score);
        }
        Ok(ColumnarValue::Array(Arc::new(Float64Array::from(out))))
    }
}
