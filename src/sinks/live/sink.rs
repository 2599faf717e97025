//! The live sink runtime: batches -> JSON rows -> hub.

use arrow::array::RecordBatch;
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use std::sync::Arc;
use tokio::sync::{Notify, mpsc};

use super::config::LiveSinkConfig;
use super::hub::{LiveHub, Row};
use crate::sinks::{Sink, SinkError, SinkMessage, SinkResultExt, SinkSummary};

pub struct LiveSink {
    hub: Arc<LiveHub>,
    config: LiveSinkConfig,
    schema: SchemaRef,
}

impl LiveSink {
    pub fn new(hub: Arc<LiveHub>, config: LiveSinkConfig, schema: SchemaRef) -> Self {
        Self {
            hub,
            config,
            schema,
        }
    }

    /// Rows as JSON objects, timestamps as epoch milliseconds (what the
    /// browser's `Date` takes directly).
    fn to_rows(&self, batch: &RecordBatch) -> Result<Vec<Row>, SinkError> {
        let mut fields = Vec::with_capacity(batch.num_columns());
        let mut columns = Vec::with_capacity(batch.num_columns());
        for (field, column) in self.schema.fields().iter().zip(batch.columns()) {
            if let DataType::Timestamp(unit, _) = field.data_type() {
                let millis = cast(column, &DataType::Timestamp(TimeUnit::Millisecond, None))
                    .and_then(|c| cast(&c, &DataType::Int64))
                    .with_context(|| {
                        format!("converting `{}` to milliseconds ({unit:?})", field.name())
                    })?;
                fields.push(Field::new(field.name(), DataType::Int64, true));
                columns.push(millis);
            } else {
                fields.push(field.as_ref().clone());
                columns.push(column.clone());
            }
        }
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
        let mut writer = arrow::json::ArrayWriter::new(Vec::new());
        writer.write(&batch)?;
        writer.finish()?;
        let bytes = writer.into_inner();
        Ok(serde_json::from_slice(&bytes)?)
    }
}

#[async_trait::async_trait]
impl Sink for LiveSink {
    async fn run(
        self: Box<Self>,
        mut input: mpsc::Receiver<SinkMessage>,
        _checkpoint_wanted: Arc<Notify>,
    ) -> Result<SinkSummary, SinkError> {
        let mut summary = SinkSummary {
            location: "memory (dashboard)".into(),
            ..Default::default()
        };
        self.hub.set_running(true);
        while let Some(message) = input.recv().await {
            match message {
                SinkMessage::Data(batch) => {
                    summary.rows += batch.num_rows() as u64;
                    let rows = self.to_rows(&batch)?;
                    self.hub.publish(rows, &self.config.key);
                }
                // Nothing durable here.
                SinkMessage::Checkpoint(reply) => {
                    let _ = reply.send(Ok(Vec::new()));
                }
                SinkMessage::Tick => {}
            }
        }
        self.hub.set_running(false);
        Ok(summary)
    }
}
