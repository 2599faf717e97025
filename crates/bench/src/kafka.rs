//! The Kafka benchmark's report and pipeline (`cargo bench --bench kafka`):
//! against one broker, in one run, (1) the simulator's produce rate, (2) a
//! raw consume-and-discard rate with the Kafka source's own client settings,
//! (3) the pipeline's Kafka -> NEWS2 SQL -> Parquet run until every message
//! is durably published, and (4) the pipeline's own ceiling without a
//! broker: the same messages decoded from memory, and the same SQL and
//! Parquet sink fed by the in-process simulator. Each consumer's group join
//! (until its first message, or first durable file) is separated from its
//! steady rate; the ratio of steady rates (3)/(2) is how much of the
//! broker's deliverable rate the pipeline keeps.

use std::path::Path;
use std::time::Duration;

/// `session.timeout.ms` both consumers use, so the comparison is fair.
pub const SESSION_TIMEOUT_MS: &str = "6000";

/// A consumer's run: from subscribing to the first message (or durable
/// file), and from then to the last.
#[derive(Debug, Clone, Copy, Default)]
pub struct Consumed {
    /// Subscribe (or start) to the first message received (raw) or the
    /// first durable file (pipeline): group join and first fetch included.
    pub first: Duration,
    /// Messages already in by then.
    pub at_first: u64,
    /// Start to the last message (raw) or every message durable (pipeline).
    pub total: Duration,
}

impl Consumed {
    /// Messages per second after the first: the steady rate.
    pub fn steady(&self, messages: u64) -> f64 {
        rate(
            messages.saturating_sub(self.at_first),
            self.total.saturating_sub(self.first),
        )
    }
}

#[derive(Debug, Clone)]
pub struct KafkaBenchReport {
    pub messages: u64,
    /// The broker's storage engine (`memory://`, `sqlite://`, or external).
    pub broker: String,
    pub produce: Duration,
    pub raw: Consumed,
    pub pipeline: Consumed,
    /// Decoding the same messages from memory (no broker).
    pub decode: Duration,
    /// Simulator -> the same SQL -> Parquet, the same number of rows.
    pub sql_parquet: Duration,
}

fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

impl std::fmt::Display for KafkaBenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.messages;
        writeln!(f, "messages:              {n} (broker: {})", self.broker)?;
        writeln!(
            f,
            "simulator produce:     {:.0} msg/s ({:.2} s)",
            rate(n, self.produce),
            self.produce.as_secs_f64()
        )?;
        for (name, c, first) in [
            ("raw consume+discard", &self.raw, "first message"),
            ("pipeline -> Parquet", &self.pipeline, "first durable file"),
        ] {
            writeln!(
                f,
                "{name}:   steady {:.0} msg/s; {first} after {:.2} s (group join included); all in {:.2} s ({:.0} msg/s overall)",
                c.steady(n),
                c.first.as_secs_f64(),
                c.total.as_secs_f64(),
                rate(n, c.total)
            )?;
        }
        let decode = rate(n, self.decode);
        let sql_parquet = rate(n, self.sql_parquet);
        let ceiling = 1.0 / (1.0 / decode + 1.0 / sql_parquet);
        writeln!(
            f,
            "without a broker:      decode {decode:.0} msg/s (same messages, from memory); SQL + Parquet {sql_parquet:.0} rows/s; both in turn {ceiling:.0} msg/s"
        )?;
        write!(
            f,
            "pipeline / raw:        {:.2} steady ({:.2} overall)",
            self.pipeline.steady(n) / self.raw.steady(n),
            rate(n, self.pipeline.total) / rate(n, self.raw.total)
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
    fn the_report_separates_the_join_from_the_steady_rate() {
        let report = KafkaBenchReport {
            messages: 1_000,
            broker: "memory://".into(),
            produce: Duration::from_millis(500),
            raw: Consumed {
                first: Duration::from_secs(1),
                at_first: 0,
                total: Duration::from_secs(2),
            },
            pipeline: Consumed {
                first: Duration::from_secs(2),
                at_first: 500,
                total: Duration::from_secs(3),
            },
            decode: Duration::from_millis(10),
            sql_parquet: Duration::from_millis(10),
        };
        let text = report.to_string();
        assert!(
            text.contains("simulator produce:     2000 msg/s (0.50 s)"),
            "{text}"
        );
        assert!(
            text.contains("raw consume+discard:   steady 1000 msg/s"),
            "{text}"
        );
        assert!(
            text.contains("pipeline -> Parquet:   steady 500 msg/s"),
            "{text}"
        );
        assert!(text.contains("both in turn 50000 msg/s"), "{text}");
        assert!(
            text.ends_with("pipeline / raw:        0.50 steady (0.67 overall)"),
            "{text}"
        );
    }
}
