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

/// Readings of one patient at known times, as the scoring SQL's output, in
/// a date-partitioned dataset at `dir`: the history the trend must show.
fn write_history(dir: &Path, schema: &arrow::datatypes::SchemaRef, patient: &str, times: &[i64]) {
    let rows = times
        .iter()
        .enumerate()
        .map(|(i, ts)| {
            // A patient slowly deteriorating: SpO2 falls into the red band.
            json!({
                "patient_id": patient, "ts": ts, "heart_rate": 80 + (i % 20) as i64,
                "spo2": 97 - (i * 8 / times.len()) as i64, "systolic_bp": 120, "diastolic_bp": 80,
                "respiratory_rate": 16, "temperature": 37.0, "consciousness": "A", "on_oxygen": false,
                "news2_score": (i * 4 / times.len()) as i64, "risk_level": "low",
            })
        })
        .collect();
    crate::support::write_vitals(dir, schema, rows);
}

/// Text whose contrast with its background is below WCAG 2.1 AA (4.5:1,
/// 3:1 for large text), measured on the rendered page: every visible
/// element with its own text, against the first opaque background behind it.
const CONTRAST_CHECK: &str = r#"
const channels = (c) => c.match(/[\d.]+/g).map(Number);
const lum = (c) => {
  const [r, g, b] = channels(c).slice(0, 3).map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
};
const background = (el) => {
  for (let e = el; e; e = e.parentElement) {
    const c = channels(getComputedStyle(e).backgroundColor);
    if (c.length < 4 || c[3] > 0.5) return getComputedStyle(e).backgroundColor;
  }
  return "rgb(255, 255, 255)";
};
const fails = []; let checked = 0;
for (const el of document.querySelectorAll("body *")) {
  const own = [...el.childNodes].filter((n) => n.nodeType === 3 && n.textContent.trim()).map((n) => n.textContent.trim()).join(" ");
  if (!own || !el.getClientRects().length) continue;
  const s = getComputedStyle(el);
  if (s.visibility === "hidden" || el.closest("[hidden]")) continue;
  const [a, b] = [lum(s.color), lum(background(el))];
  const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  const size = parseFloat(s.fontSize), large = size >= 24 || (Number(s.fontWeight) >= 700 && size >= 18.66);
  checked++;
  if (ratio < (large ? 3 : 4.5)) fails.push(`${el.tagName}.${el.className} "${own.slice(0, 30)}": ${ratio.toFixed(2)} (${s.color} on ${background(el)})`);
}
return { checked, fails };
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trends_alert_acknowledgement_links_and_contrast_in_a_real_browser() {
    let Some(browser) = Browser::required() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        r#"
name: trends
sources:
  monitors:
    kind: simulator
    patients: 6
    interval: 500ms
    episodes_per_hour: 0
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
        dir.path().join("live-vitals").display()
    );
    let planned = engine::plan(spec::parse(&yaml, &dir.path().join("p.yaml")).unwrap())
        .await
        .unwrap();
    // The stored history the trend reads: P00003, every 20 s from 55 to 5
    // minutes ago (151 readings; the 1 h view's 10 s buckets hold one each).
    let schema = planned.schema_of("scored").unwrap().clone();
    let now = chrono::Utc::now().timestamp_millis();
    let times: Vec<i64> = (0..151).map(|i| now - 55 * 60_000 + i * 20_000).collect();
    let history = dir.path().join("history");
    write_history(&history, &schema, "P00003", &times);
    let acks_dir = dir.path().join("acks");
    let datasets = vitalflow::query::QuerySession::with_limits(
        &[
            vitalflow::query::Dataset {
                schema: Some(schema.clone()),
                ..vitalflow::query::Dataset::at(
                    "vitals",
                    vitalflow::storage::Location::Local(history.clone()),
                )
            },
            vitalflow::acks::AckLog::table(&acks_dir),
        ],
        vitalflow::query::QueryLimits {
            memory: Some(256 << 20),
            threads: 2,
        },
    )
    .await
    .unwrap();

    let stop = CancellationToken::new();
    let pipeline_stop = stop.clone();
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
    let token = crate::support::token_for("nurse", &[vitalflow::auth::Role::Clinician]);
    let acks = vitalflow::acks::AckLog::open(&acks_dir).unwrap();
    let server_stop = CancellationToken::new();
    let server = tokio::spawn(server::serve(
        listener,
        crate::support::secured(
            AppState::new(Err("no model in this test".into()))
                .with_run(&run)
                .with_acks(acks)
                .with_datasets(Ok(datasets)),
        ),
        server_stop.clone(),
    ));

    let (_driver, client) = start_browser(&browser, &dir.path().join("profile")).await;
    client.set_window_size(1280, 800).await.unwrap();
    client.goto(&format!("{base}/login")).await.unwrap();
    log_in(&client, &token).await;

    // A link opens that patient.
    client
        .goto(&format!("{base}/#/patients/P00003"))
        .await
        .unwrap();
    wait_until(UI, "the linked patient to open", || async {
        text(&client, "#patient-id").await == "P00003"
    })
    .await;
    let trend = || async {
        client
            .execute("return window.__vitalflow.trend || {};", vec![])
            .await
            .unwrap()
    };
    // The trend: the 151 stored readings, one point each, drawn.
    wait_until(UI, "the stored history in the trend", || async {
        trend().await["historyPoints"] == json!(151)
    })
    .await;
    assert_eq!(trend().await["step"], json!(10_000), "1 h in 10 s steps");
    let canvases = client
        .find_all(Locator::Css("#trends figure.trend canvas"))
        .await
        .unwrap();
    assert_eq!(canvases.len(), 6, "one chart per vital and NEWS2");
    // New readings extend it, each on screen within a second.
    let before = trend().await["points"].as_u64().unwrap();
    assert!(before >= 151, "{before} points");
    wait_until(UI, "a live reading to extend the trend", || async {
        trend().await["points"].as_u64().unwrap() > before + 1
    })
    .await;
    let latency = trend().await["appendLatencyMs"].as_f64().unwrap();
    assert!(
        latency < 1000.0,
        "a reading reached the trend {latency} ms after its event time"
    );

    // The ward table: sparklines from the stored hour (P00003's) and live.
    wait_until(UI, "P00003's sparkline from the stored hour", || async {
        client
            .execute(
                "const s = document.querySelector('#ward-table tr[data-patient=\"P00003\"] svg.spark');
                 return s ? Number(s.dataset.points || 0) : 0;",
                vec![],
            )
            .await
            .unwrap()
            .as_u64()
            .unwrap_or(0)
            > 25
    })
    .await;

    // Search narrows the table; the keyboard opens a patient.
    let search = client.find(Locator::Css("#search")).await.unwrap();
    search.send_keys("P00005").await.unwrap();
    wait_until(UI, "the search to leave one patient", || async {
        client
            .find_all(Locator::Css("#ward-table tbody tr[data-patient]"))
            .await
            .map(|r| r.len() == 1)
            .unwrap_or(false)
    })
    .await;
    search.send_keys("\u{E015}").await.unwrap(); // ArrowDown: into the table
    client
        .find(Locator::Css("#ward-table"))
        .await
        .unwrap()
        .send_keys("\u{E007}") // Enter
        .await
        .unwrap();
    wait_until(UI, "Enter to open the patient under the cursor", || async {
        client.current_url().await.unwrap().fragment() == Some("/patients/P00005")
            && text(&client, "#patient-id").await == "P00005"
    })
    .await;
    search.clear().await.unwrap();
    search.send_keys("\u{E00C}").await.unwrap(); // Escape: clear the filter

    // A high alert: pinned on top and counted in the title until
    // acknowledged; the acknowledgement survives a reload.
    let hub = run.live.first().unwrap();
    let alert_ts = chrono::Utc::now().timestamp_millis();
    hub.publish(
        vec![
            json!({"patient_id": "P09999", "ts": alert_ts, "news2_score": 9, "risk_level": "high"})
                .as_object()
                .unwrap()
                .clone(),
        ],
        "patient_id",
    );
    let alert_id = format!("P09999@{alert_ts}");
    let item = format!("#alerts li[data-alert=\"{alert_id}\"]");
    wait_until(UI, "the high alert, pinned", || async {
        client
            .find(Locator::Css(&format!("{item}.pinned")))
            .await
            .is_ok()
    })
    .await;
    let pinned_count = || async {
        client
            .find_all(Locator::Css("#alerts li.pinned"))
            .await
            .unwrap()
            .len()
    };
    let title = client.title().await.unwrap();
    assert!(
        title.starts_with(&format!("({}) ", pinned_count().await)),
        "{title}"
    );
    let first = client
        .find(Locator::Css("#alerts li"))
        .await
        .unwrap()
        .attr("class")
        .await
        .unwrap()
        .unwrap_or_default();
    assert!(first.contains("pinned"), "the first alert is `{first}`");

    // The picture for a person to look at: P00003's stored hour, the
    // pinned alert.
    client
        .execute("window.location.hash = '#/patients/P00003';", vec![])
        .await
        .unwrap();
    wait_until(UI, "P00003's trend again", || async {
        trend().await["patient"] == json!("P00003") && trend().await["historyPoints"] == json!(151)
    })
    .await;
    std::fs::create_dir_all("target/test-artifacts").unwrap();
    let png = client.screenshot().await.unwrap();
    std::fs::write("target/test-artifacts/dashboard-trends-1280x800.png", png).unwrap();
    assert_eq!(
        client
            .execute(
                "return document.documentElement.scrollWidth <= window.innerWidth;",
                vec![]
            )
            .await
            .unwrap(),
        json!(true),
        "nothing wider than a 1280 px screen"
    );

    client
        .find(Locator::Css(&format!("{item} input")))
        .await
        .unwrap()
        .send_keys("seen, O2 increased")
        .await
        .unwrap();
    client
        .find(Locator::Css(&format!("{item} .ack-btn")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let acknowledged = || async {
        client
            .find(Locator::Css(&format!("{item} .ack")))
            .await
            .ok()?
            .text()
            .await
            .ok()
    };
    wait_until(UI, "the acknowledgement", || async {
        acknowledged()
            .await
            .is_some_and(|t| t.contains("acknowledged by nurse"))
    })
    .await;
    client.refresh().await.unwrap();
    wait_until(UI, "the acknowledgement after a reload", || async {
        acknowledged().await.is_some_and(|t| {
            t.contains("acknowledged by nurse") && t.contains("seen, O2 increased")
        })
    })
    .await;
    assert!(
        client
            .find(Locator::Css(&format!("{item}.pinned")))
            .await
            .is_err(),
        "an acknowledged alert is not pinned"
    );

    // Contrast meets WCAG AA everywhere on the rendered page.
    let contrast = client.execute(CONTRAST_CHECK, vec![]).await.unwrap();
    assert!(
        contrast["checked"].as_u64().unwrap() > 50,
        "contrast checked on {contrast}"
    );
    assert_eq!(contrast["fails"], json!([]), "text below WCAG AA contrast");

    // A tablet: one column, nothing wider than the screen.
    client.set_window_size(768, 1024).await.unwrap();
    wait_until(
        UI,
        "the tablet layout without horizontal scrolling",
        || async {
            client
                .execute(
                    "return document.documentElement.scrollWidth <= window.innerWidth;",
                    vec![],
                )
                .await
                .unwrap()
                == json!(true)
        },
    )
    .await;
    wait_until(UI, "the trend at tablet width", || async {
        trend().await["patient"] == json!("P00003") && trend().await["historyPoints"] == json!(151)
    })
    .await;
    let png = client.screenshot().await.unwrap();
    std::fs::write("target/test-artifacts/dashboard-tablet-768.png", png).unwrap();
    client.close().await.unwrap();

    // The acknowledgement is in the `alert_acks` dataset, as the server
    // (and an analyst) reads it.
    server_stop.cancel();
    server.await.unwrap().unwrap();
    let reopened = vitalflow::acks::AckLog::open(&acks_dir).unwrap();
    let ack = reopened
        .get(&alert_id)
        .expect("the acknowledgement is stored");
    assert!(ack.acked_by.starts_with("nurse"), "{ack:?}");
    assert_eq!(ack.note.as_deref(), Some("seen, O2 increased"));
    assert_eq!(
        (ack.patient_id.as_str(), ack.level.as_str()),
        ("P09999", "high")
    );
    reopened.finish().await;
    stop.cancel();
    pipeline.await.unwrap().unwrap();
}
