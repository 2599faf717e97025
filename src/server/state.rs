//! Shared server state: read-only data plus the server's limits and the
//! counters that enforce them.

use crate::sinks::SinkContext;
use crate::sinks::live::LiveHubs;
use crate::storage::status::StoreStatusBoard;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::api::validation::FeatureRules;
use super::limits::ServerLimits;
use super::rate_limit::RateLimit;
use crate::acks::AckLog;
use crate::audit::AuditLog;
use crate::auth::{Authenticator, Sessions};
use crate::models::RiskModel;
use crate::query::QuerySession;
use crate::server::model_workers::ModelWorkers;

/// What clients are told when the model did not load (the reason, with
/// its paths, is in the server log).
pub const MODEL_NOT_LOADED: &str = "the model could not be loaded; the server log says why";

/// How long a browser session lasts unless `--session-ttl` says otherwise.
pub const DEFAULT_SESSION_TTL: std::time::Duration = std::time::Duration::from_secs(8 * 3600);

/// Cloned into every handler and middleware layer (axum's `State`), so
/// cloning is one reference count: the fields live behind one `Arc`
/// (cloning them one by one, ~15 reference counts and a cancellation token
/// per layer per request, was a third of the server's CPU under load).
/// Fields read through `Deref`; the `with_*` builders and `serve` set them
/// before the server starts.
#[derive(Clone)]
pub struct AppState(Arc<AppStateInner>);

impl std::ops::Deref for AppState {
    type Target = AppStateInner;

    fn deref(&self) -> &AppStateInner {
        &self.0
    }
}

impl std::ops::DerefMut for AppState {
    /// Copy-on-write: only the builders and `serve`'s setup write, before
    /// any request shares the state.
    fn deref_mut(&mut self) -> &mut AppStateInner {
        Arc::make_mut(&mut self.0)
    }
}

/// What [`AppState`] holds; everything inside is immutable or `Arc`.
#[derive(Clone)]
pub struct AppStateInner {
    pub model: Result<Arc<LoadedModel>, String>,
    /// The pipeline's stored datasets, for `/api/query`.
    pub datasets: Result<Arc<QuerySession>, String>,
    pub started: Instant,
    pub limits: Arc<ServerLimits>,
    /// Free `/api/query` slots (`query_concurrency`).
    pub query_slots: Arc<Semaphore>,
    /// Free `/api/stream` slots (`sse_subscribers`).
    pub stream_slots: Arc<Semaphore>,
    /// Per-client buckets of the model routes and of `/api/query`.
    pub model_rate: RateLimit,
    pub query_rate: RateLimit,
    /// Cancelled when the server shuts down: open streams end with it.
    pub shutdown: CancellationToken,
    /// Who may do what. The default admits nobody: configure tokens, OIDC
    /// or `--insecure-no-auth` with [`AppState::with_auth`].
    pub auth: Arc<Authenticator>,
    /// Where accesses to patient data are recorded (none: not recorded).
    pub audit: Option<AuditLog>,
    /// Served over HTTPS: cookies are `Secure`, responses carry HSTS.
    pub tls: bool,
    /// The live view of the pipeline in this process (none: empty).
    pub live: LiveHubs,
    /// Remote stores of the pipeline in this process, for `/health`.
    pub stores: StoreStatusBoard,
    /// Source partitions the pipeline in this process owns, for `/health`.
    pub partitions: crate::common::PartitionBoard,
    /// Where alert acknowledgements are recorded (none: not offered).
    pub acks: Option<AckLog>,
    /// The ingest sources of the pipeline in this process (`POST /fhir`).
    pub ingest: crate::common::IngestHubs,
}

/// A model with the request rules derived from its metadata, and the
/// threads that run its single-row requests.
pub struct LoadedModel {
    pub model: Arc<RiskModel>,
    pub rules: FeatureRules,
    pub workers: ModelWorkers,
}

impl AppState {
    /// `model` is the outcome of loading; a failure keeps the server up
    /// (health says why) rather than taking the dashboard down with it.
    pub fn new(model: Result<RiskModel, String>) -> Self {
        let model = model
            .and_then(|model| {
                let rules = FeatureRules::for_model(model.metadata()).map_err(|e| e.to_string())?;
                let model = Arc::new(model);
                let workers = ModelWorkers::per_core(model.clone());
                Ok(Arc::new(LoadedModel {
                    model,
                    rules,
                    workers,
                }))
            })
            .map_err(|why| {
                // The reason names files and paths: it goes to the log;
                // clients (health checks, API callers) get the fact only.
                tracing::error!(error = %why, "model not loaded; /predict and /explain answer 503");
                MODEL_NOT_LOADED.to_string()
            });
        let mut state = Self::limited(ServerLimits::default());
        state.model = model;
        state.datasets = Err("the server was started without a pipeline".into());
        state
    }

    fn limited(limits: ServerLimits) -> Self {
        Self(Arc::new(AppStateInner {
            model: Err(String::new()),
            datasets: Err(String::new()),
            started: Instant::now(),
            query_slots: Arc::new(Semaphore::new(limits.query_concurrency.max(1))),
            stream_slots: Arc::new(Semaphore::new(limits.sse_subscribers)),
            model_rate: RateLimit::new(limits.model_rate, "the model routes"),
            query_rate: RateLimit::new(limits.query_rate, "/api/query"),
            limits: Arc::new(limits),
            shutdown: CancellationToken::new(),
            auth: Arc::new(Authenticator {
                tokens: None,
                oidc: None,
                sessions: Sessions::new(DEFAULT_SESSION_TTL),
                insecure: false,
            }),
            audit: None,
            tls: false,
            live: LiveHubs::default(),
            stores: StoreStatusBoard::default(),
            partitions: crate::common::PartitionBoard::default(),
            acks: None,
            ingest: crate::common::IngestHubs::default(),
        }))
    }

    /// Serve with these limits instead of the defaults.
    pub fn with_limits(self, limits: ServerLimits) -> Self {
        let limited = Self::limited(limits);
        let old = &*self;
        Self(Arc::new(AppStateInner {
            model: old.model.clone(),
            datasets: old.datasets.clone(),
            started: old.started,
            auth: old.auth.clone(),
            audit: old.audit.clone(),
            tls: old.tls,
            live: old.live.clone(),
            stores: old.stores.clone(),
            partitions: old.partitions.clone(),
            acks: old.acks.clone(),
            ingest: old.ingest.clone(),
            ..(*limited).clone()
        }))
    }

    /// Admit the principals `auth` knows.
    pub fn with_auth(mut self, auth: Authenticator) -> Self {
        self.auth = Arc::new(auth);
        self
    }

    /// Record alert acknowledgements in `acks`.
    /// Hand `POST /fhir` to the ingest sources registered in `hubs`.
    pub fn with_ingest(mut self, hubs: &crate::common::IngestHubs) -> Self {
        self.ingest = hubs.clone();
        self
    }

    pub fn with_acks(mut self, acks: AckLog) -> Self {
        self.acks = Some(acks);
        self
    }

    /// Record accesses in `audit`; its table becomes queryable by admins.
    pub fn with_audit(mut self, audit: AuditLog) -> Self {
        self.audit = Some(audit);
        self
    }

    /// Show the live view, store status and partitions of the run that
    /// shares `sinks` (`vitalflow up`: the pipeline and the server in one
    /// process).
    pub fn with_run(mut self, sinks: &SinkContext) -> Self {
        self.live = sinks.live.clone();
        self.stores = sinks.stores.clone();
        self.partitions = sinks.partitions.clone();
        self
    }

    /// Serve SQL over these datasets too.
    pub fn with_datasets(mut self, datasets: Result<QuerySession, String>) -> Self {
        self.datasets = datasets.map(Arc::new);
        self
    }
}
