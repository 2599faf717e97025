//! The dead-letter table: every record the source could not accept, with
//! its raw bytes, where it came from, when, and why.

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
}

impl DeadLetterBuilder {
    pub fn new(source: &str, received_at: i64) -> Self {
        Self {
            source: source.to_string(),
            received_at,
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
        self.reason.append_value(&letter.reason);
        self.key.append_option(letter.key);
        self.payload.append_option(letter.payload);
    }

    pub fn finish(mut self) -> anyhow::Result<Option<RecordBatch>> {
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
            ],
        )?;
        Ok(Some(batch))
    }
}
