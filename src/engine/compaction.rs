//! Compaction beside the running pipeline: for each Parquet sink that asks
//! for it (`compact:`, on by default for local date-partitioned datasets),
//! a thread at background priority with its own small runtime merges the
//! closed days, and today's settled files (see `sinks::parquet::compact`).
//! The merge's CPU and memory stay off the pipeline's workers. Stopping
//! the run cancels a merge at its next await (before the day is touched;
//! the next pass removes what it left) and waits for the thread, so a swap
//! is never cut between its steps by a clean exit.

use std::thread::JoinHandle;

use tokio_util::sync::CancellationToken;

use super::error::EngineError;
use crate::sinks::SinkConfig;
use crate::sinks::parquet::compact::{CompactionPolicy, Compactor};
use crate::spec::SinkSpec;

/// The compaction threads of one run; stopped (and joined) when dropped.
pub struct CompactionThreads {
    stop: CancellationToken,
    threads: Vec<JoinHandle<()>>,
}

impl CompactionThreads {
    pub fn start(sinks: &[SinkSpec]) -> Result<Self, EngineError> {
        // Built first: if a later thread fails to start, dropping `this`
        // stops the ones already running.
        let mut this = Self {
            stop: CancellationToken::new(),
            threads: Vec::new(),
        };
        for (compactor, every) in compactors(sinks, true) {
            let stop = this.stop.clone();
            let name = compactor.sink().to_string();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| EngineError::component("compaction of sink", &name, e))?;
            let thread = std::thread::Builder::new()
                .name("compaction".into())
                .spawn(move || {
                    crate::common::priority::lower_thread_priority();
                    runtime.block_on(compactor.run_every(every, stop));
                })
                .map_err(|e| EngineError::component("compaction of sink", &name, e))?;
            this.threads.push(thread);
        }
        Ok(this)
    }
}

/// Finish what a compaction that died left behind in every local,
/// date-partitioned dataset (files published during its merge wait in its
/// work directory), before the checkpoints are recovered: a manifest may
/// name those files.
pub fn recover_interrupted(sinks: &[SinkSpec]) -> Result<(), EngineError> {
    for (compactor, _) in compactors(sinks, false) {
        compactor
            .recover()
            .map_err(|e| EngineError::component("compaction of sink", compactor.sink(), e))?;
    }
    Ok(())
}

/// Compactors for the local, date-partitioned Parquet sinks (only those
/// with `compact.enabled` if `enabled_only`), with how often each looks
/// for days to merge. Remote datasets are left alone quietly (their
/// `vitalflow compact` says why).
fn compactors(sinks: &[SinkSpec], enabled_only: bool) -> Vec<(Compactor, std::time::Duration)> {
    sinks
        .iter()
        .filter_map(|sink| match &sink.config {
            // `Compactor::new` refuses remote and unpartitioned datasets.
            SinkConfig::Parquet(c) if c.compact.enabled || !enabled_only => {
                Compactor::new(&sink.name, c, CompactionPolicy::from(&c.compact))
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
        for thread in self.threads.drain(..) {
            // A panicked thread already reported itself.
            let _ = thread.join();
        }
    }
}
