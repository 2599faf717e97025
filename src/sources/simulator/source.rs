//! The simulator as a pipeline source: paces the generator to the wall clock
//! (realtime) or runs it flat out (unpaced).

use tokio::time::{Instant, MissedTickBehavior};

use super::config::{Pacing, SimulatorConfig};
use super::generator::VitalsGenerator;
use crate::sources::{Source, SourceBatch, SourceContext, SourceError, SourceEvent, SourceSummary};

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
