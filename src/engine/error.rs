//! [`EngineError`]: failures while planning or running a pipeline, grouped
//! by who has to act.

use crate::common::{BoxError, ErrorChain};

/// An engine failure. Planning errors are the pipeline author's to fix;
/// runtime errors name the component that failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The spec is invalid or its SQL does not plan.
    #[error(transparent)]
    Spec(#[from] crate::spec::SpecError),

    /// A transform asks for something streaming SQL cannot do (an
    /// aggregate without a window, a bad window argument, a missing
    /// event-time column): the pipeline author's to fix. Planning wraps it
    /// into [`SpecError::Sql`](crate::spec::SpecError::Sql) with the
    /// transform's name.
    #[error("{0}")]
    Plan(String),

    /// DataFusion refused the SQL or failed while running it; its own
    /// message (unknown column, type mismatch) is what the user sees.
    #[error(transparent)]
    DataFusion(#[from] datafusion::error::DataFusionError),

    /// An Arrow kernel failed.
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),

    /// A source, operator or sink failed while running (its own layer's
    /// typed error is the source).
    #[error("{component} `{name}` failed: {}", ErrorChain(source.as_ref()))]
    Component {
        component: &'static str,
        name: String,
        #[source]
        source: BoxError,
    },

    /// Writing, reading or rolling forward a checkpoint failed.
    #[error("checkpoint failed: {}", ErrorChain(.0.as_ref()))]
    Checkpoint(#[source] BoxError),

    /// A broken invariant inside vitalflow: a bug, please report it.
    #[error("internal error (this is a bug in vitalflow, please report it): {0}")]
    Internal(String),
}

/// `Err(EngineError::Plan(format!(...)))`.
macro_rules! plan_err {
    ($($arg:tt)*) => {
        Err($crate::engine::EngineError::Plan(format!($($arg)*)))
    };
}
pub(crate) use plan_err;

/// `Err(EngineError::Internal(format!(...)))`, for broken invariants.
#[allow(unused_macros)]
macro_rules! internal_err {
    ($($arg:tt)*) => {
        Err($crate::engine::EngineError::Internal(format!($($arg)*)))
    };
}
#[allow(unused_imports)]
pub(crate) use internal_err;

impl EngineError {
    pub(crate) fn checkpoint(source: impl Into<BoxError>) -> Self {
        EngineError::Checkpoint(source.into())
    }

    pub(crate) fn component(
        component: &'static str,
        name: &str,
        source: impl Into<BoxError>,
    ) -> Self {
        EngineError::Component {
            component,
            name: name.to_string(),
            source: source.into(),
        }
    }
}
