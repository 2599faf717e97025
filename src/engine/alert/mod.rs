//! Alerts: escalation-only alerting per key (patient), with hysteresis.
//!
//! - [`config`]: the `alert:` transform in the pipeline YAML.
//! - [`state`]: the per-key state machine.
//! - [`operator`]: conditions evaluated with DataFusion, alerts out.

pub mod config;
mod operator;
mod state;

pub use config::{AlertConfig, AlertLevel};
pub use operator::AlertOperator;
