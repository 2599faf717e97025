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

/// A sink failure while it is built or runs, grouped by kind of failure (as
/// DataFusion's `DataFusionError`): its settings (the pipeline author's),
/// local I/O, encoding the rows (Arrow, Parquet, JSON), the object store or
/// Kafka (external systems, retried by a restart), a full spool
/// (back-pressure that outlived the run), or a bug in vitalflow.
///
/// What was being done is part of the message ([`SinkError::Io`], or
/// [`SinkError::Context`] around any other kind, added with
/// [`SinkResultExt::context`]) and the cause stays the `source()`, so
/// [`ErrorChain`](crate::common::ErrorChain) prints `what: cause: root cause`
/// on one line.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The settings cannot work against the input table. Only the message
    /// is shown (no `source()`), as these are checked again at plan time
    /// with the YAML line added there.
    #[error("{0}")]
    Config(ConfigError),

    /// A local file operation failed; `context` says which and on what path.
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    /// An Arrow kernel failed (cast, take, concat, sort, JSON encoding).
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),

    /// The Parquet writer failed.
    #[error(transparent)]
    Parquet(#[from] parquet::errors::ParquetError),

    /// Rows could not be turned into JSON values (live sink).
    #[error(transparent)]
    Json(#[from] serde_json::Error),

    /// The dataset's object store could not be opened or written.
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),

    /// The run stopped while the spool of a remote dataset was still full
    /// (the store had been unreachable); its message says what to do.
    #[error(transparent)]
    SpoolFull(#[from] crate::storage::spool::SpoolFull),

    /// The Kafka client or broker failed.
    #[error(transparent)]
    Kafka(#[from] crate::kafka::KafkaError),

    /// The broker did not acknowledge some messages before a checkpoint.
    #[error(
        "{failed} messages to `{topic}` could not be delivered; the rows are read again after a restart"
    )]
    Undelivered { failed: u64, topic: String },

    /// A checkpoint failed: its error went to the engine with the reply, and
    /// this copy of its message (the whole chain, on one line) ends the sink.
    #[error("{0}")]
    CheckpointFailed(String),

    /// The sink's blocking thread panicked (a bug) or was cancelled.
    #[error("{thread} panicked")]
    Panicked {
        thread: &'static str,
        #[source]
        source: tokio::task::JoinError,
    },

    /// Another sink error with what was being done (the sink's name, the
    /// step), in the style of `anyhow::Context`.
    #[error("{context}")]
    Context {
        context: String,
        #[source]
        source: Box<SinkError>,
    },

    /// A dataset that cannot be compacted, and why.
    #[error("sink `{sink}` cannot be compacted: {reason}")]
    Compaction { sink: String, reason: String },

    /// Reading and sorting a day's files for compaction (DataFusion) failed.
    #[error(transparent)]
    DataFusion(#[from] datafusion::error::DataFusionError),

    /// A broken invariant inside vitalflow: a bug, please report it.
    #[error("internal error (this is a bug in vitalflow, please report it): {0}")]
    Internal(String),
}

impl SinkError {
    /// An I/O error with what was being done: the message is the context;
    /// the I/O error stays the `source()`.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        SinkError::Io {
            context: context.into(),
            source,
        }
    }

    /// This error with what was being done in front of it.
    pub fn context(self, context: impl Into<String>) -> Self {
        SinkError::Context {
            context: context.into(),
            source: Box::new(self),
        }
    }
}

impl From<ConfigError> for SinkError {
    fn from(error: ConfigError) -> Self {
        SinkError::Config(error)
    }
}

impl From<crate::storage::ConfigError> for SinkError {
    fn from(error: crate::storage::ConfigError) -> Self {
        SinkError::Config(ConfigError::Store(error))
    }
}

/// `.context("...")` on results whose error converts into a [`SinkError`],
/// in the style of `anyhow::Context`.
pub trait SinkResultExt<T> {
    fn context(self, context: impl Into<String>) -> Result<T, SinkError>;
    fn with_context<C: Into<String>>(self, context: impl FnOnce() -> C) -> Result<T, SinkError>;
}

impl<T, E: Into<SinkError>> SinkResultExt<T> for Result<T, E> {
    fn context(self, context: impl Into<String>) -> Result<T, SinkError> {
        self.map_err(|e| e.into().context(context))
    }

    fn with_context<C: Into<String>>(self, context: impl FnOnce() -> C) -> Result<T, SinkError> {
        self.map_err(|e| e.into().context(context()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::ErrorChain;

    /// Context and cause print on one line, as `anyhow`'s `{:#}` did.
    #[test]
    fn the_chain_prints_the_context_then_the_cause() {
        let io = SinkError::io("creating /data/out", std::io::Error::other("disk full"));
        let e = Err::<(), _>(io).context("sink `vitals`").unwrap_err();
        assert_eq!(
            ErrorChain(&e).to_string(),
            "sink `vitals`: creating /data/out: disk full"
        );
        let arrow = arrow::error::ArrowError::SchemaError("bad".into());
        let e = Err::<(), _>(arrow)
            .with_context(|| "computing the date partition")
            .unwrap_err();
        assert_eq!(
            ErrorChain(&e).to_string(),
            "computing the date partition: Schema error: bad"
        );
    }

    /// Settings errors show their message only, as `anyhow::Error::msg` did.
    #[test]
    fn a_config_error_is_its_message() {
        let e = SinkError::from(ConfigError::Schema("no column `ts`".into()));
        assert_eq!(ErrorChain(&e).to_string(), "no column `ts`");
        assert!(std::error::Error::source(&e).is_none());
    }
}
