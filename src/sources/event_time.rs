//! `event_time:` on a source: which column holds the time a reading was
//! taken, and how far out of order readings may arrive.
//!
//! Declaring it turns on event-time processing for everything downstream of
//! the source: the engine tracks a watermark per partition, windows close
//! when the watermark passes their end, and rows that arrive behind the
//! watermark go to the `<source>_late_events` table instead of vanishing.

use std::time::Duration;

use serde::Deserialize;

use crate::common::HumanDuration;

/// `event_time: { column: ts, max_delay: 5s, idle_timeout: 30s }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventTimeConfig {
    /// A timestamp column of the source's table.
    pub column: String,
    /// How far behind the newest reading of a partition another reading may
    /// arrive and still count (the bounded out-of-orderness of the
    /// watermark).
    #[serde(default = "default_max_delay")]
    pub max_delay: HumanDuration,
    /// A partition that sends nothing for this long stops holding the
    /// watermark back (a quiet Kafka partition must not stall every window).
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: HumanDuration,
}

fn default_max_delay() -> HumanDuration {
    HumanDuration(Duration::from_secs(5))
}

fn default_idle_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}

impl EventTimeConfig {
    pub fn validate(&self) -> Result<(), super::ConfigError> {
        if self.column.trim().is_empty() {
            return Err(super::ConfigError::Invalid(
                "`event_time.column` must name a timestamp column".into(),
            ));
        }
        if self.idle_timeout.0.is_zero() {
            return Err(super::ConfigError::Invalid(
                "`event_time.idle_timeout` must be greater than zero".into(),
            ));
        }
        Ok(())
    }

    pub fn max_delay_ms(&self) -> i64 {
        i64::try_from(self.max_delay.0.as_millis()).unwrap_or(i64::MAX)
    }
}

/// The name of a source's late-data table.
pub fn late_events_table(source: &str) -> String {
    format!("{source}_late_events")
}
