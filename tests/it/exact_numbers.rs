//! Numbers reach the model exactly as written. The forest compares f32
//! inputs with f32 thresholds, so an input one f64 bit away from what the
//! client sent can land on the other side of a split and change the
//! prediction. These tests build such inputs from the shipped forest's own
//! thresholds and send them through the real HTTP API.

use std::net::SocketAddr;

use serde_json::Value;
use tokio_util::sync::CancellationToken;
use vitalflow::models::RiskModel;
use vitalflow::server::{self, AppState, Rate, ServerLimits};

use crate::api::API_FIELDS as FIELDS;

/// Two neighbouring f64 inputs of feature `feature` that straddle a split:
/// `left` scales to the threshold's side (`<=`), `right` (one bit above)
/// to the other.
struct Straddle {
    feature: usize,
    left: f64,
    right: f64,
}

/// Every split of the forest on a fractional feature whose threshold an
/// in-range input can straddle.
fn straddles(model: &RiskModel) -> Vec<Straddle> {
    let meta = model.metadata();
    let scaled = |j: usize, x: f64| ((x - meta.scaler.mean[j]) / meta.scaler.scale[j]) as f32;
    let mut out = Vec::new();
    for tree in model.ensemble().trees() {
        for node in 0..tree.len() {
            if tree.is_leaf(node) {
                continue;
            }
            let j = tree.feature[node] as usize;
            let range = &meta.feature_ranges[j];
            if range.integer {
                continue;
            }
            let t = tree.threshold[node];
            // The f64 scaled value where the f32 cast starts rounding above t.
            let edge = (t as f64 + t.next_up() as f64) / 2.0;
            let mut x = edge * meta.scaler.scale[j] + meta.scaler.mean[j];
            // Walk to the last input that still goes left.
            for _ in 0..64 {
                if scaled(j, x) <= t {
                    break;
                }
                x = x.next_down();
            }
            for _ in 0..64 {
                if scaled(j, x.next_up()) > t {
                    break;
                }
                x = x.next_up();
            }
            let (left, right) = (x, x.next_up());
            if scaled(j, left) <= t
                && scaled(j, right) > t
                && range.contains(left)
                && range.contains(right)
            {
                out.push(Straddle {
                    feature: j,
                    left,
                    right,
                });
            }
        }
    }
    out
}

/// A request body with `value` written as the shortest decimal that reads
/// back as exactly that f64 (what a client serialising an f64 sends).
fn body(base: &[f64; 8], feature: usize, value: f64) -> String {
    let fields: Vec<String> = FIELDS
        .iter()
        .enumerate()
        .map(|(k, name)| {
            let v = if k == feature { value } else { base[k] };
            format!("\"{name}\": {v:?}")
        })
        .collect();
    format!("{{{}}}", fields.join(", "))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inputs_one_bit_either_side_of_a_split_get_their_own_prediction() {
    let model = RiskModel::load(std::path::Path::new("models/diabetes_rf.onnx")).unwrap();
    let found = straddles(&model);
    // Reference patient (the first row of the Pima data).
    let base = [6.0, 148.0, 72.0, 35.0, 0.0, 33.6, 0.627, 50.0];
    // Keep the splits this patient's path actually meets: moving the input
    // one bit across them changes the probability.
    let decisive: Vec<(&Straddle, f64, f64)> = found
        .iter()
        .filter_map(|s| {
            let mut row = base;
            row[s.feature] = s.left;
            let p_left = model.predict_trees(&row).unwrap()[0];
            row[s.feature] = s.right;
            let p_right = model.predict_trees(&row).unwrap()[0];
            (p_left != p_right).then_some((s, p_left, p_right))
        })
        .collect();
    assert!(
        decisive.len() >= 3,
        "the test needs splits on this patient's path: {} straddles, {} decisive",
        found.len(),
        decisive.len()
    );

    let listener = server::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let url = format!("http://{}/predict", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    tokio::spawn(server::serve(
        listener,
        crate::support::secured(
            AppState::new(Ok(RiskModel::load(std::path::Path::new(
                "models/diabetes_rf.onnx",
            ))
            .unwrap()))
            // Hundreds of requests from one client, faster than the default
            // per-client rate.
            .with_limits(ServerLimits {
                model_rate: Rate {
                    per_second: 1e6,
                    burst: 1_000_000,
                },
                ..Default::default()
            }),
        ),
        stop.clone(),
    ));
    let client = crate::support::client();
    for (s, p_left, p_right) in &decisive {
        for (value, want) in [(s.left, p_left), (s.right, p_right)] {
            let text = body(&base, s.feature, value);
            let response = client
                .post(&url)
                .header("content-type", "application/json")
                .body(text.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{text}");
            let answer: Value = response.json().await.unwrap();
            let got = answer["probability"].as_f64().unwrap();
            assert_eq!(
                got, *want,
                "{} = {value:?} was not read exactly (request {text})",
                FIELDS[s.feature]
            );
        }
    }
    // And the in-process parse agrees bit for bit with Rust's own.
    for (s, _, _) in &decisive {
        let text = format!("{:?}", s.right);
        let parsed: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            parsed.as_f64().unwrap().to_bits(),
            text.parse::<f64>().unwrap().to_bits()
        );
    }
    stop.cancel();
}
