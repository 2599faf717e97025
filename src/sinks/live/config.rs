//! YAML settings of the live sink.

use arrow::datatypes::{DataType, SchemaRef};
use serde::Deserialize;

use super::sink::LiveSink;
use crate::common::HumanDuration;
use crate::common::Spanned;
use crate::sinks::{ConfigError, SinkContext, SinkError};

/// `kind: live`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveSinkConfig {
    /// The table to show.
    pub input: Spanned<String>,
    /// Column that identifies a patient.
    #[serde(default = "default_key")]
    pub key: String,
    /// Event-time column (timestamp), used for freshness and latency.
    #[serde(default = "default_time")]
    pub time: String,
    /// Readings kept per patient for the "most recent" table.
    #[serde(default = "default_recent")]
    pub recent: usize,
    /// A patient not seen for this long leaves the live view (and its
    /// memory is freed).
    #[serde(default = "default_forget_after")]
    pub forget_after: HumanDuration,
    /// When the live view raises an alert (defaults: NEWS2 risk levels).
    #[serde(default)]
    pub alerts: LiveAlertsConfig,
}

/// `alerts:` of a live sink: a column of named levels, lowest first; a row
/// whose level is above the patient's armed level raises an alert, with the
/// same hysteresis as the `alert:` transform ([`crate::alert::AlertStates`]).
///
/// ```yaml
/// alerts:
///   column: risk_level       # the level of each row (a string)
///   score: news2_score       # reported with every alert
///   levels:                  # lowest first; other values rank below all
///     - { value: low-medium, reason: "a single parameter scores 3: urgent ward-based review" }
///     - { value: medium, reason: "NEWS2 {score}: urgent response" }
///     - { value: high, reason: "NEWS2 {score}: emergency response" }
///   rearm_after: 10m         # below a level this long before it can alert again
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveAlertsConfig {
    #[serde(default = "default_level_column")]
    pub column: String,
    #[serde(default = "default_score_column")]
    pub score: String,
    #[serde(default = "default_levels")]
    pub levels: Vec<LiveAlertLevel>,
    #[serde(default = "default_rearm_after")]
    pub rearm_after: HumanDuration,
}

/// One level of [`LiveAlertsConfig`]; `{score}` in `reason` is replaced by
/// the row's score.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveAlertLevel {
    pub value: String,
    pub reason: String,
}

impl Default for LiveAlertsConfig {
    fn default() -> Self {
        Self {
            column: default_level_column(),
            score: default_score_column(),
            levels: default_levels(),
            rearm_after: default_rearm_after(),
        }
    }
}

impl LiveAlertsConfig {
    /// The rank of a level value: 1 for the first level, 0 for none.
    pub fn rank(&self, value: &str) -> usize {
        self.levels
            .iter()
            .position(|l| l.value == value)
            .map_or(0, |i| i + 1)
    }

    pub fn rearm_after_ms(&self) -> i64 {
        i64::try_from(self.rearm_after.0.as_millis()).unwrap_or(i64::MAX)
    }
}

fn default_level_column() -> String {
    "risk_level".into()
}
fn default_score_column() -> String {
    "news2_score".into()
}
fn default_levels() -> Vec<LiveAlertLevel> {
    [
        (
            "low-medium",
            "a single parameter scores 3: urgent ward-based review",
        ),
        ("medium", "NEWS2 {score}: urgent response"),
        ("high", "NEWS2 {score}: emergency response"),
    ]
    .into_iter()
    .map(|(value, reason)| LiveAlertLevel {
        value: value.into(),
        reason: reason.into(),
    })
    .collect()
}
fn default_rearm_after() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(600))
}

fn default_key() -> String {
    "patient_id".into()
}
fn default_time() -> String {
    "ts".into()
}
fn default_recent() -> usize {
    20
}
fn default_forget_after() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(15 * 60))
}

impl LiveSinkConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.recent == 0 || self.recent > 10_000 {
            return Err(ConfigError::Invalid(
                "`recent` must be between 1 and 10000".into(),
            ));
        }
        if self.forget_after.0.is_zero() {
            return Err(ConfigError::Invalid(
                "`forget_after` must be longer than 0s".into(),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for level in &self.alerts.levels {
            if level.value.is_empty() || !seen.insert(level.value.as_str()) {
                return Err(ConfigError::Invalid(format!(
                    "`alerts.levels`: values must be unique and not empty (`{}`)",
                    level.value
                )));
            }
        }
        Ok(())
    }

    pub fn check_schema(&self, schema: &SchemaRef) -> Result<(), ConfigError> {
        let key = schema.field_with_name(&self.key).map_err(|_| {
            ConfigError::Schema(format!(
                "`key` column `{}` is not in the input table",
                self.key
            ))
        })?;
        if !matches!(
            key.data_type(),
            DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8
        ) {
            return Err(ConfigError::Schema(format!(
                "`key` column `{}` must be a string, not {}",
                self.key,
                key.data_type()
            )));
        }
        let time = schema.field_with_name(&self.time).map_err(|_| {
            ConfigError::Schema(format!(
                "`time` column `{}` is not in the input table",
                self.time
            ))
        })?;
        if !matches!(time.data_type(), DataType::Timestamp(..)) {
            return Err(ConfigError::Schema(format!(
                "`time` column `{}` must be a timestamp, not {}",
                self.time,
                time.data_type()
            )));
        }
        Ok(())
    }

    pub fn build(
        &self,
        name: &str,
        schema: SchemaRef,
        ctx: &SinkContext,
    ) -> Result<LiveSink, SinkError> {
        self.check_schema(&schema)?;
        Ok(LiveSink::new(
            ctx.live.hub(name, self),
            self.clone(),
            schema,
        ))
    }
}
