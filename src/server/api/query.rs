//! `POST /api/query`: read-only SQL over the datasets the pipeline stores,
//! read straight from where they live (local disk, S3, HDFS, plus files
//! still waiting in a spool), with the same pruning as `vitalflow query`.

use std::time::Instant;

use axum::Json;
use axum::extract::State;
use datafusion::execution::context::SQLOptions;

use super::types::{QueryColumn, QueryRequest, QueryResult};
use crate::server::error::ApiError;
use crate::server::state::AppState;

/// Rows returned at most; more are cut and `truncated` is set.
const MAX_ROWS: usize = 10_000;

/// Run one read-only SQL statement over the stored datasets.
#[utoipa::path(post, path = "/api/query", tag = "data", request_body = QueryRequest,
    responses(
        (status = 200, description = "Rows as JSON objects", body = QueryResult),
        (status = 400, description = "SQL that does not parse or plan, or that is not a query", body = super::types::ErrorBody),
        (status = 503, description = "No pipeline datasets are loaded", body = super::types::ErrorBody),
    ))]
pub async fn query(
    State(state): State<AppState>,
    Json(request): Json<QueryRequest>,
) -> Result<Json<QueryResult>, ApiError> {
    let started = Instant::now();
    let session = state
        .datasets
        .as_ref()
        .map_err(|e| ApiError::Unavailable("datasets".into(), e.clone()))?;
    let limit = request.max_rows.unwrap_or(MAX_ROWS).min(MAX_ROWS);
    // Analysts read; nothing here may create, change or drop anything.
    let read_only = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let frame = session
        .ctx
        .sql_with_options(&request.sql, read_only)
        .await
        .map_err(|e| ApiError::BadQuery(e.to_string()))?;
    let columns = frame
        .schema()
        .fields()
        .iter()
        .map(|f| QueryColumn {
            name: f.name().clone(),
            data_type: f.data_type().to_string(),
        })
        .collect();
    let batches = frame
        .limit(0, Some(limit + 1))
        .map_err(|e| ApiError::BadQuery(e.to_string()))?
        .collect()
        .await
        .map_err(|e| ApiError::BadQuery(e.to_string()))?;
    let total: usize = batches.iter().map(|b| b.num_rows()).sum();
    let mut writer = arrow::json::ArrayWriter::new(Vec::new());
    let mut written = 0;
    for batch in &batches {
        let take = batch.num_rows().min(limit - written);
        if take == 0 {
            break;
        }
        writer
            .write(&batch.slice(0, take))
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        written += take;
    }
    writer
        .finish()
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let bytes = writer.into_inner();
    let rows: Vec<serde_json::Value> = if bytes.is_empty() {
        Vec::new()
    } else {
        serde_json::from_slice(&bytes).map_err(|e| ApiError::Internal(e.to_string()))?
    };
    Ok(Json(QueryResult {
        columns,
        row_count: rows.len(),
        rows,
        truncated: total > limit,
        warnings: session.take_warnings(),
        elapsed_ms: started.elapsed().as_secs_f64() * 1e3,
    }))
}
