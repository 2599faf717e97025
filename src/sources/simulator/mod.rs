//! Built-in bedside-monitor simulator.
//!
//! Unlike the original system (random values and a fresh UUID per message),
//! this simulates a ward: N patients with stable ids and personal baselines,
//! readings that drift around the baseline, and occasional deterioration
//! episodes that move every vital the way NEWS2 expects. Seeded and
//! deterministic: the same seed gives the same readings.

mod config;
mod error;
mod generator;
mod json;
mod patient;
mod publish;
mod schema;
mod source;

pub use config::{Pacing, SimulatorConfig};
pub use error::PublishError;
pub use generator::VitalsGenerator;
pub use json::{encode_json_lines, encode_messages, readings_of};
pub use publish::{PublishOptions, PublishSummary, publish_readings};
pub use schema::vitals_schema;
pub use source::SimulatorSource;
