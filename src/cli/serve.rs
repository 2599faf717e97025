//! `vitalflow serve`

use super::args::{ServeArgs, ServerArgs};
use super::signal::shutdown_on_signal;
use std::path::Path;

use crate::models::RiskModel;
use crate::query::{QueryLimits, QuerySession, datasets_of};
use crate::server::{self, AppState};
use crate::{engine, spec};

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let shutdown = shutdown_on_signal();
    let listener = server::bind(args.server.addr).await?;
    println!(
        "http://{}/  (API docs: http://{}/docs)",
        args.server.addr, args.server.addr
    );
    let state = load_state(&args.server)
        .with_datasets(load_datasets(&args.pipeline, args.server.limits.query_limits()).await);
    server::serve(listener, state, shutdown).await
}

/// The stored datasets of `pipeline`, for `/api/query`; on failure the
/// server still starts, the log says why and the endpoint answers 503
/// (without the paths and errors of the log).
pub async fn load_datasets(pipeline: &Path, limits: QueryLimits) -> Result<QuerySession, String> {
    let loaded = async {
        let spec = spec::load(pipeline)?;
        let planned = engine::plan(spec).await?;
        QuerySession::with_limits(&datasets_of(&planned)?, limits).await
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
