//! Sources: where records enter a pipeline.
//!
//! A source runs as its own task and pushes [`SourceBatch`]es into a bounded
//! channel; when the engine falls behind, `send` waits, which is the
//! backpressure that keeps memory flat. [`SourceConfig`] is the one list of
//! source kinds, keyed by the YAML `kind` string.

pub mod simulator;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use simulator::SimulatorConfig;

/// One micro-batch from a source.
#[derive(Debug, Clone)]
pub struct SourceBatch {
    pub batch: RecordBatch,
    /// Where this batch ends in the source's own terms, so that the source
    /// can commit it once every sink has durably published the rows derived
    /// from it.
    pub position: SourcePosition,
}

/// A source-specific position. The simulator counts batches; Kafka will
/// carry per-partition offset ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourcePosition {
    /// The n-th batch of a source that has nothing to commit.
    Sequence(u64),
}

/// What a running source is handed by the engine.
pub struct SourceContext {
    /// Bounded: `send` waits while the engine is busy.
    pub output: mpsc::Sender<SourceBatch>,
    /// Cancelled on Ctrl-C / SIGTERM; the source returns promptly and the
    /// engine then drains and flushes everything downstream.
    pub shutdown: CancellationToken,
}

/// A running source.
#[async_trait::async_trait]
pub trait Source: Send {
    /// Produce batches until the source is exhausted or `ctx.shutdown` fires.
    async fn run(self: Box<Self>, ctx: SourceContext) -> anyhow::Result<SourceSummary>;
}

/// What a source did, for the end-of-run report.
#[derive(Debug, Default, Clone)]
pub struct SourceSummary {
    pub records: u64,
    pub batches: u64,
}

/// Every source kind, keyed by `kind:` (the entry's first key) in the YAML.
#[derive(Debug, Clone)]
pub enum SourceConfig {
    /// Built-in bedside-monitor simulator.
    Simulator(SimulatorConfig),
}

crate::kind_tagged_deserialize!(SourceConfig, "source", {
    "simulator" => Simulator(SimulatorConfig),
});

impl SourceConfig {
    /// Rules that serde cannot express (ranges, combinations).
    pub fn validate(&self) -> Result<(), String> {
        match self {
            SourceConfig::Simulator(c) => c.validate(),
        }
    }

    /// The Arrow schema of the table this source produces.
    pub fn schema(&self) -> SchemaRef {
        match self {
            SourceConfig::Simulator(_) => simulator::vitals_schema(),
        }
    }

    /// Start-ready runtime component.
    pub fn build(&self) -> anyhow::Result<Box<dyn Source>> {
        match self {
            SourceConfig::Simulator(c) => Ok(Box::new(c.build())),
        }
    }
}
