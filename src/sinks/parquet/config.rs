//! YAML settings of the Parquet sink.
//!
//! Default rolling (128 MiB, 1,000,000 rows or 5 minutes, whichever first):
//! the original system flushed every 200 records or 5 s and left thousands of
//! 2-5 KB files a day, which makes every query pay per-file overhead. Those
//! values remain possible (`roll: {max_rows: 200, max_age: 5s}`), but the
//! defaults keep files large while bounding how stale the stored dataset can
//! be; the live dashboard reads the stream, not the files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arrow::datatypes::{DataType, SchemaRef};
use serde::Deserialize;

use super::sink::ParquetSink;
use crate::common::Spanned;
use crate::common::{EnvString, HumanBytes, HumanDuration};
use crate::sinks::{ConfigError, SinkContext, SinkError};
use crate::storage::store::check_settings;
use crate::storage::{Location, RemoteLocation};

/// `kind: parquet`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParquetSinkConfig {
    /// The table (source or transform) to write.
    pub input: Spanned<String>,
    /// Dataset root: a path (relative to the working directory) or URL;
    /// `${VAR:-default}` is expanded.
    pub path: EnvString,
    /// Page compression codec.
    #[serde(default)]
    pub compression: Compression,
    /// When to close a file and start the next.
    #[serde(default)]
    pub roll: RollPolicy,
    /// Rows per row group at most: the unit of pruning by row-group
    /// statistics, and of the column chunks a reader opens (each one costs
    /// a decompressor, so fewer, larger row groups read faster).
    #[serde(default = "default_row_group_rows")]
    pub row_group_rows: usize,
    /// With `sort_by`: rows sorted together (at most `row_group_rows`), the
    /// unit of the sink's buffered memory. A row group holds several sorted runs in arrival
    /// order; each run's pages stay narrow in `sort_by`, so page-index
    /// pruning works as well as with one run per row group.
    #[serde(default = "default_sort_rows")]
    pub sort_rows: usize,
    /// Rows per data page at most: the unit a page-index filter can skip
    /// inside a row group.
    #[serde(default = "default_page_rows")]
    pub page_rows: usize,
    /// Timestamp (or date) column whose UTC day names the Hive partition
    /// directory `date=YYYY-MM-DD/`; no partitioning if absent.
    #[serde(default)]
    pub partition_by_date: Option<String>,
    /// Sort each row group by these columns, so that filters on them (a
    /// patient) skip pages by statistics instead of reading everything.
    #[serde(default)]
    pub sort_by: Vec<String>,
    /// Columns that get a Parquet bloom filter (point lookups).
    #[serde(default)]
    pub bloom_filter_columns: Vec<String>,
    /// Settings of a remote store (`path: s3://...` or `hdfs://...`), on top
    /// of the usual environment variables: `object_store`'s S3 keys
    /// (`endpoint`, `region`, `access_key_id`, `allow_http`, ...) or
    /// Hadoop's `dfs.*` keys. `${VAR}` is expanded in values.
    #[serde(default)]
    pub store: BTreeMap<String, EnvString>,
    /// Where completed files of a remote dataset wait for upload.
    #[serde(default)]
    pub spool: SpoolConfig,
    /// `date=` partitions with a file open at once at most: a batch whose
    /// rows span more days closes (and stages) the oldest open file first,
    /// so hostile timestamps cannot exhaust file handles or memory.
    #[serde(default = "default_max_open_partitions")]
    pub max_open_partitions: usize,
    /// Merging closed days into one sorted file, while the pipeline runs
    /// (local, date-partitioned datasets; `vitalflow compact` does it on
    /// demand).
    #[serde(default)]
    pub compact: CompactConfig,
}

/// `compact:` of a Parquet sink.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompactConfig {
    /// Compact closed days while the pipeline runs.
    #[serde(default = "default_compact_enabled")]
    pub enabled: bool,
    /// How often to look for closed days (and once at start).
    #[serde(default = "default_compact_every")]
    pub every: HumanDuration,
    /// A past day is closed once none of its files changed for this long;
    /// in today's, only files this old are merged.
    #[serde(default = "default_compact_quiet")]
    pub quiet: HumanDuration,
    /// Merge today's files so far once this many (older than `quiet`) are
    /// not merged yet: a day written a file a minute is then a few files,
    /// not hundreds, before it closes. 0: only closed days.
    #[serde(default = "default_compact_open_day_files")]
    pub open_day_files: usize,
    /// Memory the merge sort may hold before it spills to disk.
    #[serde(default = "default_compact_memory")]
    pub memory: HumanBytes,
}

impl Default for CompactConfig {
    fn default() -> Self {
        Self {
            enabled: default_compact_enabled(),
            every: default_compact_every(),
            quiet: default_compact_quiet(),
            open_day_files: default_compact_open_day_files(),
            memory: default_compact_memory(),
        }
    }
}

fn default_compact_enabled() -> bool {
    true
}

fn default_compact_every() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(10 * 60))
}

fn default_compact_quiet() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(15 * 60))
}

fn default_compact_open_day_files() -> usize {
    32
}

fn default_compact_memory() -> HumanBytes {
    HumanBytes(256 << 20)
}

fn default_max_open_partitions() -> usize {
    16
}

/// The local store-and-forward directory of a remote dataset.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpoolConfig {
    /// Default: `$VITALFLOW_SPOOL_DIR/<scheme>/<bucket or namenode>/<prefix>`,
    /// one spool per remote dataset; the root defaults to `data/_spool`
    /// (relative to the working directory).
    #[serde(default)]
    pub path: Option<EnvString>,
    /// Completed files waiting for upload at most; beyond it the sink
    /// refuses new rows and the pipeline stops, losing nothing.
    #[serde(default = "default_spool_max_bytes")]
    pub max_bytes: HumanBytes,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        Self {
            path: None,
            max_bytes: default_spool_max_bytes(),
        }
    }
}

fn default_spool_max_bytes() -> HumanBytes {
    HumanBytes(10 * 1024 * 1024 * 1024)
}

/// When a file is closed and published.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollPolicy {
    #[serde(default = "default_max_rows")]
    pub max_rows: u64,
    #[serde(default = "default_max_bytes")]
    pub max_bytes: HumanBytes,
    #[serde(default = "default_max_age")]
    pub max_age: HumanDuration,
}

impl Default for RollPolicy {
    fn default() -> Self {
        Self {
            max_rows: default_max_rows(),
            max_bytes: default_max_bytes(),
            max_age: default_max_age(),
        }
    }
}

/// Parquet page compression.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// As the original system wrote.
    Snappy,
    /// Smaller files at a similar speed; the default.
    #[default]
    Zstd,
    Lz4,
    Gzip,
    None,
}

fn default_row_group_rows() -> usize {
    1024 * 1024
}
fn default_sort_rows() -> usize {
    128 * 1024
}
fn default_page_rows() -> usize {
    8 * 1024
}
fn default_max_rows() -> u64 {
    1_000_000
}
fn default_max_bytes() -> HumanBytes {
    HumanBytes(128 * 1024 * 1024)
}
fn default_max_age() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(300))
}

impl ParquetSinkConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.compact.enabled && self.compact.every.0 < std::time::Duration::from_millis(100) {
            return Err(ConfigError::Invalid(format!(
                "`compact.every` ({:?}) must be at least 100ms: it is how often the dataset is \
                 listed for closed days",
                self.compact.every.0
            )));
        }
        if self.compact.enabled && self.compact.memory.0 < (16 << 20) {
            return Err(ConfigError::Invalid(format!(
                "`compact.memory` ({} bytes) must be at least 16MiB: the merge sort needs room \
                 for a batch of every file it merges",
                self.compact.memory.0
            )));
        }
        let location = Location::parse(self.path.as_str(), Path::new("."))
            .map_err(|error| ConfigError::Location { key: "path", error })?;
        match &location {
            Location::Remote(remote) => {
                check_settings(remote.kind, &self.store_settings())?;
                if self.spool.max_bytes.0 < 64 * 1024 {
                    return Err(ConfigError::Invalid(format!(
                        "`spool.max_bytes` ({} bytes) must be at least 64KiB",
                        self.spool.max_bytes.0
                    )));
                }
            }
            Location::Local(_) => {
                if !self.store.is_empty() {
                    return Err(ConfigError::Conflict(format!(
                        "`store` settings apply to s3:// and hdfs:// locations, but `path` is the local directory {location}"
                    )));
                }
                if self.spool.path.is_some() {
                    return Err(ConfigError::Conflict(format!(
                        "`spool` applies to s3:// and hdfs:// locations, but `path` is the local directory {location}"
                    )));
                }
            }
        }
        if self.max_open_partitions == 0 || self.max_open_partitions > 1024 {
            return Err(ConfigError::Invalid(format!(
                "`max_open_partitions` must be between 1 and 1024, got {}",
                self.max_open_partitions
            )));
        }
        if self.roll.max_rows == 0 {
            return Err(ConfigError::Invalid(
                "`roll.max_rows` must be greater than zero".into(),
            ));
        }
        if self.roll.max_bytes.0 < 1024 {
            return Err(ConfigError::Invalid(
                "`roll.max_bytes` must be at least 1KiB".into(),
            ));
        }
        if self.roll.max_age.0.is_zero() {
            return Err(ConfigError::Invalid(
                "`roll.max_age` must be greater than zero".into(),
            ));
        }
        if self.row_group_rows == 0 {
            return Err(ConfigError::Invalid(
                "`row_group_rows` must be greater than zero".into(),
            ));
        }
        if self.sort_rows == 0 {
            return Err(ConfigError::Invalid(
                "`sort_rows` must be greater than zero".into(),
            ));
        }
        if self.page_rows == 0 {
            return Err(ConfigError::Invalid(
                "`page_rows` must be greater than zero".into(),
            ));
        }
        Ok(())
    }

    /// Column checks against the input table's schema (plan time).
    pub fn check_schema(&self, schema: &SchemaRef) -> Result<(), ConfigError> {
        let find = |key: &str, col: &str| {
            schema.field_with_name(col).map_err(|_| {
                ConfigError::Schema(format!(
                    "`{key}` names column `{col}`, which the input table does not have (columns: {})",
                    column_list(schema)
                ))
            })
        };
        if let Some(col) = &self.partition_by_date {
            let field = find("partition_by_date", col)?;
            if !matches!(
                field.data_type(),
                DataType::Timestamp(..) | DataType::Date32 | DataType::Date64
            ) {
                return Err(ConfigError::Schema(format!(
                    "`partition_by_date` column `{col}` is {}, but must be a timestamp or date",
                    field.data_type()
                )));
            }
            if schema.field_with_name("date").is_ok() {
                return Err(ConfigError::Schema("the input table has a column `date`, which clashes with the `date=` partition column; rename it in SQL".into()));
            }
        }
        for col in &self.sort_by {
            find("sort_by", col)?;
        }
        for col in &self.bloom_filter_columns {
            find("bloom_filter_columns", col)?;
        }
        Ok(())
    }

    /// The dataset root, relative paths taken from the working directory.
    pub fn location(&self) -> Result<Location, crate::storage::ConfigError> {
        Location::parse(self.path.as_str(), Path::new("."))
    }

    /// `store:` with `${VAR}`s expanded.
    pub fn store_settings(&self) -> BTreeMap<String, String> {
        self.store
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().to_string()))
            .collect()
    }

    /// The directory this sink writes into: the dataset itself when it is
    /// local, its spool when it is remote.
    pub fn local_dir(&self) -> Result<PathBuf, crate::storage::ConfigError> {
        Ok(match self.location()? {
            Location::Local(dir) => dir,
            Location::Remote(remote) => self.spool_dir(&remote),
        })
    }

    /// The spool of a remote dataset.
    pub fn spool_dir(&self, remote: &RemoteLocation) -> PathBuf {
        match &self.spool.path {
            Some(path) => PathBuf::from(path.as_str()),
            None => default_spool_dir(remote),
        }
    }

    pub fn build(
        &self,
        name: &str,
        schema: SchemaRef,
        ctx: &SinkContext,
    ) -> Result<ParquetSink, SinkError> {
        self.check_schema(&schema)?;
        ParquetSink::try_new(name, self.clone(), schema, &ctx.stores)
    }
}

/// `$VITALFLOW_SPOOL_DIR/s3/<bucket>/<prefix>` (default root `data/_spool`):
/// derived from the target, so every sink (and every query) naming the same
/// dataset finds the same spool.
pub fn default_spool_dir(remote: &RemoteLocation) -> PathBuf {
    let url = remote.url();
    let root = std::env::var_os("VITALFLOW_SPOOL_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("data").join("_spool"));
    let mut dir = root.join(url.scheme());
    let host = match url.port() {
        Some(port) => format!("{}_{port}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_string(),
    };
    dir.push(host);
    for part in url
        .path()
        .split('/')
        .filter(|p| !p.is_empty() && *p != "..")
    {
        dir.push(part);
    }
    dir
}

fn column_list(schema: &SchemaRef) -> String {
    schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> ParquetSinkConfig {
        serde_saphyr::from_str(&format!("input: t\npath: /tmp/v\n{extra}")).unwrap()
    }

    #[test]
    fn compaction_settings_are_checked() {
        let defaults = config("");
        assert!(defaults.compact.enabled);
        assert_eq!(
            defaults.compact.quiet.0,
            std::time::Duration::from_secs(900)
        );
        defaults.validate().unwrap();
        let spin = config("compact: {every: 0s}")
            .validate()
            .unwrap_err()
            .to_string();
        assert!(spin.contains("`compact.every`"), "{spin}");
        let small = config("compact: {memory: 1MiB}")
            .validate()
            .unwrap_err()
            .to_string();
        assert!(small.contains("`compact.memory`"), "{small}");
        config("compact: {enabled: false, every: 0s}")
            .validate()
            .unwrap();
        assert!(
            serde_saphyr::from_str::<ParquetSinkConfig>("input: t\npath: /v\ncompact: {evry: 1m}")
                .is_err()
        );
    }
}
