//! Per-request telemetry: one log line with latency, and the request
//! counter and latency histogram, labelled by route template (never by
//! path values, which could carry ids).

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

use crate::telemetry::events::HttpRequestCompleted;

pub async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.run(request).await;
    HttpRequestCompleted {
        route: &route,
        method: method.as_str(),
        status: response.status().as_u16(),
        elapsed: started.elapsed(),
    }
    .emit();
    response
}
