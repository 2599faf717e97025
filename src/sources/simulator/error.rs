//! [`PublishError`]: why `vitalflow simulate` stopped publishing, grouped by
//! kind of failure: its settings (the user's to fix), Kafka (an external
//! system), encoding the readings, or vitalflow itself (a bug).
//!
//! The simulator as a pipeline source fails with the sources' own
//! [`SourceError`](crate::sources::SourceError).

use crate::kafka::KafkaError;
use crate::sources::ConfigError;

/// A publishing run that could not go on.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// `start:` is not a time (validation normally catches it first).
    #[error(transparent)]
    Config(#[from] ConfigError),

    /// Kafka cannot be reached or refused a request (the brokers, creating
    /// the topic, the producer).
    #[error(transparent)]
    Kafka(#[from] KafkaError),

    /// The final flush timed out with deliveries still outstanding.
    #[error("{undelivered} of {produced} messages were still undelivered")]
    Undelivered {
        undelivered: u64,
        produced: u64,
        #[source]
        source: KafkaError,
    },

    /// Arrow could not write the readings as JSON.
    #[error("encoding readings as JSON")]
    Encode(#[source] arrow::error::ArrowError),

    /// The thread waiting for the brokers panicked (a bug).
    #[error("waiting for brokers")]
    Panicked(#[source] tokio::task::JoinError),

    /// A broken invariant inside vitalflow: a bug, please report it.
    #[error("internal error (this is a bug in vitalflow, please report it): {0}")]
    Internal(String),
}
