//! Why a message, or one resource or segment of it, was rejected.

/// The class of a rejection (the dead-letter `reason_kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectionKind {
    /// Not a FHIR resource / HL7 v2 message at all, or not the expected type.
    Invalid,
    /// A code that names no parameter this pipeline reads.
    UnknownCode,
    /// A unit that cannot be converted to the parameter's unit.
    BadUnit,
    /// A value that is missing, of the wrong type or impossible.
    BadValue,
    /// A time that is missing, partial or unparseable.
    BadTime,
    /// `status: entered-in-error` (or another status that is no result).
    NotAResult,
    /// Two different values for one parameter of one patient at one instant.
    Conflict,
}

impl RejectionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectionKind::Invalid => "invalid_resource",
            RejectionKind::UnknownCode => "unknown_code",
            RejectionKind::BadUnit => "bad_unit",
            RejectionKind::BadValue => "bad_value",
            RejectionKind::BadTime => "bad_time",
            RejectionKind::NotAResult => "not_a_result",
            RejectionKind::Conflict => "conflict",
        }
    }
}

/// Settings of a format that cannot work (a code that is not
/// `system|code`, an offset that is not `+HH:MM`): what and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct SettingsError(pub String);

/// One rejected resource or segment: the class, and where and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{reason}")]
pub struct Rejection {
    pub kind: RejectionKind,
    /// Where (`entry[2] Observation/hr-1`, `OBX[3]-6`) and why.
    pub reason: String,
    /// The id of the rejected resource, when it has one.
    pub id: Option<String>,
    /// The Bundle entry (or 0 for a single resource) it concerns, when it
    /// concerns one part rather than the whole message.
    pub entry: Option<usize>,
}

impl Rejection {
    pub fn new(kind: RejectionKind, reason: impl Into<String>) -> Self {
        Self {
            kind,
            reason: reason.into(),
            id: None,
            entry: None,
        }
    }

    /// Prefix the reason with where it happened.
    pub fn at(mut self, location: &str) -> Self {
        if !location.is_empty() {
            self.reason = format!("{location}: {}", self.reason);
        }
        self
    }
}
