//! The audit trail: who accessed which patient's data, when, from where,
//! what they did and what came of it. Records are appended to the
//! date-partitioned Parquet dataset `audit` through the Parquet sink, so
//! its files are staged and published like every other dataset's.
//!
//! Durability: records reach the open file in batches (at least every
//! 250 ms) and the file is staged and published every `flush_every`
//! (default 5 s) and at shutdown (SIGTERM, Ctrl-C: nothing is lost). A
//! `kill -9` loses the records of the last `flush_every` plus 250 ms at
//! most (the unpublished file is discarded at the next start).

mod error;
mod record;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{Mutex, Notify, mpsc, oneshot};
use tokio::task::JoinHandle;

pub use error::AuditError;
pub use record::{AuditRecord, schema};

use crate::common::ErrorChain;
use crate::sinks::parquet::{ParquetSink, ParquetSinkConfig};
use crate::sinks::{Sink, SinkMessage};

/// The dataset's name (the table admins query).
pub const TABLE: &str = "audit";
/// Records waiting for the writer at most; a full queue slows requests
/// down rather than dropping records.
const QUEUE: usize = 65_536;
/// Records per Arrow batch handed to the sink at most.
const BATCH: usize = 4096;
/// Records wait this long at most before being handed to the sink.
const COALESCE: Duration = Duration::from_millis(250);

/// The writer's task: the records it wrote, or why it stopped.
type WriterTask = JoinHandle<Result<u64, AuditError>>;

/// The handle requests append through (cheap to clone).
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<AuditRecord>,
    failed: Arc<AtomicBool>,
    stop: tokio_util::sync::CancellationToken,
    writer: Arc<Mutex<Option<WriterTask>>>,
    dir: PathBuf,
}

impl AuditLog {
    /// Start the writer of the dataset in `dir` (a local directory).
    pub fn start(dir: &Path, flush_every: Duration) -> Result<Self, AuditError> {
        std::fs::create_dir_all(dir).map_err(|source| AuditError::Io {
            context: format!("audit trail: creating {}", dir.display()),
            source,
        })?;
        // A JSON string is a YAML scalar; serialising a `String` cannot fail.
        let path = serde_json::to_string(&dir.display().to_string().replace('$', "$$"))
            .map_err(|e| AuditError::Internal(format!("quoting the audit directory: {e}")))?;
        let yaml = format!("input: {TABLE}\npath: {path}\npartition_by_date: time\nsort_by: []\n");
        let config: ParquetSinkConfig =
            serde_saphyr::from_str(&yaml).map_err(AuditError::Settings)?;
        config.validate()?;
        let sink = ParquetSink::try_new(TABLE, config, schema(), &Default::default())?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let failed = Arc::new(AtomicBool::new(false));
        let stop = tokio_util::sync::CancellationToken::new();
        let writer = tokio::spawn(write(
            rx,
            Box::new(sink),
            flush_every,
            stop.clone(),
            failed.clone(),
        ));
        Ok(Self {
            tx,
            failed,
            stop,
            writer: Arc::new(Mutex::new(Some(writer))),
            dir: dir.to_path_buf(),
        })
    }

    /// The dataset as a query table (`audit`), for `/api/query` and readers.
    pub fn table(dir: &Path) -> crate::query::Dataset {
        crate::query::Dataset {
            schema: Some(schema()),
            ..crate::query::Dataset::at(TABLE, crate::storage::Location::Local(dir.to_path_buf()))
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether records can still be written; when not, requests that must
    /// be audited are refused (503) rather than served unrecorded.
    pub fn is_healthy(&self) -> bool {
        !self.failed.load(Ordering::Relaxed) && !self.tx.is_closed()
    }

    /// Append one record (waits while the queue is full).
    pub async fn append(&self, record: AuditRecord) {
        if self.tx.send(record).await.is_err() {
            self.failed.store(true, Ordering::Relaxed);
            tracing::error!("audit record lost: the audit writer has stopped");
        }
    }

    /// Write what is queued, publish the open file and stop; returns the
    /// records written over the writer's life.
    pub async fn finish(&self) -> Result<u64, AuditError> {
        self.stop.cancel();
        let handle = self.writer.lock().await.take();
        match handle {
            Some(handle) => handle.await.map_err(|source| AuditError::Panicked {
                task: "audit writer",
                source,
            })?,
            None => Ok(0),
        }
    }
}

async fn write(
    mut rx: mpsc::Receiver<AuditRecord>,
    sink: Box<dyn Sink>,
    flush_every: Duration,
    stop: tokio_util::sync::CancellationToken,
    failed: Arc<AtomicBool>,
) -> Result<u64, AuditError> {
    let (sink_tx, sink_rx) = mpsc::channel(4);
    let sink_task = tokio::spawn(sink.run(sink_rx, Arc::new(Notify::new())));
    // Records are handed to the sink in batches of up to `BATCH` (or what
    // arrived within `COALESCE`): a sink write per request would cost the
    // sink's per-batch overhead thousands of times a second.
    let mut coalesce = tokio::time::interval(COALESCE.min(flush_every));
    coalesce.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut flush = tokio::time::interval(flush_every);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pending = Vec::with_capacity(BATCH);
    let mut unpublished = 0u64;
    let mut written = 0u64;
    let outcome: Result<(), AuditError> = async {
        loop {
            let room = BATCH - pending.len();
            tokio::select! {
                received = rx.recv_many(&mut pending, room) => {
                    if received == 0 {
                        break;
                    }
                    if pending.len() >= BATCH {
                        unpublished += send(&sink_tx, &mut pending).await?;
                    }
                }
                _ = coalesce.tick() => {
                    if !pending.is_empty() {
                        unpublished += send(&sink_tx, &mut pending).await?;
                    }
                }
                _ = flush.tick() => {
                    if !pending.is_empty() {
                        unpublished += send(&sink_tx, &mut pending).await?;
                    }
                    if unpublished > 0 {
                        written += checkpoint(&sink_tx).await?;
                        unpublished = 0;
                    }
                }
                _ = stop.cancelled() => {
                    // Whatever requests appended before the stop.
                    rx.close();
                    while rx.recv_many(&mut pending, BATCH).await > 0 {
                        unpublished += send(&sink_tx, &mut pending).await?;
                    }
                    break;
                }
            }
        }
        if !pending.is_empty() {
            unpublished += send(&sink_tx, &mut pending).await?;
        }
        if unpublished > 0 {
            written += checkpoint(&sink_tx).await?;
        }
        Ok(())
    }
    .await;
    drop(sink_tx);
    let sink_outcome = sink_task.await.map_err(|source| AuditError::Panicked {
        task: "audit sink",
        source,
    })?;
    if let Err(error) = outcome.and(sink_outcome.map(|_| ()).map_err(AuditError::from)) {
        failed.store(true, Ordering::Relaxed);
        tracing::error!(
            error = %ErrorChain(&error),
            "the audit trail stopped; audited routes answer 503"
        );
        return Err(error);
    }
    Ok(written)
}

async fn send(
    sink: &mpsc::Sender<SinkMessage>,
    pending: &mut Vec<AuditRecord>,
) -> Result<u64, AuditError> {
    let rows = pending.len() as u64;
    let batch = record::to_batch(pending)?;
    pending.clear();
    sink.send(SinkMessage::Data(batch))
        .await
        .map_err(|_| AuditError::SinkStopped { source: None })?;
    Ok(rows)
}

/// Stage the open file and publish it; returns the rows published.
async fn checkpoint(sink: &mpsc::Sender<SinkMessage>) -> Result<u64, AuditError> {
    let (reply, staged) = oneshot::channel();
    sink.send(SinkMessage::Checkpoint(reply))
        .await
        .map_err(|_| AuditError::SinkStopped { source: None })?;
    let files = staged
        .await
        .map_err(|e| AuditError::SinkStopped { source: Some(e) })??;
    let mut rows = 0;
    for file in files {
        file.publish()?;
        rows += file.rows;
    }
    Ok(rows)
}
