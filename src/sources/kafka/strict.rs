//! The type check every record passes before Arrow decodes it.
//!
//! `arrow-json` is lenient on purpose: it reads `97.5` into an int32 column
//! as 97, `"72"` into a number column as 72, and an epoch of `1.5e12` as a
//! truncated integer. For patient data a silent change of value is worse
//! than a rejection, so each declared type accepts exactly:
//!
//! | type      | accepted                                   | refused (`wrong_type`)                       |
//! |-----------|--------------------------------------------|----------------------------------------------|
//! | string    | a JSON string                              | numbers, booleans, arrays, objects           |
//! | int32/64  | a JSON number with an exact integer value in the type's range (`97`, `97.0`, `1e2`) | fractions (`97.5`), out of range (`1e20`), numeric strings (`"72"`), booleans |
//! | float64   | a JSON number (integers up to 2^53 exactly) | numeric strings, booleans, integers beyond 2^53 |
//! | boolean   | `true` / `false`                           | `0` / `1`, `"true"`                          |
//! | timestamp | an RFC 3339 string, or whole epoch milliseconds | fractional epochs, booleans, arrays, objects |
//!
//! `null` is accepted for optional fields; a required field that is absent
//! or `null` is `missing_field`. Unknown fields are ignored. The check
//! walks the JSON once with serde (no allocation for field values), so it
//! also finds invalid JSON and payloads that are not one object.

use std::cell::RefCell;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::dead_letters::ReasonKind;
use super::schema::{FieldSpec, FieldType};

/// Why a payload was refused.
pub type Refusal = (ReasonKind, String);

/// Check one payload against the declared fields.
pub fn check(payload: Option<&[u8]>, fields: &[FieldSpec]) -> Result<(), Refusal> {
    let payload = match payload {
        Some(p) if !p.iter().all(u8::is_ascii_whitespace) => p,
        _ => return Err((ReasonKind::Empty, "the message has no payload".into())),
    };
    let refusal = RefCell::new(None);
    let mut seen = vec![false; fields.len()];
    let mut de = serde_json::Deserializer::from_slice(payload);
    let walked = RecordSeed {
        fields,
        seen: &mut seen,
        refusal: &refusal,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end());
    if let Some(refusal) = refusal.into_inner() {
        return Err(refusal);
    }
    walked.map_err(|e| (ReasonKind::InvalidJson, format!("not valid JSON: {e}")))?;
    for (field, seen) in fields.iter().zip(&seen) {
        if field.required && !seen {
            return Err((
                ReasonKind::MissingField,
                format!("required field `{}` is missing or null", field.name),
            ));
        }
    }
    Ok(())
}

/// The record: one JSON object.
struct RecordSeed<'a> {
    fields: &'a [FieldSpec],
    /// Per field: present and not null.
    seen: &'a mut [bool],
    refusal: &'a RefCell<Option<Refusal>>,
}

impl RecordSeed<'_> {
    fn refuse<E: serde::de::Error>(&self, kind: ReasonKind, reason: String) -> E {
        self.refusal.borrow_mut().get_or_insert((kind, reason));
        E::custom("refused")
    }

    fn not_an_object<E: serde::de::Error>(&self, found: &str) -> E {
        self.refuse(
            ReasonKind::NotAnObject,
            format!("expected a JSON object, found {found}"),
        )
    }
}

impl<'de> DeserializeSeed<'de> for RecordSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RecordSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key_seed(KeySeed(self.fields))? {
            match key {
                Some(i) => {
                    let present = map.next_value_seed(ValueSeed {
                        field: &self.fields[i],
                        refusal: self.refusal,
                    })?;
                    self.seen[i] = present;
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(self.not_an_object("an array"))
    }
    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<(), E> {
        Err(self.not_an_object("a string"))
    }
    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<(), E> {
        Err(self.not_an_object("a number"))
    }
    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<(), E> {
        Err(self.not_an_object("a number"))
    }
    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<(), E> {
        Err(self.not_an_object("a number"))
    }
    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<(), E> {
        Err(self.not_an_object("a boolean"))
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        Err(self.not_an_object("null"))
    }
}

/// A key: the index of the declared field it names, if any (compared in
/// place, without allocating).
struct KeySeed<'a>(&'a [FieldSpec]);

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().position(|f| f.name == key))
    }
}

/// One declared field's value; `true` when present and not null.
struct ValueSeed<'a> {
    field: &'a FieldSpec,
    refusal: &'a RefCell<Option<Refusal>>,
}

/// Largest integer a float64 holds exactly (2^53).
const F64_EXACT: u64 = 1 << 53;

impl ValueSeed<'_> {
    fn wrong<E: serde::de::Error>(&self, reason: String) -> E {
        self.refusal
            .borrow_mut()
            .get_or_insert((ReasonKind::WrongType, reason));
        E::custom("refused")
    }

    fn wrong_kind<E: serde::de::Error>(&self, found: &str) -> E {
        let expected = match self.field.field_type {
            FieldType::String => "a string",
            FieldType::Int32 | FieldType::Int64 => "an integer",
            FieldType::Float64 => "a number",
            FieldType::Boolean => "true or false",
            FieldType::Timestamp => "an RFC 3339 string or epoch milliseconds",
        };
        self.wrong(format!(
            "field `{}`: expected {expected}, found {found}",
            self.field.name
        ))
    }

    fn integer<E: serde::de::Error>(&self, v: i128, written: &dyn fmt::Display) -> Result<bool, E> {
        let (min, max, name) = match self.field.field_type {
            FieldType::Int32 => (i32::MIN as i128, i32::MAX as i128, "int32"),
            FieldType::Int64 | FieldType::Timestamp => {
                (i64::MIN as i128, i64::MAX as i128, "int64")
            }
            FieldType::Float64 => {
                if v.unsigned_abs() > F64_EXACT as u128 {
                    return Err(self.wrong(format!(
                        "field `{}`: {written} cannot be stored exactly as float64",
                        self.field.name
                    )));
                }
                return Ok(true);
            }
            FieldType::String | FieldType::Boolean => return Err(self.wrong_kind("a number")),
        };
        if v < min || v > max {
            return Err(self.wrong(format!(
                "field `{}`: {written} does not fit {name}",
                self.field.name
            )));
        }
        Ok(true)
    }
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a value for `{}`", self.field.name)
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<bool, E> {
        match self.field.field_type {
            FieldType::Boolean => Ok(true),
            _ => Err(self.wrong_kind("a boolean")),
        }
    }

    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<bool, E> {
        match self.field.field_type {
            FieldType::String | FieldType::Timestamp => Ok(true),
            _ => Err(self.wrong_kind("a string")),
        }
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<bool, E> {
        self.integer(v as i128, &v)
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<bool, E> {
        self.integer(v as i128, &v)
    }

    /// serde_json calls this for numbers written with a fraction or an
    /// exponent (and integers beyond 64 bits); `float_roundtrip` makes `v`
    /// exactly the written value.
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<bool, E> {
        match self.field.field_type {
            FieldType::Float64 => Ok(true),
            FieldType::Int32 | FieldType::Int64 | FieldType::Timestamp => {
                if v.fract() != 0.0 || !v.is_finite() {
                    let what = if self.field.field_type == FieldType::Timestamp {
                        "epoch milliseconds must be a whole number"
                    } else {
                        "not a whole number"
                    };
                    return Err(self.wrong(format!("field `{}`: {v} is {what}", self.field.name)));
                }
                // Beyond i128 is beyond every integer type anyway.
                let whole = if v.abs() < 1e38 { v as i128 } else { i128::MAX };
                self.integer(whole, &v)
            }
            FieldType::String | FieldType::Boolean => Err(self.wrong_kind("a number")),
        }
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, _: A) -> Result<bool, A::Error> {
        Err(self.wrong_kind("an array"))
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<bool, A::Error> {
        Err(self.wrong_kind("an object"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str, field_type: FieldType, required: bool) -> FieldSpec {
        FieldSpec {
            required,
            ..FieldSpec::new(name, field_type)
        }
    }

    fn fields() -> Vec<FieldSpec> {
        vec![
            field("id", FieldType::String, true),
            field("ts", FieldType::Timestamp, true),
            field("spo2", FieldType::Int32, false),
            field("count", FieldType::Int64, false),
            field("temp", FieldType::Float64, false),
            field("o2", FieldType::Boolean, false),
        ]
    }

    fn verdict(json: &str) -> Result<(), (&'static str, String)> {
        check(Some(json.as_bytes()), &fields()).map_err(|(k, r)| (k.as_str(), r))
    }

    const BASE: &str = r#""id":"P1","ts":"2026-11-26T09:00:00Z""#;

    #[test]
    fn exact_values_of_every_type_pass() {
        for extra in [
            "",
            r#","spo2":97"#,
            r#","spo2":97.0"#,
            r#","spo2":1e2"#,
            r#","spo2":-2147483648"#,
            r#","count":9223372036854775807"#,
            r#","temp":36.6"#,
            r#","temp":37"#,
            r#","temp":9007199254740992"#,
            r#","o2":false"#,
            r#","spo2":null,"temp":null"#,
            r#","unknown":{"nested":[1,2,"x"]}"#,
        ] {
            let json = format!("{{{BASE}{extra}}}");
            assert_eq!(verdict(&json), Ok(()), "{json}");
        }
        assert_eq!(verdict(r#"{"id":"P1","ts":1764147600000}"#), Ok(()));
    }

    #[test]
    fn every_silent_coercion_is_refused_with_the_field_named() {
        for (extra, want) in [
            (r#","spo2":97.5"#, "`spo2`: 97.5 is not a whole number"),
            (
                r#","spo2":"97""#,
                "`spo2`: expected an integer, found a string",
            ),
            (r#","spo2":2147483648"#, "2147483648 does not fit int32"),
            (r#","spo2":1e20"#, "does not fit int32"),
            (r#","count":1e20"#, "does not fit int64"),
            (r#","count":18446744073709551615"#, "does not fit int64"),
            (r#","spo2":true"#, "found a boolean"),
            (
                r#","temp":"36.6""#,
                "`temp`: expected a number, found a string",
            ),
            (
                r#","temp":9007199254740993"#,
                "cannot be stored exactly as float64",
            ),
            (r#","o2":1"#, "`o2`: expected true or false, found a number"),
            (r#","o2":"true""#, "found a string"),
            (r#","spo2":[97]"#, "found an array"),
            (r#","temp":{"v":1}"#, "found an object"),
        ] {
            let json = format!("{{{BASE}{extra}}}");
            let (kind, reason) = verdict(&json).unwrap_err();
            assert_eq!(kind, "wrong_type", "{json}: {reason}");
            assert!(reason.contains(want), "{json}: {reason}");
        }
        let (kind, reason) = verdict(r#"{"id":"P1","ts":1764147600000.5}"#).unwrap_err();
        assert_eq!(kind, "wrong_type");
        assert!(
            reason.contains("epoch milliseconds must be a whole number"),
            "{reason}"
        );
        let (kind, _) = verdict(r#"{"id":7,"ts":1}"#).unwrap_err();
        assert_eq!(kind, "wrong_type");
    }

    #[test]
    fn structure_problems_have_their_own_kinds() {
        for (json, kind, want) in [
            ("{not json", "invalid_json", "not valid JSON"),
            (r#"{"id":"P1"}"#, "missing_field", "`ts`"),
            (r#"{"id":null,"ts":1}"#, "missing_field", "`id`"),
            ("[1,2]", "not_an_object", "an array"),
            ("42", "not_an_object", "a number"),
            ("   ", "empty", "no payload"),
            (
                r#"{"id":"P1","ts":1}{"id":"P1","ts":1}"#,
                "invalid_json",
                "trailing",
            ),
        ] {
            let (k, reason) = verdict(json).unwrap_err();
            assert_eq!(k, kind, "{json}: {reason}");
            assert!(reason.contains(want), "{json}: {reason}");
        }
        assert_eq!(check(None, &fields()).unwrap_err().0, ReasonKind::Empty);
    }
}
