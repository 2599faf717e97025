//! The consumer thread: polls Kafka, batches messages, decodes them, and
//! keeps offsets exactly-once with the engine's checkpoints.
//!
//! Offsets are never auto-committed. A partition is assigned at the offset
//! the newest checkpoint of any instance recorded for it (Kafka's committed
//! offset is only the fallback, e.g. for a fresh checkpoint directory), and
//! before a partition is given up in a rebalance the pending messages are
//! flushed and a checkpoint publishes everything read from it. So after a
//! crash, a restart or a rebalance, each record lands in the dataset once.
//!
//! librdkafka calls the rebalance callback from inside `poll`, on this
//! thread; the callback may block on the engine's checkpoint because the
//! engine never waits on this thread.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::Message;
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use tokio::sync::{mpsc, oneshot};

use super::config::{KafkaSourceConfig, StartPosition};
use super::decode::{MessageDecoder, RawMessages};
use super::events::{
    ClientError, MessagesDecoded, PartitionLag, PartitionsAssigned, PartitionsRevoked,
    SourcePaused, SourceResumed,
};
use super::schema::RecordSchema;
use crate::common::DurableOffsetsReader;
use crate::common::event_times_ms;
use crate::kafka::{ensure_topic, wait_for_brokers};
use crate::sources::{
    EventTimeConfig, Offsets, Source, SourceBatch, SourceContext, SourceEvent, SourceSummary,
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
    async fn run(self: Box<Self>, ctx: SourceContext) -> anyhow::Result<SourceSummary> {
        let runtime = tokio::runtime::Handle::current();
        let name = ctx.name.clone();
        tokio::task::spawn_blocking(move || consume(self.config, self.schema, ctx, runtime))
            .await
            .with_context(|| format!("Kafka consumer thread of `{name}` panicked"))?
    }
}

/// Everything the poll loop and the librdkafka callbacks share.
struct Shared {
    pipeline: String,
    name: String,
    output: mpsc::Sender<SourceEvent>,
    pending: Mutex<Pending>,
    /// With `event_time:`, batches carry each partition's newest event time.
    event_time: Option<EventTimeConfig>,
    durable: Option<std::sync::Arc<dyn DurableOffsetsReader>>,
    assigned: Mutex<BTreeSet<TopicPartition>>,
    summary: Mutex<SourceSummary>,
    /// Set once the final checkpoint is done: later revokes just release.
    closing: AtomicBool,
    /// A failure inside a callback, reported by the poll loop.
    failure: Mutex<Option<anyhow::Error>>,
    /// A decoded batch the engine has not taken yet (it is applying
    /// back-pressure, e.g. a full spool): sent before anything newer, by
    /// whichever path sends next, so batches stay in offset order.
    held: Mutex<Option<SourceEvent>>,
    /// For waiting on the engine's channel with a timeout.
    runtime: tokio::runtime::Handle,
}

/// How long the engine may take to accept a batch before the partitions
/// are paused (a brief full channel is ordinary back-pressure).
const PAUSE_AFTER: Duration = Duration::from_secs(1);

struct Pending {
    raw: RawMessages,
    decoder: MessageDecoder,
}

/// librdkafka's hooks into [`Shared`].
struct SourceClientContext(Shared);

fn consume(
    config: KafkaSourceConfig,
    schema: RecordSchema,
    ctx: SourceContext,
    runtime: tokio::runtime::Handle,
) -> anyhow::Result<SourceSummary> {
    let client = config.client();
    let who = format!("source `{}`", ctx.name);
    if !wait_for_brokers(&client, &who, &ctx.shutdown)? {
        return Ok(SourceSummary::default());
    }
    if let Some(create) = &config.create_topic {
        for topic in config.topic_list() {
            let mut backoff = Duration::from_millis(500);
            loop {
                match runtime.block_on(ensure_topic(&client, &topic, create)) {
                    Ok(_) => break,
                    Err(error) if !ctx.shutdown.is_cancelled() => {
                        tracing::warn!(source = %ctx.name, topic, error = format!("{error:#}"), "cannot create topic yet; retrying");
                        std::thread::sleep(backoff);
                        backoff = (backoff * 2).min(Duration::from_secs(5));
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
    let shared = Shared {
        pipeline: ctx.pipeline.clone(),
        name: ctx.name.clone(),
        output: ctx.output.clone(),
        pending: Mutex::new(Pending {
            raw: RawMessages::default(),
            decoder: MessageDecoder::new(&ctx.name, schema, max_rows)?
                .with_dead_letter_payload(config.dead_letters.max_payload.0 as usize),
        }),
        event_time: config.event_time.clone(),
        durable: ctx.durable.clone(),
        assigned: Mutex::new(BTreeSet::new()),
        summary: Mutex::new(SourceSummary::default()),
        held: Mutex::new(None),
        runtime: runtime.clone(),
        closing: AtomicBool::new(false),
        failure: Mutex::new(None),
    };
    let consumer: BaseConsumer<SourceClientContext> = client
        .client_config(&[
            ("group.id", config.group_id.as_str()),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("auto.offset.reset", reset),
            ("enable.partition.eof", "false"),
            // Lag and watermarks per partition for the metrics.
            ("statistics.interval.ms", "1000"),
        ])
        .create_with_context(SourceClientContext(shared))
        .with_context(|| format!("creating the Kafka consumer of {who}"))?;
    let topics = config.topic_list();
    let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topic_refs)
        .with_context(|| format!("subscribing to {}", topics.join(", ")))?;
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
    consumer.unsubscribe();
    let summary = shared.summary.lock().map(|s| s.clone()).unwrap_or_default();
    drop(consumer);
    outcome.map(|()| summary)
}

fn poll_loop(
    consumer: &BaseConsumer<SourceClientContext>,
    config: &KafkaSourceConfig,
    mut ctx: SourceContext,
) -> anyhow::Result<()> {
    let shared = &consumer.context().0;
    let max_rows = config.batch.max_rows;
    let max_bytes = config.batch.max_bytes.0 as usize;
    let max_wait = config.batch.max_wait.0;
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
        let (buffered, _, age) = shared.buffered();
        let timeout = if buffered == 0 {
            Duration::from_millis(100)
        } else {
            max_wait.saturating_sub(age).min(Duration::from_millis(100))
        };
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
        let (buffered, bytes, age) = shared.buffered();
        let full = buffered >= max_rows || bytes >= max_bytes;
        if (full || (buffered > 0 && age >= max_wait))
            && !shared.flush_polling(consumer, &ctx.shutdown)?
        {
            // The engine stopped reading: it is shutting down.
            return Ok(());
        }
    }
}

impl Shared {
    fn lock_pending(&self) -> anyhow::Result<std::sync::MutexGuard<'_, Pending>> {
        self.pending
            .lock()
            .map_err(|_| anyhow::anyhow!("source `{}`: message buffer poisoned", self.name))
    }

    /// Copy a polled message into the pending batch.
    fn buffer(&self, message: &rdkafka::message::BorrowedMessage<'_>) -> anyhow::Result<()> {
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

    /// Records, payload bytes and age of what is buffered.
    fn buffered(&self) -> (usize, usize, Duration) {
        self.pending
            .lock()
            .map(|p| (p.raw.len(), p.raw.payload_bytes(), p.raw.age()))
            .unwrap_or_default()
    }

    fn assigned_now(&self) -> BTreeSet<TopicPartition> {
        self.assigned.lock().map(|a| a.clone()).unwrap_or_default()
    }

    /// Decode what is buffered and hand it to the engine, waiting as long
    /// as the engine applies back-pressure. `false` when the engine no
    /// longer listens. (Rebalance callbacks and the final flush use this:
    /// they must not return before the data is handed over.)
    fn flush(&self) -> anyhow::Result<bool> {
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
    ) -> anyhow::Result<bool> {
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
    fn decode_pending(&self) -> anyhow::Result<Option<SourceEvent>> {
        let mut pending = self.lock_pending()?;
        if pending.raw.is_empty() {
            return Ok(None);
        }
        let Pending { raw, decoder } = &mut *pending;
        let decoded = decoder
            .decode(raw)
            .with_context(|| format!("source `{}`: decoding a batch", self.name))?;
        let offsets = raw.next_offsets();
        let per_partition = raw.counts();
        let partition_event_times = match &self.event_time {
            Some(config) => partition_event_times(raw, &decoded, config)
                .with_context(|| format!("source `{}`: reading event times", self.name))?,
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
        raw.clear();
        drop(pending);
        Ok(Some(SourceEvent::Batch(SourceBatch {
            batch: decoded.rows,
            dead_letters: decoded.dead_letters,
            offsets,
            partition_event_times,
            assigned_partitions: self.assigned_now().into_iter().collect(),
        })))
    }

    /// Ask the engine for a checkpoint and wait for it; the durable offsets
    /// of this source, or `None` if the engine is gone.
    fn checkpoint(&self) -> anyhow::Result<Option<Offsets>> {
        let (reply, answer) = oneshot::channel();
        if self
            .output
            .blocking_send(SourceEvent::Checkpoint(reply))
            .is_err()
        {
            return Ok(None);
        }
        match answer.blocking_recv() {
            Ok(Ok(offsets)) => Ok(Some(offsets)),
            Ok(Err(error)) => Err(anyhow::anyhow!("checkpoint failed: {error}")),
            Err(_) => Ok(None),
        }
    }

    /// Commit `offsets` (those passing `keep`) to the group. Failures are
    /// logged, not fatal: the checkpoint already holds the offsets.
    fn commit(
        &self,
        consumer: &BaseConsumer<SourceClientContext>,
        offsets: &Offsets,
        mode: CommitMode,
        keep: impl Fn(&TopicPartition) -> bool,
    ) {
        let result = (|| -> KafkaResult<()> {
            let mut list = TopicPartitionList::new();
            for (tp, next) in offsets.iter().filter(|(tp, _)| keep(tp)) {
                list.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(*next))?;
            }
            if list.count() == 0 {
                return Ok(());
            }
            consumer.commit(&list, mode)
        })();
        if let Err(error) = result {
            tracing::warn!(source = %self.name, %error, "committing offsets to Kafka failed (the checkpoint holds them; retrying at the next one)");
        }
    }

    fn fail(&self, error: anyhow::Error) {
        if let Ok(mut failure) = self.failure.lock() {
            failure.get_or_insert(error);
        }
    }

    fn on_assign(
        &self,
        consumer: &BaseConsumer<SourceClientContext>,
        list: &mut TopicPartitionList,
    ) {
        let durable = match self.durable.as_ref().map(|d| d.durable_offsets(&self.name)).transpose() {
            Ok(durable) => durable.unwrap_or_default(),
            Err(error) => {
                // Resuming from Kafka's offsets could duplicate rows: stop.
                self.fail(anyhow::anyhow!(error).context("reading checkpoints to resume the assigned partitions"));
                return;
            }
        };
        let mut described = Vec::new();
        for (topic, partition) in list
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect::<Vec<_>>()
        {
            let tp = TopicPartition::new(&topic, partition);
            let resume = durable.get(&tp).copied();
            if let Some(offset) = resume
                && let Err(error) =
                    list.set_partition_offset(&topic, partition, Offset::Offset(offset))
            {
                self.fail(anyhow::Error::new(error).context(format!("resuming {tp} at {offset}")));
                return;
            }
            described.push((tp, resume));
        }
        if let Err(error) = consumer.assign(list) {
            self.fail(anyhow::Error::new(error).context("assigning partitions"));
            return;
        }
        if let Ok(mut assigned) = self.assigned.lock() {
            assigned.extend(described.iter().map(|(tp, _)| tp.clone()));
        }
        PartitionsAssigned {
            source: &self.name,
            partitions: &described,
        }
        .emit();
    }

    fn on_revoke(&self, consumer: &BaseConsumer<SourceClientContext>, list: &TopicPartitionList) {
        let revoked: Vec<TopicPartition> = list
            .elements()
            .iter()
            .map(|e| TopicPartition::new(e.topic(), e.partition()))
            .collect();
        // SAFETY: the handle is this consumer's own, alive for the call.
        let lost =
            unsafe { rdkafka::bindings::rd_kafka_assignment_lost(consumer.client().native_ptr()) }
                != 0;
        if lost && !self.closing.load(Ordering::SeqCst) {
            // Publishing what was read since the last checkpoint could
            // duplicate rows the new owner reads again: fail instead.
            self.closing.store(true, Ordering::SeqCst);
            self.fail(anyhow::Error::new(crate::sources::AssignmentLost {
                source_name: self.name.clone(),
                partitions: revoked
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" "),
            }));
        } else if !self.closing.load(Ordering::SeqCst) {
            PartitionsRevoked {
                source: &self.name,
                partitions: &revoked,
            }
            .emit();
            let durable = self
                .flush()
                .and_then(|open| if open { self.checkpoint() } else { Ok(None) });
            match durable {
                Ok(Some(offsets)) => self.commit(consumer, &offsets, CommitMode::Sync, |tp| {
                    revoked.contains(tp)
                }),
                Ok(None) => {}
                Err(error) => self.fail(error.context("checkpointing before releasing partitions")),
            }
        }
        if let Err(error) = consumer.unassign() {
            tracing::warn!(source = %self.name, %error, "unassigning partitions failed");
        }
        if let Ok(mut assigned) = self.assigned.lock() {
            assigned.clear();
        }
    }
}

impl ClientContext for SourceClientContext {
    fn stats(&self, statistics: Statistics) {
        let assigned = self.0.assigned_now();
        for (topic, stats) in &statistics.topics {
            for (partition, p) in &stats.partitions {
                if *partition < 0 || !assigned.contains(&TopicPartition::new(topic, *partition)) {
                    continue;
                }
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

    fn error(&self, error: KafkaError, reason: &str) {
        ClientError {
            source: &self.0.name,
            error: &format!("{error}: {reason}"),
        }
        .emit();
    }
}

impl ConsumerContext for SourceClientContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        list: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.0.on_assign(consumer, list)
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                self.0.on_revoke(consumer, list)
            }
            other => {
                tracing::warn!(source = %self.0.name, error = ?other, "rebalance error; releasing partitions");
                self.0.on_revoke(consumer, list);
            }
        }
    }
}

/// The newest event time per partition among the accepted rows (rows
/// without an event time do not move a watermark).
fn partition_event_times(
    raw: &RawMessages,
    decoded: &super::decode::DecodedBatch,
    config: &EventTimeConfig,
) -> anyhow::Result<BTreeMap<TopicPartition, i64>> {
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
