//! Logs and metrics of the Kafka sink.
#![allow(clippy::disallowed_macros)]

/// The producer gave up on a message (after librdkafka's own retries).
pub struct KafkaDeliveryFailed<'a> {
    pub sink: &'a str,
    pub error: &'a str,
}

impl KafkaDeliveryFailed<'_> {
    pub fn emit(&self) {
        tracing::error!(sink = %self.sink, error = self.error, "Kafka delivery failed");
        metrics::counter!("vitalflow_sink_delivery_failures_total", "sink" => self.sink.to_owned())
            .increment(1);
    }
}
