//! Errors of the Kafka source's configuration: [`ConfigError`] for the
//! `kafka` source YAML and [`SchemaError`] for its declared `schema:`.
//!
//! They are found at validation, before anything runs; the spec layer
//! attaches the YAML path (`sources.<name>`), so each message names the key
//! at fault and the rule it breaks. Failures of the running consumer are not
//! here: they travel as the `Source` trait's errors.

/// Why a `kafka` source's settings are refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// The client settings shared with the Kafka sink (brokers, properties).
    #[error(transparent)]
    Client(#[from] crate::kafka::ConfigError),

    #[error("name the topic to read with `topic:` (or `topics:`)")]
    NoTopic,

    #[error("give either `topic` or `topics`, not both")]
    TopicAndTopics,

    #[error("topic name `{0}` is empty")]
    EmptyTopic(String),

    #[error("`key: {0}` names no column of the declared `schema`")]
    UnknownKey(String),

    #[error("`group_id` must not be empty")]
    EmptyGroupId,

    /// The `create_topic:` settings.
    #[error("create_topic: {0}")]
    CreateTopic(crate::kafka::ConfigError),

    #[error("`batch.max_rows` must be between 1 and 1000000, got {0}")]
    MaxRows(usize),

    #[error("`batch.max_bytes` must be between 1 byte and 1GiB, got {0} bytes")]
    MaxBytes(u64),

    /// A dead letter's payload must fit in a batch's byte budget.
    #[error(
        "`dead_letters.max_payload` ({payload} bytes) must not exceed `batch.max_bytes` ({batch} bytes)"
    )]
    DeadLetterPayload { payload: u64, batch: u64 },

    #[error("`batch.max_wait` must be greater than zero")]
    ZeroMaxWait,

    /// A librdkafka property the offset protocol depends on.
    #[error(
        "`properties.{0}` is managed by vitalflow (offsets are committed only after the data is durable)"
    )]
    ReservedProperty(&'static str),

    #[error(transparent)]
    Schema(#[from] SchemaError),

    /// `format: fhir | hl7v2` settings, or a schema the format cannot fill.
    #[error("format {format}: {reason}")]
    Format {
        format: &'static str,
        reason: String,
    },
}

/// Why a declared `schema:` is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SchemaError {
    #[error("`schema` must list at least one field")]
    NoFields,

    #[error("schema[{index}]: `name` must not be empty")]
    EmptyName { index: usize },

    /// Field `index`, called `name`, declares something its type cannot have.
    #[error("schema[{index}] (`{name}`): {problem}")]
    Field {
        index: usize,
        name: String,
        problem: FieldProblem,
    },
}

/// What is wrong with one declared field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FieldProblem {
    #[error("the field is declared twice")]
    DeclaredTwice,

    #[error("`min`/`max` apply to numbers and timestamps only")]
    RangeNotNumeric,

    #[error("`min` ({min}) is greater than `max` ({max})")]
    MinAboveMax { min: f64, max: f64 },

    #[error("`max_future`/`max_past` apply to timestamps only")]
    AgeNotTimestamp,

    #[error("`values` applies to string fields only")]
    ValuesNotString,

    #[error("`values` must list at least one value")]
    NoValues,
}
