//! One audit record and its Arrow schema.

use std::sync::Arc;

use crate::common::digest::sha256_hex;
use arrow::array::{
    ArrayRef, Float64Builder, StringBuilder, TimestampMicrosecondBuilder, UInt16Builder,
    UInt64Builder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, Utc};

/// What one request did.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub time: DateTime<Utc>,
    /// Who, when known (absent for a refused credential).
    pub principal: Option<String>,
    /// How they proved it: `token`, `oidc`, `session`, `anonymous`.
    pub via: Option<&'static str>,
    /// Their roles, comma-separated.
    pub roles: String,
    /// The client's address.
    pub client: String,
    pub method: String,
    /// The route template (`/api/patients/{id}`).
    pub route: String,
    pub patient_id: Option<String>,
    /// The SQL of a query.
    pub sql: Option<String>,
    /// Rows (patients, readings, predictions) returned.
    pub rows: Option<u64>,
    pub status: u16,
    pub latency_ms: f64,
    /// `allowed`, `refused` (401/403) or `failed`.
    pub outcome: &'static str,
    /// Why it was refused, for the reviewer (never the credential).
    pub reason: Option<String>,
}

pub fn schema() -> SchemaRef {
    let text = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
    Arc::new(Schema::new(vec![
        Field::new(
            "time",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        text("principal", true),
        text("via", true),
        text("roles", false),
        text("client", false),
        text("method", false),
        text("route", false),
        text("patient_id", true),
        text("sql", true),
        text("sql_sha256", true),
        Field::new("rows", DataType::UInt64, true),
        Field::new("status", DataType::UInt16, false),
        Field::new("latency_ms", DataType::Float64, false),
        text("outcome", false),
        text("reason", true),
    ]))
}

pub fn to_batch(records: &[AuditRecord]) -> Result<RecordBatch, arrow::error::ArrowError> {
    let n = records.len();
    let mut time = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut strings: Vec<StringBuilder> = (0..8).map(|_| StringBuilder::new()).collect();
    let mut sql_hash = StringBuilder::new();
    let mut rows = UInt64Builder::with_capacity(n);
    let mut status = UInt16Builder::with_capacity(n);
    let mut latency = Float64Builder::with_capacity(n);
    let mut outcome = StringBuilder::new();
    let mut reason = StringBuilder::new();
    for r in records {
        time.append_value(r.time.timestamp_micros());
        let values: [Option<&str>; 8] = [
            r.principal.as_deref(),
            r.via,
            Some(&r.roles),
            Some(&r.client),
            Some(&r.method),
            Some(&r.route),
            r.patient_id.as_deref(),
            r.sql.as_deref(),
        ];
        for (builder, value) in strings.iter_mut().zip(values) {
            builder.append_option(value);
        }
        sql_hash.append_option(r.sql.as_deref().map(|sql| sha256_hex(sql.as_bytes())));
        rows.append_option(r.rows);
        status.append_value(r.status);
        latency.append_value(r.latency_ms);
        outcome.append_value(r.outcome);
        reason.append_option(r.reason.as_deref());
    }
    let mut columns: Vec<ArrayRef> = vec![Arc::new(time.finish())];
    columns.extend(strings.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
    columns.push(Arc::new(sql_hash.finish()));
    columns.push(Arc::new(rows.finish()));
    columns.push(Arc::new(status.finish()));
    columns.push(Arc::new(latency.finish()));
    columns.push(Arc::new(outcome.finish()));
    columns.push(Arc::new(reason.finish()));
    RecordBatch::try_new(schema(), columns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_becomes_one_row_with_the_sql_hashed() {
        let record = AuditRecord {
            time: Utc::now(),
            principal: Some("ana".into()),
            via: Some("token"),
            roles: "analyst".into(),
            client: "127.0.0.1".into(),
            method: "POST".into(),
            route: "/api/query".into(),
            patient_id: None,
            sql: Some("SELECT 1".into()),
            rows: Some(1),
            status: 200,
            latency_ms: 1.5,
            outcome: "allowed",
            reason: None,
        };
        let batch = to_batch(&[record]).unwrap();
        assert_eq!(batch.num_rows(), 1);
        assert_eq!(batch.schema(), schema());
        let hash = batch
            .column_by_name("sql_sha256")
            .unwrap()
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .unwrap()
            .value(0)
            .to_string();
        assert_eq!(hash, sha256_hex(b"SELECT 1"));
    }
}
