//! The local spool of a remote dataset: completed files waiting for upload.
//!
//! A sink writing to an object store writes, stages and publishes its files
//! here exactly as it would into a local dataset (same names, same `date=`
//! directories, same atomic rename after the checkpoint). A published file
//! in the spool is durable and counted as stored; the [forwarder]
//! uploads it under the same relative name and then deletes it. When the
//! store is down, files simply stay: that is the store-and-forward.
//!
//! The spool is bounded: while the files waiting add up to `max_bytes`, the
//! sink waits for the forwarder to free room, and the pipeline pauses
//! behind it (a Kafka source stops fetching but stays in its group). Only a
//! run told to stop while the spool is full ends with [`SpoolFull`], having
//! lost nothing: offsets past the last checkpoint were not committed.
//!
//! [forwarder]: super::forward

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::error::StorageError;
use super::publish::sync_parent;

/// A file waiting in the spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpooledFile {
    pub path: PathBuf,
    /// `/`-separated path below the spool root (`date=.../part-...parquet`):
    /// the object's name below the dataset prefix.
    pub relative: String,
    pub bytes: u64,
}

/// The spool is full: new rows are refused until uploads free room.
#[derive(Debug, thiserror::Error)]
#[error(
    "the spool {dir} is full: {waiting_files} files ({waiting_bytes} bytes) wait for upload to \
     {target}, the limit is {max_bytes} bytes. The store has been failing; nothing is lost (rows \
     past the last checkpoint are read again), and the spooled files are uploaded as soon as the \
     store answers. Fix the store, or raise `spool.max_bytes`."
)]
pub struct SpoolFull {
    pub dir: String,
    pub target: String,
    pub waiting_files: u64,
    pub waiting_bytes: u64,
    pub max_bytes: u64,
}

/// One spool directory with its size accounting.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    target: String,
    max_bytes: u64,
    waiting_bytes: AtomicU64,
    waiting_files: AtomicU64,
    /// Set when the run stops: a sink waiting for room gives up.
    stopping: AtomicBool,
    /// A sink is waiting for room: the pipeline is paused behind it.
    waiting: AtomicBool,
}

/// How often a sink waiting for room looks again.
const ROOM_POLL: Duration = Duration::from_millis(200);

impl Spool {
    pub fn new(dir: PathBuf, target: String, max_bytes: u64) -> Self {
        let spool = Self {
            dir,
            target,
            max_bytes,
            waiting_bytes: AtomicU64::new(0),
            waiting_files: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
            waiting: AtomicBool::new(false),
        };
        // Files left by an earlier run count from the start.
        let _ = spool.scan();
        spool
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn target(&self) -> &str {
        &self.target
    }

    pub fn waiting_bytes(&self) -> u64 {
        self.waiting_bytes.load(Ordering::Relaxed)
    }

    pub fn waiting_files(&self) -> u64 {
        self.waiting_files.load(Ordering::Relaxed)
    }

    /// The published files waiting, oldest first (names start with their
    /// creation time), and the counters brought up to date.
    pub fn scan(&self) -> std::io::Result<Vec<SpooledFile>> {
        let mut files = waiting_files(&self.dir)?;
        files.sort_by(|a, b| {
            file_name(&a.relative)
                .cmp(file_name(&b.relative))
                .then_with(|| a.relative.cmp(&b.relative))
        });
        self.waiting_files
            .store(files.len() as u64, Ordering::Relaxed);
        self.waiting_bytes
            .store(files.iter().map(|f| f.bytes).sum(), Ordering::Relaxed);
        Ok(files)
    }

    /// `Err` while the files waiting fill the spool.
    pub fn check_room(&self) -> Result<(), SpoolFull> {
        let waiting_bytes = self.waiting_bytes();
        if waiting_bytes < self.max_bytes {
            return Ok(());
        }
        Err(SpoolFull {
            dir: self.dir.display().to_string(),
            target: self.target.clone(),
            waiting_files: self.waiting_files(),
            waiting_bytes,
            max_bytes: self.max_bytes,
        })
    }

    /// Whether the files waiting fill the spool.
    pub fn is_full(&self) -> bool {
        self.waiting_bytes() >= self.max_bytes
    }

    /// Whether a sink is waiting for room (a full spool pauses the
    /// pipeline only once rows arrive for it).
    pub fn is_waiting(&self) -> bool {
        self.waiting.load(Ordering::SeqCst)
    }

    /// The run is stopping: stop waiting for room.
    pub fn stop_waiting(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// Block (a sink's own thread) until the files waiting leave room.
    /// `on_pause` runs once when waiting starts. `Ok(Some(paused))` after a
    /// wait, `Ok(None)` if there was room; `Err` only when the run stops
    /// while the spool is still full.
    pub fn wait_for_room(
        &self,
        on_pause: impl FnOnce(&SpoolFull),
    ) -> Result<Option<Duration>, SpoolFull> {
        let Err(full) = self.check_room() else {
            return Ok(None);
        };
        on_pause(&full);
        let started = Instant::now();
        self.waiting.store(true, Ordering::SeqCst);
        let outcome = loop {
            if self.stopping.load(Ordering::SeqCst) {
                break self.check_room().map(|()| Some(started.elapsed()));
            }
            std::thread::sleep(ROOM_POLL);
            if self.check_room().is_ok() {
                break Ok(Some(started.elapsed()));
            }
        };
        self.waiting.store(false, Ordering::SeqCst);
        outcome
    }

    /// Delete an uploaded file (and make the deletion durable).
    pub fn remove(&self, file: &SpooledFile) -> Result<(), StorageError> {
        match std::fs::remove_file(&file.path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                return Err(StorageError::io(
                    format!("removing uploaded {}", file.path.display()),
                    e,
                ));
            }
        }
        sync_parent(&file.path)?;
        self.waiting_files.fetch_sub(1, Ordering::Relaxed);
        self.waiting_bytes.fetch_sub(file.bytes, Ordering::Relaxed);
        Ok(())
    }
}

fn file_name(relative: &str) -> &str {
    relative.rsplit('/').next().unwrap_or(relative)
}

/// Visible `*.parquet` files below `root`, skipping hidden (`.x`, files
/// being written) and internal (`_vitalflow`) entries.
pub fn waiting_files(root: &Path) -> std::io::Result<Vec<SpooledFile>> {
    let mut files = Vec::new();
    let visible = |e: &walkdir::DirEntry| {
        let name = e.file_name().to_string_lossy();
        e.depth() == 0 || !(name.starts_with('.') || name.starts_with('_'))
    };
    for entry in walkdir::WalkDir::new(root)
        .into_iter()
        .filter_entry(visible)
    {
        let entry = match entry {
            Ok(entry) => entry,
            // Not there (yet), or removed while listing: nothing waits there.
            Err(e)
                if e.io_error().map(std::io::Error::kind) == Some(std::io::ErrorKind::NotFound) =>
            {
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if !entry.file_type().is_file()
            || !entry.file_name().to_string_lossy().ends_with(".parquet")
        {
            continue;
        }
        let relative = entry
            .path()
            .strip_prefix(root)
            .unwrap_or(entry.path())
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        files.push(SpooledFile {
            bytes: entry.metadata().map_err(std::io::Error::from)?.len(),
            path: entry.into_path(),
            relative,
        });
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_files_are_listed_oldest_first_without_hidden_or_internal_ones() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for (path, body) in [
            (
                "date=2026-11-27/part-20261127T000000000Z-aa-000001.parquet",
                "bb",
            ),
            (
                "date=2026-11-26/part-20261126T235959000Z-bb-000000.parquet",
                "a",
            ),
            ("date=2026-11-26/.part-x.parquet.inprogress", "xxxx"),
            ("_vitalflow/p/w/checkpoint-000000000001.json", "{}"),
            ("notes.txt", "n"),
        ] {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, body).unwrap();
        }
        let spool = Spool::new(root.to_path_buf(), "s3://b/p".into(), 3);
        assert_eq!(spool.waiting_files(), 2, "counted at creation");
        let files = spool.scan().unwrap();
        let names: Vec<_> = files.iter().map(|f| f.relative.as_str()).collect();
        assert_eq!(
            names,
            [
                "date=2026-11-26/part-20261126T235959000Z-bb-000000.parquet",
                "date=2026-11-27/part-20261127T000000000Z-aa-000001.parquet"
            ]
        );
        assert_eq!(spool.waiting_bytes(), 3);
        let full = spool.check_room().unwrap_err().to_string();
        assert!(
            full.contains("is full") && full.contains("s3://b/p"),
            "{full}"
        );
        spool.remove(&files[0]).unwrap();
        spool.remove(&files[0]).unwrap();
        assert_eq!(spool.waiting_bytes(), 2);
        assert!(spool.check_room().is_ok());
    }

    #[test]
    fn a_sink_waits_while_the_spool_is_full_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("date=2026-11-27/part-a.parquet");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, "abcd").unwrap();
        let spool = std::sync::Arc::new(Spool::new(dir.path().to_path_buf(), "s3://b/p".into(), 4));
        assert!(spool.is_full());
        assert!(!spool.is_waiting(), "full, but no sink waits yet");
        let (paused_tx, paused) = std::sync::mpsc::channel();
        let sink = {
            let spool = spool.clone();
            std::thread::spawn(move || spool.wait_for_room(|_| paused_tx.send(()).unwrap()))
        };
        paused.recv_timeout(Duration::from_secs(10)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !spool.is_waiting() {
            assert!(Instant::now() < deadline, "the sink never waited");
            std::thread::yield_now();
        }
        // An upload frees room: the sink goes on and no longer waits.
        let files = spool.scan().unwrap();
        spool.remove(&files[0]).unwrap();
        let waited = sink.join().unwrap().unwrap();
        assert!(waited.is_some());
        assert!(!spool.is_waiting());

        // Told to stop while still full: the sink gives up with the error.
        std::fs::write(&file, "abcd").unwrap();
        spool.scan().unwrap();
        spool.stop_waiting();
        assert!(
            spool
                .wait_for_room(|_| {})
                .unwrap_err()
                .to_string()
                .contains("is full")
        );
        assert!(!spool.is_waiting());
    }
}
