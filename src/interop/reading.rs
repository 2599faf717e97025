//! The pipeline's reading, as assembled from a message's observations, and
//! the JSON record it becomes for the Kafka source's schema check.

use serde::Serialize;

use super::codes::Param;
use super::error::{Rejection, RejectionKind};

/// One patient's parameters at one instant. Missing parameters are `None`
/// (NULL in the table; the NEWS2 function counts them as missing).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Reading {
    pub patient_id: String,
    /// Epoch milliseconds, UTC.
    #[serde(serialize_with = "rfc3339_ms")]
    pub ts: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heart_rate: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spo2: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub systolic_bp: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diastolic_bp: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub respiratory_rate: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consciousness: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_oxygen: Option<bool>,
}

fn rfc3339_ms<S: serde::Serializer>(ts: &i64, s: S) -> Result<S::Ok, S::Error> {
    match chrono::DateTime::from_timestamp_millis(*ts) {
        // (`to_rfc3339_opts` writes directly; `format` parses its pattern
        // on every call.)
        Some(t) => s.serialize_str(&t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        None => Err(serde::ser::Error::custom(format!(
            "{ts} ms is outside the representable time range"
        ))),
    }
}

/// What a field of a reading holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// `patient_id`, `consciousness` (an ACVPU letter).
    Text,
    /// `ts`: epoch milliseconds, UTC.
    Time,
    /// A whole number: heart rate, SpO2, blood pressures, respiratory rate.
    Whole,
    /// `temperature`.
    Decimal,
    /// `on_oxygen`.
    Flag,
}

/// One field of a reading: its name, its kind and how to read it.
#[derive(Debug, Clone, Copy)]
pub struct ReadingField {
    pub name: &'static str,
    pub kind: FieldKind,
    pub get: fn(&Reading) -> FieldValue<'_>,
}

/// Every field of a reading, in its JSON record's order: the one list the
/// Kafka source's settings check, its decoder's columns and the
/// simulator's round trip read.
pub const READING_FIELDS: [ReadingField; 10] = [
    ReadingField {
        name: "patient_id",
        kind: FieldKind::Text,
        get: |r| FieldValue::Text(Some(&r.patient_id)),
    },
    ReadingField {
        name: "ts",
        kind: FieldKind::Time,
        get: |r| FieldValue::Time(r.ts),
    },
    ReadingField {
        name: "heart_rate",
        kind: FieldKind::Whole,
        get: |r| FieldValue::Whole(r.heart_rate),
    },
    ReadingField {
        name: "spo2",
        kind: FieldKind::Whole,
        get: |r| FieldValue::Whole(r.spo2),
    },
    ReadingField {
        name: "systolic_bp",
        kind: FieldKind::Whole,
        get: |r| FieldValue::Whole(r.systolic_bp),
    },
    ReadingField {
        name: "diastolic_bp",
        kind: FieldKind::Whole,
        get: |r| FieldValue::Whole(r.diastolic_bp),
    },
    ReadingField {
        name: "respiratory_rate",
        kind: FieldKind::Whole,
        get: |r| FieldValue::Whole(r.respiratory_rate),
    },
    ReadingField {
        name: "temperature",
        kind: FieldKind::Decimal,
        get: |r| FieldValue::Decimal(r.temperature),
    },
    ReadingField {
        name: "consciousness",
        kind: FieldKind::Text,
        get: |r| FieldValue::Text(r.consciousness.as_deref()),
    },
    ReadingField {
        name: "on_oxygen",
        kind: FieldKind::Flag,
        get: |r| FieldValue::Flag(r.on_oxygen),
    },
];

/// The reading's field `name`, if it has one (look it up once, then read
/// every reading through its `get`).
pub fn reading_field(name: &str) -> Option<&'static ReadingField> {
    READING_FIELDS.iter().find(|f| f.name == name)
}

/// The kind of the reading's field `name`, if it has one.
pub fn field_kind(name: &str) -> Option<FieldKind> {
    reading_field(name).map(|f| f.kind)
}

/// One field's value in one reading (`None` inside: not given).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FieldValue<'a> {
    Text(Option<&'a str>),
    Time(i64),
    Whole(Option<i32>),
    Decimal(Option<f64>),
    Flag(Option<bool>),
}

impl<'a> FieldValue<'a> {
    pub fn text(self) -> Option<&'a str> {
        match self {
            FieldValue::Text(v) => v,
            _ => None,
        }
    }

    pub fn whole(self) -> Option<i32> {
        match self {
            FieldValue::Whole(v) => v,
            _ => None,
        }
    }

    pub fn decimal(self) -> Option<f64> {
        match self {
            FieldValue::Decimal(v) => v,
            _ => None,
        }
    }

    pub fn flag(self) -> Option<bool> {
        match self {
            FieldValue::Flag(v) => v,
            _ => None,
        }
    }

    /// Whether the reading has a value there.
    pub fn is_present(&self) -> bool {
        match self {
            FieldValue::Text(v) => v.is_some(),
            FieldValue::Time(_) => true,
            FieldValue::Whole(v) => v.is_some(),
            FieldValue::Decimal(v) => v.is_some(),
            FieldValue::Flag(v) => v.is_some(),
        }
    }
}

/// One parameter's value, already in the pipeline's unit.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Number(f64),
    Letter(char),
    Flag(bool),
}

impl Reading {
    pub fn new(patient_id: &str, ts: i64) -> Self {
        Reading {
            patient_id: patient_id.to_string(),
            ts,
            ..Reading::default()
        }
    }

    /// The field `name` (one of [`READING_FIELDS`]).
    pub fn field(&self, name: &str) -> Option<FieldValue<'_>> {
        reading_field(name).map(|f| (f.get)(self))
    }

    /// The JSON record, one line, fields as the Kafka source declares them.
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing these fields cannot fail but for an out-of-range time,
        // which `set_time` callers have already refused.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Set `param` to `value`; a different value already set is a conflict
    /// (the same value twice, say from a panel and a single observation, is
    /// not).
    pub fn set(&mut self, param: Param, value: Value) -> Result<(), Rejection> {
        let int = |v: f64| -> Result<i32, Rejection> {
            let rounded = v.round();
            if rounded < f64::from(i32::MIN) || rounded > f64::from(i32::MAX) {
                return Err(Rejection::new(
                    RejectionKind::BadValue,
                    format!("{} value {v} is out of range", param.name()),
                ));
            }
            Ok(rounded as i32)
        };
        let conflict = |old: &dyn std::fmt::Debug, new: &dyn std::fmt::Debug| {
            Rejection::new(
                RejectionKind::Conflict,
                format!(
                    "{} is {old:?} and {new:?} for {} at the same instant",
                    param.name(),
                    self.patient_id
                ),
            )
        };
        macro_rules! put {
            ($slot:expr, $new:expr) => {{
                let new = $new;
                match &$slot {
                    Some(old) if *old != new => return Err(conflict(old, &new)),
                    _ => $slot = Some(new),
                }
            }};
        }
        match (param, value) {
            (Param::HeartRate, Value::Number(v)) => put!(self.heart_rate, int(v)?),
            (Param::Spo2, Value::Number(v)) => put!(self.spo2, int(v)?),
            (Param::SystolicBp, Value::Number(v)) => put!(self.systolic_bp, int(v)?),
            (Param::DiastolicBp, Value::Number(v)) => put!(self.diastolic_bp, int(v)?),
            (Param::RespiratoryRate, Value::Number(v)) => put!(self.respiratory_rate, int(v)?),
            (Param::Temperature, Value::Number(v)) => put!(self.temperature, v),
            (Param::Consciousness, Value::Letter(c)) => put!(self.consciousness, c.to_string()),
            (Param::OnOxygen, Value::Flag(b)) => put!(self.on_oxygen, b),
            // Oxygen given at any flow or above room air's 21 % is oxygen.
            (Param::OxygenFlow, Value::Number(v)) => put!(self.on_oxygen, v > 0.0),
            (Param::OxygenConcentration, Value::Number(v)) => put!(self.on_oxygen, v > 21.0),
            (param, value) => {
                return Err(Rejection::new(
                    RejectionKind::BadValue,
                    format!("{} cannot take the value {value:?}", param.name()),
                ));
            }
        }
        Ok(())
    }
}

/// What one message gave: readings (merged per patient and instant, in
/// order of first appearance, each with where it came from) and rejections.
#[derive(Debug, Clone, Default)]
pub struct Translated {
    pub readings: Vec<Reading>,
    /// Per reading, which resources or segments it was built from.
    pub sources: Vec<String>,
    /// Per reading, the message parts (FHIR Bundle entries) it was built from.
    pub parts: Vec<Vec<usize>>,
    pub rejections: Vec<Rejection>,
    /// Parts skipped as already received, with their ids.
    pub duplicates: Vec<(usize, String)>,
    /// Parts that gave values, with their ids.
    pub contributed: Vec<(usize, Option<String>)>,
}

impl Translated {
    /// The reading of `patient_id` at `ts`, created if new.
    pub fn reading_for(&mut self, patient_id: &str, ts: i64) -> usize {
        if let Some(i) = self
            .readings
            .iter()
            .position(|r| r.ts == ts && r.patient_id == patient_id)
        {
            return i;
        }
        self.readings.push(Reading::new(patient_id, ts));
        self.sources.push(String::new());
        self.parts.push(Vec::new());
        self.readings.len() - 1
    }

    /// Note that reading `index` was read (also) from `source`.
    pub fn read_from(&mut self, index: usize, source: &str) {
        let sources = &mut self.sources[index];
        if !sources.split(", ").any(|s| s == source) {
            if !sources.is_empty() {
                sources.push_str(", ");
            }
            sources.push_str(source);
        }
    }

    /// Drop a reading a later part of the message made invalid.
    pub fn remove(&mut self, index: usize) {
        self.readings.remove(index);
        self.sources.remove(index);
        self.parts.remove(index);
    }

    pub fn reject(&mut self, rejection: Rejection) {
        self.rejections.push(rejection);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_field_is_read_with_its_kind_and_is_in_the_record() {
        let mut r = Reading::new("P1", 1_764_496_800_000);
        for (param, value) in [
            (Param::HeartRate, Value::Number(80.0)),
            (Param::Spo2, Value::Number(97.0)),
            (Param::SystolicBp, Value::Number(120.0)),
            (Param::DiastolicBp, Value::Number(80.0)),
            (Param::RespiratoryRate, Value::Number(16.0)),
            (Param::Temperature, Value::Number(36.8)),
            (Param::Consciousness, Value::Letter('A')),
            (Param::OnOxygen, Value::Flag(false)),
        ] {
            r.set(param, value).unwrap();
        }
        let json: serde_json::Value = serde_json::from_slice(&r.to_json()).unwrap();
        let record = json.as_object().unwrap();
        assert_eq!(record.len(), READING_FIELDS.len());
        for ReadingField { name, kind, .. } in READING_FIELDS {
            let value = r.field(name).unwrap();
            let read_as = match value {
                FieldValue::Text(_) => FieldKind::Text,
                FieldValue::Time(_) => FieldKind::Time,
                FieldValue::Whole(_) => FieldKind::Whole,
                FieldValue::Decimal(_) => FieldKind::Decimal,
                FieldValue::Flag(_) => FieldKind::Flag,
            };
            assert_eq!(read_as, kind, "{name}");
            assert_eq!(field_kind(name), Some(kind));
            assert!(value.is_present(), "{name}");
            assert!(record.contains_key(name), "{name} is in the record");
        }
        assert_eq!(r.field("weight"), None);
        assert_eq!(field_kind("weight"), None);
        let empty = Reading::new("P2", 0);
        assert!(!empty.field("heart_rate").unwrap().is_present());
        assert!(empty.field("ts").unwrap().is_present());
    }

    #[test]
    fn the_record_has_the_set_parameters_and_an_rfc3339_time() {
        let mut r = Reading::new("P1", 1_764_496_800_250);
        r.set(Param::HeartRate, Value::Number(81.6)).unwrap();
        r.set(Param::Temperature, Value::Number(37.25)).unwrap();
        r.set(Param::OxygenFlow, Value::Number(2.0)).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&r.to_json()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "patient_id": "P1", "ts": "2025-11-30T10:00:00.250Z",
                "heart_rate": 82, "temperature": 37.25, "on_oxygen": true
            })
        );
    }

    #[test]
    fn the_same_value_twice_is_fine_and_a_different_one_a_conflict() {
        let mut r = Reading::new("P1", 0);
        r.set(Param::Spo2, Value::Number(97.0)).unwrap();
        r.set(Param::Spo2, Value::Number(97.0)).unwrap();
        let e = r.set(Param::Spo2, Value::Number(91.0)).unwrap_err();
        assert_eq!(e.kind, RejectionKind::Conflict);
        assert!(
            e.reason.contains("spo2 is 97 and 91 for P1"),
            "{}",
            e.reason
        );
        // Room air is not oxygen.
        let mut air = Reading::new("P2", 0);
        air.set(Param::OxygenConcentration, Value::Number(21.0))
            .unwrap();
        assert_eq!(air.on_oxygen, Some(false));
    }
}
