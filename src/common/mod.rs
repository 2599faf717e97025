//! The leaf layer: small value types and helpers every other layer shares.
//! It imports nothing of ours, so anything may import it without making a
//! cycle (`tests/it/layers.rs` checks that).
//!
//! - [`units`]: durations and byte sizes as written in YAML (`5m`, `128MiB`).
//! - [`env`]: `${VAR}` references in YAML values.
//! - [`tagged`]: `kind:`-tagged component enums that keep error lines;
//!   [`Spanned`] values that keep theirs.
//! - [`offsets`]: Kafka partitions and offsets, and the seam through which a
//!   source reads what the engine made durable.
//! - [`event_time`]: a timestamp column as epoch milliseconds.
//! - [`digest`]: SHA-256 as hex.
//! - [`backoff`]: retry delays (exponential, from `backon`).
//! - [`error_chain`]: an error and its causes on one line, for logs.
//! - [`partition_board`]: the partitions this instance owns, for `/health`.
//! - [`ingest`]: the channel between the server and an ingest source.
//! - [`priority`]: background threads at a lower CPU priority.

pub mod backoff;
pub mod digest;
pub mod env;
pub mod error_chain;
pub mod event_time;
pub mod ingest;
pub mod offsets;
pub mod partition_board;
pub mod priority;
pub mod tagged;
pub mod units;

/// A failure whose type the receiver does not know: what crosses a seam
/// between layers (a trait implemented above, called below).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub use env::{EnvError, EnvString, expand_env};
pub use error_chain::ErrorChain;
pub use event_time::{EventTimeError, event_times_ms};
pub use ingest::{
    IngestFailure, IngestHubs, IngestReply, IngestRequest, NoIngestSource, PartOutcome,
};
pub use offsets::{DurableOffsetsReader, Offsets, TopicPartition};
pub use partition_board::{PartitionBoard, PartitionStatus};
pub use serde_saphyr::Spanned;
pub use tagged::read_kind;
pub use units::{HumanBytes, HumanDuration};
