//! Which partitions a checkpoint publishes rows of for the first time, and
//! whether another instance got there first.
//!
//! A consumer group gives each partition to one member at a time, but a
//! member that misses a rebalance (a long pause, an overloaded broker) can
//! read on for a while after the partition went to another member, which
//! resumes it from the last durable offset. Both then hold the same rows.
//! Offsets only grow, so the overlap shows in the checkpoints: whoever
//! publishes second finds the partition durable beyond where its own rows
//! start. That writer must not publish ([`overtaken`]); it restarts from
//! the checkpoints instead, and each row stays stored once whichever of
//! the two wins.

use std::collections::BTreeMap;

use crate::common::{Offsets, TopicPartition};

/// Rows a checkpoint is about to publish from one partition, and the
/// durable offset they were read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub source: String,
    pub partition: TopicPartition,
    /// Where the rows start: the offset the partition resumed at when this
    /// instance took it, or where this instance's last checkpoint left it
    /// (`None`: no checkpoint had the partition when this instance took it).
    pub from: Option<i64>,
}

/// The first claim another writer overtook: the checkpoints (`durable`,
/// per source the maximum over every writer) have the partition durable
/// beyond where the claim's rows start, or at all when no checkpoint had
/// it as they started. Publishing that claim would store the overlap
/// twice. The durable offset comes with it.
pub fn overtaken<'c>(
    claims: &'c [Claim],
    durable: &BTreeMap<String, Offsets>,
) -> Option<(&'c Claim, i64)> {
    claims.iter().find_map(|claim| {
        let durable = *durable.get(&claim.source)?.get(&claim.partition)?;
        match claim.from {
            Some(from) if durable <= from => None,
            _ => Some((claim, durable)),
        }
    })
}

/// Per source and partition, the durable offset this instance's rows not
/// yet published start at.
#[derive(Debug, Default)]
pub struct UnpublishedFrom {
    from: BTreeMap<String, BTreeMap<TopicPartition, Option<i64>>>,
}

impl UnpublishedFrom {
    /// `partition` of `source` is now this instance's, resuming at `resume`
    /// (`None`: no checkpoint had it).
    pub fn assigned(&mut self, source: &str, partition: &TopicPartition, resume: Option<i64>) {
        self.from
            .entry(source.to_string())
            .or_default()
            .insert(partition.clone(), resume);
    }

    /// The partitions whose position (`positions`, per source the next
    /// offset to read) moved past where their unpublished rows start.
    pub fn claims(&self, positions: &BTreeMap<String, Offsets>) -> Vec<Claim> {
        let mut claims = Vec::new();
        for (source, offsets) in positions {
            let known = self.from.get(source);
            for (partition, next) in offsets {
                let from = known.and_then(|k| k.get(partition)).copied().flatten();
                if from != Some(*next) {
                    claims.push(Claim {
                        source: source.clone(),
                        partition: partition.clone(),
                        from,
                    });
                }
            }
        }
        claims
    }

    /// A checkpoint recorded `positions`: everything before them is
    /// published.
    pub fn published(&mut self, positions: &BTreeMap<String, Offsets>) {
        for (source, offsets) in positions {
            let from = self.from.entry(source.clone()).or_default();
            for (partition, next) in offsets {
                from.insert(partition.clone(), Some(*next));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(partition: i32) -> TopicPartition {
        TopicPartition::new("vitals", partition)
    }

    fn positions(entries: &[(i32, i64)]) -> BTreeMap<String, Offsets> {
        let offsets = entries.iter().map(|(p, o)| (tp(*p), *o)).collect();
        BTreeMap::from([("kafka".to_string(), offsets)])
    }

    fn claim(partition: i32, from: Option<i64>) -> Claim {
        Claim {
            source: "kafka".into(),
            partition: tp(partition),
            from,
        }
    }

    #[test]
    fn only_partitions_that_moved_since_they_were_published_are_claimed() {
        let mut unpublished = UnpublishedFrom::default();
        unpublished.assigned("kafka", &tp(0), Some(100));
        unpublished.assigned("kafka", &tp(1), None);
        unpublished.assigned("kafka", &tp(2), Some(7));
        let now = positions(&[(0, 150), (1, 20), (2, 7)]);
        assert_eq!(
            unpublished.claims(&now),
            vec![claim(0, Some(100)), claim(1, None)],
            "partition 2 read nothing new"
        );
        unpublished.published(&now);
        assert!(unpublished.claims(&now).is_empty());
        let later = positions(&[(0, 180), (1, 20), (2, 7)]);
        assert_eq!(unpublished.claims(&later), vec![claim(0, Some(150))]);
        // Taken back after another instance had it: its rows start where
        // that instance's checkpoint left it.
        unpublished.assigned("kafka", &tp(2), Some(90));
        let back = positions(&[(0, 150), (1, 20), (2, 95)]);
        assert!(unpublished.claims(&back).contains(&claim(2, Some(90))));
    }

    #[test]
    fn a_claim_is_overtaken_when_another_writer_published_past_its_start() {
        let claims = [claim(0, Some(100)), claim(1, None), claim(2, Some(40))];
        // Durable exactly where our rows start (the hand-over point), or
        // not at all: nobody else published them.
        let ours = positions(&[(0, 100), (2, 12)]);
        assert_eq!(overtaken(&claims, &ours), None);
        // Another owner published partition 0 beyond 100.
        let theirs = positions(&[(0, 130), (2, 12)]);
        assert_eq!(overtaken(&claims, &theirs), Some((&claims[0], 130)));
        // No checkpoint had partition 1 when we took it; now one does.
        let appeared = positions(&[(0, 100), (1, 3)]);
        assert_eq!(overtaken(&claims, &appeared), Some((&claims[1], 3)));
        // Another source's offsets are not ours.
        let other =
            BTreeMap::from([("other".to_string(), positions(&[(0, 500)])["kafka"].clone())]);
        assert_eq!(overtaken(&claims, &other), None);
    }
}
