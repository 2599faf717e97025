//! The dashboard in a real headless Chromium (through chromedriver):
//! live cards, event-to-screen latency, the prediction form with its SHAP
//! chart, validation messages, and the page without a pipeline. Saves a
//! screenshot to `target/test-artifacts/dashboard.png`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use vitalflow::engine::{self, RunOptions};
use vitalflow::models::RiskModel;
use vitalflow::server::{self, AppState};
use vitalflow::spec;

use super::support::*;

/// chromedriver and the Chromium it starts, in one process group: dropping
/// it (the test passed, failed or panicked) kills them all, and then any
/// process still using this browser's profile directory.
struct Driver {
    process: ChildGuard,
    profile: std::path::PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.process.kill();
        for pid in processes_mentioning(&self.profile.display().to_string()) {
            // SAFETY: kill(2) on a process found by its command line.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }
}

/// How long the page may take to show what a test waits for.
const UI: Duration = Duration::from_secs(20);

/// chromedriver and Chromium, if installed (else the test is skipped, or
/// fails under `VITALFLOW_TEST_REQUIRE_ALL`: see `support::require`).
struct Browser {
    chromedriver: PathBuf,
    chromium: PathBuf,
}

impl Browser {
    fn required() -> Option<Self> {
        Some(Self {
            chromedriver: require(&CHROMEDRIVER)?,
            chromium: require(&CHROMIUM)?,
        })
    }
}

async fn start_browser(browser: &Browser, profile: &Path) -> (Driver, Client) {
    let port = free_port();
    let driver = Driver {
        process: ChildGuard::spawn(
            Command::new(&browser.chromedriver)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )
        .unwrap(),
        profile: profile.to_path_buf(),
    };
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": browser.chromium.display().to_string(),
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--no-first-run", "--window-size=1500,1100", format!("--user-data-dir={}", profile.display())]
        }),
    );
    wait_until(
        Duration::from_secs(30),
        "chromedriver to listen",
        || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        },
    )
    .await;
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let client = ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .unwrap_or_else(|e| panic!("cannot start chromium through chromedriver: {e}"));
    (driver, client)
}

async fn text(client: &Client, css: &str) -> String {
    client
        .find(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_a_real_browser() {
    let Some(browser) = Browser::required() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        r#"
name: browser
sources:
  monitors:
    kind: simulator
    patients: 24
    interval: 250ms
    episodes_per_hour: 60
transforms:
  scored:
    sql_file: "{}"
sinks:
  vitals:
    kind: parquet
    input: scored
    path: "{}"
  live:
    kind: live
    input: scored
"#,
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
    // The pipeline and the server share the run's live view, as in `up`.
    let run = vitalflow::sinks::SinkContext::default();
    let options = RunOptions {
        sinks: run.clone(),
        ..RunOptions::default()
    };
    let pipeline = tokio::spawn(async move { engine::run(&planned, pipeline_stop, options).await });

    let listener = server::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let model =
        RiskModel::load(std::path::Path::new("models/diabetes_rf.onnx")).map_err(|e| e.to_string());
    // A clinician (the prediction form needs the model's role).
    let token = crate::support::token_for("nurse", &[vitalflow::auth::Role::Clinician]);
    tokio::spawn(server::serve(
        listener,
        crate::support::secured(AppState::new(model).with_run(&run)),
        stop.clone(),
    ));

    let (_driver, client) = start_browser(&browser, &dir.path().join("profile")).await;
    // Without a session the dashboard sends the browser to the login page.
    client.goto(&base).await.unwrap();
    assert!(
        client.current_url().await.unwrap().path() == "/login",
        "not sent to the login page"
    );
    log_in(&client, &token).await;

    // The ward fills with every patient, from live data.
    wait_until(UI, "24 patients in the ward table", || async {
        client
            .find_all(Locator::Css("#ward-table tbody tr[data-patient]"))
            .await
            .map(|r| r.len() == 24)
            .unwrap_or(false)
    })
    .await;
    assert_eq!(text(&client, "#connection").await, "live");

    // The patient panel updates by itself.
    wait_until(UI, "a selected patient", || async {
        text(&client, "#patient-id").await != "—"
    })
    .await;
    let first = text(&client, "#patient-ts").await;
    wait_until(UI, "the patient's cards to update", || async {
        text(&client, "#patient-ts").await != first
    })
    .await;
    for card in [
        "heart_rate",
        "spo2",
        "systolic_bp",
        "diastolic_bp",
        "respiratory_rate",
        "news2_score",
    ] {
        let value = text(&client, &format!("#card-{card} .card-value")).await;
        assert!(value.parse::<f64>().is_ok(), "card {card} shows `{value}`");
    }
    wait_until(UI, "20 recent readings", || async {
        client
            .find_all(Locator::Css("#recent-table tbody tr"))
            .await
            .map(|r| r.len() >= 3)
            .unwrap_or(false)
    })
    .await;
    wait_until(UI, "the freshness pill to say fresh", || async {
        text(&client, "#freshness").await.starts_with("fresh")
    })
    .await;

    // Event time -> on screen, measured in the page over at least 100
    // readings.
    let samples = || async {
        let value = client
            .execute("return window.__vitalflow.latencies;", vec![])
            .await
            .unwrap();
        serde_json::from_value::<Vec<f64>>(value).unwrap()
    };
    wait_until(UI, "100 latency samples", || async {
        samples().await.len() > 100
    })
    .await;
    let mut latencies = samples().await;
    latencies.sort_by(f64::total_cmp);
    let p95 = latencies[latencies.len() * 95 / 100];
    println!(
        "dashboard event -> screen latency: p50 {:.0} ms, p95 {p95:.0} ms over {} readings",
        latencies[latencies.len() / 2],
        latencies.len()
    );
    assert!(p95 < 1000.0, "p95 event-to-screen latency {p95} ms");

    // The prediction form: a result and a SHAP chart with one bar per feature.
    client
        .find(Locator::Css("#predict-form button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_until(UI, "a prediction", || async {
        text(&client, "#result-probability").await.ends_with('%')
    })
    .await;
    let bars = client
        .find_all(Locator::Css("#shap-chart rect.shap-bar"))
        .await
        .unwrap();
    assert_eq!(bars.len(), 8);
    let level = text(&client, "#result-level").await.to_lowercase();
    assert!(
        ["low", "moderate", "high"].contains(&level.as_str()),
        "{level}"
    );

    std::fs::create_dir_all("target/test-artifacts").unwrap();
    let png = client.screenshot().await.unwrap();
    std::fs::write("target/test-artifacts/dashboard.png", png).unwrap();

    // An invalid input shows the server's validation message next to it.
    let glucose = client.find(Locator::Css("#input-glucose")).await.unwrap();
    glucose.clear().await.unwrap();
    glucose.send_keys("999").await.unwrap();
    client
        .find(Locator::Css("#predict-form button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_until(UI, "the glucose error", || async {
        text(&client, "#error-glucose")
            .await
            .contains("at most 300")
    })
    .await;
    assert!(text(&client, "#predict-error").await.contains("glucose"));

    // Freshness follows arrivals, not only its timer: with the timer
    // stopped, the next reading alone makes the pill say fresh again.
    client
        .execute(
            "clearInterval(window.__vitalflow.freshnessTimer);
             document.getElementById('freshness').textContent = 'timer stopped';",
            vec![],
        )
        .await
        .unwrap();
    wait_until(UI, "a reading to refresh the freshness pill", || async {
        text(&client, "#freshness").await.starts_with("fresh")
    })
    .await;

    // Logging out ends the session: back at the login page, and the
    // page's own requests are refused from then on.
    client
        .find(Locator::Css("#logout"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_until(UI, "the login page after logging out", || async {
        client
            .current_url()
            .await
            .map(|u| u.path() == "/login")
            .unwrap_or(false)
    })
    .await;
    let status = client
        .execute("return fetch('/api/ward').then((r) => r.status);", vec![])
        .await
        .unwrap();
    assert_eq!(status, serde_json::json!(401), "the ward after logout");
    client.goto(&base).await.unwrap();
    assert_eq!(client.current_url().await.unwrap().path(), "/login");

    // Stopping the pipeline: the page says the data is no longer live.
    stop.cancel();
    pipeline.await.unwrap().unwrap();
    client.close().await.unwrap();
}

/// Log in through the login form with `token`; returns once the dashboard shows.
async fn log_in(client: &fantoccini::Client, token: &str) {
    let input = client.find(Locator::Css("#token")).await.unwrap();
    input.send_keys(token).await.unwrap();
    client
        .find(Locator::Css("#login-form button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_until(UI, "the dashboard after logging in", || async {
        client.find(Locator::Css("#ward-table")).await.is_ok()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_without_pipeline_or_model_explains_itself() {
    let Some(browser) = Browser::required() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _server = ChildGuard::spawn(Command::new(binary()).args([
        "--log",
        "warn",
        "serve",
        "--addr",
        &format!("127.0.0.1:{port}"),
        "--model",
        "models/missing.onnx",
        "--tokens",
        &crate::support::credentials().tokens.display().to_string(),
        "--audit-dir",
        &dir.path().join("audit").display().to_string(),
    ]))
    .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let (_driver, client) = start_browser(&browser, &dir.path().join("profile")).await;
    wait_until(UI, "the server", || async {
        reqwest::get(format!("{base}/health")).await.is_ok()
    })
    .await;
    client
        .goto(&format!(
            "{base}/login?token={}",
            crate::support::credentials().admin
        ))
        .await
        .unwrap();
    wait_until(UI, "the no-pipeline banner", || async {
        text(&client, "#banner-error")
            .await
            .contains("pipeline is not running")
    })
    .await;
    assert_eq!(text(&client, "#freshness").await, "no data yet");
    client
        .find(Locator::Css("#predict-form button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_until(UI, "the model error", || async {
        text(&client, "#predict-error")
            .await
            .contains("model not loaded")
    })
    .await;
    client.close().await.unwrap();
}

/// What a failing test does: drop the browser without closing its session.
/// chromedriver, Chromium and every Chromium helper must end with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_browser_leaves_no_process_behind() {
    let Some(browser) = Browser::required() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("profile");
    let needle = profile.display().to_string();
    let (driver, client) = start_browser(&browser, &profile).await;
    client.goto("about:blank").await.unwrap();
    assert!(
        !processes_mentioning(&needle).is_empty(),
        "Chromium should be running with its profile {needle}"
    );
    drop(client);
    drop(driver);
    let gone = poll_until(Duration::from_secs(10), || async {
        processes_mentioning(&needle).is_empty().then_some(())
    })
    .await;
    assert!(
        gone.is_some(),
        "timed out after 10 s waiting for the browser's processes to end: still alive {:?}",
        processes_mentioning(&needle)
    );
}
