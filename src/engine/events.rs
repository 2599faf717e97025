//! Internal events of the engine loop (one log line and/or metrics each).

use std::time::Duration;

/// One source batch went through every operator and was handed to the sinks.
pub struct BatchProcessed<'a> {
    pub source: &'a str,
    pub rows: usize,
    pub elapsed: Duration,
}

impl BatchProcessed<'_> {
    pub fn emit(&self) {
        metrics::counter!("vitalflow_source_events_total", "source" => self.source.to_owned())
            .increment(self.rows as u64);
        metrics::counter!("vitalflow_pipeline_batches_total", "source" => self.source.to_owned())
            .increment(1);
        metrics::histogram!("vitalflow_pipeline_batch_rows").record(self.rows as f64);
        metrics::histogram!("vitalflow_pipeline_batch_duration_seconds")
            .record(self.elapsed.as_secs_f64());
    }
}

/// Durability progress of the sinks, reported periodically.
pub struct ProgressDurable {
    /// Source batches handed to sinks but not yet durable everywhere.
    pub pending: u64,
}

impl ProgressDurable {
    pub fn emit(&self) {
        metrics::gauge!("vitalflow_pipeline_batches_pending_durability").set(self.pending as f64);
    }
}
