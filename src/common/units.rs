//! Human units in YAML: durations (`500ms`, `5m`) and sizes (`128MiB`).

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// A duration written as `500ms`, `10s`, `5m`, `1h` (humantime syntax).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        humantime::parse_duration(raw.trim())
            .map(HumanDuration)
            .map_err(|e| {
                serde::de::Error::custom(format!(
                    "invalid duration `{raw}`: {e} (write e.g. `500ms`, `10s`, `5m`)"
                ))
            })
    }
}

/// A byte size written as `128MiB`, `64MB`, `4096` (bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanBytes(pub u64);

impl<'de> Deserialize<'de> for HumanBytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Str(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Int(n) => Ok(HumanBytes(n)),
            Raw::Str(s) => s
                .trim()
                .parse::<bytesize::ByteSize>()
                .map(|b| HumanBytes(b.as_u64()))
                .map_err(|e| {
                    serde::de::Error::custom(format!(
                        "invalid size `{s}`: {e} (write e.g. `128MiB`, `5MB`)"
                    ))
                }),
        }
    }
}
