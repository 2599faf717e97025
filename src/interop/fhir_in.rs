//! FHIR R4 JSON -> readings: a single `Observation`, a `Bundle` of them
//! (`transaction`, `batch`, `collection`), the vital-signs panel `85353-1`
//! and the blood pressure panel `85354-9` with `component`s.
//!
//! Each Observation is read whole or rejected whole, with its place in the
//! message (`entry[2] Observation/hr-1`) and the reason. Observations of one
//! patient at one instant in one message become one reading. A message is
//! read in one pass, through a struct of just the elements vitalflow uses:
//! the status code and the date-times are `fhir-model`'s types (R4B, the
//! same as R4's for every element read here), the codings, quantities and
//! references are views borrowing their strings from the message (the
//! crate's types own every string they hold, a third of the decoding time
//! of a Bundle; the tests read every resource written by `fhir_out` back
//! through the crate's whole types). A message the one pass cannot read is
//! read again through its envelope, each entry's resource left as raw JSON,
//! so an entry that is not an Observation is named by its `resourceType`
//! rather than by the first field it lacks.

use std::borrow::Cow;

use std::str::FromStr;

use fhir_model::r4b::codes::ObservationStatus;
use fhir_model::{DateTime, Instant};
use serde::de::{IgnoredAny, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use super::codes::{CodeSet, Meaning, Param};
use super::error::{Rejection, RejectionKind};
use super::reading::{Translated, Value};
use super::units::{Unit, convert};

/// A string of the message, borrowed unless it holds escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Chars;
        impl<'de> Visitor<'de> for Chars {
            type Value = Cow<'de, str>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Cow::Borrowed(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v))
            }
        }
        deserializer.deserialize_str(Chars).map(Text)
    }
}

impl std::ops::Deref for Text<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

/// A FHIR primitive parsed by `fhir-model`'s own `FromStr` (its
/// `Deserialize` goes through an owned `String`); an invalid one fails the
/// parse with the crate's message, as its `Deserialize` does.
struct Parsed<T>(T);

impl<'de, T> Deserialize<'de> for Parsed<T>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Text::deserialize(deserializer)?;
        text.parse().map(Parsed).map_err(serde::de::Error::custom)
    }
}

/// `Coding`: the elements a code is matched by.
#[derive(Deserialize)]
struct Coding<'a> {
    #[serde(borrow, default)]
    system: Option<Text<'a>>,
    #[serde(borrow, default)]
    code: Option<Text<'a>>,
}

/// `CodeableConcept`: its codings (never its display text).
#[derive(Deserialize)]
struct Concept<'a> {
    #[serde(borrow, default)]
    coding: Vec<Coding<'a>>,
}

/// `Quantity`: the value and its coded unit.
#[derive(Deserialize)]
struct Quantity<'a> {
    #[serde(default)]
    value: Option<f64>,
    #[serde(borrow, default)]
    system: Option<Text<'a>>,
    #[serde(borrow, default)]
    code: Option<Text<'a>>,
}

/// `Reference`: a literal reference or a logical one by identifier.
#[derive(Deserialize)]
struct Reference<'a> {
    #[serde(borrow, default)]
    reference: Option<Text<'a>>,
    #[serde(borrow, default)]
    identifier: Option<Identifier<'a>>,
}

#[derive(Deserialize)]
struct Identifier<'a> {
    #[serde(borrow, default)]
    value: Option<Text<'a>>,
}

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

/// A struct of the elements vitalflow reads, plus `value[x]` in the types a
/// vital sign can take (the others by name, to say what was sent), and a
/// `value()` that returns the one present. Without `#[serde(flatten)]`,
/// which would buffer every element first.
macro_rules! with_value_x {
    ($(#[$meta:meta])* struct $name:ident<'a> { $($fields:tt)* }) => {
        $(#[$meta])*
        struct $name<'a> {
            $($fields)*
            #[serde(borrow, default)]
            value_quantity: Option<Quantity<'a>>,
            #[serde(borrow, default)]
            value_codeable_concept: Option<Concept<'a>>,
            #[serde(borrow, default)]
            value_string: Option<Text<'a>>,
            #[serde(default)]
            value_boolean: Option<bool>,
            #[serde(default)]
            value_integer: Option<IgnoredAny>,
            #[serde(default)]
            value_range: Option<IgnoredAny>,
            #[serde(default)]
            value_ratio: Option<IgnoredAny>,
            #[serde(default)]
            value_sampled_data: Option<IgnoredAny>,
            #[serde(default)]
            value_time: Option<IgnoredAny>,
            #[serde(default)]
            value_date_time: Option<IgnoredAny>,
            #[serde(default)]
            value_period: Option<IgnoredAny>,
        }

        impl $name<'_> {
            fn value(&self) -> Option<Valued<'_>> {
                if let Some(q) = &self.value_quantity {
                    return Some(Valued::Quantity(q));
                }
                if let Some(c) = &self.value_codeable_concept {
                    return Some(Valued::Concept(c));
                }
                if let Some(t) = &self.value_string {
                    return Some(Valued::Text(t));
                }
                if let Some(b) = self.value_boolean {
                    return Some(Valued::Flag(b));
                }
                [
                    (self.value_integer.is_some(), "valueInteger"),
                    (self.value_range.is_some(), "valueRange"),
                    (self.value_ratio.is_some(), "valueRatio"),
                    (self.value_sampled_data.is_some(), "valueSampledData"),
                    (self.value_time.is_some(), "valueTime"),
                    (self.value_date_time.is_some(), "valueDateTime"),
                    (self.value_period.is_some(), "valuePeriod"),
                ]
                .into_iter()
                .find(|(present, _)| *present)
                .map(|(_, name)| Valued::Other(name))
            }
        }
    };
}

with_value_x! {
    /// An Observation as vitalflow reads it: every element it uses, typed
    /// by `fhir-model` (codes, codings, quantities, references, FHIR
    /// date-times); elements it does not use are skipped unread, which is
    /// ~2x faster than the crate's whole `Observation` (whose `value[x]`
    /// and `effective[x]` are flattened enums, buffered element by element).
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct VitalSign<'a> {
        #[serde(borrow, default)]
        resource_type: Option<Text<'a>>,
        #[serde(borrow, default)]
        id: Option<Text<'a>>,
        // Required (1..1) in FHIR; optional here so that one Bundle entry
        // without them fails alone, not the Bundle's parse (checked in
        // `read_vital_sign`).
        #[serde(default)]
        status: Option<Parsed<ObservationStatus>>,
        #[serde(borrow, default)]
        code: Option<Concept<'a>>,
        #[serde(borrow, default)]
        subject: Option<Reference<'a>>,
        #[serde(default)]
        effective_date_time: Option<Parsed<DateTime>>,
        #[serde(default)]
        effective_instant: Option<Parsed<Instant>>,
        #[serde(default)]
        effective_period: Option<IgnoredAny>,
        #[serde(default)]
        effective_timing: Option<IgnoredAny>,
        #[serde(default)]
        data_absent_reason: Option<IgnoredAny>,
        #[serde(default)]
        has_member: Vec<IgnoredAny>,
        #[serde(borrow, default)]
        component: Vec<VitalComponent<'a>>,
        // A Bundle's elements: the message is read in one pass whether it
        // is an Observation or a Bundle of them (its keys may come in any
        // order, `entry` before `resourceType`).
        #[serde(rename = "type", borrow, default)]
        bundle_type: Option<Text<'a>>,
        #[serde(borrow, default)]
        entry: Vec<WholeEntry<'a>>,
    }
}

with_value_x! {
    /// A `component` of an Observation.
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct VitalComponent<'a> {
        #[serde(borrow)]
        code: Concept<'a>,
        #[serde(default)]
        data_absent_reason: Option<IgnoredAny>,
    }
}

/// One `value[x]`, borrowed.
enum Valued<'a> {
    Quantity(&'a Quantity<'a>),
    Concept(&'a Concept<'a>),
    Text(&'a str),
    Flag(bool),
    /// Another type, by its element name.
    Other(&'static str),
}

/// An entry of a Bundle read in one pass, its resource as a
/// [`VitalSign`]. A Bundle this cannot read (an entry with an element of
/// another type under a name an Observation uses) is read again entry by
/// entry.
#[derive(Deserialize)]
struct WholeEntry<'a> {
    #[serde(borrow, default)]
    resource: Option<VitalSign<'a>>,
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
    // One pass reads an Observation or a whole Bundle of them; a message it
    // cannot read is read again through the envelope, which names what is
    // wrong and where.
    if let Ok(message) = serde_json::from_slice::<VitalSign>(payload) {
        match message.resource_type.as_deref() {
            Some("Observation") => {
                let location = located("", "Observation", message.id.as_deref());
                let part = Part {
                    entry: 0,
                    location: &location,
                    seen,
                };
                read_vital_sign(Ok(message), &part, codes, &mut out);
                return out;
            }
            Some("Bundle")
                if BUNDLE_TYPES.contains(&message.bundle_type.as_deref().unwrap_or("")) =>
            {
                for (i, entry) in message.entry.into_iter().enumerate() {
                    read_whole_entry(i, entry, codes, seen, &mut out);
                }
                return out;
            }
            _ => {}
        }
    }
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
            read_vital_sign(serde_json::from_slice(payload), &part, codes, &mut out);
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
    // An Observation is read in one pass; anything else is named by its
    // envelope.
    let parsed = serde_json::from_str::<VitalSign>(raw.get());
    if let Ok(observation) = &parsed
        && observation.resource_type.as_deref() == Some("Observation")
    {
        let location = located(
            &format!("entry[{i}] "),
            "Observation",
            observation.id.as_deref(),
        );
        let part = Part {
            entry: i,
            location: &location,
            seen,
        };
        read_vital_sign(parsed, &part, codes, out);
        return;
    }
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
        not_an_observation(i, resource_type, head.id.as_deref(), &location, out);
        return;
    }
    let part = Part {
        entry: i,
        location: &location,
        seen,
    };
    read_vital_sign(parsed, &part, codes, out);
}

/// Entry `i` holds another resource than an Observation.
fn not_an_observation(
    i: usize,
    resource_type: &str,
    id: Option<&str>,
    location: &str,
    out: &mut Translated,
) {
    let mut rejection = Rejection::new(
        RejectionKind::Invalid,
        format!("a {resource_type}, not an Observation"),
    )
    .at(location);
    rejection.id = id.map(str::to_string);
    rejection.entry = Some(i);
    out.reject(rejection);
}

/// One entry of a Bundle read in one pass.
fn read_whole_entry(
    i: usize,
    entry: WholeEntry<'_>,
    codes: &CodeSet,
    seen: &dyn Fn(&str) -> bool,
    out: &mut Translated,
) {
    let Some(resource) = entry.resource else {
        let mut rejection =
            Rejection::new(RejectionKind::Invalid, format!("entry[{i}]: no resource"));
        rejection.entry = Some(i);
        out.reject(rejection);
        return;
    };
    let resource_type = resource
        .resource_type
        .as_deref()
        .unwrap_or("(no resourceType)");
    let location = located(
        &format!("entry[{i}] "),
        resource_type,
        resource.id.as_deref(),
    );
    if resource_type != "Observation" {
        not_an_observation(i, resource_type, resource.id.as_deref(), &location, out);
        return;
    }
    let part = Part {
        entry: i,
        location: &location,
        seen,
    };
    read_vital_sign(Ok(resource), &part, codes, out);
}

/// Mark the last rejection as concerning entry `i`.
fn rejection_at_entry(out: &mut Translated, i: usize) {
    if let Some(last) = out.rejections.last_mut() {
        last.entry = Some(i);
    }
}

fn read_vital_sign(
    parsed: Result<VitalSign<'_>, serde_json::Error>,
    part: &Part<'_>,
    codes: &CodeSet,
    out: &mut Translated,
) {
    match parsed {
        Ok(observation) if observation.status.is_none() || observation.code.is_none() => {
            let missing = if observation.status.is_none() {
                "status"
            } else {
                "code"
            };
            let mut rejection = Rejection::new(
                RejectionKind::Invalid,
                format!("not a valid Observation: missing field `{missing}` (required, 1..1)"),
            )
            .at(part.location);
            rejection.id = observation.id.as_deref().map(str::to_string);
            rejection.entry = Some(part.entry);
            out.reject(rejection);
        }
        Ok(observation) => {
            if let Some(id) = observation.id.as_deref()
                && (part.seen)(id)
            {
                out.duplicates.push((part.entry, id.to_string()));
                return;
            }
            match observation_into(&observation, part, codes, out) {
                Ok(()) => out
                    .contributed
                    .push((part.entry, observation.id.as_deref().map(str::to_string))),
                Err(mut rejection) => {
                    rejection = rejection.at(part.location);
                    rejection.id = observation.id.as_deref().map(str::to_string);
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
    obs: &VitalSign<'_>,
    part: &Part<'_>,
    codes: &CodeSet,
    out: &mut Translated,
) -> Result<(), Rejection> {
    let (Some(Parsed(status)), Some(code)) = (&obs.status, obs.code.as_ref()) else {
        return Err(Rejection::new(
            RejectionKind::Invalid,
            "not a valid Observation",
        ));
    };
    match status {
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
    if let Some(other) = obs.resource_type.as_deref().filter(|t| *t != "Observation") {
        return Err(Rejection::new(
            RejectionKind::Invalid,
            format!("a {other}, not an Observation"),
        ));
    }
    let patient = patient_id(obs.subject.as_ref())?;
    let ts = effective_ms(obs)?;

    let mut values: Vec<(Param, Value)> = Vec::new();
    match meaning_of(code, codes) {
        Some(Meaning::Param(param)) => {
            match obs.value() {
                Some(value) => values.push((param, read_value(param, value, codes)?)),
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
                        codings(code)
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
                format!("code {} is not a vital sign vitalflow reads", codings(code)),
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
    obs: &VitalSign<'_>,
    codes: &CodeSet,
    values: &mut Vec<(Param, Value)>,
) -> Result<(), Rejection> {
    for (i, component) in obs.component.iter().enumerate() {
        let Some(Meaning::Param(param)) = meaning_of(&component.code, codes) else {
            continue;
        };
        let at = |r: Rejection| r.at(&format!("component[{i}]"));
        match component.value() {
            Some(value) => {
                let value = read_value(param, value, codes).map_err(at)?;
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
fn meaning_of(concept: &Concept<'_>, codes: &CodeSet) -> Option<Meaning> {
    concept.coding.iter().find_map(|coding| {
        let (Some(system), Some(code)) = (&coding.system, &coding.code) else {
            return None;
        };
        codes.meaning(system, code)
    })
}

/// `system|code` of every coding, for a reason.
fn codings(concept: &Concept<'_>) -> String {
    let list: Vec<String> = concept
        .coding
        .iter()
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

fn quantity_value(param: Param, q: &Quantity<'_>) -> Result<Value, Rejection> {
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
    concept: Option<&Concept<'_>>,
    text: Option<&str>,
    codes: &CodeSet,
) -> Result<Value, Rejection> {
    let found = match (concept, text) {
        (Some(concept), _) => concept.coding.iter().find_map(|c| {
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

/// One `value[x]` as the parameter's value.
fn read_value(param: Param, value: Valued<'_>, codes: &CodeSet) -> Result<Value, Rejection> {
    match (param, value) {
        (Param::Consciousness, Valued::Concept(c)) => letter(param, Some(c), None, codes),
        (Param::Consciousness, Valued::Text(s)) => letter(param, None, Some(s), codes),
        (Param::OnOxygen, Valued::Flag(b)) => Ok(Value::Flag(b)),
        (Param::Consciousness | Param::OnOxygen, other) => {
            Err(wrong_type(param, valued_name(&other)))
        }
        (_, Valued::Quantity(q)) => quantity_value(param, q),
        (_, other) => Err(wrong_type(param, valued_name(&other))),
    }
}

fn valued_name(value: &Valued<'_>) -> &'static str {
    match value {
        Valued::Quantity(_) => "valueQuantity",
        Valued::Concept(_) => "valueCodeableConcept",
        Valued::Text(_) => "valueString",
        Valued::Flag(_) => "valueBoolean",
        Valued::Other(name) => name,
    }
}

/// The patient's id from `subject`: `Patient/P1`, an absolute URL ending
/// in `Patient/P1`, or a logical reference by identifier.
fn patient_id(subject: Option<&Reference<'_>>) -> Result<String, Rejection> {
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
fn effective_ms(obs: &VitalSign<'_>) -> Result<i64, Rejection> {
    let bad = |why: &str| Rejection::new(RejectionKind::BadTime, why.to_string());
    match (&obs.effective_date_time, &obs.effective_instant) {
        (Some(Parsed(DateTime::DateTime(instant))), _) | (None, Some(Parsed(instant))) => {
            Ok(instant_ms(instant))
        }
        (Some(Parsed(DateTime::Date(date))), _) => Err(bad(&format!(
            "effectiveDateTime `{}` has no time of day: a reading needs an instant",
            serde_json::to_string(date)
                .unwrap_or_default()
                .trim_matches('"')
        ))),
        (None, None) if obs.effective_period.is_some() || obs.effective_timing.is_some() => {
            Err(bad(
                "effectivePeriod/effectiveTiming: a reading needs one instant (effectiveDateTime or effectiveInstant)",
            ))
        }
        (None, None) => Err(bad(
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
    fn an_entry_that_breaks_the_one_pass_read_fails_alone() {
        let good = obs(
            "8867-4",
            r#""valueQuantity":{"value":82,"system":"http://unitsofmeasure.org","code":"/min"}"#,
        );
        let bad = good
            .replace("\"final\"", "\"finished\"")
            .replace("\"o1\"", "\"o2\"");
        let bundle = format!(
            r#"{{"resourceType":"Bundle","type":"collection","entry":[{{"resource":{good}}},{{"resource":{bad}}}]}}"#
        );
        let t = read_one(&bundle);
        assert_eq!(t.readings.len(), 1);
        assert_eq!(t.rejections.len(), 1, "{:?}", t.rejections);
        assert_eq!(t.rejections[0].entry, Some(1));
        assert!(
            t.rejections[0]
                .reason
                .starts_with("entry[1] Observation/o2: not a valid Observation"),
            "{}",
            t.rejections[0].reason
        );
    }

    #[test]
    fn a_bundle_reads_whatever_the_order_of_its_keys() {
        let hr = obs(
            "8867-4",
            r#""valueQuantity":{"value":82,"system":"http://unitsofmeasure.org","code":"/min"}"#,
        );
        let rr = obs(
            "9279-1",
            r#""valueQuantity":{"value":18,"system":"http://unitsofmeasure.org","code":"/min"}"#,
        )
        .replace("\"o1\"", "\"o2\"");
        // serde_json's maps write keys sorted: `entry` first, and the first
        // `resourceType` in the text is an entry's.
        for bundle in [
            format!(
                r#"{{"entry":[{{"request":{{"method":"POST"}},"resource":{hr}}},{{"resource":{rr}}}],"resourceType":"Bundle","type":"transaction"}}"#
            ),
            format!(
                r#"{{"resourceType":"Bundle","type":"batch","entry":[{{"resource":{hr}}},{{"resource":{rr}}}]}}"#
            ),
        ] {
            let t = read_one(&bundle);
            assert!(t.rejections.is_empty(), "{:?}", t.rejections);
            assert_eq!(t.readings.len(), 1, "one patient, one instant");
            assert_eq!(t.readings[0].heart_rate, Some(82));
            assert_eq!(t.readings[0].respiratory_rate, Some(18));
            assert_eq!(t.parts[0], [0, 1]);
        }
        // A searchset is not a Bundle of readings, whatever comes first.
        let searchset = format!(
            r#"{{"entry":[{{"resource":{hr}}}],"resourceType":"Bundle","type":"searchset"}}"#
        );
        let t = read_one(&searchset);
        assert!(t.readings.is_empty());
        assert!(
            t.rejections[0].reason.contains("searchset"),
            "{}",
            t.rejections[0].reason
        );
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
