//! `vitalflow simulate`: the simulated ward published to Kafka, one message
//! (JSON, FHIR or HL7 v2) per reading keyed by `patient_id` (a patient's readings stay in
//! one partition, in order).

use std::time::{Duration, Instant};

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::{Pacing, PublishError, SimulatorConfig, VitalsGenerator, encode_messages};
use crate::kafka::{ClientSettings, KeyedProducer, TopicSettings, ensure_topic, wait_for_brokers};
use crate::telemetry::events::{SimulatorDeliveryFailed, SimulatorProduced};

/// Where and how to publish.
#[derive(Debug, Clone)]
pub struct PublishOptions {
    pub client: ClientSettings,
    pub topic: String,
    /// Create the topic if missing.
    pub create_topic: Option<TopicSettings>,
    /// How long to wait for outstanding deliveries when stopping.
    pub flush_timeout: Duration,
    /// The messages' format: JSON records, FHIR Bundles or HL7 v2 ORU^R01.
    pub format: crate::interop::Format,
}

/// What a publishing run did.
#[derive(Debug, Clone, Default)]
pub struct PublishSummary {
    pub produced: u64,
    pub delivered: u64,
    pub failed: u64,
    pub elapsed: Duration,
}

/// Publish readings until the simulator's `limit` or `shutdown`, then flush.
pub async fn publish_readings(
    simulator: SimulatorConfig,
    options: PublishOptions,
    shutdown: CancellationToken,
) -> Result<PublishSummary, PublishError> {
    let started = Instant::now();
    let wait_client = options.client.clone();
    let wait_shutdown = shutdown.clone();
    let ready = tokio::task::spawn_blocking(move || {
        wait_for_brokers(&wait_client, "simulate", &wait_shutdown)
    })
    .await
    .map_err(PublishError::Panicked)??;
    if !ready {
        return Ok(PublishSummary::default());
    }
    if let Some(create) = &options.create_topic {
        ensure_topic(&options.client, &options.topic, create).await?;
    }
    let producer = KeyedProducer::new(&options.client, &options.topic, |error| {
        SimulatorDeliveryFailed { error }.emit()
    })?;
    let start_ms = simulator.start_millis()?;
    let mut generator = VitalsGenerator::new(&simulator, start_ms);
    let mut ticker = (simulator.pacing == Pacing::Realtime).then(|| {
        let mut t = tokio::time::interval(simulator.interval.0);
        t.set_missed_tick_behavior(MissedTickBehavior::Burst);
        t
    });
    let mut produced = 0u64;
    loop {
        let batch = match ticker.as_mut() {
            Some(t) => tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = t.tick() => generator.next_tick(),
            },
            None if shutdown.is_cancelled() => break,
            None => generator.next_batch(simulator.batch_rows),
        };
        let Some(batch) = batch else { break };
        let (keys, payloads) = encode_messages(&batch, options.format)?;
        // `send` may wait for queue space: keep it off the async workers.
        let sent = tokio::task::block_in_place(|| -> Result<usize, PublishError> {
            for (key, payload) in keys.iter().zip(&payloads) {
                producer.send(key.as_bytes(), payload)?;
            }
            Ok(payloads.len())
        })?;
        produced += sent as u64;
        SimulatorProduced { messages: sent }.emit();
    }
    tracing::info!(
        produced,
        in_flight = producer.in_flight(),
        "simulator stopping: flushing the producer"
    );
    let flushed = tokio::task::block_in_place(|| producer.flush(options.flush_timeout));
    let stats = producer.stats();
    let summary = PublishSummary {
        produced,
        delivered: stats.delivered.load(std::sync::atomic::Ordering::Relaxed),
        failed: stats.failed.load(std::sync::atomic::Ordering::Relaxed),
        elapsed: started.elapsed(),
    };
    flushed.map_err(|source| PublishError::Undelivered {
        undelivered: summary.produced - summary.delivered - summary.failed,
        produced: summary.produced,
        source,
    })?;
    Ok(summary)
}
