//! Broker availability and topic creation.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::{ClientSettings, ConfigError, KafkaError};
use crate::common::HumanDuration;
use crate::common::backoff;

/// How a missing topic is created (`create_topic:` in YAML).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicSettings {
    #[serde(default = "default_partitions")]
    pub partitions: i32,
    #[serde(default = "default_replication")]
    pub replication_factor: i32,
    /// How long the broker keeps records (the original system: 7 days).
    #[serde(default = "default_retention")]
    pub retention: HumanDuration,
}

impl Default for TopicSettings {
    fn default() -> Self {
        Self {
            partitions: default_partitions(),
            replication_factor: default_replication(),
            retention: default_retention(),
        }
    }
}

fn default_partitions() -> i32 {
    4
}
fn default_replication() -> i32 {
    1
}
fn default_retention() -> HumanDuration {
    HumanDuration(Duration::from_secs(7 * 24 * 3600))
}

impl TopicSettings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=10_000).contains(&self.partitions) {
            return Err(ConfigError::OutOfRange(format!(
                "`partitions` must be between 1 and 10000, got {}",
                self.partitions
            )));
        }
        if !(1..=16).contains(&self.replication_factor) {
            return Err(ConfigError::OutOfRange(format!(
                "`replication_factor` must be between 1 and 16, got {}",
                self.replication_factor
            )));
        }
        if self.retention.0.is_zero() {
            return Err(ConfigError::OutOfRange(
                "`retention` must be greater than zero".into(),
            ));
        }
        Ok(())
    }
}

/// Block until the brokers answer a metadata request, logging why not every
/// few seconds. Returns `false` if `shutdown` fired first.
pub fn wait_for_brokers(
    settings: &ClientSettings,
    who: &str,
    shutdown: &CancellationToken,
) -> Result<bool, KafkaError> {
    let consumer: BaseConsumer = settings
        .client_config(&[])
        .create()
        .map_err(|e| KafkaError::client("creating a Kafka client", e))?;
    let mut delays = backoff::exponential(Duration::from_millis(250), MAX_BROKER_WAIT_DELAY);
    loop {
        let backoff = delays.next().unwrap_or(MAX_BROKER_WAIT_DELAY);
        match consumer.fetch_metadata(None, Duration::from_secs(2)) {
            Ok(metadata) if !metadata.brokers().is_empty() => return Ok(true),
            Ok(_) => {
                tracing::warn!(%who, brokers = %settings.brokers, "Kafka answered with no brokers; retrying")
            }
            Err(error) => tracing::warn!(
                %who,
                brokers = %settings.brokers,
                %error,
                retry_in_ms = backoff.as_millis() as u64,
                "waiting for Kafka brokers"
            ),
        }
        if shutdown.is_cancelled() {
            return Ok(false);
        }
        std::thread::sleep(backoff);
    }
}

/// The longest pause between two attempts to reach the brokers.
const MAX_BROKER_WAIT_DELAY: Duration = Duration::from_secs(5);

/// Create `topic` if it does not exist. An existing topic is left as it is
/// (its partitions and retention are the operator's).
pub async fn ensure_topic(
    settings: &ClientSettings,
    topic: &str,
    topic_settings: &TopicSettings,
) -> Result<bool, KafkaError> {
    let admin: AdminClient<DefaultClientContext> = settings
        .client_config(&[])
        .create()
        .map_err(|e| KafkaError::client("creating a Kafka admin client", e))?;
    let retention = topic_settings.retention.0.as_millis().to_string();
    let new_topic = NewTopic::new(
        topic,
        topic_settings.partitions,
        TopicReplication::Fixed(topic_settings.replication_factor),
    )
    .set("retention.ms", &retention);
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics([&new_topic], &options)
        .await
        .map_err(|e| KafkaError::client(format!("creating topic `{topic}`"), e))?;
    // One topic asked for, one result.
    match results.into_iter().next() {
        None => Ok(false),
        Some(result) => match result {
            Ok(_) => {
                tracing::info!(
                    topic,
                    partitions = topic_settings.partitions,
                    retention_ms = %retention,
                    "created Kafka topic"
                );
                Ok(true)
            }
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => Ok(false),
            Err((name, code)) => Err(KafkaError::CreateTopic { topic: name, code }),
        },
    }
}
