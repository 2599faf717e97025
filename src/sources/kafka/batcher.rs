//! [`Batcher`]: when the messages buffered by the consumer become a batch,
//! and how long the consumer may wait in `poll` before it has to look again.
//!
//! A pure decision, apart from the consumer thread that moves the data: no
//! broker, no clock (the caller passes `now`), no I/O, so every limit is
//! unit-tested below. It owns the three limits of the `batch:` policy
//! ([`BatchPolicy`]); it does not own the buffered messages themselves
//! (`RawMessages`) nor what happens to a due batch (decode and hand over,
//! in `consumer.rs`).

use std::time::{Duration, Instant};

use super::config::BatchPolicy;

/// The longest single `poll`: how often the consumer thread looks at
/// shutdown, failures from callbacks and newly durable offsets even when
/// nothing arrives.
pub const MAX_POLL_WAIT: Duration = Duration::from_millis(100);

/// What is buffered right now, as the batching decision sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Buffered {
    /// Messages buffered.
    pub rows: usize,
    /// Payload bytes buffered.
    pub bytes: usize,
    /// When the first of them arrived (`None` when nothing is buffered).
    pub since: Option<Instant>,
}

impl Buffered {
    /// Age of the oldest buffered message at `now` (zero when empty).
    fn age(&self, now: Instant) -> Duration {
        self.since
            .map(|since| now.saturating_duration_since(since))
            .unwrap_or_default()
    }
}

/// A batch closes at `max_rows` messages, `max_bytes` of payload, or
/// `max_wait` after its first message, whichever comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batcher {
    max_rows: usize,
    max_bytes: usize,
    max_wait: Duration,
}

impl Batcher {
    pub fn new(policy: &BatchPolicy) -> Self {
        Self {
            max_rows: policy.max_rows,
            max_bytes: policy.max_bytes.0 as usize,
            max_wait: policy.max_wait.0,
        }
    }

    /// Whether `buffered` must be flushed as a batch at `now`: it is full
    /// (rows or bytes), or its oldest message has waited `max_wait`.
    /// Nothing buffered is never due.
    pub fn is_due(&self, buffered: Buffered, now: Instant) -> bool {
        let full = buffered.rows >= self.max_rows || buffered.bytes >= self.max_bytes;
        full || (buffered.rows > 0 && buffered.age(now) >= self.max_wait)
    }

    /// How long the next `poll` may block: [`MAX_POLL_WAIT`] when nothing
    /// is buffered, else no longer than until the oldest message is due
    /// (so a batch closes on time even when no more messages arrive).
    pub fn poll_timeout(&self, buffered: Buffered, now: Instant) -> Duration {
        if buffered.rows == 0 {
            MAX_POLL_WAIT
        } else {
            self.max_wait
                .saturating_sub(buffered.age(now))
                .min(MAX_POLL_WAIT)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn batcher() -> Batcher {
        Batcher {
            max_rows: 3,
            max_bytes: 100,
            max_wait: 200 * MS,
        }
    }

    fn buffered(rows: usize, bytes: usize, since: Option<Instant>) -> Buffered {
        Buffered { rows, bytes, since }
    }

    #[test]
    fn nothing_buffered_is_never_due_and_polls_the_longest() {
        let now = Instant::now();
        let b = batcher();
        assert!(!b.is_due(Buffered::default(), now));
        assert!(!b.is_due(Buffered::default(), now + Duration::from_secs(3600)));
        assert_eq!(b.poll_timeout(Buffered::default(), now), MAX_POLL_WAIT);
    }

    #[test]
    fn full_by_rows() {
        let now = Instant::now();
        let b = batcher();
        assert!(!b.is_due(buffered(2, 10, Some(now)), now));
        assert!(b.is_due(buffered(3, 10, Some(now)), now));
        assert!(b.is_due(buffered(4, 10, Some(now)), now));
    }

    #[test]
    fn full_by_bytes_even_with_few_rows() {
        let now = Instant::now();
        let b = batcher();
        assert!(!b.is_due(buffered(1, 99, Some(now)), now));
        assert!(b.is_due(buffered(1, 100, Some(now)), now));
        // One huge message is a batch of its own.
        assert!(b.is_due(buffered(1, 10_000, Some(now)), now));
    }

    #[test]
    fn due_when_the_oldest_message_has_waited_max_wait() {
        let first = Instant::now();
        let b = batcher();
        let one = buffered(1, 10, Some(first));
        assert!(!b.is_due(one, first + 199 * MS));
        assert!(b.is_due(one, first + 200 * MS));
        assert!(b.is_due(one, first + 5000 * MS));
    }

    #[test]
    fn poll_waits_no_longer_than_until_the_batch_is_due() {
        let first = Instant::now();
        let b = batcher();
        let one = buffered(1, 10, Some(first));
        // Far from due: the usual poll wait.
        assert_eq!(b.poll_timeout(one, first), MAX_POLL_WAIT);
        assert_eq!(b.poll_timeout(one, first + 100 * MS), MAX_POLL_WAIT);
        // Close to due: only the rest.
        assert_eq!(b.poll_timeout(one, first + 150 * MS), 50 * MS);
        // Overdue: do not block at all.
        assert_eq!(b.poll_timeout(one, first + 200 * MS), Duration::ZERO);
        assert_eq!(b.poll_timeout(one, first + 900 * MS), Duration::ZERO);
    }

    #[test]
    fn a_clock_behind_the_first_message_counts_as_no_wait() {
        // `now` earlier than `since` (a caller's stale reading) must not
        // panic nor make the batch due.
        let first = Instant::now() + Duration::from_secs(1);
        let b = batcher();
        assert!(!b.is_due(buffered(1, 10, Some(first)), Instant::now()));
    }

    #[test]
    fn built_from_the_policy() {
        let policy = BatchPolicy::default();
        let b = Batcher::new(&policy);
        assert_eq!(b.max_rows, policy.max_rows);
        assert_eq!(b.max_bytes, policy.max_bytes.0 as usize);
        assert_eq!(b.max_wait, policy.max_wait.0);
    }
}
