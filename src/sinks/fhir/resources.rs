//! Rows -> FHIR resources: `news2_score` rows (patient, time, score, level)
//! as NEWS2 `Observation`s; `news2_alert` rows (the `alert:` transform's
//! output) as `Flag`s.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type, SchemaRef, TimeUnit, TimestampMillisecondType};
use serde::Deserialize;
use serde_json::Value;

use crate::interop::fhir_out::{ScoreCoding, alert_flag, news2_observation};
use crate::sinks::{ConfigError, SinkError, SinkResultExt};

/// What each row becomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FhirResource {
    /// An Observation of the NEWS2 total score.
    #[default]
    News2Score,
    /// A Flag on the patient (rows of an `alert:` transform).
    News2Alert,
}

/// The score's code, as the YAML writes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodingConfig {
    pub system: String,
    pub code: String,
    #[serde(default)]
    pub display: String,
}

/// `fhir:` settings: the resource and the columns it is made of.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FhirResourcesConfig {
    #[serde(default)]
    pub resource: FhirResource,
    /// Default `patient_id`.
    #[serde(default)]
    pub patient: Option<String>,
    /// Default `ts` (scores) or `alert_time` (alerts).
    #[serde(default)]
    pub time: Option<String>,
    /// Default `news2_score` (scores) or `news2` (alerts).
    #[serde(default)]
    pub score: Option<String>,
    /// Default `risk_level` (scores, optional) or `level` (alerts).
    #[serde(default)]
    pub level: Option<String>,
    /// The score Observation's code; default SNOMED CT 1104051000000101
    /// (the NEWS2 total score, as the UK Core NEWS2 example codes it).
    #[serde(default)]
    pub score_code: Option<CodingConfig>,
}

/// Column indices, resolved against the input table.
#[derive(Debug, Clone)]
pub struct Encoder {
    resource: FhirResource,
    patient: usize,
    time: usize,
    score: usize,
    level: Option<usize>,
    reason: Option<usize>,
    coding: ScoreCoding,
}

impl FhirResourcesConfig {
    fn columns(&self) -> (String, String, String, Option<String>) {
        let alert = self.resource == FhirResource::News2Alert;
        (
            self.patient.clone().unwrap_or_else(|| "patient_id".into()),
            self.time
                .clone()
                .unwrap_or_else(|| if alert { "alert_time" } else { "ts" }.into()),
            self.score
                .clone()
                .unwrap_or_else(|| if alert { "news2" } else { "news2_score" }.into()),
            self.level
                .clone()
                .or_else(|| Some(if alert { "level" } else { "risk_level" }.into())),
        )
    }

    /// The encoder for rows of `schema`, or which column is missing or of
    /// the wrong type.
    pub fn encoder(&self, schema: &SchemaRef) -> Result<Encoder, ConfigError> {
        let (patient, time, score, level) = self.columns();
        let find = |name: &str, what: &str| {
            schema.index_of(name).map_err(|_| {
                ConfigError::Schema(format!(
                    "fhir: the {what} column `{name}` is not in the input table"
                ))
            })
        };
        let time_index = find(&time, "time")?;
        if !matches!(
            schema.field(time_index).data_type(),
            DataType::Timestamp(..)
        ) {
            return Err(ConfigError::Schema(format!(
                "fhir: the time column `{time}` is {}, not a timestamp",
                schema.field(time_index).data_type()
            )));
        }
        let score_index = find(&score, "score")?;
        if !schema.field(score_index).data_type().is_numeric() {
            return Err(ConfigError::Schema(format!(
                "fhir: the score column `{score}` is {}, not a number",
                schema.field(score_index).data_type()
            )));
        }
        let alert = self.resource == FhirResource::News2Alert;
        let level = match level {
            // A score's level is optional; an alert's is its name.
            Some(name) if alert => Some(find(&name, "level")?),
            Some(name) => schema.index_of(&name).ok(),
            None => None,
        };
        Ok(Encoder {
            resource: self.resource,
            patient: find(&patient, "patient")?,
            time: time_index,
            score: score_index,
            level,
            reason: if alert {
                schema.index_of("reason").ok()
            } else {
                None
            },
            coding: self
                .score_code
                .as_ref()
                .map(|c| ScoreCoding {
                    system: c.system.clone(),
                    code: c.code.clone(),
                    display: c.display.clone(),
                })
                .unwrap_or_default(),
        })
    }
}

impl Encoder {
    /// `(patient, resource)` per row with a patient, a time and a score.
    pub fn encode(&self, batch: &RecordBatch) -> Result<Vec<(String, Value)>, SinkError> {
        let text = |i: usize| -> Result<arrow::array::ArrayRef, SinkError> {
            cast(batch.column(i), &DataType::Utf8).context("reading a text column")
        };
        let patients = text(self.patient)?;
        let patients = patients.as_string::<i32>();
        let times = cast(
            batch.column(self.time),
            &DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
        )
        .context("reading the time column")?;
        let times = times.as_primitive::<TimestampMillisecondType>();
        let scores =
            cast(batch.column(self.score), &DataType::Int64).context("reading the score column")?;
        let scores = scores.as_primitive::<Int64Type>();
        let levels = self.level.map(text).transpose()?;
        let levels = levels.as_ref().map(|l| l.as_string::<i32>());
        let reasons = self.reason.map(text).transpose()?;
        let reasons = reasons.as_ref().map(|r| r.as_string::<i32>());
        let mut out = Vec::with_capacity(batch.num_rows());
        for row in 0..batch.num_rows() {
            if patients.is_null(row) || times.is_null(row) || scores.is_null(row) {
                continue;
            }
            let (patient, ts, score) = (patients.value(row), times.value(row), scores.value(row));
            let level = levels.filter(|l| l.is_valid(row)).map(|l| l.value(row));
            let resource = match self.resource {
                FhirResource::News2Score => {
                    news2_observation(patient, ts, score, level, &self.coding)
                }
                FhirResource::News2Alert => {
                    let mut flag = alert_flag(patient, ts, score, level.unwrap_or("alert"));
                    if let Some(reason) = reasons.filter(|r| r.is_valid(row)).map(|r| r.value(row))
                    {
                        flag["code"]["text"] = Value::from(format!(
                            "NEWS2 {}: {reason} (score {score})",
                            level.unwrap_or("alert")
                        ));
                    }
                    flag
                }
            };
            out.push((patient.to_string(), resource));
        }
        Ok(out)
    }
}
