//! Serde structs that mirror the pipeline YAML one-to-one.
//!
//! Unknown keys are rejected everywhere (`deny_unknown_fields`), so a typo is
//! an error with its line instead of a silently ignored setting. Nothing after
//! `spec/` reads these types: [`super::validate`] turns them into a
//! [`super::PipelineSpec`].
//!
//! YAML parser choice: `serde-saphyr`. `serde_yaml` is deprecated and its
//! drop-in forks (`serde_yaml_ng`, `serde_norway`) keep the old unsafe-libyaml
//! core; serde-saphyr is actively maintained, pure Rust, panic-free on hostile
//! input, and reports line/column for every error and for [`Spanned`] values,
//! which is what lets cross-key errors (a sink reading a table that does not
//! exist) point at a line too.

use crate::common::{EnvString, Spanned};
use indexmap::IndexMap;
use serde::Deserialize;

use crate::sinks::SinkConfig;
use crate::sources::SourceConfig;

/// The whole pipeline file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPipeline {
    /// Pipeline name, used in logs and metrics.
    pub name: Spanned<String>,
    /// Free text for humans.
    #[serde(default)]
    pub description: Option<String>,
    /// Named sources; each name becomes a table that transforms can read.
    pub sources: IndexMap<String, Spanned<SourceConfig>>,
    /// Named SQL transforms; each name becomes a table.
    #[serde(default)]
    pub transforms: IndexMap<String, Spanned<RawTransform>>,
    /// Named sinks; each reads one table (`input`).
    pub sinks: IndexMap<String, Spanned<SinkConfig>>,
    /// Where checkpoints (the manifests that publish files and record
    /// source offsets) are kept; default: `_vitalflow/<pipeline>` inside the
    /// first Parquet sink's dataset, so the state travels with the data.
    #[serde(default)]
    pub checkpoint_dir: Option<EnvString>,
    /// Settings of the object store holding `checkpoint_dir` when it is an
    /// `s3://` or `hdfs://` location (the keys of a Parquet sink's `store:`).
    #[serde(default)]
    pub checkpoint_store: std::collections::BTreeMap<String, EnvString>,
    /// How long the checkpoints of an instance that is gone are kept once
    /// another owns all it had (default 7 days).
    #[serde(default)]
    pub checkpoint_retention: Option<crate::common::HumanDuration>,
    /// Arroyo UDF plugin crates (directories, relative to this file), built
    /// if stale and callable from every transform's SQL.
    #[serde(default)]
    pub udfs: Vec<Spanned<EnvString>>,
    /// Risk models callable from SQL by name (`name(feature, ...)`).
    #[serde(default)]
    pub models: IndexMap<String, Spanned<RawModel>>,
    /// Static lookup tables (CSV or Parquet) that transforms may join.
    #[serde(default)]
    pub tables: IndexMap<String, Spanned<RawTable>>,
}

/// `models.<name>`: an ONNX model and its sidecar.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    /// The `.onnx` file, relative to the pipeline file.
    pub path: EnvString,
    /// The sidecar JSON; default: the `.onnx` path with `.json`.
    #[serde(default)]
    pub sidecar: Option<EnvString>,
    /// `trees` (default) or `tract`; see `models::sql`.
    #[serde(default)]
    pub runtime: crate::models::ModelRuntime,
}

/// `tables.<name>`: a static table read once at start.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTable {
    /// A `.csv` file (header row), or a `.parquet` file or directory.
    pub path: EnvString,
}

/// One transform: exactly one of `sql` (inline), `sql_file` or `alert`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTransform {
    /// Inline SQL.
    #[serde(default)]
    pub sql: Option<Spanned<String>>,
    /// Path to a `.sql` file, relative to the pipeline file.
    #[serde(default)]
    pub sql_file: Option<Spanned<String>>,
    /// An escalation-alert transform instead of SQL.
    #[serde(default)]
    pub alert: Option<crate::alert::AlertConfig>,
    /// Free text for humans.
    #[serde(default)]
    pub description: Option<String>,
}
