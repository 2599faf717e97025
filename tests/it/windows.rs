//! Windowed aggregates against batch DataFusion queries over the same rows:
//! tumble and hop against `date_bin` GROUP BY, session against LAG / SUM
//! OVER. Inputs arrive in order or shuffled within the allowed delay, in
//! random batches, and the window state may be checkpointed and restored
//! half-way: the results must not change.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int32Array, RecordBatch, StringArray,
    TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, TimeUnit};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use vitalflow::common::event_times_ms;
use vitalflow::engine::checkpoint::{CheckpointStore, StateToSave};
use vitalflow::engine::watermark::WatermarkTracker;
use vitalflow::engine::{self, Operator};
use vitalflow::sources::simulator::vitals_schema;

use super::support::*;

/// 2026-01-01T00:00:00Z
const BASE: i64 = 1_767_225_600_000;
const MAX_DELAY_MS: i64 = 5_000;

#[derive(Debug, Clone)]
struct Reading {
    patient: String,
    ts: i64,
    heart_rate: i32,
    spo2: i32,
    temperature: f64,
}

fn readings(seed: u64) -> Vec<Reading> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::new();
    for p in 0..rng.random_range(1..6) {
        let mut seen = HashSet::new();
        for _ in 0..rng.random_range(20..200) {
            // Ten minutes, with gaps long enough to split sessions.
            let ts = BASE + rng.random_range(0..600_000);
            if seen.insert(ts) {
                out.push(Reading {
                    patient: format!("P{p}"),
                    ts,
                    heart_rate: rng.random_range(40..160),
                    spo2: rng.random_range(85..100),
                    temperature: rng.random_range(3500..4000) as f64 / 100.0,
                });
            }
        }
    }
    out.sort_by_key(|r| r.ts);
    out
}

/// Arrival order: each row is delayed by up to the allowed delay, so none
/// is ever behind the watermark.
fn shuffle_within_delay(rows: &mut [Reading], seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    let mut keyed: Vec<(i64, Reading)> = rows
        .iter()
        .map(|r| (r.ts + rng.random_range(0..=MAX_DELAY_MS), r.clone()))
        .collect();
    keyed.sort_by_key(|(arrival, _)| *arrival);
    for (slot, (_, r)) in rows.iter_mut().zip(keyed) {
        *slot = r;
    }
}

fn to_batch(rows: &[Reading]) -> RecordBatch {
    let n = rows.len();
    let ints = |f: &dyn Fn(&Reading) -> i32| {
        Arc::new(Int32Array::from_iter_values(rows.iter().map(f))) as ArrayRef
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.patient.as_str()),
        )),
        Arc::new(
            TimestampMillisecondArray::from_iter_values(rows.iter().map(|r| r.ts))
                .with_timezone("UTC"),
        ),
        ints(&|r| r.heart_rate),
        ints(&|r| r.spo2),
        ints(&|_| 120),
        ints(&|_| 80),
        ints(&|_| 16),
        Arc::new(Float64Array::from_iter_values(
            rows.iter().map(|r| r.temperature),
        )),
        Arc::new(StringArray::from_iter_values(std::iter::repeat_n("A", n))),
        Arc::new(BooleanArray::from(vec![false; n])),
    ];
    RecordBatch::try_new(vitals_schema(), columns).unwrap()
}

const AGGREGATES: &str = "count(*) AS n, sum(heart_rate) AS hr_sum, min(spo2) AS spo2_min, \
                          max(temperature) AS temp_max, avg(heart_rate) AS hr_avg";

fn windowed_sql(window: &str) -> String {
    format!(
        "SELECT patient_id, w.start AS window_start, w.end AS window_end, n, hr_sum, spo2_min, temp_max, hr_avg \
         FROM (SELECT patient_id, {window} AS w, {AGGREGATES} FROM monitors GROUP BY patient_id, w)"
    )
}

/// A fresh operator (as a new run starts it) of the planned window.
async fn plan_window(dir: &std::path::Path, window: &str) -> Box<dyn Operator> {
    let yaml = format!(
        r#"
name: windows_test
sources:
  monitors:
    kind: simulator
    event_time: {{ column: ts, max_delay: {MAX_DELAY_MS}ms }}
transforms:
  windows:
    sql: "{sql}"
sinks:
  out: {{ kind: parquet, input: windows, path: {out} }}
  late: {{ kind: parquet, input: monitors_late_events, path: {late} }}
"#,
        sql = windowed_sql(window),
        out = dir.join("out").display(),
        late = dir.join("late").display(),
    );
    let path = write_pipeline(dir, &yaml);
    let spec = vitalflow::spec::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let planned = engine::plan(spec).await.unwrap_or_else(|e| panic!("{e}"));
    planned.transforms[0].plan.start().unwrap()
}

/// One result row, canonical: patient, start, end, n, hr_sum, spo2_min,
/// temp_max, hr_avg (rounded: summation order differs).
type Row = (String, i64, i64, i64, i64, i64, String, String);

fn canonical(batches: &[RecordBatch]) -> Vec<Row> {
    use arrow::array::AsArray;
    use arrow::datatypes::{Float64Type, Int64Type};
    let mut out = Vec::new();
    for batch in batches {
        let col = |i: usize, to: DataType| arrow::compute::cast(batch.column(i), &to).unwrap();
        let patient = col(0, DataType::Utf8);
        let ms = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
        let start = arrow::compute::cast(&col(1, ms.clone()), &DataType::Int64).unwrap();
        let end = arrow::compute::cast(&col(2, ms), &DataType::Int64).unwrap();
        let ints: Vec<ArrayRef> = (3..6).map(|i| col(i, DataType::Int64)).collect();
        let floats: Vec<ArrayRef> = (6..8).map(|i| col(i, DataType::Float64)).collect();
        for r in 0..batch.num_rows() {
            out.push((
                patient.as_string::<i32>().value(r).to_string(),
                start.as_primitive::<Int64Type>().value(r),
                end.as_primitive::<Int64Type>().value(r),
                ints[0].as_primitive::<Int64Type>().value(r),
                ints[1].as_primitive::<Int64Type>().value(r),
                ints[2].as_primitive::<Int64Type>().value(r),
                format!("{:.6}", floats[0].as_primitive::<Float64Type>().value(r)),
                format!("{:.6}", floats[1].as_primitive::<Float64Type>().value(r)),
            ));
        }
    }
    out.sort();
    out
}

async fn batch_query(rows: &[Reading], sql: &str) -> Vec<Row> {
    let ctx = SessionContext::new();
    let table = MemTable::try_new(vitals_schema(), vec![vec![to_batch(rows)]]).unwrap();
    ctx.register_table("vitals", Arc::new(table)).unwrap();
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    canonical(&batches)
}

/// Feed `rows` in random batches, advancing the watermark as the engine
/// does; optionally checkpoint the state half-way and continue in a fresh
/// operator restored from it.
async fn stream(window: &str, rows: &[Reading], seed: u64, restart: bool) -> Vec<Row> {
    let dir = tempfile::tempdir().unwrap();
    let mut operator = plan_window(dir.path(), window).await;
    let event_time = vitalflow::sources::EventTimeConfig {
        column: "ts".into(),
        max_delay: vitalflow::common::HumanDuration(std::time::Duration::from_millis(
            MAX_DELAY_MS as u64,
        )),
        idle_timeout: vitalflow::common::HumanDuration(std::time::Duration::from_secs(3600)),
    };
    let mut tracker = WatermarkTracker::new(&event_time);
    let mut rng = StdRng::seed_from_u64(seed ^ 0xba7c);
    let mut output = Vec::new();
    let mut at = 0;
    let mut restarted = !restart;
    while at < rows.len() {
        let size = rng.random_range(1..60).min(rows.len() - at);
        let batch = to_batch(&rows[at..at + size]);
        at += size;
        let times = event_times_ms(&batch, "ts").unwrap();
        let (on_time, late) =
            WatermarkTracker::split_late(batch, &times, tracker.current()).unwrap();
        assert!(
            late.is_none(),
            "no row is late when shuffled within the delay"
        );
        tracker.observe(&BTreeMap::new(), &times, Instant::now());
        output.extend(operator.process(on_time).await.unwrap());
        if let Some(watermark) = tracker.current() {
            output.extend(operator.advance(watermark).await.unwrap());
        }
        if !restarted && at >= rows.len() / 2 {
            restarted = true;
            let saved = operator.checkpoint().await.unwrap().unwrap();
            let state_dir = dir.path().join("checkpoints");
            let mut store = CheckpointStore::open(&state_dir, "windows_test").unwrap();
            let state = StateToSave {
                operators: vec![("windows".into(), saved)],
                watermarks: BTreeMap::from([("monitors".into(), tracker.current().unwrap())]),
                ..Default::default()
            };
            store.commit(&BTreeMap::new(), &[], &state, &[]).unwrap();
            // A new process: plan again, restore from the newest checkpoint.
            operator = plan_window(dir.path(), window).await;
            let reopened = CheckpointStore::open(&state_dir, "windows_test").unwrap();
            let mut restored = reopened.latest_state().unwrap().unwrap();
            operator
                .restore(restored.operators.remove("windows").unwrap())
                .await
                .unwrap();
        }
    }
    output.extend(operator.close().await.unwrap());
    canonical(&output)
}

fn tumble_reference() -> String {
    format!(
        "SELECT patient_id, date_bin(interval '1 minute', ts, TIMESTAMP '1970-01-01T00:00:00Z') AS window_start, \
         date_bin(interval '1 minute', ts, TIMESTAMP '1970-01-01T00:00:00Z') + interval '1 minute' AS window_end, {AGGREGATES} \
         FROM vitals GROUP BY 1, 2"
    )
}

/// hop(10 s, 1 min) windows are the 1-minute tumbling windows of the six
/// origins 0 s, 10 s, ... 50 s.
fn hop_reference() -> String {
    (0..6)
        .map(|k| {
            let bin = format!("date_bin(interval '1 minute', ts, TIMESTAMP '1970-01-01T00:00:{:02}Z')", k * 10);
            format!(
                "SELECT patient_id, {bin} AS window_start, {bin} + interval '1 minute' AS window_end, {AGGREGATES} \
                 FROM vitals GROUP BY 1, 2"
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ")
}

/// Sessions with a 30 s gap: a new session starts where a patient's
/// previous reading is 30 s or more before.
fn session_reference() -> String {
    format!(
        "WITH marked AS ( \
           SELECT *, CASE WHEN lag(ts) OVER (PARTITION BY patient_id ORDER BY ts) IS NULL \
                          OR ts - lag(ts) OVER (PARTITION BY patient_id ORDER BY ts) >= interval '30 seconds' \
                     THEN 1 ELSE 0 END AS new_session FROM vitals), \
         numbered AS ( \
           SELECT *, sum(new_session) OVER (PARTITION BY patient_id ORDER BY ts ROWS UNBOUNDED PRECEDING) AS session_id FROM marked) \
         SELECT patient_id, min(ts) AS window_start, max(ts) + interval '30 seconds' AS window_end, {AGGREGATES} \
         FROM numbered GROUP BY patient_id, session_id"
    )
}

fn check(window: &str, reference: String, seed: u64, shuffled: bool, restart: bool) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut rows = readings(seed);
        let expected = batch_query(&rows, &reference).await;
        if shuffled {
            shuffle_within_delay(&mut rows, seed);
        }
        let actual = stream(window, &rows, seed, restart).await;
        assert!(!expected.is_empty());
        assert_eq!(
            actual, expected,
            "{window}, seed {seed}, shuffled {shuffled}, restart {restart}"
        );
    });
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn tumble_equals_date_bin(seed in any::<u64>(), shuffled in any::<bool>(), restart in any::<bool>()) {
        check("tumble(interval '1 minute')", tumble_reference(), seed, shuffled, restart);
    }

    #[test]
    fn hop_equals_date_bin_over_six_origins(seed in any::<u64>(), shuffled in any::<bool>(), restart in any::<bool>()) {
        check("hop(interval '10 seconds', interval '1 minute')", hop_reference(), seed, shuffled, restart);
    }

    #[test]
    fn session_equals_lag_based_sessions(seed in any::<u64>(), shuffled in any::<bool>(), restart in any::<bool>()) {
        check("session(interval '30 seconds')", session_reference(), seed, shuffled, restart);
    }
}

/// The shipped windows pipeline, run to the end of a bounded simulator:
/// every minute and every hop window of every patient, each reading counted
/// once per window it falls in, nothing late.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_windows_pipeline_summarises_every_window() {
    let dir = tempfile::tempdir().unwrap();
    let sql_dir = std::fs::canonicalize("sql").unwrap();
    let yaml = std::fs::read_to_string("pipelines/vitals-windows.yaml")
        .unwrap()
        .replace("../sql", &sql_dir.display().to_string())
        .replace("patients: 50", "patients: 20")
        .replace(
            "    seed: 42\n",
            "    seed: 42\n    pacing: unpaced\n    limit: 6000\n    start: \"2026-01-01T00:00:00Z\"\n",
        )
        .replace("${VITALFLOW_DATA_DIR:-data}", &dir.path().display().to_string());
    assert!(yaml.contains("limit: 6000"));
    let path = write_pipeline(dir.path(), &yaml);
    let summary = run_pipeline(&path).await;
    assert_eq!(summary.records_in(), 6000);

    // 20 patients x 300 readings, 1 s apart: five full minutes each.
    let per_minute = dir.path().join("vitals_per_minute");
    assert_eq!(scalar_i64(&per_minute, "SELECT count(*) FROM t").await, 100);
    assert_eq!(
        scalar_i64(&per_minute, "SELECT count(*) FROM t WHERE readings <> 60").await,
        0
    );
    assert_eq!(
        scalar_i64(
            &per_minute,
            "SELECT count(*) FROM t WHERE window_end - window_start <> interval '1 minute'"
        )
        .await,
        0
    );
    // Hop windows start every 10 s from 50 s before the first reading:
    // 35 per patient, and each reading is in six of them.
    let rolling = dir.path().join("vitals_rolling");
    assert_eq!(scalar_i64(&rolling, "SELECT count(*) FROM t").await, 700);
    assert_eq!(
        scalar_i64(&rolling, "SELECT sum(readings) FROM t").await,
        36_000
    );
    assert!(
        parquet_files(&dir.path().join("vitals_late")).is_empty(),
        "nothing was late"
    );

    // What an operator scrapes: windows closed per transform, the watermark.
    let metrics = vitalflow::telemetry::metrics::render();
    for series in [
        "vitalflow_windows_closed_total{pipeline=\"vitals-windows\",transform=\"per_minute\"} 5",
        "vitalflow_window_groups_emitted_total{pipeline=\"vitals-windows\",transform=\"rolling\"} 700",
        "vitalflow_watermark_timestamp_seconds{pipeline=\"vitals-windows\",source=\"monitors\"}",
    ] {
        assert!(
            metrics.lines().any(|l| l.starts_with(series)),
            "{series} missing:\n{metrics}"
        );
    }
}

/// The shipped risk pipeline: windows + NEWS2 plugin + a static table join
/// + the ONNX model as a SQL function, against the model called directly
/// on the same features.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_risk_pipeline_scores_every_patient_minute() {
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(".").unwrap();
    let yaml = std::fs::read_to_string("pipelines/vitals-risk.yaml")
        .unwrap()
        .replace("../", &format!("{}/", root.display()))
        .replace("patients: 50", "patients: 30")
        .replace(
            "    seed: 42\n",
            "    seed: 42\n    pacing: unpaced\n    limit: 5400\n    start: \"2026-01-01T00:00:00Z\"\n",
        )
        .replace("${VITALFLOW_DATA_DIR:-data}", &dir.path().display().to_string());
    let path = write_pipeline(dir.path(), &yaml);
    run_pipeline(&path).await;

    // 30 patients x 180 readings 1 s apart: three minutes each.
    let out = dir.path().join("patient_risk");
    assert_eq!(scalar_i64(&out, "SELECT count(*) FROM t").await, 90);
    assert_eq!(
        scalar_i64(
            &out,
            "SELECT count(*) FROM t WHERE readings <> 60 OR news2_missing_max <> 0"
        )
        .await,
        0
    );
    assert_eq!(
        scalar_i64(
            &out,
            "SELECT count(*) FROM t WHERE news2_max < news2_avg OR news2_max > 20"
        )
        .await,
        0
    );

    // The model as a SQL function equals the model called directly.
    let model = vitalflow::models::RiskModel::load(&root.join("models/diabetes_rf.onnx")).unwrap();
    let patients = csv_rows(&root.join("config/patients.csv"));
    let batches = sql(&out, "SELECT patient_id, dbp_avg, diabetes_risk FROM t").await;
    let mut checked = 0;
    for batch in &batches {
        let ids = arrow::compute::cast(batch.column(0), &DataType::Utf8).unwrap();
        let ids = ids.as_any().downcast_ref::<StringArray>().unwrap();
        let dbp = batch
            .column(1)
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        let risk = batch
            .column(2)
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        for i in 0..batch.num_rows() {
            let p = &patients[ids.value(i)];
            let features = [p[0], p[1], dbp.value(i), p[2], p[3], p[4], p[5], p[6]];
            let expected = model.predict_trees(&features).unwrap()[0];
            assert_eq!(risk.value(i), expected, "{}", ids.value(i));
            checked += 1;
        }
    }
    assert_eq!(checked, 90);
}

/// `patient_id -> [pregnancies, glucose, skin_thickness, insulin, bmi,
/// pedigree, age]` from the static table's CSV.
fn csv_rows(path: &std::path::Path) -> std::collections::HashMap<String, Vec<f64>> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .skip(1)
        .map(|line| {
            let mut fields = line.split(',');
            let id = fields.next().unwrap().to_string();
            (id, fields.map(|f| f.parse().unwrap()).collect())
        })
        .collect()
}

/// A stateless join with a static table, executed once per micro-batch:
/// every batch is joined afresh (a hash join keeps its build side between
/// executions unless the plan is reset).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_table_join_sees_every_micro_batch() {
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(".").unwrap();
    let yaml = format!(
        r#"
name: join
tables:
  patients: {{ path: {root}/config/patients.csv }}
sources:
  monitors:
    kind: simulator
    patients: 30
    pacing: unpaced
    batch_rows: 100
    limit: 3000
    start: "2026-01-01T00:00:00Z"
transforms:
  with_history:
    sql: SELECT m.patient_id, m.ts, p.age FROM monitors AS m JOIN patients AS p ON p.patient_id = m.patient_id
sinks:
  out: {{ kind: parquet, input: with_history, path: {out} }}
"#,
        root = root.display(),
        out = dir.path().join("out").display()
    );
    let path = write_pipeline(dir.path(), &yaml);
    run_pipeline(&path).await;
    let out = dir.path().join("out");
    assert_eq!(scalar_i64(&out, "SELECT count(*) FROM t").await, 3000);
    assert_eq!(
        scalar_i64(&out, "SELECT count(DISTINCT ts) FROM t").await,
        100
    );
    let patients = csv_rows(&root.join("config/patients.csv"));
    let batches = sql(&out, "SELECT patient_id, age FROM t").await;
    for batch in &batches {
        let ids = arrow::compute::cast(batch.column(0), &DataType::Utf8).unwrap();
        let ids = ids.as_any().downcast_ref::<StringArray>().unwrap();
        let ages = arrow::compute::cast(batch.column(1), &DataType::Float64).unwrap();
        let ages = ages.as_any().downcast_ref::<Float64Array>().unwrap();
        for i in 0..batch.num_rows() {
            assert_eq!(ages.value(i), patients[ids.value(i)][6], "{}", ids.value(i));
        }
    }
}

/// Aggregates without a vectorised implementation (median, DISTINCT) and
/// FILTER clauses work inside windows, against the same batch query.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn median_distinct_and_filter_work_inside_windows() {
    let dir = tempfile::tempdir().unwrap();
    let aggregates = "median(heart_rate) AS hr_median, count(DISTINCT spo2) AS spo2_values, \
                      sum(heart_rate) FILTER (WHERE spo2 < 97) AS hr_sum_low_spo2";
    let yaml = format!(
        r#"
name: other_aggregates
sources:
  monitors:
    kind: simulator
    patients: 15
    interval: 1s
    pacing: unpaced
    limit: 2700
    start: "2026-01-01T00:00:00Z"
    event_time: {{ column: ts, max_delay: 2s }}
transforms:
  minutes:
    sql: "SELECT patient_id, w.start AS window_start, hr_median, spo2_values, hr_sum_low_spo2 FROM (SELECT patient_id, tumble(interval '1 minute') AS w, {aggregates} FROM monitors GROUP BY patient_id, w)"
sinks:
  minutes: {{ kind: parquet, input: minutes, path: {minutes} }}
  raw: {{ kind: parquet, input: monitors, path: {raw} }}
  late: {{ kind: parquet, input: monitors_late_events, path: {late} }}
"#,
        minutes = dir.path().join("minutes").display(),
        raw = dir.path().join("raw").display(),
        late = dir.path().join("late").display(),
    );
    let path = write_pipeline(dir.path(), &yaml);
    run_pipeline(&path).await;
    let columns = "CAST(patient_id AS VARCHAR), CAST(window_start AS VARCHAR), hr_median, spo2_values, hr_sum_low_spo2";
    let streamed = sql(
        &dir.path().join("minutes"),
        &format!("SELECT {columns} FROM t ORDER BY 1, 2"),
    )
    .await;
    let batch = sql(
        &dir.path().join("raw"),
        &format!(
            "SELECT {columns} FROM (SELECT patient_id, date_bin(interval '1 minute', ts, TIMESTAMP '1970-01-01T00:00:00Z') AS window_start, {aggregates} FROM t GROUP BY 1, 2) ORDER BY 1, 2"
        ),
    )
    .await;
    let text = |b: &[RecordBatch]| {
        arrow::util::pretty::pretty_format_batches(b)
            .unwrap()
            .to_string()
    };
    // Same rows; the headers differ only by the table qualifier.
    let body = |s: String| s.lines().skip(3).collect::<Vec<_>>().join("\n");
    assert_eq!(body(text(&streamed)), body(text(&batch)));
    assert_eq!(
        streamed.iter().map(RecordBatch::num_rows).sum::<usize>(),
        45
    );
}
