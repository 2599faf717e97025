//! Internal events of the engine loop (one log line and/or metrics each).

use std::path::Path;
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
        metrics::histogram!("vitalflow_checkpoint_duration_seconds", "pipeline" => self.pipeline.to_owned())
            .record(self.elapsed.as_secs_f64());
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
    pub dir: &'a Path,
    pub rolled_forward: usize,
}

impl Recovered<'_> {
    pub fn emit(&self) {
        if self.rolled_forward > 0 {
            tracing::info!(pipeline = self.pipeline, checkpoints = %self.dir.display(), files = self.rolled_forward, "published files of an interrupted checkpoint");
        } else {
            tracing::debug!(pipeline = self.pipeline, checkpoints = %self.dir.display(), "no interrupted checkpoint");
        }
    }
}
