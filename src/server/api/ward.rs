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
            let patients = hub.latest();
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

/// `GET /api/alerts`: escalation alerts, newest first.
pub async fn alerts(State(state): State<AppState>) -> (Extension<AuditDetail>, Json<Value>) {
    let alerts = state.live.first().map(|h| h.alerts()).unwrap_or_default();
    (
        Extension(AuditDetail::rows(alerts.len())),
        Json(json!({ "alerts": alerts })),
    )
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
