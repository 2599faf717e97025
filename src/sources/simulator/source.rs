//! The simulator as a pipeline source: paces the generator to the wall clock
//! (realtime) or runs it flat out (unpaced).

use tokio::time::{Instant, MissedTickBehavior};

use arrow::array::RecordBatch;

use super::config::{Pacing, SimulatorConfig};
use super::generator::VitalsGenerator;
use super::{encode_messages, vitals_schema};
use crate::interop::hl7v2::Hl7Options;
use crate::interop::{CodeSet, FieldKind, Format, Translator, field_kind};
use crate::sources::kafka::{FieldSpec, FieldType, MessageDecoder, RawMessages, RecordSchema};
use crate::sources::{Source, SourceBatch, SourceContext, SourceError, SourceEvent, SourceSummary};

/// `format: fhir | hl7v2`: every batch written in the format and read back
/// through the Kafka source's decoder, as if it had crossed a broker.
struct WireRoundTrip {
    format: Format,
    decoder: MessageDecoder,
}

impl WireRoundTrip {
    fn new(format: Format, name: &str) -> Result<Option<Self>, SourceError> {
        let Some(translator) = Translator::new(format, CodeSet::defaults(), Hl7Options::default())
        else {
            return Ok(None);
        };
        // The simulator's columns as a reading's fields, of the types its
        // schema gives them.
        let fields = vitals_schema()
            .fields()
            .iter()
            .map(|f| {
                let field_type = match field_kind(f.name()) {
                    Some(FieldKind::Text) => FieldType::String,
                    Some(FieldKind::Time) => FieldType::Timestamp,
                    Some(FieldKind::Whole) => FieldType::Int32,
                    Some(FieldKind::Decimal) => FieldType::Float64,
                    Some(FieldKind::Flag) => FieldType::Boolean,
                    None => {
                        return Err(SourceError::Internal(format!(
                            "the simulator's column `{}` is not a field of a reading",
                            f.name()
                        )));
                    }
                };
                Ok(FieldSpec::new(f.name(), field_type))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let schema = RecordSchema::try_new(&fields)
            .map_err(|e| SourceError::Internal(format!("the reading's schema: {e}")))?;
        let decoder = MessageDecoder::new(name, schema, 1 << 20)?.with_translator(Some(translator));
        Ok(Some(Self { format, decoder }))
    }

    fn pass(&mut self, batch: RecordBatch) -> Result<RecordBatch, SourceError> {
        let (keys, payloads) = encode_messages(&batch, self.format).map_err(|e| {
            SourceError::Internal(format!("writing readings as {:?}: {e}", self.format))
        })?;
        let mut raw = RawMessages::default();
        for (i, (key, payload)) in keys.iter().zip(&payloads).enumerate() {
            raw.push(
                "simulator",
                0,
                i as i64,
                None,
                Some(key.as_bytes()),
                Some(payload),
            );
        }
        let decoded = self.decoder.decode(&raw)?;
        if decoded.dead_letters.is_some() || decoded.rows.num_rows() != batch.num_rows() {
            return Err(SourceError::Internal(format!(
                "{} of {} simulated readings read back from {:?}",
                decoded.rows.num_rows(),
                batch.num_rows(),
                self.format
            )));
        }
        Ok(RecordBatch::try_new(
            vitals_schema(),
            decoded.rows.columns().to_vec(),
        )?)
    }
}

pub struct SimulatorSource {
    config: SimulatorConfig,
}

impl SimulatorSource {
    pub fn new(config: SimulatorConfig) -> Self {
        Self { config }
    }
}

#[async_trait::async_trait]
impl Source for SimulatorSource {
    async fn run(self: Box<Self>, ctx: SourceContext) -> Result<SourceSummary, SourceError> {
        let start_ms = self
            .config
            .start_millis()
            .map_err(|e| SourceError::from(e).context("simulator source"))?;
        let mut generator = VitalsGenerator::new(&self.config, start_ms);
        let mut wire = WireRoundTrip::new(self.config.format, &ctx.name)?;
        let mut summary = SourceSummary::default();
        let mut ticker = match self.config.pacing {
            Pacing::Realtime => {
                let mut t = tokio::time::interval_at(Instant::now(), self.config.interval.0);
                // After a stall, catch up so event times stay on the grid.
                t.set_missed_tick_behavior(MissedTickBehavior::Burst);
                Some(t)
            }
            Pacing::Unpaced => None,
        };
        loop {
            let batch = match ticker.as_mut() {
                Some(t) => {
                    tokio::select! {
                        _ = ctx.shutdown.cancelled() => break,
                        _ = t.tick() => generator.next_tick(),
                    }
                }
                None => {
                    if ctx.shutdown.is_cancelled() {
                        break;
                    }
                    generator.next_batch(self.config.batch_rows)
                }
            };
            let Some(batch) = batch else { break };
            let batch = match wire.as_mut() {
                Some(wire) => wire.pass(batch)?,
                None => batch,
            };
            let rows = batch.num_rows() as u64;
            let item = SourceEvent::Batch(SourceBatch {
                batch,
                dead_letters: None,
                offsets: Default::default(),
                partition_event_times: Default::default(),
                assigned_partitions: Vec::new(),
                row_partitions: Vec::new(),
            });
            // A batch counts as produced only once the engine has taken it.
            tokio::select! {
                _ = ctx.shutdown.cancelled() => break,
                sent = ctx.output.send(item) => {
                    if sent.is_err() {
                        // The engine stopped reading: it is shutting down.
                        break;
                    }
                }
            }
            summary.records += rows;
            summary.batches += 1;
        }
        Ok(summary)
    }
}
