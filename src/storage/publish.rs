//! Two-step file publication: a sink *stages* a complete, fsynced file under
//! a hidden name; the engine *publishes* it (atomic rename + directory fsync)
//! only after the checkpoint manifest that lists it is durable. Splitting
//! the two is what lets a restart roll an interrupted publication forward
//! instead of losing or duplicating rows.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::error::{IoContext, StorageError};
use serde::{Deserialize, Serialize};

/// A finished file waiting under its hidden name to be published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagedFile {
    /// The sink that wrote it.
    pub sink: String,
    /// Hidden name, complete and fsynced.
    pub staged: PathBuf,
    /// Name in the dataset once published.
    pub published: PathBuf,
    pub rows: u64,
    pub bytes: u64,
    /// Published into the spool of a remote dataset: once uploaded, the
    /// forwarder deletes it, so finding it nowhere later is normal.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub spooled: bool,
}

/// What publishing found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// The rename happened now.
    Renamed,
    /// An earlier attempt (or a concurrent recovery) already published it
    /// (and a compaction may since have merged it into another file).
    AlreadyPublished,
}

impl StagedFile {
    /// Whether the file reached the dataset: it is there, it was handed to
    /// a remote store's uploader, or a compaction absorbed it.
    pub fn was_published(&self) -> bool {
        self.spooled || self.published.exists() || super::compaction::was_absorbed(&self.published)
    }

    /// Rename the staged file to its published name and make the rename
    /// durable. Idempotent: publishing an already published file is a no-op,
    /// which is what makes rolling a manifest forward safe to repeat.
    pub fn publish(&self) -> Result<Published, StorageError> {
        match std::fs::rename(&self.staged, &self.published) {
            Ok(()) => {
                sync_parent(&self.published)?;
                Ok(Published::Renamed)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && self.was_published() => {
                Ok(Published::AlreadyPublished)
            }
            Err(e) => Err(e).io_context(|| {
                format!(
                    "publishing {} as {}",
                    self.staged.display(),
                    self.published.display()
                )
            }),
        }
    }
}

/// fsync the directory holding `path`, so that a rename or a new file in it
/// survives a power cut.
pub fn sync_parent(path: &Path) -> Result<(), StorageError> {
    let dir = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .io_context(|| format!("fsync directory {}", dir.display()))
}

/// Write `bytes` to `path` atomically: temp file, fsync, rename, fsync dir.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StorageError> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut temp = tempfile::NamedTempFile::new_in(dir)
        .io_context(|| format!("creating a temporary file in {}", dir.display()))?;
    temp.write_all(bytes)
        .and_then(|()| temp.as_file().sync_all())
        .io_context(|| format!("writing {}", temp.path().display()))?;
    temp.persist(path)
        .map_err(|e| e.error)
        .io_context(|| format!("renaming into {}", path.display()))?;
    sync_parent(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishing_twice_is_a_no_op() {
        let dir = tempfile::tempdir().unwrap();
        let staged = StagedFile {
            sink: "s".into(),
            staged: dir.path().join(".a.inprogress"),
            published: dir.path().join("a.parquet"),
            rows: 1,
            bytes: 3,
            spooled: false,
        };
        std::fs::write(&staged.staged, b"abc").unwrap();
        assert_eq!(staged.publish().unwrap(), Published::Renamed);
        assert_eq!(staged.publish().unwrap(), Published::AlreadyPublished);
        assert_eq!(std::fs::read(&staged.published).unwrap(), b"abc");
    }

    #[test]
    fn a_file_that_is_nowhere_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let staged = StagedFile {
            sink: "s".into(),
            staged: dir.path().join(".gone.inprogress"),
            published: dir.path().join("gone.parquet"),
            rows: 1,
            bytes: 3,
            spooled: false,
        };
        let message = crate::common::ErrorChain(&staged.publish().unwrap_err()).to_string();
        assert!(message.contains("gone.inprogress"), "{message}");
    }
}
