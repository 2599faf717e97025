//! `GET /health`

use axum::Json;
use axum::extract::State;

use super::types::{Health, PartitionHealth, StorageHealth};
use crate::server::state::AppState;

/// Liveness, model status, for remote datasets whether uploads succeed, and
/// the source partitions this instance owns.
#[utoipa::path(get, path = "/health", tag = "model", responses((status = 200, description = "Server is up", body = Health)))]
pub async fn health(State(state): State<AppState>) -> Json<Health> {
    let (loaded, name, version, error) = match &state.model {
        Ok(m) => (
            true,
            Some(m.model.metadata().name.clone()),
            Some(m.model.metadata().version.clone()),
            None,
        ),
        Err(e) => (false, None, None, Some(e.clone())),
    };
    let storage = state.stores.all();
    let healthy = loaded && !storage.iter().any(|s| s.is_degraded());
    Json(Health {
        status: if healthy { "ok" } else { "degraded" }.into(),
        storage: storage.into_iter().map(StorageHealth::from).collect(),
        partitions: state
            .partitions
            .all()
            .into_iter()
            .map(|(source, partition, status)| PartitionHealth::new(source, partition, status))
            .collect(),
        model_loaded: loaded,
        model_name: name,
        model_version: version,
        model_error: error,
        version: env!("CARGO_PKG_VERSION").into(),
        uptime_seconds: state.started.elapsed().as_secs_f64(),
    })
}
