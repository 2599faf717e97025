//! YAML settings of the Kafka sink.

use std::collections::BTreeMap;

use arrow::datatypes::{DataType, SchemaRef};
use serde::Deserialize;

use super::sink::KafkaSink;
use crate::common::EnvString;
use crate::common::Spanned;
use crate::kafka::{ClientSettings, TopicSettings};
use crate::sinks::{ConfigError, SinkError};

/// `kind: kafka` (sink).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSinkConfig {
    /// The table to write.
    pub input: Spanned<String>,
    pub brokers: EnvString,
    #[serde(default)]
    pub properties: BTreeMap<String, EnvString>,
    /// `${VAR}` and `${VAR:-default}` are expanded, as for `brokers`.
    pub topic: EnvString,
    /// Column whose value keys each message (same key, same partition,
    /// in order); unkeyed if absent.
    #[serde(default)]
    pub key: Option<String>,
    /// Create the topic if missing.
    #[serde(default)]
    pub create_topic: Option<TopicSettings>,
    /// `json` (each row, the default) or `fhir` (each row as the resource
    /// `fhir:` says: a NEWS2 Observation or an alert Flag).
    #[serde(default)]
    pub format: SinkFormat,
    #[serde(default)]
    pub fhir: crate::sinks::fhir::FhirResourcesConfig,
}

/// What a Kafka sink's messages are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkFormat {
    #[default]
    Json,
    Fhir,
}

impl KafkaSinkConfig {
    pub fn client(&self) -> ClientSettings {
        ClientSettings {
            brokers: self.brokers.clone(),
            properties: self.properties.clone(),
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.client().validate()?;
        if self.topic.as_str().trim().is_empty() {
            return Err(ConfigError::Invalid("`topic` must not be empty".into()));
        }
        if let Some(create) = &self.create_topic {
            create.validate().map_err(ConfigError::CreateTopic)?;
        }
        for reserved in ["enable.idempotence", "acks"] {
            if self.properties.contains_key(reserved) {
                return Err(ConfigError::Conflict(format!(
                    "`properties.{reserved}` is fixed by vitalflow (idempotent, acks=all)"
                )));
            }
        }
        Ok(())
    }

    pub fn check_schema(&self, schema: &SchemaRef) -> Result<(), ConfigError> {
        if self.format == SinkFormat::Fhir {
            self.fhir.encoder(schema)?;
        }
        if let Some(key) = &self.key {
            let field = schema.field_with_name(key).map_err(|_| {
                ConfigError::Schema(format!("key column `{key}` is not in the input table"))
            })?;
            if matches!(
                field.data_type(),
                DataType::List(_) | DataType::Struct(_) | DataType::Map(..)
            ) {
                return Err(ConfigError::Schema(format!(
                    "key column `{key}` must be a scalar column"
                )));
            }
        }
        Ok(())
    }

    pub fn build(&self, name: &str, schema: SchemaRef) -> Result<KafkaSink, SinkError> {
        KafkaSink::new(name, self.clone(), schema)
    }
}
