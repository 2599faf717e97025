//! [`ConfigError`]: what can be wrong with a source's settings, grouped by
//! kind of failure. The spec layer adds the YAML key and line.
//!
//! [`SourceError`]: why a running source stopped ([`Source::run`](super::Source::run)
//! and [`SourceConfig::build`](super::SourceConfig::build)), and
//! [`AssignmentLost`], the one failure the run recovers from by restarting.

use crate::common::BoxError;

/// A source's settings that cannot work.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// A value out of its range, or empty where one is needed.
    #[error("{0}")]
    Invalid(String),

    /// `start:` is not an RFC 3339 time.
    #[error("`start` is not an RFC 3339 time (`{value}`): {error}")]
    Start {
        value: String,
        error: chrono::ParseError,
    },

    /// `event_time.column` names a column the source's table lacks, or one
    /// that is not a timestamp.
    #[error("`event_time.column`: {0}")]
    EventTimeColumn(String),

    /// The Kafka source's own checks.
    #[error(transparent)]
    Kafka(#[from] super::kafka::ConfigError),

    /// The FHIR ingest source's checks.
    #[error("{0}")]
    Ingest(String),
}

/// A running source's failure, grouped by who has to act: its settings
/// (the pipeline author), Kafka or the engine's checkpoints (an external
/// system or another layer), or vitalflow itself (a bug).
///
/// Records that do not decode are not errors: they become rows of the
/// source's dead-letter table and the source goes on.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Settings refused when the source is built or starts (validation
    /// normally catches them first).
    #[error(transparent)]
    Config(#[from] ConfigError),

    /// The shared Kafka client code failed (waiting for the brokers,
    /// creating a topic).
    #[error(transparent)]
    Kafka(#[from] crate::kafka::KafkaError),

    /// librdkafka refused a request of the consumer; `context` says which
    /// (creating it, subscribing, assigning partitions).
    #[error("{context}")]
    Consumer {
        context: String,
        #[source]
        source: rdkafka::error::KafkaError,
    },

    /// The group moved the partitions on without revoking them first: the
    /// run stops and restarts from the last checkpoint.
    #[error(transparent)]
    AssignmentLost(#[from] AssignmentLost),

    /// The engine's checkpoints failed: the one the source asked for, or
    /// reading them to resume partitions; `context` says which.
    #[error("{context}")]
    Checkpoint {
        context: &'static str,
        #[source]
        source: BoxError,
    },

    /// An Arrow kernel failed on rows that decoded (building the decoder,
    /// joining or filtering rows, building the dead letters).
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),

    /// The event times of a decoded batch cannot be read.
    #[error(transparent)]
    EventTime(#[from] crate::common::EventTimeError),

    /// A thread of the source panicked (a bug); `what` names it.
    #[error("{what} panicked")]
    Panicked {
        what: String,
        #[source]
        source: tokio::task::JoinError,
    },

    /// A broken invariant inside vitalflow: a bug, please report it.
    #[error("internal error (this is a bug in vitalflow, please report it): {0}")]
    Internal(String),

    /// What the source was doing when `source` happened.
    #[error("{context}")]
    Context {
        context: String,
        #[source]
        source: Box<SourceError>,
    },
}

impl SourceError {
    /// `self`, with what was being done when it happened.
    pub fn context(self, context: impl Into<String>) -> Self {
        SourceError::Context {
            context: context.into(),
            source: Box::new(self),
        }
    }

    /// Whether this is (or wraps) [`SourceError::AssignmentLost`]: the run
    /// restarts from its last checkpoint instead of failing.
    pub fn is_assignment_lost(&self) -> bool {
        match self {
            SourceError::AssignmentLost(_) => true,
            SourceError::Context { source, .. } => source.is_assignment_lost(),
            _ => false,
        }
    }
}

/// A Kafka consumer lost its partitions without revoking them first (the
/// group moved on while this instance was stalled): rows it read since the
/// last checkpoint may already be another instance's. The run stops
/// without publishing them and restarts from the last checkpoint.
#[derive(Debug, thiserror::Error)]
#[error(
    "source `{source_name}` lost its partitions ({partitions}) to a rebalance it missed; restarting from the last checkpoint"
)]
pub struct AssignmentLost {
    pub source_name: String,
    pub partitions: String,
}
