//! The dead-letter table: every record the source could not accept, with
//! its raw bytes (the first `dead_letters.max_payload` of them, plus the
//! full length and SHA-256), where it came from, when, and why.

use std::sync::{Arc, LazyLock};

use arrow::array::{
    BinaryBuilder, Int32Builder, Int64Builder, RecordBatch, StringBuilder,
    TimestampMillisecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let utc_ms = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("source", DataType::Utf8, false),
        Field::new("topic", DataType::Utf8, false),
        Field::new("partition", DataType::Int32, false),
        Field::new("offset", DataType::Int64, false),
        Field::new("kafka_timestamp", utc_ms.clone(), true),
        Field::new("received_at", utc_ms, false),
        Field::new("reason_kind", DataType::Utf8, false),
        Field::new("reason", DataType::Utf8, false),
        Field::new("key", DataType::Binary, true),
        Field::new("payload", DataType::Binary, true),
        Field::new("payload_bytes", DataType::Int64, true),
        Field::new("payload_sha256", DataType::Utf8, true),
    ]))
});

/// Schema of `<source>_dead_letters`.
pub fn dead_letter_schema() -> SchemaRef {
    SCHEMA.clone()
}

/// Why a record was rejected, as a small fixed set (metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReasonKind {
    Empty,
    InvalidJson,
    NotAnObject,
    MissingField,
    WrongType,
    OutOfRange,
    ImplausibleTime,
    /// A FHIR or HL7 v2 message, or a part of it, that gives no reading.
    Format(crate::interop::RejectionKind),
}

impl ReasonKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReasonKind::Empty => "empty",
            ReasonKind::InvalidJson => "invalid_json",
            ReasonKind::NotAnObject => "not_an_object",
            ReasonKind::MissingField => "missing_field",
            ReasonKind::WrongType => "wrong_type",
            ReasonKind::OutOfRange => "out_of_range",
            ReasonKind::ImplausibleTime => "implausible_time",
            ReasonKind::Format(kind) => kind.as_str(),
        }
    }
}

/// One rejected record.
pub struct DeadLetter<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub kafka_timestamp: Option<i64>,
    pub key: Option<&'a [u8]>,
    pub payload: Option<&'a [u8]>,
    pub kind: ReasonKind,
    pub reason: String,
}

/// Collects dead letters of one batch into the table's rows.
pub struct DeadLetterBuilder {
    source: String,
    received_at: i64,
    max_payload: usize,
    rows: usize,
    source_col: StringBuilder,
    topic: StringBuilder,
    partition: Int32Builder,
    offset: Int64Builder,
    kafka_timestamp: TimestampMillisecondBuilder,
    received: TimestampMillisecondBuilder,
    kind: StringBuilder,
    reason: StringBuilder,
    key: BinaryBuilder,
    payload: BinaryBuilder,
    payload_bytes: Int64Builder,
    payload_sha256: StringBuilder,
}

/// Longest `reason` kept: decoder messages quote the offending value, which
/// may be as long as the record.
const MAX_REASON_CHARS: usize = 1024;

impl DeadLetterBuilder {
    /// `max_payload`: bytes of each rejected payload (and key) kept.
    pub fn new(source: &str, received_at: i64, max_payload: usize) -> Self {
        Self {
            source: source.to_string(),
            received_at,
            max_payload,
            rows: 0,
            source_col: StringBuilder::new(),
            topic: StringBuilder::new(),
            partition: Int32Builder::new(),
            offset: Int64Builder::new(),
            kafka_timestamp: TimestampMillisecondBuilder::new().with_timezone("UTC"),
            received: TimestampMillisecondBuilder::new().with_timezone("UTC"),
            kind: StringBuilder::new(),
            reason: StringBuilder::new(),
            key: BinaryBuilder::new(),
            payload: BinaryBuilder::new(),
            payload_bytes: Int64Builder::new(),
            payload_sha256: StringBuilder::new(),
        }
    }

    pub fn push(&mut self, letter: DeadLetter<'_>) {
        self.rows += 1;
        self.source_col.append_value(&self.source);
        self.topic.append_value(letter.topic);
        self.partition.append_value(letter.partition);
        self.offset.append_value(letter.offset);
        self.kafka_timestamp.append_option(letter.kafka_timestamp);
        self.received.append_value(self.received_at);
        self.kind.append_value(letter.kind.as_str());
        self.reason
            .append_value(truncate_chars(&letter.reason, MAX_REASON_CHARS));
        let max = self.max_payload;
        self.key.append_option(letter.key.map(|k| prefix(k, max)));
        self.payload
            .append_option(letter.payload.map(|p| prefix(p, max)));
        self.payload_bytes
            .append_option(letter.payload.map(|p| p.len() as i64));
        self.payload_sha256
            .append_option(letter.payload.map(hex_sha256));
    }

    pub fn finish(mut self) -> Result<Option<RecordBatch>, arrow::error::ArrowError> {
        if self.rows == 0 {
            return Ok(None);
        }
        let batch = RecordBatch::try_new(
            dead_letter_schema(),
            vec![
                Arc::new(self.source_col.finish()),
                Arc::new(self.topic.finish()),
                Arc::new(self.partition.finish()),
                Arc::new(self.offset.finish()),
                Arc::new(self.kafka_timestamp.finish()),
                Arc::new(self.received.finish()),
                Arc::new(self.kind.finish()),
                Arc::new(self.reason.finish()),
                Arc::new(self.key.finish()),
                Arc::new(self.payload.finish()),
                Arc::new(self.payload_bytes.finish()),
                Arc::new(self.payload_sha256.finish()),
            ],
        )?;
        Ok(Some(batch))
    }
}

fn prefix(bytes: &[u8], max: usize) -> &[u8] {
    &bytes[..bytes.len().min(max)]
}

use crate::common::digest::sha256_hex as hex_sha256;

/// `text` cut to at most `max` characters, marked when cut.
fn truncate_chars(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(max) {
        None => text.into(),
        Some((end, _)) => format!("{}… ({} bytes in all)", &text[..end], text.len()).into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::AsArray;

    #[test]
    fn a_dead_letter_keeps_a_bounded_prefix_with_length_and_digest() {
        let mut builder = DeadLetterBuilder::new("monitors", 0, 4);
        let payload = b"0123456789".as_slice();
        builder.push(DeadLetter {
            topic: "t",
            partition: 0,
            offset: 7,
            kafka_timestamp: None,
            key: Some(b"patient-key-long"),
            payload: Some(payload),
            kind: ReasonKind::InvalidJson,
            reason: "x".repeat(5000),
        });
        let batch = builder.finish().unwrap().unwrap();
        let column = |name: &str| batch.column_by_name(name).unwrap().clone();
        assert_eq!(column("payload").as_binary::<i32>().value(0), b"0123");
        assert_eq!(column("key").as_binary::<i32>().value(0), b"pati");
        assert_eq!(
            column("payload_bytes")
                .as_primitive::<arrow::datatypes::Int64Type>()
                .value(0),
            10
        );
        assert_eq!(
            column("payload_sha256").as_string::<i32>().value(0),
            // sha256("0123456789")
            "84d89877f0d4041efb6bf91a16f0248f2fd573e6af05c19f96bedb9f882f7882"
        );
        let reason = column("reason");
        let reason = reason.as_string::<i32>().value(0);
        assert!(
            reason.len() < 1200 && reason.ends_with("(5000 bytes in all)"),
            "{reason}"
        );
    }
}
