//! `POST /api/query`: read-only SQL over the datasets the pipeline stores,
//! read straight from where they live (local disk, S3, HDFS, plus files
//! still waiting in a spool), with the same pruning as `vitalflow query`.
//!
//! Bounded: queries run on the query session's own runtime within its
//! memory pool, at most `query_concurrency` at once (429 beyond), each
//! cancelled after `query_timeout` (503), and the JSON rows returned stop
//! at `max_rows` and at `query_max_bytes` (`truncated` says which).

use std::ops::ControlFlow;
use std::time::Instant;

use arrow::record_batch::RecordBatch;
use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use datafusion::execution::context::SQLOptions;

use super::types::{QueryColumn, QueryRequest, QueryResult};
use crate::auth::{Principal, Role};
use crate::common::ErrorChain;
use crate::query::{Collector, QueryError};
use crate::server::auth::AuditDetail;
use crate::server::error::{ApiError, ServerError};
use crate::server::state::AppState;
use crate::telemetry::events::LimitHit;

/// Rows returned at most; more are cut and `truncated` is set.
const MAX_ROWS: usize = 10_000;
/// Rows serialised at a time, so the byte cap is checked often.
const CHUNK_ROWS: usize = 64;

/// Run one read-only SQL statement over the stored datasets.
#[utoipa::path(post, path = "/api/query", tag = "data", request_body = QueryRequest,
    responses(
        (status = 200, description = "Rows as JSON objects; `truncated` when `max_rows` or the byte cap cut them", body = QueryResult),
        (status = 400, description = "SQL that does not parse or plan, or that is not a query", body = super::types::ErrorBody),
        (status = 422, description = "The query needs more memory than the server gives queries", body = super::types::ErrorBody),
        (status = 429, description = "Too many queries: this client's rate, or all query slots busy (`Retry-After`)", body = super::types::ErrorBody),
        (status = 503, description = "No pipeline datasets are loaded, or the query timed out and was cancelled", body = super::types::ErrorBody),
    ))]
pub async fn query(
    State(state): State<AppState>,
    principal: Option<Extension<Principal>>,
    Json(request): Json<QueryRequest>,
) -> Result<(Extension<AuditDetail>, Json<QueryResult>), ApiError> {
    let started = Instant::now();
    let session = state
        .datasets
        .as_ref()
        .map_err(|e| ApiError::Unavailable("datasets".into(), e.clone()))?;
    let limits = &state.limits;
    // Wait a little for a slot (fairly, in arrival order), then refuse.
    let waited = tokio::time::timeout(
        limits.query_queue_wait,
        state.query_slots.clone().acquire_owned(),
    )
    .await;
    let _slot = match waited {
        Ok(Ok(slot)) => slot,
        _ => {
            return Err(ApiError::Limit {
                status: StatusCode::TOO_MANY_REQUESTS,
                what: "too_many_queries",
                msg: format!(
                    "{} queries are already running, the server's limit (--query-concurrency), \
                     and none finished within --query-queue-wait; retry shortly",
                    limits.query_concurrency
                ),
                retry_after: Some(1),
            });
        }
    };
    let max_rows = request.max_rows.unwrap_or(MAX_ROWS).min(MAX_ROWS);
    // Analysts read; nothing here may create, change or drop anything.
    let read_only = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    // The audit trail is for admins only.
    let admin = principal.is_some_and(|Extension(p)| p.roles.holds(Role::Admin));
    let denied: &'static [&'static str] = if admin { &[] } else { &[crate::audit::TABLE] };
    let finished = session
        .run(
            &request.sql,
            read_only,
            denied,
            Some(max_rows + 1),
            limits.query_timeout,
            JsonRows::new(max_rows, limits.query_max_bytes),
        )
        .await
        .map_err(refusal)?;
    let rows = finished.collector;
    if let Some(error) = rows.error {
        return Err(ApiError::Internal(error));
    }
    let columns = finished
        .schema
        .fields()
        .iter()
        .map(|f| QueryColumn {
            name: f.name().clone(),
            data_type: f.data_type().to_string(),
        })
        .collect();
    let truncated_reason = rows.cut.map(|cut| match cut {
        Cut::Rows => format!("more than max_rows = {max_rows} rows matched"),
        Cut::Bytes => {
            LimitHit {
                limit: "result_bytes",
            }
            .emit();
            format!(
                "the rows passed the server's limit of {} of JSON per result \
                 (--query-max-bytes); aggregate, select fewer columns or lower max_rows",
                bytesize::ByteSize::b(limits.query_max_bytes as u64)
            )
        }
    });
    let detail = AuditDetail {
        sql: Some(request.sql.clone()),
        rows: Some(rows.rows.len() as u64),
        ..AuditDetail::default()
    };
    Ok((
        Extension(detail),
        Json(QueryResult {
            columns,
            row_count: rows.rows.len(),
            rows: rows.rows,
            truncated: truncated_reason.is_some(),
            truncated_reason,
            warnings: finished.warnings,
            elapsed_ms: started.elapsed().as_secs_f64() * 1e3,
        }),
    ))
}

pub(crate) fn refusal(error: QueryError) -> ApiError {
    match error {
        QueryError::Invalid(why) => ApiError::BadQuery(why),
        QueryError::MemoryLimit { limit, detail } => {
            tracing::info!(%detail, "query stopped at the memory limit");
            ApiError::Limit {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                what: "memory_limit",
                msg: format!(
                    "the query needs more memory than the {limit} the server gives queries \
                 (--query-memory); filter or aggregate before collecting, or join smaller inputs"
                ),
                retry_after: None,
            }
        }
        QueryError::Timeout(after) => ApiError::Limit {
            status: StatusCode::SERVICE_UNAVAILABLE,
            what: "query_timeout",
            msg: format!(
                "the query did not finish within the server's query timeout of {} \
                 (--query-timeout) and was cancelled",
                humantime::format_duration(after)
            ),
            retry_after: None,
        },
        QueryError::Storage(detail) => ApiError::Internal(format!("reading stored data: {detail}")),
        QueryError::Internal(detail) => ApiError::Internal(detail),
        QueryError::Forbidden(table) => ApiError::Forbidden(format!(
            "table `{table}` is readable by the admin role only"
        )),
        // Setting a session up or writing a result: not what a query returns.
        other @ (QueryError::Setting { .. }
        | QueryError::Location(_)
        | QueryError::Store(_)
        | QueryError::NotFound(_)
        | QueryError::NotFileUrl(_)
        | QueryError::DataFusion(_)
        | QueryError::Arrow(_)
        | QueryError::Io(_)
        | QueryError::Context { .. }) => ApiError::Internal(ErrorChain(&other).to_string()),
    }
}

/// Why a result was cut short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    Rows,
    Bytes,
}

/// Result rows as JSON objects, up to a row count and a byte size.
struct JsonRows {
    rows: Vec<serde_json::Value>,
    bytes: usize,
    max_rows: usize,
    max_bytes: usize,
    cut: Option<Cut>,
    error: Option<String>,
}

impl JsonRows {
    fn new(max_rows: usize, max_bytes: usize) -> Self {
        Self {
            rows: Vec::new(),
            bytes: 0,
            max_rows,
            max_bytes,
            cut: None,
            error: None,
        }
    }

    /// Serialise `chunk` (nulls omitted) and keep its rows while they fit.
    fn take_chunk(&mut self, chunk: &RecordBatch) -> Result<ControlFlow<()>, ServerError> {
        let mut writer = arrow::json::LineDelimitedWriter::new(Vec::new());
        writer.write(chunk)?;
        writer.finish()?;
        let text = writer.into_inner();
        for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            if self.rows.len() == self.max_rows {
                self.cut = Some(Cut::Rows);
                return Ok(ControlFlow::Break(()));
            }
            // Each row costs its JSON plus a separating comma.
            if self.bytes + line.len() + 1 > self.max_bytes {
                self.cut = Some(Cut::Bytes);
                return Ok(ControlFlow::Break(()));
            }
            self.bytes += line.len() + 1;
            self.rows.push(serde_json::from_slice(line)?);
        }
        Ok(ControlFlow::Continue(()))
    }
}

impl Collector for JsonRows {
    fn take(&mut self, batch: RecordBatch) -> ControlFlow<()> {
        let mut offset = 0;
        while offset < batch.num_rows() {
            let length = CHUNK_ROWS.min(batch.num_rows() - offset);
            match self.take_chunk(&batch.slice(offset, length)) {
                Ok(ControlFlow::Continue(())) => offset += length,
                Ok(ControlFlow::Break(())) => return ControlFlow::Break(()),
                Err(error) => {
                    self.error = Some(format!("serialising query rows: {error}"));
                    return ControlFlow::Break(());
                }
            }
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn batch(rows: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, false),
            Field::new("s", DataType::Utf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from_iter_values(0..rows)),
                Arc::new(StringArray::from_iter(
                    (0..rows).map(|i| (i % 2 == 0).then(|| "x".repeat(10))),
                )),
            ],
        )
        .unwrap()
    }

    #[test]
    fn rows_stop_at_the_row_limit_and_at_the_byte_cap() {
        let mut rows = JsonRows::new(5, 1 << 20);
        assert!(rows.take(batch(10)).is_break());
        assert_eq!((rows.rows.len(), rows.cut), (5, Some(Cut::Rows)));
        assert_eq!(rows.rows[0], serde_json::json!({"n": 0, "s": "xxxxxxxxxx"}));
        assert_eq!(rows.rows[1], serde_json::json!({"n": 1}), "nulls omitted");

        // Exactly the limit is not truncated.
        let mut rows = JsonRows::new(10, 1 << 20);
        assert!(rows.take(batch(10)).is_continue());
        assert_eq!((rows.rows.len(), rows.cut), (10, None));

        let mut rows = JsonRows::new(10_000, 1000);
        assert!(rows.take(batch(1000)).is_break());
        assert_eq!(rows.cut, Some(Cut::Bytes));
        let size: usize = rows.rows.iter().map(|r| r.to_string().len() + 1).sum();
        assert!(size <= 1000, "{size} bytes kept");
        assert!(size > 900, "filled up to the cap: {size}");
    }
}
