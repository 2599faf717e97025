//! [`EngineError`]: failures while planning or running a pipeline, grouped
//! by who has to act.

/// An engine failure. Planning errors are the pipeline author's to fix;
/// runtime errors name the component that failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The spec is invalid or its SQL does not plan.
    #[error(transparent)]
    Spec(#[from] crate::spec::SpecError),

    /// A source, operator or sink failed while running.
    #[error("{component} `{name}` failed: {source:#}")]
    Component {
        component: &'static str,
        name: String,
        #[source]
        source: anyhow::Error,
    },

    /// Writing, reading or rolling forward a checkpoint failed.
    #[error("checkpoint failed: {0:#}")]
    Checkpoint(#[source] anyhow::Error),

    /// A broken invariant inside vitalflow: a bug, please report it.
    #[error("internal error (this is a bug in vitalflow, please report it): {0}")]
    Internal(String),
}

impl EngineError {
    pub(crate) fn component(
        component: &'static str,
        name: &str,
        source: impl Into<anyhow::Error>,
    ) -> Self {
        EngineError::Component {
            component,
            name: name.to_string(),
            source: source.into(),
        }
    }
}
