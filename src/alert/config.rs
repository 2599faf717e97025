//! `alert:` transforms: escalation alerts with hysteresis, configured in
//! the pipeline YAML.

use serde::Deserialize;

use crate::common::HumanDuration;

/// ```yaml
/// alerts:
///   alert:
///     input: scored          # one row per reading
///     key: patient_id        # alert state is kept per key
///     time: ts               # event time of each row
///     score: news2           # reported with every alert
///     levels:                # lowest first; a row is at its highest matching level
///       - { name: single_parameter, when: "news2_max_param = 3", reason: "..." }
///       - { name: medium, when: "news2 >= 5", reason: "..." }
///       - { name: high, when: "news2 >= 7", reason: "..." }
///     rearm_after: 10m       # below a level this long before it can alert again
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertConfig {
    pub input: String,
    pub key: String,
    pub time: String,
    pub score: String,
    pub levels: Vec<AlertLevel>,
    #[serde(default = "default_rearm_after")]
    pub rearm_after: HumanDuration,
}

/// One escalation level: a SQL boolean expression over the input's columns.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertLevel {
    pub name: String,
    pub when: String,
    pub reason: String,
}

fn default_rearm_after() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(600))
}

/// An `alert:` transform whose levels cannot work. The spec layer adds the
/// YAML key and line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("`levels` must name at least one level")]
    NoLevels,
    /// A level name that is empty or repeated.
    #[error("level names must be unique and not empty (`{name}`)")]
    LevelName { name: String },
    #[error("level `{level}`: `when` must be a SQL condition")]
    NoCondition { level: String },
}

impl AlertConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.levels.is_empty() {
            return Err(ConfigError::NoLevels);
        }
        let mut seen = std::collections::HashSet::new();
        for level in &self.levels {
            if level.name.trim().is_empty() || !seen.insert(level.name.as_str()) {
                return Err(ConfigError::LevelName {
                    name: level.name.clone(),
                });
            }
            if level.when.trim().is_empty() {
                return Err(ConfigError::NoCondition {
                    level: level.name.clone(),
                });
            }
        }
        Ok(())
    }

    pub fn rearm_after_ms(&self) -> i64 {
        i64::try_from(self.rearm_after.0.as_millis()).unwrap_or(i64::MAX)
    }
}
