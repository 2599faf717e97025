//! Sinks: where a pipeline's tables leave it.
//!
//! A sink runs as its own task fed by a bounded channel. Besides data it
//! receives [`SinkMessage::Progress`] markers after every source batch; it
//! reports a marker back through its `acks` channel only once every row that
//! came before the marker is durably published. The engine commits source
//! positions no further than the slowest sink's ack, which is what makes
//! at-least-once + idempotent publishing into exactly-once.

pub mod live;
pub mod parquet;

use std::path::Path;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use tokio::sync::{mpsc, watch};

pub use live::LiveSinkConfig;
pub use parquet::ParquetSinkConfig;

use crate::spec::raw::Spanned;

/// What flows into a sink.
#[derive(Debug)]
pub enum SinkMessage {
    /// Rows of the sink's input table.
    Data(RecordBatch),
    /// Everything up to source batch `n` has been sent.
    Progress(u64),
    /// Sent about once a second so that time-based rolling happens even
    /// when no data arrives.
    Tick,
}

/// A running sink.
#[async_trait::async_trait]
pub trait Sink: Send {
    /// Consume until the channel closes, then flush and close everything.
    async fn run(
        self: Box<Self>,
        input: mpsc::Receiver<SinkMessage>,
        acks: watch::Sender<u64>,
    ) -> anyhow::Result<SinkSummary>;
}

/// What a sink did, for the end-of-run report.
#[derive(Debug, Default, Clone)]
pub struct SinkSummary {
    pub rows: u64,
    pub files: u64,
    pub bytes: u64,
    /// Where the data went, for humans.
    pub location: String,
}

/// Every sink kind, keyed by `kind:` (the entry's first key) in the YAML.
#[derive(Debug, Clone)]
pub enum SinkConfig {
    /// Rolling, date-partitioned Parquet files.
    Parquet(ParquetSinkConfig),
    /// In-memory latest readings and alerts, pushed to the dashboard.
    Live(LiveSinkConfig),
}

crate::kind_tagged_deserialize!(SinkConfig, "sink", {
    "parquet" => Parquet(ParquetSinkConfig),
    "live" => Live(LiveSinkConfig),
});

impl SinkConfig {
    /// The table this sink writes.
    pub fn input(&self) -> &Spanned<String> {
        match self {
            SinkConfig::Parquet(c) => &c.input,
            SinkConfig::Live(c) => &c.input,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        match self {
            SinkConfig::Parquet(c) => c.validate(),
            SinkConfig::Live(c) => c.validate(),
        }
    }

    /// Checks that need the input table's schema (plan time).
    pub fn check_schema(&self, schema: &SchemaRef) -> Result<(), String> {
        match self {
            SinkConfig::Parquet(c) => c.check_schema(schema),
            SinkConfig::Live(c) => c.check_schema(schema),
        }
    }

    /// Build the runtime; `base` anchors relative locations.
    pub fn build(
        &self,
        name: &str,
        schema: SchemaRef,
        base: &Path,
    ) -> anyhow::Result<Box<dyn Sink>> {
        match self {
            SinkConfig::Parquet(c) => Ok(Box::new(c.build(name, schema, base)?)),
            SinkConfig::Live(c) => Ok(Box::new(c.build(name, schema)?)),
        }
    }
}
