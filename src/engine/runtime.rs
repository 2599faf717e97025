//! The engine loop: sources -> operators -> sinks, with bounded channels,
//! progress markers for durable acknowledgement, and an orderly shutdown.
//!
//! Data flows one way. Sources push into bounded channels (backpressure);
//! the engine runs every micro-batch through the operators in dependency
//! order and hands the results to each sink's bounded channel; after each
//! source batch it sends a progress marker, which a sink echoes back once the
//! rows before it are durable. On shutdown sources stop first, the engine
//! drains what they already produced, operators emit what they hold, and
//! sinks publish their open files, so nothing accepted is lost.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use arrow::record_batch::RecordBatch;
use futures::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use super::error::EngineError;
use super::events::{BatchProcessed, ProgressDurable};
use super::plan::PlannedPipeline;
use crate::sinks::{SinkMessage, SinkSummary};
use crate::sources::{SourceContext, SourceSummary};

/// Tuning knobs of a run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Batches buffered between two stages; small, so memory stays flat.
    pub channel_capacity: usize,
    /// How often a progress line is logged.
    pub report_interval: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            channel_capacity: 4,
            report_interval: Duration::from_secs(10),
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
    acks: watch::Receiver<u64>,
    task: JoinHandle<anyhow::Result<SinkSummary>>,
}

/// Run `planned` until its sources end or `shutdown` is cancelled.
pub async fn run(
    planned: &PlannedPipeline,
    shutdown: CancellationToken,
    options: RunOptions,
) -> Result<RunSummary, EngineError> {
    let started = Instant::now();
    let spec = &planned.spec;
    crate::telemetry::metrics::handle();

    let mut sinks = Vec::new();
    for sink in &spec.sinks {
        let schema = planned.schema_of(&sink.input).cloned().ok_or_else(|| {
            EngineError::Internal(format!(
                "sink `{}` reads unplanned table `{}`",
                sink.name, sink.input
            ))
        })?;
        let runtime = sink
            .config
            .build(&sink.name, schema, spec.base_dir())
            .map_err(|e| EngineError::component("sink", &sink.name, e))?;
        let (sender, receiver) = mpsc::channel(options.channel_capacity);
        let (ack_sender, acks) = watch::channel(0);
        let task = tokio::spawn(runtime.run(receiver, ack_sender));
        sinks.push(RunningSink {
            name: sink.name.clone(),
            input: sink.input.clone(),
            sender: Some(sender),
            acks,
            task,
        });
    }

    let source_shutdown = shutdown.child_token();
    let mut source_streams = Vec::new();
    let mut source_tasks = Vec::new();
    for (index, source) in spec.sources.iter().enumerate() {
        let runtime = source
            .config
            .build()
            .map_err(|e| EngineError::component("source", &source.name, e))?;
        let (sender, receiver) = mpsc::channel(options.channel_capacity);
        let ctx = SourceContext {
            output: sender,
            shutdown: source_shutdown.clone(),
        };
        source_tasks.push((source.name.clone(), tokio::spawn(runtime.run(ctx))));
        source_streams.push(ReceiverStream::new(receiver).map(move |batch| (index, batch)));
    }
    let mut incoming = futures::stream::select_all(source_streams);

    let mut engine = EngineLoop {
        planned,
        sinks: &mut sinks,
        sequence: 0,
        records_in: 0,
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut report = tokio::time::interval(options.report_interval);
    report.tick().await;
    let mut last_report = (Instant::now(), 0u64);

    let mut failure: Option<EngineError> = None;
    loop {
        tokio::select! {
            next = incoming.next() => {
                let Some((index, item)) = next else { break };
                if let Err(e) = engine.process(index, item.batch).await {
                    failure = Some(e);
                    break;
                }
            }
            _ = tick.tick() => engine.tick(),
            _ = report.tick() => {
                let (at, records) = last_report;
                let rate = (engine.records_in - records) as f64 / at.elapsed().as_secs_f64();
                let durable = engine.durable();
                ProgressDurable { pipeline: &spec.name, pending: engine.sequence.saturating_sub(durable) }.emit();
                tracing::info!(
                    pipeline = %spec.name,
                    records_in = engine.records_in,
                    records_per_second = rate.round(),
                    durable_batches = engine.durable(),
                    "pipeline progress"
                );
                last_report = (Instant::now(), engine.records_in);
            }
        }
    }

    // Stop the sources (if not already done), then let held state out.
    source_shutdown.cancel();
    drop(incoming);
    if failure.is_none()
        && let Err(e) = engine.finish().await
    {
        failure = Some(e);
    }
    let mut summary = RunSummary::default();
    for (name, task) in source_tasks {
        match task.await {
            Ok(Ok(s)) => summary.sources.push((name, s)),
            Ok(Err(e)) => {
                failure.get_or_insert(EngineError::component("source", &name, e));
            }
            Err(e) => {
                failure.get_or_insert(EngineError::component("source", &name, e));
            }
        }
    }
    // Closing the channels tells each sink to publish and finish.
    for sink in sinks.iter_mut() {
        sink.sender.take();
    }
    let mut durable = u64::MAX;
    for sink in sinks {
        let result = sink.task.await;
        durable = durable.min(*sink.acks.borrow());
        let error = match result {
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
    summary.durable_batches = if durable == u64::MAX { 0 } else { durable };
    summary.elapsed = started.elapsed();
    match failure {
        Some(e) => Err(e),
        None => Ok(summary),
    }
}

struct EngineLoop<'a> {
    planned: &'a PlannedPipeline,
    sinks: &'a mut Vec<RunningSink>,
    sequence: u64,
    records_in: u64,
}

impl EngineLoop<'_> {
    /// One source batch through every operator, then to the sinks.
    async fn process(
        &mut self,
        source_index: usize,
        batch: RecordBatch,
    ) -> Result<(), EngineError> {
        let started = Instant::now();
        self.sequence += 1;
        let rows = batch.num_rows();
        self.records_in += rows as u64;
        let source = &self.planned.spec.sources[source_index].name;
        let outputs = self.run_operators(source, vec![batch], false).await?;
        self.deliver(&outputs).await?;
        let sequence = self.sequence;
        for sink in self.sinks.iter() {
            send(sink, SinkMessage::Progress(sequence)).await?;
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

    /// Run `batches` of table `start` (or, with `finishing`, every
    /// operator's held rows) through the operators downstream of it.
    async fn run_operators(
        &self,
        start: &str,
        batches: Vec<RecordBatch>,
        finishing: bool,
    ) -> Result<HashMap<String, Vec<RecordBatch>>, EngineError> {
        let mut outputs: HashMap<String, Vec<RecordBatch>> = HashMap::new();
        outputs.insert(start.to_string(), batches);
        for operator in &self.planned.operators {
            let mut produced = Vec::new();
            if let Some(inputs) = outputs.get(operator.input()) {
                for batch in inputs.clone() {
                    let out = operator
                        .process(batch)
                        .await
                        .map_err(|e| EngineError::component("transform", operator.name(), e))?;
                    produced.extend(out.into_iter().filter(|b| b.num_rows() > 0));
                }
            }
            if finishing {
                let held = operator
                    .finish()
                    .await
                    .map_err(|e| EngineError::component("transform", operator.name(), e))?;
                produced.extend(held);
            }
            if !produced.is_empty() {
                outputs
                    .entry(operator.name().to_string())
                    .or_default()
                    .extend(produced);
            }
        }
        Ok(outputs)
    }

    async fn deliver(
        &self,
        outputs: &HashMap<String, Vec<RecordBatch>>,
    ) -> Result<(), EngineError> {
        for sink in self.sinks.iter() {
            if let Some(batches) = outputs.get(&sink.input) {
                for batch in batches {
                    send(sink, SinkMessage::Data(batch.clone())).await?;
                }
            }
        }
        Ok(())
    }

    /// Inputs are exhausted: operators emit what they hold.
    async fn finish(&mut self) -> Result<(), EngineError> {
        let outputs = self.run_operators("", Vec::new(), true).await?;
        self.deliver(&outputs).await
    }

    fn tick(&self) {
        for sink in self.sinks.iter() {
            if let Some(sender) = &sink.sender {
                // A full channel means the sink is busy and will check its
                // file ages on the next message anyway.
                let _ = sender.try_send(SinkMessage::Tick);
            }
        }
    }

    fn durable(&self) -> u64 {
        self.sinks
            .iter()
            .map(|s| *s.acks.borrow())
            .min()
            .unwrap_or(self.sequence)
    }
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
    sender.send(message).await.map_err(|_| {
        EngineError::component("sink", &sink.name, anyhow::anyhow!("stopped unexpectedly"))
    })
}
