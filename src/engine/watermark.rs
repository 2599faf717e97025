//! Watermarks: how far event time has certainly progressed, per source.
//!
//! Each partition of a source keeps the newest event time it has delivered;
//! the source's watermark is the oldest of those among partitions that are
//! not idle, minus the allowed delay. It never goes back. A row whose event
//! time is already behind the watermark when it arrives is *late*: every
//! window it could belong to may have been emitted, so instead of folding it
//! in (changing a result already written) or dropping it silently (what
//! Arroyo and RisingWave do), the engine routes it to the source's
//! `<source>_late_events` table and counts it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use arrow::array::{Array, BooleanArray, Int64Array};
use arrow::compute::filter_record_batch;
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use crate::common::TopicPartition;
use crate::sources::EventTimeConfig;

/// A partition's progress.
#[derive(Debug, Clone, Copy)]
struct PartitionClock {
    /// `None`: assigned, nothing delivered yet (holds the watermark back).
    newest: Option<i64>,
    /// When it last delivered (or was assigned).
    seen: Instant,
}

/// The watermark of one source.
#[derive(Debug)]
pub struct WatermarkTracker {
    max_delay_ms: i64,
    idle_timeout: Duration,
    partitions: BTreeMap<TopicPartition, PartitionClock>,
    current: Option<i64>,
}

/// The partition a source without partitions (the simulator) reports as.
fn whole_source() -> TopicPartition {
    TopicPartition::new("", 0)
}

/// What the engine keeps of a watermark across restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedWatermark {
    pub millis: i64,
}

impl WatermarkTracker {
    pub fn new(config: &EventTimeConfig) -> Self {
        Self {
            max_delay_ms: config.max_delay_ms(),
            idle_timeout: config.idle_timeout.0,
            partitions: BTreeMap::new(),
            current: None,
        }
    }

    /// Continue from a watermark an earlier run reached, so rows it would
    /// have called late are still late after a restart.
    pub fn resume_from(&mut self, saved: SavedWatermark) {
        self.current = Some(self.current.map_or(saved.millis, |c| c.max(saved.millis)));
    }

    /// The current watermark (epoch ms); `None` until data arrives.
    pub fn current(&self) -> Option<i64> {
        self.current
    }

    /// Rows of `batch` that are behind `watermark` (the source's, or the
    /// partition's the rows come from) or have no event time: returns
    /// `(on_time, late)`.
    pub fn split_late(
        batch: RecordBatch,
        times: &Int64Array,
        watermark: Option<i64>,
    ) -> Result<(RecordBatch, Option<RecordBatch>), ArrowError> {
        let watermark = watermark.unwrap_or(i64::MIN);
        let late_rows =
            times.null_count() + times.values().iter().filter(|&&t| t < watermark).count();
        if late_rows == 0 {
            return Ok((batch, None));
        }
        let on_time: BooleanArray = times
            .iter()
            .map(|t| Some(t.is_some_and(|t| t >= watermark)))
            .collect();
        let late = arrow::compute::not(&on_time)?;
        Ok((
            filter_record_batch(&batch, &on_time)?,
            Some(filter_record_batch(&batch, &late)?),
        ))
    }

    /// The watermark of `partition` alone: its newest event time minus the
    /// delay, so what closes there does not depend on other partitions (or
    /// on which instance owns them); `None` until it delivers. A partition
    /// gone idle follows the source's watermark instead, so its last
    /// windows still close.
    pub fn partition_watermark(&self, partition: &TopicPartition, now: Instant) -> Option<i64> {
        let Some(clock) = self.partitions.get(partition) else {
            return self.current;
        };
        let own = clock.newest.map(|n| n.saturating_sub(self.max_delay_ms));
        let idle = now.duration_since(clock.seen) >= self.idle_timeout;
        match (own, idle) {
            (own, false) => own,
            (own, true) => own.max(self.current),
        }
    }

    /// The newest event time seen in `partition`, for a checkpoint.
    pub fn newest_of(&self, partition: &TopicPartition) -> Option<i64> {
        self.partitions.get(partition).and_then(|c| c.newest)
    }

    /// Continue `partition` from the newest event time its previous owner
    /// saved (a partition taken over from another instance).
    pub fn resume_partition(&mut self, partition: &TopicPartition, newest: i64, now: Instant) {
        let clock = self
            .partitions
            .entry(partition.clone())
            .or_insert(PartitionClock {
                newest: None,
                seen: now,
            });
        clock.newest = Some(clock.newest.map_or(newest, |n| n.max(newest)));
        clock.seen = now;
    }

    /// `partitions` went to another instance: they stop counting here.
    pub fn forget(&mut self, partitions: &[TopicPartition]) {
        self.partitions.retain(|p, _| !partitions.contains(p));
    }

    /// Every partition's own watermark at `now`.
    pub fn partition_watermarks(&self, now: Instant) -> BTreeMap<TopicPartition, i64> {
        self.partitions
            .keys()
            .filter_map(|p| Some((p.clone(), self.partition_watermark(p, now)?)))
            .collect()
    }

    /// The partitions the source reads now: new ones hold the watermark
    /// until they deliver or go idle; ones it no longer reads stop counting.
    /// An empty list (a source without partitions) changes nothing.
    pub fn assign(&mut self, partitions: &[TopicPartition], now: Instant) {
        if partitions.is_empty() {
            return;
        }
        self.partitions.retain(|p, _| partitions.contains(p));
        for partition in partitions {
            self.partitions
                .entry(partition.clone())
                .or_insert(PartitionClock {
                    newest: None,
                    seen: now,
                });
        }
    }

    /// Record what a batch delivered: per partition, its newest event time
    /// (`per_partition` empty: the whole source is one partition and
    /// `times` decides).
    pub fn observe(
        &mut self,
        per_partition: &BTreeMap<TopicPartition, i64>,
        times: &Int64Array,
        now: Instant,
    ) {
        let mut update = |partition: TopicPartition, newest: i64| {
            let clock = self.partitions.entry(partition).or_insert(PartitionClock {
                newest: Some(newest),
                seen: now,
            });
            clock.newest = Some(clock.newest.map_or(newest, |n| n.max(newest)));
            clock.seen = now;
        };
        if per_partition.is_empty() {
            if let Some(newest) = arrow::compute::max(times) {
                update(whole_source(), newest);
            }
        } else {
            for (partition, &newest) in per_partition {
                update(partition.clone(), newest);
            }
        }
        self.advance(now);
    }

    /// Recompute the watermark (also called on a timer, so partitions that
    /// went quiet stop holding it back). Returns the new value if it moved.
    pub fn advance(&mut self, now: Instant) -> Option<i64> {
        let active: Vec<Option<i64>> = self
            .partitions
            .values()
            .filter(|c| now.duration_since(c.seen) < self.idle_timeout)
            .map(|c| c.newest)
            .collect();
        let oldest = if active.is_empty() {
            // Every partition idle: none of them holds the others back.
            self.partitions.values().filter_map(|c| c.newest).max()?
        } else {
            // An active partition that has delivered nothing holds it all.
            active
                .into_iter()
                .collect::<Option<Vec<i64>>>()?
                .into_iter()
                .min()?
        };
        let candidate = oldest.saturating_sub(self.max_delay_ms);
        match self.current {
            Some(current) if current >= candidate => None,
            _ => {
                self.current = Some(candidate);
                self.current
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(delay_ms: u64, idle_ms: u64) -> EventTimeConfig {
        EventTimeConfig {
            column: "ts".into(),
            max_delay: crate::common::HumanDuration(Duration::from_millis(delay_ms)),
            idle_timeout: crate::common::HumanDuration(Duration::from_millis(idle_ms)),
        }
    }

    fn partitions(entries: &[(i32, i64)]) -> BTreeMap<TopicPartition, i64> {
        entries
            .iter()
            .map(|&(p, t)| (TopicPartition::new("vitals", p), t))
            .collect()
    }

    #[test]
    fn watermark_is_the_slowest_partition_minus_the_delay() {
        let mut tracker = WatermarkTracker::new(&config(1_000, 60_000));
        let now = Instant::now();
        let none = Int64Array::from(Vec::<i64>::new());
        tracker.observe(&partitions(&[(0, 10_000), (1, 4_000)]), &none, now);
        assert_eq!(tracker.current(), Some(3_000));
        tracker.observe(&partitions(&[(1, 12_000)]), &none, now);
        assert_eq!(tracker.current(), Some(9_000));
        // It never goes back, even if a slower partition appears.
        tracker.observe(&partitions(&[(2, 1_000)]), &none, now);
        assert_eq!(tracker.current(), Some(9_000));
    }

    #[test]
    fn an_idle_partition_stops_holding_the_watermark_back() {
        let mut tracker = WatermarkTracker::new(&config(0, 100));
        let start = Instant::now();
        let none = Int64Array::from(Vec::<i64>::new());
        tracker.observe(&partitions(&[(0, 50_000), (1, 1_000)]), &none, start);
        assert_eq!(tracker.current(), Some(1_000));
        // Partition 0 keeps delivering; partition 1 goes quiet.
        let later = start + Duration::from_millis(150);
        tracker.observe(&partitions(&[(0, 60_000)]), &none, later);
        assert_eq!(tracker.current(), Some(60_000));
    }

    #[test]
    fn an_assigned_partition_holds_the_watermark_until_it_delivers() {
        let mut tracker = WatermarkTracker::new(&config(0, 60_000));
        let now = Instant::now();
        let none = Int64Array::from(Vec::<i64>::new());
        let all: Vec<TopicPartition> = (0..2).map(|p| TopicPartition::new("vitals", p)).collect();
        tracker.assign(&all, now);
        tracker.observe(&partitions(&[(0, 50_000)]), &none, now);
        assert_eq!(tracker.current(), None, "partition 1 has not delivered yet");
        tracker.observe(&partitions(&[(1, 2_000)]), &none, now);
        assert_eq!(tracker.current(), Some(2_000));
        // Partition 1 moved to another instance: it no longer counts.
        tracker.assign(&all[..1], now);
        tracker.advance(now);
        assert_eq!(tracker.current(), Some(50_000));
    }

    #[test]
    fn a_source_without_partitions_uses_the_batch_maximum() {
        let mut tracker = WatermarkTracker::new(&config(500, 60_000));
        let times = Int64Array::from(vec![Some(1_000), None, Some(3_000), Some(2_000)]);
        tracker.observe(&BTreeMap::new(), &times, Instant::now());
        assert_eq!(tracker.current(), Some(2_500));
    }

    #[test]
    fn rows_behind_the_watermark_and_rows_without_time_are_late() {
        let mut tracker = WatermarkTracker::new(&config(0, 60_000));
        tracker.resume_from(SavedWatermark { millis: 2_000 });
        let times = Int64Array::from(vec![Some(1_000), Some(2_000), None, Some(5_000)]);
        let batch = RecordBatch::try_from_iter([(
            "ts",
            std::sync::Arc::new(times.clone()) as arrow::array::ArrayRef,
        )])
        .unwrap();
        let (on_time, late) =
            WatermarkTracker::split_late(batch, &times, tracker.current()).unwrap();
        assert_eq!(on_time.num_rows(), 2);
        assert_eq!(late.unwrap().num_rows(), 2);
    }

    /// A partition closes its windows on its own event time, whatever the
    /// other partitions do; once idle it follows the source.
    #[test]
    fn a_partition_watermark_is_its_own_until_it_goes_idle() {
        let mut tracker = WatermarkTracker::new(&config(1_000, 100));
        let start = Instant::now();
        let none = Int64Array::from(Vec::<i64>::new());
        tracker.observe(&partitions(&[(0, 50_000), (1, 10_000)]), &none, start);
        let p0 = TopicPartition::new("vitals", 0);
        let p1 = TopicPartition::new("vitals", 1);
        assert_eq!(tracker.current(), Some(9_000));
        assert_eq!(tracker.partition_watermark(&p0, start), Some(49_000));
        assert_eq!(tracker.partition_watermark(&p1, start), Some(9_000));

        // Partition 1 goes quiet: the source watermark moves on without it,
        // and partition 1's last windows close with the source's.
        let later = start + Duration::from_millis(150);
        tracker.observe(&partitions(&[(0, 80_000)]), &none, later);
        assert_eq!(tracker.current(), Some(79_000));
        assert_eq!(tracker.partition_watermark(&p1, later), Some(79_000));

        // Taken over elsewhere: a new tracker resumes the partition's clock.
        let mut other = WatermarkTracker::new(&config(1_000, 100));
        other.resume_partition(&p1, tracker.newest_of(&p1).unwrap(), later);
        assert_eq!(other.partition_watermark(&p1, later), Some(9_000));
        other.forget(std::slice::from_ref(&p1));
        assert_eq!(other.partition_watermark(&p1, later), None);
    }
}
