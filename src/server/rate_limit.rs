//! Per-principal rate limits (tower_governor's token buckets) on the model
//! and query routes.
//!
//! A bucket belongs to the authenticated principal (set by the access
//! middleware, which runs first), so a user's limit follows them across
//! addresses and one address cannot exhaust another user's.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response};
use axum::response::IntoResponse;
use governor::middleware::NoOpMiddleware;
use tower_governor::governor::{GovernorConfig, GovernorConfigBuilder};
use tower_governor::key_extractor::KeyExtractor;
use tower_governor::{GovernorError, GovernorLayer};

use super::error::ApiError;
use super::limits::Rate;

/// Who a request counts against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    /// An authenticated principal, by name.
    User(String),
    /// An unauthenticated client, by address.
    Client(IpAddr),
    /// A request whose connection is unknown (the router served without
    /// `server::serve`): all such requests share one bucket.
    Unknown,
}

/// Extracts the [`Principal`] of a request: the authenticated name, else
/// the peer address (from the connection: `X-Forwarded-For` is not trusted).
#[derive(Debug, Clone, Copy)]
pub struct PrincipalKey;

impl KeyExtractor for PrincipalKey {
    type Key = Principal;

    fn extract<T>(&self, req: &Request<T>) -> Result<Self::Key, GovernorError> {
        if let Some(principal) = req.extensions().get::<crate::auth::Principal>() {
            return Ok(Principal::User(principal.name.clone()));
        }
        Ok(req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(Principal::Unknown, |ConnectInfo(addr)| {
                Principal::Client(addr.ip())
            }))
    }
}

type Middleware = NoOpMiddleware<governor::clock::QuantaInstant>;
type Config = GovernorConfig<PrincipalKey, Middleware>;

/// One limiter (its buckets) for a group of routes.
#[derive(Clone)]
pub struct RateLimit {
    config: Arc<Config>,
    routes: &'static str,
}

impl RateLimit {
    pub fn new(rate: Rate, routes: &'static str) -> Self {
        let config = GovernorConfigBuilder::default()
            .period(rate.period())
            .burst_size(rate.burst.max(1))
            .key_extractor(PrincipalKey)
            .finish()
            .expect("period and burst are non-zero");
        Self {
            config: Arc::new(config),
            routes,
        }
    }

    /// The layer for this group's routes; refusals are 429 with
    /// `Retry-After` and a body naming the limit.
    pub fn layer(&self) -> GovernorLayer<PrincipalKey, Middleware, Body> {
        let routes = self.routes;
        GovernorLayer::new(self.config.clone()).error_handler(move |error| refusal(error, routes))
    }

    /// Forget clients idle long enough that their bucket is full again:
    /// without this, every address ever seen keeps an entry.
    pub async fn forget_idle(&self, every: Duration, until: tokio_util::sync::CancellationToken) {
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    self.config.limiter().retain_recent();
                    self.config.limiter().shrink_to_fit();
                }
                _ = until.cancelled() => return,
            }
        }
    }
}

fn refusal(error: GovernorError, routes: &'static str) -> Response<Body> {
    match error {
        GovernorError::TooManyRequests { wait_time, .. } => ApiError::Limit {
            status: axum::http::StatusCode::TOO_MANY_REQUESTS,
            what: "rate_limit",
            msg: format!(
                "too many requests to {routes} from this client; retry in {} s",
                wait_time.max(1)
            ),
            retry_after: Some(wait_time.max(1)),
        }
        .into_response(),
        other => ApiError::Internal(format!("rate limiter: {other}")).into_response(),
    }
}
