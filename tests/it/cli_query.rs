//! `vitalflow query`: tables from the pipeline's sinks, output formats,
//! errors, and pruning by partition and statistics.

use std::sync::Arc;

use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanVisitor, accept};
use vitalflow::query::{datasets_of, query_context};
use vitalflow::{engine, spec};

use super::support::*;

/// A two-day dataset from the shipped scoring SQL, and its pipeline file.
async fn stored_dataset(dir: &std::path::Path) -> std::path::PathBuf {
    let yaml = format!(
        r#"
name: query-test
sources:
  monitors:
    kind: simulator
    patients: 40
    pacing: unpaced
    limit: 40000
    interval: 30s
    start: "2026-02-10T23:00:00Z"
transforms:
  scored:
    sql_file: "{}"
sinks:
  vitals:
    kind: parquet
    input: scored
    path: "{}"
    partition_by_date: ts
    sort_by: [patient_id, ts]
    row_group_rows: 2000
    page_rows: 500
    roll:
      max_rows: 10000
"#,
        std::fs::canonicalize("sql/vitals_scored.sql")
            .unwrap()
            .display(),
        dir.join("vitals").display()
    );
    let path = write_pipeline(dir, &yaml);
    run_pipeline(&path).await;
    path
}

fn query(pipeline: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    use std::ffi::OsStr;
    let mut all = vec![
        OsStr::new("query"),
        OsStr::new("--pipeline"),
        pipeline.as_os_str(),
    ];
    all.extend(args.iter().map(OsStr::new));
    run_binary(all)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn formats_errors_and_tables() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = stored_dataset(dir.path()).await;

    let (ok, csv, err) = query(
        &pipeline,
        &["--format", "csv", "SELECT count(*) AS n FROM vitals"],
    );
    assert!(ok, "{err}");
    assert_eq!(csv, "n\n40000\n");

    // The process ends as soon as its rows are written: every one of
    // 40,000 rows (megabytes, far beyond a pipe's buffer) arrives.
    let (ok, csv, err) = query(
        &pipeline,
        &[
            "--format",
            "csv",
            "SELECT patient_id, ts, heart_rate FROM vitals",
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(csv.lines().count(), 40_001, "header and every row");
    assert!(csv.ends_with('\n'), "the last row is whole");

    // A reader that stops early (`| head`) is not a failure.
    let mut child = std::process::Command::new(binary())
        .args(["query", "--format", "csv", "--pipeline"])
        .arg(&pipeline)
        .arg("SELECT * FROM vitals")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut first,
    )
    .unwrap();
    assert!(first.starts_with("patient_id,"), "{first}");
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let (ok, json, err) = query(
        &pipeline,
        &[
            "--format",
            "json",
            "SELECT patient_id, count(*) AS n FROM vitals GROUP BY patient_id ORDER BY patient_id LIMIT 2",
        ],
    );
    assert!(ok, "{err}");
    let rows: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        rows,
        serde_json::json!([{"patient_id": "P00001", "n": 1000}, {"patient_id": "P00002", "n": 1000}])
    );

    let (ok, table, err) = query(
        &pipeline,
        &["SELECT date, count(*) AS n FROM vitals GROUP BY date ORDER BY date"],
    );
    assert!(ok, "{err}");
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("+-") && lines[1].contains("| date") && lines[1].contains("| n"),
        "{table}"
    );
    assert!(
        table.contains("| 2026-02-10 | 4800  |") && table.contains("| 2026-02-11 | 35200 |"),
        "{table}"
    );
    // Every row of the aligned table has the same width.
    assert!(lines.iter().all(|l| l.len() == lines[0].len()), "{table}");

    // The sink is also reachable by its own name, and an empty result still shows the header.
    let (ok, csv, _) = query(
        &pipeline,
        &[
            "--format",
            "csv",
            "SELECT patient_id FROM vitals WHERE heart_rate > 1000",
        ],
    );
    assert!(ok);
    assert_eq!(csv, "patient_id\n");

    let (ok, _, err) = query(&pipeline, &["SELECT hart_rate FROM vitals"]);
    assert!(!ok, "bad SQL must fail");
    assert!(err.contains("hart_rate") && err.contains("error:"), "{err}");

    // DataFusion settings come from the environment, over vitalflow's own;
    // a value that does not parse names its variable.
    let with_env = |variable: &str, value: &str, sql: &str| {
        let output = std::process::Command::new(binary())
            .args(["query", "--format", "csv", "--pipeline"])
            .arg(&pipeline)
            .arg(sql)
            .env(variable, value)
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (ok, csv, err) = with_env(
        "DATAFUSION_EXECUTION_BATCH_SIZE",
        "1234",
        "SHOW datafusion.execution.batch_size",
    );
    assert!(ok, "{err}");
    assert_eq!(csv, "name,value\ndatafusion.execution.batch_size,1234\n");
    let (ok, csv, err) = with_env(
        "DATAFUSION_EXECUTION_BATCH_SIZE",
        "1234",
        "SHOW datafusion.optimizer.enable_join_dynamic_filter_pushdown",
    );
    assert!(ok, "{err}");
    assert!(
        csv.ends_with(",false\n"),
        "vitalflow's default stays: {csv}"
    );
    let (ok, csv, err) = with_env(
        "DATAFUSION_EXECUTION_PARQUET_PUSHDOWN_FILTERS",
        "maybe",
        "SELECT count(*) AS n FROM vitals",
    );
    assert!(!ok, "a bad setting must fail: {csv}");
    assert!(
        err.contains("DATAFUSION_EXECUTION_PARQUET_PUSHDOWN_FILTERS=\"maybe\""),
        "{err}"
    );

    let (ok, _, err) = query(&pipeline, &["SELEC 1"]);
    assert!(!ok);
    assert!(err.contains("SELEC"), "{err}");

    // An extra table that is a plain directory of Parquet files (a static
    // table, no `date=` directories) is read whole, and joins.
    let patients = dir.path().join("patients");
    std::fs::create_dir_all(&patients).unwrap();
    let schema = std::sync::Arc::new(arrow::datatypes::Schema::new(vec![
        arrow::datatypes::Field::new("patient_id", arrow::datatypes::DataType::Utf8, false),
        arrow::datatypes::Field::new("ward", arrow::datatypes::DataType::Utf8, false),
    ]));
    let batch = arrow::array::RecordBatch::try_new(
        schema.clone(),
        vec![
            std::sync::Arc::new(arrow::array::StringArray::from(vec!["P00001", "P00002"])),
            std::sync::Arc::new(arrow::array::StringArray::from(vec!["A", "B"])),
        ],
    )
    .unwrap();
    let file = std::fs::File::create(patients.join("patients.parquet")).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    let table = format!("patients={}", patients.display());
    let (ok, csv, err) = query(
        &pipeline,
        &[
            "--format",
            "csv",
            "--table",
            &table,
            "SELECT p.ward, count(*) AS n FROM vitals v JOIN patients p ON v.patient_id = p.patient_id GROUP BY 1 ORDER BY 1",
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(csv, "ward,n\nA,1000\nB,1000\n");
}

/// Sums a named metric over every node of an executed plan.
struct MetricSum<'a> {
    name: &'a str,
    total: usize,
    /// For pruning metrics: what was kept.
    matched: usize,
}

impl ExecutionPlanVisitor for MetricSum<'_> {
    type Error = datafusion::error::DataFusionError;
    fn pre_visit(&mut self, plan: &dyn ExecutionPlan) -> Result<bool, Self::Error> {
        use datafusion::physical_plan::metrics::MetricValue;
        for metric in plan
            .metrics()
            .iter()
            .flat_map(|m| m.iter().cloned().collect::<Vec<_>>())
        {
            match metric.value() {
                // Pruning metrics count what was skipped.
                MetricValue::PruningMetrics {
                    name,
                    pruning_metrics,
                } if name.as_ref() == self.name => {
                    self.total += pruning_metrics.pruned();
                    self.matched += pruning_metrics.matched();
                }
                value if value.name() == self.name => self.total += value.as_usize(),
                _ => {}
            }
        }
        Ok(true)
    }
}

async fn run_and_measure(
    ctx: &datafusion::prelude::SessionContext,
    sql: &str,
    metric: &str,
) -> (i64, usize) {
    let (count, pruned, _) = run_and_measure_pruning(ctx, sql, metric).await;
    (count, pruned)
}

/// Row count, and the metric's total (for pruning metrics: pruned) and matched.
pub(crate) async fn run_and_measure_pruning(
    ctx: &datafusion::prelude::SessionContext,
    sql: &str,
    metric: &str,
) -> (i64, usize, usize) {
    use arrow::array::AsArray;
    let plan: Arc<dyn ExecutionPlan> = ctx
        .sql(sql)
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap();
    let batches = datafusion::physical_plan::collect(plan.clone(), ctx.task_ctx())
        .await
        .unwrap();
    let count = batches[0]
        .column(0)
        .as_primitive::<arrow::datatypes::Int64Type>()
        .value(0);
    let mut visitor = MetricSum {
        name: metric,
        total: 0,
        matched: 0,
    };
    accept(plan.as_ref(), &mut visitor).unwrap();
    (count, visitor.total, visitor.matched)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_and_patient_filters_prune_instead_of_scanning() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = stored_dataset(dir.path()).await;
    let planned = engine::plan(spec::load(&pipeline).unwrap()).await.unwrap();
    let ctx = query_context(&datasets_of(&planned).unwrap())
        .await
        .unwrap();

    let (all, scanned_all) = run_and_measure(
        &ctx,
        "SELECT count(*) FROM vitals WHERE heart_rate >= 0",
        "output_rows",
    )
    .await;
    assert_eq!(all, 40_000);
    assert!(scanned_all >= 40_000);

    // A one-hour window: files and row groups outside it are skipped by statistics.
    let (in_window, _) = run_and_measure(
        &ctx,
        "SELECT count(*) FROM vitals WHERE ts >= TIMESTAMP '2026-02-11T05:00:00Z' AND ts < TIMESTAMP '2026-02-11T06:00:00Z'",
        "output_rows",
    )
    .await;
    assert_eq!(in_window, 40 * 120);
    // Row groups are 2,000 rows (25 simulated minutes): a one-hour window
    // needs at most 4 of the 20+, and the rest are skipped by statistics.
    let (_, _, groups_read_all) = run_and_measure_pruning(
        &ctx,
        "SELECT count(*) FROM vitals WHERE heart_rate >= 0",
        "row_groups_pruned_statistics",
    )
    .await;
    assert!(
        groups_read_all >= 20,
        "full scan reads every row group, got {groups_read_all}"
    );
    let (_, pruned, kept) = run_and_measure_pruning(
        &ctx,
        "SELECT count(*) FROM vitals WHERE ts >= TIMESTAMP '2026-02-11T05:00:00Z' AND ts < TIMESTAMP '2026-02-11T06:00:00Z' AND heart_rate >= 0",
        "row_groups_pruned_statistics",
    )
    .await;
    let (_, files_pruned, _) = run_and_measure_pruning(
        &ctx,
        "SELECT count(*) FROM vitals WHERE ts >= TIMESTAMP '2026-02-11T05:00:00Z' AND ts < TIMESTAMP '2026-02-11T06:00:00Z' AND heart_rate >= 0",
        "files_ranges_pruned_statistics",
    )
    .await;
    assert!(
        kept <= 4,
        "time filter read {kept} row groups (pruned {pruned}, files pruned {files_pruned})"
    );
    assert!(pruned + files_pruned > 0);

    // One patient: sorted row groups let page statistics skip the others.
    let (one, _) = run_and_measure(
        &ctx,
        "SELECT count(*) FROM vitals WHERE patient_id = 'P00007'",
        "output_rows",
    )
    .await;
    assert_eq!(one, 1000);
    let (_, pages_pruned) = run_and_measure(
        &ctx,
        "SELECT count(*) FROM vitals WHERE patient_id = 'P00007' AND heart_rate >= 0",
        "page_index_rows_pruned",
    )
    .await;
    assert!(pages_pruned > 0, "a patient filter must prune pages");

    // A date partition filter never opens the other day's directory.
    let (day, _) = run_and_measure(
        &ctx,
        "SELECT count(*) FROM vitals WHERE date = '2026-02-10'",
        "output_rows",
    )
    .await;
    assert_eq!(day, 4_800);
}
