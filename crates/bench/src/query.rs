//! The query benchmark (`vitalflow bench --query`, `cargo bench --bench
//! query`): typical analyst queries over a week of stored vitals (>= 20M
//! rows, 7 date partitions, 1,000 patients, written by our own Parquet
//! sink), through `vitalflow query` and, when its CLI is installed, DuckDB
//! on the same files: wall time from process start to result and peak RSS
//! of each process, side by side.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Patients in the dataset.
pub const PATIENTS: u32 = 1_000;
/// One reading every 30 s for 7 days: 20,160 per patient, 20.16M rows.
pub const INTERVAL_S: u64 = 30;
pub const DAYS: u64 = 7;
/// The first day.
pub const START: &str = "2026-01-01";

/// The dataset's pipeline.
pub fn dataset_yaml(output: &Path) -> String {
    let readings = u64::from(PATIENTS) * DAYS * 86_400 / INTERVAL_S;
    format!(
        "name: query-bench
sources:
  monitors:
    kind: simulator
    patients: {PATIENTS}
    interval: {INTERVAL_S}s
    pacing: unpaced
    limit: {readings}
    start: \"{START}T00:00:00Z\"
{}",
        crate::pipeline::scored_vitals_yaml(output, "")
    )
}

/// One analyst query; `duckdb` is its text in DuckDB's dialect where the
/// two differ.
pub struct Query {
    pub name: &'static str,
    pub sql: &'static str,
    pub duckdb: Option<&'static str>,
}

/// The queries, as an analyst of the stored vitals writes them.
pub const QUERIES: &[Query] = &[
    Query {
        name: "rows per day",
        sql: "SELECT date, count(*) AS readings FROM vitals GROUP BY date ORDER BY date",
        duckdb: None,
    },
    Query {
        name: "one patient, hourly",
        sql: "SELECT date_trunc('hour', ts) AS hour, avg(heart_rate) AS hr, min(spo2) AS spo2_min, \
              max(news2_score) AS news2_max FROM vitals WHERE patient_id = 'P00042' \
              GROUP BY 1 ORDER BY 1",
        duckdb: None,
    },
    Query {
        name: "top 10 by low SpO2, 4 days",
        sql: "SELECT patient_id, count(*) AS low_spo2 FROM vitals \
              WHERE spo2 <= 91 AND date BETWEEN '2026-01-02' AND '2026-01-05' \
              GROUP BY patient_id ORDER BY low_spo2 DESC, patient_id LIMIT 10",
        duckdb: None,
    },
    Query {
        name: "heart rate percentiles per hour, 1 day",
        sql: "SELECT date_trunc('hour', ts) AS hour, \
              approx_percentile_cont(heart_rate, 0.5) AS p50, \
              approx_percentile_cont(heart_rate, 0.95) AS p95 \
              FROM vitals WHERE date = '2026-01-03' GROUP BY 1 ORDER BY 1",
        duckdb: Some(
            "SELECT date_trunc('hour', ts) AS hour, \
              approx_quantile(heart_rate, 0.5) AS p50, \
              approx_quantile(heart_rate, 0.95) AS p95 \
              FROM vitals WHERE date = '2026-01-03' GROUP BY 1 ORDER BY 1",
        ),
    },
    Query {
        name: "join patients: NEWS2 by age band, 1 day",
        sql: "SELECT CASE WHEN p.age < 40 THEN 'under 40' WHEN p.age < 60 THEN '40-59' ELSE '60+' END AS band, \
              count(*) AS readings, avg(v.news2_score) AS news2 \
              FROM vitals v JOIN patients p ON v.patient_id = p.patient_id \
              WHERE v.date = '2026-01-07' GROUP BY 1 ORDER BY 1",
        duckdb: None,
    },
];

/// DuckDB's CLI: `VITALFLOW_DUCKDB`, else `duckdb` on the `PATH`.
///
/// PyPI's `duckdb-cli` puts a Python script on the `PATH` (and pyenv a
/// shell shim in front of it) that starts the real binary as a child: a
/// quarter of a second of interpreter start-up per query, which would be
/// timed as DuckDB's. The executable that script runs is used instead when
/// it can be found.
pub fn duckdb_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("VITALFLOW_DUCKDB") {
        return Some(PathBuf::from(path));
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("duckdb"))
            .find(|p| p.is_file())
    })?;
    if is_executable_file(&found) {
        return Some(found);
    }
    Some(packaged_binary(&found).unwrap_or(found))
}

/// Whether `path` is a compiled program (ELF), not a script.
fn is_executable_file(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|()| magic == *b"\x7fELF")
}

/// The binary inside the `duckdb_cli` package, asked of the script's own
/// interpreter (its `#!` line) or else `python3`.
fn packaged_binary(script: &Path) -> Option<PathBuf> {
    let first_line = std::fs::read_to_string(script)
        .ok()?
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    let python = first_line
        .strip_prefix("#!")
        .map(str::trim)
        .filter(|interpreter| interpreter.contains("python") && !interpreter.contains(' '))
        .unwrap_or("python3");
    let out = std::process::Command::new(python)
        .args([
            "-c",
            "import os, duckdb_cli; print(os.path.join(os.path.dirname(duckdb_cli.__file__), 'duckdb'))",
        ])
        .output()
        .ok()?;
    let path = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    (out.status.success() && is_executable_file(&path)).then_some(path)
}

/// What one engine took for one query (the median run) and the most
/// memory any of its runs held.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    pub elapsed: Duration,
    pub peak_rss: u64,
    /// The most private memory (`RssAnon`: heap, stacks; not the binary's
    /// mapped code) seen while sampling the process every millisecond.
    pub peak_private: u64,
    pub rows: usize,
}

pub struct QueryResult {
    pub name: &'static str,
    pub vitalflow: Run,
    pub duckdb: Option<Run>,
}

pub struct QueryReport {
    pub rows: u64,
    pub files: u64,
    pub bytes: u64,
    pub duckdb_version: Option<String>,
    pub runs: usize,
    pub results: Vec<QueryResult>,
}

impl std::fmt::Display for QueryReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "dataset: {} rows, {} files, {:.1} MiB ({PATIENTS} patients, {DAYS} days from {START}); \
             median of {} runs per query, process start to result",
            self.rows,
            self.files,
            self.bytes as f64 / 1048576.0,
            self.runs
        )?;
        match &self.duckdb_version {
            Some(v) => writeln!(f, "DuckDB: {v}")?,
            None => writeln!(
                f,
                "DuckDB: not installed (pip install duckdb-cli); vitalflow alone"
            )?,
        }
        writeln!(
            f,
            "{:<42} {:>10} {:>15} {:>10} {:>15} {:>7} {:>7} {:>7}",
            "query",
            "vitalflow",
            "RSS/private MB",
            "DuckDB",
            "RSS/private MB",
            "time x",
            "mem x",
            "priv x"
        )?;
        let mb = |b: u64| b as f64 / 1e6;
        let memory = |r: &Run| format!("{:.1}/{:.1}", mb(r.peak_rss), mb(r.peak_private));
        for r in &self.results {
            let ours = &r.vitalflow;
            match &r.duckdb {
                Some(d) => writeln!(
                    f,
                    "{:<42} {:>8.0}ms {:>15} {:>8.0}ms {:>15} {:>7.2} {:>7.2} {:>7.2}",
                    r.name,
                    ours.elapsed.as_secs_f64() * 1e3,
                    memory(ours),
                    d.elapsed.as_secs_f64() * 1e3,
                    memory(d),
                    ours.elapsed.as_secs_f64() / d.elapsed.as_secs_f64(),
                    ours.peak_rss as f64 / d.peak_rss.max(1) as f64,
                    ours.peak_private as f64 / d.peak_private.max(1) as f64,
                )?,
                None => writeln!(
                    f,
                    "{:<42} {:>8.0}ms {:>15}",
                    r.name,
                    ours.elapsed.as_secs_f64() * 1e3,
                    memory(ours),
                )?,
            }
        }
        write!(
            f,
            "(time x, mem x: vitalflow / DuckDB, the target is <= 1.0 and <= 2.0; RSS is the \
             kernel's peak (wait4), the binary's mapped code included; private is the highest \
             RssAnon sampled every ms; priv x: their ratio)"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dataset_is_a_week_of_a_thousand_patients() {
        let yaml = dataset_yaml(Path::new("/tmp/q"));
        assert!(yaml.contains("limit: 20160000"), "{yaml}");
        assert!(QUERIES.len() >= 5);
    }
}
