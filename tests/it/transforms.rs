//! SQL transform results against expected rows computed independently in
//! Rust from the raw readings.

use std::collections::HashMap;

use arrow::array::AsArray;
use arrow::datatypes::{Float64Type, Int32Type, Int64Type, TimestampMillisecondType};

use super::support::*;

/// NEWS2 (RCP 2017, SpO2 scale 1), written from the published table, not
/// from the SQL under test.
pub(crate) fn news2(
    rr: i32,
    spo2: i32,
    oxygen: bool,
    sbp: i32,
    hr: i32,
    consciousness: &str,
    temp: f64,
) -> (i64, &'static str) {
    let (total, _, level) = news2_detail(rr, spo2, oxygen, sbp, hr, consciousness, temp);
    (total, level)
}

/// The aggregate score, whether any single parameter scored 3, and the
/// clinical risk band.
pub(crate) fn news2_detail(
    rr: i32,
    spo2: i32,
    oxygen: bool,
    sbp: i32,
    hr: i32,
    consciousness: &str,
    temp: f64,
) -> (i64, bool, &'static str) {
    let rr_s = match rr {
        ..=8 => 3,
        9..=11 => 1,
        12..=20 => 0,
        21..=24 => 2,
        _ => 3,
    };
    let spo2_s = match spo2 {
        ..=91 => 3,
        92..=93 => 2,
        94..=95 => 1,
        _ => 0,
    };
    let o2_s = if oxygen { 2 } else { 0 };
    let sbp_s = match sbp {
        ..=90 => 3,
        91..=100 => 2,
        101..=110 => 1,
        111..=219 => 0,
        _ => 3,
    };
    let hr_s = match hr {
        ..=40 => 3,
        41..=50 => 1,
        51..=90 => 0,
        91..=110 => 1,
        111..=130 => 2,
        _ => 3,
    };
    let c_s = if consciousness == "A" { 0 } else { 3 };
    let tenths = (temp * 10.0).round() as i64;
    let t_s = match tenths {
        ..=350 => 3,
        351..=360 => 1,
        361..=380 => 0,
        381..=390 => 1,
        _ => 2,
    };
    let total = rr_s + spo2_s + o2_s + sbp_s + hr_s + c_s + t_s;
    let red = [rr_s, spo2_s, sbp_s, hr_s, c_s, t_s].contains(&3);
    let level = if total >= 7 {
        "high"
    } else if total >= 5 {
        "medium"
    } else if red {
        "low-medium"
    } else {
        "low"
    };
    (total, red, level)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_news2_sql_matches_the_published_table() {
    let dir = tempfile::tempdir().unwrap();
    let sql_path = std::fs::canonicalize("sql/vitals_scored.sql").unwrap();
    let raw = dir.path().join("raw");
    let scored = dir.path().join("scored");
    let yaml = format!(
        r#"
name: news2-test
sources:
  monitors:
    kind: simulator
    patients: 200
    pacing: unpaced
    limit: 100000
    episodes_per_hour: 40
    start: "2026-05-01T08:00:00Z"
transforms:
  scored:
    sql_file: "{}"
sinks:
  raw:
    kind: parquet
    input: monitors
    path: "{}"
  scored:
    kind: parquet
    input: scored
    path: "{}"
"#,
        sql_path.display(),
        raw.display(),
        scored.display()
    );
    run_pipeline(&write_pipeline(dir.path(), &yaml)).await;

    let mut expected = HashMap::new();
    for b in sql(&raw, "SELECT patient_id, ts, respiratory_rate, spo2, on_oxygen, systolic_bp, heart_rate, consciousness, temperature FROM t").await {
        let id = utf8(b.column(0));
        let ts = b.column(1).as_primitive::<TimestampMillisecondType>();
        let i32s = |c: usize| b.column(c).as_primitive::<Int32Type>().clone();
        let (rr, spo2, sbp, hr) = (i32s(2), i32s(3), i32s(5), i32s(6));
        let o2 = b.column(4).as_boolean();
        let cons = utf8(b.column(7));
        let temp = b.column(8).as_primitive::<Float64Type>();
        for i in 0..b.num_rows() {
            let score = news2(rr.value(i), spo2.value(i), o2.value(i), sbp.value(i), hr.value(i), cons.value(i), temp.value(i));
            expected.insert((id.value(i).to_string(), ts.value(i)), score);
        }
    }
    assert_eq!(expected.len(), 100_000);

    let mut seen = 0;
    let mut levels: HashMap<String, usize> = HashMap::new();
    for b in sql(
        &scored,
        "SELECT patient_id, ts, CAST(news2_score AS BIGINT), risk_level FROM t",
    )
    .await
    {
        let id = utf8(b.column(0));
        let ts = b.column(1).as_primitive::<TimestampMillisecondType>();
        let score = b.column(2).as_primitive::<Int64Type>();
        let level = utf8(b.column(3));
        for i in 0..b.num_rows() {
            let key = (id.value(i).to_string(), ts.value(i));
            let (want_score, want_level) = expected[&key];
            assert_eq!(
                (score.value(i), level.value(i)),
                (want_score, want_level),
                "{key:?}"
            );
            *levels.entry(level.value(i).to_string()).or_default() += 1;
            seen += 1;
        }
    }
    assert_eq!(
        seen, 100_000,
        "the physiological filter keeps every simulated reading"
    );
    // The simulation must exercise every band, or this test proves little.
    for band in ["low", "low-medium", "medium", "high"] {
        assert!(
            levels.get(band).copied().unwrap_or(0) > 0,
            "no `{band}` rows: {levels:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projection_filter_and_chained_transforms() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw");
    let out = dir.path().join("out");
    let yaml = format!(
        r#"
name: chain
sources:
  monitors:
    kind: simulator
    patients: 10
    pacing: unpaced
    limit: 20000
    episodes_per_hour: 40
transforms:
  # Declared before its input on purpose: order comes from the SQL.
  flagged:
    sql: SELECT patient_id, ts, pulse_pressure FROM derived WHERE spo2 < 95
  derived:
    sql: |
      SELECT patient_id, ts, spo2, systolic_bp - diastolic_bp AS pulse_pressure
      FROM monitors
sinks:
  raw:
    kind: parquet
    input: monitors
    path: "{}"
  out:
    kind: parquet
    input: flagged
    path: "{}"
"#,
        raw.display(),
        out.display()
    );
    run_pipeline(&write_pipeline(dir.path(), &yaml)).await;
    let want = scalar_i64(&raw, "SELECT count(*) FROM t WHERE spo2 < 95").await;
    assert!(
        want > 0 && want < 20000,
        "the filter must select some rows but not all, got {want}"
    );
    assert_eq!(scalar_i64(&out, "SELECT count(*) FROM t").await, want);
    let want_sum = scalar_i64(
        &raw,
        "SELECT sum(systolic_bp - diastolic_bp) FROM t WHERE spo2 < 95",
    )
    .await;
    assert_eq!(
        scalar_i64(&out, "SELECT sum(pulse_pressure) FROM t").await,
        want_sum
    );
    let columns: Vec<String> = sql(&out, "SELECT * FROM t LIMIT 1").await[0]
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(columns, ["patient_id", "ts", "pulse_pressure"]);
}
