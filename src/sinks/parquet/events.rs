//! Internal events of the Parquet sink.

use std::path::Path;
use std::time::Duration;

/// A file was completed and atomically published into the dataset.
pub struct ParquetFilePublished<'a> {
    pub sink: &'a str,
    pub path: &'a Path,
    pub rows: u64,
    pub bytes: u64,
    pub elapsed: Duration,
}

impl ParquetFilePublished<'_> {
    pub fn emit(&self) {
        tracing::debug!(sink = self.sink, file = %self.path.display(), rows = self.rows, bytes = self.bytes, "parquet file published");
        let sink = self.sink.to_owned();
        metrics::counter!("vitalflow_sink_files_written_total", "sink" => sink.clone())
            .increment(1);
        metrics::counter!("vitalflow_sink_rows_written_total", "sink" => sink.clone())
            .increment(self.rows);
        metrics::counter!("vitalflow_sink_bytes_written_total", "sink" => sink.clone())
            .increment(self.bytes);
        metrics::histogram!("vitalflow_sink_flush_duration_seconds", "sink" => sink)
            .record(self.elapsed.as_secs_f64());
    }
}
