//! The Kafka sink: rows of a table as JSON messages, keyed by a column,
//! through the idempotent producer. At a checkpoint it waits until every
//! message is acknowledged, so source offsets are committed only after the
//! rows are in Kafka (at-least-once across crashes; the idempotent producer
//! rules out duplicates from retries within a run).

mod config;
mod events;
mod sink;

pub use config::KafkaSinkConfig;
