//! Kafka positions shared by sources (which read and commit them) and the
//! engine (which records them in checkpoints): partitions, next offsets, and
//! the seam through which a source asks what the engine made durable.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::BoxError;

/// A partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: &str, partition: i32) -> Self {
        Self {
            topic: topic.to_string(),
            partition,
        }
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}[{}]", self.topic, self.partition)
    }
}

/// The next offset to read, per partition.
pub type Offsets = BTreeMap<TopicPartition, i64>;

/// The offsets up to which a source's records are durable (published and
/// recorded by a checkpoint), read by the source when partitions are
/// assigned so it resumes exactly there. The engine's checkpoint store
/// implements it; the source sees only this trait, so `sources` does not
/// depend on `engine`. Implementations must be cheap to call from a Kafka
/// rebalance callback while the engine keeps writing.
pub trait DurableOffsetsReader: Send + Sync + std::fmt::Debug {
    /// Next offset per partition of `source`, the highest recorded by any
    /// checkpoint of any writer (offsets only grow).
    fn durable_offsets(&self, source: &str) -> Result<Offsets, BoxError>;
}
