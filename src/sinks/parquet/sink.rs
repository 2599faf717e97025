//! The Parquet sink runtime: routes rows to per-date files, rolls them by
//! rows / bytes / age, and stages finished files for the engine's next
//! checkpoint to publish.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, AsArray, UInt32Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Date32Type, SchemaRef};
use arrow::record_batch::RecordBatch;
use parquet::basic::{Compression as ParquetCompression, ZstdLevel};
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use tokio::sync::{Notify, mpsc};

use super::config::{Compression, ParquetSinkConfig};
use super::events::{ParquetFileStaged, SinkPaused, SinkResumed};
use super::naming::{STAGING_DIR, data_file_name, date_partition, is_in_progress_file};
use super::writer::RollingFile;
use crate::common::ErrorChain;
use crate::sinks::{Sink, SinkError, SinkMessage, SinkResultExt, SinkSummary};
use crate::storage::forward::Forwarder;
use crate::storage::spool::Spool;
use crate::storage::status::StoreStatusBoard;
use crate::storage::store::open_store;
use crate::storage::{Location, StagedFile};

pub struct ParquetSink {
    name: String,
    config: ParquetSinkConfig,
    schema: SchemaRef,
    root: PathBuf,
    properties: WriterProperties,
    sort_by: Arc<[usize]>,
    partition_column: Option<usize>,
    /// Random per sink instance: file names from two writers never collide.
    writer_id: String,
    next_file: u64,
    open: BTreeMap<String, RollingFile>,
    /// Finished files waiting for the next checkpoint.
    staged: Vec<StagedFile>,
    summary: SinkSummary,
    /// For a remote dataset: the spool that `root` is, and its uploader
    /// (taken by the engine, which runs it beside the pipeline).
    spool: Option<Arc<Spool>>,
    forwarder: Option<Forwarder>,
}

impl ParquetSink {
    /// A sink writing `schema` rows as `config` says; a remote dataset's
    /// uploader reports its status on `stores`.
    pub fn try_new(
        name: &str,
        config: ParquetSinkConfig,
        schema: SchemaRef,
        stores: &StoreStatusBoard,
    ) -> Result<Self, SinkError> {
        let location = config.location()?;
        let root = config.local_dir()?;
        let (spool, forwarder) = match &location {
            Location::Local(_) => (None, None),
            Location::Remote(remote) => {
                let store = open_store(remote, &config.store_settings())
                    .with_context(|| format!("sink `{name}`"))?;
                let spool = Arc::new(Spool::new(
                    root.clone(),
                    remote.to_string(),
                    config.spool.max_bytes.0,
                ));
                let forwarder =
                    Forwarder::new(name, spool.clone(), store, remote.clone(), stores.clone());
                (Some(spool), Some(forwarder))
            }
        };
        let index = |col: &str| {
            schema
                .index_of(col)
                .with_context(|| format!("sink `{name}`: no column `{col}`"))
        };
        let sort_by: Arc<[usize]> = config
            .sort_by
            .iter()
            .map(|c| index(c))
            .collect::<Result<Vec<_>, SinkError>>()?
            .into();
        let partition_column = config.partition_by_date.as_deref().map(index).transpose()?;
        let properties = writer_properties(&config, &schema, &sort_by, false);
        let writer_id = format!("{:08x}", rand::random::<u32>());
        Ok(Self {
            name: name.to_string(),
            summary: SinkSummary {
                location: match &location {
                    Location::Local(dir) => dir.display().to_string(),
                    Location::Remote(remote) => {
                        format!("{remote} (spooled in {})", root.display())
                    }
                },
                ..Default::default()
            },
            spool,
            forwarder,
            config,
            schema,
            root,
            properties,
            sort_by,
            partition_column,
            writer_id,
            next_file: 0,
            open: BTreeMap::new(),
            staged: Vec::new(),
        })
    }

    fn handle(
        &mut self,
        message: SinkMessage,
        checkpoint_wanted: &Notify,
    ) -> Result<(), SinkError> {
        match message {
            SinkMessage::Data(batch) => {
                if let Some(spool) = &self.spool {
                    let sink = &self.name;
                    let waited = spool.wait_for_room(|full| SinkPaused { sink, full }.emit())?;
                    if let Some(paused) = waited {
                        SinkResumed { sink, paused }.emit();
                    }
                }
                if batch.num_rows() > 0 {
                    self.write(batch)?;
                }
                self.roll_aged()?;
            }
            SinkMessage::Checkpoint(reply) => {
                let result = self.stage_all().map(|()| std::mem::take(&mut self.staged));
                let failed = result.as_ref().err().map(|e| ErrorChain(e).to_string());
                let _ = reply.send(result);
                if let Some(message) = failed {
                    return Err(SinkError::CheckpointFailed(message));
                }
            }
            SinkMessage::Tick => self.roll_aged()?,
        }
        if !self.staged.is_empty() {
            checkpoint_wanted.notify_one();
        }
        Ok(())
    }

    fn write(&mut self, batch: RecordBatch) -> Result<(), SinkError> {
        for (partition, rows) in self.split_by_partition(batch)? {
            let max_rows = self.config.roll.max_rows;
            // Cut the slice so no file exceeds max_rows.
            let mut offset = 0;
            while offset < rows.num_rows() {
                let file = self.file_for(&partition)?;
                let room = (max_rows - file.rows().min(max_rows)) as usize;
                let take = room.min(rows.num_rows() - offset).max(1);
                file.write(rows.slice(offset, take))?;
                offset += take;
                let full = file.rows() >= max_rows
                    || file.approximate_bytes() >= self.config.roll.max_bytes.0;
                if full {
                    self.stage(&partition)?;
                }
            }
        }
        Ok(())
    }

    fn file_for(&mut self, partition: &str) -> Result<&mut RollingFile, SinkError> {
        if !self.open.contains_key(partition) {
            // At the cap: close the file open longest to make room.
            while self.open.len() >= self.config.max_open_partitions {
                let oldest = self
                    .open
                    .iter()
                    .max_by_key(|(_, f)| f.age())
                    .map(|(p, _)| p.clone());
                match oldest {
                    Some(oldest) => self.stage(&oldest)?,
                    None => break,
                }
            }
            let dir = if partition.is_empty() {
                self.root.clone()
            } else {
                self.root.join(partition)
            };
            let name = data_file_name(chrono::Utc::now(), &self.writer_id, self.next_file);
            self.next_file += 1;
            let file = RollingFile::create(
                &self.root.join(STAGING_DIR),
                &dir,
                &name,
                self.schema.clone(),
                self.properties.clone(),
                // A run never spans row groups: smaller row groups mean
                // smaller runs, each row group covering its own stretch
                // of arrival time.
                self.config.sort_rows.min(self.config.row_group_rows),
                self.sort_by.clone(),
            )
            .with_context(|| format!("sink `{}`", self.name))?;
            self.open.insert(partition.to_string(), file);
        }
        // Inserted just above if it was missing.
        Ok(self.open.get_mut(partition).expect("open file present"))
    }

    fn stage(&mut self, partition: &str) -> Result<(), SinkError> {
        if let Some(file) = self.open.remove(partition) {
            let started = std::time::Instant::now();
            let mut staged = file
                .stage(&self.name)
                .with_context(|| format!("sink `{}`", self.name))?;
            staged.spooled = self.spool.is_some();
            self.summary.files += 1;
            self.summary.rows += staged.rows;
            self.summary.bytes += staged.bytes;
            ParquetFileStaged {
                sink: &self.name,
                file: &staged,
                elapsed: started.elapsed(),
            }
            .emit();
            self.staged.push(staged);
        }
        Ok(())
    }

    fn roll_aged(&mut self) -> Result<(), SinkError> {
        let max_age = self.config.roll.max_age.0;
        let aged: Vec<String> = self
            .open
            .iter()
            .filter(|(_, f)| f.age() >= max_age)
            .map(|(p, _)| p.clone())
            .collect();
        for partition in aged {
            self.stage(&partition)?;
        }
        Ok(())
    }

    /// Group rows by their `date=` partition; one group (and no copy) in the
    /// common case of a batch within one day.
    fn split_by_partition(
        &self,
        batch: RecordBatch,
    ) -> Result<Vec<(String, RecordBatch)>, SinkError> {
        let Some(column) = self.partition_column else {
            return Ok(vec![(String::new(), batch)]);
        };
        let days = utc_days(batch.column(column))?;
        let days = days.as_primitive::<Date32Type>();
        let first = (days.null_count() == 0)
            .then(|| days.values().first().copied())
            .flatten();
        if let Some(first) = first
            && days.values().iter().all(|d| *d == first)
        {
            return Ok(vec![(date_partition(Some(first)), batch)]);
        }
        // Row indices per day (memory proportional to the rows, however
        // many distinct days a hostile batch holds).
        let mut groups: BTreeMap<Option<i32>, Vec<u32>> = BTreeMap::new();
        for (row, day) in days.iter().enumerate() {
            groups.entry(day).or_default().push(row as u32);
        }
        groups
            .into_iter()
            .map(|(day, rows)| {
                let rows = arrow::compute::take_record_batch(&batch, &UInt32Array::from(rows))
                    .context("splitting rows by date")?;
                Ok((date_partition(day), rows))
            })
            .collect()
    }

    fn stage_all(&mut self) -> Result<(), SinkError> {
        let partitions: Vec<String> = self.open.keys().cloned().collect();
        for partition in partitions {
            self.stage(&partition)?;
        }
        Ok(())
    }

    /// The input closed without a final checkpoint (the engine failed):
    /// nothing here was recorded, so nothing may be published. The rows
    /// come again from the source's durable offsets.
    fn discard_unrecorded(&mut self) {
        for (_, file) in std::mem::take(&mut self.open) {
            file.discard();
        }
        for file in std::mem::take(&mut self.staged) {
            let _ = std::fs::remove_file(&file.staged);
        }
    }

    /// Remove in-progress files that a killed writer left behind. Only old
    /// ones: a concurrent writer's live file is never touched.
    fn remove_stale_in_progress(&self) {
        let stale_after = self.config.roll.max_age.0 * 2 + Duration::from_secs(600);
        // Unreadable directories are skipped: this is housekeeping.
        // A compaction's work directory is the compactor's to clean up (a
        // long merge's output is written there).
        let walk = walkdir::WalkDir::new(&self.root)
            .into_iter()
            .filter_entry(|e| {
                !e.file_name()
                    .to_string_lossy()
                    .starts_with(crate::storage::compaction::WORK_DIR_PREFIX)
            });
        for entry in walk.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy();
            if entry.file_type().is_file()
                && is_in_progress_file(&name)
                && is_older_than(path, stale_after)
            {
                match std::fs::remove_file(path) {
                    Ok(()) => {
                        tracing::info!(sink = %self.name, file = %path.display(), "removed stale in-progress file")
                    }
                    Err(error) => {
                        tracing::warn!(sink = %self.name, file = %path.display(), %error, "cannot remove stale in-progress file")
                    }
                }
            }
        }
    }
}

/// The UTC day of each value. Millisecond timestamps in UTC (what vitals
/// carry) take an integer division; anything else goes through Arrow's cast
/// (time zones resolved per value, much slower).
fn utc_days(column: &arrow::array::ArrayRef) -> Result<arrow::array::ArrayRef, SinkError> {
    use arrow::datatypes::{TimeUnit, TimestampMillisecondType};
    const MS_PER_DAY: i64 = 86_400_000;
    if let DataType::Timestamp(TimeUnit::Millisecond, tz) = column.data_type()
        && tz
            .as_deref()
            .is_none_or(|tz| matches!(tz, "UTC" | "+00:00" | "Z"))
    {
        let days: arrow::array::Date32Array = column
            .as_primitive::<TimestampMillisecondType>()
            .unary_opt(|ms| i32::try_from(ms.div_euclid(MS_PER_DAY)).ok());
        return Ok(Arc::new(days));
    }
    cast(column, &DataType::Date32).context("computing the date partition")
}

fn is_older_than(path: &Path, age: Duration) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|elapsed| elapsed > age)
}

/// The sink's Parquet settings; `sort_by` is declared as the files' order
/// when every row group is one sorted run (`whole_row_groups_sorted`, or
/// `sort_rows` covering a row group).
pub(super) fn writer_properties(
    config: &ParquetSinkConfig,
    schema: &SchemaRef,
    sort_by: &[usize],
    whole_row_groups_sorted: bool,
) -> WriterProperties {
    let compression = match config.compression {
        Compression::Snappy => ParquetCompression::SNAPPY,
        Compression::Zstd => ParquetCompression::ZSTD(ZstdLevel::default()),
        Compression::Lz4 => ParquetCompression::LZ4_RAW,
        Compression::Gzip => ParquetCompression::GZIP(Default::default()),
        Compression::None => ParquetCompression::UNCOMPRESSED,
    };
    let mut builder = WriterProperties::builder()
        .set_compression(compression)
        .set_max_row_group_row_count(Some(config.row_group_rows))
        // The page limit is checked every `write_batch_size` rows.
        .set_data_page_row_count_limit(config.page_rows)
        .set_write_batch_size(config.page_rows.min(1024))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_created_by(format!("vitalflow {}", env!("CARGO_PKG_VERSION")));
    // A row group is sorted only when it is one run: declared then, never
    // otherwise (a reader may rely on the declaration).
    if !sort_by.is_empty() && (whole_row_groups_sorted || config.sort_rows >= config.row_group_rows)
    {
        builder = builder.set_sorting_columns(Some(
            sort_by
                .iter()
                .map(|&i| SortingColumn {
                    column_idx: i as i32,
                    descending: false,
                    nulls_first: true,
                })
                .collect(),
        ));
    }
    // Dictionary pages pay off for strings (ids, codes); for numbers and
    // timestamps, plain pages under zstd/snappy are about as small and skip
    // a hash-table insert per value, which was a tenth of the sink's CPU.
    for field in schema.fields() {
        let strings = matches!(
            field.data_type(),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Binary
        );
        if !strings {
            builder = builder
                .set_column_dictionary_enabled(ColumnPath::from(field.name().as_str()), false);
        }
    }
    for column in &config.bloom_filter_columns {
        builder = builder.set_column_bloom_filter_enabled(ColumnPath::from(column.as_str()), true);
    }
    builder.build()
}

#[async_trait::async_trait]
impl Sink for ParquetSink {
    fn take_forwarder(&mut self) -> Option<Forwarder> {
        self.forwarder.take()
    }

    async fn run(
        mut self: Box<Self>,
        mut input: mpsc::Receiver<SinkMessage>,
        checkpoint_wanted: Arc<Notify>,
    ) -> Result<SinkSummary, SinkError> {
        // Encoding, compression and fsync are blocking work: give the sink
        // its own thread rather than stalling the async workers.
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&self.root).map_err(|e| {
                let context = format!("sink `{}`: creating {}", self.name, self.root.display());
                SinkError::io(context, e)
            })?;
            self.remove_stale_in_progress();
            while let Some(message) = input.blocking_recv() {
                if let Err(e) = self.handle(message, &checkpoint_wanted) {
                    self.discard_unrecorded();
                    return Err(e);
                }
            }
            self.discard_unrecorded();
            Ok(self.summary.clone())
        })
        .await
        .map_err(|source| SinkError::Panicked {
            thread: "parquet sink thread",
            source,
        })?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int32Array, TimestampMillisecondArray};
    use arrow::datatypes::{Field, Schema, TimeUnit};

    /// One reading per distinct day, as a hostile producer would send.
    fn batch_over_days(days: usize) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                false,
            ),
            Field::new("v", DataType::Int32, false),
        ]));
        let ts: Vec<i64> = (0..days as i64).map(|d| d * 86_400_000 + 1_000).collect();
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(TimestampMillisecondArray::from(ts).with_timezone("UTC")),
                Arc::new(Int32Array::from_iter_values(0..days as i32)),
            ],
        )
        .unwrap()
    }

    #[test]
    fn a_batch_over_many_days_never_holds_more_than_the_cap_open() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = format!(
            "input: t\npath: {}\npartition_by_date: ts\nmax_open_partitions: 4\n",
            dir.path().join("out").display()
        );
        let config: ParquetSinkConfig = serde_saphyr::from_str(&yaml).unwrap();
        config.validate().unwrap();
        let batch = batch_over_days(300);
        let mut sink =
            ParquetSink::try_new("hostile", config, batch.schema(), &Default::default()).unwrap();
        sink.write(batch).unwrap();
        assert!(sink.open.len() <= 4, "{} files open", sink.open.len());
        // Every row is in a staged or an open file, one file per day.
        let staged: u64 = sink.staged.iter().map(|f| f.rows).sum();
        let open: u64 = sink.open.values().map(|f| f.rows()).sum();
        assert_eq!(staged + open, 300);
        assert_eq!(sink.staged.len() + sink.open.len(), 300);
        sink.stage_all().unwrap();
        assert!(sink.open.is_empty());
        assert_eq!(sink.staged.iter().map(|f| f.rows).sum::<u64>(), 300);
    }
}
