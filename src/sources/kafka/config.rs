//! YAML settings of the Kafka source.

use std::collections::BTreeMap;
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use serde::Deserialize;

use super::consumer::KafkaSource;
use super::error::ConfigError;
use super::schema::FieldType;
use super::schema::{FieldSpec, RecordSchema};
use crate::common::{EnvString, HumanBytes, HumanDuration};
use crate::interop::hl7v2::Hl7Options;
use crate::interop::{
    FieldKind, Format, Param, READING_FIELDS, Translator, VitalCodes, field_kind,
};
use crate::kafka::{ClientSettings, TopicSettings};

/// `kind: kafka`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSourceConfig {
    /// Comma-separated `host:port` list (`${KAFKA_BROKERS:-localhost:9092}`).
    pub brokers: EnvString,
    /// librdkafka properties passed through unchanged (TLS, SASL, tuning).
    #[serde(default)]
    pub properties: BTreeMap<String, EnvString>,
    /// The topic to read (or `topics:` for several).
    #[serde(default)]
    pub topic: Option<EnvString>,
    #[serde(default)]
    pub topics: Vec<EnvString>,
    /// Consumer group: instances sharing it split the partitions.
    pub group_id: EnvString,
    /// Where a partition with no committed offset starts.
    #[serde(default)]
    pub start: StartPosition,
    /// Create missing topics with these settings; absent: never create.
    #[serde(default)]
    pub create_topic: Option<TopicSettings>,
    /// How records are grouped into micro-batches.
    #[serde(default)]
    pub batch: BatchPolicy,
    /// Fields of each JSON record, in table column order.
    pub schema: Vec<FieldSpec>,
    /// What a dead letter keeps of a rejected record.
    #[serde(default)]
    pub dead_letters: DeadLetterPolicy,
    /// Event-time processing (watermarks per partition, windows, late data).
    #[serde(default)]
    pub event_time: Option<crate::sources::EventTimeConfig>,
    /// The column the producers key their messages by (e.g. `patient_id`),
    /// so that all rows with one value are in one partition. Windows and
    /// alerts keyed by it then keep their state per partition, and the
    /// state moves with the partition to whichever instance takes it over.
    #[serde(default)]
    pub key: Option<String>,
    /// What a message is: `json` (one record, the default), `fhir` (an
    /// Observation or a Bundle of them) or `hl7v2` (an `ORU^R01`). FHIR and
    /// HL7 v2 messages become readings with the `schema:`'s fields, each
    /// one of the reading's (`interop/`).
    #[serde(default)]
    pub format: Format,
    /// `fhir`/`hl7v2`: per parameter, `system|code` strings replacing the
    /// default codes (`interop/codes.rs` lists them and their sources).
    #[serde(default)]
    pub codes: BTreeMap<Param, Vec<String>>,
    /// `fhir`/`hl7v2`: answer codes (`system|code` or bare) -> ACVPU letter.
    #[serde(default)]
    pub consciousness_values: BTreeMap<String, String>,
    /// `hl7v2`: how to read its times.
    #[serde(default)]
    pub hl7v2: Hl7Options,
}

/// The declared types a reading's field of `kind` may take.
fn declared_types(kind: FieldKind) -> &'static [FieldType] {
    match kind {
        FieldKind::Text => &[FieldType::String],
        FieldKind::Time => &[FieldType::Timestamp],
        FieldKind::Whole => &[FieldType::Int32, FieldType::Int64, FieldType::Float64],
        FieldKind::Decimal => &[FieldType::Float64],
        FieldKind::Flag => &[FieldType::Boolean],
    }
}

/// `start: earliest | latest`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartPosition {
    #[default]
    Earliest,
    Latest,
}

/// A batch closes at `max_rows` records, `max_bytes` of payload, or
/// `max_wait` after its first record, whichever comes first.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchPolicy {
    #[serde(default = "default_max_rows")]
    pub max_rows: usize,
    /// Payload bytes per batch: what one batch may hold in memory however
    /// large its records are (a batch always takes at least one record).
    #[serde(default = "default_max_bytes")]
    pub max_bytes: HumanBytes,
    #[serde(default = "default_max_wait")]
    pub max_wait: HumanDuration,
}

impl Default for BatchPolicy {
    fn default() -> Self {
        Self {
            max_rows: default_max_rows(),
            max_bytes: default_max_bytes(),
            max_wait: default_max_wait(),
        }
    }
}

/// `dead_letters: {max_payload: 64KiB}`: a dead letter keeps the first
/// `max_payload` bytes of the record, its full length and its SHA-256, so
/// a flood of huge records cannot blow up memory or the dead-letter table,
/// and the original can still be identified.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterPolicy {
    #[serde(default = "default_max_payload")]
    pub max_payload: HumanBytes,
}

impl Default for DeadLetterPolicy {
    fn default() -> Self {
        Self {
            max_payload: default_max_payload(),
        }
    }
}

/// Largest `batch.max_bytes`: keeps every binary and string column of a
/// batch far below Arrow's 2 GiB 32-bit offset limit.
pub const MAX_BATCH_BYTES: u64 = 1 << 30;

fn default_max_bytes() -> HumanBytes {
    HumanBytes(64 << 20)
}

fn default_max_payload() -> HumanBytes {
    HumanBytes(64 << 10)
}

fn default_max_rows() -> usize {
    8192
}
fn default_max_wait() -> HumanDuration {
    HumanDuration(Duration::from_millis(200))
}

impl KafkaSourceConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let client = self.client();
        client.validate().map_err(ConfigError::Client)?;
        let topics = self.topic_list();
        if topics.is_empty() {
            return Err(ConfigError::NoTopic);
        }
        if self.topic.is_some() && !self.topics.is_empty() {
            return Err(ConfigError::TopicAndTopics);
        }
        if let Some(empty) = topics.iter().find(|t| t.trim().is_empty()) {
            return Err(ConfigError::EmptyTopic(empty.clone()));
        }
        if self.group_id.as_str().trim().is_empty() {
            return Err(ConfigError::EmptyGroupId);
        }
        if let Some(create) = &self.create_topic {
            create.validate().map_err(ConfigError::CreateTopic)?;
        }
        if self.batch.max_rows == 0 || self.batch.max_rows > 1_000_000 {
            return Err(ConfigError::MaxRows(self.batch.max_rows));
        }
        if self.batch.max_bytes.0 == 0 || self.batch.max_bytes.0 > MAX_BATCH_BYTES {
            return Err(ConfigError::MaxBytes(self.batch.max_bytes.0));
        }
        if self.dead_letters.max_payload.0 > self.batch.max_bytes.0 {
            return Err(ConfigError::DeadLetterPayload {
                payload: self.dead_letters.max_payload.0,
                batch: self.batch.max_bytes.0,
            });
        }
        if self.batch.max_wait.0.is_zero() {
            return Err(ConfigError::ZeroMaxWait);
        }
        for reserved in ["group.id", "enable.auto.commit", "enable.auto.offset.store"] {
            if client.properties.contains_key(reserved) {
                return Err(ConfigError::ReservedProperty(reserved));
            }
        }
        RecordSchema::try_new(&self.schema)?;
        if let Some(key) = &self.key
            && !self.schema.iter().any(|f| &f.name == key)
        {
            return Err(ConfigError::UnknownKey(key.clone()));
        }
        self.translator()?;
        Ok(())
    }

    /// The reader of `format:` (`None` for JSON), or why its settings or
    /// the declared schema do not fit it.
    pub fn translator(&self) -> Result<Option<Translator>, ConfigError> {
        translator_for(
            self.format,
            &self.schema,
            &self.codes,
            &self.consciousness_values,
            &self.hl7v2,
        )
    }

    pub fn client(&self) -> ClientSettings {
        ClientSettings {
            brokers: self.brokers.clone(),
            properties: self.properties.clone(),
        }
    }

    pub fn topic_list(&self) -> Vec<String> {
        match &self.topic {
            Some(t) => vec![t.0.clone()],
            None => self.topics.iter().map(|t| t.0.clone()).collect(),
        }
    }

    pub fn record_schema(&self) -> RecordSchema {
        // Checked by `validate`, which runs before anything else.
        RecordSchema::try_new(&self.schema).unwrap_or_else(|_| RecordSchema::empty())
    }

    pub fn schema(&self) -> SchemaRef {
        self.record_schema().arrow_schema()
    }

    /// The consumer, ready to run; refuses a declared schema that does not
    /// hold (validation checks it first).
    pub fn build(&self) -> Result<KafkaSource, ConfigError> {
        let schema = RecordSchema::try_new(&self.schema)?;
        Ok(KafkaSource::new(self.clone(), schema))
    }
}

/// The reader of `format` for a source declaring `schema` (`None` for
/// JSON), or why the settings or the schema do not fit it: shared by every
/// source that reads FHIR or HL7 v2.
pub fn translator_for(
    format: Format,
    schema: &[FieldSpec],
    codes: &BTreeMap<Param, Vec<String>>,
    consciousness_values: &BTreeMap<String, String>,
    hl7v2: &Hl7Options,
) -> Result<Option<Translator>, ConfigError> {
    let name = format.as_str();
    let refuse = |reason: String| ConfigError::Format {
        format: name,
        reason,
    };
    if format == Format::Json {
        if !codes.is_empty() || !consciousness_values.is_empty() {
            return Err(refuse(
                "`codes` and `consciousness_values` apply to `format: fhir` or `hl7v2`".into(),
            ));
        }
        return Ok(None);
    }
    for field in schema {
        let Some(kind) = field_kind(&field.name) else {
            let names: Vec<&str> = READING_FIELDS.iter().map(|f| f.name).collect();
            return Err(refuse(format!(
                "schema field `{}` is not a field of a reading ({})",
                field.name,
                names.join(", ")
            )));
        };
        let types = declared_types(kind);
        if !types.contains(&field.field_type) {
            return Err(refuse(format!(
                "schema field `{}` is {:?}; a reading's {} is one of {types:?}",
                field.name, field.field_type, field.name
            )));
        }
    }
    for required in ["patient_id", "ts"] {
        if !schema.iter().any(|f| f.name == required) {
            return Err(refuse(format!("the schema must declare `{required}`")));
        }
    }
    let codes = VitalCodes {
        codes: codes.clone(),
        consciousness_values: consciousness_values.clone(),
    }
    .build()
    .map_err(|e| refuse(e.0))?;
    hl7v2.offset_minutes().map_err(|e| refuse(e.0))?;
    Ok(Translator::new(format, codes, hl7v2.clone()))
}
