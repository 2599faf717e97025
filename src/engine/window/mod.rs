//! Event-time windows: `tumble`, `hop` and `session` in GROUP BY.
//!
//! - [`functions`]: the SQL functions and the [`WindowKind`] they describe.
//! - [`plan`]: a windowed query split into pre plan, aggregate, post plan.
//! - [`aggregates`]: DataFusion accumulators and their per-batch inputs.
//! - [`fixed`] / [`session`]: open windows and their partial aggregates.
//! - [`state`]: closed and saved groups; the checkpoint format.
//! - [`operator`]: the [`Operator`](crate::engine::Operator) tying it up.

mod aggregates;
mod fixed;
pub mod functions;
mod operator;
pub mod plan;
mod session;
mod state;

pub use functions::{WindowKind, window_udfs};
pub use operator::{WindowOperator, WindowParts, WindowPlan};
pub use plan::{WINDOWS_TABLE, WindowedQuery, split_windowed};
