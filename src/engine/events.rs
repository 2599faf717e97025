//! Internal events of the engine loop (one log line and/or metrics each).

use std::time::Duration;

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
        let labels = [
            ("pipeline", self.pipeline.to_owned()),
            ("source", self.source.to_owned()),
        ];
        metrics::counter!("vitalflow_source_events_total", &labels).increment(self.rows as u64);
        metrics::counter!("vitalflow_pipeline_batches_total", &labels).increment(1);
        metrics::histogram!("vitalflow_pipeline_batch_rows").record(self.rows as f64);
        metrics::histogram!("vitalflow_pipeline_batch_duration_seconds")
            .record(self.elapsed.as_secs_f64());
    }
}

/// Durability progress of the sinks, reported periodically.
pub struct ProgressDurable<'a> {
    pub pipeline: &'a str,
    /// Source batches handed to sinks but not yet durable everywhere.
    pub pending: u64,
}

impl ProgressDurable<'_> {
    pub fn emit(&self) {
        metrics::gauge!("vitalflow_pipeline_batches_pending_durability", "pipeline" => self.pipeline.to_owned()).set(self.pending as f64);
    }
}
