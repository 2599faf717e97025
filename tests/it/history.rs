//! The dashboard's history endpoints over a stored dataset: one patient's
//! trend downsampled in SQL (exact buckets, both sides of midnight, ids
//! that are not SQL-safe), the ward's NEWS2 sparklines, clear errors for
//! ranges that cannot be served; and alert acknowledgement: who may, once,
//! recorded in the `alert_acks` dataset.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use reqwest::StatusCode;
use serde_json::{Value, json};
use vitalflow::acks::AckLog;
use vitalflow::auth::Role;
use vitalflow::query::{Dataset, QueryLimits, QuerySession};
use vitalflow::server::AppState;
use vitalflow::storage::Location;

use super::support::*;

fn vitals_schema() -> SchemaRef {
    let int = |n: &str| Field::new(n, DataType::Int64, false);
    Arc::new(Schema::new(vec![
        Field::new("patient_id", DataType::Utf8, false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        int("heart_rate"),
        int("spo2"),
        int("systolic_bp"),
        int("diastolic_bp"),
        int("respiratory_rate"),
        Field::new("temperature", DataType::Float64, false),
        int("news2_score"),
        Field::new("risk_level", DataType::Utf8, false),
    ]))
}

async fn session(datasets: &[Dataset]) -> QuerySession {
    QuerySession::with_limits(
        datasets,
        QueryLimits {
            memory: Some(256 << 20),
            threads: 2,
        },
    )
    .await
    .unwrap()
}

fn vitals(dir: &std::path::Path) -> Dataset {
    Dataset {
        schema: Some(vitals_schema()),
        ..Dataset::at("vitals", Location::Local(dir.to_path_buf()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_is_downsampled_in_sql_across_days_for_any_patient_id() {
    let dir = tempfile::tempdir().unwrap();
    // One reading a second from 23:30 to 00:30 UTC (two date partitions)
    // for two patients; the second's id is not SQL-safe.
    let from = chrono::DateTime::parse_from_rfc3339("2026-11-28T23:30:00Z")
        .unwrap()
        .timestamp_millis();
    let mut rows = Vec::new();
    for s in 0..3600i64 {
        let ts = from + s * 1000;
        rows.push(
            json!({"patient_id": "P1", "ts": ts, "heart_rate": 60 + s % 60,
            "spo2": 95, "news2_score": if s == 1234 { 9 } else { 1 }, "temperature": 37.25}),
        );
        rows.push(json!({"patient_id": "O'Brien; --", "ts": ts, "heart_rate": 140, "spo2": 88}));
    }
    write_vitals(dir.path(), &vitals_schema(), rows);
    let viewer = token_for("viewer", &[Role::Viewer]);
    let server = start_server(
        AppState::new(Err("no model".into()))
            .with_datasets(Ok(session(&[vitals(dir.path())]).await)),
    )
    .await;
    let http = client_with(&viewer);
    let get = |path: String| {
        let http = http.clone();
        let base = server.base.clone();
        async move {
            let response = http.get(format!("{base}{path}")).send().await.unwrap();
            let status = response.status();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let to = from + 3_600_000;

    let (status, one) = get(format!(
        "/api/patients/P1/history?from={from}&to={to}&step=1m"
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{one}");
    let t = one["t"].as_array().unwrap();
    assert_eq!(t.len(), 60, "one bucket a minute over both days");
    assert_eq!(t[0], json!(from));
    assert_eq!(t[59], json!(to - 60_000));
    assert!(one["readings"].as_array().unwrap().iter().all(|n| n == 60));
    let hr = &one["series"]["heart_rate"];
    assert!(hr["min"].as_array().unwrap().iter().all(|v| v == 60.0));
    assert!(hr["max"].as_array().unwrap().iter().all(|v| v == 119.0));
    assert!(hr["avg"].as_array().unwrap().iter().all(|v| v == 89.5));
    assert_eq!(one["series"]["temperature"]["avg"][0], json!(37.25));
    // The one high score shows as the bucket's maximum, not averaged away.
    let news2_max = one["series"]["news2_score"]["max"].as_array().unwrap();
    assert_eq!(news2_max[1234 / 60], json!(9.0));
    assert_eq!(news2_max.iter().filter(|v| **v == 9.0).count(), 1);

    // The id reaches the SQL as a parameter: quotes and comments are data.
    let (status, other) = get(format!(
        "/api/patients/{}/history?from={from}&to={to}&step=1m",
        "O'Brien%3B%20--"
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{other}");
    assert_eq!(other["t"].as_array().unwrap().len(), 60);
    assert_eq!(other["series"]["heart_rate"]["avg"][0], json!(140.0));

    // Without a step: at most 500 points, in a readable step.
    let (_, auto) = get(
        "/api/patients/P1/history?from=2026-11-28T23:30:00Z&to=2026-11-29T00:30:00Z".to_string(),
    )
    .await;
    assert_eq!(auto["step_ms"], json!(10_000));
    assert_eq!(auto["t"].as_array().unwrap().len(), 360);

    // A patient without readings: an empty trend, not an error.
    let (status, none) = get(format!("/api/patients/P404/history?from={from}&to={to}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(none["t"], json!([]));

    // Ranges that cannot be served say which parameter and why.
    for (query, field, says) in [
        (
            format!("from={from}&to={}&step=1s", from + 86_400_000),
            "step",
            "points",
        ),
        (format!("from={to}&to={from}"), "from", "before"),
        ("from=yesterday".to_string(), "from", "RFC 3339"),
    ] {
        let (status, body) = get(format!("/api/patients/P1/history?{query}")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
        assert_eq!(body["detail"][0]["loc"], json!(["query", field]), "{query}");
        let msg = body["detail"][0]["msg"].as_str().unwrap();
        assert!(msg.contains(says), "{query}: {msg}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ward_trend_is_every_patients_news2_over_the_last_hour() {
    let dir = tempfile::tempdir().unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let mut rows = Vec::new();
    for i in 0..120i64 {
        // 20 minutes, one reading every 10 s; older readings are out of range.
        let ts = now - 20 * 60_000 + i * 10_000;
        rows.push(json!({"patient_id": "P1", "ts": ts, "news2_score": i / 20}));
        rows.push(json!({"patient_id": "P2", "ts": ts, "news2_score": 2}));
    }
    rows.push(json!({"patient_id": "P3", "ts": now - 2 * 3_600_000, "news2_score": 7}));
    write_vitals(dir.path(), &vitals_schema(), rows);
    // (Tokens are read when the server starts.)
    let viewer = token_for("viewer", &[Role::Viewer]);
    let server = start_server(
        AppState::new(Err("no model".into()))
            .with_datasets(Ok(session(&[vitals(dir.path())]).await)),
    )
    .await;
    let trend: Value = client_with(&viewer)
        .get(format!("{}/api/ward/trend?minutes=60", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        trend["step_ms"],
        json!(120_000),
        "30 buckets an hour: {trend}"
    );
    let patients = trend["patients"].as_object().unwrap();
    assert_eq!(
        patients.keys().collect::<Vec<_>>(),
        ["P1", "P2"],
        "P3 was last seen two hours ago"
    );
    let p1 = patients["P1"]["news2"].as_array().unwrap();
    assert!((10..=11).contains(&p1.len()), "{} buckets", p1.len());
    assert_eq!(p1.last().unwrap(), &json!(5.0));
    assert!(
        patients["P2"]["news2"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v == 2.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clinicians_acknowledge_an_alert_once_and_it_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let acks_dir = dir.path().join("acks");
    let run = vitalflow::sinks::SinkContext::default();
    let config: vitalflow::sinks::live::LiveSinkConfig =
        serde_saphyr::from_str("input: scored").unwrap();
    let hub = run.live.hub("live", &config);
    hub.publish(
        vec![
            json!({"patient_id": "P7", "ts": 1_000, "news2_score": 8, "risk_level": "high"})
                .as_object()
                .unwrap()
                .clone(),
        ],
        "patient_id",
    );
    let datasets = session(&[vitals(&dir.path().join("vitals")), AckLog::table(&acks_dir)]).await;
    // (Tokens are read when the server starts.)
    let viewer = client_with(&token_for("viewer", &[Role::Viewer]));
    let clinician = client_with(&token_for("charge-nurse", &[Role::Clinician]));
    let analyst = client_with(&token_for("analyst", &[Role::Analyst]));
    let server = start_server(
        AppState::new(Err("no model".into()))
            .with_run(&run)
            .with_acks(AckLog::open(&acks_dir).unwrap())
            .with_datasets(Ok(datasets)),
    )
    .await;
    let alerts: Value = viewer
        .get(format!("{}/api/alerts", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(alerts["alerts"][0]["id"], "P7@1000", "{alerts}");
    assert!(alerts["alerts"][0].get("ack").is_none());
    let ack = |client: &reqwest::Client, id: &str, body: Value| {
        client
            .post(format!("{}/api/alerts/{id}/ack", server.base))
            .json(&body)
            .send()
    };
    // Viewers watch; acknowledging is a clinician's.
    let refused = ack(&viewer, "P7@1000", json!({})).await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let long = ack(&clinician, "P7@1000", json!({"note": "x".repeat(501)}))
        .await
        .unwrap();
    assert_eq!(long.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let unknown = ack(&clinician, "P7@2000", json!({})).await.unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);

    // An open dashboard's live stream, to see the acknowledgement arrive.
    let mut stream = viewer
        .get(format!("{}/api/stream", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    let first: Value = ack(&clinician, "P7@1000", json!({"note": "  on my way  "}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(first["already"], json!(false));
    assert!(
        first["ack"]["acked_by"]
            .as_str()
            .unwrap()
            .starts_with("charge-nurse")
    );
    assert_eq!(first["ack"]["note"], "on my way");
    assert_eq!(first["ack"]["level"], "high");
    let again: Value = ack(&clinician, "P7@1000", json!({"note": "me too"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["already"], json!(true));
    // Every open dashboard is told.
    let mut seen = String::new();
    let told = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while let Ok(Some(chunk)) = stream.chunk().await {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if seen.contains("event: ack") && seen.contains("on my way") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(told, Ok(true), "no `ack` event on the live stream: {seen}");
    assert_eq!(
        again["ack"], first["ack"],
        "the first acknowledgement stands"
    );

    let alerts: Value = viewer
        .get(format!("{}/api/alerts", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(alerts["alerts"][0]["ack"], first["ack"]);
    // In the dataset, for analysts, once.
    let stored: Value = analyst
        .post(format!("{}/api/query", server.base))
        .json(&json!({"sql": "SELECT alert_id, patient_id, note FROM alert_acks"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        stored["rows"],
        json!([{"alert_id": "P7@1000", "patient_id": "P7", "note": "on my way"}]),
        "{stored}"
    );
}

/// The shipped rollup (`sql/vitals_trend_1m.sql`) written by a real run,
/// lagging the readings by ten minutes as a live pipeline's does: a trend
/// from rollup + newer readings equals the trend from the readings alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_minutes_come_from_the_rollup_and_merge_exactly_with_newer_readings() {
    use vitalflow::server::api::history::{Window, patient_history};
    let dir = tempfile::tempdir().unwrap();
    let rollup_sql = std::fs::read_to_string("sql/vitals_trend_1m.sql")
        .unwrap()
        .replace(
            "FROM scored",
            "FROM scored WHERE ts < TIMESTAMP '2026-01-01T00:50:00Z'",
        );
    let block = |sql: &str| -> String { sql.lines().map(|l| format!("      {l}\n")).collect() };
    let yaml = format!(
        "name: rollup
sources:
  monitors:
    kind: simulator
    patients: 3
    interval: 1s
    pacing: unpaced
    limit: 10800
    episodes_per_hour: 6
    start: \"2026-01-01T00:00:00Z\"
    event_time: {{column: ts, max_delay: 5s, idle_timeout: 30s}}
transforms:
  scored:
    sql_file: \"{scored}\"
  trend_1m:
    sql: |
{rollup}sinks:
  vitals:
    kind: parquet
    input: scored
    path: \"{out}/vitals\"
    partition_by_date: ts
    sort_by: [patient_id, ts]
  vitals_trend_1m:
    kind: parquet
    input: trend_1m
    path: \"{out}/vitals_trend_1m\"
    partition_by_date: ts
    sort_by: [patient_id, ts]
  late:
    kind: parquet
    input: monitors_late_events
    path: \"{out}/late\"
",
        scored = std::fs::canonicalize("sql/vitals_scored.sql")
            .unwrap()
            .display(),
        rollup = block(&rollup_sql),
        out = dir.path().display(),
    );
    let planned = vitalflow::engine::plan(
        vitalflow::spec::parse(&yaml, &dir.path().join("rollup.yaml")).unwrap(),
    )
    .await
    .unwrap();
    vitalflow::engine::run(
        &planned,
        tokio_util::sync::CancellationToken::new(),
        vitalflow::engine::RunOptions::default(),
    )
    .await
    .unwrap();
    let all = vitalflow::query::datasets_of(&planned).unwrap();
    let only = |names: &[&str]| -> Vec<Dataset> {
        all.iter()
            .filter(|d| names.contains(&d.name.as_str()))
            .cloned()
            .collect()
    };
    let with_rollup = session(&only(&["vitals", "vitals_trend_1m"])).await;
    let readings_only = session(&only(&["vitals"])).await;
    // The rollup alone, readings table empty: what it holds ends at 00:50.
    let mut empty = only(&["vitals"]);
    empty[0].location = Location::Local(dir.path().join("nothing"));
    empty.extend(only(&["vitals_trend_1m"]));
    let rollup_alone = session(&empty).await;

    let from = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .unwrap()
        .timestamp_millis();
    let timeout = std::time::Duration::from_secs(30);
    for step_ms in [60_000, 300_000, 420_000] {
        let window = Window {
            from_ms: from,
            to_ms: from + 3_600_000,
            step_ms,
        };
        for patient in ["P00001", "P00002", "P00003"] {
            let merged = patient_history(&with_rollup, patient, window, timeout)
                .await
                .unwrap();
            let raw = patient_history(&readings_only, patient, window, timeout)
                .await
                .unwrap();
            assert_eq!(merged.t, raw.t, "{patient} step {step_ms}");
            assert_eq!(merged.readings, raw.readings, "{patient} step {step_ms}");
            assert_eq!(merged.readings.iter().sum::<i64>(), 3600);
            for (name, series) in &merged.series {
                let want = &raw.series[name];
                assert_eq!(series.min, want.min, "{patient} {name} min, step {step_ms}");
                assert_eq!(series.max, want.max, "{patient} {name} max, step {step_ms}");
                for (got, want) in series.avg.iter().zip(&want.avg) {
                    let (got, want) = (got.unwrap(), want.unwrap());
                    // Both round to 2 decimals: sums of another order may
                    // round to the neighbouring hundredth.
                    assert!(
                        (got - want).abs() <= 0.011,
                        "{patient} {name} mean {got} vs {want}"
                    );
                }
            }
            let alone = patient_history(&rollup_alone, patient, window, timeout)
                .await
                .unwrap();
            assert_eq!(
                alone.readings.iter().sum::<i64>(),
                50 * 60,
                "{patient}: the rollup holds the first 50 minutes"
            );
        }
    }
    // Steps that are not whole minutes read the readings.
    let window = Window {
        from_ms: from,
        to_ms: from + 3_600_000,
        step_ms: 10_000,
    };
    let alone = patient_history(&rollup_alone, "P00001", window, timeout)
        .await
        .unwrap();
    assert!(
        alone.t.is_empty(),
        "10 s buckets do not come from a per-minute rollup"
    );
}
