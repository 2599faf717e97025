//! Datasets in object stores: a real S3 server (s3s-fs) on loopback, and
//! HDFS as far as it goes without a cluster (an unreachable namenode).

use std::path::Path;
use std::time::Duration;

use arrow::array::AsArray;
use tokio_util::sync::CancellationToken;
use vitalflow::engine::{self, RunOptions};
use vitalflow::query::{QuerySession, datasets_of};
use vitalflow::spec;
use vitalflow::storage::spool::waiting_files;
use vitalflow::storage::status::StoreStatusBoard;

use super::s3_server::{BUCKET, S3Server, stored_objects};
use super::support::*;

const EVENTS: u64 = 60_000;

fn s3_pipeline(name: &str, server: &S3Server, spool: &Path, source: &str, roll: &str) -> String {
    format!(
        r#"
name: {name}
sources:
  monitors:
{source}
transforms:
  passthrough:
    sql: SELECT * FROM monitors
sinks:
  raw:
    kind: parquet
    input: passthrough
    path: s3://{BUCKET}/lake/{name}
    partition_by_date: ts
    sort_by: [patient_id, ts]
    row_group_rows: 3000
    roll:
{roll}
{store}    spool:
      path: "{spool}"
"#,
        store = server.store_yaml("    "),
        spool = spool.display(),
    )
}

async fn session(pipeline: &Path) -> QuerySession {
    let planned = engine::plan(spec::load(pipeline).unwrap()).await.unwrap();
    QuerySession::new(&datasets_of(&planned).unwrap())
        .await
        .unwrap()
}

async fn count(session: &QuerySession, sql: &str) -> i64 {
    let batches = session.ctx.sql(sql).await.unwrap().collect().await.unwrap();
    let column =
        arrow::compute::cast(batches[0].column(0), &arrow::datatypes::DataType::Int64).unwrap();
    column
        .as_primitive::<arrow::datatypes::Int64Type>()
        .value(0)
}

/// Wait until the synchronous `done` is true (see `support::wait_until`).
async fn wait_until_done(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    wait_until(within, what, || std::future::ready(done())).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_writes_rolls_and_queries_a_dataset_in_s3() {
    if require(&S3S_FS).is_none() {
        return;
    }
    let server = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let source = format!(
        "    kind: simulator\n    patients: 37\n    seed: 7\n    pacing: unpaced\n    limit: {EVENTS}\n    batch_rows: 1000\n    start: \"2026-03-01T23:55:00Z\""
    );
    let yaml = s3_pipeline("rolls", &server, &spool, &source, "      max_rows: 7000");
    let pipeline = write_pipeline(dir.path(), &yaml);
    let summary = run_pipeline(&pipeline).await;
    assert_eq!(summary.sinks[0].1.rows, EVENTS);

    // In the bucket, seen on the server's disk: rolled files in both dates.
    let objects = stored_objects(&server.bucket_dir().join("lake/rolls"));
    assert!(objects.len() >= 9, "expected several rolls: {objects:?}");
    assert!(objects.iter().any(|o| o.starts_with("date=2026-03-01/")));
    assert!(objects.iter().any(|o| o.starts_with("date=2026-03-02/")));
    assert!(
        waiting_files(&spool).unwrap().is_empty(),
        "every file uploaded and removed from the spool at the end of the run"
    );

    // Read back from S3: everything, once, with pruning.
    let session = session(&pipeline).await;
    assert_eq!(
        count(&session, "SELECT count(*) FROM raw").await,
        EVENTS as i64
    );
    assert_eq!(
        count(
            &session,
            "SELECT count(*) FROM (SELECT DISTINCT patient_id, ts FROM raw)"
        )
        .await,
        EVENTS as i64
    );
    let before_midnight = count(
        &session,
        "SELECT count(*) FROM raw WHERE ts < TIMESTAMP '2026-03-02T00:00:00Z'",
    )
    .await;
    assert_eq!(
        count(
            &session,
            "SELECT count(*) FROM raw WHERE date = '2026-03-01'"
        )
        .await,
        before_midnight,
        "the date partition holds exactly the rows of its day"
    );
    // A one-minute window: 60,000 rows make 20+ row groups of 3,000 (about
    // 80 s each); statistics read from S3 skip files and row groups outside it.
    let window = "SELECT count(*) FROM raw WHERE ts >= TIMESTAMP '2026-03-02T00:05:00Z' AND ts < TIMESTAMP '2026-03-02T00:06:00Z' AND heart_rate >= 0";
    let (_, groups_pruned, groups_kept) = super::cli_query::run_and_measure_pruning(
        &session.ctx,
        window,
        "row_groups_pruned_statistics",
    )
    .await;
    let (_, files_pruned, files_kept) = super::cli_query::run_and_measure_pruning(
        &session.ctx,
        window,
        "files_ranges_pruned_statistics",
    )
    .await;
    assert!(
        groups_kept <= 4 && files_pruned >= 5,
        "pruning over S3: row groups kept {groups_kept} (pruned {groups_pruned}), files kept {files_kept} (pruned {files_pruned})"
    );
    assert!(session.take_warnings().is_empty());

    // The CLI reads the same dataset straight from the store.
    let output = std::process::Command::new(binary())
        .arg("query")
        .arg("--pipeline")
        .arg(&pipeline)
        .arg("--format")
        .arg("csv")
        .arg("SELECT count(*) AS n, count(DISTINCT patient_id) AS patients FROM raw")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(stdout.trim(), format!("n,patients\n{EVENTS},37"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outage_spools_files_and_uploads_each_exactly_once_when_it_returns() {
    let _ = vitalflow::telemetry::metrics::handle();
    if require(&S3S_FS).is_none() {
        return;
    }
    let mut server = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    // 500 readings/s, a file a second.
    let source = "    kind: simulator\n    patients: 50\n    interval: 100ms\n    seed: 11";
    let yaml = s3_pipeline("outage", &server, &spool, source, "      max_age: 1s");
    let pipeline = write_pipeline(dir.path(), &yaml);
    let planned = engine::plan(spec::load(&pipeline).unwrap()).await.unwrap();
    let stop = CancellationToken::new();
    let stores = StoreStatusBoard::default();
    let options = run_options(&stores);
    let run = {
        let stop = stop.clone();
        tokio::spawn(async move { engine::run(&planned, stop, options).await })
    };
    let target = format!("s3://{BUCKET}/lake/outage");
    let bucket = server.bucket_dir().join("lake/outage");
    let target_state = |degraded: bool| {
        let target = target.clone();
        let stores = stores.clone();
        move || {
            stores
                .all()
                .iter()
                .any(|s| s.target == target && s.is_degraded() == degraded)
        }
    };

    wait_until_done("uploads", Duration::from_secs(30), || {
        stored_objects(&bucket).len() >= 2
    })
    .await;
    server.stop();
    let uploaded_before = stored_objects(&bucket).len();
    wait_until_done(
        "files to wait in the spool",
        Duration::from_secs(60),
        || waiting_files(&spool).map(|f| f.len()).unwrap_or(0) >= 3,
    )
    .await;
    wait_until_done(
        "degraded status",
        Duration::from_secs(30),
        target_state(true),
    )
    .await;
    let degraded = stores
        .all()
        .into_iter()
        .find(|s| s.target == target)
        .unwrap();
    assert!(
        degraded.last_error.is_some() && degraded.degraded_since.is_some(),
        "{degraded:?}"
    );

    // Meanwhile, queries see the spooled files and say the rest is missing.
    let during = session(&pipeline).await;
    let spooled_rows = count(&during, "SELECT count(*) FROM raw").await;
    assert!(
        spooled_rows > 0,
        "spooled rows are queryable during the outage"
    );
    let warnings = during.take_warnings();
    assert!(
        warnings.iter().any(|w| w.contains("spool")),
        "a partial result says so: {warnings:?}"
    );
    // Over HTTP too: the answer of `/api/query` carries its own warnings.
    let served = start_server(
        vitalflow::server::AppState::new(Err("no model in this test".into()))
            .with_datasets(Ok(session(&pipeline).await)),
    )
    .await;
    let http_query = || {
        let url = format!("{}/api/query", served.base);
        async move {
            client()
                .post(url)
                .json(&serde_json::json!({"sql": "SELECT count(*) AS n FROM raw"}))
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    let partial = http_query().await;
    assert!(partial["rows"][0]["n"].as_u64().unwrap() > 0, "{partial}");
    let said = partial["warnings"].as_array().unwrap();
    assert!(
        said.iter().any(|w| w.as_str().unwrap().contains("spool")),
        "{partial}"
    );

    server.spawn();
    wait_until_done("the spool to drain", Duration::from_secs(90), || {
        waiting_files(&spool).map(|f| f.is_empty()).unwrap_or(false)
            && stored_objects(&bucket).len() > uploaded_before + 2
    })
    .await;
    wait_until_done("ok status", Duration::from_secs(30), target_state(false)).await;
    // The same server's next query reads the store again: no warning left
    // over from the outage's queries.
    let whole = http_query().await;
    assert_eq!(whole["warnings"], serde_json::json!([]), "{whole}");
    drop(served);
    stop.cancel();
    let summary = run.await.unwrap().unwrap();
    let produced = summary.records_in();
    assert!(produced > 2000, "{produced}");
    assert!(waiting_files(&spool).unwrap().is_empty());

    let after = session(&pipeline).await;
    assert_eq!(
        count(&after, "SELECT count(*) FROM raw").await,
        produced as i64,
        "nothing lost"
    );
    assert_eq!(
        count(
            &after,
            "SELECT count(*) FROM (SELECT DISTINCT patient_id, ts FROM raw)"
        )
        .await,
        produced as i64,
        "nothing twice"
    );
    assert!(after.take_warnings().is_empty());
    let metrics = vitalflow::telemetry::metrics::render();
    assert!(
        metrics.contains("vitalflow_store_upload_errors_total{sink=\"raw\"}"),
        "upload failures are counted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_spooled_while_the_store_is_down_are_uploaded_and_a_full_spool_pauses_the_run() {
    if require(&S3S_FS).is_none() {
        return;
    }
    let mut server = S3Server::start();
    server.stop();
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let first = "    kind: simulator\n    patients: 20\n    seed: 1\n    pacing: unpaced\n    limit: 20000\n    start: \"2026-05-01T00:00:00Z\"";
    let yaml = s3_pipeline("nextrun", &server, &spool, first, "      max_rows: 5000");
    let pipeline = write_pipeline(dir.path(), &yaml);
    let summary = run_pipeline(&pipeline).await;
    assert_eq!(
        summary.sinks[0].1.rows, 20_000,
        "the run completes with the store down"
    );
    let waiting = waiting_files(&spool).unwrap();
    assert!(
        waiting.len() >= 4,
        "every file waits in the spool: {waiting:?}"
    );

    // A spool that is already full pauses the pipeline instead of stopping
    // it: the sink waits for room, /health and the status say so.
    let small = yaml.replace("    spool:\n", "    spool:\n      max_bytes: 64KiB\n");
    let small = small
        .replace("limit: 20000", "limit: 100")
        .replace("seed: 1", "seed: 2");
    let full_pipeline = dir.path().join("full.yaml");
    std::fs::write(&full_pipeline, &small).unwrap();
    let waiting_bytes: u64 = waiting.iter().map(|f| f.bytes).sum();
    // If compression ever makes the files this small, say so instead of
    // passing vacuously.
    assert!(
        waiting_bytes >= 64 * 1024,
        "spooled files are only {waiting_bytes} bytes; raise the test's volume"
    );
    let target = format!("s3://{BUCKET}/lake/nextrun");
    let stores = StoreStatusBoard::default();
    let paused = || {
        stores
            .all()
            .into_iter()
            .any(|s| s.target == target && s.paused && s.is_degraded())
    };
    let planned = engine::plan(spec::load(&full_pipeline).unwrap())
        .await
        .unwrap();
    // Told to stop while paused: it stops, says why, and loses nothing.
    let stop = CancellationToken::new();
    let run = {
        let stop = stop.clone();
        let options = run_options(&stores);
        tokio::spawn(async move { engine::run(&planned, stop, options).await })
    };
    wait_until_done(
        "the sink to pause on the full spool",
        Duration::from_secs(60),
        paused,
    )
    .await;
    assert!(
        !run.is_finished(),
        "a full spool pauses, it does not stop the run"
    );
    stop.cancel();
    let error = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("a paused run stops within 30 s when told to")
        .unwrap()
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("spool") && error.contains("is full"),
        "{error}"
    );
    assert_eq!(
        waiting_files(&spool).unwrap(),
        waiting,
        "stopping while paused loses nothing"
    );

    // Paused again, then the store comes back: the run resumes by itself,
    // uploads what waited and finishes with every row.
    let planned = engine::plan(spec::load(&full_pipeline).unwrap())
        .await
        .unwrap();
    let options = run_options(&stores);
    let run =
        tokio::spawn(async move { engine::run(&planned, CancellationToken::new(), options).await });
    wait_until_done("the sink to pause again", Duration::from_secs(60), paused).await;
    server.spawn();
    let summary = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the run resumes once the store is back")
        .unwrap()
        .unwrap();
    assert_eq!(summary.sinks[0].1.rows, 100);
    assert!(!paused(), "the status no longer says paused");

    // The next run uploads its own rows too.
    let second = yaml
        .replace("seed: 1", "seed: 3")
        .replace("2026-05-01T00:00:00Z", "2026-05-02T00:00:00Z");
    let pipeline = write_pipeline(dir.path(), &second);
    run_pipeline(&pipeline).await;
    assert!(waiting_files(&spool).unwrap().is_empty());
    let objects = stored_objects(&server.bucket_dir().join("lake/nextrun"));
    assert!(objects.len() >= waiting.len() + 5, "{objects:?}");
    let session = session(&pipeline).await;
    assert_eq!(count(&session, "SELECT count(*) FROM raw").await, 40_100);
    assert_eq!(
        count(
            &session,
            "SELECT count(*) FROM raw WHERE date = '2026-05-01'"
        )
        .await,
        20_100
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_namenode_sends_files_to_the_spool_and_queries_read_them() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    // Nothing listens on a freshly closed port.
    let port = crate::support::free_port();
    let yaml = format!(
        r#"
name: hdfs-down
sources:
  monitors:
    kind: simulator
    patients: 10
    seed: 5
    pacing: unpaced
    limit: 3000
transforms:
  passthrough:
    sql: SELECT * FROM monitors
sinks:
  raw:
    kind: parquet
    input: passthrough
    path: hdfs://127.0.0.1:{port}/lake/vitals
    partition_by_date: ts
    store:
      dfs.client.failover.max.attempts: "0"
    spool:
      path: "{}"
"#,
        spool.display()
    );
    let pipeline = write_pipeline(dir.path(), &yaml);
    let planned = engine::plan(spec::load(&pipeline).unwrap()).await.unwrap();
    let stores = StoreStatusBoard::default();
    let options = RunOptions {
        drain_timeout: Duration::from_secs(20),
        ..run_options(&stores)
    };
    let summary = engine::run(&planned, CancellationToken::new(), options)
        .await
        .unwrap();
    assert_eq!(summary.sinks[0].1.rows, 3000);
    assert!(!waiting_files(&spool).unwrap().is_empty(), "kept locally");
    let target = format!("hdfs://127.0.0.1:{port}/lake/vitals");
    let state = stores
        .all()
        .into_iter()
        .find(|s| s.target == target)
        .unwrap();
    assert!(state.is_degraded(), "{state:?}");

    let session = session(&pipeline).await;
    assert_eq!(count(&session, "SELECT count(*) FROM raw").await, 3000);
    assert!(!session.take_warnings().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_answers_read_only_sql_over_the_s3_dataset_and_reports_the_store() {
    use serde_json::{Value, json};
    use vitalflow::server::{self, AppState};

    if require(&S3S_FS).is_none() {
        return;
    }
    let server = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let source =
        "    kind: simulator\n    patients: 12\n    seed: 3\n    pacing: unpaced\n    limit: 4800";
    let yaml = s3_pipeline("served", &server, &spool, source, "      max_rows: 1000");
    let pipeline = write_pipeline(dir.path(), &yaml);
    let stores = StoreStatusBoard::default();
    run_pipeline_with(&pipeline, run_options(&stores)).await;

    let listener = server::bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    let state = AppState::new(Err("no model in this test".into()))
        .with_run(&vitalflow::sinks::SinkContext {
            stores,
            ..Default::default()
        })
        .with_datasets(Ok(session(&pipeline).await));
    tokio::spawn(server::serve(
        listener,
        crate::support::secured(state),
        stop.clone(),
    ));
    let client = crate::support::client();
    let post = |body: Value| {
        let (client, url) = (client.clone(), format!("{base}/api/query"));
        async move {
            let response = client.post(url).json(&body).send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };

    let (status, body) =
        post(json!({"sql": "SELECT patient_id, count(*) AS n FROM raw GROUP BY 1 ORDER BY 1"}))
            .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["row_count"], 12);
    assert_eq!(body["rows"][0], json!({"patient_id": "P00001", "n": 400}));
    assert_eq!(body["columns"][1]["name"], "n");
    assert_eq!(body["truncated"], false);

    // Files published after the server's first query are seen (no stale listing).
    run_pipeline(&pipeline).await;
    let (status, body) = post(json!({"sql": "SELECT count(*) AS n FROM raw"})).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["rows"][0]["n"], 9600,
        "a second run's files are listed: {body}"
    );

    let (status, body) = post(json!({"sql": "SELECT * FROM raw", "max_rows": 10})).await;
    assert_eq!(status, 200);
    assert_eq!(
        (body["row_count"].as_u64(), body["truncated"].as_bool()),
        (Some(10), Some(true))
    );

    for statement in [
        "DROP TABLE raw",
        "CREATE TABLE x AS SELECT 1",
        "INSERT INTO raw SELECT * FROM raw",
    ] {
        let (status, body) = post(json!({"sql": statement})).await;
        assert_eq!(status, 400, "{statement} must be refused: {body}");
        assert_eq!(body["detail"][0]["loc"], json!(["body", "sql"]));
    }
    let (status, body) = post(json!({"sql": "SELECT hart_rate FROM raw"})).await;
    assert_eq!(status, 400);
    assert!(
        body["detail"][0]["msg"]
            .as_str()
            .unwrap()
            .contains("hart_rate"),
        "{body}"
    );

    // /health lists the remote dataset this process wrote.
    let health: Value = client
        .get(format!("{base}/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let target = format!("s3://{BUCKET}/lake/served");
    let store = health["storage"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["target"] == target.as_str())
        .unwrap_or_else(|| panic!("{health}"));
    assert_eq!(store["state"], "ok");
    assert_eq!(store["paused"], false);
    // States and counts only: no local paths, no upstream error text.
    assert!(
        store.get("spool").is_none() && store.get("last_error").is_none(),
        "{store}"
    );
    assert_eq!(store["waiting_files"], 0);
    assert!(store["uploaded_files"].as_u64().unwrap() >= 4, "{store}");
    stop.cancel();
}

/// Run options whose forwarders report to `stores` (what `/health` reads).
fn run_options(stores: &StoreStatusBoard) -> RunOptions {
    RunOptions {
        sinks: vitalflow::sinks::SinkContext {
            stores: stores.clone(),
            ..Default::default()
        },
        ..RunOptions::default()
    }
}
