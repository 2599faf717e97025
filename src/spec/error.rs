//! [`SpecError`]: everything that can be wrong with a pipeline file, each
//! variant naming the file, the YAML key path or line, and why.

use std::path::PathBuf;

/// A pipeline spec that cannot be run. Every message says *what* is wrong,
/// *where* (file, key path, line) and *why*, so the platform engineer can fix
/// the YAML without reading vitalflow's source.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The file could not be read at all.
    #[error("cannot read pipeline file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// YAML syntax error, unknown key, wrong type or bad value, reported by the
    /// deserializer with its line and column.
    #[error("{path}:{line}:{column}: {message}{snippet}")]
    Syntax {
        path: PathBuf,
        line: u64,
        column: u64,
        message: String,
        /// The offending line of the file, to show the key next to the message.
        snippet: String,
    },

    /// A value that parsed but breaks a rule that spans several keys.
    #[error("{path}:{line}: `{key}`: {message}")]
    Invalid {
        path: PathBuf,
        /// The YAML key path, such as `sinks.vitals.input`.
        key: String,
        line: u64,
        message: String,
    },

    /// A referenced SQL file is missing or unreadable.
    #[error("{path}:{line}: `{key}`: cannot read SQL file {sql_file}: {source}")]
    SqlFile {
        path: PathBuf,
        key: String,
        line: u64,
        sql_file: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The SQL of a transform does not plan against the declared schemas.
    #[error("{path}: transform `{transform}` ({origin}): {message}")]
    Sql {
        path: PathBuf,
        transform: String,
        /// Where the SQL came from: `inline at line N` or the SQL file.
        origin: String,
        message: String,
    },
}

impl SpecError {
    pub(crate) fn invalid(
        path: &std::path::Path,
        key: impl Into<String>,
        line: u64,
        message: impl std::fmt::Display,
    ) -> Self {
        SpecError::Invalid {
            path: path.to_path_buf(),
            key: key.into(),
            line,
            message: message.to_string(),
        }
    }
}
