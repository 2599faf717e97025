//! Arroyo UDF plugins through the dylib host: the NEWS2 plugins against the
//! published table on simulated readings, NULL handling, an aggregate
//! plugin inside a window, a panicking plugin, and the edit-rerun loop
//! (a stale plugin is rebuilt; a broken one gives the compiler's error).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, AsArray, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema};
use datafusion::prelude::SessionContext;
use vitalflow::udf::{LoadedUdf, PluginCrate, load_plugin};

use super::support::*;
use super::transforms::news2;

fn plugin_dir(name: &str) -> PathBuf {
    std::fs::canonicalize("udfs").unwrap().join(name)
}

fn plugin(name: &str) -> LoadedUdf {
    load_plugin(&plugin_dir(name)).unwrap_or_else(|e| panic!("{e}"))
}

async fn query(
    udfs: &[LoadedUdf],
    batch: Option<RecordBatch>,
    sql: &str,
) -> Result<Vec<RecordBatch>, String> {
    let ctx = SessionContext::new();
    for udf in udfs {
        udf.register(&ctx);
    }
    if let Some(batch) = batch {
        ctx.register_batch("t", batch).unwrap();
    }
    let frame = ctx.sql(sql).await.map_err(|e| e.to_string())?;
    frame.collect().await.map_err(|e| e.to_string())
}

const ARGS: &str = "respiratory_rate, spo2, CAST(on_oxygen AS BIGINT), systolic_bp, heart_rate, consciousness, temperature";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn news2_plugin_scores_every_simulated_reading_as_the_published_table() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        r#"
name: plugin_scores
udfs:
  - {news2}
  - {missing}
  - {max_param}
sources:
  monitors:
    kind: simulator
    patients: 40
    pacing: unpaced
    limit: 20000
    episodes_per_hour: 60
    start: "2026-01-01T00:00:00Z"
transforms:
  scored:
    sql: >
      SELECT *, news2({ARGS}) AS score, news2_missing({ARGS}) AS missing,
             news2_max_param({ARGS}) AS max_param
      FROM monitors
sinks:
  out: {{ kind: parquet, input: scored, path: {out} }}
"#,
        out = dir.path().join("out").display(),
        news2 = plugin_dir("news2").display(),
        missing = plugin_dir("news2_missing").display(),
        max_param = plugin_dir("news2_max_param").display(),
    );
    let path = write_pipeline(dir.path(), &yaml);
    let summary = run_pipeline(&path).await;
    assert_eq!(summary.records_in(), 20_000);

    let mut checked = 0;
    let mut high = 0;
    for batch in parquet_files(&dir.path().join("out"))
        .iter()
        .flat_map(|f| read_parquet(f))
    {
        let int = |name: &str| {
            arrow::compute::cast(batch.column_by_name(name).unwrap(), &DataType::Int64).unwrap()
        };
        let (rr, spo2, sbp, hr) = (
            int("respiratory_rate"),
            int("spo2"),
            int("systolic_bp"),
            int("heart_rate"),
        );
        let (score, missing, max_param) = (int("score"), int("missing"), int("max_param"));
        let oxygen = batch
            .column_by_name("on_oxygen")
            .unwrap()
            .as_boolean()
            .clone();
        let acvpu = utf8(batch.column_by_name("consciousness").unwrap());
        let temp = batch
            .column_by_name("temperature")
            .unwrap()
            .as_primitive::<Float64Type>()
            .clone();
        let v = |a: &arrow::array::ArrayRef, i: usize| a.as_primitive::<Int64Type>().value(i);
        for i in 0..batch.num_rows() {
            let (expected, _) = news2(
                v(&rr, i) as i32,
                v(&spo2, i) as i32,
                oxygen.value(i),
                v(&sbp, i) as i32,
                v(&hr, i) as i32,
                acvpu.value(i),
                temp.value(i),
            );
            assert_eq!(v(&score, i), expected, "row {i} of {batch:?}");
            assert_eq!(v(&missing, i), 0);
            assert!((0..=3).contains(&v(&max_param, i)) && v(&max_param, i) <= v(&score, i));
            high += i64::from(expected >= 7);
            checked += 1;
        }
    }
    assert_eq!(checked, 20_000);
    assert!(high > 0, "episodes should produce some high scores");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_parameters_score_zero_and_are_counted_missing() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("respiratory_rate", DataType::Int64, true),
        Field::new("spo2", DataType::Int64, true),
        Field::new("on_oxygen", DataType::Boolean, true),
        Field::new("systolic_bp", DataType::Int64, true),
        Field::new("heart_rate", DataType::Int64, true),
        Field::new("consciousness", DataType::Utf8, true),
        Field::new("temperature", DataType::Float64, true),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(vec![None, Some(25), Some(8)])),
            Arc::new(Int64Array::from(vec![None, None, Some(91)])),
            Arc::new(arrow::array::BooleanArray::from(vec![
                None,
                None,
                Some(true),
            ])),
            Arc::new(Int64Array::from(vec![None, None, Some(90)])),
            Arc::new(Int64Array::from(vec![None, None, Some(131)])),
            Arc::new(StringArray::from(vec![None, None, Some("U")])),
            Arc::new(Float64Array::from(vec![None, None, Some(35.0)])),
        ],
    )
    .unwrap();
    let udfs = [
        plugin("news2"),
        plugin("news2_missing"),
        plugin("news2_max_param"),
    ];
    let sql =
        format!("SELECT news2({ARGS}), news2_missing({ARGS}), news2_max_param({ARGS}) FROM t");
    let out = query(&udfs, Some(batch), &sql).await.unwrap();
    let column = |i: usize| {
        out[0]
            .column(i)
            .as_primitive::<Int64Type>()
            .values()
            .to_vec()
    };
    // All missing; only RR (25 -> 3); every parameter at its worst (3+3+2+3+3+3+3).
    assert_eq!(column(0), vec![0, 3, 20]);
    assert_eq!(column(1), vec![7, 6, 0]);
    assert_eq!(column(2), vec![0, 3, 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aggregate_plugin_runs_inside_windows_and_plain_group_by() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        r#"
name: plugin_spread
udfs: [{spread}]
sources:
  monitors:
    kind: simulator
    patients: 10
    interval: 1s
    pacing: unpaced
    limit: 3000
    start: "2026-01-01T00:00:00Z"
    event_time: {{ column: ts, max_delay: 1s }}
transforms:
  swings:
    sql: >
      SELECT patient_id, w.start AS window_start, hr_spread, expected
      FROM (SELECT patient_id, tumble(interval '1 minute') AS w,
                   spread(heart_rate) AS hr_spread,
                   max(heart_rate) - min(heart_rate) AS expected
            FROM monitors GROUP BY patient_id, w)
sinks:
  out: {{ kind: parquet, input: swings, path: {out} }}
  late: {{ kind: parquet, input: monitors_late_events, path: {late} }}
"#,
        out = dir.path().join("out").display(),
        late = dir.path().join("late").display(),
        spread = plugin_dir("spread").display()
    );
    let path = write_pipeline(dir.path(), &yaml);
    run_pipeline(&path).await;
    let out = dir.path().join("out");
    assert_eq!(
        scalar_i64(&out, "SELECT count(*) FROM t").await,
        50,
        "10 patients x 5 minutes"
    );
    assert_eq!(
        scalar_i64(
            &out,
            "SELECT count(*) FROM t WHERE hr_spread IS NULL OR hr_spread <> expected"
        )
        .await,
        0
    );

    // Plain GROUP BY (partial and final aggregation, merging states).
    let values = RecordBatch::try_from_iter([
        (
            "k",
            Arc::new(StringArray::from(vec!["a", "a", "b", "a", "b"])) as Arc<dyn Array>,
        ),
        (
            "v",
            Arc::new(Float64Array::from(vec![1.0, 7.5, 3.0, -2.0, 3.0])) as Arc<dyn Array>,
        ),
    ])
    .unwrap();
    let out = query(
        &[plugin("spread")],
        Some(values),
        "SELECT k, spread(v) FROM t GROUP BY k ORDER BY k",
    )
    .await
    .unwrap();
    let spreads = out[0]
        .column(1)
        .as_primitive::<Float64Type>()
        .values()
        .to_vec();
    assert_eq!(spreads, vec![9.5, 0.0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_plugin_is_an_error_not_a_crash() {
    vitalflow::telemetry::metrics::handle();
    let udfs = [plugin("fixture_panics")];
    assert_eq!(
        query(&udfs, None, "SELECT panics_on_13(12)").await.unwrap()[0]
            .column(0)
            .as_primitive::<Int64Type>()
            .value(0),
        12
    );
    let error = query(&udfs, None, "SELECT panics_on_13(13)")
        .await
        .unwrap_err();
    assert!(
        error.contains("UDF panics_on_13()") && error.contains("panicked"),
        "{error}"
    );
    // The process (and the plugin) carry on.
    assert!(query(&udfs, None, "SELECT panics_on_13(14)").await.is_ok());
    let metrics = vitalflow::telemetry::metrics::render();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("vitalflow_udf_errors_total{udf=\"panics_on_13\"}")),
        "{metrics}"
    );
}

/// A one-crate plugin workspace sharing the real plugins' target directory
/// (so its dependencies are already built).
fn scratch_workspace(dir: &Path, body: &str) -> PathBuf {
    let real = PluginCrate::open(&plugin_dir("news2")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        "[workspace]\nresolver = \"2\"\nmembers = [\"plus\"]\n\n[profile.release]\npanic = \"unwind\"\n",
    )
    .unwrap();
    std::fs::copy(real.workspace.join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    std::os::unix::fs::symlink(real.target_dir(), dir.join("target")).unwrap();
    let krate = dir.join("plus");
    std::fs::create_dir_all(krate.join("src")).unwrap();
    std::fs::write(
        krate.join("Cargo.toml"),
        "[package]\nname = \"plus\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[lib]\ncrate-type = [\"cdylib\"]\n\n[dependencies]\narroyo-udf-plugin = \"=0.2.0\"\n",
    )
    .unwrap();
    write_plus(&krate, body);
    krate
}

fn write_plus(krate: &Path, body: &str) {
    std::fs::write(
        krate.join("src/lib.rs"),
        format!(
            "use arroyo_udf_plugin::udf;\n\n#[udf]\nfn plus(x: i64) -> i64 {{\n    {body}\n}}\n"
        ),
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_plugin_is_rebuilt_and_a_broken_one_reports_the_compiler_error() {
    let dir = tempfile::tempdir().unwrap();
    let krate = scratch_workspace(dir.path(), "x + 1");
    let answer = |udf: LoadedUdf| async move {
        query(&[udf], None, "SELECT plus(41)").await.unwrap()[0]
            .column(0)
            .as_primitive::<Int64Type>()
            .value(0)
    };
    assert_eq!(answer(load_plugin(&krate).unwrap()).await, 42);

    // Edit, "rerun": the stale dylib is rebuilt and the new code runs.
    write_plus(&krate, "x + 2");
    assert_eq!(answer(load_plugin(&krate).unwrap()).await, 43);

    // Valid Rust syntax (the signature still parses), but it does not compile.
    write_plus(&krate, "x + \"one\"");
    let error = load_plugin(&krate).unwrap_err().to_string();
    assert!(
        error.contains("building UDF `plus` failed") && error.contains("error"),
        "{error}"
    );
}
