//! `vitalflow serve`

use super::args::{ServeArgs, ServerArgs};
use super::signal::shutdown_on_signal;
use crate::models::RiskModel;
use crate::server::{self, AppState};

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let shutdown = shutdown_on_signal();
    let listener = server::bind(args.server.addr).await?;
    println!(
        "http://{}/  (API docs: http://{}/docs)",
        args.server.addr, args.server.addr
    );
    server::serve(listener, load_state(&args.server), shutdown).await
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
    AppState::new(model)
}
