//! The Kafka benchmark's report and pipeline (`cargo bench --bench kafka`):
//! against one broker, in one run, (1) the simulator's produce rate, (2) a
//! raw consume-and-discard rate with the Kafka source's own client settings,
//! and (3) the pipeline's Kafka -> NEWS2 SQL -> Parquet rate until every
//! message is durably published. The ratio (3)/(2) is how much of the
//! broker's deliverable rate the pipeline keeps.

use std::path::Path;
use std::time::Duration;

/// `session.timeout.ms` both consumers use, so the comparison is fair.
pub const SESSION_TIMEOUT_MS: &str = "6000";

#[derive(Debug, Clone)]
pub struct KafkaBenchReport {
    pub messages: u64,
    pub produce: Duration,
    pub raw_consume: Duration,
    pub pipeline: Duration,
}

fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

impl std::fmt::Display for KafkaBenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.messages;
        writeln!(f, "messages:              {n}")?;
        writeln!(
            f,
            "simulator produce:     {:.0} msg/s ({:.2} s)",
            rate(n, self.produce),
            self.produce.as_secs_f64()
        )?;
        writeln!(
            f,
            "raw consume+discard:   {:.0} msg/s ({:.2} s)",
            rate(n, self.raw_consume),
            self.raw_consume.as_secs_f64()
        )?;
        writeln!(
            f,
            "pipeline -> Parquet:   {:.0} msg/s ({:.2} s)",
            rate(n, self.pipeline),
            self.pipeline.as_secs_f64()
        )?;
        write!(
            f,
            "pipeline / raw:        {:.2}",
            rate(n, self.pipeline) / rate(n, self.raw_consume)
        )
    }
}

/// The shipped Kafka pipeline's shape (same source settings, scoring SQL,
/// Parquet sink for readings and dead letters) reading `topic` in a fresh
/// consumer group; readings go to `output`, dead letters to `dead`.
pub fn pipeline_yaml(brokers: &str, topic: &str, output: &Path, dead: &Path) -> String {
    format!(
        "name: bench_kafka
sources:
  monitors:
    kind: kafka
    brokers: \"{brokers}\"
    topic: \"{topic}\"
    group_id: bench-pipeline-{group:08x}
    properties:
      session.timeout.ms: \"{SESSION_TIMEOUT_MS}\"
{schema}{scored}  dead_letters:
    kind: parquet
    input: monitors_dead_letters
    path: \"{}\"
",
        dead.display(),
        scored = crate::pipeline::scored_vitals_yaml(output, "    roll: {max_age: 500ms}\n"),
        group = rand::random::<u32>(),
        schema = record_schema_yaml(""),
    )
}

/// The shipped Kafka pipelines' record schema as a `schema:` block (for a
/// source at 4 spaces), with `ts_extra` added to the `ts` field (e.g.
/// `, max_future: 5m`).
pub fn record_schema_yaml(ts_extra: &str) -> String {
    format!(
        "    schema:
      - {{name: patient_id, type: string}}
      - {{name: ts, type: timestamp{ts_extra}}}
      - {{name: heart_rate, type: int32, min: 0, max: 300}}
      - {{name: spo2, type: int32, min: 0, max: 100}}
      - {{name: systolic_bp, type: int32, min: 0, max: 300}}
      - {{name: diastolic_bp, type: int32, min: 0, max: 250}}
      - {{name: respiratory_rate, type: int32, min: 0, max: 100}}
      - {{name: temperature, type: float64, min: 25, max: 45}}
      - {{name: consciousness, type: string, values: [A, C, V, P, U]}}
      - {{name: on_oxygen, type: boolean}}
"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_puts_the_pipeline_against_the_raw_rate() {
        let report = KafkaBenchReport {
            messages: 1_000,
            produce: Duration::from_millis(500),
            raw_consume: Duration::from_secs(1),
            pipeline: Duration::from_secs(2),
        };
        let text = report.to_string();
        assert!(
            text.contains("simulator produce:     2000 msg/s (0.50 s)"),
            "{text}"
        );
        assert!(
            text.contains("pipeline -> Parquet:   500 msg/s (2.00 s)"),
            "{text}"
        );
        assert!(text.ends_with("pipeline / raw:        0.50"), "{text}");
    }
}
