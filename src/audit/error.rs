//! [`AuditError`]: what can stop the audit trail's writer, grouped by kind of
//! failure: local I/O, the Parquet sink it writes through (with that layer's
//! [`SinkError`]), publishing the staged files, or a bug in vitalflow.
//! When the writer stops, audited routes answer 503 rather than serve
//! requests unrecorded.

use crate::sinks::SinkError;

/// An audit trail failure.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// A local file operation failed; `context` says which and on what path.
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    /// The Parquet sink settings generated for the dataset do not parse.
    #[error("audit trail: sink settings")]
    Settings(#[source] serde_saphyr::Error),

    /// The Parquet sink under the trail failed (or its settings are invalid).
    #[error(transparent)]
    Sink(#[from] SinkError),

    /// Records could not be turned into an Arrow batch.
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),

    /// A staged file could not be published.
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),

    /// The sink's task ended before it took a batch or answered a
    /// checkpoint (its own error, if any, is reported when it is joined).
    #[error("the audit sink stopped")]
    SinkStopped {
        #[source]
        source: Option<tokio::sync::oneshot::error::RecvError>,
    },

    /// The writer's or the sink's task panicked (a bug) or was cancelled.
    #[error("{task} panicked")]
    Panicked {
        task: &'static str,
        #[source]
        source: tokio::task::JoinError,
    },

    /// A broken invariant inside vitalflow: a bug, please report it.
    #[error("internal error (this is a bug in vitalflow, please report it): {0}")]
    Internal(String),
}

impl From<crate::sinks::ConfigError> for AuditError {
    fn from(error: crate::sinks::ConfigError) -> Self {
        AuditError::Sink(error.into())
    }
}
