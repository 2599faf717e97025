//! REST handlers, one file per resource, and the OpenAPI document built
//! from their annotations.

pub mod fhir;
pub mod health;
pub mod history;
pub mod predict;
pub mod query;
pub mod types;
pub mod validation;
pub mod ward;

use utoipa::OpenApi;

/// The OpenAPI 3 document served at `/openapi.json`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "vitalflow",
        description = "Diabetes risk prediction with exact TreeSHAP explanations. Risk levels: `low` p < 0.3, `moderate` 0.3 ≤ p < 0.6, `high` p ≥ 0.6 (p = probability of diabetes); label 1 iff p > 0.5. Invalid input gets HTTP 422 with one entry per offending field."
    ),
    paths(health::health, predict::predict, predict::predict_batch, predict::explain, predict::explain_batch, query::query, history::history, ward::acknowledge),
    tags((name = "model", description = "Risk model"), (name = "data", description = "SQL over the stored vitals"))
)]
pub struct ApiDoc;
