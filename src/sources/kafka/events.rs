//! Logs and metrics of the Kafka source.
#![allow(clippy::disallowed_macros)]

use std::collections::BTreeMap;

use crate::common::TopicPartition;
use crate::telemetry::events::rate_limited_log;

/// A batch of messages was decoded.
pub struct MessagesDecoded<'a> {
    pub pipeline: &'a str,
    pub source: &'a str,
    pub per_partition: &'a BTreeMap<TopicPartition, u64>,
    pub rejected: &'a BTreeMap<&'static str, u64>,
}

impl MessagesDecoded<'_> {
    pub fn emit(&self) {
        for (tp, count) in self.per_partition {
            metrics::counter!(
                "vitalflow_kafka_messages_total",
                "pipeline" => self.pipeline.to_owned(),
                "source" => self.source.to_owned(),
                "topic" => tp.topic.clone(),
                "partition" => tp.partition.to_string()
            )
            .increment(*count);
        }
        for (kind, count) in self.rejected {
            tracing::debug!(
                source = self.source,
                reason = kind,
                count,
                "records sent to dead letters"
            );
            metrics::counter!(
                "vitalflow_source_dead_letters_total",
                "pipeline" => self.pipeline.to_owned(),
                "source" => self.source.to_owned(),
                "reason" => *kind
            )
            .increment(*count);
        }
    }
}

/// librdkafka's periodic statistics for one partition of this consumer.
pub struct PartitionLag<'a> {
    pub source: &'a str,
    pub topic: &'a str,
    pub partition: i32,
    pub high_watermark: i64,
    pub committed: i64,
    pub lag: i64,
}

impl PartitionLag<'_> {
    pub fn emit(&self) {
        let (source, topic, partition) = (
            self.source.to_owned(),
            self.topic.to_owned(),
            self.partition.to_string(),
        );
        metrics::gauge!("vitalflow_kafka_consumer_lag_messages", "source" => source.clone(), "topic" => topic.clone(), "partition" => partition.clone())
            .set(self.lag as f64);
        metrics::gauge!("vitalflow_kafka_high_watermark_offset", "source" => source.clone(), "topic" => topic.clone(), "partition" => partition.clone())
            .set(self.high_watermark as f64);
        metrics::gauge!("vitalflow_kafka_committed_offset", "source" => source, "topic" => topic, "partition" => partition)
            .set(self.committed as f64);
    }
}

/// Partitions were assigned to this instance.
pub struct PartitionsAssigned<'a> {
    pub source: &'a str,
    /// `(partition, resume offset if a checkpoint had one)`.
    pub partitions: &'a [(TopicPartition, Option<i64>)],
}

impl PartitionsAssigned<'_> {
    pub fn emit(&self) {
        let described: Vec<String> = self
            .partitions
            .iter()
            .map(|(tp, offset)| match offset {
                Some(o) => format!("{tp}@{o}"),
                None => format!("{tp}@committed"),
            })
            .collect();
        tracing::info!(source = self.source, partitions = %described.join(" "), "partitions assigned");
    }
}

/// Partitions are being taken away; a checkpoint runs first.
pub struct PartitionsRevoked<'a> {
    pub source: &'a str,
    pub partitions: &'a [TopicPartition],
}

impl PartitionsRevoked<'_> {
    pub fn emit(&self) {
        let described: Vec<String> = self.partitions.iter().map(ToString::to_string).collect();
        tracing::info!(source = self.source, partitions = %described.join(" "), "partitions revoked; checkpointing before release");
    }
}

/// A Kafka client error librdkafka reported (it keeps retrying). During a
/// broker outage librdkafka reports one per retry: logged at most every
/// 10 s, with the number not logged.
pub struct ClientError<'a> {
    pub source: &'a str,
    pub error: &'a str,
}

impl ClientError<'_> {
    pub fn emit(&self) {
        if let Some(suppressed) =
            rate_limited_log("kafka_client_error", std::time::Duration::from_secs(10))
        {
            tracing::warn!(
                source = self.source,
                error = self.error,
                suppressed,
                "Kafka client error (retrying)"
            );
        }
        metrics::counter!("vitalflow_kafka_client_errors_total", "source" => self.source.to_owned())
            .increment(1);
    }
}

/// A line librdkafka logs, at its level (as rdkafka's default does).
pub struct LibrdkafkaLog<'a> {
    pub level: rdkafka::config::RDKafkaLogLevel,
    pub facility: &'a str,
    pub message: &'a str,
}

impl LibrdkafkaLog<'_> {
    pub fn emit(&self) {
        use rdkafka::config::RDKafkaLogLevel as Level;
        let (facility, message) = (self.facility, self.message);
        match self.level {
            Level::Emerg | Level::Alert | Level::Critical | Level::Error => {
                tracing::error!(target: "librdkafka", "librdkafka: {facility} {message}")
            }
            Level::Warning => {
                tracing::warn!(target: "librdkafka", "librdkafka: {facility} {message}")
            }
            Level::Notice | Level::Info => {
                tracing::info!(target: "librdkafka", "librdkafka: {facility} {message}")
            }
            Level::Debug => {
                tracing::debug!(target: "librdkafka", "librdkafka: {facility} {message}")
            }
        }
    }
}

/// The engine stopped taking batches (a sink applies back-pressure): the
/// source pauses fetching but keeps polling, so it stays in its group.
pub struct SourcePaused<'a> {
    pub pipeline: &'a str,
    pub source: &'a str,
    pub partitions: usize,
}

impl SourcePaused<'_> {
    pub fn emit(&self) {
        tracing::warn!(
            source = self.source,
            partitions = self.partitions,
            "pipeline back-pressure: fetching paused, group membership kept"
        );
        metrics::gauge!(
            "vitalflow_source_paused",
            "pipeline" => self.pipeline.to_owned(),
            "source" => self.source.to_owned()
        )
        .set(1.0);
    }
}

/// The engine takes batches again.
pub struct SourceResumed<'a> {
    pub pipeline: &'a str,
    pub source: &'a str,
    pub paused: std::time::Duration,
}

impl SourceResumed<'_> {
    pub fn emit(&self) {
        tracing::info!(
            source = self.source,
            paused_seconds = self.paused.as_secs_f64(),
            "fetching resumed"
        );
        metrics::gauge!(
            "vitalflow_source_paused",
            "pipeline" => self.pipeline.to_owned(),
            "source" => self.source.to_owned()
        )
        .set(0.0);
    }
}

/// The group session expired (librdkafka said so, or `session.rs` judged it):
/// the source fails and the pipeline restarts from its checkpoint.
pub struct SessionExpired<'a> {
    pub source: &'a str,
    pub reason: &'a str,
}

impl SessionExpired<'_> {
    pub fn emit(&self) {
        tracing::warn!(
            source = self.source,
            reason = self.reason,
            "the consumer group session has expired; the assignment is lost"
        );
        metrics::counter!("vitalflow_kafka_sessions_expired_total", "source" => self.source.to_owned())
            .increment(1);
    }
}

/// The consumer is being closed (its group left, its queues drained):
/// `failed` when the source stopped on an error.
pub struct ConsumerClosing<'a> {
    pub source: &'a str,
    pub failed: Option<&'a str>,
}

impl ConsumerClosing<'_> {
    pub fn emit(&self) {
        match self.failed {
            Some(error) => tracing::warn!(
                source = self.source,
                error,
                "the Kafka source failed; closing its consumer"
            ),
            None => tracing::info!(source = self.source, "closing the Kafka consumer"),
        }
    }
}

/// The consumer closed, or did not within the wait and is left to finish
/// closing in the background (librdkafka waits for an unreachable group
/// coordinator; the membership is gone either way).
pub struct ConsumerClosed<'a> {
    pub source: &'a str,
    pub took: std::time::Duration,
    pub finished: bool,
}

impl ConsumerClosed<'_> {
    pub fn emit(&self) {
        let seconds = self.took.as_secs_f64();
        if self.finished {
            tracing::info!(source = self.source, seconds, "Kafka consumer closed");
        } else {
            tracing::warn!(
                source = self.source,
                seconds,
                "the Kafka consumer has not closed yet (its group coordinator is unreachable); it goes on closing in the background"
            );
            metrics::counter!("vitalflow_kafka_slow_closes_total", "source" => self.source.to_owned())
                .increment(1);
        }
    }
}
