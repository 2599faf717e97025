//! The soak's options, records, pipeline and accounting (`vitalflow bench
//! --soak 30m --brokers HOST:PORT`): the Kafka pipeline for a long time at a
//! steady rate, with 1 % malformed records and one reading from the year
//! 9999 every minute, reporting whether memory stays flat and whether every
//! record is accounted for (stored or a dead letter, none late).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// What the soak sends.
#[derive(Debug, Clone)]
pub struct SoakOptions {
    pub brokers: String,
    pub duration: Duration,
    /// Records per second, all kinds together.
    pub rate: f64,
    /// One record in this many is malformed.
    pub malformed_every: u64,
    /// One reading from the far future this often.
    pub hostile_every: Duration,
}

/// What happened, and the memory over time.
#[derive(Debug, Clone, Default)]
pub struct SoakReport {
    pub elapsed: Duration,
    pub valid_sent: u64,
    pub malformed_sent: u64,
    pub hostile_sent: u64,
    pub stored: u64,
    pub dead_letters: BTreeMap<String, u64>,
    pub late: u64,
    /// (seconds since start, RSS bytes), one a second.
    pub rss: Vec<(f64, u64)>,
}

impl SoakReport {
    /// Records sent, all kinds together.
    pub fn sent(&self) -> u64 {
        self.valid_sent + self.malformed_sent + self.hostile_sent
    }

    fn dead_total(&self) -> u64 {
        self.dead_letters.values().sum()
    }

    /// Highest RSS within `[from, to)` seconds.
    fn max_rss(&self, from: f64, to: f64) -> Option<u64> {
        self.rss
            .iter()
            .filter(|(t, _)| *t >= from && *t < to)
            .map(|(_, r)| *r)
            .max()
    }

    /// Every record sent is stored or a dead letter, and none is late.
    pub fn balanced(&self) -> bool {
        self.stored == self.valid_sent
            && self.stored + self.dead_total() == self.sent()
            && self.late == 0
    }
}

impl std::fmt::Display for SoakReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mb = |b: Option<u64>| {
            b.map_or_else(|| "n/a".into(), |b| format!("{:.1} MB", b as f64 / 1e6))
        };
        let secs = self.elapsed.as_secs_f64();
        writeln!(f, "soak:          {secs:.0} s")?;
        writeln!(
            f,
            "sent:          {} valid, {} malformed, {} from the year 9999",
            self.valid_sent, self.malformed_sent, self.hostile_sent
        )?;
        writeln!(f, "stored:        {}", self.stored)?;
        writeln!(
            f,
            "dead letters:  {} {:?}",
            self.dead_total(),
            self.dead_letters
        )?;
        writeln!(f, "late:          {}", self.late)?;
        writeln!(
            f,
            "balance:       {} (sent = stored + dead letters, stored = valid, late = 0)",
            if self.balanced() { "ok" } else { "MISMATCH" }
        )?;
        let tenth = secs / 10.0;
        writeln!(
            f,
            "RSS:           max {} in the first tenth, {} in the last tenth, {} overall",
            mb(self.max_rss(0.0, tenth)),
            mb(self.max_rss(secs - tenth, f64::MAX)),
            mb(self.max_rss(0.0, f64::MAX))
        )?;
        write!(f, "RSS by tenth:  ")?;
        for i in 0..10 {
            let from = tenth * i as f64;
            write!(f, "{} ", mb(self.max_rss(from, from + tenth)))?;
        }
        Ok(())
    }
}

/// The pipeline the soak runs: the shipped Kafka source (exact types,
/// `max_future`), event time declared so a future reading would move the
/// watermark, the scoring SQL, Parquet for readings (`dir/vitals`), dead
/// letters (`dir/dead_letters`) and late readings (`dir/late`).
pub fn pipeline_yaml(brokers: &str, topic: &str, dir: &Path) -> String {
    format!(
        "name: soak
sources:
  monitors:
    kind: kafka
    brokers: \"{brokers}\"
    topic: \"{topic}\"
    group_id: soak-{group:08x}
    properties:
      session.timeout.ms: \"6000\"
    event_time: {{column: ts, max_delay: 5s}}
{schema}{scored}  dead_letters:
    kind: parquet
    input: monitors_dead_letters
    path: \"{dead}\"
    roll: {{max_age: 10s}}
  late:
    kind: parquet
    input: monitors_late_events
    path: \"{late}\"
    roll: {{max_age: 10s}}
",
        group = rand::random::<u32>(),
        schema = crate::kafka::record_schema_yaml(", max_future: 5m"),
        scored =
            crate::pipeline::scored_vitals_yaml(&dir.join("vitals"), "    roll: {max_age: 10s}\n"),
        dead = dir.join("dead_letters").display(),
        late = dir.join("late").display(),
    )
}

/// The Kafka key of record `i` (its patient).
pub fn key(i: u64) -> String {
    format!("P{:05}", i % 500)
}

/// Reading `i` (of patient [`key`]`(i)`) taken at `ts` (RFC 3339).
pub fn reading(i: u64, ts: &str) -> String {
    format!(
        r#"{{"patient_id":"P{:05}","ts":"{ts}","heart_rate":{},"spo2":{},"systolic_bp":{},"diastolic_bp":{},"respiratory_rate":{},"temperature":{:.1},"consciousness":"A","on_oxygen":false}}"#,
        i % 500,
        60 + i % 40,
        92 + i % 8,
        100 + i % 50,
        60 + i % 30,
        12 + i % 10,
        36.0 + (i % 20) as f64 / 10.0
    )
}

/// Malformed in turn: broken JSON, a wrong type, a missing field, an
/// impossible value.
pub fn malformed(i: u64, ts: &str) -> String {
    match (i / 7) % 4 {
        0 => format!(
            r#"{{"patient_id":"P{:05}","ts":"{ts}","heart_rate":"#,
            i % 500
        ),
        1 => reading(i, ts).replace(r#""on_oxygen":false"#, r#""on_oxygen":0"#),
        2 => reading(i, ts).replace(r#""consciousness":"A","#, ""),
        _ => reading(i, ts).replace(r#""spo2":9"#, r#""spo2":19"#),
    }
}

/// The far-future reading sent every [`SoakOptions::hostile_every`].
pub fn hostile(i: u64) -> String {
    reading(i, "9999-12-31T23:59:59.000Z")
}

/// The key of [`hostile`] readings.
pub const HOSTILE_KEY: &[u8] = b"P99999";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_balance_needs_every_record_accounted_for_and_none_late() {
        let mut report = SoakReport {
            valid_sent: 990,
            malformed_sent: 10,
            hostile_sent: 1,
            stored: 990,
            dead_letters: [
                ("invalid_json".to_string(), 10),
                ("implausible_time".to_string(), 1),
            ]
            .into_iter()
            .collect(),
            ..Default::default()
        };
        assert!(report.balanced());
        report.late = 1;
        assert!(!report.balanced());
        report.late = 0;
        report.stored = 989;
        assert!(!report.balanced());
    }

    #[test]
    fn every_malformed_kind_differs_from_the_reading() {
        let ts = "2026-01-01T00:00:00.000Z";
        for kind in 0..4u64 {
            let i = kind * 7; // (i / 7) % 4 == kind
            assert_ne!(malformed(i, ts), reading(i, ts), "kind {kind}");
        }
    }
}
