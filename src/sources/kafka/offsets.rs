//! The offset protocol that makes the Kafka source exactly-once with the
//! engine's checkpoints.
//!
//! Offsets are never auto-committed. A partition is assigned at the offset
//! the newest checkpoint of any instance recorded for it (Kafka's committed
//! offset is only the fallback, e.g. for a fresh checkpoint directory), and
//! before a partition is given up in a rebalance the pending messages are
//! flushed and a checkpoint publishes everything read from it. Offsets are
//! committed to the group only once a checkpoint made them durable, and a
//! failed commit is only logged: the checkpoint already holds them. So after
//! a crash, a restart or a rebalance, each record lands in the dataset once.
//!
//! librdkafka calls the rebalance callback from inside `poll`, on the
//! consumer thread; the callback may block on the engine's checkpoint
//! because the engine never waits on that thread. This module owns those
//! callbacks, the checkpoint request and the commits; the poll loop and the
//! batches are in `consumer.rs`.

use std::sync::atomic::Ordering;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaResult;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;

use super::consumer::{Shared, SourceClientContext};
use super::events::{PartitionsAssigned, PartitionsRevoked, SessionExpired};
use crate::sources::{
    AssignmentLost, CheckpointReply, Offsets, SourceError, SourceEvent, TopicPartition,
};

impl Shared {
    /// Ask the engine for a checkpoint and wait for it; the durable offsets
    /// of this source, or `None` if the engine is gone.
    pub(super) fn checkpoint(&self) -> Result<Option<Offsets>, SourceError> {
        let (reply, answer) = CheckpointReply::channel();
        if self
            .output
            .blocking_send(SourceEvent::Checkpoint(reply))
            .is_err()
        {
            return Ok(None);
        }
        match answer.blocking_recv() {
            Ok(Ok(offsets)) => Ok(Some(offsets)),
            Ok(Err(source)) => Err(SourceError::Checkpoint {
                context: "checkpoint failed",
                source,
            }),
            Err(_) => Ok(None),
        }
    }

    /// Commit `offsets` (those passing `keep`) to the group. Failures are
    /// logged, not fatal: the checkpoint already holds the offsets.
    pub(super) fn commit(
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

    /// Partitions assigned: each resumes where the newest checkpoint left it.
    fn on_assign(
        &self,
        consumer: &BaseConsumer<SourceClientContext>,
        list: &mut TopicPartitionList,
    ) {
        let durable = self.durable.as_ref().map(|d| d.durable_offsets(&self.name));
        let durable = match durable.transpose() {
            Ok(durable) => durable.unwrap_or_default(),
            Err(error) => {
                // Resuming from Kafka's offsets could duplicate rows: stop.
                self.fail(SourceError::Checkpoint {
                    context: "reading checkpoints to resume the assigned partitions",
                    source: error,
                });
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
                self.fail(SourceError::Consumer {
                    context: format!("resuming {tp} at {offset}"),
                    source: error,
                });
                return;
            }
            described.push((tp, resume));
        }
        if let Err(error) = consumer.assign(list) {
            self.fail(SourceError::Consumer {
                context: "assigning partitions".into(),
                source: error,
            });
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
        // The engine starts their state (restored from the checkpoint the
        // offsets came from) before any of their batches. Whatever is still
        // held was read before (revocations flush it).
        if let Err(error) = self.flush() {
            self.fail(error.context("handing over a held batch before an assignment"));
            return;
        }
        let _ = self.output.blocking_send(SourceEvent::Assigned(described));
    }

    /// The group session expired (librdkafka's `SESSTMOUT`, or the
    /// statistics' judgement in `session.rs`): this member's assignment is
    /// gone. Fails the source once, unless it is already closing, so the
    /// run restarts from its checkpoint. Even when librdkafka revoked the
    /// partitions first without flagging them lost (seen in CI: the revoke
    /// arrived as an ordinary one and was flushed and checkpointed), the
    /// membership is gone, and a restart from the checkpoint is the safe
    /// way back (the callers only report a real expiry; a restart while
    /// the brokers are down waits for them).
    pub(super) fn session_lost(&self, reason: &str) {
        if self.closing.swap(true, Ordering::SeqCst) {
            return;
        }
        SessionExpired {
            source: &self.name,
            reason,
        }
        .emit();
        let assigned = self.assigned_now();
        let partitions = if assigned.is_empty() {
            "(already released)".to_string()
        } else {
            assigned
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" ")
        };
        self.fail(SourceError::AssignmentLost(AssignmentLost {
            source_name: self.name.clone(),
            partitions,
        }));
    }

    /// Partitions revoked: publish what was read from them (flush, then a
    /// checkpoint, then a commit) before they are released, unless the
    /// assignment was lost, which fails the source instead.
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
            self.fail(SourceError::AssignmentLost(AssignmentLost {
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
                Ok(Some(offsets)) => {
                    self.commit(consumer, &offsets, CommitMode::Sync, |tp| {
                        revoked.contains(tp)
                    });
                    // Their state is in the checkpoint: the engine drops it.
                    let _ = self
                        .output
                        .blocking_send(SourceEvent::Revoked(revoked.clone()));
                }
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
