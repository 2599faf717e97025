//! `vitalflow compact`: a pipeline's closed days merged into one file per
//! day sorted by `sort_by`, with exactly the rows they had; readers that
//! query while a day is swapped see every row once, never twice or not at
//! all; a running pipeline merges past days and today's settled files while
//! it writes, and stores every row once.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use arrow::array::{AsArray, RecordBatch};
use arrow::compute::{SortColumn, concat_batches, lexsort_to_indices, take_record_batch};
use arrow::datatypes::Int64Type;
use datafusion::execution::context::SQLOptions;
use vitalflow::query::{Collector, Dataset, QueryLimits, QuerySession, run_sql};
use vitalflow::sinks::SinkConfig;
use vitalflow::sinks::parquet::compact::{CompactionPolicy, Compactor};
use vitalflow::storage::Location;

use super::support::*;

const EVENTS: u64 = 60_000;

/// Two days of readings, a file every 4,000 rows.
fn yaml(out: &std::path::Path) -> String {
    format!(
        r#"
name: compact-test
sources:
  monitors:
    kind: simulator
    patients: 37
    seed: 11
    pacing: unpaced
    limit: {EVENTS}
    batch_rows: 1000
    start: "2026-03-01T23:55:00Z"
sinks:
  vitals:
    kind: parquet
    input: monitors
    path: "{}"
    partition_by_date: ts
    sort_by: [patient_id, ts]
    row_group_rows: 8000
    sort_rows: 2000
    page_rows: 512
    roll:
      max_rows: 4000
"#,
        out.display()
    )
}

fn sorted(batches: &[RecordBatch]) -> RecordBatch {
    let all = concat_batches(&batches[0].schema(), batches).unwrap();
    let key = |name: &str| SortColumn {
        values: all.column_by_name(name).unwrap().clone(),
        options: None,
    };
    take_record_batch(
        &all,
        &lexsort_to_indices(&[key("patient_id"), key("ts")], None).unwrap(),
    )
    .unwrap()
}

fn day_files(out: &std::path::Path, day: &str) -> Vec<std::path::PathBuf> {
    parquet_files(&out.join(format!("date={day}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compact_merges_each_closed_day_into_one_sorted_file_with_the_same_rows() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("vitals");
    let pipeline = write_pipeline(dir.path(), &yaml(&out));
    run_pipeline(&pipeline).await;
    let before: Vec<RecordBatch> = parquet_files(&out)
        .iter()
        .flat_map(|f| read_parquet(f))
        .collect();
    assert!(day_files(&out, "2026-03-01").len() > 1);
    assert!(day_files(&out, "2026-03-02").len() > 1);

    let pipeline_arg = pipeline.display().to_string();
    let (ok, stdout, stderr) =
        run_binary(["compact", "--pipeline", &pipeline_arg, "--quiet", "0s"]);
    assert!(ok, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("vitals: date=2026-03-01") && stdout.contains("2 day(s) compacted"),
        "{stdout}"
    );

    let mut after = Vec::new();
    for day in ["2026-03-01", "2026-03-02"] {
        let files = day_files(&out, day);
        assert_eq!(files.len(), 1, "{day}: {files:?}");
        let batches = read_parquet(&files[0]);
        // The file itself is in (patient_id, ts) order.
        let file = concat_batches(&batches[0].schema(), &batches).unwrap();
        assert_eq!(sorted(&batches), file, "{day} is sorted");
        after.extend(batches);
    }
    assert_eq!(sorted(&after), sorted(&before), "the same rows, no more");
    assert!(
        files_below(&out, |n| n.ends_with(".inprogress")).is_empty()
            && !out.join(".compacting-2026-03-01").exists()
    );

    let (ok, stdout, _) = run_binary(["compact", "--pipeline", &pipeline_arg, "--quiet", "0s"]);
    assert!(
        ok && stdout.contains("no closed day to compact"),
        "{stdout}"
    );
    // A sink that cannot be compacted, asked for by name, says why.
    let (ok, _, stderr) = run_binary(["compact", "--pipeline", &pipeline_arg, "--sink", "nope"]);
    assert!(!ok && stderr.contains("no Parquet sink `nope`"), "{stderr}");
    // Too little memory for the merge is refused before anything is read,
    // as `compact.memory` is in a pipeline.
    let (ok, _, stderr) = run_binary(["compact", "--pipeline", &pipeline_arg, "--memory-mib", "8"]);
    assert!(
        !ok && stderr.contains("--memory-mib") && stderr.contains("16"),
        "{stderr}"
    );
}

/// Counts the rows of `SELECT count(*)`.
struct Count(i64);

impl Count {
    fn sum(mut self, batches: Vec<RecordBatch>) -> i64 {
        for batch in batches {
            let _ = self.take(batch);
        }
        self.0
    }
}

impl Collector for Count {
    fn take(&mut self, batch: RecordBatch) -> ControlFlow<()> {
        if batch.num_rows() > 0 {
            self.0 += batch.column(0).as_primitive::<Int64Type>().value(0);
        }
        ControlFlow::Continue(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_see_every_row_once_while_days_are_swapped() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("vitals");
    let pipeline = write_pipeline(dir.path(), &yaml(&out));
    run_pipeline(&pipeline).await;
    let session = Arc::new(
        QuerySession::with_limits(
            &[Dataset {
                date_partitioned: true,
                ..Dataset::at("vitals", Location::Local(out.clone()))
            }],
            QueryLimits {
                memory: Some(256 << 20),
                threads: 2,
            },
        )
        .await
        .unwrap(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let reader = tokio::spawn({
        let (session, stop) = (session.clone(), stop.clone());
        async move {
            let mut answers = Vec::new();
            while !stop.load(Ordering::Relaxed) || answers.is_empty() {
                let finished = session
                    .run_with_params(
                        "SELECT count(*) FROM vitals",
                        vec![],
                        SQLOptions::new(),
                        &[],
                        None,
                        Duration::from_secs(30),
                        Count(0),
                    )
                    .await;
                answers.push(finished.map(|f| f.collector.0).map_err(|e| e.to_string()));
            }
            answers
        }
    });

    // `vitalflow query`'s path: the whole result at once, read from the
    // files (a filter no footer answers).
    let cli_reader = tokio::spawn({
        let (ctx, stop) = (session.ctx.clone(), stop.clone());
        async move {
            let mut answers = Vec::new();
            while !stop.load(Ordering::Relaxed) || answers.is_empty() {
                let result =
                    run_sql(&ctx, "SELECT count(*) FROM vitals WHERE heart_rate >= 0").await;
                answers.push(
                    result
                        .map(|(_, batches)| Count(0).sum(batches))
                        .map_err(|e| e.to_string()),
                );
            }
            answers
        }
    });

    let spec = vitalflow::spec::load(&pipeline).unwrap();
    let SinkConfig::Parquet(config) = &spec.sinks[0].config else {
        panic!("a Parquet sink")
    };
    let compactor = Compactor::new(
        "vitals",
        config,
        CompactionPolicy {
            quiet: Duration::ZERO,
            ..CompactionPolicy::default()
        },
    )
    .unwrap();
    let done = compactor
        .compact_closed_days(SystemTime::now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.len(), 2);
    assert!(done.iter().all(Result::is_ok), "{done:?}");
    stop.store(true, Ordering::Relaxed);
    let mut answers = reader.await.unwrap();
    answers.extend(cli_reader.await.unwrap());
    let wrong: Vec<_> = answers
        .iter()
        .filter(|a| **a != Ok(EVENTS as i64))
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} answers were not {EVENTS}: {:?}",
        wrong.len(),
        answers.len(),
        &wrong[..wrong.len().min(5)]
    );
    assert_eq!(
        scalar_i64(&out, "SELECT count(*) FROM t").await,
        EVENTS as i64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_pipeline_compacts_closed_days_beside_its_writes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("vitals");
    // Two past days written as many files, by a run that does not compact
    // (its files are fresh, the default quiet time is 15 minutes).
    run_pipeline(&write_pipeline(dir.path(), &yaml(&out))).await;
    assert!(day_files(&out, "2026-03-01").len() > 1);

    // A live run writing today into the same dataset, compacting as it goes.
    let live = yaml(&out)
        .replace("pacing: unpaced", "pacing: realtime\n    interval: 100ms")
        .replace(&format!("    limit: {EVENTS}\n"), "")
        .replace("patients: 37", "patients: 3")
        .replace("start: \"2026-03-01T23:55:00Z\"", "")
        .replace(
            "    roll:\n",
            "    compact:\n      quiet: 0s\n      every: 200ms\n      open_day_files: 3\n    roll:\n      max_age: 300ms\n",
        );
    let spec = vitalflow::spec::parse(&live, &dir.path().join("live.yaml")).unwrap();
    let planned = vitalflow::engine::plan(spec).await.unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let run = tokio::spawn({
        let stop = stop.clone();
        async move {
            vitalflow::engine::run(&planned, stop, vitalflow::engine::RunOptions::default()).await
        }
    });
    // Today (the live run's day) is merged so far as it is written.
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    wait_until(
        Duration::from_secs(60),
        "both past days compacted, and today merged so far",
        || {
            let (out, today) = (out.clone(), today.clone());
            async move {
                day_files(&out, "2026-03-01").len() == 1
                    && day_files(&out, "2026-03-02").len() == 1
                    && day_files(&out, &today)
                        .iter()
                        .any(|f| f.to_string_lossy().contains("-compact-"))
            }
        },
    )
    .await;
    stop.cancel();
    let summary = run.await.unwrap().unwrap();
    assert!(summary.records_in() > 0);
    let stored = scalar_i64(&out, "SELECT count(*) FROM t").await;
    assert_eq!(stored, EVENTS as i64 + summary.records_in() as i64);
    let distinct = scalar_i64(
        &out,
        "SELECT count(*) FROM (SELECT DISTINCT patient_id, ts FROM t)",
    )
    .await;
    assert_eq!(distinct, stored, "no row twice");
}
