//! A real Prometheus scrapes a running vitalflow (pipeline + server) with
//! `config/prometheus.yml`, and PromQL through its HTTP API returns the
//! expected series with plausible values.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;
use vitalflow::engine::{self, RunOptions};
use vitalflow::models::RiskModel;
use vitalflow::server::{self, AppState};
use vitalflow::spec;

use crate::support::{ChildGuard, PROMETHEUS, free_port, require, wait_until};

async fn promql(client: &reqwest::Client, prometheus: &str, query: &str) -> Vec<Value> {
    let response: Value = client
        .get(format!("{prometheus}/api/v1/query"))
        .query(&[("query", query)])
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map(|r| r.json())
        .unwrap_or_else(|e| panic!("{query}: {e}"))
        .await
        .unwrap();
    response["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn value_of(sample: &Value) -> f64 {
    sample["value"][1].as_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_pipeline_and_server_metrics() {
    let Some(binary) = require(&PROMETHEUS) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();

    // vitalflow: a paced pipeline and the server, in this process.
    let yaml = format!(
        "name: scrape\nsources:\n  monitors:\n    kind: simulator\n    patients: 20\n    interval: 100ms\ntransforms:\n  scored:\n    sql_file: \"{}\"\nsinks:\n  vitals:\n    kind: parquet\n    input: scored\n    path: \"{}\"\n    roll: {{max_age: 1s}}\n",
        std::fs::canonicalize("sql/vitals_scored.sql")
            .unwrap()
            .display(),
        dir.path().join("vitals").display()
    );
    let planned = engine::plan(spec::parse(&yaml, &dir.path().join("p.yaml")).unwrap())
        .await
        .unwrap();
    let stop = CancellationToken::new();
    let pipeline_stop = stop.clone();
    tokio::spawn(async move { engine::run(&planned, pipeline_stop, RunOptions::default()).await });
    let listener = server::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let target = listener.local_addr().unwrap();
    let model =
        RiskModel::load(std::path::Path::new("models/diabetes_rf.onnx")).map_err(|e| e.to_string());
    tokio::spawn(server::serve(
        listener,
        crate::support::secured(AppState::new(model)),
        stop.clone(),
    ));
    let client = crate::support::client();
    for _ in 0..25 {
        let body = r#"{"pregnancies": 1, "glucose": 100, "blood_pressure": 70, "skin_thickness": 20, "insulin": 80, "bmi": 25, "diabetes_pedigree_function": 0.3, "age": 30}"#;
        let status = client
            .post(format!("http://{target}/predict"))
            .body(body)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200);
    }

    // Prometheus with the shipped config, pointed at this process, scraping fast.
    let shipped = std::fs::read_to_string("config/prometheus.yml").unwrap();
    assert!(
        shipped.contains("vitalflow:8080"),
        "config/prometheus.yml must target the compose service"
    );
    // The scraper's own token, with the `metrics` role only.
    let token = crate::support::token_for("prometheus", &[vitalflow::auth::Role::Metrics]);
    let token_file = dir.path().join("metrics_token");
    std::fs::write(&token_file, &token).unwrap();
    assert!(
        shipped.contains("credentials_file: /run/vitalflow-secrets/metrics_token"),
        "config/prometheus.yml must scrape with a bearer token"
    );
    let config = shipped
        .replace(
            "/run/vitalflow-secrets/metrics_token",
            &token_file.display().to_string(),
        )
        .replace("vitalflow:8080", &target.to_string())
        .replace("scrape_interval: 5s", "scrape_interval: 1s");
    let config_path = dir.path().join("prometheus.yml");
    std::fs::write(&config_path, config).unwrap();
    let port = free_port();
    let _prometheus = ChildGuard::spawn(
        Command::new(&binary)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
    .unwrap();
    let prometheus = format!("http://127.0.0.1:{port}");

    wait_until(
        Duration::from_secs(240),
        "prometheus to be ready and to have scraped vitalflow's events",
        || async {
            let up = match client.get(format!("{prometheus}/-/ready")).send().await {
                Ok(r) if r.status().is_success() => {
                    promql(&client, &prometheus, "up{job=\"vitalflow\"}").await
                }
                _ => Vec::new(),
            };
            let events = if up.first().map(value_of) == Some(1.0) {
                promql(
                    &client,
                    &prometheus,
                    "vitalflow_source_events_total{pipeline=\"scrape\"}",
                )
                .await
            } else {
                Vec::new()
            };
            events.first().map(value_of).unwrap_or(0.0) > 0.0
        },
    )
    .await;

    let requests = promql(
        &client,
        &prometheus,
        "sum(vitalflow_http_requests_total{route=\"/predict\",status=\"200\"})",
    )
    .await;
    assert!(value_of(&requests[0]) >= 25.0, "{requests:?}");
    let latency = promql(
        &client,
        &prometheus,
        "histogram_quantile(0.99, sum by (le) (vitalflow_http_request_duration_seconds_bucket{route=\"/predict\"}))",
    )
    .await;
    let p99 = value_of(&latency[0]);
    assert!(p99 > 0.0 && p99 < 1.0, "p99 /predict latency {p99} s");
    let events = promql(
        &client,
        &prometheus,
        "vitalflow_source_events_total{pipeline=\"scrape\",source=\"monitors\"}",
    )
    .await;
    let count = value_of(&events[0]);
    assert!(
        count > 0.0 && count % 20.0 == 0.0,
        "events come in whole ticks of 20 patients: {count}"
    );
    let files = promql(
        &client,
        &prometheus,
        "vitalflow_sink_files_written_total{sink=\"vitals\"}",
    )
    .await;
    assert!(!files.is_empty(), "files written series missing");
    let info = promql(&client, &prometheus, "vitalflow_build_info").await;
    assert_eq!(info[0]["metric"]["version"], env!("CARGO_PKG_VERSION"));
    let model = promql(&client, &prometheus, "vitalflow_model_info").await;
    assert!(
        model[0]["metric"]["model_version"]
            .as_str()
            .unwrap()
            .starts_with("diabetes-rf-1-")
    );
    stop.cancel();
}
