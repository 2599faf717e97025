//! [`KafkaError`] and [`ConfigError`]: what the shared Kafka client code can
//! report, grouped by kind of failure: bad settings (the pipeline author's
//! to fix) and the broker or librdkafka failing (an external system; the
//! callers retry).

/// `brokers:`, `properties:` or `create_topic:` settings that cannot work.
/// The spec layer adds the YAML key and line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `brokers` is empty.
    #[error("`brokers` must name at least one host:port")]
    NoBrokers,

    /// A `brokers` entry that is not `host:port`.
    #[error("`brokers`: `{broker}` is not host:port (for example localhost:9092)")]
    BadBroker { broker: String },

    /// A librdkafka property vitalflow sets from another key, or fixes.
    #[error("{0}")]
    ReservedProperty(String),

    /// A number or duration outside its allowed range.
    #[error("{0}")]
    OutOfRange(String),
}

/// A failure talking to Kafka.
///
/// librdkafka's error is a leaf (nothing looks inside it), so the message
/// carries it inline: `{}` and `{:#}` both print `what: why`, as the
/// `anyhow` context chain did.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// The settings are invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),

    /// librdkafka refused a request or the broker answered with an error;
    /// `context` says what was being done.
    #[error("{context}: {error}")]
    Client {
        context: String,
        error: rdkafka::error::KafkaError,
    },

    /// The broker refused to create a topic.
    #[error("creating topic `{topic}`: {code}")]
    CreateTopic {
        topic: String,
        code: rdkafka::types::RDKafkaErrorCode,
    },
}

impl KafkaError {
    pub(crate) fn client(context: impl Into<String>, error: rdkafka::error::KafkaError) -> Self {
        KafkaError::Client {
            context: context.into(),
            error,
        }
    }
}
