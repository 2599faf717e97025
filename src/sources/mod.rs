//! Sources: where records enter a pipeline.
//!
//! A source runs as its own task and pushes [`SourceEvent`]s into a bounded
//! channel; when the engine falls behind, `send` waits, which is the
//! backpressure that keeps memory flat. [`SourceConfig`] is the one list of
//! source kinds, keyed by the YAML `kind` string.

mod error;
mod event_time;
pub mod ingest;
pub mod kafka;
pub mod simulator;

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

pub use error::{AssignmentLost, ConfigError, SourceError};
pub use event_time::{EventTimeConfig, late_events_table};
pub use kafka::KafkaSourceConfig;
pub use simulator::SimulatorConfig;

use crate::common::{BoxError, DurableOffsetsReader};
pub use crate::common::{Offsets, TopicPartition};

/// One micro-batch from a source.
#[derive(Debug, Clone)]
pub struct SourceBatch {
    pub batch: RecordBatch,
    /// Records the source rejected, as rows of the source's dead-letter
    /// table (`<source>_dead_letters`); `None` when all were good.
    pub dead_letters: Option<RecordBatch>,
    /// Where this batch ends: the next offset per partition it read from.
    /// Empty for sources with nothing to resume (the simulator).
    pub offsets: Offsets,
    /// With `event_time:`, the newest event time (epoch ms) of this batch in
    /// each partition it read from, for per-partition watermarks. Empty: the
    /// engine treats the source as one partition.
    pub partition_event_times: BTreeMap<TopicPartition, i64>,
    /// The partitions the source reads right now (Kafka's assignment): one
    /// that has delivered nothing yet holds the watermark back until it
    /// goes idle, or its first rows would all be late. Empty for sources
    /// without partitions.
    pub assigned_partitions: Vec<TopicPartition>,
    /// The partition of every row of `batch`, as runs in row order: `(p,
    /// n)` means the next `n` rows come from `p`. Empty for sources without
    /// partitions.
    pub row_partitions: Vec<(TopicPartition, usize)>,
}

/// What a source sends to the engine, in order.
#[derive(Debug)]
pub enum SourceEvent {
    Batch(SourceBatch),
    /// Make everything sent so far durable (publish files, record offsets)
    /// and answer with this source's durable offsets. A Kafka source asks
    /// this before giving up partitions in a rebalance.
    Checkpoint(CheckpointReply),
    /// These partitions are now this instance's, resuming at these offsets
    /// (`None`: no checkpoint had one). Sent before any of their batches.
    Assigned(Vec<(TopicPartition, Option<i64>)>),
    /// These partitions went to another instance; a checkpoint has just
    /// made everything read from them durable. Sent after their last batch.
    Revoked(Vec<TopicPartition>),
}

/// Where the engine answers a [`SourceEvent::Checkpoint`]: the source's
/// durable offsets, or why the checkpoint failed (the source then fails
/// with [`SourceError::Checkpoint`]).
#[derive(Debug)]
pub struct CheckpointReply(oneshot::Sender<Result<Offsets, BoxError>>);

impl CheckpointReply {
    /// A reply and the receiver the asking source waits on.
    pub fn channel() -> (Self, oneshot::Receiver<Result<Offsets, BoxError>>) {
        let (sender, receiver) = oneshot::channel();
        (Self(sender), receiver)
    }

    /// Answer the source; `false` when it no longer waits (it stopped).
    pub fn send<E: Into<BoxError>>(self, answer: Result<Offsets, E>) -> bool {
        self.0.send(answer.map_err(Into::into)).is_ok()
    }
}

/// What a running source is handed by the engine.
pub struct SourceContext {
    /// Pipeline name, for logs and metric labels.
    pub pipeline: String,
    /// The source's name in the pipeline.
    pub name: String,
    /// Bounded: `send` waits while the engine is busy.
    pub output: mpsc::Sender<SourceEvent>,
    /// Cancelled on Ctrl-C / SIGTERM; the source returns promptly and the
    /// engine then drains and flushes everything downstream.
    pub shutdown: CancellationToken,
    /// Offsets the engine has made durable (rows published, checkpoint
    /// written): safe to commit to the source's own offset store.
    pub committed: watch::Receiver<Offsets>,
    /// Durable offsets recorded by every instance's checkpoints, for
    /// resuming partitions (`None` when the pipeline keeps no checkpoints).
    pub durable: Option<Arc<dyn DurableOffsetsReader>>,
    /// Where the source reports what it knows of its partitions (lag).
    pub partitions: crate::common::PartitionBoard,
    /// Where an ingest source makes itself reachable to the server.
    pub ingest: crate::common::IngestHubs,
}

/// A running source.
#[async_trait::async_trait]
pub trait Source: Send {
    /// Produce batches until the source is exhausted or `ctx.shutdown` fires.
    /// Records that do not decode are no failure: they go to the batch's
    /// dead letters and the source goes on.
    async fn run(self: Box<Self>, ctx: SourceContext) -> Result<SourceSummary, SourceError>;
}

/// What a source did, for the end-of-run report.
#[derive(Debug, Default, Clone)]
pub struct SourceSummary {
    pub records: u64,
    pub batches: u64,
    /// Records rejected into the dead-letter table.
    pub dead_letters: u64,
}

/// Every source kind, keyed by `kind:` (the entry's first key) in the YAML.
#[derive(Debug, Clone)]
pub enum SourceConfig {
    /// Built-in bedside-monitor simulator.
    Simulator(SimulatorConfig),
    /// JSON, FHIR or HL7 v2 records from Kafka topics, consumed in a
    /// consumer group (boxed: its settings are large).
    Kafka(Box<KafkaSourceConfig>),
    /// FHIR resources POSTed to the server of the same process.
    FhirIngest(ingest::IngestSourceConfig),
}

crate::kind_tagged_deserialize!(SourceConfig, "source", {
    "simulator" => Simulator(SimulatorConfig),
    "kafka" => Kafka(Box<KafkaSourceConfig>),
    "fhir_ingest" => FhirIngest(ingest::IngestSourceConfig),
});

impl SourceConfig {
    /// Rules that serde cannot express (ranges, combinations).
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self {
            SourceConfig::Simulator(c) => c.validate(),
            SourceConfig::Kafka(c) => c.validate().map_err(ConfigError::Kafka),
            SourceConfig::FhirIngest(c) => c.validate(),
        }?;
        if let Some(event_time) = self.event_time() {
            event_time.validate()?;
            let schema = self.schema();
            let field = schema.field_with_name(&event_time.column).map_err(|_| {
                let columns: Vec<&str> =
                    schema.fields().iter().map(|f| f.name().as_str()).collect();
                ConfigError::EventTimeColumn(format!(
                    "the table has no column `{}` (columns: {})",
                    event_time.column,
                    columns.join(", ")
                ))
            })?;
            if !matches!(field.data_type(), arrow::datatypes::DataType::Timestamp(..)) {
                return Err(ConfigError::EventTimeColumn(format!(
                    "`{}` is {}, not a timestamp",
                    event_time.column,
                    field.data_type()
                )));
            }
        }
        Ok(())
    }

    /// Event-time settings, when the source declares them.
    pub fn event_time(&self) -> Option<&EventTimeConfig> {
        match self {
            SourceConfig::Simulator(c) => c.event_time.as_ref(),
            SourceConfig::Kafka(c) => c.event_time.as_ref(),
            SourceConfig::FhirIngest(_) => None,
        }
    }

    /// The column the source's partitions are keyed by (Kafka's `key:`):
    /// state keyed by it can live per partition.
    pub fn partition_key(&self) -> Option<&str> {
        match self {
            SourceConfig::Simulator(_) | SourceConfig::FhirIngest(_) => None,
            SourceConfig::Kafka(c) => c.key.as_deref(),
        }
    }

    /// The Arrow schema of the table this source produces.
    pub fn schema(&self) -> SchemaRef {
        match self {
            SourceConfig::Simulator(_) => simulator::vitals_schema(),
            SourceConfig::Kafka(c) => c.schema(),
            SourceConfig::FhirIngest(c) => c.schema(),
        }
    }

    /// The schema of the `<source>_dead_letters` table, for sources that
    /// reject records.
    pub fn dead_letter_schema(&self) -> Option<SchemaRef> {
        match self {
            // The ingest source answers refusals to the sender instead.
            SourceConfig::Simulator(_) | SourceConfig::FhirIngest(_) => None,
            SourceConfig::Kafka(_) => Some(kafka::dead_letter_schema()),
        }
    }

    /// Whether the source has offsets worth checkpointing.
    pub fn is_resumable(&self) -> bool {
        matches!(self, SourceConfig::Kafka(_))
    }

    /// Start-ready runtime component.
    pub fn build(&self) -> Result<Box<dyn Source>, SourceError> {
        match self {
            SourceConfig::Simulator(c) => Ok(Box::new(c.build())),
            SourceConfig::Kafka(c) => Ok(Box::new(c.build().map_err(ConfigError::Kafka)?)),
            SourceConfig::FhirIngest(c) => Ok(Box::new(c.build())),
        }
    }
}

/// The name of a source's dead-letter table.
pub fn dead_letter_table(source: &str) -> String {
    format!("{source}_dead_letters")
}
