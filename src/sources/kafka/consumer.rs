//! The consumer thread: the async shell around rdkafka that moves messages
//! from Kafka into batches for the engine.
//!
//! It polls, copies each message into the pending buffer, asks the
//! [`Batcher`] whether the buffer is a batch yet, decodes it and hands it to
//! the engine, pausing the partitions while the engine applies
//! back-pressure. The decisions live elsewhere: when a batch is due in
//! `batcher.rs`, and the offset protocol (where partitions resume,
//! checkpoints before a rebalance, commits) in `offsets.rs`, which also holds
//! the rebalance callbacks librdkafka calls from inside `poll` on this thread.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::statistics::Statistics;
use tokio::sync::mpsc;

use super::batcher::{Batcher, Buffered};
use super::config::{KafkaSourceConfig, StartPosition};
use super::decode::{MessageDecoder, RawMessages};
use super::events::{
    ClientError, ConsumerClosed, ConsumerClosing, MessagesDecoded, PartitionLag, SourcePaused,
    SourceResumed,
};
use super::schema::RecordSchema;
use crate::common::event_times_ms;
use crate::common::{DurableOffsetsReader, backoff};
use crate::kafka::{ensure_topic, wait_for_brokers};
use crate::sources::{
    EventTimeConfig, Source, SourceBatch, SourceContext, SourceError, SourceEvent, SourceSummary,
    TopicPartition,
};

pub struct KafkaSource {
    config: KafkaSourceConfig,
    schema: RecordSchema,
}

impl KafkaSource {
    pub fn new(config: KafkaSourceConfig, schema: RecordSchema) -> Self {
        Self { config, schema }
    }
}

#[async_trait::async_trait]
impl Source for KafkaSource {
    async fn run(self: Box<Self>, ctx: SourceContext) -> Result<SourceSummary, SourceError> {
        let runtime = tokio::runtime::Handle::current();
        let name = ctx.name.clone();
        tokio::task::spawn_blocking(move || consume(self.config, self.schema, ctx, runtime))
            .await
            .map_err(|source| SourceError::Panicked {
                what: format!("Kafka consumer thread of `{name}`"),
                source,
            })?
    }
}

/// Everything the poll loop and the librdkafka callbacks share.
pub(super) struct Shared {
    pipeline: String,
    pub(super) name: String,
    pub(super) output: mpsc::Sender<SourceEvent>,
    pending: Mutex<Pending>,
    /// With `event_time:`, batches carry each partition's newest event time.
    event_time: Option<EventTimeConfig>,
    pub(super) durable: Option<std::sync::Arc<dyn DurableOffsetsReader>>,
    pub(super) assigned: Mutex<BTreeSet<TopicPartition>>,
    /// Where the lag of each owned partition is shown (`/health`).
    board: crate::common::PartitionBoard,
    summary: Mutex<SourceSummary>,
    /// Set once the final checkpoint is done: later revokes just release.
    pub(super) closing: AtomicBool,
    /// A failure inside a callback, reported by the poll loop.
    failure: Mutex<Option<SourceError>>,
    /// A decoded batch the engine has not taken yet (it is applying
    /// back-pressure, e.g. a full spool): sent before anything newer, by
    /// whichever path sends next, so batches stay in offset order.
    held: Mutex<Option<SourceEvent>>,
    /// For waiting on the engine's channel with a timeout.
    runtime: tokio::runtime::Handle,
    /// The group session (`session.timeout.ms`): away from every broker
    /// for longer, the assignment is certainly lost.
    session_timeout: Duration,
}

/// How long the engine may take to accept a batch before the partitions
/// are paused (a brief full channel is ordinary back-pressure).
const PAUSE_AFTER: Duration = Duration::from_secs(1);

struct Pending {
    raw: RawMessages,
    decoder: MessageDecoder,
}

/// librdkafka's hooks into [`Shared`] (the rebalance hook is in `offsets.rs`).
pub(super) struct SourceClientContext(pub(super) Shared);

fn consume(
    config: KafkaSourceConfig,
    schema: RecordSchema,
    ctx: SourceContext,
    runtime: tokio::runtime::Handle,
) -> Result<SourceSummary, SourceError> {
    let client = config.client();
    let who = format!("source `{}`", ctx.name);
    if !wait_for_brokers(&client, &who, &ctx.shutdown)? {
        return Ok(SourceSummary::default());
    }
    if let Some(create) = &config.create_topic {
        for topic in config.topic_list() {
            let mut delays =
                backoff::exponential(Duration::from_millis(500), Duration::from_secs(5));
            loop {
                match runtime.block_on(ensure_topic(&client, &topic, create)) {
                    Ok(_) => break,
                    Err(error) if !ctx.shutdown.is_cancelled() => {
                        tracing::warn!(source = %ctx.name, topic, error = format!("{error:#}"), "cannot create topic yet; retrying");
                        std::thread::sleep(delays.next().unwrap_or(Duration::from_secs(5)));
                    }
                    Err(_) => return Ok(SourceSummary::default()),
                }
            }
        }
    }

    let reset = match config.start {
        StartPosition::Earliest => "earliest",
        StartPosition::Latest => "latest",
    };
    let max_rows = config.batch.max_rows;
    let client_config = client.client_config(&[
        ("group.id", config.group_id.as_str()),
        ("enable.auto.commit", "false"),
        ("enable.auto.offset.store", "false"),
        ("auto.offset.reset", reset),
        ("enable.partition.eof", "false"),
        // Lag and watermarks per partition for the metrics, and the
        // session watch (`session.rs`).
        ("statistics.interval.ms", "1000"),
    ]);
    let session_timeout = super::session::session_timeout(client_config.get("session.timeout.ms"));
    let shared = Shared {
        pipeline: ctx.pipeline.clone(),
        name: ctx.name.clone(),
        output: ctx.output.clone(),
        pending: Mutex::new(Pending {
            raw: RawMessages::default(),
            decoder: MessageDecoder::new(&ctx.name, schema, max_rows)?
                .with_dead_letter_payload(config.dead_letters.max_payload.0 as usize)
                .with_translator(
                    config
                        .translator()
                        .map_err(|e| SourceError::from(crate::sources::ConfigError::from(e)))?,
                ),
        }),
        event_time: config.event_time.clone(),
        durable: ctx.durable.clone(),
        board: ctx.partitions.clone(),
        assigned: Mutex::new(BTreeSet::new()),
        summary: Mutex::new(SourceSummary::default()),
        held: Mutex::new(None),
        runtime: runtime.clone(),
        closing: AtomicBool::new(false),
        failure: Mutex::new(None),
        session_timeout,
    };
    let consumer: BaseConsumer<SourceClientContext> = client_config
        .create_with_context(SourceClientContext(shared))
        .map_err(|source| SourceError::Consumer {
            context: format!("creating the Kafka consumer of {who}"),
            source,
        })?;
    let topics = config.topic_list();
    let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topic_refs)
        .map_err(|source| SourceError::Consumer {
            context: format!("subscribing to {}", topics.join(", ")),
            source,
        })?;
    tracing::info!(source = %ctx.name, topics = %topics.join(","), group = %config.group_id, brokers = %client.brokers, "consuming");

    let result = poll_loop(&consumer, &config, ctx);
    let shared = &consumer.context().0;
    let outcome = result.and_then(|()| {
        // Everything read becomes durable, then the offsets are committed.
        if shared.flush()?
            && let Some(offsets) = shared.checkpoint()?
        {
            shared.commit(&consumer, &offsets, CommitMode::Sync, |_| true);
        }
        Ok(())
    });
    shared.closing.store(true, Ordering::SeqCst);
    let summary = shared.summary.lock().map(|s| s.clone()).unwrap_or_default();
    let failed = outcome
        .as_ref()
        .err()
        .map(|e| crate::common::ErrorChain(e).to_string());
    close(consumer, failed.as_deref());
    outcome.map(|()| summary)
}

/// How long closing the consumer may hold the source's end (and so a
/// restart from the checkpoint, or the process's exit).
const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// Leave the group and close the consumer, waiting at most [`CLOSE_WAIT`].
/// librdkafka's close waits for the group coordinator, which may be
/// unreachable (the outage that expired the session): then the close goes
/// on in the background, where it harms nothing: the membership is gone,
/// the consumer is unsubscribed and every callback only releases.
fn close(consumer: BaseConsumer<SourceClientContext>, failed: Option<&str>) {
    let name = consumer.context().0.name.clone();
    ConsumerClosing {
        source: &name,
        failed,
    }
    .emit();
    let started = Instant::now();
    let (done, closed) = std::sync::mpsc::channel();
    let closer = std::thread::Builder::new()
        .name(format!("close-{name}"))
        .spawn(move || {
            consumer.unsubscribe();
            drop(consumer);
            let _ = done.send(());
        });
    let finished = closer.is_ok() && closed.recv_timeout(CLOSE_WAIT).is_ok();
    ConsumerClosed {
        source: &name,
        took: started.elapsed(),
        finished,
    }
    .emit();
}

fn poll_loop(
    consumer: &BaseConsumer<SourceClientContext>,
    config: &KafkaSourceConfig,
    mut ctx: SourceContext,
) -> Result<(), SourceError> {
    let shared = &consumer.context().0;
    let batcher = Batcher::new(&config.batch);
    let mut last_error_log: Option<Instant> = None;
    loop {
        if ctx.shutdown.is_cancelled() {
            return Ok(());
        }
        if let Some(error) = shared.failure.lock().ok().and_then(|mut f| f.take()) {
            return Err(error);
        }
        if ctx.committed.has_changed().unwrap_or(false) {
            let offsets = ctx.committed.borrow_and_update().clone();
            let assigned = shared.assigned_now();
            shared.commit(consumer, &offsets, CommitMode::Async, |tp| {
                assigned.contains(tp)
            });
        }
        let timeout = batcher.poll_timeout(shared.buffered(), Instant::now());
        match consumer.poll(timeout) {
            Some(Ok(message)) => shared.buffer(&message)?,
            Some(Err(error)) => {
                let quiet = last_error_log.is_some_and(|t| t.elapsed() < Duration::from_secs(5));
                if !quiet {
                    ClientError {
                        source: &shared.name,
                        error: &error.to_string(),
                    }
                    .emit();
                    last_error_log = Some(Instant::now());
                }
            }
            None => {}
        }
        if batcher.is_due(shared.buffered(), Instant::now())
            && !shared.flush_polling(consumer, &ctx.shutdown)?
        {
            // The engine stopped reading: it is shutting down.
            return Ok(());
        }
    }
}

impl Shared {
    fn lock_pending(&self) -> Result<std::sync::MutexGuard<'_, Pending>, SourceError> {
        self.pending.lock().map_err(|_| {
            SourceError::Internal(format!("source `{}`: message buffer poisoned", self.name))
        })
    }

    /// Copy a polled message into the pending batch.
    fn buffer(&self, message: &rdkafka::message::BorrowedMessage<'_>) -> Result<(), SourceError> {
        self.lock_pending()?.raw.push(
            message.topic(),
            message.partition(),
            message.offset(),
            message.timestamp().to_millis(),
            message.key(),
            message.payload(),
        );
        Ok(())
    }

    /// What is buffered, for the [`Batcher`].
    fn buffered(&self) -> Buffered {
        self.pending
            .lock()
            .map(|p| Buffered {
                rows: p.raw.len(),
                bytes: p.raw.payload_bytes(),
                since: p.raw.first_at(),
            })
            .unwrap_or_default()
    }

    pub(super) fn assigned_now(&self) -> BTreeSet<TopicPartition> {
        self.assigned.lock().map(|a| a.clone()).unwrap_or_default()
    }

    /// Decode what is buffered and hand it to the engine, waiting as long
    /// as the engine applies back-pressure. `false` when the engine no
    /// longer listens. (Rebalance callbacks and the final flush use this:
    /// they must not return before the data is handed over.)
    pub(super) fn flush(&self) -> Result<bool, SourceError> {
        if let Some(held) = self.take_held()
            && self.output.blocking_send(held).is_err()
        {
            return Ok(false);
        }
        match self.decode_pending()? {
            Some(event) => Ok(self.output.blocking_send(event).is_ok()),
            None => Ok(true),
        }
    }

    /// [`Self::flush`] from the poll loop: while the engine does not take
    /// the batch (a sink is paused), the assigned partitions are paused and
    /// the consumer keeps polling, so this member stays in its group (a
    /// consumer that stops polling is evicted after `max.poll.interval.ms`)
    /// without fetching more. On shutdown the batch stays held for the
    /// final flush.
    fn flush_polling(
        &self,
        consumer: &BaseConsumer<SourceClientContext>,
        shutdown: &tokio_util::sync::CancellationToken,
    ) -> Result<bool, SourceError> {
        let mut event = match self.take_held() {
            Some(held) => held,
            None => match self.decode_pending()? {
                Some(event) => event,
                None => return Ok(true),
            },
        };
        let mut paused_at: Option<Instant> = None;
        let outcome = loop {
            let wait = if paused_at.is_some() {
                Duration::from_millis(100)
            } else {
                PAUSE_AFTER
            };
            let reserved = self
                .runtime
                .block_on(tokio::time::timeout(wait, self.output.reserve()));
            match reserved {
                Ok(Ok(permit)) => {
                    permit.send(event);
                    break Ok(true);
                }
                Ok(Err(_closed)) => break Ok(false),
                Err(_still_full) => {
                    // Visible to a rebalance callback running inside poll,
                    // which then hands it over first.
                    self.hold(event);
                    if shutdown.is_cancelled() {
                        break Ok(true);
                    }
                    if paused_at.is_none() {
                        let assignment = consumer.assignment().unwrap_or_default();
                        if let Err(error) = consumer.pause(&assignment) {
                            tracing::warn!(source = %self.name, %error, "pausing partitions failed");
                        }
                        SourcePaused {
                            pipeline: &self.pipeline,
                            source: &self.name,
                            partitions: assignment.count(),
                        }
                        .emit();
                        paused_at = Some(Instant::now());
                    }
                    // Polling keeps the membership; paused partitions fetch
                    // nothing new.
                    match consumer.poll(Duration::ZERO) {
                        // Fetched before the pause took effect: kept in
                        // order behind the held batch.
                        Some(Ok(message)) => self.buffer(&message)?,
                        Some(Err(error)) => {
                            tracing::debug!(source = %self.name, %error, "poll while paused")
                        }
                        None => {}
                    }
                    if let Some(error) = self.failure.lock().ok().and_then(|mut f| f.take()) {
                        break Err(error);
                    }
                    match self.take_held() {
                        Some(held) => event = held,
                        // A rebalance callback handed it over.
                        None => break Ok(true),
                    }
                }
            }
        };
        if let Some(since) = paused_at {
            let assignment = consumer.assignment().unwrap_or_default();
            if let Err(error) = consumer.resume(&assignment) {
                tracing::warn!(source = %self.name, %error, "resuming partitions failed");
            }
            SourceResumed {
                pipeline: &self.pipeline,
                source: &self.name,
                paused: since.elapsed(),
            }
            .emit();
        }
        outcome
    }

    fn hold(&self, event: SourceEvent) {
        if let Ok(mut held) = self.held.lock() {
            *held = Some(event);
        }
    }

    fn take_held(&self) -> Option<SourceEvent> {
        self.held.lock().ok().and_then(|mut h| h.take())
    }

    /// The buffered messages as one decoded batch event, or `None`.
    fn decode_pending(&self) -> Result<Option<SourceEvent>, SourceError> {
        let mut pending = self.lock_pending()?;
        if pending.raw.is_empty() {
            return Ok(None);
        }
        let Pending { raw, decoder } = &mut *pending;
        let decoded = decoder
            .decode(raw)
            .map_err(|e| e.context(format!("source `{}`: decoding a batch", self.name)))?;
        let offsets = raw.next_offsets();
        let per_partition = raw.counts();
        let partition_event_times = match &self.event_time {
            Some(config) => partition_event_times(raw, &decoded, config).map_err(|e| {
                SourceError::from(e).context(format!("source `{}`: reading event times", self.name))
            })?,
            None => BTreeMap::new(),
        };
        MessagesDecoded {
            pipeline: &self.pipeline,
            source: &self.name,
            per_partition: &per_partition,
            rejected: &decoded.rejected,
        }
        .emit();
        if let Ok(mut summary) = self.summary.lock() {
            summary.records += decoded.rows.num_rows() as u64;
            summary.dead_letters += decoded.rejected.values().sum::<u64>();
            summary.batches += 1;
        }
        let row_partitions = row_partitions(raw, &decoded.message_of_row);
        raw.clear();
        drop(pending);
        Ok(Some(SourceEvent::Batch(SourceBatch {
            batch: decoded.rows,
            dead_letters: decoded.dead_letters,
            offsets,
            partition_event_times,
            assigned_partitions: self.assigned_now().into_iter().collect(),
            row_partitions,
        })))
    }

    /// Record a failure from a callback; the poll loop returns it.
    pub(super) fn fail(&self, error: SourceError) {
        if let Ok(mut failure) = self.failure.lock() {
            failure.get_or_insert(error);
        }
    }
}

impl ClientContext for SourceClientContext {
    fn stats(&self, statistics: Statistics) {
        let assigned = self.0.assigned_now();
        if !assigned.is_empty()
            && let Some(why) = super::session::expired(&statistics, self.0.session_timeout)
        {
            self.0.session_lost(&why);
        }
        for (topic, stats) in &statistics.topics {
            for (partition, p) in &stats.partitions {
                if *partition < 0 || !assigned.contains(&TopicPartition::new(topic, *partition)) {
                    continue;
                }
                let tp = TopicPartition::new(topic, *partition);
                self.0
                    .board
                    .update(&self.0.name, &tp, |s| s.lag = Some(p.consumer_lag.max(0)));
                PartitionLag {
                    source: &self.0.name,
                    topic,
                    partition: *partition,
                    high_watermark: p.hi_offset,
                    committed: p.committed_offset,
                    lag: p.consumer_lag.max(0),
                }
                .emit();
            }
        }
    }

    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        super::events::LibrdkafkaLog {
            level,
            facility: fac,
            message: log_message,
        }
        .emit();
        // The group session expired: librdkafka revokes the assignment as
        // lost, but while no coordinator is known it may not call the
        // rebalance callback until one answers again. Fail as that callback
        // would: what was read since the last checkpoint may be another
        // member's now.
        if fac == "SESSTMOUT" {
            self.0.session_lost(&format!("librdkafka: {log_message}"));
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        ClientError {
            source: &self.0.name,
            error: &format!("{error}: {reason}"),
        }
        .emit();
    }
}

/// The partition of every accepted row, as runs in row order.
fn row_partitions(raw: &RawMessages, message_of_row: &[usize]) -> Vec<(TopicPartition, usize)> {
    let mut runs: Vec<(TopicPartition, usize)> = Vec::new();
    let mut previous: Option<usize> = None;
    for &message in message_of_row {
        match (runs.last_mut(), previous) {
            (Some((_, rows)), Some(p)) if raw.same_partition(p, message) => *rows += 1,
            _ => runs.push((raw.partition_of(message), 1)),
        }
        previous = Some(message);
    }
    runs
}

/// The newest event time per partition among the accepted rows (rows
/// without an event time do not move a watermark).
fn partition_event_times(
    raw: &RawMessages,
    decoded: &super::decode::DecodedBatch,
    config: &EventTimeConfig,
) -> Result<BTreeMap<TopicPartition, i64>, crate::common::EventTimeError> {
    let times = event_times_ms(&decoded.rows, &config.column)?;
    let mut newest: BTreeMap<TopicPartition, i64> = BTreeMap::new();
    for (row, &message) in decoded.message_of_row.iter().enumerate() {
        if arrow::array::Array::is_null(&times, row) {
            continue;
        }
        let time = times.value(row);
        let slot = newest.entry(raw.partition_of(message)).or_insert(time);
        *slot = (*slot).max(time);
    }
    Ok(newest)
}
