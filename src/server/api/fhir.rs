//! `POST /fhir/Observation` and `POST /fhir` (a `batch` or `transaction`
//! Bundle): readings into the pipeline's `fhir_ingest` source, answered as
//! a FHIR server answers. The answer comes once what was accepted is
//! durable (the source waits for a checkpoint): `201 Created` for a stored
//! Observation, `200 OK` for one already stored under its id (a retry),
//! `422` with an `OperationOutcome` naming each refused part, a
//! `batch-response` / `transaction-response` Bundle for Bundles, and `503`
//! with `Retry-After` while the source's queue is full or no source runs.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::common::{IngestReply, IngestRequest, PartOutcome};
use crate::interop::fhir_out::{Issue, issue_code, operation_outcome};
use crate::server::AppState;

/// How long a request waits for room in the source's queue.
const QUEUE_WAIT: Duration = Duration::from_millis(500);

#[derive(Deserialize)]
struct Peek {
    #[serde(rename = "resourceType", default)]
    resource_type: Option<String>,
    #[serde(rename = "type", default)]
    bundle_type: Option<String>,
    #[serde(default)]
    entry: Option<Vec<serde::de::IgnoredAny>>,
}

fn fhir_json(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/fhir+json"),
    );
    response
}

fn outcome(
    status: StatusCode,
    severity: &'static str,
    code: &'static str,
    diagnostics: String,
) -> Response {
    fhir_json(
        status,
        &operation_outcome(&[Issue {
            severity,
            code,
            diagnostics,
            expression: None,
        }]),
    )
}

/// `POST /fhir/Observation`.
pub async fn post_observation(State(state): State<AppState>, body: Bytes) -> Response {
    match peek(&body) {
        Ok(p) if p.resource_type.as_deref() == Some("Observation") => {}
        Ok(p) => {
            return outcome(
                StatusCode::BAD_REQUEST,
                "error",
                "structure",
                format!(
                    "POST /fhir/Observation takes an Observation, not a {}",
                    p.resource_type
                        .as_deref()
                        .unwrap_or("resource without resourceType")
                ),
            );
        }
        Err(response) => return *response,
    }
    let reply = match ingest(&state, body.to_vec(), false).await {
        Ok(reply) => reply,
        Err(response) => return response,
    };
    if let Some(response) = failed(&reply, false) {
        return response;
    }
    match reply.parts.get(&0) {
        Some(PartOutcome::Stored { id }) => {
            let mut response = outcome(
                StatusCode::CREATED,
                "information",
                "informational",
                format!("stored ({} reading row)", reply.rows),
            );
            if let Some(id) = id
                && let Ok(location) = HeaderValue::from_str(&format!("Observation/{id}"))
            {
                response.headers_mut().insert(header::LOCATION, location);
            }
            response
        }
        Some(PartOutcome::Duplicate { id }) => outcome(
            StatusCode::OK,
            "information",
            "duplicate",
            format!("Observation/{id} was stored before: not stored again"),
        ),
        Some(PartOutcome::Rejected { kind, reason }) => outcome(
            StatusCode::UNPROCESSABLE_ENTITY,
            "error",
            issue_code(kind),
            reason.clone(),
        ),
        // A panel of references only: nothing to store.
        None => outcome(
            StatusCode::OK,
            "information",
            "informational",
            "nothing to store: the Observation carries no value of its own".into(),
        ),
    }
}

/// `POST /fhir`: a `batch` or `transaction` Bundle.
pub async fn post_bundle(State(state): State<AppState>, body: Bytes) -> Response {
    let peeked = match peek(&body) {
        Ok(p) => p,
        Err(response) => return *response,
    };
    let bundle_type = peeked.bundle_type.as_deref().unwrap_or("");
    if peeked.resource_type.as_deref() != Some("Bundle")
        || !matches!(bundle_type, "batch" | "transaction")
    {
        return outcome(
            StatusCode::BAD_REQUEST,
            "error",
            "structure",
            "POST /fhir takes a Bundle of type batch or transaction (a single Observation goes to /fhir/Observation)".into(),
        );
    }
    let atomic = bundle_type == "transaction";
    let entries = peeked.entry.map_or(0, |e| e.len());
    let reply = match ingest(&state, body.to_vec(), atomic).await {
        Ok(reply) => reply,
        Err(response) => return response,
    };
    if let Some(response) = failed(&reply, true) {
        return response;
    }
    let responses: Vec<Value> = (0..entries)
        .map(|i| {
            let (status, location, issue) = match reply.parts.get(&i) {
                Some(PartOutcome::Stored { id }) => (
                    "201 Created",
                    id.as_ref().map(|id| format!("Observation/{id}")),
                    None,
                ),
                Some(PartOutcome::Duplicate { id }) => {
                    ("200 OK", Some(format!("Observation/{id}")), None)
                }
                Some(PartOutcome::Rejected { kind, reason }) => (
                    "422 Unprocessable Entity",
                    None,
                    Some(Issue {
                        severity: "error",
                        code: issue_code(kind),
                        diagnostics: reason.clone(),
                        expression: Some(format!("Bundle.entry[{i}]")),
                    }),
                ),
                None => ("200 OK", None, None),
            };
            let mut response = json!({"status": status});
            if let Some(location) = location {
                response["location"] = json!(location);
            }
            if let Some(issue) = issue {
                response["outcome"] = operation_outcome(&[issue]);
            }
            json!({"response": response})
        })
        .collect();
    fhir_json(
        StatusCode::OK,
        &json!({
            "resourceType": "Bundle",
            "type": format!("{bundle_type}-response"),
            "entry": responses,
        }),
    )
}

/// The first level of the body, or the 400 that says it is not FHIR JSON.
fn peek(body: &[u8]) -> Result<Peek, Box<Response>> {
    serde_json::from_slice::<Peek>(body).map_err(|e| {
        Box::new(outcome(
            StatusCode::BAD_REQUEST,
            "error",
            "structure",
            format!("the body is not FHIR JSON: {e}"),
        ))
    })
}

/// The message through the pipeline's ingest source, or the answer that
/// says why it could not go.
async fn ingest(state: &AppState, payload: Vec<u8>, atomic: bool) -> Result<IngestReply, Response> {
    let unavailable = |why: String| {
        let mut response = outcome(StatusCode::SERVICE_UNAVAILABLE, "error", "transient", why);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        response
    };
    let (_, sender) = state
        .ingest
        .single()
        .map_err(|e| unavailable(e.to_string()))?;
    let (reply, answer) = oneshot::channel();
    let request = IngestRequest {
        payload,
        atomic,
        reply,
    };
    match sender.send_timeout(request, QUEUE_WAIT).await {
        Ok(()) => {}
        Err(tokio::sync::mpsc::error::SendTimeoutError::Timeout(_)) => {
            return Err(unavailable(
                "the pipeline's ingest queue is full: retry after a second".into(),
            ));
        }
        Err(tokio::sync::mpsc::error::SendTimeoutError::Closed(_)) => {
            return Err(unavailable(
                "the pipeline's ingest source has stopped".into(),
            ));
        }
    }
    answer
        .await
        .map_err(|_| unavailable("the pipeline stopped before answering".into()))
}

/// The answer for a message refused or failed whole, if it was.
fn failed(reply: &IngestReply, bundle: bool) -> Option<Response> {
    let failure = reply.failure.as_ref()?;
    if failure.transient {
        let mut response = outcome(
            StatusCode::SERVICE_UNAVAILABLE,
            "error",
            "transient",
            failure.reason.clone(),
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        return Some(response);
    }
    let mut issues = vec![Issue {
        severity: "error",
        code: "processing",
        diagnostics: failure.reason.clone(),
        expression: None,
    }];
    for (entry, part) in &reply.parts {
        if let PartOutcome::Rejected { kind, reason } = part {
            issues.push(Issue {
                severity: "error",
                code: issue_code(kind),
                diagnostics: reason.clone(),
                expression: bundle.then(|| format!("Bundle.entry[{entry}]")),
            });
        }
    }
    Some(fhir_json(
        StatusCode::UNPROCESSABLE_ENTITY,
        &operation_outcome(&issues),
    ))
}
