//! Live ward data for the dashboard: snapshot, one patient, alerts, and the
//! Server-Sent Events stream that pushes every update.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use serde_json::{Value, json};
use tokio_stream::wrappers::BroadcastStream;

use serde::Deserialize;
use utoipa::ToSchema;

use super::types::FieldError;
use crate::acks::{Ack, Recorded};
use crate::auth::Principal;
use crate::server::auth::AuditDetail;
use crate::server::error::ApiError;
use crate::server::state::AppState;
use crate::sinks::live::LiveEvent;

/// `GET /api/ward`: latest reading of every patient; `live` says whether a
/// pipeline is feeding this server right now.
pub async fn ward(State(state): State<AppState>) -> (Extension<AuditDetail>, Json<Value>) {
    match state.live.first() {
        Some(hub) => {
            // Each row carries the score of the reading before it, so the
            // table can show which way a patient is going.
            let score = hub.score_column().to_string();
            let patients: Vec<Value> = hub
                .latest()
                .into_iter()
                .map(|mut row| {
                    let previous = row
                        .get("patient_id")
                        .and_then(Value::as_str)
                        .and_then(|id| hub.previous(id))
                        .and_then(|p| p.get(&score).cloned())
                        .unwrap_or(Value::Null);
                    row.insert(format!("previous_{score}"), previous);
                    Value::Object(row)
                })
                .collect();
            (
                Extension(AuditDetail::rows(patients.len())),
                Json(json!({ "live": hub.is_running(), "patients": patients })),
            )
        }
        None => (
            Extension(AuditDetail::rows(0)),
            Json(json!({ "live": false, "patients": [] })),
        ),
    }
}

/// `GET /api/patients/{id}`: that patient's most recent readings.
pub async fn patient(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let detail = |rows: usize| {
        Extension(AuditDetail {
            patient_id: Some(id.clone()),
            rows: Some(rows as u64),
            ..AuditDetail::default()
        })
    };
    match state.live.first().and_then(|hub| hub.recent(&id)) {
        Some(recent) => (
            detail(recent.len()),
            Json(json!({ "patient_id": id, "recent": recent })),
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            detail(0),
            Json(
                json!({ "detail": [{ "loc": ["path", "id"], "msg": format!("no readings for patient `{id}`"), "type": "not_found" }] }),
            ),
        )
            .into_response(),
    }
}

/// `GET /api/alerts`: escalation alerts, newest first, each with its
/// acknowledgement (`ack`) once it has one.
pub async fn alerts(State(state): State<AppState>) -> (Extension<AuditDetail>, Json<Value>) {
    let mut alerts = state.live.first().map(|h| h.alerts()).unwrap_or_default();
    if let Some(acks) = &state.acks {
        for alert in &mut alerts {
            let ack = alert
                .get("id")
                .and_then(Value::as_str)
                .and_then(|id| acks.get(id));
            if let Some(ack) = ack {
                alert.insert("ack".into(), json!(ack));
            }
        }
    }
    (
        Extension(AuditDetail::rows(alerts.len())),
        Json(json!({ "alerts": alerts })),
    )
}

/// The body of an acknowledgement.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AckRequest {
    /// What was done or seen (at most 500 characters).
    pub note: Option<String>,
}

/// Notes longer than this are refused.
pub const NOTE_MAX_CHARS: usize = 500;

/// `POST /api/alerts/{id}/ack`: acknowledge an alert as the calling
/// principal, with an optional note. The acknowledgement is in the
/// `alert_acks` dataset before this answers, and every open dashboard is
/// told at once. A second acknowledgement of the same alert answers with
/// the first (`already: true`).
#[utoipa::path(post, path = "/api/alerts/{id}/ack", tag = "data", request_body = AckRequest,
    params(("id" = String, Path, description = "The alert's id (`<patient>@<event time ms>`)")),
    responses(
        (status = 200, description = "The acknowledgement, and whether it was made before"),
        (status = 404, description = "No such alert (or no longer kept)", body = super::types::ErrorBody),
        (status = 422, description = "A note that is too long", body = super::types::ErrorBody),
        (status = 503, description = "Acknowledgements cannot be recorded", body = super::types::ErrorBody),
    ))]
pub async fn acknowledge(
    State(state): State<AppState>,
    Path(id): Path<String>,
    principal: Option<Extension<Principal>>,
    body: Option<Json<AckRequest>>,
) -> Result<(Extension<AuditDetail>, Json<Value>), ApiError> {
    let note = body
        .and_then(|Json(b)| b.note)
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty());
    if let Some(note) = &note
        && note.chars().count() > NOTE_MAX_CHARS
    {
        return Err(ApiError::Validation(vec![FieldError {
            loc: vec![Value::from("body"), Value::from("note")],
            msg: format!("a note has at most {NOTE_MAX_CHARS} characters"),
            kind: "too_long".into(),
        }]));
    }
    let acks = state.acks.as_ref().ok_or_else(|| {
        ApiError::Unavailable(
            "alert_acks".into(),
            "this server records no acknowledgements".into(),
        )
    })?;
    let hub = state.live.first();
    let alert = hub.as_ref().and_then(|h| h.alert(&id)).ok_or_else(|| {
        ApiError::NotFound(
            vec![Value::from("path"), Value::from("id")],
            format!("no alert `{id}` (alerts are kept while they are on the dashboard)"),
        )
    })?;
    let field = |name: &str| {
        alert
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let ack = Ack {
        alert_id: id.clone(),
        patient_id: field("patient_id"),
        alert_ts: alert.get("ts").and_then(Value::as_i64).unwrap_or(0),
        level: field("level"),
        acked_by: principal.map_or_else(|| "unknown".to_string(), |Extension(p)| p.name),
        acked_at: chrono::Utc::now(),
        note,
    };
    let detail = AuditDetail {
        patient_id: Some(ack.patient_id.clone()),
        rows: Some(1),
        ..AuditDetail::default()
    };
    let (ack, already) = match acks.record(ack).await {
        Ok(Recorded::New(ack)) => (ack, false),
        Ok(Recorded::Already(ack)) => (ack, true),
        Err(error) => {
            tracing::error!(error = %crate::common::ErrorChain(&error), "acknowledgement not recorded");
            return Err(ApiError::Unavailable(
                "alert_acks".into(),
                "the acknowledgement could not be stored; see the server log".into(),
            ));
        }
    };
    if !already && let Some(hub) = hub {
        hub.announce_ack(json!(ack).to_string());
    }
    Ok((
        Extension(detail),
        Json(json!({ "ack": ack, "already": already })),
    ))
}

/// `GET /api/stream`: `readings` and `alert` events as they happen. At
/// most `sse_subscribers` streams are open at once (503 beyond); every
/// stream ends when the server shuts down.
pub async fn stream(
    State(state): State<AppState>,
    principal: Option<Extension<Principal>>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let slot = state
        .stream_slots
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::Limit {
            status: StatusCode::SERVICE_UNAVAILABLE,
            what: "too_many_streams",
            msg: format!(
                "{} live streams are already open, the server's limit (--max-streams); \
                 close a dashboard or retry later",
                state.limits.sse_subscribers
            ),
            retry_after: Some(5),
        })?;
    let events = match state.live.first() {
        Some(hub) => BroadcastStream::new(hub.subscribe()).boxed(),
        None => futures::stream::empty().boxed(),
    };
    // A slow client that lags behind skips to the newest updates instead of
    // holding memory for it.
    let events = events.filter_map(|item| async move {
        match item {
            Ok(LiveEvent::Readings(data)) => {
                Some(Ok(Event::default().event("readings").data(data.as_ref())))
            }
            Ok(LiveEvent::Alert(data)) => {
                Some(Ok(Event::default().event("alert").data(data.as_ref())))
            }
            Ok(LiveEvent::Ack(data)) => Some(Ok(Event::default().event("ack").data(data.as_ref()))),
            Err(_lagged) => None,
        }
    });
    // A stream ends when its credential expires (a session, a JWT): the
    // page reconnects and must show a valid one again.
    let expires = principal
        .and_then(|Extension(p)| p.expires)
        .and_then(|t| t.duration_since(std::time::SystemTime::now()).ok());
    let expired = async move {
        match expires {
            Some(left) => tokio::time::sleep(left).await,
            None => std::future::pending().await,
        }
    };
    // The slot is held as long as the stream is open.
    let events = events
        .take_until(expired)
        .take_until(state.shutdown.clone().cancelled_owned())
        .map(move |event| {
            let _held = &slot;
            event
        });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(5))))
}
