//! Escalation alerts with hysteresis: the one implementation behind both the
//! `alert:` transform (rows evaluated by the engine) and the live sink's
//! dashboard alerts.
//!
//! - [`state`]: the per-key state machine (alert on escalation only; step
//!   down after `rearm_after` of event time below the armed level).
//! - [`config`]: the `alert:` transform's YAML.
//!
//! Evaluating the transform's SQL conditions is the engine's job
//! (`engine::alert`); mapping a column of levels to ranks is the live
//! sink's. Both feed ranks and event times to [`AlertStates`].

pub mod config;
pub mod state;

pub use config::{AlertConfig, AlertLevel, ConfigError};
pub use state::{AlertStates, Escalation, KeyState};
