//! What every Kafka component shares: client settings from the YAML or the
//! command line, waiting for brokers, and creating topics.
//!
//! librdkafka (bundled 2.12 through `rdkafka`) does the protocol work:
//! reconnects, retries with exponential backoff, idempotent producing and
//! consumer-group membership. Anything a real cluster needs (TLS, SASL) is a
//! librdkafka property passed through `properties:` unchanged.

mod admin;
mod error;
mod producer;
mod settings;

pub use admin::{TopicSettings, ensure_topic, wait_for_brokers};
pub use error::{ConfigError, KafkaError};
pub use producer::{DeliveryStats, KeyedProducer};
pub use settings::ClientSettings;
