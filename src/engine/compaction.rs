//! Compaction beside the running pipeline: for each Parquet sink that asks
//! for it (`compact:`, on by default for local date-partitioned datasets),
//! a thread at background priority with its own small runtime merges the
//! closed days (see `sinks::parquet::compact`). The merge's CPU and memory
//! stay off the pipeline's workers; stopping the pipeline stops it at the
//! next await, and a merge stopped half-way is cleaned up by the next one.

use tokio_util::sync::CancellationToken;

use super::error::EngineError;
use crate::sinks::SinkConfig;
use crate::sinks::parquet::compact::{CompactionPolicy, Compactor};
use crate::spec::SinkSpec;

/// The compaction threads of one run; stopped when dropped.
pub struct CompactionThreads {
    stop: CancellationToken,
}

impl CompactionThreads {
    pub fn start(sinks: &[SinkSpec]) -> Result<Self, EngineError> {
        let stop = CancellationToken::new();
        for (compactor, every) in running_compactors(sinks) {
            let stop = stop.clone();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| {
                    EngineError::Internal(format!("starting a compaction runtime: {e}"))
                })?;
            std::thread::Builder::new()
                .name("compaction".into())
                .spawn(move || {
                    crate::common::priority::lower_thread_priority();
                    runtime.block_on(compactor.run_every(every, stop));
                })
                .map_err(|e| EngineError::Internal(format!("starting a compaction thread: {e}")))?;
        }
        Ok(Self { stop })
    }
}

/// Compactors for the sinks that ask for compaction while the pipeline
/// runs (`compact.enabled`, local, date-partitioned), with how often each
/// looks for closed days. Remote datasets are left alone quietly (their
/// `vitalflow compact` says why).
fn running_compactors(sinks: &[SinkSpec]) -> Vec<(Compactor, std::time::Duration)> {
    sinks
        .iter()
        .filter_map(|sink| match &sink.config {
            SinkConfig::Parquet(c) if c.compact.enabled && c.partition_by_date.is_some() => {
                let policy = CompactionPolicy {
                    quiet: c.compact.quiet.0,
                    open_day_files: c.compact.open_day_files,
                    memory: c.compact.memory.0 as usize,
                };
                Compactor::new(&sink.name, c, policy)
                    .ok()
                    .map(|compactor| (compactor, c.compact.every.0))
            }
            _ => None,
        })
        .collect()
}

impl Drop for CompactionThreads {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
