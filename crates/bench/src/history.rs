//! The history benchmark (`vitalflow bench --history`, `cargo bench --bench
//! history`): the dashboard's trend endpoint over a dataset of ~20M
//! readings written by our own Parquet sink: 24 h of every patient at one
//! reading a second, with the shipped per-minute rollup beside it (all but
//! the day's last 5 minutes, as live). Each request asks for one patient's
//! whole day; the server answers at most 500 points from the rollup and the
//! readings after it. Beside it, in the same run: the same trend from the
//! readings alone (no rollup), and the patient-day read raw (86,400 rows,
//! what a client that downsamples for itself would pull).

use std::time::Duration;

use crate::BenchReport;

/// Readings per patient: one a second for a day.
pub const READINGS_PER_PATIENT: u64 = 86_400;
/// The day the dataset covers.
pub const DAY: &str = "2026-01-01";

/// The shipped per-minute trend rollup (`sql/vitals_trend_1m.sql`).
pub const ROLLUP_SQL: &str = include_str!("../../../sql/vitals_trend_1m.sql");

/// Minutes at the end of the day the rollup does not hold yet, as in a
/// live pipeline (minutes close with the watermark and are published when
/// their file rolls): the trend reads them from the readings.
pub const ROLLUP_LAG_MINUTES: u32 = 5;

/// The dataset's pipeline: `patients` monitors at 1 s for exactly one day
/// of event time, scored and stored date-partitioned and sorted, with the
/// shipped per-minute rollup beside it (all but its last minutes).
pub fn dataset_yaml(patients: u32, output: &std::path::Path) -> String {
    let dir = output.parent().unwrap_or(output);
    let rollup = ROLLUP_SQL.replace(
        "FROM scored",
        &format!(
            "FROM scored WHERE ts < TIMESTAMP '{DAY}T23:{:02}:00Z'",
            60 - ROLLUP_LAG_MINUTES
        ),
    );
    format!(
        "name: history-bench
sources:
  monitors:
    kind: simulator
    patients: {patients}
    interval: 1s
    pacing: unpaced
    limit: {}
    start: \"{DAY}T00:00:00Z\"
    event_time: {{column: ts, max_delay: 5s, idle_timeout: 30s}}
{}  vitals_trend_1m:
    kind: parquet
    input: trend_1m
    path: \"{}\"
    partition_by_date: ts
    sort_by: [patient_id, ts]
    compression: lz4
    page_rows: 1024
  late:
    kind: parquet
    input: monitors_late_events
    path: \"{}\"
",
        u64::from(patients) * READINGS_PER_PATIENT,
        crate::pipeline::scored_vitals_yaml(output, "").replace(
            "sinks:\n",
            &format!(
                "  trend_1m:\n    sql: |\n{}sinks:\n",
                crate::sql_block(&rollup)
            )
        ),
        dir.join("vitals_trend_1m").display(),
        dir.join("late").display(),
    )
}

/// Latencies of one kind of request, in arrival order.
#[derive(Debug, Clone, Default)]
pub struct Latencies(pub Vec<Duration>);

impl Latencies {
    /// The `q` quantile (nearest rank), in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        let mut sorted = self.0.clone();
        sorted.sort();
        if sorted.is_empty() {
            return f64::NAN;
        }
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1].as_secs_f64() * 1e3
    }
}

pub struct HistoryReport {
    /// Building the dataset.
    pub dataset: BenchReport,
    pub patients: u32,
    /// `GET /api/patients/{id}/history` for one whole day.
    pub endpoint: Latencies,
    /// The same requests to a server without the rollup table.
    pub endpoint_no_rollup: Latencies,
    /// Points each answer had at most, and readings they summed.
    pub max_points: usize,
    pub readings_per_answer: u64,
    /// The same patient-day read raw through the same query session.
    pub raw: Latencies,
    pub raw_rows: u64,
    /// Compacting the day afterwards, per dataset.
    pub compaction: Vec<Compaction>,
    /// The endpoint again, with and without the rollup, on the compacted day.
    pub compacted: Latencies,
    pub compacted_no_rollup: Latencies,
}

/// One dataset's day merged by `vitalflow compact`.
pub struct Compaction {
    pub dataset: String,
    pub files_in: usize,
    pub files_out: usize,
    pub rows: u64,
    pub elapsed: Duration,
}

impl std::fmt::Display for HistoryReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "-- dataset: {} patients x 24 h at 1 reading/s --",
            self.patients
        )?;
        writeln!(f, "{}", self.dataset)?;
        let line = |f: &mut std::fmt::Formatter<'_>, name: &str, l: &Latencies| {
            writeln!(
                f,
                "{name}: p50 {:.1} ms  p95 {:.1} ms  max {:.1} ms  ({} requests)",
                l.quantile_ms(0.5),
                l.quantile_ms(0.95),
                l.quantile_ms(1.0),
                l.0.len()
            )
        };
        line(
            f,
            "history endpoint, 24 h -> <= 500 points (HTTP)",
            &self.endpoint,
        )?;
        writeln!(
            f,
            "  at most {} points per answer, {} readings summarised in each",
            self.max_points, self.readings_per_answer
        )?;
        line(
            f,
            "the same, server without the rollup table     ",
            &self.endpoint_no_rollup,
        )?;
        line(
            f,
            "raw patient-day read, same session (no HTTP)  ",
            &self.raw,
        )?;
        writeln!(f, "  {} rows per read", self.raw_rows)?;
        writeln!(
            f,
            "ratio at p95: readings-only/endpoint {:.2}, raw read/endpoint {:.2}",
            self.endpoint_no_rollup.quantile_ms(0.95) / self.endpoint.quantile_ms(0.95),
            self.raw.quantile_ms(0.95) / self.endpoint.quantile_ms(0.95)
        )?;
        writeln!(f, "-- the day compacted (vitalflow compact) --")?;
        for c in &self.compaction {
            writeln!(
                f,
                "{}: {} files -> {} ({} rows) in {:.1} s",
                c.dataset,
                c.files_in,
                c.files_out,
                c.rows,
                c.elapsed.as_secs_f64()
            )?;
        }
        line(
            f,
            "history endpoint, compacted day (HTTP)        ",
            &self.compacted,
        )?;
        line(
            f,
            "the same, server without the rollup table     ",
            &self.compacted_no_rollup,
        )?;
        write!(
            f,
            "ratio at p95: compacted/uncompacted endpoint {:.2}, without the rollup {:.2}",
            self.compacted.quantile_ms(0.95) / self.endpoint.quantile_ms(0.95),
            self.compacted_no_rollup.quantile_ms(0.95) / self.endpoint_no_rollup.quantile_ms(0.95)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank() {
        let l = Latencies((1..=20).map(Duration::from_millis).collect());
        assert_eq!(l.quantile_ms(0.5), 10.0);
        assert_eq!(l.quantile_ms(0.95), 19.0);
        assert_eq!(l.quantile_ms(1.0), 20.0);
    }

    #[test]
    fn the_dataset_is_one_day_at_one_reading_a_second() {
        let yaml = dataset_yaml(232, std::path::Path::new("/tmp/x/vitals"));
        assert!(yaml.contains("limit: 20044800"), "{yaml}");
        assert!(yaml.contains("interval: 1s"));
        assert!(
            yaml.contains("WHERE ts < TIMESTAMP '2026-01-01T23:55:00Z'"),
            "{yaml}"
        );
        assert!(yaml.contains("path: \"/tmp/x/vitals_trend_1m\""), "{yaml}");
    }
}
