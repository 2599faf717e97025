//! Live ward data for the dashboard: snapshot, one patient, alerts, and the
//! Server-Sent Events stream that pushes every update.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use serde_json::{Value, json};
use tokio_stream::wrappers::BroadcastStream;

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

/// `GET /api/stream`: `readings` and `alert` events as they happen.
pub async fn stream() -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
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
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(5)))
}
