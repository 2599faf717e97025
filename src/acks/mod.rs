//! Alert acknowledgements: who acknowledged which escalation alert, when,
//! with what note. Each one is written through the Parquet sink to the
//! date-partitioned `alert_acks` dataset and published (renamed into place,
//! fsynced) before the request that made it is answered, so an
//! acknowledgement the dashboard showed survives a crash, a restart and a
//! page reload. Acknowledgements happen at human speed (a ward makes tens
//! to hundreds a day): one small file each is the price of that
//! durability, and the table stays queryable like every other dataset.
//!
//! The acknowledgements of the last [`KEPT`] are also held in memory (read
//! back from the dataset at start) to mark the dashboard's alerts; older
//! ones stay in the dataset only.

mod error;
mod record;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Mutex, Notify, mpsc, oneshot};

pub use error::AckError;
pub use record::{Ack, from_batch, schema, to_batch};

use crate::sinks::parquet::{ParquetSink, ParquetSinkConfig};
use crate::sinks::{Sink, SinkMessage};

/// The dataset's name (the table analysts query).
pub const TABLE: &str = "alert_acks";
/// How far back acknowledgements are kept in memory (and read at start):
/// longer than any alert stays on a dashboard.
pub const KEPT: Duration = Duration::from_secs(7 * 24 * 3600);

/// What [`AckLog::record`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// Written and published.
    New(Ack),
    /// The alert was acknowledged before (a second click, another
    /// nurse): that first acknowledgement stands.
    Already(Ack),
}

/// The handle requests record through (cheap to clone).
#[derive(Clone)]
pub struct AckLog {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    /// The sink's input; one acknowledgement is written at a time.
    writer: Mutex<Option<mpsc::Sender<SinkMessage>>>,
    sink: Mutex<Option<tokio::task::JoinHandle<()>>>,
    by_alert: RwLock<HashMap<String, Ack>>,
}

impl AckLog {
    /// Read the recent acknowledgements in `dir` (a local directory,
    /// created if missing) and start its writer.
    pub fn open(dir: &Path) -> Result<Self, AckError> {
        std::fs::create_dir_all(dir).map_err(|source| AckError::Io {
            context: format!("alert acknowledgements: creating {}", dir.display()),
            source,
        })?;
        let since = Utc::now() - chrono::Duration::from_std(KEPT).unwrap_or_default();
        let by_alert = read_since(dir, since)?
            .into_iter()
            .map(|ack| (ack.alert_id.clone(), ack))
            .collect();
        // A JSON string is a YAML scalar; serialising a `String` cannot fail.
        let path =
            serde_json::to_string(&dir.display().to_string().replace('$', "$$")).map_err(|e| {
                AckError::Io {
                    context: format!("quoting {}", dir.display()),
                    source: std::io::Error::other(e),
                }
            })?;
        let yaml =
            format!("input: {TABLE}\npath: {path}\npartition_by_date: acked_at\nsort_by: []\n");
        let config: ParquetSinkConfig =
            serde_saphyr::from_str(&yaml).map_err(AckError::Settings)?;
        config.validate()?;
        let sink = ParquetSink::try_new(TABLE, config, schema(), &Default::default())?;
        let (tx, rx) = mpsc::channel(4);
        let task = tokio::spawn(async move {
            let sink: Box<dyn Sink> = Box::new(sink);
            if let Err(error) = sink.run(rx, Arc::new(Notify::new())).await {
                tracing::error!(error = %crate::common::ErrorChain(&error), "the alert acknowledgement writer stopped");
            }
        });
        Ok(Self {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                writer: Mutex::new(Some(tx)),
                sink: Mutex::new(Some(task)),
                by_alert: RwLock::new(by_alert),
            }),
        })
    }

    /// The dataset as a query table (`alert_acks`).
    pub fn table(dir: &Path) -> crate::query::Dataset {
        crate::query::Dataset {
            schema: Some(schema()),
            ..crate::query::Dataset::at(TABLE, crate::storage::Location::Local(dir.to_path_buf()))
        }
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The acknowledgement of `alert_id`, if any (within [`KEPT`]).
    pub fn get(&self, alert_id: &str) -> Option<Ack> {
        self.inner
            .by_alert
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(alert_id)
            .cloned()
    }

    /// Write `ack` and publish it, unless its alert was acknowledged
    /// already. Returns once the file is in the dataset.
    pub async fn record(&self, mut ack: Ack) -> Result<Recorded, AckError> {
        // The dataset keeps milliseconds: so does the answer.
        if let Some(ms) = DateTime::from_timestamp_millis(ack.acked_at.timestamp_millis()) {
            ack.acked_at = ms;
        }
        let mut writer = self.inner.writer.lock().await;
        // Checked under the writer's lock: two nurses clicking at once
        // record one acknowledgement, the first.
        if let Some(first) = self.get(&ack.alert_id) {
            return Ok(Recorded::Already(first));
        }
        let tx = writer.as_ref().ok_or(AckError::Stopped)?;
        let written = write(tx, &ack).await;
        if written.is_err() {
            // The sink's state is unknown after a failure: stop writing
            // rather than risk a half-written dataset.
            *writer = None;
        }
        written?;
        let mut by_alert = self
            .inner
            .by_alert
            .write()
            .unwrap_or_else(|p| p.into_inner());
        let horizon = Utc::now() - chrono::Duration::from_std(KEPT).unwrap_or_default();
        by_alert.retain(|_, a| a.acked_at >= horizon);
        by_alert.insert(ack.alert_id.clone(), ack.clone());
        Ok(Recorded::New(ack))
    }

    /// Whether acknowledgements can still be written.
    pub async fn is_healthy(&self) -> bool {
        self.inner.writer.lock().await.is_some()
    }

    /// Stop the writer (everything recorded is already published).
    pub async fn finish(&self) {
        self.inner.writer.lock().await.take();
        if let Some(task) = self.inner.sink.lock().await.take() {
            let _ = task.await;
        }
    }
}

async fn write(tx: &mpsc::Sender<SinkMessage>, ack: &Ack) -> Result<(), AckError> {
    let batch = to_batch(std::slice::from_ref(ack))?;
    tx.send(SinkMessage::Data(batch))
        .await
        .map_err(|_| AckError::Stopped)?;
    let (reply, staged) = oneshot::channel();
    tx.send(SinkMessage::Checkpoint(reply))
        .await
        .map_err(|_| AckError::Stopped)?;
    for file in staged.await.map_err(|_| AckError::Stopped)?? {
        file.publish()?;
    }
    Ok(())
}

/// The acknowledgements in `dir` made at or after `since`: only the
/// `date=` directories from that day on are read.
fn read_since(dir: &Path, since: DateTime<Utc>) -> Result<Vec<Ack>, AckError> {
    let first_day = format!("date={}", since.format("%Y-%m-%d"));
    let mut acks = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|source| AckError::Io {
        context: format!("alert acknowledgements: listing {}", dir.display()),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| AckError::Io {
            context: format!("alert acknowledgements: listing {}", dir.display()),
            source,
        })?;
        let name = entry.file_name().to_string_lossy().into_owned();
        // `date=YYYY-MM-DD` sorts as the day does.
        if !name.starts_with("date=") || name < first_day {
            continue;
        }
        for file in walkdir::WalkDir::new(entry.path()).sort_by_file_name() {
            let file = file.map_err(|e| AckError::Read {
                path: entry.path().display().to_string(),
                why: e.to_string(),
            })?;
            let file_name = file.file_name().to_string_lossy();
            if !file.file_type().is_file()
                || !file_name.ends_with(crate::sinks::parquet::DATA_FILE_SUFFIX)
                || file_name.starts_with('.')
            {
                continue;
            }
            acks.extend(
                read_file(file.path())?
                    .into_iter()
                    .filter(|a| a.acked_at >= since),
            );
        }
    }
    Ok(acks)
}

fn read_file(path: &Path) -> Result<Vec<Ack>, AckError> {
    let failed = |why: String| AckError::Read {
        path: path.display().to_string(),
        why,
    };
    let file = std::fs::File::open(path).map_err(|e| failed(e.to_string()))?;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .map_err(|e| failed(e.to_string()))?;
    let mut acks = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| failed(e.to_string()))?;
        acks.extend(from_batch(&batch).map_err(|e| failed(e.to_string()))?);
    }
    Ok(acks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(id: &str, by: &str) -> Ack {
        Ack {
            alert_id: id.into(),
            patient_id: id.split('@').next().unwrap().into(),
            alert_ts: 1_700_000_000_000,
            level: "high".into(),
            acked_by: by.into(),
            acked_at: Utc::now(),
            note: Some("seen".into()),
        }
    }

    #[tokio::test]
    async fn an_acknowledgement_is_published_before_it_returns_and_read_back_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let log = AckLog::open(dir.path()).unwrap();
        let Recorded::New(first) = log.record(ack("P1@1", "nurse")).await.unwrap() else {
            panic!("a first acknowledgement is new");
        };
        // A second acknowledgement of the same alert keeps the first.
        assert_eq!(
            log.record(ack("P1@1", "other")).await.unwrap(),
            Recorded::Already(first.clone())
        );
        let Recorded::New(second) = log.record(ack("P2@5", "other")).await.unwrap() else {
            panic!("another alert's acknowledgement is new");
        };
        // Already in the dataset, before the writer stops: a crash now
        // loses nothing.
        let mut stored = read_since(dir.path(), Utc::now() - chrono::Duration::hours(1)).unwrap();
        stored.sort_by(|a, b| a.alert_id.cmp(&b.alert_id));
        assert_eq!(stored, vec![first.clone(), second.clone()]);
        log.finish().await;

        let reopened = AckLog::open(dir.path()).unwrap();
        assert_eq!(reopened.get("P1@1"), Some(first));
        assert_eq!(reopened.get("P2@5"), Some(second));
        assert_eq!(reopened.get("P3@1"), None);
        reopened.finish().await;
    }

    #[tokio::test]
    async fn a_finished_log_refuses_new_acknowledgements() {
        let dir = tempfile::tempdir().unwrap();
        let log = AckLog::open(dir.path()).unwrap();
        log.finish().await;
        assert!(matches!(
            log.record(ack("P1@1", "nurse")).await,
            Err(AckError::Stopped)
        ));
        assert!(!log.is_healthy().await);
    }
}
