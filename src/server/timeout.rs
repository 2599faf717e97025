//! The request timeout: reading the body and answering must finish within
//! `ServerLimits::request_timeout` (the stream is exempt).

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::state::AppState;

pub async fn request_timeout(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let limit = state.limits.request_timeout;
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::Limit {
            status: StatusCode::SERVICE_UNAVAILABLE,
            what: "request_timeout",
            msg: format!(
                "the request was not answered within the server's request timeout of {} \
                 (--request-timeout)",
                humantime::format_duration(limit)
            ),
            retry_after: None,
        }
        .into_response(),
    }
}
