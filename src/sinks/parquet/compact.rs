//! Compacting the closed days of a date-partitioned Parquet dataset.
//!
//! A live day is written as one file per checkpoint and writer (a few
//! hundred a day), each holding sorted runs in arrival order. Once a day is
//! closed, its files are merged into one sorted by the sink's `sort_by`
//! (patient, time), with the sink's row groups, pages and codec: a reader
//! looking for one patient then opens one file and a handful of pages
//! instead of every file of the day.
//!
//! How a day is replaced safely, next to running writers and readers:
//! - Writers stage files in the dataset's `.staging/` and only *rename*
//!   them into `date=D/` when a checkpoint publishes them, so no writer
//!   ever has a file open inside a day directory.
//! - The merged files are written into a hidden `.compacting-D/` beside
//!   the day, with a [`CompactionRecord`] naming every file they absorb,
//!   and the two directories are swapped in one `renameat2(RENAME_EXCHANGE)`:
//!   readers list either the old files or the merged one, never both.
//! - A file published into the old directory after it was listed (late
//!   rows) is not absorbed: after the swap it is moved into the new one.
//! - A checkpoint that names an absorbed file still rolls forward: the
//!   record says where its rows went ([`crate::storage::compaction`]).
//! - One compaction at a time per dataset (a lock file); a compaction that
//!   died half-way is finished or undone by the next one
//!   ([`recover_leftovers`]).
//!
//! What to merge is decided by [`plan_merges`], a pure function of the
//! listing and the clock: closed past days whole, and the open day so far
//! once enough of its files have settled.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use arrow::datatypes::SchemaRef;
use chrono::NaiveDate;
use datafusion::execution::disk_manager::DiskManagerBuilder;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext, ident};
use futures::StreamExt;

use super::config::{CompactConfig, ParquetSinkConfig};
use super::naming::{DATA_FILE_SUFFIX, data_file_name, is_in_progress_file};
use super::sink::writer_properties;
use super::writer::RollingFile;
use crate::sinks::{SinkError, SinkResultExt};
use crate::storage::compaction::{CompactionRecord, exchange_dirs};
use crate::storage::{Location, publish::sync_parent};

/// The writer id in the names of merged files (`part-<time>-compact-<n>`).
const COMPACTION_WRITER: &str = "compact";
/// The lock file below the dataset's root.
const LOCK_NAME: &str = ".compaction.lock";
/// Prefix of the directory a day is rebuilt in.
const WORK_PREFIX: &str = crate::storage::compaction::WORK_DIR_PREFIX;
/// Rows per merged file at most (a busy day spreads over several, each
/// covering its own range of `sort_by`).
const MAX_FILE_ROWS: u64 = 64 << 20;

/// When a day is merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactionPolicy {
    /// A past day is closed once no file of it changed for this long; in
    /// the open day, only files this old are merged.
    pub quiet: Duration,
    /// The open day (today, UTC) is merged so far once it has this many
    /// quiet files not yet merged; 0: never before it closes.
    pub open_day_files: usize,
    /// Memory the merge sort may hold before it spills to disk.
    pub memory: usize,
}

impl From<&CompactConfig> for CompactionPolicy {
    fn from(config: &CompactConfig) -> Self {
        Self {
            quiet: config.quiet.0,
            open_day_files: config.open_day_files,
            memory: config.memory.0 as usize,
        }
    }
}

/// The sink's defaults (`compact:` left out).
impl Default for CompactionPolicy {
    fn default() -> Self {
        Self::from(&CompactConfig::default())
    }
}

/// One published data file of a day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayFile {
    /// When it was published.
    pub modified: Option<SystemTime>,
    /// Written by the day's last compaction.
    pub merged: bool,
}

/// One `date=` directory as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayListing {
    pub dir: PathBuf,
    pub day: NaiveDate,
    /// Published data files by name.
    pub files: BTreeMap<String, DayFile>,
    /// A file is being written inside the directory (only by builds that
    /// staged files next to the data): left alone.
    pub in_progress: bool,
}

/// The files of one day to merge into one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merge<'a> {
    pub day: &'a DayListing,
    pub inputs: BTreeSet<String>,
}

/// The `date=` directories of the dataset at `root`, oldest day first.
pub fn list_days(root: &Path) -> Result<Vec<DayListing>, SinkError> {
    let mut days = Vec::new();
    let entries = match std::fs::read_dir(root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(days),
        Err(e) => return Err(SinkError::io(format!("listing {}", root.display()), e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| SinkError::io(format!("listing {}", root.display()), e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(day) = name
            .strip_prefix("date=")
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        else {
            continue;
        };
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            days.push(list_day(&entry.path(), day)?);
        }
    }
    days.sort_by_key(|d| d.day);
    Ok(days)
}

fn list_day(dir: &Path, day: NaiveDate) -> Result<DayListing, SinkError> {
    let context = || format!("listing {}", dir.display());
    let record = CompactionRecord::read(dir).context("reading the compaction record")?;
    let mut listing = DayListing {
        dir: dir.to_path_buf(),
        day,
        files: BTreeMap::new(),
        in_progress: false,
    };
    for entry in std::fs::read_dir(dir).map_err(|e| SinkError::io(context(), e))? {
        let entry = entry.map_err(|e| SinkError::io(context(), e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_in_progress_file(&name) {
            listing.in_progress = true;
        } else if is_data_file(&name) {
            let file = DayFile {
                modified: entry.metadata().and_then(|m| m.modified()).ok(),
                merged: record.as_ref().is_some_and(|r| r.files.contains(&name)),
            };
            listing.files.insert(name, file);
        }
    }
    Ok(listing)
}

fn is_data_file(name: &str) -> bool {
    !name.starts_with('.') && !name.starts_with('_') && name.ends_with(DATA_FILE_SUFFIX)
}

/// What to merge now. A past day (before `today`, UTC) is merged whole
/// once it is closed: no file changed for `policy.quiet`, and something is
/// not merged yet. The open day (today, or a future-dated one) is merged
/// so far: its files older than `policy.quiet`, once `open_day_files` of
/// them are not merged yet; newer files stay as they are. A day with a
/// file being written inside it is left alone.
pub fn plan_merges<'a>(
    days: &'a [DayListing],
    today: NaiveDate,
    now: SystemTime,
    policy: &CompactionPolicy,
) -> Vec<Merge<'a>> {
    let quiet = |f: &DayFile| {
        f.modified
            .is_none_or(|t| now.duration_since(t).is_ok_and(|age| age >= policy.quiet))
    };
    let mut merges = Vec::new();
    for day in days.iter().filter(|d| !d.in_progress) {
        let settled: BTreeSet<String> = day
            .files
            .iter()
            .filter(|(_, f)| quiet(f))
            .map(|(name, _)| name.clone())
            .collect();
        let unmerged = settled.iter().filter(|n| !day.files[*n].merged).count();
        let wanted = if day.day < today {
            settled.len() == day.files.len() && settled.len() > 1 && unmerged > 0
        } else {
            policy.open_day_files > 0 && unmerged >= policy.open_day_files && settled.len() > 1
        };
        if wanted {
            merges.push(Merge {
                day,
                inputs: settled,
            });
        }
    }
    merges
}

/// What compacting one day did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayCompacted {
    pub day: NaiveDate,
    pub files_in: usize,
    pub bytes_in: u64,
    pub files_out: usize,
    pub bytes_out: u64,
    pub rows: u64,
    /// Files published into the day while it was merged, kept beside it.
    pub late_files: usize,
    pub elapsed: Duration,
}

/// Compacts the closed days of one sink's local dataset.
pub struct Compactor {
    sink: String,
    config: ParquetSinkConfig,
    root: PathBuf,
    policy: CompactionPolicy,
}

/// Held while a compaction runs; released on drop (or when the process dies).
struct DatasetLock(#[allow(dead_code)] File);

impl Compactor {
    /// Finish or undo what a compaction that died left behind (see
    /// [`Self::recover_leftovers`]), if no other compaction is running.
    /// The engine runs it before it recovers its checkpoints.
    pub fn recover(&self) -> Result<(), SinkError> {
        match self.lock()? {
            Some(_lock) => self.recover_leftovers(),
            None => Ok(()),
        }
    }

    /// Compact closed days every `every` (the first time now) until
    /// `stop`; failures are reported and tried again the next time.
    pub async fn run_every(&self, every: Duration, stop: tokio_util::sync::CancellationToken) {
        loop {
            let pass = self.compact_closed_days(SystemTime::now());
            let result = tokio::select! {
                result = pass => result,
                () = stop.cancelled() => return,
            };
            match result {
                Ok(done) => {
                    for day in done.unwrap_or_default() {
                        match day {
                            Ok(day) => super::events::ParquetDayCompacted {
                                sink: &self.sink,
                                day: &day,
                            }
                            .emit(),
                            Err(error) => super::events::CompactionFailed {
                                sink: &self.sink,
                                error: &error,
                            }
                            .emit(),
                        }
                    }
                }
                Err(error) => super::events::CompactionFailed {
                    sink: &self.sink,
                    error: &error,
                }
                .emit(),
            }
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = stop.cancelled() => return,
            }
        }
    }

    /// A compactor for the sink `sink`; only local, date-partitioned
    /// datasets can be compacted (an object store has no atomic swap).
    pub fn new(
        sink: &str,
        config: &ParquetSinkConfig,
        policy: CompactionPolicy,
    ) -> Result<Self, SinkError> {
        let refuse = |why: &str| {
            Err(SinkError::Compaction {
                sink: sink.to_string(),
                reason: why.to_string(),
            })
        };
        let root = match config
            .location()
            .map_err(crate::storage::StorageError::from)?
        {
            Location::Local(dir) => dir,
            Location::Remote(remote) => {
                return refuse(&format!(
                    "{remote} is an object store, which has no atomic rename to swap a day's \
                     files with; only local datasets are compacted"
                ));
            }
        };
        if config.partition_by_date.is_none() {
            return refuse(
                "it is not partitioned by date (`partition_by_date:`), so no day closes",
            );
        }
        Ok(Self {
            sink: sink.to_string(),
            config: config.clone(),
            root,
            policy,
        })
    }

    /// The sink whose dataset this compacts.
    pub fn sink(&self) -> &str {
        &self.sink
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Compact every closed day; `None` if another compaction of the
    /// dataset is running.
    pub async fn compact_closed_days(
        &self,
        now: SystemTime,
    ) -> Result<Option<Vec<Result<DayCompacted, SinkError>>>, SinkError> {
        let Some(_lock) = self.lock()? else {
            return Ok(None);
        };
        self.recover_leftovers()?;
        let days = list_days(&self.root)?;
        let today = chrono::DateTime::<chrono::Utc>::from(now).date_naive();
        // One result per day: a day that cannot be merged (a corrupt file,
        // clashing schemas) stays as it is and does not hold up the others.
        let mut done = Vec::new();
        for merge in plan_merges(&days, today, now, &self.policy) {
            done.push(self.compact_locked(merge.day, &merge.inputs).await);
        }
        Ok(Some(done))
    }

    /// Compact one day now, closed or not (`vitalflow compact --day`);
    /// `None` if another compaction is running or there is nothing to merge.
    pub async fn compact_day(&self, day: NaiveDate) -> Result<Option<DayCompacted>, SinkError> {
        let Some(_lock) = self.lock()? else {
            return Ok(None);
        };
        self.recover_leftovers()?;
        let dir = self.root.join(format!("date={}", day.format("%Y-%m-%d")));
        if !dir.is_dir() {
            return Ok(None);
        }
        let listing = list_day(&dir, day)?;
        if listing.in_progress || listing.files.len() < 2 {
            return Ok(None);
        }
        let inputs = listing.files.keys().cloned().collect();
        self.compact_locked(&listing, &inputs).await.map(Some)
    }

    fn lock(&self) -> Result<Option<DatasetLock>, SinkError> {
        std::fs::create_dir_all(&self.root)
            .map_err(|e| SinkError::io(format!("creating {}", self.root.display()), e))?;
        let path = self.root.join(LOCK_NAME);
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| SinkError::io(format!("opening {}", path.display()), e))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(DatasetLock(file))),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(SinkError::io(format!("locking {}", path.display()), e))
            }
        }
    }

    /// Finish what a compaction that died left in `.compacting-D/`: before
    /// its swap, only merged files not yet in place (dropped); after it,
    /// the old files, of which those not absorbed are moved into the day.
    fn recover_leftovers(&self) -> Result<(), SinkError> {
        let entries = std::fs::read_dir(&self.root)
            .map_err(|e| SinkError::io(format!("listing {}", self.root.display()), e))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(day) = name.strip_prefix(WORK_PREFIX) else {
                continue;
            };
            let day_dir = self.root.join(format!("date={day}"));
            let adopted = drain_work_dir(&entry.path(), &day_dir, &BTreeSet::new())?;
            if adopted > 0 {
                tracing::warn!(sink = %self.sink, day, files = adopted, "an interrupted compaction left files outside their day; moved them back");
            }
        }
        Ok(())
    }

    /// Merge `inputs` (names in `day`) into one file and swap the day for
    /// the merged file plus the day's other files.
    async fn compact_locked(
        &self,
        day: &DayListing,
        inputs: &BTreeSet<String>,
    ) -> Result<DayCompacted, SinkError> {
        let started = Instant::now();
        let day_name = day.day.format("%Y-%m-%d").to_string();
        let work = self.root.join(format!("{WORK_PREFIX}{day_name}"));
        let context = |what: &str| {
            format!(
                "sink `{}`: compacting {} ({what})",
                self.sink,
                day.dir.display()
            )
        };
        remove_dir(&work)?;
        std::fs::create_dir_all(&work)
            .map_err(|e| SinkError::io(format!("creating {}", work.display()), e))?;

        let paths: Vec<PathBuf> = inputs.iter().map(|f| day.dir.join(f)).collect();
        let (rows_in, bytes_in) = count_rows(&paths).with_context(|| context("reading footers"))?;
        let written = self
            .merge(&paths, &work)
            .await
            .map_err(|e| e.context(context("merging")))?;
        let rows_out: u64 = written.iter().map(|(_, rows, _)| rows).sum();
        if rows_out != rows_in {
            return Err(SinkError::Internal(format!(
                "{}: the merged files hold {rows_out} rows, the day's files {rows_in}; the day \
                 was left as it was",
                context("checking")
            )));
        }
        let mut absorbed = CompactionRecord::read(&day.dir)
            .with_context(|| context("reading the previous record"))?
            .map(|r| r.absorbed)
            .unwrap_or_default();
        absorbed.extend(inputs.iter().cloned());
        let record = CompactionRecord {
            absorbed,
            compacted_at: chrono::Utc::now().to_rfc3339(),
            files: written.iter().map(|(name, _, _)| name.clone()).collect(),
            rows: rows_out,
        };
        // The day's other files (newer ones of the open day) stay: linked
        // into the new directory, so that no reader misses them at the swap.
        for name in day.files.keys().filter(|n| !inputs.contains(*n)) {
            std::fs::hard_link(day.dir.join(name), work.join(name))
                .map_err(|e| SinkError::io(context(&format!("keeping {name}")), e))?;
        }
        // Written last: its write fsyncs the directory, links included.
        record
            .write(&work)
            .with_context(|| context("writing the record"))?;
        exchange_dirs(&work, &day.dir).with_context(|| context("swapping"))?;
        // `work` now holds the old files: any the listing did not see were
        // published meanwhile and belong to the day.
        let late_files = drain_work_dir(&work, &day.dir, inputs)?;
        Ok(DayCompacted {
            day: day.day,
            files_in: inputs.len(),
            bytes_in,
            files_out: written.len(),
            bytes_out: written.iter().map(|(_, _, bytes)| bytes).sum(),
            rows: rows_out,
            late_files,
            elapsed: started.elapsed(),
        })
    }

    /// Sort the rows of `inputs` by `sort_by` (spilling to disk past
    /// `policy.memory`) into files in `work`: (name, rows, bytes) each.
    async fn merge(
        &self,
        inputs: &[PathBuf],
        work: &Path,
    ) -> Result<Vec<(String, u64, u64)>, SinkError> {
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(FairSpillPool::new(self.policy.memory)))
            .with_disk_manager_builder(DiskManagerBuilder::default())
            .build_arc()?;
        let mut config = SessionConfig::new().with_target_partitions(2);
        // Keep the files' own types (DataFusion would read strings as
        // Utf8View and write them back so): the merged file must have the
        // schema every other file of the dataset has.
        config
            .options_mut()
            .execution
            .parquet
            .schema_force_view_types = false;
        let ctx = SessionContext::new_with_config_rt(config, runtime);
        let paths: Vec<String> = inputs.iter().map(|p| p.display().to_string()).collect();
        let mut frame = ctx
            .read_parquet(paths, ParquetReadOptions::default())
            .await?;
        if !self.config.sort_by.is_empty() {
            frame = frame.sort(
                self.config
                    .sort_by
                    .iter()
                    .map(|c| ident(c).sort(true, true))
                    .collect(),
            )?;
        }
        let mut stream = frame.execute_stream().await?;
        let schema: SchemaRef = stream.schema();
        let sort_by: Vec<usize> = self
            .config
            .sort_by
            .iter()
            .filter_map(|c| schema.index_of(c).ok())
            .collect();
        let properties = writer_properties(&self.config, &schema, &sort_by, true);
        let mut written = Vec::new();
        let mut file: Option<RollingFile> = None;
        let mut finish = |file: RollingFile| -> Result<(), SinkError> {
            let rows = file.rows();
            let staged = file.stage(&self.sink)?;
            staged.publish()?;
            let name = staged
                .published
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            written.push((name, rows, staged.bytes));
            Ok(())
        };
        let mut sequence = 0;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            if batch.num_rows() == 0 {
                continue;
            }
            if file.as_ref().is_some_and(|f| f.rows() >= MAX_FILE_ROWS)
                && let Some(full) = file.take()
            {
                finish(full)?;
            }
            let open = match &mut file {
                Some(open) => open,
                None => {
                    let name = data_file_name(chrono::Utc::now(), COMPACTION_WRITER, sequence);
                    sequence += 1;
                    file.insert(RollingFile::create(
                        work,
                        work,
                        &name,
                        schema.clone(),
                        properties.clone(),
                        usize::MAX,
                        Arc::from(Vec::new()),
                    )?)
                }
            };
            open.write(batch)?;
        }
        if let Some(last) = file.take() {
            finish(last)?;
        }
        Ok(written)
    }
}

/// Rows and bytes of `files`, from their footers.
fn count_rows(files: &[PathBuf]) -> Result<(u64, u64), SinkError> {
    let (mut rows, mut bytes) = (0u64, 0u64);
    for path in files {
        let file = File::open(path)
            .map_err(|e| SinkError::io(format!("opening {}", path.display()), e))?;
        bytes += file.metadata().map(|m| m.len()).unwrap_or(0);
        let metadata = parquet::file::metadata::ParquetMetaDataReader::new()
            .parse_and_finish(&file)
            .with_context(|| format!("reading the footer of {}", path.display()))?;
        rows += metadata.file_metadata().num_rows() as u64;
    }
    Ok((rows, bytes))
}

/// Move the data files in `from` that are not `absorbed` (nor merged
/// outputs, nor already in `day`) into `day`; returns how many.
fn adopt_late_files(
    from: &Path,
    day: &Path,
    absorbed: &BTreeSet<String>,
) -> Result<usize, SinkError> {
    let mut moved = 0;
    for entry in entries(from)? {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !should_adopt(&name, day, absorbed) {
            continue;
        }
        std::fs::create_dir_all(day)
            .map_err(|e| SinkError::io(format!("creating {}", day.display()), e))?;
        std::fs::rename(entry.path(), day.join(&name)).map_err(|e| {
            SinkError::io(
                format!("moving {} into {}", entry.path().display(), day.display()),
                e,
            )
        })?;
        moved += 1;
    }
    if moved > 0 {
        sync_parent(&day.join("x"))?;
    }
    Ok(moved)
}

/// Whether `name`, found in a work directory, holds rows `day` does not
/// have: a data file that no compaction absorbed, that is not a merged
/// output, and that the day has no file of.
fn should_adopt(name: &str, day: &Path, absorbed: &BTreeSet<String>) -> bool {
    is_data_file(name)
        && !is_merged_output(name)
        && !absorbed.contains(name)
        && !day.join(name).exists()
}

/// Empty the work directory `from` after a swap (or a crash): files the
/// day does not have and did not absorb are moved into `day`, everything
/// else (absorbed files, links to kept ones, unswapped merged output) is
/// removed, then the directory. A publish that looked up the old directory
/// just before the swap can still land in it while this runs: the
/// directory is then not empty, and the next pass adopts that file too.
/// Returns how many files were moved.
fn drain_work_dir(
    from: &Path,
    day: &Path,
    absorbed: &BTreeSet<String>,
) -> Result<usize, SinkError> {
    let mut moved = 0;
    for _ in 0..1000 {
        // This compaction's inputs and every earlier one's (the day's record).
        let mut known = absorbed.clone();
        if let Some(record) =
            CompactionRecord::read(day).context("reading the compaction record")?
        {
            known.extend(record.absorbed);
        }
        moved += adopt_late_files(from, day, &known)?;
        for entry in entries(from)? {
            let name = entry.file_name().to_string_lossy().into_owned();
            if should_adopt(&name, day, &known) {
                // Arrived after this pass's adoption: the next pass moves it.
                continue;
            }
            let path = entry.path();
            let removed = if entry.file_type().is_ok_and(|t| t.is_dir()) {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            match removed {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(SinkError::io(format!("removing {}", path.display()), e)),
            }
        }
        match std::fs::remove_dir(from) {
            Ok(()) => return Ok(moved),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(moved),
            Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty => {}
            Err(e) => return Err(SinkError::io(format!("removing {}", from.display()), e)),
        }
    }
    Err(SinkError::Internal(format!(
        "{} kept filling while it was emptied",
        from.display()
    )))
}

/// The entries of `dir`; none if it is gone.
fn entries(dir: &Path) -> Result<Vec<std::fs::DirEntry>, SinkError> {
    let listing = match std::fs::read_dir(dir) {
        Ok(listing) => listing,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(SinkError::io(format!("listing {}", dir.display()), e)),
    };
    listing
        .collect::<Result<_, _>>()
        .map_err(|e| SinkError::io(format!("listing {}", dir.display()), e))
}

fn is_merged_output(name: &str) -> bool {
    name.contains(&format!("-{COMPACTION_WRITER}-"))
}

fn remove_dir(dir: &Path) -> Result<(), SinkError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(SinkError::io(format!("removing {}", dir.display()), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A day of files with these ages in seconds; the first `merged` of
    /// them written by the last compaction.
    fn day(d: &str, ages: &[u64], merged: usize, now: SystemTime) -> DayListing {
        DayListing {
            dir: PathBuf::from(format!("date={d}")),
            day: NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap(),
            files: ages
                .iter()
                .enumerate()
                .map(|(i, &age)| {
                    let file = DayFile {
                        modified: Some(now - Duration::from_secs(age)),
                        merged: i < merged,
                    };
                    (format!("part-{i:03}.parquet"), file)
                })
                .collect(),
            in_progress: false,
        }
    }

    fn planned(days: &[DayListing], policy: &CompactionPolicy, now: SystemTime) -> Vec<String> {
        let today = NaiveDate::from_ymd_opt(2027, 1, 15).unwrap();
        plan_merges(days, today, now, policy)
            .into_iter()
            .map(|m| format!("{} {}", m.day.day, m.inputs.len()))
            .collect()
    }

    #[test]
    fn closed_days_merge_whole_and_the_open_day_its_settled_files() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let policy = CompactionPolicy {
            open_day_files: 4,
            ..CompactionPolicy::default()
        };
        let day_old = 86_400;
        let mut busy = day("2027-01-13", &[3600; 5], 0, now);
        busy.in_progress = true;
        let days = [
            day("2027-01-09", &[day_old], 0, now),     // a single file
            day("2027-01-10", &[day_old; 40], 0, now), // closed
            day("2027-01-11", &[day_old], 1, now),     // one merged file
            day("2027-01-12", &[day_old; 3], 1, now),  // merged + two late files
            busy,                                      // a file being written
            day("2027-01-14", &[day_old, 60], 0, now), // a file a minute old
            // Today: the merged file, four settled files, two fresh ones.
            day("2027-01-15", &[3600, 3000, 2000, 1000, 901, 60, 1], 1, now),
        ];
        assert_eq!(
            planned(&days, &policy, now),
            ["2027-01-10 40", "2027-01-12 3", "2027-01-15 5"]
        );
        // Three settled files not merged yet are not enough for today.
        let today = [day("2027-01-15", &[3600, 3000, 2000, 1000, 60], 1, now)];
        assert!(planned(&today, &policy, now).is_empty());
        // 0 turns the open day's merges off; a future-dated day counts as open.
        let never = CompactionPolicy {
            open_day_files: 0,
            ..policy
        };
        assert!(planned(&days[6..], &never, now).is_empty());
        let future = [day("2027-02-01", &[day_old; 5], 0, now)];
        assert_eq!(planned(&future, &policy, now), ["2027-02-01 5"]);
        assert!(planned(&[day("2027-01-10", &[day_old; 2], 2, now)], &policy, now).is_empty());
    }

    use arrow::array::{AsArray, Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};

    fn config(root: &Path) -> ParquetSinkConfig {
        serde_saphyr::from_str(&format!(
            "input: t\npath: \"{}\"\npartition_by_date: ts\nsort_by: [k, ts]\nrow_group_rows: 4\npage_rows: 2",
            root.display()
        ))
        .unwrap()
    }

    /// A data file of (k, ts) rows in `dir`, as a writer would publish it.
    fn write_file(dir: &Path, name: &str, rows: &[(&str, i64)]) {
        std::fs::create_dir_all(dir).unwrap();
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, false),
            Field::new("ts", DataType::Int64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
            ],
        )
        .unwrap();
        let file = File::create(dir.join(name)).unwrap();
        let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema, None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
    }

    /// Every (file, k, ts) row of the day's data files, in file order.
    fn rows_of(dir: &Path) -> Vec<(String, String, i64)> {
        let mut rows = Vec::new();
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| is_data_file(n))
            .collect();
        names.sort();
        for name in names {
            let file = File::open(dir.join(&name)).unwrap();
            let reader =
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                    .unwrap()
                    .build()
                    .unwrap();
            for batch in reader {
                let batch = batch.unwrap();
                let k = batch.column(0).as_string::<i32>();
                let ts = batch.column(1).as_primitive::<Int64Type>();
                for i in 0..batch.num_rows() {
                    rows.push((name.clone(), k.value(i).to_string(), ts.value(i)));
                }
            }
        }
        rows
    }

    #[tokio::test]
    async fn a_day_becomes_one_sorted_file_and_late_files_stay_beside_it() {
        let root = tempfile::tempdir().unwrap();
        let day_dir = root.path().join("date=2026-03-01");
        write_file(
            &day_dir,
            "part-1-aaaa-000000.parquet",
            &[("b", 2), ("a", 9), ("c", 1)],
        );
        write_file(
            &day_dir,
            "part-2-aaaa-000001.parquet",
            &[("a", 3), ("b", 1)],
        );
        write_file(
            &day_dir,
            "part-3-bbbb-000000.parquet",
            &[("c", 0), ("a", 1)],
        );
        let compactor =
            Compactor::new("t", &config(root.path()), CompactionPolicy::default()).unwrap();
        let day = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
        let listing = list_day(&day_dir, day).unwrap();
        let inputs: BTreeSet<String> = listing.files.keys().cloned().collect();
        // Published after the listing, before the swap: not absorbed.
        write_file(&day_dir, "part-4-cccc-000000.parquet", &[("z", 5)]);
        let _lock = compactor.lock().unwrap().unwrap();
        assert!(
            compactor.lock().unwrap().is_none(),
            "one compaction at a time"
        );
        let done = compactor.compact_locked(&listing, &inputs).await.unwrap();
        assert_eq!((done.files_in, done.files_out, done.rows), (3, 1, 7));
        assert_eq!(done.late_files, 1);

        let rows = rows_of(&day_dir);
        let merged: Vec<(&str, i64)> = rows
            .iter()
            .filter(|r| is_merged_output(&r.0))
            .map(|r| (r.1.as_str(), r.2))
            .collect();
        assert_eq!(
            merged,
            [
                ("a", 1),
                ("a", 3),
                ("a", 9),
                ("b", 1),
                ("b", 2),
                ("c", 0),
                ("c", 1)
            ]
        );
        let late: Vec<&str> = rows
            .iter()
            .filter(|r| !is_merged_output(&r.0))
            .map(|r| r.0.as_str())
            .collect();
        assert_eq!(late, ["part-4-cccc-000000.parquet"]);
        let record = CompactionRecord::read(&day_dir).unwrap().unwrap();
        assert_eq!(record.absorbed.len(), 3);
        assert!(!record.absorbed.contains("part-4-cccc-000000.parquet"));
        assert!(
            !root.path().join(".compacting-2026-03-01").exists(),
            "the work directory is gone"
        );

        // The merged file declares its order and keeps the sink's row groups.
        let file = File::open(day_dir.join(&record.files[0])).unwrap();
        let metadata = parquet::file::metadata::ParquetMetaDataReader::new()
            .parse_and_finish(&file)
            .unwrap();
        let groups = metadata.row_groups();
        assert_eq!(
            groups.iter().map(|g| g.num_rows()).collect::<Vec<_>>(),
            [4, 3]
        );
        assert!(
            groups
                .iter()
                .all(|g| g.sorting_columns().is_some_and(|c| c.len() == 2))
        );
        let schema = parquet::arrow::parquet_to_arrow_schema(
            metadata.file_metadata().schema_descr(),
            metadata.file_metadata().key_value_metadata(),
        )
        .unwrap();
        let fields: Vec<_> = schema
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect();
        assert_eq!(
            fields,
            [
                ("k".to_string(), DataType::Utf8),
                ("ts".to_string(), DataType::Int64)
            ],
            "the files' own types"
        );

        // Again, with the late file: merged with the first merge's output,
        // and the record keeps every absorbed name.
        drop(_lock);
        let again = compactor.compact_day(day).await.unwrap().unwrap();
        assert_eq!((again.files_in, again.files_out, again.rows), (2, 1, 8));
        let record = CompactionRecord::read(&day_dir).unwrap().unwrap();
        assert_eq!(record.absorbed.len(), 5);
        assert_eq!(rows_of(&day_dir).len(), 8);
        assert!(
            compactor.compact_day(day).await.unwrap().is_none(),
            "one file: nothing to do"
        );
    }

    #[tokio::test]
    async fn merging_part_of_a_day_keeps_its_other_files_in_place() {
        let root = tempfile::tempdir().unwrap();
        let day_dir = root.path().join("date=2026-03-04");
        write_file(&day_dir, "part-1-aaaa-000000.parquet", &[("b", 1)]);
        write_file(&day_dir, "part-2-aaaa-000001.parquet", &[("a", 2)]);
        write_file(&day_dir, "part-3-aaaa-000002.parquet", &[("c", 3)]);
        let compactor =
            Compactor::new("t", &config(root.path()), CompactionPolicy::default()).unwrap();
        let listing = list_day(&day_dir, NaiveDate::from_ymd_opt(2026, 3, 4).unwrap()).unwrap();
        let inputs: BTreeSet<String> = [
            "part-1-aaaa-000000.parquet".into(),
            "part-2-aaaa-000001.parquet".into(),
        ]
        .into();
        let done = compactor.compact_locked(&listing, &inputs).await.unwrap();
        assert_eq!((done.files_in, done.files_out, done.late_files), (2, 1, 0));
        let rows = rows_of(&day_dir);
        let kept: Vec<_> = rows.iter().filter(|r| !is_merged_output(&r.0)).collect();
        assert_eq!(kept.len(), 1);
        assert_eq!(
            (kept[0].0.as_str(), kept[0].1.as_str()),
            ("part-3-aaaa-000002.parquet", "c")
        );
        let merged: Vec<_> = rows
            .iter()
            .filter(|r| is_merged_output(&r.0))
            .map(|r| r.1.as_str())
            .collect();
        assert_eq!(merged, ["a", "b"]);
        let record = CompactionRecord::read(&day_dir).unwrap().unwrap();
        assert_eq!(record.absorbed, inputs);
    }

    #[tokio::test]
    async fn an_interrupted_compaction_is_finished_by_the_next() {
        let root = tempfile::tempdir().unwrap();
        let compactor =
            Compactor::new("t", &config(root.path()), CompactionPolicy::default()).unwrap();
        // Died after the swap: the old files are in the work directory, the
        // record absorbed two of them, a third was published meanwhile.
        let day_dir = root.path().join("date=2026-03-02");
        let work = root.path().join(".compacting-2026-03-02");
        write_file(
            &day_dir,
            "part-9-compact-000000.parquet",
            &[("a", 1), ("b", 1)],
        );
        CompactionRecord {
            absorbed: [
                "part-1-aaaa-000000.parquet".into(),
                "part-2-aaaa-000000.parquet".into(),
            ]
            .into(),
            files: vec!["part-9-compact-000000.parquet".into()],
            ..Default::default()
        }
        .write(&day_dir)
        .unwrap();
        write_file(&work, "part-1-aaaa-000000.parquet", &[("a", 1)]);
        write_file(&work, "part-2-aaaa-000000.parquet", &[("b", 1)]);
        write_file(&work, "part-3-bbbb-000000.parquet", &[("c", 7)]);
        // Died before the swap: only a merged file waits in the work directory.
        let other_day = root.path().join("date=2026-03-03");
        let other_work = root.path().join(".compacting-2026-03-03");
        write_file(&other_day, "part-1-aaaa-000000.parquet", &[("a", 1)]);
        write_file(&other_work, "part-8-compact-000000.parquet", &[("a", 1)]);

        let far_future = SystemTime::now() + Duration::from_secs(1 << 30);
        compactor
            .compact_closed_days(far_future)
            .await
            .unwrap()
            .unwrap();
        assert!(!work.exists() && !other_work.exists());
        let keys = |dir: &Path| {
            let mut keys: Vec<String> = rows_of(dir).into_iter().map(|r| r.1).collect();
            keys.sort();
            keys
        };
        // The late file came back and was merged with the rest.
        assert_eq!(keys(&day_dir), ["a", "b", "c"]);
        assert_eq!(keys(&other_day), ["a"]);
    }

    #[test]
    fn draining_a_work_directory_moves_only_rows_the_day_lacks() {
        let root = tempfile::tempdir().unwrap();
        let day = root.path().join("date=2026-03-05");
        let work = root.path().join(".compacting-2026-03-05");
        std::fs::create_dir_all(&day).unwrap();
        std::fs::create_dir_all(work.join("spill")).unwrap();
        std::fs::write(day.join("kept.parquet"), b"k").unwrap();
        std::fs::hard_link(day.join("kept.parquet"), work.join("kept.parquet")).unwrap();
        CompactionRecord {
            absorbed: ["old.parquet".to_string()].into(),
            ..Default::default()
        }
        .write(&day)
        .unwrap();
        for name in [
            "input.parquet",                 // absorbed by this compaction
            "old.parquet",                   // absorbed by an earlier one
            "part-1-compact-000000.parquet", // an unswapped merged output
            ".compaction.json",
            "late.parquet", // published during the merge
        ] {
            std::fs::write(work.join(name), b"x").unwrap();
        }
        let absorbed: BTreeSet<String> = ["input.parquet".to_string()].into();
        assert_eq!(drain_work_dir(&work, &day, &absorbed).unwrap(), 1);
        assert!(!work.exists());
        let mut names: Vec<String> = std::fs::read_dir(&day)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, [".compaction.json", "kept.parquet", "late.parquet"]);
        assert_eq!(std::fs::read(day.join("kept.parquet")).unwrap(), b"k");
    }

    #[test]
    fn remote_and_unpartitioned_datasets_are_refused_with_the_reason() {
        let remote: ParquetSinkConfig =
            serde_saphyr::from_str("input: t\npath: s3://lake/v\npartition_by_date: ts").unwrap();
        let message = Compactor::new("v", &remote, CompactionPolicy::default())
            .err()
            .unwrap()
            .to_string();
        assert!(
            message.contains("sink `v`") && message.contains("atomic rename"),
            "{message}"
        );
        let flat: ParquetSinkConfig = serde_saphyr::from_str("input: t\npath: /tmp/x").unwrap();
        let message = Compactor::new("f", &flat, CompactionPolicy::default())
            .err()
            .unwrap()
            .to_string();
        assert!(message.contains("partition_by_date"), "{message}");
    }

    #[test]
    fn merged_outputs_are_recognised_by_name() {
        let t = chrono::DateTime::from_timestamp_millis(1_700_000_000_000).unwrap();
        assert!(is_merged_output(&data_file_name(t, COMPACTION_WRITER, 0)));
        assert!(!is_merged_output(&data_file_name(t, "0a1b2c3d", 0)));
    }
}
