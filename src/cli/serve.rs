//! `vitalflow serve`, and the server setup `vitalflow up` shares.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use super::args::{AccessArgs, ServeArgs, ServerArgs};
use super::signal::shutdown_on_signal;
use crate::acks::AckLog;
use crate::audit::AuditLog;
use crate::auth::{Authenticator, OidcVerifier, Role, Sessions, TokensFile, tokens};
use crate::models::RiskModel;
use crate::query::{Dataset, QueryLimits, QuerySession, datasets_of};
use crate::server::{self, AppState};
use crate::sinks::SinkContext;
use crate::{engine, spec};

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let shutdown = shutdown_on_signal();
    let server = start(
        &args.server,
        &args.pipeline,
        shutdown,
        &SinkContext::default(),
        &crate::common::IngestHubs::default(),
    )
    .await?;
    server.await.context("the HTTP server task failed")?
}

/// Check the access settings, bind, and serve in a task until `shutdown`:
/// the server does not start half-secured (any access error stops here).
/// `run` is what the pipeline of the same process reports through (its
/// live view and store status); a server alone passes the default.
pub async fn start(
    args: &ServerArgs,
    pipeline: &Path,
    shutdown: CancellationToken,
    run: &SinkContext,
    ingest: &crate::common::IngestHubs,
) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<()>>> {
    let access = secure(&args.access, args.addr).await?;
    let tls = match (&args.access.tls_cert, &args.access.tls_key) {
        (Some(cert), Some(key)) => Some(server::tls::acceptor(cert, key)?),
        _ => None,
    };
    let listener = server::bind(args.addr).await?;
    let audit = AuditLog::start(&args.access.audit_dir, args.access.audit_flush)?;
    let audit_table = AuditLog::table(&args.access.audit_dir);
    let acks = AckLog::open(&args.access.acks_dir).with_context(|| {
        format!(
            "opening the alert acknowledgements in {}",
            args.access.acks_dir.display()
        )
    })?;
    let acks_table = AckLog::table(&args.access.acks_dir);
    let insecure = access.auth.insecure;
    let state = load_state(args)
        .with_auth(access.auth)
        .with_audit(audit)
        .with_acks(acks)
        .with_run(run)
        .with_ingest(ingest)
        .with_datasets(
            load_datasets(
                pipeline,
                args.limits.query_limits(),
                vec![audit_table, acks_table],
            )
            .await,
        );
    let scheme = if tls.is_some() { "https" } else { "http" };
    let shown = shown_addr(args.addr);
    println!("{scheme}://{shown}/  (API docs: {scheme}://{shown}/docs)");
    if access.first_token.is_none() && !insecure {
        println!(
            "log in at {scheme}://{shown}/login with an API token \
             (a new one: vitalflow token create --name NAME --role viewer --tokens {})",
            args.access.tokens.display()
        );
    }
    if let Some(token) = access.first_token {
        println!(
            "first start: an admin token was created; only its hash is kept in {}.\n\
             It is shown this once. Log in with:\n  {scheme}://{shown}/login?token={token}\n\
             More tokens: vitalflow token create --name NAME --role viewer|clinician|analyst|metrics|admin",
            args.access.tokens.display()
        );
    }
    Ok(tokio::spawn(async move {
        Ok(server::serve_with(listener, state, tls, shutdown).await?)
    }))
}

/// The access control the settings describe.
struct Access {
    auth: Authenticator,
    /// The admin token a first start created (to print once).
    first_token: Option<String>,
}

async fn secure(args: &AccessArgs, addr: SocketAddr) -> anyhow::Result<Access> {
    let sessions = Sessions::new(args.session_ttl);
    if args.insecure_no_auth {
        anyhow::ensure!(
            addr.ip().is_loopback(),
            "--insecure-no-auth serves patient data to anyone who can connect: it is \
             allowed on a loopback address only (not {addr}). Configure a credential instead: \
             `vitalflow token create --name NAME --role ROLE` or --oidc FILE"
        );
        tracing::warn!(
            %addr,
            "ACCESS CONTROL IS OFF (--insecure-no-auth): every request is served as admin; \
             for demos on this machine only"
        );
        return Ok(Access {
            auth: Authenticator {
                tokens: None,
                oidc: None,
                sessions,
                insecure: true,
            },
            first_token: None,
        });
    }
    let oidc = match &args.oidc {
        Some(path) => Some(OidcVerifier::from_file(path).await?),
        None => None,
    };
    let mut first_token = None;
    let tokens = if args.tokens.exists() {
        Some(TokensFile::open(&args.tokens)?)
    } else if oidc.is_none() {
        // First start (as Jupyter does): one admin token, shown once.
        let token = tokens::create(&args.tokens, "admin", [Role::Admin].into_iter().collect())
            .context("creating the first admin token")?;
        first_token = Some(token);
        Some(TokensFile::open(&args.tokens)?)
    } else {
        None
    };
    let auth = Authenticator {
        tokens,
        oidc,
        sessions,
        insecure: false,
    };
    anyhow::ensure!(
        auth.has_credentials(),
        "no credential is configured, so nobody could use the server: {} holds no token \
         and no --oidc file is given. Create a token with \
         `vitalflow token create --name NAME --role admin --tokens {}`, or pass --oidc FILE",
        args.tokens.display(),
        args.tokens.display()
    );
    if let Some(tokens) = &auth.tokens {
        tracing::info!(file = %tokens.path().display(), tokens = tokens.len(), "API tokens loaded");
    }
    if let Some(oidc) = &auth.oidc {
        tracing::info!(issuer = oidc.issuer(), "OIDC bearer tokens accepted");
    }
    Ok(Access { auth, first_token })
}

/// An address to show people: the wildcard address as loopback.
fn shown_addr(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    }
}

/// The stored datasets of `pipeline` plus `extra`, for `/api/query`; on
/// failure the server still starts, the log says why and the endpoint
/// answers 503 (without the paths and errors of the log).
pub async fn load_datasets(
    pipeline: &Path,
    limits: QueryLimits,
    extra: Vec<Dataset>,
) -> Result<QuerySession, String> {
    let loaded = async {
        let spec = spec::load(pipeline)?;
        // Only the sinks' schemas are needed: the server runs no transform.
        let planned = engine::plan_to(spec, engine::Depth::Schemas).await?;
        let mut datasets = datasets_of(&planned)?;
        datasets.extend(extra);
        Ok(QuerySession::with_limits(&datasets, limits).await?)
    }
    .await;
    loaded.map_err(|e: anyhow::Error| {
        let error = format!("{}: {e:#}", pipeline.display());
        tracing::error!(%error, "stored datasets not loaded; /api/query answers 503");
        "the pipeline's datasets could not be loaded; see the server log".to_string()
    })
}

/// Load the model; on failure the server still starts and `/health` says why.
pub fn load_state(args: &ServerArgs) -> AppState {
    let model = RiskModel::load(&args.model).map_err(|e| e.to_string());
    match &model {
        Ok(m) => {
            tracing::info!(model = %args.model.display(), version = %m.metadata().version, "model loaded")
        }
        Err(error) => {
            tracing::error!(model = %args.model.display(), %error, "model not loaded; /predict and /explain answer 503")
        }
    }
    AppState::new(model).with_limits(args.limits.server_limits())
}
