//! Sinks: where a pipeline's tables leave it.
//!
//! A sink runs as its own task fed by a bounded channel. Durability is
//! coordinated by the engine's checkpoints: on [`SinkMessage::Checkpoint`] a
//! sink makes everything it received so far durable (a file sink closes and
//! stages its files, a Kafka sink waits for delivery) and answers with the
//! files to publish. The engine publishes them through a manifest and only
//! then commits source offsets, which is what turns at-least-once delivery
//! into exactly-once files. A sink that wants its files out (a roll limit
//! was reached) asks for a checkpoint through `checkpoint_wanted`.

mod error;
pub mod fhir;
pub mod kafka;
pub mod live;
pub mod parquet;

use std::path::PathBuf;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use tokio::sync::{Notify, mpsc, oneshot};

pub use error::{ConfigError, SinkError, SinkResultExt};
pub use kafka::KafkaSinkConfig;
pub use live::LiveSinkConfig;
pub use parquet::ParquetSinkConfig;

use crate::common::Spanned;
use crate::storage::StagedFile;
use crate::storage::status::StoreStatusBoard;

/// What a run hands to the sinks it builds, and what the server of the same
/// process reads: the live view's hubs, the remote stores' status and the
/// source partitions the run owns. The
/// caller creates it (`vitalflow up` shares it with its server; a plain run
/// uses the default) and passes it down explicitly.
#[derive(Debug, Clone, Default)]
pub struct SinkContext {
    pub live: live::LiveHubs,
    pub stores: StoreStatusBoard,
    /// The source partitions the run owns: written by the engine and the
    /// sources (not by sinks), shown by the server beside the stores.
    pub partitions: crate::common::PartitionBoard,
}

/// What flows into a sink.
#[derive(Debug)]
pub enum SinkMessage {
    /// Rows of the sink's input table.
    Data(RecordBatch),
    /// Make every row received so far durable; answer with the staged files
    /// the engine must publish (empty for sinks without files).
    Checkpoint(oneshot::Sender<Result<Vec<StagedFile>, SinkError>>),
    /// Sent about once a second so that time-based rolling happens even
    /// when no data arrives.
    Tick,
}

/// A running sink.
#[async_trait::async_trait]
pub trait Sink: Send {
    /// The uploader of a sink that writes a remote dataset through a local
    /// spool; the engine runs it beside the pipeline and drains it at the end.
    fn take_forwarder(&mut self) -> Option<crate::storage::forward::Forwarder> {
        None
    }

    /// Consume until the channel closes. Everything still open at that
    /// point was never checkpointed and is discarded (its rows are read
    /// again from the source's durable offsets).
    async fn run(
        self: Box<Self>,
        input: mpsc::Receiver<SinkMessage>,
        checkpoint_wanted: Arc<Notify>,
    ) -> Result<SinkSummary, SinkError>;
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
    /// JSON records (or FHIR resources) to a Kafka topic.
    Kafka(KafkaSinkConfig),
    /// NEWS2 scores or alerts as FHIR resources to a FHIR server.
    FhirServer(fhir::FhirServerSinkConfig),
}

crate::kind_tagged_deserialize!(SinkConfig, "sink", {
    "parquet" => Parquet(ParquetSinkConfig),
    "live" => Live(LiveSinkConfig),
    "kafka" => Kafka(KafkaSinkConfig),
    "fhir_server" => FhirServer(fhir::FhirServerSinkConfig),
});

impl SinkConfig {
    /// The table this sink writes.
    pub fn input(&self) -> &Spanned<String> {
        match self {
            SinkConfig::Parquet(c) => &c.input,
            SinkConfig::Live(c) => &c.input,
            SinkConfig::Kafka(c) => &c.input,
            SinkConfig::FhirServer(c) => &c.input,
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        match self {
            SinkConfig::Parquet(c) => c.validate(),
            SinkConfig::Live(c) => c.validate(),
            SinkConfig::Kafka(c) => c.validate(),
            SinkConfig::FhirServer(c) => c.validate(),
        }
    }

    /// Checks that need the input table's schema (plan time).
    pub fn check_schema(&self, schema: &SchemaRef) -> Result<(), ConfigError> {
        match self {
            SinkConfig::Parquet(c) => c.check_schema(schema),
            SinkConfig::Live(c) => c.check_schema(schema),
            SinkConfig::Kafka(c) => c.check_schema(schema),
            SinkConfig::FhirServer(c) => c.check_schema(schema),
        }
    }

    /// Build the runtime, reporting through the run's handles in `ctx`.
    pub fn build(
        &self,
        name: &str,
        schema: SchemaRef,
        ctx: &SinkContext,
    ) -> Result<Box<dyn Sink>, SinkError> {
        match self {
            SinkConfig::Parquet(c) => Ok(Box::new(c.build(name, schema, ctx)?)),
            SinkConfig::Live(c) => Ok(Box::new(c.build(name, schema, ctx)?)),
            SinkConfig::Kafka(c) => Ok(Box::new(c.build(name, schema)?)),
            SinkConfig::FhirServer(c) => Ok(Box::new(c.build(name, schema)?)),
        }
    }

    /// The local directory a file sink writes (its dataset, or its spool if
    /// the dataset is remote), where the pipeline keeps its checkpoints by
    /// default (next to the data they describe).
    pub fn dataset_dir(&self) -> Option<PathBuf> {
        match self {
            SinkConfig::Parquet(c) => c.local_dir().ok(),
            SinkConfig::Live(_) | SinkConfig::Kafka(_) | SinkConfig::FhirServer(_) => None,
        }
    }
}
