//! The REST API over real HTTP on 127.0.0.1: parity with the Python
//! reference fixtures, every validation case, OpenAPI, docs, metrics.

use std::net::SocketAddr;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use vitalflow::models::RiskModel;
use vitalflow::server::{self, AppState};

const MODEL: &str = "models/diabetes_rf.onnx";
/// The model API's field names, in feature order.
pub const API_FIELDS: [&str; 8] = [
    "pregnancies",
    "glucose",
    "blood_pressure",
    "skin_thickness",
    "insulin",
    "bmi",
    "diabetes_pedigree_function",
    "age",
];

struct Server {
    base: String,
    client: reqwest::Client,
    stop: CancellationToken,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn start(model: Result<RiskModel, String>) -> Server {
    let listener = server::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(server::serve(
        listener,
        crate::support::secured(AppState::new(model)),
        stop.clone(),
    ));
    Server {
        base: format!("http://{addr}"),
        client: crate::support::client(),
        stop,
    }
}

async fn start_with_model() -> Server {
    start(RiskModel::load(std::path::Path::new(MODEL)).map_err(|e| e.to_string())).await
}

impl Server {
    async fn post(&self, path: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        self.post(path, body.to_string()).await
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }
}

fn fixtures() -> Vec<Value> {
    let text = std::fs::read_to_string("models/fixtures/reference.json").unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    doc["rows"].as_array().unwrap().clone()
}

fn patient(raw: &Value) -> Value {
    let raw = raw.as_array().unwrap();
    Value::Object(
        API_FIELDS
            .iter()
            .zip(raw)
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    )
}

fn valid() -> Value {
    json!({"pregnancies": 6, "glucose": 148, "blood_pressure": 72, "skin_thickness": 35, "insulin": 0, "bmi": 33.6, "diabetes_pedigree_function": 0.627, "age": 50})
}

/// The `loc` paths of a 422 body.
fn locs(body: &Value) -> Vec<String> {
    body["detail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            d["loc"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.to_string().trim_matches('"').to_string())
                .collect::<Vec<_>>()
                .join(".")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predictions_and_explanations_match_the_python_reference() {
    let server = start_with_model().await;
    let rows = fixtures();
    assert_eq!(rows.len(), 768);

    // All 768 in one batch call, in order.
    let instances: Vec<Value> = rows.iter().map(|r| patient(&r["raw"])).collect();
    let (status, body) = server
        .post_json("/predict/batch", &json!({ "instances": instances }))
        .await;
    assert_eq!(status, 200, "{body}");
    let predictions = body["predictions"].as_array().unwrap();
    assert_eq!(predictions.len(), 768);
    for (row, p) in rows.iter().zip(predictions) {
        let want = row["proba"].as_f64().unwrap();
        let got = p["probability"].as_f64().unwrap();
        assert!(
            (want - got).abs() < 1e-5,
            "row {}: {got} vs sklearn {want}",
            row["index"]
        );
        assert_eq!(p["risk_level"], row["risk_level"]);
        assert_eq!(p["label"], row["label"]);
    }

    // Explanations of all 768 in one batch call: shap's values, in order,
    // each equal to the single /explain of its row.
    let (status, body) = server
        .post_json("/explain/batch", &json!({ "instances": instances }))
        .await;
    assert_eq!(status, 200, "{body}");
    let explanations = body["explanations"].as_array().unwrap();
    assert_eq!(explanations.len(), 768);
    for (row, e) in rows.iter().zip(explanations) {
        for (i, c) in e["contributions"].as_array().unwrap().iter().enumerate() {
            assert_eq!(c["feature"], API_FIELDS[i]);
            let (got, want) = (
                c["shap_value"].as_f64().unwrap(),
                row["shap"][i].as_f64().unwrap(),
            );
            assert!(
                (want - got).abs() < 1e-6,
                "row {} feature {i}: {got} vs shap {want}",
                row["index"]
            );
        }
        assert_eq!(e["risk_level"], row["risk_level"]);
    }
    let (status, single) = server
        .post_json("/explain", &patient(&rows[5]["raw"]))
        .await;
    assert_eq!(status, 200);
    for (a, b) in single["contributions"]
        .as_array()
        .unwrap()
        .iter()
        .zip(explanations[5]["contributions"].as_array().unwrap())
    {
        let (a, b) = (
            a["shap_value"].as_f64().unwrap(),
            b["shap_value"].as_f64().unwrap(),
        );
        assert!((a - b).abs() < 1e-12, "batch and single agree: {a} vs {b}");
    }
    assert_eq!(single["probability"], explanations[5]["probability"]);

    // Single predictions and explanations for a spread of rows.
    for row in rows.iter().step_by(37) {
        let (status, single) = server.post_json("/predict", &patient(&row["raw"])).await;
        assert_eq!(status, 200);
        assert!(
            (single["probability"].as_f64().unwrap() - row["proba"].as_f64().unwrap()).abs() < 1e-5
        );

        let (status, explained) = server.post_json("/explain", &patient(&row["raw"])).await;
        assert_eq!(status, 200, "{explained}");
        let contributions = explained["contributions"].as_array().unwrap();
        assert_eq!(contributions.len(), 8);
        let mut sum = explained["base_value"].as_f64().unwrap();
        for (i, c) in contributions.iter().enumerate() {
            assert_eq!(c["feature"], API_FIELDS[i]);
            let want = row["shap"][i].as_f64().unwrap();
            let got = c["shap_value"].as_f64().unwrap();
            assert!(
                (want - got).abs() < 1e-6,
                "row {} feature {i}: {got} vs shap {want}",
                row["index"]
            );
            sum += got;
        }
        assert!(
            (sum - explained["probability"].as_f64().unwrap()).abs() < 1e-6,
            "base + contributions = probability"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_the_loaded_model() {
    let server = start_with_model().await;
    let (status, body) = server.get("/health").await;
    assert_eq!(status, 200);
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["model_loaded"], true);
    assert!(
        health["model_version"]
            .as_str()
            .unwrap()
            .starts_with("diabetes-rf-1-")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_invalid_input_gets_422_with_one_entry_per_field() {
    let server = start_with_model().await;
    let with = |key: &str, value: Value| {
        let mut v = valid();
        v[key] = value;
        v
    };
    let without = |key: &str| {
        let mut v = valid();
        v.as_object_mut().unwrap().remove(key);
        v
    };
    let cases: Vec<(Value, Vec<&str>, &str)> = vec![
        (without("glucose"), vec!["body.glucose"], "missing"),
        (
            with("heart", json!(1)),
            vec!["body.heart"],
            "extra_forbidden",
        ),
        (
            with("glucose", json!("high")),
            vec!["body.glucose"],
            "float_type",
        ),
        (
            with("glucose", Value::Null),
            vec!["body.glucose"],
            "float_type",
        ),
        (with("bmi", json!("NaN")), vec!["body.bmi"], "finite_number"),
        (
            with("glucose", json!(-1)),
            vec!["body.glucose"],
            "greater_than_equal",
        ),
        (
            with("glucose", json!(301)),
            vec!["body.glucose"],
            "less_than_equal",
        ),
        (
            with("age", json!(0)),
            vec!["body.age"],
            "greater_than_equal",
        ),
        (
            with("pregnancies", json!(2.5)),
            vec!["body.pregnancies"],
            "int_type",
        ),
        (json!([1, 2, 3]), vec!["body"], "model_type"),
    ];
    for (body, want_locs, want_type) in cases {
        let (status, response) = server.post_json("/predict", &body).await;
        assert_eq!(status, 422, "{body} -> {response}");
        assert_eq!(locs(&response), want_locs, "{body} -> {response}");
        assert_eq!(response["detail"][0]["type"], want_type, "{response}");
        // /explain validates identically.
        let (status, _) = server.post_json("/explain", &body).await;
        assert_eq!(status, 422);
    }

    // Several problems are all reported at once.
    let mut many = valid();
    many["glucose"] = json!(-5);
    many["bmi"] = json!("x");
    many.as_object_mut().unwrap().remove("age");
    many["extra"] = json!(true);
    let (status, response) = server.post_json("/predict", &many).await;
    assert_eq!(status, 422);
    let mut got = locs(&response);
    got.sort();
    assert_eq!(got, ["body.age", "body.bmi", "body.extra", "body.glucose"]);

    // Not JSON, or a number JSON cannot hold.
    let (status, response) = server.post("/predict", "{\"glucose\": ").await;
    assert_eq!(
        (status, response["detail"][0]["type"].as_str()),
        (422, Some("json_invalid"))
    );
    let overflow = valid().to_string().replace("148", "1e999");
    let (status, _) = server.post("/predict", overflow).await;
    assert_eq!(status, 422);

    // Dataset column names are accepted; giving both spellings is not.
    let aliased = json!({"Pregnancies": 6, "Glucose": 148, "BloodPressure": 72, "SkinThickness": 35, "Insulin": 0, "BMI": 33.6, "DiabetesPedigreeFunction": 0.627, "Age": 50});
    assert_eq!(server.post_json("/predict", &aliased).await.0, 200);
    let twice = with("Glucose", json!(100));
    assert_eq!(
        locs(&server.post_json("/predict", &twice).await.1),
        ["body.glucose"]
    );

    // Batches: errors carry the instance index; size limits hold.
    let (status, response) = server
        .post_json(
            "/predict/batch",
            &json!({"instances": [valid(), without("bmi")]}),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(locs(&response), ["body.instances.1.bmi"]);
    assert_eq!(
        server
            .post_json("/predict/batch", &json!({"instances": []}))
            .await
            .0,
        422
    );
    assert_eq!(
        server
            .post_json("/predict/batch", &json!({"rows": [valid()]}))
            .await
            .0,
        422
    );
    let too_many: Vec<Value> = (0..1001).map(|_| valid()).collect();
    let (status, response) = server
        .post_json("/predict/batch", &json!({ "instances": too_many }))
        .await;
    assert_eq!(
        (status, response["detail"][0]["type"].as_str()),
        (422, Some("too_long"))
    );

    // Oversized bodies are refused before parsing.
    let huge = format!("{{\"pad\": \"{}\"}}", "x".repeat(64 * 1024));
    assert_eq!(server.post("/predict", huge).await.0, 413);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_docs_and_metrics() {
    let server = start_with_model().await;
    let (status, text) = server.get("/openapi.json").await;
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_str(&text).unwrap();
    for path in [
        "/health",
        "/predict",
        "/predict/batch",
        "/explain",
        "/explain/batch",
        "/api/patients/{id}/history",
        "/api/alerts/{id}/ack",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from OpenAPI"
        );
    }
    // The documented ranges are the model's own (sidecar), so they cannot drift.
    let sidecar: Value =
        serde_json::from_str(&std::fs::read_to_string("models/diabetes_rf.json").unwrap()).unwrap();
    let properties = &doc["components"]["schemas"]["PatientFeatures"]["properties"];
    for (api, name) in API_FIELDS
        .iter()
        .zip(sidecar["feature_names"].as_array().unwrap())
    {
        let range = &sidecar["feature_ranges"][name.as_str().unwrap()];
        assert_eq!(
            properties[api]["minimum"].as_f64(),
            range["min"].as_f64(),
            "{api} minimum"
        );
        assert_eq!(
            properties[api]["maximum"].as_f64(),
            range["max"].as_f64(),
            "{api} maximum"
        );
    }

    // The docs page and its assets come from the binary: no external URL.
    let (status, html) = server.get("/docs/").await;
    assert_eq!(status, 200);
    assert!(html.contains("swagger-ui"), "{html}");
    assert!(
        !html.contains("src=\"http") && !html.contains("href=\"http"),
        "docs page must not load from the network"
    );
    let (status, _) = server.get("/docs/swagger-ui-bundle.js").await;
    assert_eq!(status, 200);

    server.post_json("/predict", &valid()).await;
    server.post_json("/predict", &json!({})).await;
    let (status, metrics) = server.get("/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("vitalflow_http_requests_total{")
                && l.contains("route=\"/predict\"")
                && l.contains("status=\"200\"")),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.contains("route=\"/predict\"") && l.contains("status=\"422\"")),
        "{metrics}"
    );
    assert!(
        metrics.contains("vitalflow_http_request_duration_seconds_bucket"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_model_says_so() {
    let server = start(
        RiskModel::load(std::path::Path::new("models/missing.onnx")).map_err(|e| e.to_string()),
    )
    .await;
    let (status, body) = server.get("/health").await;
    assert_eq!(status, 200);
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "degraded");
    // The fact, not the reason: file paths stay in the server log.
    let error = health["model_error"].as_str().unwrap();
    assert!(error.contains("server log"), "{health}");
    assert!(
        !error.contains("models/") && !error.contains(".onnx"),
        "{health}"
    );
    let (status, body) = server.post_json("/predict", &valid()).await;
    assert_eq!(status, 503, "{body}");
    let body = body.to_string();
    assert!(
        body.contains("model not loaded") && !body.contains(".onnx"),
        "{body}"
    );
}
