//! The HTTP server (axum): REST model API, OpenAPI document and offline docs
//! page, Prometheus metrics. It only reads: models from disk, data from the
//! datasets the pipeline writes.

pub mod access;
pub mod api;
pub mod auth;
mod dashboard;
mod error;
mod headers;
mod http_metrics;
pub mod limits;
mod listen;
mod login;
pub mod model_workers;
pub mod rate_limit;
pub mod state;
mod timeout;
pub mod tls;

use std::net::SocketAddr;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

pub use error::ServerError;
pub use limits::{Rate, ServerLimits};
pub use state::AppState;

use crate::telemetry::events::ServerStarted;

/// Body limits: a single patient is ~200 bytes; 1,000 of them fit in 1 MiB.
const SINGLE_BODY_LIMIT: usize = 16 * 1024;
const BATCH_BODY_LIMIT: usize = 1024 * 1024;

/// Every route of the server, each with its entry in the route table
/// ([`access::RULES`]).
pub fn router(state: AppState) -> Router {
    let routes = routes(state.clone());
    // Swagger UI's assets are compiled into the binary (`vendored`): the
    // docs page works with no network.
    let docs: Router<AppState> = SwaggerUi::new("/docs")
        .url("/openapi.json", api::ApiDoc::openapi())
        .into();
    routes
        .router
        .merge(docs)
        // Outermost last: headers on everything, then telemetry, then
        // access control before any handler or per-principal limit.
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::guard,
        ))
        .route_layer(axum::middleware::from_fn(http_metrics::track))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            headers::secure,
        ))
        .with_state(state)
}

/// The server's own routes (all but Swagger UI's), recorded for the test
/// that checks each has an access rule.
pub fn routes(state: AppState) -> access::Routes {
    use access::Routes;
    // Per-principal rate limits: the model routes share one bucket,
    // queries have their own.
    let model = Routes::default()
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
        .route(
            "/explain/batch",
            post(api::predict::explain_batch).layer(DefaultBodyLimit::max(BATCH_BODY_LIMIT)),
        )
        .map(|r| r.route_layer(state.model_rate.layer()));
    let query = Routes::default()
        .route(
            "/api/query",
            post(api::query::query).layer(DefaultBodyLimit::max(SINGLE_BODY_LIMIT)),
        )
        .map(|r| r.route_layer(state.query_rate.layer()));
    // Everything but the stream must answer within the request timeout.
    let bounded = Routes::default()
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
        .route(
            "/api/alerts/{id}/ack",
            post(api::ward::acknowledge).layer(DefaultBodyLimit::max(SINGLE_BODY_LIMIT)),
        )
        .route(
            "/fhir/Observation",
            post(api::fhir::post_observation).layer(DefaultBodyLimit::max(SINGLE_BODY_LIMIT)),
        )
        .route(
            "/fhir",
            post(api::fhir::post_bundle).layer(DefaultBodyLimit::max(BATCH_BODY_LIMIT)),
        )
        .route("/api/patients/{id}/history", get(api::history::history))
        .route("/api/ward/trend", get(api::history::ward_trend))
        .route("/assets/uPlot.min.js", get(dashboard::uplot_js))
        .route("/assets/uPlot.min.css", get(dashboard::uplot_css))
        .route(
            "/login",
            get(login::page)
                .post(login::submit)
                .layer(DefaultBodyLimit::max(SINGLE_BODY_LIMIT)),
        )
        .route("/logout", post(login::logout))
        .route("/api/me", get(login::me))
        .map(|r| {
            r.route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                timeout::request_timeout,
            ))
        });
    Routes::default()
        .route("/api/stream", get(api::ward::stream))
        .merge(bounded)
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
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })
}

/// Serve until `shutdown` is cancelled, then finish in-flight requests
/// (open streams end at once) and return; connections still open after
/// the shutdown grace period are dropped.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> Result<(), ServerError> {
    serve_with(listener, state, None, shutdown).await
}

/// [`serve`], over HTTPS when `tls` is given.
pub async fn serve_with(
    listener: TcpListener,
    mut state: AppState,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: CancellationToken,
) -> Result<(), ServerError> {
    state.tls = tls.is_some();
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
    let audit = state.audit.clone();
    let acks = state.acks.clone();
    listen::serve_connections(listener, router(state), connections, tls, shutdown).await;
    if let Some(acks) = acks {
        acks.finish().await;
    }
    if let Some(audit) = audit {
        let records = audit
            .finish()
            .await
            .map_err(|e| ServerError::Audit(e.into()))?;
        tracing::info!(records, dir = %audit.dir().display(), "audit trail flushed");
    }
    Ok(())
}

/// How often the rate limiters drop clients whose bucket is full again.
const FORGET_CLIENTS_EVERY: std::time::Duration = std::time::Duration::from_secs(60);
