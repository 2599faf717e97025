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

/// A closed day was merged into sorted files.
pub struct ParquetDayCompacted<'a> {
    pub sink: &'a str,
    pub day: &'a super::compact::DayCompacted,
}

impl ParquetDayCompacted<'_> {
    pub fn emit(&self) {
        let d = self.day;
        tracing::info!(
            sink = self.sink,
            day = %d.day,
            files_in = d.files_in,
            files_out = d.files_out,
            rows = d.rows,
            bytes_in = d.bytes_in,
            bytes_out = d.bytes_out,
            late_files = d.late_files,
            seconds = d.elapsed.as_secs_f64(),
            "day compacted"
        );
        metrics::counter!("vitalflow_compacted_days_total", "sink" => self.sink.to_owned())
            .increment(1);
        metrics::counter!("vitalflow_compacted_files_total", "sink" => self.sink.to_owned())
            .increment(d.files_in as u64);
    }
}

/// A compaction failed; the day stays as it was and is tried again later.
pub struct CompactionFailed<'a> {
    pub sink: &'a str,
    pub error: &'a crate::sinks::SinkError,
}

impl CompactionFailed<'_> {
    pub fn emit(&self) {
        tracing::error!(
            sink = self.sink,
            error = %crate::common::ErrorChain(self.error),
            "compaction failed; the day's files stay as they were and it is tried again later"
        );
        metrics::counter!("vitalflow_compaction_errors_total", "sink" => self.sink.to_owned())
            .increment(1);
    }
}
