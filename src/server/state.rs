//! Shared, read-only server state.

use std::sync::Arc;
use std::time::Instant;

use super::api::validation::FeatureRules;
use crate::models::RiskModel;
use crate::query::QuerySession;

/// Cloned into every handler; everything inside is immutable or `Arc`.
#[derive(Clone)]
pub struct AppState {
    pub model: Result<Arc<LoadedModel>, String>,
    /// The pipeline's stored datasets, for `/api/query`.
    pub datasets: Result<Arc<QuerySession>, String>,
    pub started: Instant,
}

/// A model with the request rules derived from its metadata.
pub struct LoadedModel {
    pub model: RiskModel,
    pub rules: FeatureRules,
}

impl AppState {
    /// `model` is the outcome of loading; a failure keeps the server up
    /// (health says why) rather than taking the dashboard down with it.
    pub fn new(model: Result<RiskModel, String>) -> Self {
        let model = model.and_then(|model| {
            let rules = FeatureRules::for_model(model.metadata())?;
            Ok(Arc::new(LoadedModel { model, rules }))
        });
        Self {
            model,
            datasets: Err("the server was started without a pipeline".into()),
            started: Instant::now(),
        }
    }

    /// Serve SQL over these datasets too.
    pub fn with_datasets(mut self, datasets: Result<QuerySession, String>) -> Self {
        self.datasets = datasets.map(Arc::new);
        self
    }
}
