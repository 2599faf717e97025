//! [`PartitionBoard`]: the source partitions this instance owns right now
//! and what is known of each (offset, lag, watermark, state, last
//! checkpoint), shared by the engine and the sources that write it and the
//! server that shows it on `/health`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::offsets::TopicPartition;

/// One owned partition, as reported so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionStatus {
    /// The next offset to read (as of the last batch or assignment).
    pub next_offset: Option<i64>,
    /// Messages behind the partition's end, from the client's statistics.
    pub lag: Option<i64>,
    /// The partition's own watermark (epoch ms).
    pub watermark_ms: Option<i64>,
    /// State rows (window groups, alert keys) at the last checkpoint.
    pub state_rows: usize,
    /// When a checkpoint last saved the partition.
    pub last_checkpoint: Option<chrono::DateTime<chrono::Utc>>,
}

/// Cheap to clone; every clone is the same board.
#[derive(Debug, Clone, Default)]
pub struct PartitionBoard(Arc<Mutex<BTreeMap<(String, TopicPartition), PartitionStatus>>>);

impl PartitionBoard {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<(String, TopicPartition), PartitionStatus>> {
        // Plain data: a panic elsewhere leaves it consistent.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `partition` of `source` is now this instance's.
    pub fn assigned(&self, source: &str, partition: &TopicPartition, next_offset: Option<i64>) {
        self.lock().insert(
            (source.to_string(), partition.clone()),
            PartitionStatus {
                next_offset,
                ..Default::default()
            },
        );
    }

    /// `partitions` of `source` went to another instance.
    pub fn revoked(&self, source: &str, partitions: &[TopicPartition]) {
        let mut board = self.lock();
        for partition in partitions {
            board.remove(&(source.to_string(), partition.clone()));
        }
    }

    /// Change what is known of an owned partition (nothing if not owned).
    pub fn update(
        &self,
        source: &str,
        partition: &TopicPartition,
        change: impl FnOnce(&mut PartitionStatus),
    ) {
        if let Some(status) = self
            .lock()
            .get_mut(&(source.to_string(), partition.clone()))
        {
            change(status);
        }
    }

    /// Every owned partition, by source and partition.
    pub fn all(&self) -> Vec<(String, TopicPartition, PartitionStatus)> {
        self.lock()
            .iter()
            .map(|((source, partition), status)| {
                (source.clone(), partition.clone(), status.clone())
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_owned_partitions_are_shown_and_updated() {
        let board = PartitionBoard::default();
        let p = |n| TopicPartition::new("vitals", n);
        board.assigned("monitors", &p(0), Some(10));
        board.assigned("monitors", &p(1), None);
        board.update("monitors", &p(1), |s| s.lag = Some(5));
        board.update("monitors", &p(2), |s| s.lag = Some(9));
        board.revoked("monitors", &[p(0)]);
        let all = board.clone().all();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].1, p(1));
        assert_eq!(all[0].2.lag, Some(5));
    }
}
