//! One acknowledgement and its Arrow schema (the `alert_acks` table).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringBuilder, TimestampMillisecondBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit, TimestampMillisecondType};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::AckError;

/// Who acknowledged which alert, when, and what they noted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ack {
    /// The alert's id (`<patient>@<event time ms>`, see `LiveHub`).
    pub alert_id: String,
    pub patient_id: String,
    /// The alert's event time, epoch milliseconds.
    pub alert_ts: i64,
    /// The alert's level (`medium`, `high`, ...).
    pub level: String,
    /// The principal that acknowledged it (the logged-in name).
    pub acked_by: String,
    /// When, epoch milliseconds (wall clock).
    #[serde(serialize_with = "as_millis")]
    pub acked_at: DateTime<Utc>,
    pub note: Option<String>,
}

fn as_millis<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_i64(t.timestamp_millis())
}

fn time_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

pub fn schema() -> SchemaRef {
    let text = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
    Arc::new(Schema::new(vec![
        text("alert_id", false),
        text("patient_id", false),
        Field::new("alert_ts", time_type(), false),
        text("level", false),
        text("acked_by", false),
        Field::new("acked_at", time_type(), false),
        text("note", true),
    ]))
}

pub fn to_batch(acks: &[Ack]) -> Result<RecordBatch, arrow::error::ArrowError> {
    let mut strings: Vec<StringBuilder> = (0..4).map(|_| StringBuilder::new()).collect();
    let mut alert_ts = TimestampMillisecondBuilder::new().with_timezone("UTC");
    let mut acked_at = TimestampMillisecondBuilder::new().with_timezone("UTC");
    let mut note = StringBuilder::new();
    for ack in acks {
        for (builder, value) in
            strings
                .iter_mut()
                .zip([&ack.alert_id, &ack.patient_id, &ack.level, &ack.acked_by])
        {
            builder.append_value(value);
        }
        alert_ts.append_value(ack.alert_ts);
        acked_at.append_value(ack.acked_at.timestamp_millis());
        note.append_option(ack.note.as_deref());
    }
    let mut s = strings
        .into_iter()
        .map(|mut b| Arc::new(b.finish()) as ArrayRef);
    let mut next = || s.next().expect("four string columns");
    let columns: Vec<ArrayRef> = vec![
        next(),
        next(),
        Arc::new(alert_ts.finish()),
        next(),
        next(),
        Arc::new(acked_at.finish()),
        Arc::new(note.finish()),
    ];
    RecordBatch::try_new(schema(), columns)
}

/// The acknowledgements in a batch read back from the dataset (columns by
/// name, so files written by an older layout with the same columns read).
pub fn from_batch(batch: &RecordBatch) -> Result<Vec<Ack>, AckError> {
    let text = |name: &str| {
        batch
            .column_by_name(name)
            .and_then(|c| c.as_string_opt::<i32>())
            .ok_or_else(|| AckError::Layout(format!("column `{name}` is missing or not text")))
    };
    let time = |name: &str| {
        batch
            .column_by_name(name)
            .and_then(|c| c.as_primitive_opt::<TimestampMillisecondType>())
            .ok_or_else(|| {
                AckError::Layout(format!(
                    "column `{name}` is missing or not a millisecond timestamp"
                ))
            })
    };
    let (alert_id, patient_id, level, acked_by, note) = (
        text("alert_id")?,
        text("patient_id")?,
        text("level")?,
        text("acked_by")?,
        text("note")?,
    );
    let (alert_ts, acked_at) = (time("alert_ts")?, time("acked_at")?);
    (0..batch.num_rows())
        .map(|i| {
            Ok(Ack {
                alert_id: alert_id.value(i).to_string(),
                patient_id: patient_id.value(i).to_string(),
                alert_ts: alert_ts.value(i),
                level: level.value(i).to_string(),
                acked_by: acked_by.value(i).to_string(),
                acked_at: DateTime::from_timestamp_millis(acked_at.value(i))
                    .ok_or_else(|| AckError::Layout(format!("row {i}: acked_at out of range")))?,
                note: (!note.is_null(i)).then(|| note.value(i).to_string()),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_round_trip_through_a_batch() {
        let acks = vec![
            Ack {
                alert_id: "P00001@1700000000000".into(),
                patient_id: "P00001".into(),
                alert_ts: 1_700_000_000_000,
                level: "high".into(),
                acked_by: "nurse".into(),
                acked_at: DateTime::from_timestamp_millis(1_700_000_060_123).unwrap(),
                note: Some("seen, O₂ increased".into()),
            },
            Ack {
                alert_id: "P00002@1700000001000".into(),
                patient_id: "P00002".into(),
                alert_ts: 1_700_000_001_000,
                level: "medium".into(),
                acked_by: "ward-sister".into(),
                acked_at: DateTime::from_timestamp_millis(1_700_000_090_000).unwrap(),
                note: None,
            },
        ];
        let batch = to_batch(&acks).unwrap();
        assert_eq!(batch.schema(), schema());
        assert_eq!(from_batch(&batch).unwrap(), acks);
    }
}
