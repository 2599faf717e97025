//! [`AckError`]: why an acknowledgement could not be recorded or the
//! recorded ones could not be read, grouped by kind: local I/O, reading
//! the dataset back, the Parquet sink it writes through, publishing.

use crate::sinks::SinkError;

#[derive(Debug, thiserror::Error)]
pub enum AckError {
    /// A local file operation failed; `context` says which and on what path.
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    /// A file of the dataset does not read as acknowledgements.
    #[error("alert acknowledgements: reading {path}: {why}")]
    Read { path: String, why: String },

    /// A batch without the acknowledgement columns (a foreign file in the
    /// dataset's directory).
    #[error("not an acknowledgement table: {0}")]
    Layout(String),

    /// The Parquet sink settings generated for the dataset do not parse.
    #[error("alert acknowledgements: sink settings")]
    Settings(#[source] serde_saphyr::Error),

    /// The Parquet sink under the dataset failed (or its settings are invalid).
    #[error(transparent)]
    Sink(#[from] SinkError),

    /// The acknowledgement could not be turned into an Arrow batch.
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),

    /// The written file could not be published.
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),

    /// The sink's task has ended (an earlier write failed, or shutdown).
    #[error("the alert acknowledgement writer has stopped")]
    Stopped,
}

impl From<crate::sinks::ConfigError> for AckError {
    fn from(error: crate::sinks::ConfigError) -> Self {
        AckError::Sink(error.into())
    }
}
