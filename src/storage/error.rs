//! [`StorageError`] and [`ConfigError`]: what can go wrong naming, opening,
//! writing and uploading a dataset, grouped by kind of failure (as in
//! DataFusion's `DataFusionError`): a bad location or setting (the pipeline
//! author's to fix), local I/O, the object store (an external system), or
//! a bug in vitalflow.

/// A location or `store:` setting that cannot be used. Caught at validation
/// time; the spec layer adds the YAML key and line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The location string is empty.
    #[error("location is empty")]
    Empty,

    /// The URL carries a user name or password. The message quotes only the
    /// scheme, never the credentials.
    #[error(
        "a location must not carry credentials (`{scheme}://user:password@...`): put them in \
         the sink's `store:` settings (e.g. `access_key_id`, `secret_access_key: \
         ${{AWS_SECRET_ACCESS_KEY}}`) or the AWS_* environment variables"
    )]
    Credentials { scheme: String },

    /// A `file://` URL that names no local path.
    #[error("`{raw}` is not a valid file:// URL")]
    FileUrl { raw: String },

    /// A scheme vitalflow does not speak (including WebHDFS).
    #[error("`{raw}`: {reason}")]
    Scheme { raw: String, reason: String },

    /// An S3 location without a bucket, or an HDFS one without a namenode.
    #[error("`{raw}` names no {what}")]
    NoHost { raw: String, what: &'static str },

    /// A well-formed URL with parts a location does not take.
    #[error("`{raw}`: {reason}")]
    Url { raw: String, reason: String },

    /// The URL does not parse after normalisation.
    #[error("{0}")]
    Parse(#[from] url::ParseError),

    /// A `store:` key the object store does not know.
    #[error(
        "`store.{key}` is not an S3 setting (known: endpoint, region, \
         access_key_id, secret_access_key, session_token, allow_http, \
         virtual_hosted_style_request, timeout, connect_timeout, ...)"
    )]
    UnknownSetting { key: String },
}

/// A storage failure at run time.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The location or a `store:` setting is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),

    /// A local file operation failed; `context` says which and on what path.
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    /// The object store client could not be built from the settings.
    #[error("opening {what}: {message}")]
    OpenStore { what: String, message: String },

    /// The object store (S3, HDFS) refused or failed a request.
    #[error("{context}")]
    ObjectStore {
        context: String,
        #[source]
        source: object_store::Error,
    },

    /// A broken invariant inside vitalflow: a bug, please report it.
    #[error("internal error (this is a bug in vitalflow, please report it): {0}")]
    Internal(String),
}

impl StorageError {
    /// An I/O error with what was being done, like `anyhow::Context`: the
    /// message is the context; the I/O error stays the `source()`, so
    /// `{:#}` prints `context: cause` and the chain still finds it.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        StorageError::Io {
            context: context.into(),
            source,
        }
    }

    /// An object-store error with what was being done.
    pub fn object_store(context: impl Into<String>, source: object_store::Error) -> Self {
        StorageError::ObjectStore {
            context: context.into(),
            source,
        }
    }
}

/// `.context("...")` on I/O results, in the style of `anyhow::Context`.
pub trait IoContext<T> {
    fn io_context<C: Into<String>>(self, context: impl FnOnce() -> C) -> Result<T, StorageError>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn io_context<C: Into<String>>(self, context: impl FnOnce() -> C) -> Result<T, StorageError> {
        self.map_err(|e| StorageError::io(context(), e))
    }
}
