//! [`ConfigError`]: what can be wrong with a source's settings, grouped by
//! kind of failure. The spec layer adds the YAML key and line.

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
}
