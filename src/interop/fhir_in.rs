//! FHIR R4 JSON -> readings: a single `Observation`, a `Bundle` of them
//! (`transaction`, `batch`, `collection`), the vital-signs panel `85353-1`
//! and the blood pressure panel `85354-9` with `component`s.
//!
//! Each Observation is read whole or rejected whole, with its place in the
//! message (`entry[2] Observation/hr-1`) and the reason. Observations of one
//! patient at one instant in one message become one reading. Resources are
//! typed by `fhir-model` (R4B types, the same as R4's for every element
//! read here); the Bundle envelope is read first with each entry's
//! resource left as raw JSON, so an entry that is not an Observation is
//! named by its `resourceType` rather than by the first field it lacks.

use std::borrow::Cow;

use fhir_model::r4b::codes::ObservationStatus;
use fhir_model::r4b::resources::{
    Observation, ObservationComponentValue, ObservationEffective, ObservationValue,
};
use fhir_model::r4b::types::{CodeableConcept, Quantity, Reference};
use fhir_model::{DateTime, Instant};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::codes::{CodeSet, Meaning, Param};
use super::error::{Rejection, RejectionKind};
use super::reading::{Translated, Value};
use super::units::{Unit, convert};

/// The first level of any resource: enough to tell a Bundle from an
/// Observation and to walk a Bundle's entries.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(rename = "resourceType", borrow, default)]
    resource_type: Option<Cow<'a, str>>,
    #[serde(rename = "type", borrow, default)]
    bundle_type: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    entry: Option<Vec<Entry<'a>>>,
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Entry<'a> {
    #[serde(borrow, default)]
    resource: Option<&'a RawValue>,
}

/// The Bundle types whose entries are resources to read.
const BUNDLE_TYPES: [&str; 3] = ["transaction", "batch", "collection"];

/// One message's readings and rejections.
pub fn read(payload: &[u8], codes: &CodeSet) -> Translated {
    read_new(payload, codes, &|_| false)
}

/// [`read`], skipping Observations whose id `seen` says was received
/// before (they are listed in `duplicates`): what makes a retried POST
/// harmless.
pub fn read_new(payload: &[u8], codes: &CodeSet, seen: &dyn Fn(&str) -> bool) -> Translated {
    let mut out = Translated::default();
    let head: Head<'_> = match serde_json::from_slice(payload) {
        Ok(head) => head,
        Err(e) => {
            out.reject(Rejection::new(
                RejectionKind::Invalid,
                format!("not FHIR JSON: {e}"),
            ));
            return out;
        }
    };
    match head.resource_type.as_deref() {
        Some("Observation") => {
            let location = located("", "Observation", head.id.as_deref());
            let part = Part {
                entry: 0,
                location: &location,
                seen,
            };
            read_observation_json(payload, &part, codes, &mut out);
        }
        Some("Bundle") => {
            let bundle_type = head.bundle_type.as_deref().unwrap_or("");
            if !BUNDLE_TYPES.contains(&bundle_type) {
                out.reject(Rejection::new(
                    RejectionKind::Invalid,
                    format!(
                        "Bundle type `{bundle_type}` is not one vitalflow reads ({})",
                        BUNDLE_TYPES.join(", ")
                    ),
                ));
                return out;
            }
            for (i, entry) in head.entry.iter().flatten().enumerate() {
                read_entry(i, entry, codes, seen, &mut out);
            }
        }
        Some(other) => out.reject(Rejection::new(
            RejectionKind::Invalid,
            format!("a {other}, not an Observation or a Bundle of them"),
        )),
        None => out.reject(Rejection::new(
            RejectionKind::Invalid,
            "no `resourceType`: not a FHIR resource",
        )),
    }
    out
}

fn located(prefix: &str, resource_type: &str, id: Option<&str>) -> String {
    match id {
        Some(id) => format!("{prefix}{resource_type}/{id}"),
        None => format!("{prefix}{resource_type}"),
    }
}

/// Where an Observation sits in its message.
struct Part<'a> {
    entry: usize,
    location: &'a str,
    seen: &'a dyn Fn(&str) -> bool,
}

fn read_entry(
    i: usize,
    entry: &Entry<'_>,
    codes: &CodeSet,
    seen: &dyn Fn(&str) -> bool,
    out: &mut Translated,
) {
    let Some(raw) = entry.resource else {
        let mut rejection =
            Rejection::new(RejectionKind::Invalid, format!("entry[{i}]: no resource"));
        rejection.entry = Some(i);
        out.reject(rejection);
        return;
    };
    let head: Head<'_> = match serde_json::from_str(raw.get()) {
        Ok(head) => head,
        Err(e) => {
            out.reject(Rejection::new(
                RejectionKind::Invalid,
                format!("entry[{i}]: not a FHIR resource: {e}"),
            ));
            rejection_at_entry(out, i);
            return;
        }
    };
    let resource_type = head.resource_type.as_deref().unwrap_or("(no resourceType)");
    let location = located(&format!("entry[{i}] "), resource_type, head.id.as_deref());
    if resource_type != "Observation" {
        let mut rejection = Rejection::new(
            RejectionKind::Invalid,
            format!("a {resource_type}, not an Observation"),
        )
        .at(&location);
        rejection.id = head.id.map(Cow::into_owned);
        rejection.entry = Some(i);
        out.reject(rejection);
        return;
    }
    let part = Part {
        entry: i,
        location: &location,
        seen,
    };
    read_observation_json(raw.get().as_bytes(), &part, codes, out);
}

/// Mark the last rejection as concerning entry `i`.
fn rejection_at_entry(out: &mut Translated, i: usize) {
    if let Some(last) = out.rejections.last_mut() {
        last.entry = Some(i);
    }
}

fn read_observation_json(json: &[u8], part: &Part<'_>, codes: &CodeSet, out: &mut Translated) {
    match serde_json::from_slice::<Observation>(json) {
        Ok(observation) => {
            if let Some(id) = observation.id.as_deref()
                && (part.seen)(id)
            {
                out.duplicates.push((part.entry, id.to_string()));
                return;
            }
            match observation_into(&observation, part, codes, out) {
                Ok(()) => out.contributed.push((part.entry, observation.id.clone())),
                Err(mut rejection) => {
                    rejection = rejection.at(part.location);
                    rejection.id = observation.id.clone();
                    rejection.entry = Some(part.entry);
                    out.reject(rejection);
                }
            }
        }
        Err(e) => {
            let mut rejection = Rejection::new(
                RejectionKind::Invalid,
                format!("not a valid Observation: {e}"),
            )
            .at(part.location);
            rejection.entry = Some(part.entry);
            out.reject(rejection);
        }
    }
}

/// Add one Observation's values to its patient's reading at its instant, or
/// say why none of them can be.
fn observation_into(
    obs: &Observation,
    part: &Part<'_>,
    codes: &CodeSet,
    out: &mut Translated,
) -> Result<(), Rejection> {
    match obs.status {
        ObservationStatus::Final
        | ObservationStatus::Amended
        | ObservationStatus::Corrected
        | ObservationStatus::Preliminary => {}
        ObservationStatus::EnteredInError => {
            return Err(Rejection::new(
                RejectionKind::NotAResult,
                "status `entered-in-error`: withdrawn, not a reading",
            ));
        }
        other => {
            return Err(Rejection::new(
                RejectionKind::NotAResult,
                format!("status `{other}` carries no result"),
            ));
        }
    }
    let patient = patient_id(obs.subject.as_ref())?;
    let ts = effective_ms(obs.effective.as_ref())?;

    let mut values: Vec<(Param, Value)> = Vec::new();
    match meaning_of(&obs.code, codes) {
        Some(Meaning::Param(param)) => {
            match &obs.value {
                Some(value) => values.push((param, observation_value(param, value, codes)?)),
                None if obs.data_absent_reason.is_some() => {}
                None => {
                    return Err(Rejection::new(
                        RejectionKind::BadValue,
                        format!("{} has no value[x] and no dataAbsentReason", param.name()),
                    ));
                }
            }
            // Components of a single measure (SpO2's inhaled oxygen flow,
            // say) count; components of no known code are other data.
            components(obs, codes, &mut values)?;
        }
        Some(Meaning::Panel) => {
            components(obs, codes, &mut values)?;
            if values.is_empty() && obs.has_member.is_empty() {
                return Err(Rejection::new(
                    RejectionKind::UnknownCode,
                    format!(
                        "the panel {} has no component vitalflow reads",
                        codings(&obs.code)
                    ),
                ));
            }
            if values.is_empty() {
                // A panel of references: its members are entries of their own.
                return Ok(());
            }
        }
        None => {
            return Err(Rejection::new(
                RejectionKind::UnknownCode,
                format!(
                    "code {} is not a vital sign vitalflow reads",
                    codings(&obs.code)
                ),
            ));
        }
    }

    // All of it or none: set on a copy, keep the copy if nothing conflicts.
    let before = out.readings.len();
    let index = out.reading_for(&patient, ts);
    let mut reading = out.readings[index].clone();
    for (param, value) in values {
        if let Err(e) = reading.set(param, value) {
            if index == before {
                out.remove(index);
            }
            return Err(e);
        }
    }
    out.readings[index] = reading;
    out.read_from(index, part.location);
    if !out.parts[index].contains(&part.entry) {
        out.parts[index].push(part.entry);
    }
    Ok(())
}

fn components(
    obs: &Observation,
    codes: &CodeSet,
    values: &mut Vec<(Param, Value)>,
) -> Result<(), Rejection> {
    for (i, component) in obs.component.iter().flatten().enumerate() {
        let Some(Meaning::Param(param)) = meaning_of(&component.code, codes) else {
            continue;
        };
        let at = |r: Rejection| r.at(&format!("component[{i}]"));
        match &component.value {
            Some(value) => {
                let value = component_value(param, value, codes).map_err(at)?;
                values.push((param, value));
            }
            None if component.data_absent_reason.is_some() => {}
            None => {
                return Err(at(Rejection::new(
                    RejectionKind::BadValue,
                    format!("{} has no value[x] and no dataAbsentReason", param.name()),
                )));
            }
        }
    }
    Ok(())
}

/// The first coding whose system and code name something.
fn meaning_of(concept: &CodeableConcept, codes: &CodeSet) -> Option<Meaning> {
    concept.coding.iter().flatten().find_map(|coding| {
        let (Some(system), Some(code)) = (&coding.system, &coding.code) else {
            return None;
        };
        codes.meaning(system, code)
    })
}

/// `system|code` of every coding, for a reason.
fn codings(concept: &CodeableConcept) -> String {
    let list: Vec<String> = concept
        .coding
        .iter()
        .flatten()
        .map(|c| {
            format!(
                "{}|{}",
                c.system.as_deref().unwrap_or("(no system)"),
                c.code.as_deref().unwrap_or("(no code)")
            )
        })
        .collect();
    if list.is_empty() {
        "(no coding)".into()
    } else {
        list.join(", ")
    }
}

fn quantity_value(param: Param, q: &Quantity) -> Result<Value, Rejection> {
    let value = q.value.ok_or_else(|| {
        Rejection::new(
            RejectionKind::BadValue,
            format!("{} valueQuantity has no value", param.name()),
        )
    })?;
    let unit = Unit {
        system: q.system.as_deref(),
        code: q.code.as_deref(),
        text: None,
    };
    convert(param, value, &unit).map(Value::Number)
}

fn wrong_type(param: Param, got: &str) -> Rejection {
    let wanted = match param {
        Param::Consciousness => "valueCodeableConcept or valueString (a letter of ACVPU)",
        Param::OnOxygen => "valueBoolean",
        _ => "valueQuantity",
    };
    Rejection::new(
        RejectionKind::BadValue,
        format!("{} needs {wanted}, not {got}", param.name()),
    )
}

fn letter(
    param: Param,
    concept: Option<&CodeableConcept>,
    text: Option<&str>,
    codes: &CodeSet,
) -> Result<Value, Rejection> {
    let found = match (concept, text) {
        (Some(concept), _) => concept.coding.iter().flatten().find_map(|c| {
            c.code
                .as_deref()
                .and_then(|code| codes.consciousness(c.system.as_deref(), code))
        }),
        (None, Some(text)) => codes.consciousness(None, text),
        (None, None) => None,
    };
    found.map(Value::Letter).ok_or_else(|| {
        let said = concept.map_or_else(|| format!("`{}`", text.unwrap_or("")), codings);
        Rejection::new(
            RejectionKind::BadValue,
            format!(
                "{} {said} is not a level of ACVPU (A, C, V, P, U or a configured code)",
                param.name()
            ),
        )
    })
}

fn observation_value(
    param: Param,
    value: &ObservationValue,
    codes: &CodeSet,
) -> Result<Value, Rejection> {
    match (param, value) {
        (Param::Consciousness, ObservationValue::CodeableConcept(c)) => {
            letter(param, Some(c), None, codes)
        }
        (Param::Consciousness, ObservationValue::String(s)) => letter(param, None, Some(s), codes),
        (Param::OnOxygen, ObservationValue::Boolean(b)) => Ok(Value::Flag(*b)),
        (Param::Consciousness | Param::OnOxygen, _) => {
            Err(wrong_type(param, observation_value_name(value)))
        }
        (_, ObservationValue::Quantity(q)) => quantity_value(param, q),
        (_, other) => Err(wrong_type(param, observation_value_name(other))),
    }
}

fn component_value(
    param: Param,
    value: &ObservationComponentValue,
    codes: &CodeSet,
) -> Result<Value, Rejection> {
    match (param, value) {
        (Param::Consciousness, ObservationComponentValue::CodeableConcept(c)) => {
            letter(param, Some(c), None, codes)
        }
        (Param::Consciousness, ObservationComponentValue::String(s)) => {
            letter(param, None, Some(s), codes)
        }
        (Param::OnOxygen, ObservationComponentValue::Boolean(b)) => Ok(Value::Flag(*b)),
        (Param::Consciousness | Param::OnOxygen, _) => {
            Err(wrong_type(param, "another value[x] type"))
        }
        (_, ObservationComponentValue::Quantity(q)) => quantity_value(param, q),
        (_, _) => Err(wrong_type(param, "another value[x] type")),
    }
}

fn observation_value_name(value: &ObservationValue) -> &'static str {
    match value {
        ObservationValue::Quantity(_) => "valueQuantity",
        ObservationValue::CodeableConcept(_) => "valueCodeableConcept",
        ObservationValue::String(_) => "valueString",
        ObservationValue::Boolean(_) => "valueBoolean",
        ObservationValue::Integer(_) => "valueInteger",
        ObservationValue::Range(_) => "valueRange",
        ObservationValue::Ratio(_) => "valueRatio",
        _ => "another value[x] type",
    }
}

/// The patient's id from `subject`: `Patient/P1`, an absolute URL ending
/// in `Patient/P1`, or a logical reference by identifier.
fn patient_id(subject: Option<&Reference>) -> Result<String, Rejection> {
    let invalid = |why: String| Rejection::new(RejectionKind::Invalid, why);
    let subject =
        subject.ok_or_else(|| invalid("no subject: a reading needs its patient".into()))?;
    if let Some(reference) = subject.reference.as_deref() {
        let path = reference.split(['?', '#']).next().unwrap_or("");
        let mut parts = path.rsplit('/');
        let (id, resource_type) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        // `Patient/P1/_history/2`: the version is not the id.
        let (id, resource_type) = if resource_type == "_history" {
            let _ = parts.next();
            let id = path.rsplit('/').nth(2).unwrap_or("");
            (id, path.rsplit('/').nth(3).unwrap_or(""))
        } else {
            (id, resource_type)
        };
        return if resource_type == "Patient" && !id.is_empty() {
            Ok(id.to_string())
        } else {
            Err(invalid(format!(
                "subject `{reference}` does not name a Patient (expected `Patient/<id>`)"
            )))
        };
    }
    if let Some(value) = subject.identifier.as_ref().and_then(|i| i.value.as_deref())
        && !value.is_empty()
    {
        return Ok(value.to_string());
    }
    Err(invalid(
        "subject has neither a reference nor an identifier value".into(),
    ))
}

fn instant_ms(instant: &Instant) -> i64 {
    (instant.0.unix_timestamp_nanos() / 1_000_000) as i64
}

/// The reading's instant: `effectiveDateTime` with a time of day, or
/// `effectiveInstant`.
fn effective_ms(effective: Option<&ObservationEffective>) -> Result<i64, Rejection> {
    let bad = |why: &str| Rejection::new(RejectionKind::BadTime, why.to_string());
    match effective {
        Some(ObservationEffective::DateTime(DateTime::DateTime(instant)))
        | Some(ObservationEffective::Instant(instant)) => Ok(instant_ms(instant)),
        Some(ObservationEffective::DateTime(DateTime::Date(date))) => Err(bad(&format!(
            "effectiveDateTime `{}` has no time of day: a reading needs an instant",
            serde_json::to_string(date)
                .unwrap_or_default()
                .trim_matches('"')
        ))),
        Some(ObservationEffective::Period(_)) | Some(ObservationEffective::Timing(_)) => Err(bad(
            "effectivePeriod/effectiveTiming: a reading needs one instant (effectiveDateTime or effectiveInstant)",
        )),
        None => Err(bad(
            "no effective[x]: a reading needs the time it was taken",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(code: &str, value: &str) -> String {
        format!(
            r#"{{"resourceType":"Observation","id":"o1","status":"final",
            "code":{{"coding":[{{"system":"http://loinc.org","code":"{code}"}}]}},
            "subject":{{"reference":"Patient/P1"}},
            "effectiveDateTime":"2026-11-30T10:00:00+01:00",{value}}}"#
        )
    }

    fn read_one(json: &str) -> Translated {
        read(json.as_bytes(), &CodeSet::defaults())
    }

    #[test]
    fn a_heart_rate_becomes_a_reading_in_utc() {
        let t = read_one(&obs(
            "8867-4",
            r#""valueQuantity":{"value":82,"system":"http://unitsofmeasure.org","code":"/min"}"#,
        ));
        assert!(t.rejections.is_empty(), "{:?}", t.rejections);
        assert_eq!(t.readings.len(), 1);
        assert_eq!(t.readings[0].patient_id, "P1");
        assert_eq!(t.readings[0].heart_rate, Some(82));
        // 10:00 at +01:00 is 09:00 UTC.
        assert_eq!(t.readings[0].ts, 1_796_029_200_000);
    }

    #[test]
    fn entered_in_error_unknown_codes_and_bad_units_are_named() {
        let e = read_one(&obs("8867-4", r#""valueQuantity":{"value":82,"system":"http://unitsofmeasure.org","code":"/min"}"#).replace("\"final\"", "\"entered-in-error\""));
        assert_eq!(e.rejections[0].kind, RejectionKind::NotAResult);
        assert!(
            e.rejections[0]
                .reason
                .starts_with("Observation/o1: status `entered-in-error`"),
            "{}",
            e.rejections[0].reason
        );
        let u = read_one(&obs(
            "29463-7",
            r#""valueQuantity":{"value":70,"system":"http://unitsofmeasure.org","code":"kg"}"#,
        ));
        assert_eq!(u.rejections[0].kind, RejectionKind::UnknownCode);
        assert!(
            u.rejections[0].reason.contains("http://loinc.org|29463-7"),
            "{}",
            u.rejections[0].reason
        );
        let b = read_one(&obs(
            "59408-5",
            r#""valueQuantity":{"value":97,"system":"http://unitsofmeasure.org","code":"mm[Hg]"}"#,
        ));
        assert_eq!(b.rejections[0].kind, RejectionKind::BadUnit);
        assert!(b.readings.is_empty());
    }
}
