//! YAML settings of the live sink.

use arrow::datatypes::{DataType, SchemaRef};
use serde::Deserialize;

use super::hub::hub;
use super::sink::LiveSink;
use crate::spec::HumanDuration;
use crate::spec::raw::Spanned;

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
    pub fn validate(&self) -> Result<(), String> {
        if self.recent == 0 || self.recent > 10_000 {
            return Err("`recent` must be between 1 and 10000".into());
        }
        if self.forget_after.0.is_zero() {
            return Err("`forget_after` must be longer than 0s".into());
        }
        Ok(())
    }

    pub fn check_schema(&self, schema: &SchemaRef) -> Result<(), String> {
        let key = schema
            .field_with_name(&self.key)
            .map_err(|_| format!("`key` column `{}` is not in the input table", self.key))?;
        if !matches!(
            key.data_type(),
            DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8
        ) {
            return Err(format!(
                "`key` column `{}` must be a string, not {}",
                self.key,
                key.data_type()
            ));
        }
        let time = schema
            .field_with_name(&self.time)
            .map_err(|_| format!("`time` column `{}` is not in the input table", self.time))?;
        if !matches!(time.data_type(), DataType::Timestamp(..)) {
            return Err(format!(
                "`time` column `{}` must be a timestamp, not {}",
                self.time,
                time.data_type()
            ));
        }
        Ok(())
    }

    pub fn build(&self, name: &str, schema: SchemaRef) -> anyhow::Result<LiveSink> {
        self.check_schema(&schema).map_err(anyhow::Error::msg)?;
        Ok(LiveSink::new(
            hub(name, self.recent, self.forget_after.0),
            self.clone(),
            schema,
        ))
    }
}
