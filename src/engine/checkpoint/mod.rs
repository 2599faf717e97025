//! Checkpoints: the manifest that makes publishing files and advancing
//! source offsets one atomic step.
//!
//! At a checkpoint every durable sink stages its open files (complete and
//! fsynced, still hidden). The engine then writes a manifest naming those
//! files and, per source, the next offset to read in every partition; only
//! after the manifest is durable are the files renamed into the dataset and
//! the offsets committed to Kafka. A crash before the manifest loses only
//! hidden files whose rows are read again from the old offsets; a crash
//! after it is rolled forward on restart by [`CheckpointStore::recover`].
//! Either way every record ends up in the dataset exactly once.
//!
//! Layout: `<dir>/<writer id>/checkpoint-<epoch>.json`, one writer id per
//! running instance. Offsets only grow, so the resume point of a partition
//! is the maximum over every writer's manifests: a partition that moved to
//! another instance in a rebalance resumes where its last owner's last
//! checkpoint left it.
//!
//! State kept per source partition (windows and alert levels keyed by the
//! source's `key:`) is saved with the partition's offset in the same
//! manifest, so whoever takes the partition over restores the state that
//! matches the offset it resumes from ([`CheckpointStore::partition_states`]).
//! A writer keeps naming the last state of partitions it gave up in every
//! later manifest (and keeps those files), so the state stays findable
//! until the new owner's own checkpoints supersede it.

mod claims;
mod files;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use super::error::{CheckpointError, StateFileError};
use crate::common::{Offsets, TopicPartition};
use crate::storage::{Published, StagedFile};

pub use claims::{Claim, UnpublishedFrom, overtaken};
pub use files::CheckpointFiles;

const MANIFEST_PREFIX: &str = "checkpoint-";
const MANIFEST_SUFFIX: &str = ".json";
const STATE_PREFIX: &str = "state-";
const STATE_SUFFIX: &str = ".arrow";

/// One batch as an Arrow IPC file.
fn ipc_bytes(batch: &RecordBatch) -> Result<Vec<u8>, arrow::error::ArrowError> {
    let mut bytes = Vec::new();
    let mut writer = arrow::ipc::writer::FileWriter::try_new(&mut bytes, batch.schema_ref())?;
    writer.write(batch)?;
    writer.finish()?;
    drop(writer);
    Ok(bytes)
}

fn read_ipc(bytes: Vec<u8>) -> Result<RecordBatch, StateFileError> {
    let reader = arrow::ipc::reader::FileReader::try_new(std::io::Cursor::new(bytes), None)?;
    let schema = reader.schema();
    let batches = reader.collect::<Result<Vec<_>, _>>()?;
    Ok(arrow::compute::concat_batches(&schema, &batches)?)
}

/// One checkpoint, as written to disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Manifest {
    version: u32,
    pipeline: String,
    writer: String,
    epoch: u64,
    created_at: String,
    /// Per source, the next offset to read in each partition.
    sources: BTreeMap<String, Vec<PartitionOffset>>,
    files: Vec<StagedFile>,
    /// Per stateful transform, the Arrow IPC file (in the writer's
    /// directory) holding its open windows.
    #[serde(default)]
    state: BTreeMap<String, String>,
    /// Per source with event time, the watermark reached (epoch ms).
    #[serde(default)]
    watermarks: BTreeMap<String, i64>,
    /// Per source, the partitions whose state this manifest names: those the
    /// writer owns, and the last state of those it gave up.
    #[serde(default)]
    partitions: BTreeMap<String, Vec<PartitionEntry>>,
}

impl Manifest {
    /// Per source, the next offset per partition this manifest records.
    fn offsets(&self) -> BTreeMap<String, Offsets> {
        self.sources
            .iter()
            .map(|(source, entries)| {
                let offsets = entries
                    .iter()
                    .map(|e| (TopicPartition::new(&e.topic, e.partition), e.next_offset))
                    .collect();
                (source.clone(), offsets)
            })
            .collect()
    }
}

/// One partition's state in a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionEntry {
    pub topic: String,
    pub partition: i32,
    /// The next offset to read, consistent with the state.
    pub next_offset: Option<i64>,
    /// The newest event time seen in the partition (its watermark is this
    /// minus `max_delay`).
    pub newest_event_ms: Option<i64>,
    /// Per stateful transform, the state file holding this partition's rows.
    pub state: BTreeMap<String, String>,
    /// Whether the writer still owned the partition at this checkpoint.
    pub owned: bool,
}

impl PartitionEntry {
    pub fn key(&self) -> TopicPartition {
        TopicPartition::new(&self.topic, self.partition)
    }
}

/// A partition this instance owns, as a checkpoint records it.
#[derive(Debug, Clone)]
pub struct OwnedPartition {
    pub partition: TopicPartition,
    pub next_offset: Option<i64>,
    pub newest_event_ms: Option<i64>,
}

/// The state of one partition, as the newest checkpoint that has it saved.
#[derive(Debug)]
pub struct PartitionSaved {
    /// The manifest it came from, for logs.
    pub manifest: String,
    pub next_offset: Option<i64>,
    pub newest_event_ms: Option<i64>,
    /// Per stateful transform, the partition's rows (tag columns removed).
    pub operators: BTreeMap<String, RecordBatch>,
}

/// Operator state and watermarks saved by a checkpoint.
#[derive(Debug, Default)]
pub struct SavedState {
    /// The manifest it came from, for logs.
    pub manifest: String,
    pub operators: BTreeMap<String, RecordBatch>,
    pub watermarks: BTreeMap<String, i64>,
}

/// What a checkpoint records besides files and offsets.
#[derive(Debug, Default)]
pub struct StateToSave {
    /// Per stateful transform, its state with every row tagged with the
    /// partition it belongs to ([`tag_partition`]; untagged rows are state
    /// kept per instance).
    pub operators: Vec<(String, RecordBatch)>,
    pub watermarks: BTreeMap<String, i64>,
    /// Per source, the partitions this instance owns.
    pub partitions: BTreeMap<String, Vec<OwnedPartition>>,
}

const TOPIC_COLUMN: &str = "__topic";
const PARTITION_COLUMN: &str = "__partition";

/// `state` with two leading columns naming the partition it belongs to
/// (`None`: state kept per instance).
pub fn tag_partition(
    state: &RecordBatch,
    partition: Option<&TopicPartition>,
) -> Result<RecordBatch, arrow::error::ArrowError> {
    use arrow::array::{ArrayRef, Int32Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    let rows = state.num_rows();
    let topic: ArrayRef = Arc::new(StringArray::from(vec![
        partition.map(|p| p.topic.as_str());
        rows
    ]));
    let number: ArrayRef = Arc::new(Int32Array::from(vec![partition.map(|p| p.partition); rows]));
    let mut fields = vec![
        Arc::new(Field::new(TOPIC_COLUMN, DataType::Utf8, true)),
        Arc::new(Field::new(PARTITION_COLUMN, DataType::Int32, true)),
    ];
    fields.extend(state.schema().fields().iter().cloned());
    let mut columns = vec![topic, number];
    columns.extend(state.columns().iter().cloned());
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}

/// The rows of `saved` that belong to `partition` (`None`: the untagged
/// rows, state kept per instance), without the tag columns. A file written
/// before partitions were tagged is all instance state.
pub fn rows_of_partition(
    saved: &RecordBatch,
    partition: Option<&TopicPartition>,
) -> Result<RecordBatch, arrow::error::ArrowError> {
    use arrow::array::{Array, BooleanArray, Int32Array, StringArray};
    let schema = saved.schema();
    let tagged = schema.fields().len() >= 2
        && schema.field(0).name() == TOPIC_COLUMN
        && schema.field(1).name() == PARTITION_COLUMN;
    if !tagged {
        return Ok(match partition {
            None => saved.clone(),
            Some(_) => saved.slice(0, 0),
        });
    }
    let topics = saved
        .column(0)
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| arrow::error::ArrowError::SchemaError("__topic is not text".into()))?;
    let numbers = saved
        .column(1)
        .as_any()
        .downcast_ref::<Int32Array>()
        .ok_or_else(|| arrow::error::ArrowError::SchemaError("__partition is not int32".into()))?;
    let keep: BooleanArray = (0..saved.num_rows())
        .map(|row| {
            Some(match partition {
                None => topics.is_null(row),
                Some(p) => {
                    topics.is_valid(row)
                        && topics.value(row) == p.topic
                        && numbers.is_valid(row)
                        && numbers.value(row) == p.partition
                }
            })
        })
        .collect();
    let kept = arrow::compute::filter_record_batch(saved, &keep)?;
    kept.project(&(2..schema.fields().len()).collect::<Vec<_>>())
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PartitionOffset {
    topic: String,
    partition: i32,
    next_offset: i64,
}

/// Reads the durable offsets of every writer; cheap to clone and safe to
/// use from a Kafka rebalance callback while the engine keeps writing.
#[derive(Debug, Clone)]
pub struct DurableOffsets {
    files: CheckpointFiles,
}

impl DurableOffsets {
    /// Next offset per partition of `source` recorded by any checkpoint of
    /// any writer (the maximum, since offsets only grow).
    pub fn of(&self, source: &str) -> Result<Offsets, CheckpointError> {
        let mut durable = BTreeMap::new();
        for key in all_manifests(&self.files)? {
            if let Some(manifest) = read_manifest(&self.files, &key)? {
                keep_newest(&mut durable, &manifest.offsets());
            }
        }
        Ok(durable.remove(source).unwrap_or_default())
    }
}

/// Raise `durable` (per source, the next offset per partition) to the
/// offsets of `recorded` where they are higher: offsets only grow, so the
/// maximum over manifests is the durable point.
fn keep_newest(durable: &mut BTreeMap<String, Offsets>, recorded: &BTreeMap<String, Offsets>) {
    for (source, offsets) in recorded {
        let most = durable.entry(source.clone()).or_default();
        for (partition, next) in offsets {
            let slot = most.entry(partition.clone()).or_insert(*next);
            *slot = (*slot).max(*next);
        }
    }
}

impl crate::common::DurableOffsetsReader for DurableOffsets {
    fn durable_offsets(&self, source: &str) -> Result<Offsets, crate::common::BoxError> {
        self.of(source).map_err(Into::into)
    }
}

/// The checkpoints of one pipeline instance.
#[derive(Debug)]
pub struct CheckpointStore {
    files: CheckpointFiles,
    pipeline: String,
    writer: String,
    epoch: u64,
    /// Per source, the partition entries of this writer's last manifest:
    /// those no longer owned are carried into the next one.
    last_entries: BTreeMap<String, Vec<PartitionEntry>>,
    /// The source offsets of every manifest read for an ownership check,
    /// by key (a manifest is never rewritten under its key), so each
    /// checkpoint reads only the manifests written since the last one.
    seen: BTreeMap<String, BTreeMap<String, Offsets>>,
}

/// What [`CheckpointStore::recover`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Files an interrupted checkpoint had not renamed yet; now published.
    pub rolled_forward: Vec<PathBuf>,
}

impl CheckpointStore {
    /// Open (creating) the store in the local directory `dir` for a new
    /// writer.
    pub fn open(dir: &Path, pipeline: &str) -> Result<Self, CheckpointError> {
        Self::open_at(CheckpointFiles::Local(dir.to_path_buf()), pipeline)
    }

    /// Open the store at `files` (a directory or an object store prefix)
    /// for a new writer.
    pub fn open_at(files: CheckpointFiles, pipeline: &str) -> Result<Self, CheckpointError> {
        let writer = format!(
            "{}-{:08x}",
            chrono::Utc::now().format("%Y%m%dT%H%M%S"),
            rand::random::<u32>()
        );
        files.create_writer(&writer)?;
        Ok(Self {
            files,
            pipeline: pipeline.to_string(),
            writer,
            epoch: 0,
            last_entries: BTreeMap::new(),
            seen: BTreeMap::new(),
        })
    }

    /// Where the checkpoints are, for messages.
    pub fn root(&self) -> String {
        self.files.root()
    }

    pub fn durable_offsets(&self) -> DurableOffsets {
        DurableOffsets {
            files: self.files.clone(),
        }
    }

    /// Finish whatever checkpoint a previous run (or a killed instance)
    /// wrote but did not complete: publish every file its newest manifest
    /// lists. Idempotent, and harmless next to a live instance, because
    /// publishing an already published file is a no-op.
    pub fn recover(&self) -> Result<Recovery, CheckpointError> {
        let mut recovery = Recovery::default();
        for writer in status(&self.files)? {
            for file in &writer.published {
                if file.staged.exists() || file.was_published() {
                    if file.publish()? == Published::Renamed {
                        recovery.rolled_forward.push(file.published.clone());
                    }
                } else {
                    return Err(CheckpointError::FileMissing {
                        manifest: writer.manifest.clone(),
                        staged: file.staged.clone(),
                        published: file.published.clone(),
                    });
                }
            }
        }
        Ok(recovery)
    }

    /// Remove the checkpoints of other writers that are of no more use: the
    /// newest is older than `retention`, it is not the newest checkpoint of
    /// all (state kept per instance is restored from that one), and every
    /// partition it names has a newer owner elsewhere. Run after
    /// [`Self::recover`], so their files are published. Returns the writers
    /// removed; a failure to remove is logged (it is only garbage).
    pub fn clean_up(&self, retention: std::time::Duration) -> Result<Vec<String>, CheckpointError> {
        let writers = status(&self.files)?;
        let owners = owners(&writers);
        let newest = writers.last().map(|w| w.writer.clone());
        let cutoff = chrono::Utc::now()
            - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
        let mut removed = Vec::new();
        let mut keys = None;
        for writer in &writers {
            let old = chrono::DateTime::parse_from_rfc3339(&writer.created_at)
                .is_ok_and(|at| at < cutoff);
            let owns = owners.values().any(|(w, _)| w.writer == writer.writer);
            if writer.writer == self.writer
                || Some(&writer.writer) == newest.as_ref()
                || !old
                || owns
            {
                continue;
            }
            let prefix = format!("{}/", writer.writer);
            let keys: &Vec<String> = match &mut keys {
                Some(keys) => keys,
                None => keys.insert(self.files.list()?),
            };
            for key in keys.iter().filter(|k| k.starts_with(&prefix)) {
                if let Err(error) = self.files.delete(key) {
                    tracing::warn!(error = %crate::common::ErrorChain(&error), "cannot remove an expired checkpoint");
                }
            }
            removed.push(writer.writer.clone());
        }
        Ok(removed)
    }

    /// Record `files` and `sources` durably, then publish the files. After
    /// this returns the rows are in the dataset and the offsets may be
    /// committed to the sources.
    ///
    /// `claims` name the partitions whose rows this checkpoint publishes
    /// for the first time and where those rows start. If another writer
    /// made any of them durable beyond that point meanwhile, nothing is
    /// written and [`CheckpointError::Fenced`] says which partition: the
    /// other instance owns it now. Locally the check and the manifest are
    /// one step for every writer on this machine (a lock file); in an
    /// object store a writer could still slip in between the two.
    pub fn commit(
        &mut self,
        sources: &BTreeMap<String, Offsets>,
        files: &[StagedFile],
        state: &StateToSave,
        claims: &[Claim],
    ) -> Result<(), CheckpointError> {
        // Nothing claimed (no partitioned source, or nothing new read from
        // one): nothing to check, and no lock to hold.
        let lock = if claims.is_empty() {
            None
        } else {
            Some(self.files.lock_for_publishing()?)
        };
        if !claims.is_empty() {
            let durable = self.durable_now()?;
            if let Some((claim, durable)) = overtaken(claims, &durable) {
                return Err(CheckpointError::Fenced {
                    source_name: claim.source.clone(),
                    partition: claim.partition.clone(),
                    from: claim.from,
                    durable,
                });
            }
        }
        self.epoch += 1;
        let mut state_files = BTreeMap::new();
        for (operator, batch) in &state.operators {
            let name = format!("{STATE_PREFIX}{:012}-{operator}{STATE_SUFFIX}", self.epoch);
            let key = format!("{}/{name}", self.writer);
            let context = format!(
                "writing the state of `{operator}` to {}",
                self.files.describe(&key)
            );
            self.files.write(&key, ipc_bytes(batch)?, context)?;
            state_files.insert(operator.clone(), name);
        }
        let partitions = self.partition_entries(state, &state_files);
        let manifest = Manifest {
            version: 2,
            pipeline: self.pipeline.clone(),
            writer: self.writer.clone(),
            epoch: self.epoch,
            created_at: chrono::Utc::now().to_rfc3339(),
            sources: sources
                .iter()
                .map(|(name, offsets)| {
                    let entries = offsets
                        .iter()
                        .map(|(tp, next)| PartitionOffset {
                            topic: tp.topic.clone(),
                            partition: tp.partition,
                            next_offset: *next,
                        })
                        .collect();
                    (name.clone(), entries)
                })
                .collect(),
            files: files.to_vec(),
            state: state_files,
            watermarks: state.watermarks.clone(),
            partitions,
        };
        let bytes = serde_json::to_vec_pretty(&manifest).map_err(CheckpointError::Encode)?;
        let key = self.manifest_key(self.epoch);
        let context = format!("writing checkpoint {}", self.files.describe(&key));
        self.files.write(&key, bytes, context)?;
        // The manifest decides; publishing follows it (and is rolled
        // forward by `recover` if this process dies first).
        drop(lock);
        for file in files {
            file.publish()?;
        }
        // Older manifests of this writer are now redundant: the newest holds
        // every offset and their files are published. State files stay
        // while the newest manifest names them.
        self.remove_older_than(&manifest);
        self.last_entries = manifest.partitions;
        Ok(())
    }

    /// Per source, the next offset per partition over every writer's
    /// manifests now: one listing, and a read of each manifest not seen
    /// before.
    fn durable_now(&mut self) -> Result<BTreeMap<String, Offsets>, CheckpointError> {
        let keys: std::collections::BTreeSet<String> =
            all_manifests(&self.files)?.into_iter().collect();
        self.seen.retain(|key, _| keys.contains(key));
        for key in keys {
            if self.seen.contains_key(&key) {
                continue;
            }
            // Gone meanwhile: its writer wrote a newer one, listed next time.
            let Some(manifest) = read_manifest(&self.files, &key)? else {
                continue;
            };
            self.seen.insert(key, manifest.offsets());
        }
        let mut durable = BTreeMap::new();
        for recorded in self.seen.values() {
            keep_newest(&mut durable, recorded);
        }
        Ok(durable)
    }

    /// The partition entries of the next manifest: the owned partitions
    /// with this checkpoint's state files, then the last entry of every
    /// partition this writer gave up (its state stays findable).
    fn partition_entries(
        &self,
        state: &StateToSave,
        state_files: &BTreeMap<String, String>,
    ) -> BTreeMap<String, Vec<PartitionEntry>> {
        let mut entries: BTreeMap<String, Vec<PartitionEntry>> = BTreeMap::new();
        for (source, owned) in &state.partitions {
            let list = entries.entry(source.clone()).or_default();
            for p in owned {
                list.push(PartitionEntry {
                    topic: p.partition.topic.clone(),
                    partition: p.partition.partition,
                    next_offset: p.next_offset,
                    newest_event_ms: p.newest_event_ms,
                    state: state_files.clone(),
                    owned: true,
                });
            }
        }
        for (source, previous) in &self.last_entries {
            let list = entries.entry(source.clone()).or_default();
            for entry in previous {
                if !list.iter().any(|e| e.key() == entry.key()) {
                    list.push(PartitionEntry {
                        owned: false,
                        ..entry.clone()
                    });
                }
            }
        }
        entries.retain(|_, list| !list.is_empty());
        entries
    }

    /// The newest saved state of each of `partitions` of `source` over
    /// every writer ([`owners`]): the state consistent with where each
    /// partition resumes. Every manifest and state file is read once.
    pub fn partition_states(
        &self,
        source: &str,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, PartitionSaved>, CheckpointError> {
        let writers = status(&self.files)?;
        let owners = owners(&writers);
        let mut files: BTreeMap<String, RecordBatch> = BTreeMap::new();
        let mut saved = BTreeMap::new();
        for partition in partitions {
            let Some((writer, entry)) = owners.get(&(source.to_string(), partition.clone())) else {
                continue;
            };
            let mut operators = BTreeMap::new();
            for (operator, file) in &entry.state {
                let key = format!("{}/{file}", writer.writer);
                let batch = match files.get(&key) {
                    Some(batch) => batch,
                    None => {
                        let batch = self.read_state(operator, &key)?;
                        files.entry(key.clone()).or_insert(batch)
                    }
                };
                let fail = |source| CheckpointError::ReadState {
                    operator: operator.clone(),
                    location: self.files.describe(&key),
                    source,
                };
                let rows = rows_of_partition(batch, Some(partition))
                    .map_err(|e| fail(StateFileError::Ipc(e)))?;
                operators.insert(operator.clone(), rows);
            }
            saved.insert(
                partition.clone(),
                PartitionSaved {
                    manifest: writer.manifest.clone(),
                    next_offset: entry.next_offset,
                    newest_event_ms: entry.newest_event_ms,
                    operators,
                },
            );
        }
        Ok(saved)
    }

    /// A state file's batch; a missing one is an error (a manifest names it).
    fn read_state(&self, operator: &str, key: &str) -> Result<RecordBatch, CheckpointError> {
        let fail = |source| CheckpointError::ReadState {
            operator: operator.to_string(),
            location: self.files.describe(key),
            source,
        };
        let bytes = self.files.read(key)?.ok_or_else(|| {
            fail(StateFileError::Open(std::io::Error::from(
                std::io::ErrorKind::NotFound,
            )))
        })?;
        read_ipc(bytes).map_err(fail)
    }

    fn manifest_key(&self, epoch: u64) -> String {
        format!(
            "{}/{MANIFEST_PREFIX}{epoch:012}{MANIFEST_SUFFIX}",
            self.writer
        )
    }

    /// Remove this writer's manifests older than `manifest`, and its state
    /// files that `manifest` names nowhere. A failure is only logged: the
    /// files are garbage, not state.
    fn remove_older_than(&self, manifest: &Manifest) {
        let mut keep: std::collections::BTreeSet<&str> =
            manifest.state.values().map(String::as_str).collect();
        for entry in manifest.partitions.values().flatten() {
            keep.extend(entry.state.values().map(String::as_str));
        }
        let current = self.manifest_key(manifest.epoch);
        let mine = format!("{}/", self.writer);
        let keys = match self.files.list() {
            Ok(keys) => keys,
            Err(error) => {
                tracing::warn!(error = %crate::common::ErrorChain(&error), "cannot list old checkpoints");
                return;
            }
        };
        for key in keys {
            let Some(name) = key.strip_prefix(&mine) else {
                continue;
            };
            let old_manifest = name.starts_with(MANIFEST_PREFIX) && key != current;
            let old_state = name.starts_with(STATE_PREFIX) && !keep.contains(name);
            if (old_manifest || old_state)
                && let Err(error) = self.files.delete(&key)
            {
                tracing::warn!(error = %crate::common::ErrorChain(&error), "cannot remove an old checkpoint");
            }
        }
    }

    /// The state kept per instance (untagged rows) and the watermarks of
    /// the newest checkpoint of any other writer: what a restarted pipeline
    /// continues from. State kept per partition is restored partition by
    /// partition instead ([`Self::partition_states`]).
    pub fn latest_state(&self) -> Result<Option<SavedState>, CheckpointError> {
        // Writers come oldest first: the newest other one is the last.
        let Some(newest) = status(&self.files)?
            .into_iter()
            .rfind(|w| w.writer != self.writer)
        else {
            return Ok(None);
        };
        let mut operators = BTreeMap::new();
        for (operator, file) in &newest.state {
            let key = format!("{}/{file}", newest.writer);
            let batch = self.read_state(operator, &key)?;
            let rows = rows_of_partition(&batch, None).map_err(|e| CheckpointError::ReadState {
                operator: operator.clone(),
                location: self.files.describe(&key),
                source: StateFileError::Ipc(e),
            })?;
            operators.insert(operator.clone(), rows);
        }
        Ok(Some(SavedState {
            manifest: newest.manifest,
            operators,
            watermarks: newest.watermarks,
        }))
    }
}

/// What one writer's newest checkpoint says, for `vitalflow status`.
#[derive(Debug, Clone)]
pub struct WriterStatus {
    pub writer: String,
    /// Where its newest manifest is.
    pub manifest: String,
    pub epoch: u64,
    /// RFC 3339.
    pub created_at: String,
    /// Files the checkpoint published.
    pub published: Vec<StagedFile>,
    /// Per stateful transform, its state file (state kept per instance
    /// and, tagged, per partition).
    pub state: BTreeMap<String, String>,
    /// Per source, the partitions it names (owned and given up).
    pub partitions: BTreeMap<String, Vec<PartitionEntry>>,
    /// Per source with event time, its watermark (epoch ms).
    pub watermarks: BTreeMap<String, i64>,
}

/// The newest checkpoint of every writer under `files`, oldest writer
/// first (by the time of that checkpoint).
pub fn status(files: &CheckpointFiles) -> Result<Vec<WriterStatus>, CheckpointError> {
    let mut newest: BTreeMap<String, (String, Manifest)> = BTreeMap::new();
    for key in all_manifests(files)? {
        let Some(manifest) = read_manifest(files, &key)? else {
            continue;
        };
        // Names sort by epoch within a writer: the last one wins.
        newest.insert(manifest.writer.clone(), (key, manifest));
    }
    let mut writers: Vec<WriterStatus> = newest
        .into_values()
        .map(|(key, m)| WriterStatus {
            writer: m.writer,
            manifest: files.describe(&key),
            epoch: m.epoch,
            created_at: m.created_at,
            published: m.files,
            state: m.state,
            partitions: m.partitions,
            watermarks: m.watermarks,
        })
        .collect();
    writers.sort_by(|a, b| a.created_at.cmp(&b.created_at));
    Ok(writers)
}

/// Per source and partition, the writer and entry whose state a takeover
/// restores: the highest offset, the newest checkpoint on a tie (a new
/// owner that has read nothing yet saves the state it restored, newer).
pub fn owners(
    writers: &[WriterStatus],
) -> BTreeMap<(String, TopicPartition), (&WriterStatus, &PartitionEntry)> {
    let mut owners: BTreeMap<(String, TopicPartition), (&WriterStatus, &PartitionEntry)> =
        BTreeMap::new();
    for writer in writers {
        for (source, entries) in &writer.partitions {
            for entry in entries {
                let rank = (entry.next_offset, &writer.created_at);
                let slot = owners.entry((source.clone(), entry.key()));
                match slot {
                    std::collections::btree_map::Entry::Vacant(v) => {
                        v.insert((writer, entry));
                    }
                    std::collections::btree_map::Entry::Occupied(mut o) => {
                        let (w, e) = o.get();
                        if (e.next_offset, &w.created_at) < rank {
                            o.insert((writer, entry));
                        }
                    }
                }
            }
        }
    }
    owners
}

/// Every manifest key (`writer/checkpoint-*.json`) under `files`, sorted.
fn all_manifests(files: &CheckpointFiles) -> Result<Vec<String>, CheckpointError> {
    Ok(files
        .list()?
        .into_iter()
        .filter(|key| {
            key.rsplit('/').next().is_some_and(|name| {
                name.starts_with(MANIFEST_PREFIX) && name.ends_with(MANIFEST_SUFFIX)
            })
        })
        .collect())
}

/// A manifest, or `None` if its writer removed it meanwhile (a newer one
/// exists then).
fn read_manifest(files: &CheckpointFiles, key: &str) -> Result<Option<Manifest>, CheckpointError> {
    let Some(bytes) = files.read(key)? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| CheckpointError::Manifest {
            location: files.describe(key),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets(entries: &[(i32, i64)]) -> BTreeMap<String, Offsets> {
        let offsets = entries
            .iter()
            .map(|&(p, o)| (TopicPartition::new("vitals", p), o))
            .collect();
        BTreeMap::from([("monitors".to_string(), offsets)])
    }

    fn staged(dir: &Path, name: &str) -> StagedFile {
        let file = StagedFile {
            sink: "vitals".into(),
            staged: dir.join(format!(".{name}.inprogress")),
            published: dir.join(name),
            rows: 1,
            bytes: 4,
            spooled: false,
        };
        std::fs::write(&file.staged, b"data").unwrap();
        file
    }

    #[test]
    fn commit_publishes_and_offsets_are_the_maximum_over_writers() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let mut first = CheckpointStore::open(&state, "p").unwrap();
        let file = staged(dir.path(), "a.parquet");
        first
            .commit(
                &offsets(&[(0, 10), (1, 5)]),
                std::slice::from_ref(&file),
                &StateToSave::default(),
                &[],
            )
            .unwrap();
        assert!(file.published.exists() && !file.staged.exists());
        first
            .commit(
                &offsets(&[(0, 12), (1, 5)]),
                &[],
                &StateToSave::default(),
                &[],
            )
            .unwrap();

        // A second instance took partition 1 further.
        let mut second = CheckpointStore::open(&state, "p").unwrap();
        second
            .commit(&offsets(&[(1, 40)]), &[], &StateToSave::default(), &[])
            .unwrap();
        let durable = second.durable_offsets().of("monitors").unwrap();
        assert_eq!(durable[&TopicPartition::new("vitals", 0)], 12);
        assert_eq!(durable[&TopicPartition::new("vitals", 1)], 40);
        assert!(second.durable_offsets().of("other").unwrap().is_empty());
    }

    #[test]
    fn a_second_owner_cannot_publish_rows_the_first_owner_published() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let p0 = TopicPartition::new("vitals", 0);
        let claim = |from| Claim {
            source: "monitors".into(),
            partition: p0.clone(),
            from,
        };
        let mut earlier = CheckpointStore::open(&state, "p").unwrap();
        earlier
            .commit(
                &offsets(&[(0, 10)]),
                &[],
                &StateToSave::default(),
                &[claim(None)],
            )
            .unwrap();
        // A took partition 0 at 10; B, which missed the rebalance, read on
        // from 10 too.
        let mut a = CheckpointStore::open(&state, "p").unwrap();
        let mut b = CheckpointStore::open(&state, "p").unwrap();
        let from_a = staged(dir.path(), "a.parquet");
        a.commit(
            &offsets(&[(0, 25)]),
            std::slice::from_ref(&from_a),
            &StateToSave::default(),
            &[claim(Some(10))],
        )
        .unwrap();
        let from_b = staged(dir.path(), "b.parquet");
        let refused = b
            .commit(
                &offsets(&[(0, 30)]),
                std::slice::from_ref(&from_b),
                &StateToSave::default(),
                &[claim(Some(10))],
            )
            .unwrap_err();
        assert!(
            matches!(
                &refused,
                CheckpointError::Fenced { from: Some(10), durable: 25, partition, .. }
                    if partition == &p0
            ),
            "{refused}"
        );
        let message = refused.to_string();
        assert!(
            message.contains("vitals") && message.contains("offset 10") && message.contains("25"),
            "{message}"
        );
        // Nothing of B's checkpoint was written or published.
        assert!(from_a.published.exists());
        assert!(from_b.staged.exists() && !from_b.published.exists());
        assert_eq!(b.durable_offsets().of("monitors").unwrap()[&p0], 25);
        assert_eq!(b.epoch, 0);
        // A goes on from where it published.
        a.commit(
            &offsets(&[(0, 40)]),
            &[],
            &StateToSave::default(),
            &[claim(Some(25))],
        )
        .unwrap();
        // A writer that took the partition when no checkpoint had it is
        // overtaken by any checkpoint that has it now.
        let mut fresh = CheckpointStore::open(&state, "p").unwrap();
        assert!(matches!(
            fresh.commit(
                &offsets(&[(0, 5)]),
                &[],
                &StateToSave::default(),
                &[claim(None)]
            ),
            Err(CheckpointError::Fenced {
                from: None,
                durable: 40,
                ..
            })
        ));
    }

    #[test]
    fn an_interrupted_publication_is_rolled_forward() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let store = CheckpointStore::open(&state, "p").unwrap();
        let file = staged(dir.path(), "b.parquet");
        // The manifest is durable but the process died before the rename.
        let manifest = Manifest {
            version: 1,
            pipeline: "p".into(),
            writer: store.writer.clone(),
            epoch: 1,
            created_at: String::new(),
            sources: BTreeMap::new(),
            files: vec![file.clone()],
            state: BTreeMap::new(),
            watermarks: BTreeMap::new(),
            partitions: BTreeMap::new(),
        };
        store
            .files
            .write(
                &store.manifest_key(1),
                serde_json::to_vec(&manifest).unwrap(),
                "a manifest".into(),
            )
            .unwrap();

        let restarted = CheckpointStore::open(&state, "p").unwrap();
        let recovery = restarted.recover().unwrap();
        assert_eq!(recovery.rolled_forward, vec![file.published.clone()]);
        assert_eq!(std::fs::read(&file.published).unwrap(), b"data");
        // Again: nothing left to do.
        assert!(restarted.recover().unwrap().rolled_forward.is_empty());
    }

    /// A store whose checkpoint published `name` in `dir`, and that file,
    /// since removed from the dataset.
    fn published_then_gone(dir: &Path, name: &str) -> (CheckpointStore, StagedFile) {
        let mut store = CheckpointStore::open(&dir.join("state"), "p").unwrap();
        let file = staged(dir, name);
        store
            .commit(
                &BTreeMap::new(),
                std::slice::from_ref(&file),
                &StateToSave::default(),
                &[],
            )
            .unwrap();
        std::fs::remove_file(&file.published).unwrap();
        (store, file)
    }

    #[test]
    fn a_file_missing_everywhere_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = published_then_gone(dir.path(), "c.parquet");
        let error = store.recover().unwrap_err();
        let message = crate::common::ErrorChain(&error).to_string();
        assert!(
            message.contains("c.parquet") && message.contains("outside vitalflow"),
            "{message}"
        );
    }

    #[test]
    fn a_file_a_compaction_absorbed_counts_as_published() {
        let dir = tempfile::tempdir().unwrap();
        // The day was compacted: the file's rows moved into a merged file.
        let (store, file) = published_then_gone(dir.path(), "d.parquet");
        crate::storage::compaction::CompactionRecord {
            absorbed: ["d.parquet".to_string()].into(),
            ..Default::default()
        }
        .write(dir.path())
        .unwrap();
        let recovery = store.recover().unwrap();
        assert!(recovery.rolled_forward.is_empty());
        assert!(!file.published.exists(), "nothing is recreated");
    }

    fn state_of(values: &[(&str, i64)]) -> RecordBatch {
        use arrow::array::{ArrayRef, Int64Array, StringArray};
        RecordBatch::try_from_iter([
            (
                "key",
                Arc::new(StringArray::from_iter_values(values.iter().map(|v| v.0))) as ArrayRef,
            ),
            (
                "n",
                Arc::new(Int64Array::from_iter_values(values.iter().map(|v| v.1))) as ArrayRef,
            ),
        ])
        .unwrap()
    }

    fn tagged(parts: &[(i32, &[(&str, i64)])]) -> RecordBatch {
        let batches: Vec<RecordBatch> = parts
            .iter()
            .map(|(p, values)| {
                tag_partition(&state_of(values), Some(&TopicPartition::new("vitals", *p))).unwrap()
            })
            .collect();
        arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
    }

    fn owned(entries: &[(i32, i64)]) -> BTreeMap<String, Vec<OwnedPartition>> {
        let list = entries
            .iter()
            .map(|&(p, o)| OwnedPartition {
                partition: TopicPartition::new("vitals", p),
                next_offset: Some(o),
                newest_event_ms: Some(o * 1000),
            })
            .collect();
        BTreeMap::from([("monitors".to_string(), list)])
    }

    fn keys_of(saved: &PartitionSaved) -> Vec<String> {
        use arrow::array::AsArray;
        let batch = &saved.operators["windows"];
        batch
            .column(0)
            .as_string::<i32>()
            .iter()
            .map(|k| k.unwrap().to_string())
            .collect()
    }

    /// A partition's state is found wherever its newest checkpoint is: with
    /// the writer that owns it now, or, once given up, with the writer that
    /// last had it, even after that writer checkpointed again.
    #[test]
    fn partition_state_follows_the_partition_between_writers() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let p = |n| TopicPartition::new("vitals", n);

        // Writer A owns partitions 0 and 1.
        let mut a = CheckpointStore::open(&state, "p").unwrap();
        a.commit(
            &offsets(&[(0, 10), (1, 20)]),
            &[],
            &StateToSave {
                operators: vec![(
                    "windows".into(),
                    tagged(&[(0, &[("P1", 1)]), (1, &[("P2", 2), ("P3", 3)])]),
                )],
                partitions: owned(&[(0, 10), (1, 20)]),
                ..Default::default()
            },
            &[],
        )
        .unwrap();
        // A gives partition 1 up, keeps 0, and checkpoints twice more: its
        // last state of partition 1 stays findable.
        for round in 0..2 {
            a.commit(
                &offsets(&[(0, 11 + round), (1, 20)]),
                &[],
                &StateToSave {
                    operators: vec![("windows".into(), tagged(&[(0, &[("P1", 5)])]))],
                    partitions: owned(&[(0, 11 + round)]),
                    ..Default::default()
                },
                &[],
            )
            .unwrap();
        }
        let reader = CheckpointStore::open(&state, "p").unwrap();
        let one = reader
            .partition_states("monitors", &[p(1)])
            .unwrap()
            .remove(&p(1))
            .unwrap();
        assert_eq!(one.next_offset, Some(20));
        assert_eq!(one.newest_event_ms, Some(20_000));
        assert_eq!(keys_of(&one), ["P2", "P3"]);
        let zero = reader
            .partition_states("monitors", &[p(0)])
            .unwrap()
            .remove(&p(0))
            .unwrap();
        assert_eq!(zero.next_offset, Some(12));
        assert_eq!(keys_of(&zero), ["P1"]);

        // Writer B takes partition 1 over and moves it on: B's state wins.
        let mut b = CheckpointStore::open(&state, "p").unwrap();
        b.commit(
            &offsets(&[(1, 25)]),
            &[],
            &StateToSave {
                operators: vec![("windows".into(), tagged(&[(1, &[("P2", 9)])]))],
                partitions: owned(&[(1, 25)]),
                ..Default::default()
            },
            &[],
        )
        .unwrap();
        let one = reader
            .partition_states("monitors", &[p(1)])
            .unwrap()
            .remove(&p(1))
            .unwrap();
        assert_eq!(one.next_offset, Some(25));
        assert_eq!(keys_of(&one), ["P2"]);
        assert!(
            reader
                .partition_states("monitors", &[p(7)])
                .unwrap()
                .is_empty()
        );
        // State kept per instance is what is not tagged with a partition.
        let latest = reader.latest_state().unwrap().unwrap();
        assert_eq!(latest.operators["windows"].num_rows(), 0);
    }

    #[test]
    fn instance_rows_and_untagged_files_are_instance_state() {
        let instance = tag_partition(&state_of(&[("ward", 4)]), None).unwrap();
        let part = tagged(&[(0, &[("P1", 1)])]);
        let both = arrow::compute::concat_batches(&part.schema(), &[instance, part]).unwrap();
        assert_eq!(rows_of_partition(&both, None).unwrap().num_rows(), 1);
        let p0 = TopicPartition::new("vitals", 0);
        let rows = rows_of_partition(&both, Some(&p0)).unwrap();
        assert_eq!(rows.num_rows(), 1);
        assert_eq!(rows.schema(), state_of(&[]).schema());
        // Written before partitions were tagged: all of it is instance state.
        let old = state_of(&[("P1", 1), ("P2", 2)]);
        assert_eq!(rows_of_partition(&old, None).unwrap().num_rows(), 2);
        assert_eq!(rows_of_partition(&old, Some(&p0)).unwrap().num_rows(), 0);
    }

    /// Expired writers go; the owner of a partition and the newest writer
    /// stay, however old.
    #[test]
    fn expired_writers_are_removed_unless_they_still_own_state() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("state");
        let commit = |store: &mut CheckpointStore, partitions: &[(i32, i64)]| {
            store
                .commit(
                    &offsets(partitions),
                    &[],
                    &StateToSave {
                        operators: vec![("windows".into(), tagged(&[(0, &[("P1", 1)])]))],
                        partitions: owned(partitions),
                        ..Default::default()
                    },
                    &[],
                )
                .unwrap();
        };
        // A owned partitions 0 and 1; B took 0 further; C took 1 further.
        let mut a = CheckpointStore::open(&root, "p").unwrap();
        commit(&mut a, &[(0, 10), (1, 10)]);
        let mut b = CheckpointStore::open(&root, "p").unwrap();
        commit(&mut b, &[(0, 20)]);
        let mut c = CheckpointStore::open(&root, "p").unwrap();
        commit(&mut c, &[(1, 5)]);
        let files = CheckpointFiles::Local(root.clone());
        let writers = |files: &CheckpointFiles| -> Vec<String> {
            status(files)
                .unwrap()
                .into_iter()
                .map(|w| w.writer)
                .collect()
        };
        assert_eq!(writers(&files).len(), 3);

        // Nothing is old enough yet.
        let d = CheckpointStore::open(&root, "p").unwrap();
        assert!(
            d.clean_up(std::time::Duration::from_secs(3600))
                .unwrap()
                .is_empty()
        );
        // Expired: A still owns partition 1 (C is behind it), B owns 0, C
        // is the newest: nothing goes.
        assert!(d.clean_up(std::time::Duration::ZERO).unwrap().is_empty());
        // C passes A on partition 1: A owns nothing any more and goes.
        commit(&mut c, &[(1, 15)]);
        assert_eq!(
            d.clean_up(std::time::Duration::ZERO).unwrap(),
            [a.writer.clone()]
        );
        assert_eq!(writers(&files), [b.writer.clone(), c.writer.clone()]);
        assert!(!root.join(&a.writer).read_dir().unwrap().any(|_| true));
    }
}
