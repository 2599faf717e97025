//! The storage side of compacting a date partition: the record a compacted
//! directory keeps of the files it absorbed, and the atomic swap that puts
//! it in place.
//!
//! A compacted `date=D/` holds the merged file(s) and a hidden
//! `.compaction.json` naming every file whose rows they took over. Readers
//! never list it (hidden, not `*.parquet`); [`StagedFile::publish`] and the
//! checkpoint recovery read it, so that a manifest naming a file that was
//! published and later absorbed still rolls forward as "already published"
//! instead of reporting the file missing.
//!
//! The new directory is built beside the old one and the two are swapped
//! with `renameat2(RENAME_EXCHANGE)`: a reader lists either every old file
//! or the compacted one, never both and never neither.
//!
//! [`StagedFile::publish`]: super::StagedFile::publish

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::{IoContext, StorageError};
use super::publish::{sync_parent, write_atomically};

/// The record's name inside a compacted directory.
pub const RECORD_NAME: &str = ".compaction.json";
/// Prefix of the hidden directory beside `date=D/` a day is rebuilt in
/// (`.compacting-D/`); after the swap, it holds the old files until they
/// are moved back or removed.
pub const WORK_DIR_PREFIX: &str = ".compacting-";

/// What a compacted directory absorbed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactionRecord {
    /// File names (in this directory) whose rows are now in the compacted
    /// files; cumulative over repeated compactions of the directory.
    pub absorbed: BTreeSet<String>,
    /// When the last compaction happened (RFC 3339).
    pub compacted_at: String,
    /// The files the last compaction wrote.
    pub files: Vec<String>,
    /// Rows in them.
    pub rows: u64,
}

impl CompactionRecord {
    /// The record of `dir`, if it was ever compacted.
    pub fn read(dir: &Path) -> Result<Option<Self>, StorageError> {
        let path = dir.join(RECORD_NAME);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                StorageError::io(
                    format!("reading {}", path.display()),
                    std::io::Error::new(std::io::ErrorKind::InvalidData, e),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).io_context(|| format!("reading {}", path.display())),
        }
    }

    /// Write it into `dir` (atomically, fsynced).
    pub fn write(&self, dir: &Path) -> Result<(), StorageError> {
        let bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| StorageError::Internal(format!("encoding the compaction record: {e}")))?;
        write_atomically(&dir.join(RECORD_NAME), &bytes)
    }
}

/// Whether `published` (a data file's path) was absorbed by a compaction
/// of its directory, or waits in the directory of a compaction that is
/// running or died after its swap (which moves it back into the day).
/// Unreadable records count as "no": the caller then reports the file
/// missing, which is the safe answer.
pub fn was_absorbed(published: &Path) -> bool {
    let (Some(dir), Some(name)) = (published.parent(), published.file_name()) else {
        return false;
    };
    let recorded = CompactionRecord::read(dir)
        .ok()
        .flatten()
        .is_some_and(|r| r.absorbed.contains(name.to_string_lossy().as_ref()));
    let in_work_dir = || {
        let day = dir.file_name()?.to_str()?.strip_prefix("date=")?;
        let work = dir.parent()?.join(format!("{WORK_DIR_PREFIX}{day}"));
        Some(work.join(name).exists())
    };
    recorded || in_work_dir().unwrap_or(false)
}

/// Swap two directories atomically (`renameat2(RENAME_EXCHANGE)`), then
/// make the swap durable.
pub fn exchange_dirs(a: &Path, b: &Path) -> Result<(), StorageError> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        CString::new(p.as_os_str().as_bytes()).map_err(|_| {
            StorageError::io(
                format!("{} contains a NUL byte", p.display()),
                std::io::Error::from(std::io::ErrorKind::InvalidInput),
            )
        })
    };
    let (ca, cb) = (c(a)?, c(b)?);
    // SAFETY: both are valid NUL-terminated paths that outlive the call;
    // AT_FDCWD resolves relative paths as `rename` does.
    let status = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if status != 0 {
        return Err(std::io::Error::last_os_error())
            .io_context(|| format!("swapping {} and {}", a.display(), b.display()));
    }
    sync_parent(a)?;
    if a.parent() != b.parent() {
        sync_parent(b)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_swap_whole() {
        let root = tempfile::tempdir().unwrap();
        let (a, b) = (
            root.path().join("date=2026-01-01"),
            root.path().join(".new"),
        );
        std::fs::create_dir(&a).unwrap();
        std::fs::create_dir(&b).unwrap();
        std::fs::write(a.join("old.parquet"), b"old").unwrap();
        std::fs::write(b.join("new.parquet"), b"new").unwrap();
        exchange_dirs(&b, &a).unwrap();
        assert_eq!(std::fs::read(a.join("new.parquet")).unwrap(), b"new");
        assert!(!a.join("old.parquet").exists());
        assert_eq!(std::fs::read(b.join("old.parquet")).unwrap(), b"old");
        // A missing side is an error naming both paths, and changes nothing.
        let message = exchange_dirs(&root.path().join("nowhere"), &a)
            .unwrap_err()
            .to_string();
        assert!(message.contains("nowhere") && message.contains("date=2026-01-01"));
        assert!(a.join("new.parquet").exists());
    }

    #[test]
    fn absorbed_files_are_found_by_their_published_path() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!was_absorbed(&dir.path().join("a.parquet")));
        let record = CompactionRecord {
            absorbed: ["a.parquet".to_string()].into(),
            compacted_at: "2026-12-01T00:00:00Z".into(),
            files: vec!["c.parquet".into()],
            rows: 3,
        };
        record.write(dir.path()).unwrap();
        assert_eq!(CompactionRecord::read(dir.path()).unwrap(), Some(record));
        assert!(was_absorbed(&dir.path().join("a.parquet")));
        assert!(!was_absorbed(&dir.path().join("b.parquet")));
        // Published during a compaction that died after its swap: the file
        // waits in the work directory until the next compaction moves it.
        let day = dir.path().join("date=2026-03-01");
        let work = dir.path().join(".compacting-2026-03-01");
        std::fs::create_dir_all(&day).unwrap();
        std::fs::create_dir_all(&work).unwrap();
        std::fs::write(work.join("late.parquet"), b"x").unwrap();
        assert!(was_absorbed(&day.join("late.parquet")));
        assert!(!was_absorbed(&day.join("other.parquet")));
    }
}
