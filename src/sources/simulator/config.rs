//! YAML settings of the simulator source.

use serde::Deserialize;

use super::source::SimulatorSource;
use crate::common::HumanDuration;
use crate::sources::ConfigError;

/// `kind: simulator`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatorConfig {
    /// Number of simulated patients (ids `P00001`..).
    #[serde(default = "default_patients")]
    pub patients: u32,
    /// Time between two readings of one patient.
    #[serde(default = "default_interval")]
    pub interval: HumanDuration,
    /// Seed of the random generator; same seed, same readings.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// `realtime` (readings arrive as the clock passes their time) or
    /// `unpaced` (as fast as the pipeline takes them, for benchmarks).
    #[serde(default)]
    pub pacing: Pacing,
    /// Stop after this many readings (unbounded if absent).
    #[serde(default)]
    pub limit: Option<u64>,
    /// Rows per batch in unpaced mode (realtime emits one batch per tick).
    #[serde(default = "default_batch_rows")]
    pub batch_rows: usize,
    /// Expected deterioration episodes per patient per hour.
    #[serde(default = "default_episodes_per_hour")]
    pub episodes_per_hour: f64,
    /// Event time of the first reading, RFC 3339; default: now.
    #[serde(default)]
    pub start: Option<String>,
    /// Event-time processing (watermarks, windows, late data).
    #[serde(default)]
    pub event_time: Option<crate::sources::EventTimeConfig>,
    /// `fhir` or `hl7v2`: each reading is written as a FHIR Bundle or an
    /// ORU^R01 and read back through the Kafka source's decoder before it
    /// enters the pipeline, as if it had crossed a broker; `json` (default):
    /// the rows as generated.
    #[serde(default)]
    pub format: crate::interop::Format,
}

/// How readings are paced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pacing {
    #[default]
    Realtime,
    Unpaced,
}

fn default_patients() -> u32 {
    50
}
fn default_interval() -> HumanDuration {
    HumanDuration(std::time::Duration::from_millis(500))
}
fn default_seed() -> u64 {
    42
}
fn default_batch_rows() -> usize {
    16_384
}
fn default_episodes_per_hour() -> f64 {
    0.5
}

impl SimulatorConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.patients == 0 || self.patients > 10_000_000 {
            return Err(ConfigError::Invalid(format!(
                "`patients` must be between 1 and 10000000, got {}",
                self.patients
            )));
        }
        if self.interval.0.is_zero() {
            return Err(ConfigError::Invalid(
                "`interval` must be greater than zero".into(),
            ));
        }
        if self.batch_rows == 0 {
            return Err(ConfigError::Invalid(
                "`batch_rows` must be greater than zero".into(),
            ));
        }
        if !(0.0..=3600.0).contains(&self.episodes_per_hour) {
            return Err(ConfigError::Invalid(format!(
                "`episodes_per_hour` must be between 0 and 3600, got {}",
                self.episodes_per_hour
            )));
        }
        self.start_millis()?;
        Ok(())
    }

    /// The configured start as epoch milliseconds, or now.
    pub fn start_millis(&self) -> Result<i64, ConfigError> {
        match &self.start {
            None => Ok(chrono::Utc::now().timestamp_millis()),
            Some(s) => chrono::DateTime::parse_from_rfc3339(s)
                .map(|t| t.timestamp_millis())
                .map_err(|error| ConfigError::Start {
                    value: s.clone(),
                    error,
                }),
        }
    }

    pub fn build(&self) -> SimulatorSource {
        SimulatorSource::new(self.clone())
    }
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        Self {
            patients: default_patients(),
            interval: default_interval(),
            seed: default_seed(),
            pacing: Pacing::default(),
            limit: None,
            batch_rows: default_batch_rows(),
            episodes_per_hour: default_episodes_per_hour(),
            start: None,
            event_time: None,
            format: crate::interop::Format::Json,
        }
    }
}
