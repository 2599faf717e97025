//! The Kafka source: JSON records from topics, consumed in a consumer group,
//! decoded to Arrow against the schema declared in the YAML, with every
//! record that does not fit routed to the `<source>_dead_letters` table.
//!
//! - `config.rs`: the YAML.
//! - `schema.rs`: declared fields -> Arrow schema and value checks.
//! - `decode.rs`: a batch of messages -> good rows + dead letters.
//! - `dead_letters.rs`: the dead-letter table.
//! - `consumer.rs`: the consumer thread, polling and handing batches over.
//! - `batcher.rs`: when buffered messages are a batch (pure, unit-tested).
//! - `offsets.rs`: the offset protocol: resume, rebalances, commits.
//! - `session.rs`: whether the group session has certainly expired (from librdkafka's statistics).
//! - `events.rs`: its logs and metrics.
//! - `error.rs`: why a configuration or a declared schema is refused.

mod batcher;
mod config;
mod consumer;
mod dead_letters;
mod decode;
mod error;
mod events;
mod offsets;
mod schema;
mod session;
mod strict;

pub use config::{KafkaSourceConfig, translator_for};
pub use dead_letters::dead_letter_schema;
pub use decode::{DecodedBatch, MessageDecoder, RawMessages};
pub use error::{ConfigError, FieldProblem, SchemaError};
pub use schema::{FieldSpec, FieldType, RecordSchema};
