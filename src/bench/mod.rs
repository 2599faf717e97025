//! The throughput benchmark behind `vitalflow bench` and `cargo bench`:
//! unpaced simulator -> the shipped scoring SQL (projection, filter, CASE-heavy
//! NEWS2 sub-scores) -> date-partitioned Parquet, reporting events/s and the
//! process's peak RSS.

pub mod kafka;
pub mod soak;
pub mod storage;
pub mod windows;

use std::path::Path;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::engine::{self, RunOptions};
use crate::spec;

/// The shipped per-reading scoring transform, the same file the default
/// pipeline runs.
pub const SCORING_SQL: &str = include_str!("../../sql/vitals_scored.sql");

/// [`SCORING_SQL`] as the body of a `sql: |` block of a transform (six
/// spaces in), for the benchmarks' pipeline YAML.
pub(crate) fn scoring_sql_block() -> String {
    SCORING_SQL
        .lines()
        .map(|l| format!("      {l}\n"))
        .collect()
}

#[derive(Debug, Clone)]
pub struct BenchReport {
    pub events: u64,
    pub rows_stored: u64,
    pub files: u64,
    pub bytes: u64,
    pub elapsed: Duration,
    pub peak_rss_bytes: Option<u64>,
    /// The file-backed part of RSS at the end (the binary's code, shared
    /// libraries): resident memory the pipeline's data does not explain.
    pub mapped_files_rss_bytes: Option<u64>,
}

impl BenchReport {
    pub fn events_per_second(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "events:        {}", self.events)?;
        writeln!(
            f,
            "rows stored:   {} in {} files ({:.1} MiB)",
            self.rows_stored,
            self.files,
            self.bytes as f64 / 1048576.0
        )?;
        writeln!(f, "elapsed:       {:.2} s", self.elapsed.as_secs_f64())?;
        writeln!(f, "throughput:    {:.0} events/s", self.events_per_second())?;
        match self.peak_rss_bytes {
            Some(b) => {
                write!(f, "peak RSS:      {:.1} MB", b as f64 / 1e6)?;
                if let Some(mapped) = self.mapped_files_rss_bytes {
                    write!(
                        f,
                        " (of which mapped files, mostly the binary's code: {:.1} MB at the end)",
                        mapped as f64 / 1e6
                    )?;
                }
                Ok(())
            }
            None => write!(f, "peak RSS:      unavailable on this platform"),
        }
    }
}

/// The benchmark pipeline as YAML: what a user would write for the same job.
pub fn pipeline_yaml(events: u64, patients: u32, output: &Path) -> String {
    let sql = scoring_sql_block();
    format!(
        "name: bench
sources:
  monitors:
    kind: simulator
    patients: {patients}
    pacing: unpaced
    limit: {events}
    start: \"2026-01-01T00:00:00Z\"
transforms:
  scored:
    sql: |
{sql}
sinks:
  vitals:
    kind: parquet
    input: scored
    path: \"{}\"
    partition_by_date: ts
    sort_by: [patient_id, ts]
",
        output.display()
    )
}

/// Run the benchmark pipeline writing into `output`.
pub async fn run(events: u64, patients: u32, output: &Path) -> anyhow::Result<BenchReport> {
    run_yaml(&pipeline_yaml(events, patients, output), "bench.yaml").await
}

/// Plan and run a benchmark pipeline given as YAML; report what it did.
pub async fn run_yaml(yaml: &str, name: &str) -> anyhow::Result<BenchReport> {
    let spec = spec::parse(yaml, &Path::new("<bench>").join(name))?;
    let planned = engine::plan(spec).await?;
    let summary = engine::run(&planned, CancellationToken::new(), RunOptions::default()).await?;
    let (rows_stored, files, bytes) = summary.sinks.iter().fold((0, 0, 0), |(r, f, b), (_, s)| {
        (r + s.rows, f + s.files, b + s.bytes)
    });
    Ok(BenchReport {
        events: summary.records_in(),
        rows_stored,
        files,
        bytes,
        elapsed: summary.elapsed,
        peak_rss_bytes: peak_rss_bytes(),
        mapped_files_rss_bytes: proc_status_bytes("RssFile:"),
    })
}

/// Peak resident set size of this process (Linux `VmHWM`).
pub fn peak_rss_bytes() -> Option<u64> {
    proc_status_bytes("VmHWM:")
}

/// A `kB` field of `/proc/self/status`, in bytes (Linux only).
fn proc_status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
