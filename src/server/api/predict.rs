//! `POST /predict`, `POST /predict/batch`, `POST /explain`, `POST /explain/batch`

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, State};

use super::types::{
    BatchExplanation, BatchPrediction, BatchRequest, Contribution, ErrorBody, Explanation,
    PatientFeatures, Prediction,
};
use crate::models::ModelError;
use crate::server::auth::AuditDetail;
use crate::server::error::ApiError;
use crate::server::model_workers::WorkerError;
use crate::server::state::{AppState, LoadedModel};
use crate::telemetry::events::ModelInvoked;

fn loaded(state: &AppState) -> Result<Arc<LoadedModel>, ApiError> {
    state.model.clone().map_err(ApiError::ModelUnavailable)
}

/// Run a batch request on tokio's blocking pool: scoring up to 1,000 rows
/// or explaining them is CPU work that must not hold an async worker (they
/// serve every other request, and in `up` the pipeline too). Single rows
/// go to the model's own workers instead ([`crate::server::model_workers`]),
/// which batch concurrent requests.
async fn off_the_workers<M: Send + Sync + 'static, T: Send + 'static>(
    model: &Arc<M>,
    work: impl FnOnce(&M) -> Result<T, ModelError> + Send + 'static,
) -> Result<T, ApiError> {
    let model = model.clone();
    tokio::task::spawn_blocking(move || work(&model))
        .await
        .map_err(|e| ApiError::Internal(format!("model task failed: {e}")))?
        .map_err(|e| ApiError::Internal(e.to_string()))
}

fn worker_failed(e: WorkerError) -> ApiError {
    ApiError::Internal(e.to_string())
}

fn prediction(model: &LoadedModel, probability: f64) -> Prediction {
    let metadata = model.model.metadata();
    let label = u8::from(probability > metadata.decision_threshold);
    Prediction {
        probability,
        risk_level: metadata.risk_level(probability).to_string(),
        label,
        confidence: probability.max(1.0 - probability),
        model_version: metadata.version.clone(),
    }
}

/// Diabetes risk for one patient.
#[utoipa::path(post, path = "/predict", tag = "model", request_body = PatientFeatures,
    responses(
        (status = 200, description = "Risk prediction", body = Prediction),
        (status = 413, description = "Body larger than 16 KiB"),
        (status = 422, description = "Invalid input: one entry per offending field", body = ErrorBody),
        (status = 503, description = "No model loaded", body = ErrorBody)))]
pub async fn predict(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<(Extension<AuditDetail>, Json<Prediction>), ApiError> {
    let model = loaded(&state)?;
    let row = model.rules.parse_one(&body).map_err(ApiError::Validation)?;
    let started = Instant::now();
    let p = model.workers.predict(row).await.map_err(worker_failed)?;
    ModelInvoked {
        operation: "predict",
        rows: 1,
        elapsed: started.elapsed(),
    }
    .emit();
    Ok((Extension(AuditDetail::rows(1)), Json(prediction(&model, p))))
}

/// Diabetes risk for up to 1,000 patients in one model call.
#[utoipa::path(post, path = "/predict/batch", tag = "model", request_body = BatchRequest,
    responses(
        (status = 200, description = "Predictions in request order", body = BatchPrediction),
        (status = 413, description = "Body larger than 1 MiB"),
        (status = 422, description = "Invalid input: one entry per offending field", body = ErrorBody),
        (status = 503, description = "No model loaded", body = ErrorBody)))]
pub async fn predict_batch(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<(Extension<AuditDetail>, Json<BatchPrediction>), ApiError> {
    let model = loaded(&state)?;
    let (rows, count) = model
        .rules
        .parse_batch(&body)
        .map_err(ApiError::Validation)?;
    let started = Instant::now();
    let probabilities = off_the_workers(&model, move |m| m.model.predict_trees(&rows)).await?;
    ModelInvoked {
        operation: "predict",
        rows: count,
        elapsed: started.elapsed(),
    }
    .emit();
    if probabilities.len() != count {
        return Err(ApiError::Internal(format!(
            "model returned {} predictions for {count} rows",
            probabilities.len()
        )));
    }
    Ok((
        Extension(AuditDetail::rows(count)),
        Json(BatchPrediction {
            predictions: probabilities
                .into_iter()
                .map(|p| prediction(&model, p))
                .collect(),
        }),
    ))
}

/// Prediction plus exact TreeSHAP contributions: `base_value + Σ shap_value = probability`.
#[utoipa::path(post, path = "/explain", tag = "model", request_body = PatientFeatures,
    responses(
        (status = 200, description = "Prediction with per-feature contributions", body = Explanation),
        (status = 413, description = "Body larger than 16 KiB"),
        (status = 422, description = "Invalid input: one entry per offending field", body = ErrorBody),
        (status = 503, description = "No model loaded", body = ErrorBody)))]
pub async fn explain(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<(Extension<AuditDetail>, Json<Explanation>), ApiError> {
    let model = loaded(&state)?;
    let row = model.rules.parse_one(&body).map_err(ApiError::Validation)?;
    let started = Instant::now();
    let explanation = model
        .workers
        .explain(row.clone())
        .await
        .map_err(worker_failed)?;
    ModelInvoked {
        operation: "explain",
        rows: 1,
        elapsed: started.elapsed(),
    }
    .emit();
    Ok((
        Extension(AuditDetail::rows(1)),
        Json(explained(&model, &row, explanation)),
    ))
}

/// The API's explanation of one row: the prediction and each feature's
/// contribution under its API name.
fn explained(
    model: &LoadedModel,
    row: &[f64],
    explanation: crate::models::Explanation,
) -> Explanation {
    let contributions = model
        .rules
        .api_names()
        .zip(row.iter().zip(&explanation.contributions))
        .map(|(feature, (value, shap))| Contribution {
            feature: feature.to_string(),
            value: *value,
            shap_value: *shap,
        })
        .collect();
    Explanation {
        prediction: prediction(model, explanation.probability),
        base_value: explanation.base_value,
        contributions,
    }
}

/// Predictions with exact TreeSHAP contributions for up to 1,000 patients
/// in one call (the trees' tables are read once for the whole batch).
#[utoipa::path(post, path = "/explain/batch", tag = "model", request_body = BatchRequest,
    responses(
        (status = 200, description = "Explanations in request order", body = BatchExplanation),
        (status = 413, description = "Body larger than 1 MiB"),
        (status = 422, description = "Invalid input: one entry per offending field", body = ErrorBody),
        (status = 503, description = "No model loaded", body = ErrorBody)))]
pub async fn explain_batch(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<(Extension<AuditDetail>, Json<BatchExplanation>), ApiError> {
    let model = loaded(&state)?;
    let (rows, count) = model
        .rules
        .parse_batch(&body)
        .map_err(ApiError::Validation)?;
    let started = Instant::now();
    let explanations = {
        let rows = rows.clone();
        off_the_workers(&model, move |m| m.model.explain_batch(&rows)).await?
    };
    ModelInvoked {
        operation: "explain",
        rows: count,
        elapsed: started.elapsed(),
    }
    .emit();
    let n = model.model.n_features();
    let explanations = rows
        .chunks_exact(n)
        .zip(explanations)
        .map(|(row, explanation)| explained(&model, row, explanation))
        .collect();
    Ok((
        Extension(AuditDetail::rows(count)),
        Json(BatchExplanation { explanations }),
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::off_the_workers;
    use crate::models::ModelError;

    /// The model's work must not run on an async worker. On a runtime with
    /// one thread, the work waits for a message that only another task on
    /// that runtime sends: run inline it would block the only thread, the
    /// sender could never run, and the wait would time out.
    #[test]
    fn model_work_runs_off_the_async_workers() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (sender, receiver) = std::sync::mpsc::channel::<u32>();
        let answer = runtime.block_on(async move {
            tokio::spawn(async move { sender.send(42).unwrap() });
            off_the_workers(&Arc::new(()), move |_| {
                receiver.recv_timeout(Duration::from_secs(10)).map_err(|e| {
                    ModelError::Inference(format!("the async thread was blocked: {e}"))
                })
            })
            .await
        });
        assert_eq!(answer.unwrap(), 42);
    }
}
