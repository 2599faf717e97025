//! Pipeline spec: YAML in, validated [`PipelineSpec`] out.
//!
//! `raw.rs` mirrors the YAML, `validate.rs` holds every cross-key rule, and
//! `error.rs` names the file, key and line of each failure. Planning the SQL
//! against the declared schemas is the engine's job ([`crate::engine::plan`]);
//! `vitalflow validate` runs both.

mod error;
pub mod raw;
mod validate;

use std::path::{Path, PathBuf};

pub use error::SpecError;
pub use validate::{load, parse};

use crate::sinks::SinkConfig;
use crate::sources::SourceConfig;

/// A pipeline whose keys, names and references have been checked.
#[derive(Debug, Clone)]
pub struct PipelineSpec {
    pub name: String,
    /// The file it came from (used in error messages and to resolve paths).
    pub path: PathBuf,
    pub sources: Vec<SourceSpec>,
    /// In dependency order: every transform comes after the tables it reads.
    pub transforms: Vec<TransformSpec>,
    pub sinks: Vec<SinkSpec>,
    /// Where checkpoints are kept, if set explicitly: a directory, or an
    /// `s3://` / `hdfs://` location (see [`PipelineSpec::checkpoint_location`]).
    pub checkpoint_dir: Option<crate::storage::Location>,
    /// `checkpoint_store:`: the object store settings of a remote `checkpoint_dir`.
    pub checkpoint_store: std::collections::BTreeMap<String, String>,
    /// `checkpoint_retention:` (default 7 days): how long a gone instance's
    /// checkpoints are kept once nothing of theirs is needed.
    pub checkpoint_retention: std::time::Duration,
    /// UDF plugin crate directories (resolved against the file's directory).
    pub udfs: Vec<UdfSpec>,
    /// Models callable from SQL.
    pub models: Vec<ModelSpec>,
    /// Static lookup tables.
    pub tables: Vec<StaticTableSpec>,
}

#[derive(Debug, Clone)]
pub struct ModelSpec {
    pub name: String,
    pub line: u64,
    pub path: PathBuf,
    pub sidecar: Option<PathBuf>,
    pub runtime: crate::models::ModelRuntime,
}

#[derive(Debug, Clone)]
pub struct StaticTableSpec {
    pub name: String,
    pub line: u64,
    pub path: PathBuf,
}

#[derive(Debug, Clone)]
pub struct UdfSpec {
    pub dir: PathBuf,
    pub line: u64,
}

#[derive(Debug, Clone)]
pub struct SourceSpec {
    pub name: String,
    pub line: u64,
    pub config: SourceConfig,
}

#[derive(Debug, Clone)]
pub struct TransformSpec {
    pub name: String,
    pub line: u64,
    pub sql: String,
    /// Human description of where the SQL lives, for error messages.
    pub origin: String,
    /// An alert transform (then `sql` is empty).
    pub alert: Option<crate::alert::AlertConfig>,
}

#[derive(Debug, Clone)]
pub struct SinkSpec {
    pub name: String,
    pub line: u64,
    /// The table (source or transform) the sink writes.
    pub input: String,
    pub config: SinkConfig,
}

impl PipelineSpec {
    /// The directory that relative paths in the spec are resolved against.
    pub fn base_dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// Where this pipeline keeps its checkpoints: the configured directory,
    /// else `_vitalflow/<name>` in the first file sink's dataset; `None`
    /// when no sink writes files (nothing to publish atomically).
    pub fn checkpoint_location(&self) -> Option<crate::storage::Location> {
        self.checkpoint_dir.clone().or_else(|| {
            self.sinks
                .iter()
                .find_map(|s| s.config.dataset_dir())
                .map(|dir| crate::storage::Location::Local(dir.join("_vitalflow").join(&self.name)))
        })
    }
}
