//! Internal events of the Parquet sink.
#![allow(clippy::disallowed_macros)]

use std::time::Duration;

use crate::storage::StagedFile;

/// A file was finished (footer written, fsynced) and waits for the next
/// checkpoint to publish it.
pub struct ParquetFileStaged<'a> {
    pub sink: &'a str,
    pub file: &'a StagedFile,
    pub elapsed: Duration,
}

impl ParquetFileStaged<'_> {
    pub fn emit(&self) {
        tracing::debug!(sink = self.sink, file = %self.file.staged.display(), rows = self.file.rows, bytes = self.file.bytes, "parquet file staged");
        metrics::histogram!("vitalflow_sink_flush_duration_seconds", "sink" => self.sink.to_owned())
            .record(self.elapsed.as_secs_f64());
    }
}

/// The spool of a remote dataset is full: the sink waits for uploads to
/// free room, and the pipeline pauses behind it.
pub struct SinkPaused<'a> {
    pub sink: &'a str,
    pub full: &'a crate::storage::spool::SpoolFull,
}

impl SinkPaused<'_> {
    pub fn emit(&self) {
        tracing::warn!(
            sink = self.sink,
            spool = %self.full.dir,
            target = %self.full.target,
            waiting_files = self.full.waiting_files,
            waiting_bytes = self.full.waiting_bytes,
            max_bytes = self.full.max_bytes,
            "spool full: the pipeline pauses until uploads free room (nothing is lost)"
        );
        metrics::gauge!("vitalflow_sink_paused", "sink" => self.sink.to_owned()).set(1.0);
    }
}

/// Uploads freed room in the spool: the sink takes rows again.
pub struct SinkResumed<'a> {
    pub sink: &'a str,
    pub paused: Duration,
}

impl SinkResumed<'_> {
    pub fn emit(&self) {
        tracing::info!(
            sink = self.sink,
            paused_seconds = self.paused.as_secs_f64(),
            "spool has room again: the pipeline resumes"
        );
        metrics::gauge!("vitalflow_sink_paused", "sink" => self.sink.to_owned()).set(0.0);
    }
}
