//! Internal events of the Parquet sink.

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
