//! The query benchmark: analyst queries over a week of stored vitals
//! through `vitalflow query` and DuckDB's CLI, each a fresh process (see
//! `vitalflow_bench::query`).

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use vitalflow_bench::memory::private_rss_of;
use vitalflow_bench::query::{
    PATIENTS, QUERIES, QueryReport, QueryResult, Run, dataset_yaml, duckdb_binary,
};

/// Build (with `vitalflow run`, or reuse: `VITALFLOW_BENCH_QUERY_DATA`, a directory a previous
/// run left) the dataset, then time every query `runs` times per engine,
/// the engines alternating.
pub async fn run(work: &Path, vitalflow: &Path, runs: usize) -> anyhow::Result<QueryReport> {
    let data = match std::env::var_os("VITALFLOW_BENCH_QUERY_DATA") {
        Some(dir) => std::path::PathBuf::from(dir),
        None => work.to_path_buf(),
    };
    let vitals = data.join("vitals");
    let pipeline = data.join("query-bench.yaml");
    let yaml = dataset_yaml(&vitals);
    if !vitals.exists() {
        std::fs::create_dir_all(&data)?;
        std::fs::write(&pipeline, &yaml)?;
        // In a child process: a query's peak RSS is read from `wait4`, and
        // a child spawned by a process that had built the dataset itself
        // would report this process's high-water mark (the kernel keeps the
        // parent's at exec), whatever the query used.
        let status = Command::new(vitalflow)
            .args(["--log", "warn", "run"])
            .arg(&pipeline)
            .status()
            .with_context(|| format!("starting {}", vitalflow.display()))?;
        anyhow::ensure!(status.success(), "building the dataset: {status}");
        write_patients(&data.join("patients"))?;
    }
    let (mut rows, mut files, mut bytes) = (0u64, 0u64, 0u64);
    for entry in walkdir::WalkDir::new(&vitals) {
        let entry = entry?;
        if entry.file_name().to_string_lossy().ends_with(".parquet") {
            files += 1;
            bytes += entry.metadata()?.len();
            let reader = parquet::file::reader::SerializedFileReader::new(std::fs::File::open(
                entry.path(),
            )?)?;
            rows += parquet::file::reader::FileReader::metadata(&reader)
                .file_metadata()
                .num_rows() as u64;
        }
    }
    let duckdb = duckdb_binary();
    let duckdb_version = match &duckdb {
        Some(bin) => Some(format!(
            "{} ({})",
            String::from_utf8_lossy(&Command::new(bin).arg("--version").output()?.stdout).trim(),
            bin.display()
        )),
        None => None,
    };
    let views = format!(
        "CREATE VIEW vitals AS SELECT * FROM read_parquet('{}/**/*.parquet', hive_partitioning = true); \
         CREATE VIEW patients AS SELECT * FROM read_parquet('{}/*.parquet');",
        vitals.display(),
        data.join("patients").display()
    );
    let patients_table = format!("patients={}", data.join("patients").display());
    let mut results = Vec::new();
    for query in QUERIES {
        let mut ours = Vec::new();
        let mut theirs = Vec::new();
        for _ in 0..runs {
            ours.push(measure(
                Command::new(vitalflow)
                    .args(["--log", "warn", "query", "--format", "csv", "--pipeline"])
                    .arg(&pipeline)
                    .args(["--table", &patients_table, query.sql]),
            )?);
            if let Some(bin) = &duckdb {
                let sql = format!("{views} {};", query.duckdb.unwrap_or(query.sql));
                theirs.push(measure(Command::new(bin).args(["-csv", "-c", &sql]))?);
            }
        }
        let (ours, theirs) = (median(ours), (!theirs.is_empty()).then(|| median(theirs)));
        if let Some(d) = theirs {
            anyhow::ensure!(
                d.rows == ours.rows,
                "`{}`: vitalflow returned {} rows, DuckDB {}",
                query.name,
                ours.rows,
                d.rows
            );
        }
        results.push(QueryResult {
            name: query.name,
            vitalflow: ours,
            duckdb: theirs,
        });
    }
    Ok(QueryReport {
        rows,
        files,
        bytes,
        duckdb_version,
        runs,
        results,
    })
}

/// The patients table the join query reads: id and age, one Parquet file.
fn write_patients(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let ids: Vec<String> = (1..=PATIENTS).map(|i| format!("P{i:05}")).collect();
    let ages: Vec<i64> = (1..=i64::from(PATIENTS))
        .map(|i| 18 + (i * 37) % 75)
        .collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("patient_id", DataType::Utf8, false),
        Field::new("age", DataType::Int64, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(ids)),
            Arc::new(Int64Array::from(ages)),
        ],
    )?;
    let file = std::fs::File::create(dir.join("patients.parquet"))?;
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema, None)?;
    writer.write(&batch)?;
    writer.close()?;
    Ok(())
}

/// Run `command` to its end: wall time, the kernel's peak RSS of the
/// process (`wait4`), its highest private memory (sampled), and the CSV rows
/// it printed (header excluded).
fn measure(command: &mut Command) -> anyhow::Result<Run> {
    let started = Instant::now();
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {command:?}"))?;
    let sampler = PrivateMemorySampler::start(child.id());
    let mut out = String::new();
    child
        .stdout
        .take()
        .context("no stdout")?
        .read_to_string(&mut out)?;
    let mut err = String::new();
    child
        .stderr
        .take()
        .context("no stderr")?
        .read_to_string(&mut err)?;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4(2) on our own child, with valid out-pointers.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    let elapsed = started.elapsed();
    let peak_private = sampler.stop();
    anyhow::ensure!(pid > 0, "wait4 failed: {}", std::io::Error::last_os_error());
    anyhow::ensure!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{command:?} failed: {err}"
    );
    Ok(Run {
        elapsed,
        peak_rss: usage.ru_maxrss as u64 * 1024,
        peak_private,
        rows: out.lines().count().saturating_sub(1),
    })
}

/// The run with the median time, with the highest peak memory of all.
fn median(mut runs: Vec<Run>) -> Run {
    let peak = runs.iter().map(|r| r.peak_rss).max().unwrap_or(0);
    let private = runs.iter().map(|r| r.peak_private).max().unwrap_or(0);
    runs.sort_by_key(|r| r.elapsed);
    let mut middle = runs[runs.len() / 2];
    middle.peak_rss = peak;
    middle.peak_private = private;
    middle
}

/// Reads a child's `RssAnon` every millisecond until it exits: the
/// memory a query itself holds, apart from the pages of its binary that
/// the kernel counts in the peak RSS (both engines alike).
struct PrivateMemorySampler {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl PrivateMemorySampler {
    fn start(pid: u32) -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peak = 0;
            while !flag.load(Ordering::Relaxed) {
                // None: exited (a zombie, or reaped), nothing more to see.
                let Some(bytes) = private_rss_of(pid) else {
                    break;
                };
                peak = peak.max(bytes);
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            peak
        });
        Self { stop, thread }
    }

    /// The highest sample.
    fn stop(self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap_or(0)
    }
}
