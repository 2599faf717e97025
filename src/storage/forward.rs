//! The forwarder: uploads a spool's files to the remote store, oldest first,
//! and deletes each once the store has it.
//!
//! Exactly once: a file's object name is its name in the spool (unique per
//! writer and sequence), a single PUT or a completed multipart upload is
//! atomic (readers never see part of an object), and the local copy is
//! deleted only after the upload succeeded. A crash between the two repeats
//! the upload, which overwrites the object with the same bytes.
//!
//! While uploads fail the forwarder retries with exponential backoff (up to
//! 30 s), reports the target as degraded (`/health`, `vitalflow_store_up`,
//! one warning per outage) and leaves the files where they are.

use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use object_store::buffered::BufWriter;
use object_store::path::Path as ObjectPath;
use tokio::io::AsyncWriteExt;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::error::{IoContext, StorageError};
use super::events::{FileUploaded, UploadFailed};
use super::location::RemoteLocation;
use super::spool::{Spool, SpooledFile};
use super::status::{StoreStatus, StoreStatusBoard};
use crate::common::{ErrorChain, backoff};

/// How often an idle forwarder looks for newly published files.
const POLL: Duration = Duration::from_millis(200);
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Files up to this size go up in one PUT; larger ones as a multipart
/// upload of parts this size.
const PART_BYTES: usize = 16 * 1024 * 1024;

/// Uploads one spool to one remote dataset.
pub struct Forwarder {
    sink: String,
    spool: Arc<Spool>,
    store: Arc<dyn ObjectStore>,
    target: RemoteLocation,
    /// Where its status is reported (`/health`, metrics).
    board: StoreStatusBoard,
}

/// A running forwarder.
pub struct ForwarderHandle {
    sink: String,
    spool: Arc<Spool>,
    drain: CancellationToken,
    task: JoinHandle<()>,
}

/// What was left after a drain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    pub waiting_files: u64,
    pub waiting_bytes: u64,
}

impl Forwarder {
    pub fn new(
        sink: &str,
        spool: Arc<Spool>,
        store: Arc<dyn ObjectStore>,
        target: RemoteLocation,
        board: StoreStatusBoard,
    ) -> Self {
        Self {
            sink: sink.to_string(),
            spool,
            store,
            target,
            board,
        }
    }

    pub fn spawn(self) -> ForwarderHandle {
        let drain = CancellationToken::new();
        ForwarderHandle {
            sink: self.sink.clone(),
            spool: self.spool.clone(),
            drain: drain.clone(),
            task: tokio::spawn(self.run(drain)),
        }
    }

    async fn run(self, drain: CancellationToken) {
        let mut health = Health::new(&self);
        let retry_delays = || backoff::exponential(FIRST_BACKOFF, MAX_BACKOFF);
        let mut delays = retry_delays();
        loop {
            let files = match self.spool.scan() {
                Ok(files) => files,
                Err(error) => {
                    tracing::error!(sink = %self.sink, spool = %self.spool.dir().display(), %error, "cannot list the spool");
                    Vec::new()
                }
            };
            health.publish(&self.spool);
            if files.is_empty() {
                if drain.is_cancelled() {
                    return;
                }
                tokio::select! {
                    _ = tokio::time::sleep(POLL) => {}
                    _ = drain.cancelled() => {}
                }
                continue;
            }
            let mut failed = false;
            for file in files {
                match self.upload(&file).await {
                    Ok(()) => {
                        if let Err(error) = self.spool.remove(&file) {
                            // Uploaded; the next pass uploads it again (same bytes).
                            tracing::error!(sink = %self.sink, %error, "cannot delete an uploaded spool file");
                        }
                        health.uploaded(&self, &file);
                        delays = retry_delays();
                    }
                    Err(error) => {
                        health.failed(&self, &error);
                        failed = true;
                        break;
                    }
                }
                health.publish(&self.spool);
            }
            if failed {
                health.publish(&self.spool);
                if drain.is_cancelled() {
                    // Stopping with the store down: the files wait for the next run.
                    return;
                }
                let backoff = delays.next().unwrap_or(MAX_BACKOFF);
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = drain.cancelled() => {}
                }
            }
        }
    }

    fn object_path(&self, file: &SpooledFile) -> ObjectPath {
        let mut path = self.target.prefix();
        for part in file.relative.split('/') {
            path = path.join(part);
        }
        path
    }

    async fn upload(&self, file: &SpooledFile) -> Result<(), StorageError> {
        let started = std::time::Instant::now();
        let path = self.object_path(file);
        let mut local = tokio::fs::File::open(&file.path)
            .await
            .io_context(|| format!("opening {}", file.path.display()))?;
        let mut remote = BufWriter::with_capacity(self.store.clone(), path.clone(), PART_BYTES);
        let context = || {
            format!(
                "uploading {} to {}/{path}",
                file.path.display(),
                self.target.store_url()
            )
        };
        if let Err(error) = tokio::io::copy(&mut local, &mut remote).await {
            // Parts already sent are dropped with the unfinished upload.
            let _ = remote.abort().await;
            return Err(StorageError::io(context(), error));
        }
        // Completes the single PUT or the multipart upload: the object
        // appears whole or not at all.
        remote
            .shutdown()
            .await
            .map_err(|e| StorageError::io(context(), e))?;
        FileUploaded {
            sink: &self.sink,
            object: path.as_ref(),
            bytes: file.bytes,
            elapsed: started.elapsed(),
        }
        .emit();
        Ok(())
    }
}

impl ForwarderHandle {
    /// The spool this forwarder empties.
    pub fn spool(&self) -> Arc<Spool> {
        self.spool.clone()
    }

    /// Upload what is waiting (including the run's last files), for at
    /// most `within`; stop at once if the store fails. Whatever is left
    /// stays in the spool for the next run, and is reported.
    pub async fn drain(self, within: Duration) -> Drained {
        self.drain.cancel();
        let mut task = self.task;
        if tokio::time::timeout(within, &mut task).await.is_err() {
            task.abort();
            let _ = task.await;
        }
        let _ = self.spool.scan();
        let drained = Drained {
            waiting_files: self.spool.waiting_files(),
            waiting_bytes: self.spool.waiting_bytes(),
        };
        if drained.waiting_files > 0 {
            tracing::warn!(
                sink = %self.sink,
                spool = %self.spool.dir().display(),
                target = %self.spool.target(),
                files = drained.waiting_files,
                bytes = drained.waiting_bytes,
                "stopping with files still waiting in the spool; the next run uploads them"
            );
        }
        drained
    }
}

/// The forwarder's view of its store, reported on every change.
struct Health {
    status: StoreStatus,
    /// What was last reported: an idle forwarder polls every 200 ms and
    /// reports only what changed.
    reported: Option<StoreStatus>,
    board: StoreStatusBoard,
}

impl Health {
    fn new(forwarder: &Forwarder) -> Self {
        Self {
            status: StoreStatus {
                sink: forwarder.sink.clone(),
                target: forwarder.spool.target().to_string(),
                spool: forwarder.spool.dir().display().to_string(),
                state: "ok".into(),
                waiting_files: 0,
                waiting_bytes: 0,
                uploaded_files: 0,
                last_error: None,
                degraded_since: None,
                paused: false,
            },
            reported: None,
            board: forwarder.board.clone(),
        }
    }

    fn publish(&mut self, spool: &Spool) {
        self.status.waiting_files = spool.waiting_files();
        self.status.waiting_bytes = spool.waiting_bytes();
        self.status.paused = spool.is_full() && spool.is_waiting();
        if self.reported.as_ref() != Some(&self.status) {
            self.board.report(self.status.clone());
            self.reported = Some(self.status.clone());
        }
    }

    fn uploaded(&mut self, forwarder: &Forwarder, file: &SpooledFile) {
        self.status.uploaded_files += 1;
        if self.status.is_degraded() {
            tracing::info!(
                sink = %forwarder.sink,
                target = %self.status.target,
                since = self.status.degraded_since.as_deref().unwrap_or("?"),
                file = %file.relative,
                "the store answers again; uploading the spooled files"
            );
            self.status.state = "ok".into();
            self.status.last_error = None;
            self.status.degraded_since = None;
        }
    }

    fn failed(&mut self, forwarder: &Forwarder, error: &StorageError) {
        UploadFailed {
            sink: &forwarder.sink,
        }
        .emit();
        let message = ErrorChain(error).to_string();
        if !self.status.is_degraded() {
            tracing::warn!(
                sink = %forwarder.sink,
                target = %self.status.target,
                spool = %self.status.spool,
                error = %message,
                "the store is failing: completed files wait in the local spool and are uploaded when it is back"
            );
            self.status.state = "degraded".into();
            self.status.degraded_since = Some(chrono::Utc::now().to_rfc3339());
        }
        self.status.last_error = Some(message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Location;
    use object_store::ObjectStoreExt;
    use object_store::memory::InMemory;

    #[tokio::test]
    async fn uploads_in_order_then_deletes_and_drains() {
        let dir = tempfile::tempdir().unwrap();
        let spool_dir = dir.path().to_path_buf();
        for (name, body) in [
            ("date=2026-11-26/part-2-b-000001.parquet", "second"),
            ("date=2026-11-25/part-1-a-000000.parquet", "first"),
        ] {
            let path = spool_dir.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, body).unwrap();
        }
        let target = Location::parse("s3://lake/raw/vitals", std::path::Path::new("."))
            .unwrap()
            .as_remote()
            .unwrap()
            .clone();
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let spool = Arc::new(Spool::new(spool_dir.clone(), target.to_string(), 1 << 20));
        let handle = Forwarder::new(
            "s",
            spool.clone(),
            store.clone(),
            target,
            StoreStatusBoard::default(),
        )
        .spawn();
        let drained = handle.drain(Duration::from_secs(10)).await;
        assert_eq!(
            drained,
            Drained {
                waiting_files: 0,
                waiting_bytes: 0
            }
        );
        let first = store
            .get(&ObjectPath::from(
                "raw/vitals/date=2026-11-25/part-1-a-000000.parquet",
            ))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(&first[..], b"first");
        assert!(
            spool.scan().unwrap().is_empty(),
            "uploaded files are deleted"
        );
    }
}
