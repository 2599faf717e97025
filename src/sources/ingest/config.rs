//! YAML settings of the FHIR ingest source.

use std::collections::BTreeMap;

use arrow::datatypes::SchemaRef;
use serde::Deserialize;

use super::source::IngestSource;
use crate::interop::hl7v2::Hl7Options;
use crate::interop::{CodeSet, Format, Param, SettingsError, VitalCodes};
use crate::sources::ConfigError;
use crate::sources::kafka::{FieldSpec, RecordSchema, translator_for};

/// `kind: fhir_ingest`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestSourceConfig {
    /// The reading's fields (as the Kafka source's `format: fhir`).
    pub schema: Vec<FieldSpec>,
    /// Per parameter, `system|code` strings replacing the default codes.
    #[serde(default)]
    pub codes: BTreeMap<Param, Vec<String>>,
    /// Answer codes -> ACVPU letter.
    #[serde(default)]
    pub consciousness_values: BTreeMap<String, String>,
    /// Requests waiting for the source; beyond, the server answers 503
    /// with `Retry-After` (back-pressure).
    #[serde(default = "default_queue")]
    pub queue: usize,
    /// How many stored Observation ids are remembered for idempotency.
    #[serde(default = "default_remember_ids")]
    pub remember_ids: usize,
}

/// 64 requests of at most 1 MiB (the server's body limit for Bundles):
/// what waits is bounded at 64 MiB.
fn default_queue() -> usize {
    64
}

fn default_remember_ids() -> usize {
    1_000_000
}

impl IngestSourceConfig {
    /// The declared schema, codes and limits, checked.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |why: String| ConfigError::Ingest(why);
        RecordSchema::try_new(&self.schema).map_err(|e| invalid(e.to_string()))?;
        translator_for(
            Format::Fhir,
            &self.schema,
            &self.codes,
            &self.consciousness_values,
            &Hl7Options::default(),
        )
        .map_err(|e| invalid(e.to_string()))?;
        if self.queue == 0 || self.queue > 65_536 {
            return Err(invalid(format!(
                "`queue` must be between 1 and 65536, got {}",
                self.queue
            )));
        }
        if self.remember_ids == 0 {
            return Err(invalid("`remember_ids` must be at least 1".into()));
        }
        Ok(())
    }

    pub fn record_schema(&self) -> RecordSchema {
        // Checked by `validate`, which runs before anything else.
        RecordSchema::try_new(&self.schema).unwrap_or_else(|_| RecordSchema::empty())
    }

    pub fn schema(&self) -> SchemaRef {
        self.record_schema().arrow_schema()
    }

    pub fn codes(&self) -> Result<CodeSet, SettingsError> {
        VitalCodes {
            codes: self.codes.clone(),
            consciousness_values: self.consciousness_values.clone(),
        }
        .build()
    }

    pub fn build(&self) -> IngestSource {
        IngestSource::new(self.clone())
    }
}
