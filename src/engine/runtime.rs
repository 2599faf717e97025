//! The engine loop: sources -> operators -> sinks, with bounded channels,
//! checkpoints that make files and source offsets durable together, and an
//! orderly shutdown.
//!
//! Data flows one way. Sources push into bounded channels (backpressure);
//! the engine runs every micro-batch through the operators in dependency
//! order and hands the results to each sink's bounded channel. A checkpoint
//! (asked for by a sink that rolled a file, by a source about to lose
//! partitions, or at shutdown) has every sink stage what it holds, writes
//! the manifest, publishes the files and only then tells the sources which
//! offsets are durable. On shutdown sources stop first, the engine drains
//! what they already produced, operators emit what they hold, and a final
//! checkpoint publishes everything, so nothing accepted is lost.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::record_batch::RecordBatch;
use futures::StreamExt;
use futures::stream::{BoxStream, SelectAll};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::checkpoint::{
    CheckpointFiles, CheckpointStore, OwnedPartition, StateToSave, UnpublishedFrom,
};
use super::compaction::CompactionThreads;
use super::error::{CheckpointError, EngineError, StoppedUnexpectedly};
use super::events::{
    BatchProcessed, CheckpointCompleted, CheckpointFenced, FilePublished, LateEvents,
    PartitionCheckpointed, PartitionStateAssigned, PartitionStateReleased, Recovered,
    StateRestored, WatermarkAdvanced,
};
use super::operators::{
    KeyedBatches, RunOperators, SourceWatermarks, WatermarkView, split_by_partition,
};
use super::plan::PlannedPipeline;
use super::watermark::{SavedWatermark, WatermarkTracker};
use crate::common::{BoxError, PartitionBoard, event_times_ms};
use crate::sinks::SinkContext;
use crate::sinks::{SinkMessage, SinkSummary};
use crate::sources::{
    Offsets, SourceBatch, SourceContext, SourceEvent, SourceSummary, TopicPartition,
    dead_letter_table, late_events_table,
};
use crate::storage::StagedFile;
use crate::storage::forward::{Forwarder, ForwarderHandle};

/// Tuning knobs of a run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Batches buffered between two stages; small, so memory stays flat.
    pub channel_capacity: usize,
    /// How often a progress line is logged.
    pub report_interval: Duration,
    /// How long, at the end of a run, spooled files may take to upload
    /// before they are left for the next run.
    pub drain_timeout: Duration,
    /// Handles the sinks report through (live hubs, store status), shared
    /// with a server in the same process.
    pub sinks: SinkContext,
    /// Where ingest sources meet the server of the same process.
    pub ingest: crate::common::IngestHubs,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            channel_capacity: 4,
            report_interval: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(60),
            sinks: SinkContext::default(),
            ingest: crate::common::IngestHubs::default(),
        }
    }
}

/// What a finished run did.
#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    pub elapsed: Duration,
    pub sources: Vec<(String, SourceSummary)>,
    pub sinks: Vec<(String, SinkSummary)>,
    /// Source batches whose rows every sink has durably published.
    pub durable_batches: u64,
    /// Checkpoints completed.
    pub checkpoints: u64,
}

impl RunSummary {
    pub fn records_in(&self) -> u64 {
        self.sources.iter().map(|(_, s)| s.records).sum()
    }
}

struct RunningSink {
    name: String,
    input: String,
    sender: Option<mpsc::Sender<SinkMessage>>,
    /// The sink's own error, boxed: the engine only reports it.
    task: JoinHandle<Result<SinkSummary, BoxError>>,
}

/// A running source: its name (for errors and the summary) and its task
/// (the source's own error, boxed: the engine only reports it).
type SourceTask = (String, JoinHandle<Result<SourceSummary, BoxError>>);

/// Every source's events, tagged with the index of the source in the spec.
type Incoming = SelectAll<BoxStream<'static, (usize, SourceEvent)>>;

/// Run `planned` until its sources end or `shutdown` is cancelled.
///
/// A run has three phases, each owned by one function: `start` recovers
/// the checkpoint directory and starts every component, `drive` is the
/// engine loop, and `RunningPipeline::stop` stops the sources, publishes
/// what is left, closes the sinks and collects the summary.
pub async fn run(
    planned: &PlannedPipeline,
    shutdown: CancellationToken,
    options: RunOptions,
) -> Result<RunSummary, EngineError> {
    let started = Instant::now();
    crate::telemetry::metrics::handle();
    let mut running = start(planned, &shutdown, &options).await?;
    let tick = tick_period(&planned.spec.sinks);
    let failure = drive(&mut running, options.report_interval, tick)
        .await
        .err();
    running
        .stop(failure, &shutdown, options.drain_timeout, started)
        .await
}

/// Everything [`start`] set running, owned until [`RunningPipeline::stop`]
/// takes it down in order.
struct RunningPipeline<'a> {
    /// The engine state: sinks, checkpoint store, positions, watermarks.
    engine: EngineLoop<'a>,
    /// Every source's events.
    incoming: Incoming,
    /// The sources' own token: cancelled to stop them after the loop, and
    /// by `shutdown` (its parent) before.
    source_shutdown: CancellationToken,
    source_tasks: Vec<SourceTask>,
    /// Cancelled when a source task ends with an error: the loop ends then,
    /// even if the failed source's channel is still open (a Kafka consumer
    /// still closing in the background holds a sender).
    source_failed: CancellationToken,
    /// Uploaders of remote datasets, drained after the last checkpoint.
    forwarders: Vec<ForwarderHandle>,
    /// Notified by a sink that wants a checkpoint (it rolled a file).
    checkpoint_wanted: Arc<Notify>,
    /// Ends the task that releases sinks waiting on a full spool, once the
    /// run is over.
    _run_over: DropGuard,
    /// Merging closed days of the datasets, until the run ends.
    _compaction: CompactionThreads,
}

/// Build the running pipeline: finish what an earlier run left half-done,
/// restore open windows and watermarks, then start the sinks, the sources
/// and the uploaders, in that order (a component that fails to build
/// returns before any uploader runs detached).
async fn start<'a>(
    planned: &'a PlannedPipeline,
    shutdown: &CancellationToken,
    options: &RunOptions,
) -> Result<RunningPipeline<'a>, EngineError> {
    let spec = &planned.spec;
    // Finish what an earlier run left half-done before anything new starts.
    super::compaction::recover_interrupted(&spec.sinks)?;
    let store = open_checkpoints(planned)?;
    let mut watermarks: Vec<Option<WatermarkTracker>> = spec
        .sources
        .iter()
        .map(|s| s.config.event_time().map(WatermarkTracker::new))
        .collect();
    // Operators are the run's own; state kept per partition is restored
    // when the source assigns the partition.
    let mut operators = RunOperators::start(planned)?;
    if let Some(store) = &store {
        restore_state(planned, store, &mut watermarks, &mut operators).await?;
    }

    let checkpoint_wanted = Arc::new(Notify::new());
    // Uploaders of remote datasets: they start with what earlier runs left
    // in the spools and run until the end, after the last checkpoint. They
    // are started once every component is built, so a component that fails
    // to build leaves no uploader running detached.
    let (sinks, forwarders) = start_sinks(planned, options, &checkpoint_wanted)?;

    let source_shutdown = shutdown.child_token();
    let sources = start_sources(planned, options, &source_shutdown, store.as_ref())?;
    let forwarders: Vec<_> = forwarders.into_iter().map(Forwarder::spawn).collect();
    let run_over = release_spools_on_shutdown(&forwarders, shutdown);
    let compaction = CompactionThreads::start(&spec.sinks)?;

    let engine = EngineLoop {
        planned,
        operators,
        board: options.sinks.partitions.clone(),
        owned: vec![BTreeSet::new(); spec.sources.len()],
        sinks,
        store,
        positions: vec![Offsets::new(); spec.sources.len()],
        watermarks,
        committed: sources.committed,
        last_recorded: None,
        unpublished: UnpublishedFrom::default(),
        sequence: 0,
        durable_sequence: 0,
        checkpoints: 0,
        records_in: 0,
    };
    Ok(RunningPipeline {
        engine,
        incoming: sources.incoming,
        source_shutdown,
        source_tasks: sources.tasks,
        source_failed: sources.failed,
        forwarders,
        checkpoint_wanted,
        _run_over: run_over,
        _compaction: compaction,
    })
}

/// Open the checkpoint directory, if the spec has one, and roll forward
/// (or back) what an earlier run left half-done.
fn open_checkpoints(planned: &PlannedPipeline) -> Result<Option<CheckpointStore>, EngineError> {
    let spec = &planned.spec;
    let Some(location) = spec.checkpoint_location() else {
        return Ok(None);
    };
    let files = CheckpointFiles::open(&location, &spec.checkpoint_store)?;
    let store = CheckpointStore::open_at(files, &spec.name)?;
    let recovery = store.recover()?;
    let expired = store.clean_up(spec.checkpoint_retention)?;
    Recovered {
        pipeline: &spec.name,
        dir: &store.root(),
        rolled_forward: recovery.rolled_forward.len(),
        expired: &expired,
    }
    .emit();
    Ok(Some(store))
}

/// Build every sink and spawn its task on a bounded channel. The sinks'
/// uploaders are returned unstarted (see [`start`]).
fn start_sinks(
    planned: &PlannedPipeline,
    options: &RunOptions,
    checkpoint_wanted: &Arc<Notify>,
) -> Result<(Vec<RunningSink>, Vec<Forwarder>), EngineError> {
    let spec = &planned.spec;
    let mut sinks = Vec::new();
    let mut forwarders = Vec::new();
    for sink in &spec.sinks {
        let schema = planned.schema_of(&sink.input).cloned().ok_or_else(|| {
            EngineError::Internal(format!(
                "sink `{}` reads unplanned table `{}`",
                sink.name, sink.input
            ))
        })?;
        let mut runtime = sink
            .config
            .build(&sink.name, schema, &options.sinks)
            .map_err(|e| EngineError::component("sink", &sink.name, e))?;
        if let Some(forwarder) = runtime.take_forwarder() {
            forwarders.push(forwarder);
        }
        let (sender, receiver) = mpsc::channel(options.channel_capacity);
        let wanted = checkpoint_wanted.clone();
        let task =
            tokio::spawn(async move { runtime.run(receiver, wanted).await.map_err(Into::into) });
        sinks.push(RunningSink {
            name: sink.name.clone(),
            input: sink.input.clone(),
            sender: Some(sender),
            task,
        });
    }
    Ok((sinks, forwarders))
}

/// The started sources, as [`start_sources`] hands them to the engine.
struct StartedSources {
    /// Every source's events, merged.
    incoming: Incoming,
    tasks: Vec<SourceTask>,
    /// Cancelled when a source task fails.
    failed: CancellationToken,
    /// Per source: where durable offsets are announced.
    committed: Vec<watch::Sender<Offsets>>,
}

/// Build every source and spawn it with its bounded output channel, its
/// channel of durable offsets and the durable offsets of the checkpoints.
fn start_sources(
    planned: &PlannedPipeline,
    options: &RunOptions,
    source_shutdown: &CancellationToken,
    store: Option<&CheckpointStore>,
) -> Result<StartedSources, EngineError> {
    let spec = &planned.spec;
    let mut streams = Vec::new();
    let mut tasks = Vec::new();
    let mut committed = Vec::new();
    let failed = CancellationToken::new();
    for (index, source) in spec.sources.iter().enumerate() {
        let runtime = source
            .config
            .build()
            .map_err(|e| EngineError::component("source", &source.name, e))?;
        let (sender, receiver) = mpsc::channel(options.channel_capacity);
        let (commit_sender, commit_receiver) = watch::channel(Offsets::new());
        committed.push(commit_sender);
        let ctx = SourceContext {
            pipeline: spec.name.clone(),
            name: source.name.clone(),
            output: sender,
            shutdown: source_shutdown.clone(),
            committed: commit_receiver,
            durable: store.map(|s| std::sync::Arc::new(s.durable_offsets()) as _),
            partitions: options.sinks.partitions.clone(),
            ingest: options.ingest.clone(),
        };
        let source_failed = failed.clone();
        let task = tokio::spawn(async move {
            let result = runtime.run(ctx).await.map_err(Into::into);
            if result.is_err() {
                source_failed.cancel();
            }
            result
        });
        tasks.push((source.name.clone(), task));
        streams.push(
            ReceiverStream::new(receiver)
                .map(move |event| (index, event))
                .boxed(),
        );
    }
    Ok(StartedSources {
        incoming: futures::stream::select_all(streams),
        tasks,
        failed,
        committed,
    })
}

/// A sink waiting for room in a full spool gives up when the run is told
/// to stop (the run then ends with the spool-full error, losing nothing).
/// The returned guard ends the watching task when the run is over.
fn release_spools_on_shutdown(
    forwarders: &[ForwarderHandle],
    shutdown: &CancellationToken,
) -> DropGuard {
    let spools: Vec<_> = forwarders.iter().map(|f| f.spool()).collect();
    let run_over = CancellationToken::new();
    let guard = run_over.clone().drop_guard();
    if !spools.is_empty() {
        let stopping = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = stopping.cancelled() => spools.iter().for_each(|s| s.stop_waiting()),
                _ = run_over.cancelled() => {}
            }
        });
    }
    guard
}

/// How often the engine ticks: once a second, or, for a Parquet sink that
/// rolls its files by age, four times per `roll.max_age`, so a file is
/// closed (and published by the checkpoint it asks for) at most a quarter
/// of its age late when no row arrives to trigger the check. With a
/// second's tick a `max_age: 500ms` file waited up to 1.5 s once its input
/// paused, and the last rows of a stream with it.
fn tick_period(sinks: &[crate::spec::SinkSpec]) -> Duration {
    const SLOWEST: Duration = Duration::from_secs(1);
    const FASTEST: Duration = Duration::from_millis(10);
    sinks
        .iter()
        .filter_map(|sink| match &sink.config {
            crate::sinks::SinkConfig::Parquet(parquet) => Some(parquet.roll.max_age.0 / 4),
            _ => None,
        })
        .fold(SLOWEST, Duration::min)
        .max(FASTEST)
}

/// The engine loop: source batches through the operators to the sinks,
/// checkpoints when a source or a sink asks, a tick a second and a progress
/// line every `report_interval`. Returns when every source has ended
/// (Ctrl-C cancels them; a Kafka source still asks for its last checkpoint
/// while it leaves its group), or with the first failure.
async fn drive(
    running: &mut RunningPipeline<'_>,
    report_interval: Duration,
    tick_period: Duration,
) -> Result<(), EngineError> {
    let engine = &mut running.engine;
    let mut tick = tokio::time::interval(tick_period);
    let mut report = tokio::time::interval(report_interval);
    report.tick().await;
    let mut progress = Progress::new();
    loop {
        tokio::select! {
            next = running.incoming.next() => match next {
                None => return Ok(()),
                Some((index, SourceEvent::Batch(batch))) => engine.process(index, batch).await?,
                Some((index, SourceEvent::Assigned(partitions))) => {
                    engine.assign(index, partitions).await?
                }
                Some((index, SourceEvent::Revoked(partitions))) => engine.revoke(index, &partitions),
                Some((index, SourceEvent::Checkpoint(reply))) => {
                    let result = engine.checkpoint().await;
                    let answer = match &result {
                        Ok(()) => Ok(engine.positions[index].clone()),
                        Err(e) => Err(e.to_string()),
                    };
                    let _ = reply.send(answer);
                    result?
                }
            },
            _ = running.checkpoint_wanted.notified() => engine.checkpoint().await?,
            // `stop` collects the source's error and skips the final checkpoint.
            () = running.source_failed.cancelled() => return Ok(()),
            _ = tick.tick() => engine.tick().await?,
            _ = report.tick() => progress.report(engine),
        }
    }
}

/// The progress line: records in since the last one, as a rate.
struct Progress {
    at: Instant,
    records_in: u64,
}

impl Progress {
    fn new() -> Self {
        Self {
            at: Instant::now(),
            records_in: 0,
        }
    }

    /// Log where `engine` is and remember it for the next rate.
    fn report(&mut self, engine: &EngineLoop<'_>) {
        let rate = (engine.records_in - self.records_in) as f64 / self.at.elapsed().as_secs_f64();
        let watermarks = engine.watermarks_text();
        tracing::info!(
            pipeline = %engine.planned.spec.name,
            records_in = engine.records_in,
            records_per_second = rate.round(),
            durable_batches = engine.durable_sequence,
            watermarks = %watermarks,
            "pipeline progress"
        );
        *self = Self {
            at: Instant::now(),
            records_in: engine.records_in,
        };
    }
}

impl RunningPipeline<'_> {
    /// Teardown, after the loop ended (`failure` says why, if it failed):
    /// stop the sources and collect their summaries, publish what is left
    /// in a final checkpoint, close the sinks and collect theirs, then give
    /// the uploaders `drain_timeout` to empty the spools. The first failure
    /// wins, except that a sink's own error replaces the "stopped
    /// unexpectedly" another step saw.
    async fn stop(
        self,
        mut failure: Option<EngineError>,
        shutdown: &CancellationToken,
        drain_timeout: Duration,
        started: Instant,
    ) -> Result<RunSummary, EngineError> {
        let RunningPipeline {
            mut engine,
            incoming,
            source_shutdown,
            source_tasks,
            source_failed: _,
            forwarders,
            checkpoint_wanted: _,
            _run_over,
            _compaction,
        } = self;
        // Open windows: emitted when the input really ended; kept in the final
        // checkpoint (and continued on restart) when the run was stopped.
        let input_ended = !shutdown.is_cancelled() || engine.store.is_none();
        source_shutdown.cancel();
        drop(incoming);
        // A failed source (e.g. one that lost its partitions) must stop the
        // final checkpoint: what it read may not be this instance's to publish.
        let mut source_summaries = Vec::new();
        for (name, task) in source_tasks {
            match task.await {
                Ok(Ok(s)) => source_summaries.push((name, s)),
                Ok(Err(e)) => {
                    failure.get_or_insert(EngineError::component("source", &name, e));
                }
                Err(e) => {
                    failure.get_or_insert(EngineError::component("source", &name, e));
                }
            }
        }
        if failure.is_none()
            && let Err(e) = engine.finish(input_ended).await
        {
            failure = Some(e);
        }
        let mut summary = RunSummary {
            durable_batches: engine.durable_sequence,
            checkpoints: engine.checkpoints,
            sources: source_summaries,
            ..Default::default()
        };
        // Closing the channels ends each sink.
        let mut sinks = std::mem::take(&mut engine.sinks);
        for sink in sinks.iter_mut() {
            sink.sender.take();
        }
        for sink in sinks {
            let error = match sink.task.await {
                Ok(Ok(s)) => {
                    summary.sinks.push((sink.name, s));
                    continue;
                }
                Ok(Err(e)) => EngineError::component("sink", &sink.name, e),
                Err(e) => EngineError::component("sink", &sink.name, e),
            };
            // The sink's own error explains an earlier "stopped unexpectedly".
            let replaces = matches!(
                &failure,
                None | Some(EngineError::Component {
                    component: "sink",
                    ..
                })
            );
            if replaces {
                failure = Some(error);
            }
        }
        // The last checkpoint published its files into the spools: upload them
        // now if the stores answer; what is left waits for the next run.
        for forwarder in forwarders {
            forwarder.drain(drain_timeout).await;
        }
        summary.elapsed = started.elapsed();
        match failure {
            Some(e) => Err(e),
            None => Ok(summary),
        }
    }
}

/// The engine's state while the pipeline runs: it owns the sinks, the
/// checkpoint store and every source's position and watermark, and does
/// what one event of the loop asks (a batch, a checkpoint, a tick).
struct EngineLoop<'a> {
    planned: &'a PlannedPipeline,
    /// The run's operators (one per partition for state kept per partition).
    operators: RunOperators<'a>,
    /// Per source: the partitions it has announced as this instance's.
    owned: Vec<BTreeSet<TopicPartition>>,
    /// The owned partitions as `/health` shows them.
    board: PartitionBoard,
    sinks: Vec<RunningSink>,
    store: Option<CheckpointStore>,
    /// Per source: the next offset per partition of everything processed.
    positions: Vec<Offsets>,
    /// Per source with `event_time:`, its watermark.
    watermarks: Vec<Option<WatermarkTracker>>,
    /// Per source: where durable offsets are announced.
    committed: Vec<watch::Sender<Offsets>>,
    /// The source offsets of the last checkpoint written.
    last_recorded: Option<BTreeMap<String, Offsets>>,
    /// Where the rows not yet published start, per source partition: a
    /// checkpoint publishes them only if no other instance has since.
    unpublished: UnpublishedFrom,
    sequence: u64,
    durable_sequence: u64,
    checkpoints: u64,
    records_in: u64,
}

impl EngineLoop<'_> {
    /// One source batch (and its dead letters) through every operator, then
    /// to the sinks. When state lives per partition, the batch goes through
    /// partition by partition, each against its partition's watermark.
    async fn process(&mut self, source_index: usize, item: SourceBatch) -> Result<(), EngineError> {
        let started = Instant::now();
        self.sequence += 1;
        let rows = item.batch.num_rows();
        self.records_in += rows as u64;
        let source = &self.planned.spec.sources[source_index].name;
        let mut on_time: KeyedBatches =
            if self.planned.has_partition_state() && !item.row_partitions.is_empty() {
                split_by_partition(&item.batch, &item.row_partitions)
                    .map_err(|e| EngineError::component("source", source, e))?
                    .into_iter()
                    .map(|(partition, batch)| (Some(partition), batch))
                    .collect()
            } else {
                vec![(None, item.batch)]
            };
        let mut late: KeyedBatches = Vec::new();
        if let (Some(tracker), Some(event_time)) = (
            self.watermarks[source_index].as_mut(),
            self.planned.spec.sources[source_index].config.event_time(),
        ) {
            let now = Instant::now();
            tracker.assign(&item.assigned_partitions, now);
            let mut kept = Vec::with_capacity(on_time.len());
            let mut chunk_times = None;
            for (key, chunk) in on_time {
                let times = event_times_ms(&chunk, &event_time.column)
                    .map_err(|e| EngineError::component("source", source, e))?;
                let watermark = match &key {
                    Some(partition) => tracker.partition_watermark(partition, now),
                    None => tracker.current(),
                };
                let (in_time, behind) = WatermarkTracker::split_late(chunk, &times, watermark)
                    .map_err(|e| EngineError::component("source", source, e))?;
                kept.push((key.clone(), in_time));
                if let Some(behind) = behind {
                    late.push((key, behind));
                }
                chunk_times = Some(times);
            }
            // Per-partition newest times come with the batch; a source
            // without partitions is one chunk, whose times decide.
            let times = match (kept.len(), chunk_times) {
                (1, Some(times)) => times,
                _ => arrow::array::Int64Array::from(Vec::<i64>::new()),
            };
            tracker.observe(&item.partition_event_times, &times, now);
            let behind: usize = late.iter().map(|(_, b)| b.num_rows()).sum();
            if behind > 0 {
                LateEvents {
                    pipeline: &self.planned.spec.name,
                    source,
                    rows: behind,
                    watermark: tracker.current(),
                }
                .emit();
            }
            if let Some(watermark) = tracker.current() {
                WatermarkAdvanced {
                    pipeline: &self.planned.spec.name,
                    source,
                    watermark,
                }
                .emit();
            }
            on_time = kept;
        }
        let mut starts = vec![(source.clone(), on_time)];
        if let Some(dead) = item.dead_letters.filter(|b| b.num_rows() > 0) {
            starts.push((dead_letter_table(source), vec![(None, dead)]));
        }
        if !late.is_empty() {
            starts.push((late_events_table(source), late));
        }
        let view = self.watermark_view();
        let outputs = self.operators.run(starts, &view, false).await?;
        self.deliver(&outputs).await?;
        let position = &mut self.positions[source_index];
        for (partition, next) in item.offsets {
            let slot = position.entry(partition.clone()).or_insert(next);
            *slot = (*slot).max(next);
            let next = *slot;
            self.board
                .update(source, &partition, |s| s.next_offset = Some(next));
        }
        BatchProcessed {
            pipeline: &self.planned.spec.name,
            source,
            rows,
            elapsed: started.elapsed(),
        }
        .emit();
        Ok(())
    }

    /// The watermarks operators close at, now.
    fn watermark_view(&self) -> WatermarkView {
        let now = Instant::now();
        let per_partition = self.planned.has_partition_state();
        let sources = self
            .watermarks
            .iter()
            .enumerate()
            .filter_map(|(index, tracker)| {
                let tracker = tracker.as_ref()?;
                Some((
                    index,
                    SourceWatermarks {
                        current: tracker.current(),
                        partitions: if per_partition {
                            tracker.partition_watermarks(now)
                        } else {
                            BTreeMap::new()
                        },
                    },
                ))
            })
            .collect();
        WatermarkView { sources }
    }

    /// The source assigned these partitions to this instance: start their
    /// operators with the state saved with the offset each resumes from.
    async fn assign(
        &mut self,
        source_index: usize,
        partitions: Vec<(TopicPartition, Option<i64>)>,
    ) -> Result<(), EngineError> {
        let now = Instant::now();
        let source = self.planned.spec.sources[source_index].name.clone();
        for (partition, resume) in &partitions {
            self.unpublished.assigned(&source, partition, *resume);
            self.owned[source_index].insert(partition.clone());
            self.board.assigned(&source, partition, *resume);
            if let Some(offset) = *resume {
                let slot = self.positions[source_index]
                    .entry(partition.clone())
                    .or_insert(offset);
                *slot = (*slot).max(offset);
            }
        }
        if !self.planned.has_partition_state() {
            return Ok(());
        }
        let mut saved = match &self.store {
            Some(store) => {
                let keys: Vec<TopicPartition> = partitions.iter().map(|(p, _)| p.clone()).collect();
                store.partition_states(&source, &keys)?
            }
            None => BTreeMap::new(),
        };
        let empty = BTreeMap::new();
        for (partition, resume) in partitions {
            let saved = saved.remove(&partition);
            if let (Some(tracker), Some(newest)) = (
                self.watermarks[source_index].as_mut(),
                saved.as_ref().and_then(|s| s.newest_event_ms),
            ) {
                tracker.resume_partition(&partition, newest, now);
            }
            let restored = self
                .operators
                .assign(
                    source_index,
                    &partition,
                    saved.as_ref().map_or(&empty, |s| &s.operators),
                )
                .await?;
            PartitionStateAssigned {
                pipeline: &self.planned.spec.name,
                source: &source,
                partition: &partition,
                resume,
                saved: saved.as_ref().map(|s| (s.manifest.as_str(), s.next_offset)),
                restored,
            }
            .emit();
        }
        Ok(())
    }

    /// The source gave these partitions up (after a checkpoint saved their
    /// state): drop their operators and clocks.
    fn revoke(&mut self, source_index: usize, partitions: &[TopicPartition]) {
        for partition in partitions {
            self.owned[source_index].remove(partition);
        }
        self.board
            .revoked(&self.planned.spec.sources[source_index].name, partitions);
        self.operators.revoke(source_index, partitions);
        if let Some(tracker) = self.watermarks[source_index].as_mut() {
            tracker.forget(partitions);
        }
        PartitionStateReleased {
            pipeline: &self.planned.spec.name,
            source: &self.planned.spec.sources[source_index].name,
            partitions,
        }
        .emit();
    }

    /// `source=2026-...Z` per source with event time, for progress lines.
    fn watermarks_text(&self) -> String {
        self.planned
            .spec
            .sources
            .iter()
            .zip(&self.watermarks)
            .filter_map(|(source, tracker)| {
                let tracker = tracker.as_ref()?;
                let at = match tracker.current() {
                    Some(ms) => chrono::DateTime::from_timestamp_millis(ms)
                        .map_or_else(|| ms.to_string(), |t| t.to_rfc3339()),
                    None => "none yet".to_string(),
                };
                Some(format!("{}={at}", source.name))
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    async fn deliver(
        &mut self,
        outputs: &HashMap<String, Vec<RecordBatch>>,
    ) -> Result<(), EngineError> {
        deliver(&self.sinks, outputs).await
    }

    /// Make everything processed so far durable: sinks stage their files,
    /// the manifest records files and offsets, the files are published, and
    /// the sources learn which offsets they may commit.
    async fn checkpoint(&mut self) -> Result<(), EngineError> {
        let started = Instant::now();
        let mut replies = Vec::with_capacity(self.sinks.len());
        for sink in self.sinks.iter() {
            let (reply, answer) = oneshot::channel();
            send(sink, SinkMessage::Checkpoint(reply)).await?;
            replies.push((sink.name.clone(), answer));
        }
        let mut files: Vec<StagedFile> = Vec::new();
        for (name, answer) in replies {
            let staged = answer
                .await
                .map_err(|_| EngineError::component("sink", &name, StoppedUnexpectedly))?
                .map_err(|e| EngineError::component("sink", &name, e))?;
            files.extend(staged);
        }

        let spec = &self.planned.spec;
        let offsets: BTreeMap<String, Offsets> = spec
            .sources
            .iter()
            .zip(&self.positions)
            .filter(|(source, _)| source.config.is_resumable())
            .map(|(source, position)| (source.name.clone(), position.clone()))
            .collect();
        // Open windows change with every batch: their state is saved even
        // when no file was staged and no offset moved.
        let stateful = self.operators.any_stateful();
        let unchanged = self.last_recorded.as_ref() == Some(&offsets)
            && (!stateful || self.durable_sequence == self.sequence);
        if files.is_empty() && unchanged {
            self.durable_sequence = self.sequence;
            return Ok(());
        }
        let state = match &self.store {
            Some(_) => self.state_to_save().await?,
            None => StateToSave::default(),
        };
        match &mut self.store {
            Some(store) => {
                let claims = self.unpublished.claims(&offsets);
                if let Err(error) = store.commit(&offsets, &files, &state, &claims) {
                    if let CheckpointError::Fenced {
                        source_name,
                        partition,
                        durable,
                        ..
                    } = &error
                    {
                        CheckpointFenced {
                            pipeline: &spec.name,
                            source: source_name,
                            partition,
                            durable: *durable,
                        }
                        .emit();
                    }
                    return Err(error.into());
                }
                self.unpublished.published(&offsets);
            }
            None if files.is_empty() => {}
            None => {
                return Err(EngineError::Internal(format!(
                    "{} staged files but no checkpoint directory",
                    files.len()
                )));
            }
        }
        for file in &files {
            FilePublished { file }.emit();
        }
        self.checkpoints += 1;
        self.durable_sequence = self.sequence;
        for (position, committed) in self.positions.iter().zip(&self.committed) {
            committed.send_if_modified(|current| {
                let changed = current != position;
                if changed {
                    current.clone_from(position);
                }
                changed
            });
        }
        CheckpointCompleted {
            pipeline: &spec.name,
            files: files.len(),
            elapsed: started.elapsed(),
        }
        .emit();
        self.last_recorded = Some(offsets);
        Ok(())
    }

    /// Open windows and watermarks, for the checkpoint being written.
    async fn state_to_save(&mut self) -> Result<StateToSave, EngineError> {
        let saved = self.operators.checkpoint().await?;
        let mut state = StateToSave {
            operators: saved.state,
            ..Default::default()
        };
        for (index, source) in self.planned.spec.sources.iter().enumerate() {
            if !source.config.is_resumable() {
                continue;
            }
            let mut owned = self.owned[index].clone();
            owned.extend(self.operators.partitions_of(index));
            let tracker = self.watermarks[index].as_ref();
            let entries: Vec<OwnedPartition> = owned
                .into_iter()
                .map(|partition| OwnedPartition {
                    next_offset: self.positions[index].get(&partition).copied(),
                    newest_event_ms: tracker.and_then(|t| t.newest_of(&partition)),
                    partition,
                })
                .collect();
            let now = Instant::now();
            for entry in &entries {
                let watermark = tracker.and_then(|t| t.partition_watermark(&entry.partition, now));
                let state_rows = saved
                    .rows_per_partition
                    .get(&entry.partition)
                    .copied()
                    .unwrap_or(0);
                self.board.update(&source.name, &entry.partition, |s| {
                    s.watermark_ms = watermark;
                    s.state_rows = state_rows;
                    s.last_checkpoint = Some(chrono::Utc::now());
                });
                PartitionCheckpointed {
                    pipeline: &self.planned.spec.name,
                    source: &source.name,
                    partition: &entry.partition,
                    watermark,
                    state_rows,
                }
                .emit();
            }
            if !entries.is_empty() {
                state.partitions.insert(source.name.clone(), entries);
            }
        }
        for (source, tracker) in self.planned.spec.sources.iter().zip(&self.watermarks) {
            if let Some(watermark) = tracker.as_ref().and_then(WatermarkTracker::current) {
                state.watermarks.insert(source.name.clone(), watermark);
            }
        }
        Ok(state)
    }

    /// The sources stopped. If their input really ended, operators emit
    /// what they hold; if the run was stopped, open windows stay open and
    /// the last checkpoint saves them. Then everything is published.
    async fn finish(&mut self, input_ended: bool) -> Result<(), EngineError> {
        if input_ended {
            let outputs = self
                .operators
                .run(Vec::new(), &WatermarkView::default(), true)
                .await?;
            self.deliver(&outputs).await?;
        }
        self.checkpoint().await
    }

    /// Every tick ([`tick_period`]): quiet partitions stop holding
    /// watermarks back (which may close windows), and sinks check the age
    /// of their files.
    async fn tick(&mut self) -> Result<(), EngineError> {
        let now = Instant::now();
        let mut moved = false;
        for tracker in self.watermarks.iter_mut().flatten() {
            moved |= tracker.advance(now).is_some();
        }
        if moved {
            let view = self.watermark_view();
            let outputs = self.operators.run(Vec::new(), &view, false).await?;
            self.deliver(&outputs).await?;
        }
        for sink in self.sinks.iter() {
            if let Some(sender) = &sink.sender {
                // A full channel means the sink is busy and will check its
                // file ages on the next message anyway.
                let _ = sender.try_send(SinkMessage::Tick);
            }
        }
        Ok(())
    }
}

/// Continue from the newest checkpoint: state kept per instance and
/// watermarks (state kept per partition follows the partition assignments).
async fn restore_state(
    planned: &PlannedPipeline,
    store: &CheckpointStore,
    watermarks: &mut [Option<WatermarkTracker>],
    operators: &mut RunOperators<'_>,
) -> Result<(), EngineError> {
    let Some(saved) = store.latest_state()? else {
        return Ok(());
    };
    let groups = operators
        .restore_instance(&planned.spec.name, saved.operators)
        .await?;
    for (source, tracker) in planned.spec.sources.iter().zip(watermarks.iter_mut()) {
        if let (Some(tracker), Some(&millis)) =
            (tracker.as_mut(), saved.watermarks.get(&source.name))
        {
            tracker.resume_from(SavedWatermark { millis });
        }
    }
    StateRestored {
        pipeline: &planned.spec.name,
        manifest: &saved.manifest,
        groups,
    }
    .emit();
    Ok(())
}

/// Hand every table's new batches to the sinks reading it.
async fn deliver(
    sinks: &[RunningSink],
    outputs: &HashMap<String, Vec<RecordBatch>>,
) -> Result<(), EngineError> {
    for sink in sinks {
        if let Some(batches) = outputs.get(&sink.input) {
            for batch in batches {
                send(sink, SinkMessage::Data(batch.clone())).await?;
            }
        }
    }
    Ok(())
}

async fn send(sink: &RunningSink, message: SinkMessage) -> Result<(), EngineError> {
    let Some(sender) = &sink.sender else {
        return Err(EngineError::Internal(format!(
            "sink `{}` already closed",
            sink.name
        )));
    };
    // A send fails only when the sink task has ended early, i.e. it failed;
    // its own error is collected when the task is joined.
    sender
        .send(message)
        .await
        .map_err(|_| EngineError::component("sink", &sink.name, StoppedUnexpectedly))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sinks(yaml_rolls: &[&str]) -> Vec<crate::spec::SinkSpec> {
        let mut yaml = String::from(
            "name: ticks\nsources:\n  monitors:\n    kind: simulator\n    patients: 1\nsinks:\n  live:\n    kind: live\n    input: monitors\n",
        );
        for (i, roll) in yaml_rolls.iter().enumerate() {
            yaml.push_str(&format!(
                "  files{i}:\n    kind: parquet\n    input: monitors\n    path: /tmp/ticks{i}\n{roll}"
            ));
        }
        crate::spec::parse(&yaml, std::path::Path::new("ticks.yaml"))
            .unwrap()
            .sinks
    }

    #[test]
    fn the_tick_follows_the_shortest_file_age_between_10_ms_and_a_second() {
        assert_eq!(tick_period(&sinks(&[])), Duration::from_secs(1));
        // The default roll age (5 minutes) keeps a second.
        assert_eq!(tick_period(&sinks(&[""])), Duration::from_secs(1));
        assert_eq!(
            tick_period(&sinks(&[
                "    roll: {max_age: 2s}\n",
                "    roll: {max_age: 500ms}\n"
            ])),
            Duration::from_millis(125)
        );
        assert_eq!(
            tick_period(&sinks(&["    roll: {max_age: 1ms}\n"])),
            Duration::from_millis(10)
        );
    }
}
