//! The Kafka sink runtime.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, SchemaRef};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use super::config::KafkaSinkConfig;
use super::events::KafkaDeliveryFailed;
use crate::common::ErrorChain;
use crate::kafka::{KeyedProducer, ensure_topic, wait_for_brokers};
use crate::sinks::{Sink, SinkError, SinkMessage, SinkResultExt, SinkSummary};

/// How long a checkpoint waits for outstanding deliveries before failing.
const DELIVERY_DEADLINE: Duration = Duration::from_secs(300);

pub struct KafkaSink {
    name: String,
    config: KafkaSinkConfig,
    key_column: Option<usize>,
    /// `format: fhir`: rows as FHIR resources, keyed by patient.
    fhir: Option<crate::sinks::fhir::Encoder>,
}

impl KafkaSink {
    pub fn new(name: &str, config: KafkaSinkConfig, schema: SchemaRef) -> Result<Self, SinkError> {
        let key_column = config
            .key
            .as_deref()
            .map(|k| schema.index_of(k))
            .transpose()
            .with_context(|| format!("sink `{name}`: key column"))?;
        let fhir = match config.format {
            super::config::SinkFormat::Fhir => {
                Some(config.fhir.encoder(&schema).map_err(SinkError::Config)?)
            }
            super::config::SinkFormat::Json => None,
        };
        Ok(Self {
            name: name.to_string(),
            config,
            key_column,
            fhir,
        })
    }

    fn write(&self, producer: &KeyedProducer, batch: &RecordBatch) -> Result<u64, SinkError> {
        if let Some(encoder) = &self.fhir {
            let mut rows = 0;
            for (patient, resource) in encoder.encode(batch)? {
                producer.send(patient.as_bytes(), resource.to_string().as_bytes())?;
                rows += 1;
            }
            return Ok(rows);
        }
        let mut writer = arrow::json::LineDelimitedWriter::new(Vec::new());
        writer.write(batch).context("encoding rows as JSON")?;
        writer.finish().context("encoding rows as JSON")?;
        let text = writer.into_inner();
        let keys = match self.key_column {
            Some(i) => Some(cast(batch.column(i), &DataType::Utf8).context("formatting the key")?),
            None => None,
        };
        let keys = keys.as_ref().map(|k| k.as_string::<i32>());
        let mut rows = 0;
        // JSON escapes newlines inside strings, so lines are rows.
        for (row, line) in text
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .enumerate()
        {
            let key = keys
                .filter(|k| k.is_valid(row))
                .map(|k| k.value(row).as_bytes())
                .unwrap_or_default();
            producer.send(key, line)?;
            rows += 1;
        }
        Ok(rows)
    }

    /// Everything sent so far is acknowledged by the broker.
    fn make_durable(&self, producer: &KeyedProducer, failed_before: u64) -> Result<(), SinkError> {
        producer.flush(DELIVERY_DEADLINE)?;
        let failed = producer
            .stats()
            .failed
            .load(std::sync::atomic::Ordering::Relaxed);
        if failed > failed_before {
            return Err(SinkError::Undelivered {
                failed: failed - failed_before,
                topic: self.config.topic.to_string(),
            });
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Sink for KafkaSink {
    async fn run(
        self: Box<Self>,
        mut input: mpsc::Receiver<SinkMessage>,
        _checkpoint_wanted: Arc<Notify>,
    ) -> Result<SinkSummary, SinkError> {
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let client = self.config.client();
            let who = format!("sink `{}`", self.name);
            wait_for_brokers(&client, &who, &CancellationToken::new())?;
            if let Some(create) = &self.config.create_topic {
                runtime.block_on(ensure_topic(&client, self.config.topic.as_str(), create))?;
            }
            let sink = self.name.clone();
            let producer = KeyedProducer::new(&client, self.config.topic.as_str(), move |error| {
                KafkaDeliveryFailed { sink: &sink, error }.emit();
            })?;
            let mut summary = SinkSummary {
                location: format!("kafka://{}/{}", client.brokers, self.config.topic),
                ..Default::default()
            };
            let mut failed_before = 0;
            while let Some(message) = input.blocking_recv() {
                match message {
                    SinkMessage::Data(batch) => {
                        summary.rows += self.write(&producer, &batch)?;
                    }
                    SinkMessage::Checkpoint(reply) => {
                        let result = self.make_durable(&producer, failed_before);
                        failed_before = producer
                            .stats()
                            .failed
                            .load(std::sync::atomic::Ordering::Relaxed);
                        let failure = result.as_ref().err().map(|e| ErrorChain(e).to_string());
                        let _ = reply.send(result.map(|()| Vec::new()));
                        if let Some(failure) = failure {
                            return Err(SinkError::CheckpointFailed(failure));
                        }
                    }
                    SinkMessage::Tick => {}
                }
            }
            // Unacknowledged rows were never checkpointed; flushing anyway
            // only avoids needless re-delivery after the restart.
            let _ = producer.flush(Duration::from_secs(10));
            Ok(summary)
        })
        .await
        .map_err(|source| SinkError::Panicked {
            thread: "Kafka sink thread",
            source,
        })?
    }
}
