//! The hospital's formats: HL7 FHIR R4 vital-sign `Observation`s and HL7 v2
//! `ORU^R01` messages, in and out, mapped to and from the pipeline's reading
//! (`patient_id, ts, heart_rate, spo2, systolic_bp, diastolic_bp,
//! respiratory_rate, temperature, consciousness, on_oxygen`).
//!
//! - `reading.rs`: the reading, merged per patient and instant, as the JSON
//!   record the Kafka source's declared schema then checks.
//! - `codes.rs`: which LOINC / IEEE 11073 MDC codes mean which parameter
//!   (defaults, overridable in the YAML).
//! - `units.rs`: UCUM and MDC units to the pipeline's units.
//! - `fhir_in.rs`: an Observation, a Bundle of them, or a vital-signs panel
//!   -> readings and rejections with a precise reason each.
//! - `fhir_out.rs`: readings, NEWS2 scores and alerts as FHIR resources.
//! - `hl7v2.rs`: `ORU^R01` -> readings; readings -> `ORU^R01`.
//! - `error.rs`: why a message or a part of it was rejected.
//!
//! Pure functions over bytes: no I/O, nothing of the pipeline. Imports only
//! `common`.

mod codes;
mod error;
pub mod fhir_in;
pub mod fhir_out;
pub mod hl7v2;
mod reading;
mod units;

pub use codes::{CodeSet, Param, VitalCodes};
pub use error::{Rejection, RejectionKind, SettingsError};
pub use reading::{
    FieldKind, FieldValue, READING_FIELDS, Reading, ReadingField, Translated, field_kind,
    reading_field,
};

/// The formats a source can read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// One JSON object per message with the declared schema's fields.
    #[default]
    Json,
    /// FHIR R4 JSON: an Observation, or a Bundle of Observations.
    Fhir,
    /// HL7 v2 `ORU^R01`, one message per record.
    Hl7v2,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Fhir => "fhir",
            Format::Hl7v2 => "hl7v2",
        }
    }
}

/// Reads one message of a format into readings.
#[derive(Debug, Clone)]
pub struct Translator {
    format: Format,
    codes: CodeSet,
    hl7: hl7v2::Hl7Options,
}

impl Translator {
    /// `None` for `json`: the payload is the record.
    pub fn new(format: Format, codes: CodeSet, hl7: hl7v2::Hl7Options) -> Option<Self> {
        (format != Format::Json).then_some(Self { format, codes, hl7 })
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// One message's readings and rejections.
    pub fn translate(&self, payload: &[u8]) -> Translated {
        match self.format {
            Format::Fhir => fhir_in::read(payload, &self.codes),
            Format::Hl7v2 => hl7v2::read(payload, &self.codes, &self.hl7),
            Format::Json => Translated::default(),
        }
    }
}
