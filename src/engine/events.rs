//! Internal events of the engine loop (one log line and/or metrics each).
#![allow(clippy::disallowed_macros)]

use std::time::Duration;

use crate::storage::StagedFile;

/// One source batch went through every operator and was handed to the sinks.
pub struct BatchProcessed<'a> {
    /// Labels every series, so one Prometheus can tell pipelines apart.
    pub pipeline: &'a str,
    pub source: &'a str,
    pub rows: usize,
    pub elapsed: Duration,
}

impl BatchProcessed<'_> {
    pub fn emit(&self) {
        let (pipeline, source) = (self.pipeline.to_owned(), self.source.to_owned());
        metrics::counter!("vitalflow_source_events_total", "pipeline" => pipeline.clone(), "source" => source.clone())
            .increment(self.rows as u64);
        metrics::counter!("vitalflow_pipeline_batches_total", "pipeline" => pipeline, "source" => source)
            .increment(1);
        metrics::histogram!("vitalflow_pipeline_batch_rows").record(self.rows as f64);
        metrics::histogram!("vitalflow_pipeline_batch_duration_seconds")
            .record(self.elapsed.as_secs_f64());
    }
}

/// A checkpoint made files and source offsets durable.
pub struct CheckpointCompleted<'a> {
    pub pipeline: &'a str,
    pub files: usize,
    pub elapsed: Duration,
}

impl CheckpointCompleted<'_> {
    pub fn emit(&self) {
        tracing::debug!(
            pipeline = self.pipeline,
            files = self.files,
            elapsed_ms = self.elapsed.as_secs_f64() * 1e3,
            "checkpoint completed"
        );
        metrics::counter!("vitalflow_checkpoints_total", "pipeline" => self.pipeline.to_owned())
            .increment(1);
        metrics::gauge!("vitalflow_last_checkpoint_timestamp_seconds", "pipeline" => self.pipeline.to_owned())
            .set(chrono::Utc::now().timestamp_millis() as f64 / 1e3);
        metrics::histogram!("vitalflow_checkpoint_duration_seconds", "pipeline" => self.pipeline.to_owned())
            .record(self.elapsed.as_secs_f64());
    }
}

/// A checkpoint was refused: another instance had published rows of one
/// of its partitions since this one started reading them (two owners at
/// once); the run restarts from the checkpoints.
pub struct CheckpointFenced<'a> {
    pub pipeline: &'a str,
    pub source: &'a str,
    pub partition: &'a crate::common::TopicPartition,
    pub durable: i64,
}

impl CheckpointFenced<'_> {
    pub fn emit(&self) {
        tracing::warn!(
            pipeline = self.pipeline,
            source = self.source,
            partition = %self.partition,
            durable = self.durable,
            "checkpoint refused: another instance published this partition meanwhile"
        );
        metrics::counter!("vitalflow_checkpoints_fenced_total", "pipeline" => self.pipeline.to_owned(), "source" => self.source.to_owned())
            .increment(1);
    }
}

/// A file became visible in its dataset.
pub struct FilePublished<'a> {
    pub file: &'a StagedFile,
}

impl FilePublished<'_> {
    pub fn emit(&self) {
        let file = self.file;
        tracing::debug!(sink = %file.sink, file = %file.published.display(), rows = file.rows, bytes = file.bytes, "file published");
        let sink = file.sink.clone();
        metrics::counter!("vitalflow_sink_files_written_total", "sink" => sink.clone())
            .increment(1);
        metrics::counter!("vitalflow_sink_rows_written_total", "sink" => sink.clone())
            .increment(file.rows);
        metrics::counter!("vitalflow_sink_bytes_written_total", "sink" => sink)
            .increment(file.bytes);
    }
}

/// Startup found the checkpoint directory and finished what was pending.
pub struct Recovered<'a> {
    pub pipeline: &'a str,
    /// Where the checkpoints are (a directory or an object store URL).
    pub dir: &'a str,
    pub rolled_forward: usize,
    /// Writers whose expired checkpoints were removed.
    pub expired: &'a [String],
}

impl Recovered<'_> {
    pub fn emit(&self) {
        if !self.expired.is_empty() {
            tracing::info!(pipeline = self.pipeline, checkpoints = %self.dir, writers = %self.expired.join(" "), "removed the checkpoints of instances gone longer than checkpoint_retention");
        }
        if self.rolled_forward > 0 {
            tracing::info!(pipeline = self.pipeline, checkpoints = %self.dir, files = self.rolled_forward, "published files of an interrupted checkpoint");
        } else {
            tracing::debug!(pipeline = self.pipeline, checkpoints = %self.dir, "no interrupted checkpoint");
        }
    }
}

/// Rows arrived behind their source's watermark and went to the late table.
pub struct LateEvents<'a> {
    pub pipeline: &'a str,
    pub source: &'a str,
    pub rows: usize,
    pub watermark: Option<i64>,
}

impl LateEvents<'_> {
    pub fn emit(&self) {
        tracing::debug!(
            pipeline = self.pipeline,
            source = self.source,
            rows = self.rows,
            watermark_ms = self.watermark,
            "late rows routed to the late-events table"
        );
        metrics::counter!("vitalflow_late_events_total", "pipeline" => self.pipeline.to_owned(), "source" => self.source.to_owned())
            .increment(self.rows as u64);
    }
}

/// A source's watermark after a batch.
pub struct WatermarkAdvanced<'a> {
    pub pipeline: &'a str,
    pub source: &'a str,
    /// Epoch milliseconds.
    pub watermark: i64,
}

impl WatermarkAdvanced<'_> {
    pub fn emit(&self) {
        let (pipeline, source) = (self.pipeline.to_owned(), self.source.to_owned());
        let seconds = self.watermark as f64 / 1e3;
        metrics::gauge!("vitalflow_watermark_timestamp_seconds", "pipeline" => pipeline.clone(), "source" => source.clone())
            .set(seconds);
        // How far event time trails the wall clock: the delay before a
        // window's results can appear.
        let now = chrono::Utc::now().timestamp_millis() as f64 / 1e3;
        metrics::gauge!("vitalflow_watermark_lag_seconds", "pipeline" => pipeline, "source" => source)
            .set(now - seconds);
    }
}

/// Open windows and watermarks were loaded from a checkpoint.
pub struct StateRestored<'a> {
    pub pipeline: &'a str,
    pub manifest: &'a str,
    pub groups: usize,
}

impl StateRestored<'_> {
    pub fn emit(&self) {
        tracing::info!(
            pipeline = self.pipeline,
            checkpoint = %self.manifest,
            open_groups = self.groups,
            "continuing open windows from the last checkpoint"
        );
    }
}

/// A source partition became this instance's: its operators started,
/// with the state saved with the offset it resumes from.
pub struct PartitionStateAssigned<'a> {
    pub pipeline: &'a str,
    pub source: &'a str,
    pub partition: &'a crate::common::TopicPartition,
    /// Where the source resumes reading.
    pub resume: Option<i64>,
    /// The checkpoint the state came from and the offset it was saved at.
    pub saved: Option<(&'a str, Option<i64>)>,
    /// State rows (window groups, alert keys) restored.
    pub restored: usize,
}

impl PartitionStateAssigned<'_> {
    pub fn emit(&self) {
        let partition = self.partition.to_string();
        match self.saved {
            Some((manifest, saved_at)) if saved_at != self.resume => tracing::warn!(
                pipeline = self.pipeline,
                source = self.source,
                partition = %partition,
                resume = ?self.resume,
                saved_at = ?saved_at,
                checkpoint = %manifest,
                "the partition resumes at another offset than its saved state was taken at: \
                 windows may count rows twice or miss some"
            ),
            Some((manifest, _)) => tracing::info!(
                pipeline = self.pipeline,
                source = self.source,
                partition = %partition,
                resume = ?self.resume,
                restored_rows = self.restored,
                checkpoint = %manifest,
                "took over partition with its saved state"
            ),
            None => tracing::info!(
                pipeline = self.pipeline,
                source = self.source,
                partition = %partition,
                resume = ?self.resume,
                "took over partition; no saved state (fresh windows)"
            ),
        }
        metrics::gauge!("vitalflow_partition_owned", "pipeline" => self.pipeline.to_owned(), "source" => self.source.to_owned(), "partition" => partition.clone())
            .set(1.0);
        metrics::counter!("vitalflow_partition_state_restored_rows_total", "pipeline" => self.pipeline.to_owned(), "source" => self.source.to_owned(), "partition" => partition)
            .increment(self.restored as u64);
    }
}

/// A checkpoint saved an owned partition's state.
pub struct PartitionCheckpointed<'a> {
    pub pipeline: &'a str,
    pub source: &'a str,
    pub partition: &'a crate::common::TopicPartition,
    /// The partition's own watermark (epoch ms).
    pub watermark: Option<i64>,
    /// State rows (window groups, alert keys) saved for it.
    pub state_rows: usize,
}

impl PartitionCheckpointed<'_> {
    pub fn emit(&self) {
        let labels = [
            ("pipeline", self.pipeline.to_owned()),
            ("source", self.source.to_owned()),
            ("partition", self.partition.to_string()),
        ];
        metrics::gauge!("vitalflow_partition_state_rows", &labels).set(self.state_rows as f64);
        metrics::gauge!("vitalflow_partition_checkpoint_timestamp_seconds", &labels)
            .set(chrono::Utc::now().timestamp_millis() as f64 / 1e3);
        if let Some(watermark) = self.watermark {
            metrics::gauge!("vitalflow_partition_watermark_seconds", &labels)
                .set(watermark as f64 / 1e3);
        }
    }
}

/// Source partitions went to another instance; their state was saved by
/// the checkpoint just before and is dropped here.
pub struct PartitionStateReleased<'a> {
    pub pipeline: &'a str,
    pub source: &'a str,
    pub partitions: &'a [crate::common::TopicPartition],
}

impl PartitionStateReleased<'_> {
    pub fn emit(&self) {
        let list: Vec<String> = self.partitions.iter().map(ToString::to_string).collect();
        tracing::info!(
            pipeline = self.pipeline,
            source = self.source,
            partitions = %list.join(" "),
            "released partitions; their state is in the last checkpoint for the next owner"
        );
        for partition in list {
            metrics::gauge!("vitalflow_partition_owned", "pipeline" => self.pipeline.to_owned(), "source" => self.source.to_owned(), "partition" => partition)
                .set(0.0);
        }
    }
}

/// A window operator closed windows and emitted their groups.
pub struct WindowsClosed<'a> {
    pub pipeline: &'a str,
    pub transform: &'a str,
    pub windows: usize,
    pub groups: usize,
}

impl WindowsClosed<'_> {
    pub fn emit(&self) {
        let (pipeline, transform) = (self.pipeline.to_owned(), self.transform.to_owned());
        metrics::counter!("vitalflow_windows_closed_total", "pipeline" => pipeline.clone(), "transform" => transform.clone())
            .increment(self.windows as u64);
        metrics::counter!("vitalflow_window_groups_emitted_total", "pipeline" => pipeline, "transform" => transform)
            .increment(self.groups as u64);
    }
}

/// How many windows a window operator holds open now.
pub struct WindowsOpen<'a> {
    pub pipeline: &'a str,
    pub transform: &'a str,
    pub open: usize,
}

impl WindowsOpen<'_> {
    pub fn emit(&self) {
        metrics::gauge!("vitalflow_windows_open", "pipeline" => self.pipeline.to_owned(), "transform" => self.transform.to_owned())
            .set(self.open as f64);
    }
}

/// An `alert:` transform raised an alert at `level`.
pub struct AlertRaised<'a> {
    pub pipeline: &'a str,
    pub transform: &'a str,
    pub level: &'a str,
}

impl AlertRaised<'_> {
    pub fn emit(&self) {
        metrics::counter!("vitalflow_alerts_total", "pipeline" => self.pipeline.to_owned(), "transform" => self.transform.to_owned(), "level" => self.level.to_owned())
            .increment(1);
    }
}
