//! The streaming engine: DataFusion plans run over micro-batches.
//!
//! - [`plan`] turns a validated spec into operators, planning each SQL
//!   transform once against the schemas it reads.
//! - [`runtime`] moves batches source -> operators -> sinks with bounded
//!   channels; [`checkpoint`] makes files and source offsets durable together.
//! - [`TransformPlan`] (planned, shared) starts the [`Operator`]s a run
//!   owns (`operators.rs`): the stateless [`SqlOperator`], the [`window`]
//!   operator that holds partial aggregates, the [`alert`] operator; state
//!   keyed by the source's key lives per source partition.
//! - [`watermark`] tracks event time per source and partition.
//! - `compaction.rs`: threads that merge closed days of the datasets while
//!   the pipeline runs.

pub mod alert;
pub mod checkpoint;
mod compaction;
mod error;
mod events;
mod micro_batch;
mod operator;
mod operators;
pub mod plan;
pub mod runtime;
mod session;
mod sql_operator;
mod transform;
pub mod watermark;
pub mod window;

pub use error::{CheckpointError, EngineError, OperatorError, StateFileError, StoppedUnexpectedly};
pub use operator::{Operator, TransformPlan};
pub use plan::{Depth, PlannedPipeline, PlannedTransform, StateScope, plan, plan_to};
pub use runtime::{RunOptions, RunSummary, run};
pub use session::streaming_session;
pub use sql_operator::{SqlOperator, SqlPlan};
