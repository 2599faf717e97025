//! Retry delays, from `backon`: exponential backoff for the loops that wait
//! for another system (brokers, topic creation, uploads to a store).

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// Delays starting at `first`, doubling, capped at `max`, never ending: for
/// retries that go on until the other side is back or the run is told to
/// stop. Start a new one to reset after a success.
pub fn exponential(first: Duration, max: Duration) -> impl Iterator<Item = Duration> + Send {
    ExponentialBuilder::new()
        .with_min_delay(first)
        .with_max_delay(max)
        .with_factor(2.0)
        .without_max_times()
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_never_ends() {
        let ms: Vec<u128> = exponential(Duration::from_millis(250), Duration::from_secs(5))
            .take(8)
            .map(|d| d.as_millis())
            .collect();
        assert_eq!(ms, [250, 500, 1000, 2000, 4000, 5000, 5000, 5000]);
    }
}
