//! The scale-out benchmark's pipeline and report (`cargo bench --bench
//! scale_out`): the same topic consumed by one `vitalflow run` process and
//! then by two in one consumer group, each until every reading is stored;
//! events/s and each process's peak RSS, whether the windows are still
//! exact (each patient-minute once), and the size and checkpoint time of
//! the per-partition window state of every patient.
//!
//! On 2 cores the point is that the second process shares the work and the
//! results stay exact, not a speed-up.

use std::path::Path;
use std::time::Duration;

use crate::kafka::{SESSION_TIMEOUT_MS, record_schema_yaml};

/// One configuration's run: 1 or 2 processes.
#[derive(Debug, Clone, Default)]
pub struct InstancesRun {
    pub instances: usize,
    /// From the first process's start until every reading was stored.
    pub elapsed: Duration,
    /// Per process, its peak RSS.
    pub peak_rss: Vec<u64>,
    /// Readings stored, and patient-minute windows emitted (and how many
    /// of them were distinct).
    pub readings: u64,
    pub windows: u64,
    pub distinct_windows: u64,
}

/// The per-partition window state at the end of a run.
#[derive(Debug, Clone, Default)]
pub struct StateFigures {
    /// Open window groups saved (one per patient and open minute).
    pub rows: u64,
    /// Bytes of the newest state files (Arrow IPC).
    pub bytes: u64,
    /// Checkpoint durations seen in the logs (median and maximum).
    pub checkpoint_median: Duration,
    pub checkpoint_max: Duration,
    pub checkpoints: usize,
}

#[derive(Debug, Clone, Default)]
pub struct ScaleOutReport {
    pub messages: u64,
    pub patients: u64,
    pub runs: Vec<InstancesRun>,
    pub state: StateFigures,
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

impl std::fmt::Display for ScaleOutReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "readings: {} ({} patients), keyed by patient over 4 partitions",
            self.messages, self.patients
        )?;
        for run in &self.runs {
            let rss: Vec<String> = run
                .peak_rss
                .iter()
                .map(|b| format!("{:.1} MB", mb(*b)))
                .collect();
            writeln!(
                f,
                "{} instance(s): {:.0} events/s ({:.2} s incl. group join); peak RSS {}; \
                 {} readings stored, {} windows, {} distinct",
                run.instances,
                self.messages as f64 / run.elapsed.as_secs_f64().max(1e-9),
                run.elapsed.as_secs_f64(),
                rss.join(" + "),
                run.readings,
                run.windows,
                run.distinct_windows
            )?;
        }
        if let [one, two] = &self.runs[..] {
            writeln!(
                f,
                "2 / 1 instance(s):    {:.2} of the single instance's rate",
                one.elapsed.as_secs_f64() / two.elapsed.as_secs_f64().max(1e-9)
            )?;
        }
        write!(
            f,
            "window state: {} open groups, {:.2} MB in the newest checkpoint; \
             checkpoint time median {:.1} ms, max {:.1} ms over {} checkpoints",
            self.state.rows,
            mb(self.state.bytes),
            self.state.checkpoint_median.as_secs_f64() * 1e3,
            self.state.checkpoint_max.as_secs_f64() * 1e3,
            self.state.checkpoints
        )
    }
}

/// A keyed Kafka pipeline: readings scored and stored, and per patient and
/// minute a window (state per partition: the source is keyed by patient).
/// `{VITALFLOW_DATA_DIR}`-free: every path is given.
pub fn pipeline_yaml(brokers: &str, topic: &str, group: &str, data: &Path) -> String {
    format!(
        "name: bench_scale_out
sources:
  monitors:
    kind: kafka
    brokers: \"{brokers}\"
    topic: \"{topic}\"
    group_id: \"{group}\"
    key: patient_id
    properties:
      session.timeout.ms: \"{SESSION_TIMEOUT_MS}\"
    event_time: {{column: ts, max_delay: 5s, idle_timeout: 30s}}
{schema}transforms:
  per_minute:
    sql: >
      SELECT patient_id, w.start AS window_start, readings, hr_avg FROM (
        SELECT patient_id, tumble(interval '1 minute') AS w,
               count(*) AS readings, avg(heart_rate) AS hr_avg
        FROM monitors GROUP BY patient_id, w)
sinks:
  vitals:
    kind: parquet
    input: monitors
    path: \"{data}/vitals\"
    roll: {{max_age: 1s}}
  per_minute:
    kind: parquet
    input: per_minute
    path: \"{data}/per_minute\"
    roll: {{max_age: 1s}}
  late:
    kind: parquet
    input: monitors_late_events
    path: \"{data}/late\"
  dead_letters:
    kind: parquet
    input: monitors_dead_letters
    path: \"{data}/dead_letters\"
checkpoint_dir: \"{data}/checkpoints\"
",
        schema = record_schema_yaml(""),
        data = data.display(),
    )
}

/// Checkpoint durations (ms) from log lines of `CheckpointCompleted`
/// (`elapsed_ms=…`), as (median, max, count).
pub fn checkpoint_times(logs: &str) -> (Duration, Duration, usize) {
    let logs = strip_ansi(logs);
    let mut times: Vec<f64> = logs
        .lines()
        .filter(|l| l.contains("checkpoint completed"))
        .filter_map(|l| {
            let rest = &l[l.find("elapsed_ms=")? + "elapsed_ms=".len()..];
            rest.split(|c: char| !(c.is_ascii_digit() || c == '.'))
                .next()?
                .parse()
                .ok()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    let ms = |v: f64| Duration::from_secs_f64(v / 1e3);
    match (times.get(times.len() / 2), times.last()) {
        (Some(&median), Some(&max)) => (ms(median), ms(max), times.len()),
        _ => (Duration::ZERO, Duration::ZERO, 0),
    }
}

/// `text` without ANSI colour sequences (`ESC [ ... m`), which the log
/// writes even into a file.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_times_are_read_from_the_log() {
        let logs = "x checkpoint completed pipeline=p files=1 elapsed_ms=2.5\n\
                    y other elapsed_ms=99\n\
                    z checkpoint completed pipeline=p files=0 elapsed_ms=10\n\
                    w checkpoint completed pipeline=p files=0 elapsed_ms=4.0\n";
        let (median, max, n) = checkpoint_times(logs);
        assert_eq!(n, 3);
        let coloured = "\u{1b}[2mt\u{1b}[0m checkpoint completed \u{1b}[3melapsed_ms\u{1b}[0m\u{1b}[2m=\u{1b}[0m7.5\n";
        assert_eq!(
            checkpoint_times(coloured),
            (
                Duration::from_micros(7_500),
                Duration::from_micros(7_500),
                1
            )
        );
        assert_eq!(median, Duration::from_micros(4_000));
        assert_eq!(max, Duration::from_millis(10));
    }

    #[test]
    fn the_report_compares_one_and_two_instances() {
        let run = |instances, secs| InstancesRun {
            instances,
            elapsed: Duration::from_secs(secs),
            peak_rss: vec![100_000_000; instances],
            readings: 1_000,
            windows: 20,
            distinct_windows: 20,
        };
        let report = ScaleOutReport {
            messages: 1_000,
            patients: 10,
            runs: vec![run(1, 2), run(2, 4)],
            state: StateFigures::default(),
        };
        let text = report.to_string();
        assert!(text.contains("1 instance(s): 500 events/s"), "{text}");
        assert!(text.contains("peak RSS 100.0 MB + 100.0 MB"), "{text}");
        assert!(text.contains("2 / 1 instance(s):    0.50"), "{text}");
    }
}
