//! An idempotent, keyed producer with delivery accounting, shared by the
//! Kafka sink and `vitalflow simulate`.
//!
//! librdkafka retries every retriable failure with exponential backoff
//! (`retry.backoff.ms` doubling up to `retry.backoff.max.ms`) until
//! `message.timeout.ms`; with `enable.idempotence` the broker drops the
//! duplicates retries could cause and keeps each partition in order. A
//! message still undelivered after that is counted and logged, never lost
//! without a trace.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};

use super::ClientSettings;

/// Delivery outcomes, readable while the producer runs.
#[derive(Debug, Default)]
pub struct DeliveryStats {
    pub delivered: AtomicU64,
    pub failed: AtomicU64,
}

struct DeliveryContext {
    stats: Arc<DeliveryStats>,
    /// Called for each failed delivery (log + metric of the owner).
    on_failure: Box<dyn Fn(&str) + Send + Sync>,
}

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.stats.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((error, message)) => {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                let what = format!(
                    "{error} (topic {}, {} bytes)",
                    message.topic(),
                    message.payload_len()
                );
                (self.on_failure)(&what);
            }
        }
    }
}

/// A JSON producer for one topic.
pub struct KeyedProducer {
    producer: ThreadedProducer<DeliveryContext>,
    topic: String,
    stats: Arc<DeliveryStats>,
}

impl KeyedProducer {
    pub fn new(
        settings: &ClientSettings,
        topic: &str,
        on_failure: impl Fn(&str) + Send + Sync + 'static,
    ) -> Result<Self, super::KafkaError> {
        let stats = Arc::new(DeliveryStats::default());
        let context = DeliveryContext {
            stats: stats.clone(),
            on_failure: Box::new(on_failure),
        };
        let producer = settings
            .client_config(&[
                ("enable.idempotence", "true"),
                ("acks", "all"),
                ("retry.backoff.ms", "100"),
                ("retry.backoff.max.ms", "2000"),
                ("message.timeout.ms", "300000"),
                ("linger.ms", "5"),
                ("queue.buffering.max.messages", "1000000"),
            ])
            .create_with_context(context)
            .map_err(|e| super::KafkaError::client("creating the Kafka producer", e))?;
        Ok(Self {
            producer,
            topic: topic.to_string(),
            stats,
        })
    }

    pub fn stats(&self) -> &DeliveryStats {
        &self.stats
    }

    /// Queue one message; waits while librdkafka's queue is full (that is
    /// the backpressure when the broker is slow or away).
    pub fn send(&self, key: &[u8], payload: &[u8]) -> Result<(), super::KafkaError> {
        let mut record = BaseRecord::to(&self.topic).key(key).payload(payload);
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    record = returned;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((error, _)) => {
                    return Err(super::KafkaError::client(
                        format!("producing to `{}`", self.topic),
                        error,
                    ));
                }
            }
        }
    }

    /// Wait until every queued message is delivered or failed.
    pub fn flush(&self, timeout: Duration) -> Result<(), super::KafkaError> {
        self.producer.flush(timeout).map_err(|e| {
            super::KafkaError::client(format!("flushing the producer of `{}`", self.topic), e)
        })
    }

    pub fn in_flight(&self) -> i32 {
        self.producer.in_flight_count()
    }
}
