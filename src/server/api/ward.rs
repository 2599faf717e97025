//! Live ward data for the dashboard: snapshot, one patient, alerts, and the
//! Server-Sent Events stream that pushes every update.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use serde_json::{Value, json};
use tokio_stream::wrappers::BroadcastStream;

use crate::server::error::ApiError;
use crate::server::state::AppState;
use crate::sinks::live::{LiveEvent, registered_hub};

/// `GET /api/ward`: latest reading of every patient; `live` says whether a
/// pipeline is feeding this server right now.
pub async fn ward() -> Json<Value> {
    match registered_hub() {
        Some(hub) => Json(json!({ "live": hub.is_running(), "patients": hub.latest() })),
        None => Json(json!({ "live": false, "patients": [] })),
    }
}

/// `GET /api/patients/{id}`: that patient's most recent readings.
pub async fn patient(Path(id): Path<String>) -> Result<Json<Value>, (StatusCode, Json<Value>)> {
    let not_found = || {
        (
            StatusCode::NOT_FOUND,
            Json(
                json!({ "detail": [{ "loc": ["path", "id"], "msg": format!("no readings for patient `{id}`"), "type": "not_found" }] }),
            ),
        )
    };
    let hub = registered_hub().ok_or_else(not_found)?;
    let recent = hub.recent(&id).ok_or_else(not_found)?;
    Ok(Json(json!({ "patient_id": id, "recent": recent })))
}

/// `GET /api/alerts`: escalation alerts, newest first.
pub async fn alerts() -> Json<Value> {
    Json(json!({ "alerts": registered_hub().map(|h| h.alerts()).unwrap_or_default() }))
}

/// `GET /api/stream`: `readings` and `alert` events as they happen. At
/// most `sse_subscribers` streams are open at once (503 beyond); every
/// stream ends when the server shuts down.
pub async fn stream(
    State(state): State<AppState>,
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
    let events = match registered_hub() {
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
    // The slot is held as long as the stream is open.
    let events = events
        .take_until(state.shutdown.clone().cancelled_owned())
        .map(move |event| {
            let _held = &slot;
            event
        });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(5))))
}
