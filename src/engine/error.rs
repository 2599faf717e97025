//! The engine's errors, grouped by kind of failure (as DataFusion groups
//! `DataFusionError`) and by who has to act:
//!
//! - [`EngineError`]: planning or running a pipeline. Planning errors are
//!   the pipeline author's to fix; run-time errors name the component that
//!   failed and carry that component's own error as their source.
//! - [`OperatorError`]: an [`Operator`](super::Operator) failed on a batch,
//!   on a watermark or with saved state; the runtime wraps it into
//!   [`EngineError::Component`] with the transform's name.
//! - [`CheckpointError`]: writing, reading or rolling forward a checkpoint
//!   (local I/O, the manifest's JSON, the Arrow IPC files of saved state, a
//!   dataset changed behind vitalflow's back); [`EngineError::Checkpoint`]
//!   holds it.
//!
//! Messages say what was being done; the cause stays the `source()`, so
//! [`ErrorChain`] prints the whole story on one line.

use std::path::PathBuf;

use crate::common::{BoxError, ErrorChain, EventTimeError, TopicPartition};
use crate::storage::StorageError;

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
    /// typed error is the source: a `SourceError`, an [`OperatorError`], a
    /// `SinkError`, or [`StoppedUnexpectedly`]).
    #[error("{component} `{name}` failed: {}", ErrorChain(source.as_ref()))]
    Component {
        component: &'static str,
        name: String,
        #[source]
        source: BoxError,
    },

    /// Writing, reading or rolling forward a checkpoint failed.
    #[error("checkpoint failed: {}", ErrorChain(.0))]
    Checkpoint(#[from] CheckpointError),

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
    /// A source, operator or sink named `name` failed with `source`, its
    /// own layer's error (typed, or any error a component still returns).
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

/// The source of [`EngineError::Component`] for a sink whose task ended
/// while the engine still talked to it (a closed channel, a dropped
/// checkpoint reply). The sink's own error, collected when its task is
/// joined, replaces it.
#[derive(Debug, thiserror::Error)]
#[error("stopped unexpectedly")]
pub struct StoppedUnexpectedly;

/// An [`Operator`](super::Operator) failed while running: on a batch, on a
/// watermark, or saving or restoring its state.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    // Running the transform's SQL and kernels over a batch.
    /// DataFusion failed while running the transform's plan or one of its
    /// expressions; its own message is what the user sees.
    #[error(transparent)]
    DataFusion(#[from] datafusion::error::DataFusionError),

    /// An Arrow kernel failed.
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),

    /// The batch's event times could not be read.
    #[error(transparent)]
    EventTime(#[from] EventTimeError),

    /// Evaluating the window's GROUP BY keys or an aggregate's arguments
    /// failed (`what` names which).
    #[error("evaluating {what}")]
    Evaluate {
        what: String,
        #[source]
        source: datafusion::error::DataFusionError,
    },

    /// The closed windows' groups did not form the aggregate's batch.
    #[error("assembling the results of transform `{transform}`")]
    Assemble {
        transform: String,
        #[source]
        source: arrow::error::ArrowError,
    },

    // Saved state (checkpoints).
    /// The saved window state no longer fits the transform's query: the
    /// user's to fix (the SQL changed since the checkpoint).
    #[error(
        "the saved state of transform `{transform}` does not match its query any more \
         (the SQL changed since the checkpoint); remove the checkpoint directory to start \
         the windows afresh"
    )]
    StateMismatch { transform: String },

    /// The saved alert state is not the alert transform's state schema.
    #[error("saved alert state has an unexpected shape")]
    AlertStateShape,

    /// Window state had too few columns to be split into bounds and keys.
    #[error("saved window state has too few columns")]
    StateTooFewColumns,

    // Broken invariants: bugs. Their text is the one users have seen so far.
    /// Saved window state built with another number of columns than its
    /// schema has.
    #[error("saved window state has {found} columns, expected {expected}")]
    StateColumns { found: usize, expected: usize },

    /// State was handed to a transform that keeps none (the runtime restores
    /// stateful transforms only).
    #[error("this transform keeps no state to restore")]
    NotStateful,

    /// The transform was planned for its output schema only
    /// ([`super::plan::Depth::Schemas`]): it has no plan to run.
    #[error("transform `{transform}` was planned for its schema only and cannot run")]
    SchemaOnly { transform: String },

    /// An array is not of the type the plan guarantees (`what` says which).
    #[error("{what}")]
    UnexpectedType { what: &'static str },
}

/// A checkpoint could not be written, read or rolled forward.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    // Local I/O.
    /// A file operation on the checkpoint directory failed; `context` says
    /// which and on what path.
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    /// Writing a manifest or a state file durably failed; `context` says
    /// which and where.
    #[error("{context}")]
    Write {
        context: String,
        #[source]
        source: StorageError,
    },

    /// An object store holding the checkpoints failed (or cannot be used
    /// from here); `context` says what and where.
    #[error("{context}")]
    Remote {
        context: String,
        #[source]
        source: Option<object_store::Error>,
    },

    /// Publishing a staged file of the checkpoint failed.
    #[error(transparent)]
    Publish(#[from] StorageError),

    // Formats.
    /// A manifest could not be encoded as JSON.
    #[error("encoding a checkpoint")]
    Encode(#[source] serde_json::Error),

    /// A manifest is not valid JSON or not a manifest's shape.
    #[error("reading checkpoint {location}")]
    Manifest {
        location: String,
        #[source]
        source: serde_json::Error,
    },

    /// An operator's state could not be encoded as Arrow IPC.
    #[error(transparent)]
    EncodeState(#[from] arrow::error::ArrowError),

    /// An operator's saved state could not be read back.
    #[error("reading the saved state of `{operator}` from {location}")]
    ReadState {
        operator: String,
        location: String,
        #[source]
        source: StateFileError,
    },

    // Ownership.
    /// Another instance published rows of a partition this checkpoint
    /// would publish too, after this instance started reading it: two
    /// instances read the partition at once (a consumer group rebalance
    /// one of them missed). Publishing would store those rows twice, so
    /// nothing is published; the run restarts from the checkpoints.
    #[error(
        "not publishing: {partition} of source `{source_name}` was read here from {} but another \
         instance has since published it up to offset {durable}: that instance owns the \
         partition now",
        from.map_or_else(|| "its start".to_string(), |o| format!("offset {o}"))
    )]
    Fenced {
        source_name: String,
        partition: TopicPartition,
        /// The durable offset the unpublished rows start at (`None`: no
        /// checkpoint had the partition when this instance took it).
        from: Option<i64>,
        /// The offset another instance's checkpoint has made durable.
        durable: i64,
    },

    // The dataset changed behind vitalflow's back.
    /// A file the newest manifest lists is neither staged nor published.
    #[error(
        "checkpoint {} lists {} but neither it nor its published name {} exists: \
         the dataset was modified outside vitalflow",
        manifest,
        staged.display(),
        published.display()
    )]
    FileMissing {
        manifest: String,
        staged: PathBuf,
        published: PathBuf,
    },
}

/// Why a saved state file (Arrow IPC) could not be read;
/// [`CheckpointError::ReadState`] adds the operator and the path.
#[derive(Debug, thiserror::Error)]
pub enum StateFileError {
    #[error(transparent)]
    Open(#[from] std::io::Error),

    #[error(transparent)]
    Ipc(#[from] arrow::error::ArrowError),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one-line chains are the texts `anyhow`'s `{:#}` printed before
    /// these errors were typed.
    #[test]
    fn chains_read_as_before() {
        let io = || std::io::Error::other("disk full");
        let write = CheckpointError::Write {
            context: "writing checkpoint /s/w/checkpoint-000000000001.json".into(),
            source: StorageError::Io {
                context: "syncing /s/w".into(),
                source: io(),
            },
        };
        assert_eq!(
            EngineError::from(write).to_string(),
            "checkpoint failed: writing checkpoint /s/w/checkpoint-000000000001.json: \
             syncing /s/w: disk full"
        );
        let read = CheckpointError::ReadState {
            operator: "hr_1m".into(),
            location: "/s/w/state-000000000001-hr_1m.arrow".into(),
            source: io().into(),
        };
        assert_eq!(
            ErrorChain(&read).to_string(),
            "reading the saved state of `hr_1m` from /s/w/state-000000000001-hr_1m.arrow: \
             disk full"
        );
        let failed = EngineError::component(
            "transform",
            "hr_1m",
            OperatorError::StateMismatch {
                transform: "hr_1m".into(),
            },
        );
        assert_eq!(
            failed.to_string(),
            "transform `hr_1m` failed: the saved state of transform `hr_1m` does not match \
             its query any more (the SQL changed since the checkpoint); remove the checkpoint \
             directory to start the windows afresh"
        );
        assert_eq!(
            EngineError::component("sink", "vitals", StoppedUnexpectedly).to_string(),
            "sink `vitals` failed: stopped unexpectedly"
        );
    }
}
