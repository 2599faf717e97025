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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use super::error::{CheckpointError, StateFileError};
use crate::common::{Offsets, TopicPartition};
use crate::storage::publish::write_atomically;
use crate::storage::{Published, StagedFile};

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

fn read_ipc(path: &Path) -> Result<RecordBatch, StateFileError> {
    let file = std::fs::File::open(path)?;
    let reader = arrow::ipc::reader::FileReader::try_new(file, None)?;
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
}

/// Operator state and watermarks saved by a checkpoint.
#[derive(Debug, Default)]
pub struct SavedState {
    /// The manifest it came from, for logs.
    pub manifest: PathBuf,
    pub operators: BTreeMap<String, RecordBatch>,
    pub watermarks: BTreeMap<String, i64>,
}

/// What a checkpoint records besides files and offsets.
#[derive(Debug, Default)]
pub struct StateToSave {
    pub operators: Vec<(String, RecordBatch)>,
    pub watermarks: BTreeMap<String, i64>,
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
    dir: PathBuf,
}

impl DurableOffsets {
    /// Next offset per partition of `source` recorded by any checkpoint of
    /// any writer (the maximum, since offsets only grow).
    pub fn of(&self, source: &str) -> Result<Offsets, CheckpointError> {
        let mut offsets = Offsets::new();
        for path in all_manifests(&self.dir)? {
            let Some(manifest) = read_manifest(&path)? else {
                continue;
            };
            for entry in manifest.sources.get(source).into_iter().flatten() {
                let key = TopicPartition::new(&entry.topic, entry.partition);
                let slot = offsets.entry(key).or_insert(entry.next_offset);
                *slot = (*slot).max(entry.next_offset);
            }
        }
        Ok(offsets)
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
    dir: PathBuf,
    pipeline: String,
    writer: String,
    epoch: u64,
}

/// What [`CheckpointStore::recover`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Files an interrupted checkpoint had not renamed yet; now published.
    pub rolled_forward: Vec<PathBuf>,
}

impl CheckpointStore {
    /// Open (creating) the store in `dir` for a new writer.
    pub fn open(dir: &Path, pipeline: &str) -> Result<Self, CheckpointError> {
        let writer = format!(
            "{}-{:08x}",
            chrono::Utc::now().format("%Y%m%dT%H%M%S"),
            rand::random::<u32>()
        );
        std::fs::create_dir_all(dir.join(&writer)).map_err(|source| CheckpointError::Io {
            context: format!("creating checkpoint directory {}", dir.display()),
            source,
        })?;
        Ok(Self {
            dir: dir.to_path_buf(),
            pipeline: pipeline.to_string(),
            writer,
            epoch: 0,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn durable_offsets(&self) -> DurableOffsets {
        DurableOffsets {
            dir: self.dir.clone(),
        }
    }

    /// Finish whatever checkpoint a previous run (or a killed instance)
    /// wrote but did not complete: publish every file its newest manifest
    /// lists. Idempotent, and harmless next to a live instance, because
    /// publishing an already published file is a no-op.
    pub fn recover(&self) -> Result<Recovery, CheckpointError> {
        let mut recovery = Recovery::default();
        let mut newest: BTreeMap<PathBuf, PathBuf> = BTreeMap::new();
        for path in all_manifests(&self.dir)? {
            if let Some(writer_dir) = path.parent() {
                // Names sort by epoch, so the last one seen is the newest.
                newest.insert(writer_dir.to_path_buf(), path);
            }
        }
        for path in newest.into_values() {
            let Some(manifest) = read_manifest(&path)? else {
                continue;
            };
            for file in &manifest.files {
                if file.spooled || file.staged.exists() || file.published.exists() {
                    if file.publish()? == Published::Renamed {
                        recovery.rolled_forward.push(file.published.clone());
                    }
                } else {
                    return Err(CheckpointError::FileMissing {
                        manifest: path,
                        staged: file.staged.clone(),
                        published: file.published.clone(),
                    });
                }
            }
        }
        Ok(recovery)
    }

    /// Record `files` and `sources` durably, then publish the files. After
    /// this returns the rows are in the dataset and the offsets may be
    /// committed to the sources.
    pub fn commit(
        &mut self,
        sources: &BTreeMap<String, Offsets>,
        files: &[StagedFile],
        state: &StateToSave,
    ) -> Result<(), CheckpointError> {
        self.epoch += 1;
        let mut state_files = BTreeMap::new();
        for (operator, batch) in &state.operators {
            let name = format!("{STATE_PREFIX}{:012}-{operator}{STATE_SUFFIX}", self.epoch);
            let path = self.dir.join(&self.writer).join(&name);
            write_atomically(&path, &ipc_bytes(batch)?).map_err(|source| {
                CheckpointError::Write {
                    context: format!("writing the state of `{operator}` to {}", path.display()),
                    source,
                }
            })?;
            state_files.insert(operator.clone(), name);
        }
        let manifest = Manifest {
            version: 1,
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
        };
        let path = self.manifest_path(self.epoch);
        let bytes = serde_json::to_vec_pretty(&manifest).map_err(CheckpointError::Encode)?;
        write_atomically(&path, &bytes).map_err(|source| CheckpointError::Write {
            context: format!("writing checkpoint {}", path.display()),
            source,
        })?;
        for file in files {
            file.publish()?;
        }
        // Older manifests of this writer are now redundant: the newest holds
        // every offset and their files are published.
        self.remove_older_than(self.epoch);
        Ok(())
    }

    fn manifest_path(&self, epoch: u64) -> PathBuf {
        self.dir
            .join(&self.writer)
            .join(format!("{MANIFEST_PREFIX}{epoch:012}{MANIFEST_SUFFIX}"))
    }

    fn remove_older_than(&self, epoch: u64) {
        let mut old_files: Vec<PathBuf> = (1..epoch).map(|old| self.manifest_path(old)).collect();
        if let Ok(entries) = std::fs::read_dir(self.dir.join(&self.writer)) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let state_epoch = name
                    .strip_prefix(STATE_PREFIX)
                    .and_then(|rest| rest.get(..12))
                    .and_then(|digits| digits.parse::<u64>().ok());
                if state_epoch.is_some_and(|e| e < epoch) {
                    old_files.push(entry.path());
                }
            }
        }
        for path in old_files {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => {
                    tracing::warn!(file = %path.display(), %error, "cannot remove an old checkpoint")
                }
            }
        }
    }

    /// The operator state and watermarks of the newest checkpoint of any
    /// writer: what a restarted pipeline continues from. One instance per
    /// checkpoint directory is assumed for window state (see DEVELOPERS.md).
    pub fn latest_state(&self) -> Result<Option<SavedState>, CheckpointError> {
        let mut newest: Option<(String, PathBuf, Manifest)> = None;
        for path in all_manifests(&self.dir)? {
            let Some(manifest) = read_manifest(&path)? else {
                continue;
            };
            if manifest.writer == self.writer {
                continue;
            }
            let created = manifest.created_at.clone();
            if newest.as_ref().is_none_or(|(c, _, _)| *c < created) {
                newest = Some((created, path, manifest));
            }
        }
        let Some((_, path, manifest)) = newest else {
            return Ok(None);
        };
        let writer_dir = path.parent().unwrap_or(&self.dir).to_path_buf();
        let mut operators = BTreeMap::new();
        for (operator, file) in &manifest.state {
            let state_path = writer_dir.join(file);
            let batch = read_ipc(&state_path).map_err(|source| CheckpointError::ReadState {
                operator: operator.clone(),
                path: state_path,
                source,
            })?;
            operators.insert(operator.clone(), batch);
        }
        Ok(Some(SavedState {
            manifest: path,
            operators,
            watermarks: manifest.watermarks,
        }))
    }
}

/// Every manifest of every writer under `dir`, sorted by path.
fn all_manifests(dir: &Path) -> Result<Vec<PathBuf>, CheckpointError> {
    let mut manifests = Vec::new();
    // `<dir>/<writer>/checkpoint-*.json`: depth 2. An unreadable writer
    // directory is skipped; an unreadable `dir` is an error.
    for entry in walkdir::WalkDir::new(dir).min_depth(2).max_depth(2) {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) if e.depth() == 0 => {
                let Some(io) = e.into_io_error() else {
                    continue;
                };
                if io.kind() == std::io::ErrorKind::NotFound {
                    return Ok(manifests);
                }
                return Err(CheckpointError::Io {
                    context: format!("listing checkpoints in {}", dir.display()),
                    source: io,
                });
            }
            Err(_) => continue,
        };
        let name = entry.file_name().to_string_lossy();
        if name.starts_with(MANIFEST_PREFIX) && name.ends_with(MANIFEST_SUFFIX) {
            manifests.push(entry.into_path());
        }
    }
    manifests.sort();
    Ok(manifests)
}

/// A manifest, or `None` if its writer removed it meanwhile (a newer one
/// exists then).
fn read_manifest(path: &Path) -> Result<Option<Manifest>, CheckpointError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| CheckpointError::Manifest {
                    path: path.to_path_buf(),
                    source,
                })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CheckpointError::Io {
            context: format!("reading checkpoint {}", path.display()),
            source,
        }),
    }
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
            )
            .unwrap();
        assert!(file.published.exists() && !file.staged.exists());
        first
            .commit(&offsets(&[(0, 12), (1, 5)]), &[], &StateToSave::default())
            .unwrap();

        // A second instance took partition 1 further.
        let mut second = CheckpointStore::open(&state, "p").unwrap();
        second
            .commit(&offsets(&[(1, 40)]), &[], &StateToSave::default())
            .unwrap();
        let durable = second.durable_offsets().of("monitors").unwrap();
        assert_eq!(durable[&TopicPartition::new("vitals", 0)], 12);
        assert_eq!(durable[&TopicPartition::new("vitals", 1)], 40);
        assert!(second.durable_offsets().of("other").unwrap().is_empty());
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
        };
        write_atomically(
            &store.manifest_path(1),
            &serde_json::to_vec(&manifest).unwrap(),
        )
        .unwrap();

        let restarted = CheckpointStore::open(&state, "p").unwrap();
        let recovery = restarted.recover().unwrap();
        assert_eq!(recovery.rolled_forward, vec![file.published.clone()]);
        assert_eq!(std::fs::read(&file.published).unwrap(), b"data");
        // Again: nothing left to do.
        assert!(restarted.recover().unwrap().rolled_forward.is_empty());
    }

    #[test]
    fn a_file_missing_everywhere_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let mut store = CheckpointStore::open(&state, "p").unwrap();
        let file = staged(dir.path(), "c.parquet");
        store
            .commit(
                &BTreeMap::new(),
                std::slice::from_ref(&file),
                &StateToSave::default(),
            )
            .unwrap();
        std::fs::remove_file(&file.published).unwrap();
        let error = store.recover().unwrap_err();
        let message = crate::common::ErrorChain(&error).to_string();
        assert!(
            message.contains("c.parquet") && message.contains("outside vitalflow"),
            "{message}"
        );
    }
}
