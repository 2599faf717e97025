//! The HTTP server (axum): REST model API, OpenAPI document and offline docs
//! page, Prometheus metrics. It only reads: models from disk, data from the
//! datasets the pipeline writes.

pub mod api;
mod dashboard;
mod error;
mod http_metrics;
pub mod limits;
mod listen;
pub mod rate_limit;
pub mod state;
mod timeout;

use std::net::SocketAddr;

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

pub use limits::{Rate, ServerLimits};
pub use state::AppState;

use crate::telemetry::events::ServerStarted;

/// Body limits: a single patient is ~200 bytes; 1,000 of them fit in 1 MiB.
const SINGLE_BODY_LIMIT: usize = 16 * 1024;
const BATCH_BODY_LIMIT: usize = 1024 * 1024;

/// Every route of the server.
pub fn router(state: AppState) -> Router {
    // Per-client rate limits: the model routes share one bucket, queries
    // have their own.
    let model = Router::new()
        .route(
            "/predict",
            post(api::predict::predict).layer(DefaultBodyLimit::max(SINGLE_BODY_LIMIT)),
        )
        .route(
            "/predict/batch",
            post(api::predict::predict_batch).layer(DefaultBodyLimit::max(BATCH_BODY_LIMIT)),
        )
        .route(
            "/explain",
            post(api::predict::explain).layer(DefaultBodyLimit::max(SINGLE_BODY_LIMIT)),
        )
        .route_layer(state.model_rate.layer());
    let query = Router::new()
        .route(
            "/api/query",
            post(api::query::query).layer(DefaultBodyLimit::max(SINGLE_BODY_LIMIT)),
        )
        .route_layer(state.query_rate.layer());
    // Everything but the stream must answer within the request timeout.
    let bounded = Router::new()
        .route("/health", get(api::health::health))
        .merge(model)
        .merge(query)
        .route("/metrics", get(metrics))
        .route("/", get(dashboard::index))
        .route("/assets/app.js", get(dashboard::app_js))
        .route("/assets/style.css", get(dashboard::style))
        .route("/api/ward", get(api::ward::ward))
        .route("/api/patients/{id}", get(api::ward::patient))
        .route("/api/alerts", get(api::ward::alerts))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            timeout::request_timeout,
        ));
    let api = Router::new()
        .route("/api/stream", get(api::ward::stream))
        .merge(bounded)
        .route_layer(axum::middleware::from_fn(http_metrics::track))
        .with_state(state);
    // Swagger UI's assets are compiled into the binary (`vendored`): the
    // docs page works with no network.
    api.merge(SwaggerUi::new("/docs").url("/openapi.json", api::ApiDoc::openapi()))
}

/// Prometheus exposition of every metric the process records.
async fn metrics() -> ([(axum::http::HeaderName, &'static str); 1], String) {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::telemetry::metrics::render(),
    )
}

/// Bind `addr`.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))
}

/// Serve until `shutdown` is cancelled, then finish in-flight requests
/// (open streams end at once) and return; connections still open after
/// the shutdown grace period are dropped.
pub async fn serve(
    listener: TcpListener,
    mut state: AppState,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    crate::telemetry::metrics::handle();
    let model = state.model.as_ref().ok().map(|m| m.model.metadata());
    ServerStarted {
        model: model.map(|m| (m.name.as_str(), m.version.as_str())),
    }
    .emit();
    tracing::info!(%addr, "http server listening");
    state.shutdown = shutdown.clone();
    for limiter in [state.model_rate.clone(), state.query_rate.clone()] {
        let until = shutdown.clone();
        tokio::spawn(async move { limiter.forget_idle(FORGET_CLIENTS_EVERY, until).await });
    }
    let connections = listen::ConnectionLimits {
        header_read_timeout: state.limits.header_read_timeout,
        shutdown_grace: state.limits.shutdown_grace,
    };
    listen::serve_connections(listener, router(state), connections, shutdown).await;
    Ok(())
}

/// How often the rate limiters drop clients whose bucket is full again.
const FORGET_CLIENTS_EVERY: std::time::Duration = std::time::Duration::from_secs(60);
