//! [`ConfigError`] and [`SinkError`]: what can be wrong with a sink's
//! settings (the pipeline author's to fix, reported with the YAML line by
//! the spec layer) and what can fail while it runs, grouped by kind of
//! failure.

/// A sink's settings that cannot work, alone or against its input table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A value out of its range, or empty where one is needed.
    #[error("{0}")]
    Invalid(String),

    /// Settings that contradict each other or a value vitalflow fixes.
    #[error("{0}")]
    Conflict(String),

    /// The input table lacks a column the settings name, or has it with
    /// the wrong type.
    #[error("{0}")]
    Schema(String),

    /// A location key (`path`) that does not parse.
    #[error("`{key}`: {error}")]
    Location {
        key: &'static str,
        error: crate::storage::ConfigError,
    },

    /// A `store:` setting the object store does not know.
    #[error(transparent)]
    Store(#[from] crate::storage::ConfigError),

    /// `brokers:` or `properties:` of a Kafka sink.
    #[error(transparent)]
    Client(#[from] crate::kafka::ConfigError),

    /// `create_topic:` of a Kafka sink.
    #[error("create_topic: {0}")]
    CreateTopic(crate::kafka::ConfigError),
}
