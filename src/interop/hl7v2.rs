//! HL7 v2 `ORU^R01` -> readings, and readings -> `ORU^R01` (the simulator's
//! `--format hl7v2`).
//!
//! Read per message: `MSH-9` must be `ORU^R01`; each `PID` starts a patient
//! (`PID-3`, first repetition, ID component); each `OBX` is one value: its
//! code (`OBX-3`, LOINC `LN` or IEEE 11073 `MDC`), value (`OBX-5`), unit
//! (`OBX-6`), result status (`OBX-11`) and time (`OBX-14`, else the
//! enclosing `OBR-7`). Segments and fields are split here, on the message's
//! own separators, and a field only when it is read; escape sequences and
//! timestamps are `hl7-parser`'s. Times without an offset are read at
//! `MSH-7`'s offset,
//! else at the configured one (UTC by default). Escape sequences (`\F\`,
//! `\S\`, `\T\`, `\R\`, `\E\`) are decoded. An OBX that cannot be read is a
//! rejection naming the segment and field (`OBX[3]-5`); the message's other
//! OBX still count. OBX of codes that are not vital signs (a mean blood
//! pressure, a device attribute) are other data and are skipped; a message
//! with no vital sign at all is rejected.
//!
//! Monitors often send one parameter under two codes (heart rate from the
//! ECG and pulse rate from the oximeter). When they differ, the code listed
//! first in `codes.rs` wins; the same code with two values is a conflict.

use std::collections::HashMap;

use hl7_parser::datetime::{TimeStamp, parse_timestamp};
use hl7_parser::message::Separators;
use serde::Deserialize;

use super::codes::{CodeSet, Meaning, Param};
use super::error::{Rejection, RejectionKind, SettingsError};
use super::reading::{Reading, Translated, Value};
use super::units::{Unit, convert};

/// `hl7v2:` settings of a source.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hl7Options {
    /// The UTC offset of times that state none and whose MSH-7 states
    /// none, as `+HH:MM` / `-HH:MM`. Default `+00:00`.
    #[serde(default)]
    pub utc_offset: Option<String>,
}

impl Hl7Options {
    /// The offset in minutes, or why the setting is wrong.
    pub fn offset_minutes(&self) -> Result<i32, SettingsError> {
        let Some(text) = self.utc_offset.as_deref() else {
            return Ok(0);
        };
        let bad = || {
            SettingsError(format!(
                "hl7v2.utc_offset: `{text}` is not `+HH:MM` or `-HH:MM`"
            ))
        };
        let (sign, rest) = match text.as_bytes().first() {
            Some(b'+') => (1, &text[1..]),
            Some(b'-') => (-1, &text[1..]),
            _ => return Err(bad()),
        };
        let (h, m) = rest.split_once(':').ok_or_else(bad)?;
        let (h, m): (i32, i32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if !(0..=14).contains(&h) || !(0..60).contains(&m) {
            return Err(bad());
        }
        Ok(sign * (h * 60 + m))
    }
}

/// A message split into segments and fields by its own separators,
/// borrowing the text. (`hl7-parser`'s `Message` builds every repetition,
/// component and subcomponent of every field up front; this splits a field
/// only when it is read, ~4x faster here. Escapes and timestamps are still
/// `hl7-parser`'s.)
struct Message<'a> {
    separators: Separators,
    segments: Vec<Segment<'a>>,
}

struct Segment<'a> {
    name: &'a str,
    /// Field 1 first (for MSH, MSH-1, the field separator itself).
    fields: Vec<&'a str>,
    separators: Separators,
}

#[derive(Clone, Copy)]
struct Field<'a> {
    raw: &'a str,
    separators: Separators,
}

impl<'a> Message<'a> {
    /// Split `text` (segments ended by `\r`, `\n` or both), or say why it is
    /// not an HL7 v2 message.
    fn split(text: &'a str) -> Result<Self, Rejection> {
        let malformed = |why: String| {
            Rejection::new(
                RejectionKind::Invalid,
                format!("not a well-formed HL7 v2 message: {why}"),
            )
        };
        let msh = text
            .get(..8)
            .filter(|h| h.starts_with("MSH"))
            .ok_or_else(|| malformed("no MSH header".into()))?;
        let mut chars = msh[3..].chars();
        let field = chars
            .next()
            .ok_or_else(|| malformed("MSH has no field separator".into()))?;
        let encoding: Vec<char> = text[4..].chars().take_while(|c| *c != field).collect();
        if encoding.len() < 3 {
            return Err(malformed(format!(
                "MSH-2 `{}` does not give the component, repetition and escape characters",
                encoding.iter().collect::<String>()
            )));
        }
        let separators = Separators {
            field,
            component: encoding[0],
            repetition: encoding[1],
            escape: encoding[2],
            subcomponent: encoding.get(3).copied().unwrap_or('&'),
            lenient_newlines: true,
        };
        let mut segments = Vec::new();
        for (n, line) in text
            .split(['\r', '\n'])
            .filter(|l| !l.is_empty())
            .enumerate()
        {
            let name = line.get(..3).filter(|name| {
                name.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
            });
            let (Some(name), true) = (name, line.len() == 3 || line[3..].starts_with(field)) else {
                return Err(malformed(format!(
                    "segment {} (`{}`) does not start with a segment name and `{field}`",
                    n + 1,
                    line.chars().take(12).collect::<String>()
                )));
            };
            let mut fields: Vec<&str> = Vec::with_capacity(20);
            if name == "MSH" {
                fields.push(&line[3..3 + field.len_utf8()]);
            }
            if line.len() > 3 {
                fields.extend(line[3 + field.len_utf8()..].split(field));
            }
            segments.push(Segment {
                name,
                fields,
                separators,
            });
        }
        Ok(Message {
            separators,
            segments,
        })
    }

    fn segment(&self, name: &str) -> Option<&Segment<'a>> {
        self.segments.iter().find(|s| s.name == name)
    }
}

impl<'a> Segment<'a> {
    /// Field `n`, numbered from 1 as HL7 numbers them.
    fn field(&self, n: usize) -> Option<Field<'a>> {
        let raw = *self.fields.get(n.checked_sub(1)?)?;
        Some(Field {
            raw,
            separators: self.separators,
        })
    }
}

impl<'a> Field<'a> {
    fn raw_value(&self) -> &'a str {
        self.raw
    }

    fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// Component `n` (from 1) of the first repetition.
    fn component(&self, n: usize) -> Option<&'a str> {
        let first = self.raw.split(self.separators.repetition).next()?;
        first
            .split(self.separators.component)
            .nth(n.checked_sub(1)?)
    }
}

/// `value` with its escape sequences decoded (borrowed when it has none).
fn decode<'a>(separators: &Separators, value: &'a str) -> std::borrow::Cow<'a, str> {
    if value.contains(separators.escape) {
        separators.decode(value).to_string().into()
    } else {
        value.into()
    }
}

/// One message's readings and rejections.
pub fn read(payload: &[u8], codes: &CodeSet, options: &Hl7Options) -> Translated {
    let mut out = Translated::default();
    let invalid = |why: String| Rejection::new(RejectionKind::Invalid, why);
    let Ok(text) = std::str::from_utf8(payload) else {
        out.reject(invalid("not UTF-8 text".into()));
        return out;
    };
    // MLLP framing, if a gateway left it on, and surrounding blank lines.
    let text = text.trim_matches(|c: char| c == '\u{0b}' || c == '\u{1c}' || c.is_whitespace());
    if !text.starts_with("MSH") {
        out.reject(invalid(
            "not an HL7 v2 message: it does not start with MSH".into(),
        ));
        return out;
    }
    let message = match Message::split(text) {
        Ok(m) => m,
        Err(rejection) => {
            out.reject(rejection);
            return out;
        }
    };
    let sep = message.separators;
    let Some(msh) = message.segment("MSH") else {
        out.reject(invalid("no MSH segment".into()));
        return out;
    };
    let kind = field_text(msh, 9, &sep);
    let mut parts = kind.split(sep.component);
    if (parts.next(), parts.next()) != (Some("ORU"), Some("R01")) {
        out.reject(invalid(format!("MSH-9 is `{kind}`, not ORU^R01")));
        return out;
    }
    let default_offset = match options.offset_minutes() {
        Ok(m) => m,
        Err(e) => {
            out.reject(invalid(e.0));
            return out;
        }
    };
    let msh_offset = msh
        .field(7)
        .and_then(|f| parse_timestamp(f.raw_value(), false).ok())
        .and_then(|t| t.offset)
        .map(offset_minutes)
        .unwrap_or(default_offset);

    let mut patient: Option<String> = None;
    let mut obr_time: Option<Result<i64, Rejection>> = None;
    // Per reading and parameter: the value and the rank of its code.
    let mut ranks: HashMap<(usize, Param), (u8, Value)> = HashMap::new();
    let mut obx_n = 0;
    let mut vital_obx = 0;
    for segment in &message.segments {
        match segment.name {
            "PID" => {
                let id = segment
                    .field(3)
                    .and_then(|f| f.component(1))
                    .map(|c| decode(&sep, c).into_owned())
                    .unwrap_or_default();
                if id.trim().is_empty() {
                    out.reject(invalid("PID-3 (patient identifier) is empty".into()));
                    return out;
                }
                patient = Some(id);
                obr_time = None;
            }
            "OBR" => {
                obr_time = segment
                    .field(7)
                    .filter(|f| !f.is_empty())
                    .map(|f| time_ms(f.raw_value(), msh_offset).map_err(|e| e.at("OBR-7")));
            }
            "OBX" => {
                obx_n += 1;
                let at = format!("OBX[{obx_n}]");
                let Some(patient) = patient.as_deref() else {
                    out.reject(invalid(format!("{at}: comes before any PID segment")));
                    return out;
                };
                match obx(segment, &sep, codes, msh_offset, obr_time.as_ref()) {
                    Ok(None) => {}
                    Ok(Some(found)) => {
                        vital_obx += 1;
                        let index = out.reading_for(patient, found.ts);
                        out.read_from(index, &at);
                        let slot = ranks
                            .entry((index, found.param))
                            .or_insert((u8::MAX, found.value.clone()));
                        if found.rank < slot.0 {
                            *slot = (found.rank, found.value);
                        } else if found.rank == slot.0 && slot.1 != found.value {
                            out.reject(Rejection::new(
                                RejectionKind::Conflict,
                                format!(
                                    "{} is {:?} in an earlier OBX and {:?} here for {patient} at the same instant",
                                    found.param.name(), slot.1, found.value
                                ),
                            ).at(&at));
                        }
                    }
                    Err(rejection) => {
                        vital_obx += 1;
                        out.reject(rejection.at(&at));
                    }
                }
            }
            _ => {}
        }
    }
    if patient.is_none() {
        out.reject(invalid(
            "no PID segment: a reading needs its patient".into(),
        ));
        return out;
    }
    if vital_obx == 0 {
        out.reject(Rejection::new(
            RejectionKind::UnknownCode,
            format!("none of the {obx_n} OBX segments is a vital sign vitalflow reads"),
        ));
        return out;
    }
    let mut keyed: Vec<_> = ranks.into_iter().collect();
    keyed.sort_by_key(|((index, param), _)| (*index, *param));
    for ((index, param), (_, value)) in keyed {
        if let Err(e) = out.readings[index].set(param, value) {
            out.reject(e);
        }
    }
    // A reading whose every OBX was rejected has nothing left to say.
    let empty: Vec<usize> = (0..out.readings.len())
        .filter(|&i| {
            out.readings[i] == Reading::new(&out.readings[i].patient_id, out.readings[i].ts)
        })
        .collect();
    for i in empty.into_iter().rev() {
        out.remove(i);
    }
    out
}

struct Found {
    param: Param,
    rank: u8,
    value: Value,
    ts: i64,
}

fn field_text<'a>(segment: &Segment<'a>, n: usize, sep: &Separators) -> std::borrow::Cow<'a, str> {
    segment
        .field(n)
        .map(|f| decode(sep, f.raw_value()))
        .unwrap_or_default()
}

fn component<'a>(field: Option<Field<'a>>, n: usize) -> Option<&'a str> {
    field.and_then(|f| f.component(n)).filter(|s| !s.is_empty())
}

/// One OBX: `Ok(None)` if its code is not a vital sign.
fn obx(
    segment: &Segment<'_>,
    sep: &Separators,
    codes: &CodeSet,
    offset: i32,
    obr_time: Option<&Result<i64, Rejection>>,
) -> Result<Option<Found>, Rejection> {
    let invalid = |why: String| Rejection::new(RejectionKind::Invalid, why);
    let id = segment.field(3);
    let Some(code) = component(id, 1) else {
        return Err(invalid("OBX-3 (observation identifier) is empty".into()));
    };
    let system = component(id, 3).unwrap_or("");
    let code = decode(sep, code);
    let Some((Meaning::Param(param), rank)) = codes.ranked(system, &code) else {
        return Ok(None);
    };
    match field_text(segment, 11, sep).as_ref() {
        "" | "F" | "C" | "P" | "R" | "A" | "S" => {}
        "W" => {
            return Err(Rejection::new(
                RejectionKind::NotAResult,
                "OBX-11 is `W`: the result was entered in error (withdrawn)",
            ));
        }
        other => {
            return Err(Rejection::new(
                RejectionKind::NotAResult,
                format!("OBX-11 is `{other}`: no result to read"),
            ));
        }
    }
    let value_field = segment.field(5);
    let raw = value_field.map(|f| f.raw_value()).unwrap_or("");
    if raw.is_empty() {
        return Err(Rejection::new(
            RejectionKind::BadValue,
            format!("OBX-5 is empty for {} ({code})", param.name()),
        ));
    }
    let value = match param {
        Param::Consciousness => {
            let answer = component(value_field, 1)
                .map(|c| decode(sep, c).into_owned())
                .unwrap_or_default();
            let answer_system = component(value_field, 3);
            codes
                .consciousness(answer_system, &answer)
                .map(Value::Letter)
                .ok_or_else(|| {
                    Rejection::new(
                        RejectionKind::BadValue,
                        format!("OBX-5 `{}` is not a level of ACVPU", sep.decode(raw)),
                    )
                })?
        }
        Param::OnOxygen => match raw {
            "Y" | "true" | "1" => Value::Flag(true),
            "N" | "false" | "0" => Value::Flag(false),
            other => {
                return Err(Rejection::new(
                    RejectionKind::BadValue,
                    format!("OBX-5 `{other}` is not Y or N"),
                ));
            }
        },
        _ => {
            let number: f64 = raw.trim().parse().map_err(|_| {
                Rejection::new(
                    RejectionKind::BadValue,
                    format!(
                        "OBX-5 `{}` is not a number ({})",
                        sep.decode(raw),
                        param.name()
                    ),
                )
            })?;
            let units = segment.field(6);
            let unit = Unit {
                system: component(units, 3),
                code: component(units, 1),
                text: component(units, 2),
            };
            Value::Number(convert(param, number, &unit).map_err(|e| e.at("OBX-6"))?)
        }
    };
    let ts = match segment.field(14).filter(|f| !f.is_empty()) {
        Some(f) => time_ms(f.raw_value(), offset).map_err(|e| e.at("OBX-14"))?,
        None => match obr_time {
            Some(Ok(ts)) => *ts,
            Some(Err(e)) => return Err(e.clone()),
            None => {
                return Err(Rejection::new(
                    RejectionKind::BadTime,
                    "neither OBX-14 nor OBR-7 gives the time of the observation",
                ));
            }
        },
    };
    Ok(Some(Found {
        param,
        rank,
        value,
        ts,
    }))
}

/// `-0130` -> -90.
fn offset_minutes(o: hl7_parser::datetime::TimeStampOffset) -> i32 {
    let minutes = i32::from(o.minutes);
    i32::from(o.hours) * 60 + if o.hours < 0 { -minutes } else { minutes }
}

/// An HL7 DTM to epoch ms: at least to the minute; `offset` (minutes) when
/// the value states none.
fn time_ms(raw: &str, offset: i32) -> Result<i64, Rejection> {
    let bad = |why: String| Rejection::new(RejectionKind::BadTime, why);
    let t: TimeStamp = parse_timestamp(raw.trim(), false)
        .map_err(|e| bad(format!("`{raw}` is not an HL7 timestamp: {e}")))?;
    let (Some(month), Some(day), Some(hour), Some(minute)) = (t.month, t.day, t.hour, t.minute)
    else {
        return Err(bad(format!(
            "`{raw}` is not precise to the minute: a reading needs an instant"
        )));
    };
    let date = chrono::NaiveDate::from_ymd_opt(i32::from(t.year), u32::from(month), u32::from(day))
        .ok_or_else(|| bad(format!("`{raw}` is not a calendar date")))?;
    let local = date
        .and_hms_micro_opt(
            u32::from(hour),
            u32::from(minute),
            u32::from(t.second.unwrap_or(0)),
            t.microsecond.unwrap_or(0),
        )
        .ok_or_else(|| bad(format!("`{raw}` is not a time of day")))?;
    let offset = t.offset.map_or(offset, offset_minutes);
    Ok(local.and_utc().timestamp_millis() - i64::from(offset) * 60_000)
}

/// A reading as an `ORU^R01` message (segments separated by `\r`), as a
/// monitor gateway sends it: MDC codes and units, one OBX per parameter,
/// OBX-14 on each but the SpO2 one, which takes OBR-7's time.
pub fn write_oru(reading: &Reading, control_id: u64) -> String {
    let ts = chrono::DateTime::from_timestamp_millis(reading.ts)
        .map(|t| t.format("%Y%m%d%H%M%S%.3f+0000").to_string())
        .unwrap_or_default();
    let sep = Separators::default();
    let id = sep.encode(&reading.patient_id).to_string();
    let mut m = format!(
        "MSH|^~\\&|VITALFLOW_SIM|WARD|VITALFLOW|HOSPITAL|{ts}||ORU^R01^ORU_R01|{control_id}|P|2.6\r\
         PID|1||{id}^^^HOSPITAL^MR\r\
         OBR|1|||85353-1^Vital signs panel^LN|||{ts}\r"
    );
    let mut n = 0;
    let mut obx = |kind: &str, code: &str, value: String, unit: &str, with_time: bool| {
        n += 1;
        let time = if with_time { ts.as_str() } else { "" };
        m.push_str(&format!(
            "OBX|{n}|{kind}|{code}||{value}|{unit}|||||F|||{time}\r"
        ));
    };
    if let Some(v) = reading.heart_rate {
        obx(
            "NM",
            "147842^MDC_ECG_HEART_RATE^MDC",
            v.to_string(),
            "264864^MDC_DIM_BEAT_PER_MIN^MDC",
            true,
        );
    }
    if let Some(v) = reading.spo2 {
        obx(
            "NM",
            "150456^MDC_PULS_OXIM_SAT_O2^MDC",
            v.to_string(),
            "262688^MDC_DIM_PERCENT^MDC",
            false,
        );
    }
    if let Some(v) = reading.systolic_bp {
        obx(
            "NM",
            "150021^MDC_PRESS_BLD_NONINV_SYS^MDC",
            v.to_string(),
            "266016^MDC_DIM_MMHG^MDC",
            true,
        );
    }
    if let Some(v) = reading.diastolic_bp {
        obx(
            "NM",
            "150022^MDC_PRESS_BLD_NONINV_DIA^MDC",
            v.to_string(),
            "266016^MDC_DIM_MMHG^MDC",
            true,
        );
    }
    if let Some(v) = reading.respiratory_rate {
        obx(
            "NM",
            "151562^MDC_RESP_RATE^MDC",
            v.to_string(),
            "264928^MDC_DIM_RESP_PER_MIN^MDC",
            true,
        );
    }
    if let Some(v) = reading.temperature {
        obx(
            "NM",
            "150364^MDC_TEMP_BODY^MDC",
            v.to_string(),
            "268192^MDC_DIM_DEGC^MDC",
            true,
        );
    }
    if let Some(v) = &reading.consciousness {
        obx(
            "CWE",
            "67775-7^Level of responsiveness^LN",
            format!("{v}^{v}^L"),
            "",
            true,
        );
    }
    if let Some(v) = reading.on_oxygen {
        let flow = if v { "2" } else { "0" };
        obx(
            "NM",
            "3151-8^Inhaled oxygen flow rate^LN",
            flow.to_string(),
            "L/min^L/min^UCUM",
            true,
        );
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_one(text: &str) -> Translated {
        read(
            text.as_bytes(),
            &CodeSet::defaults(),
            &Hl7Options::default(),
        )
    }

    #[test]
    fn a_written_reading_reads_back_the_same() {
        let mut r = Reading::new("P|1&2", 1_764_496_800_250);
        r.heart_rate = Some(82);
        r.spo2 = Some(97);
        r.systolic_bp = Some(121);
        r.diastolic_bp = Some(79);
        r.respiratory_rate = Some(16);
        r.temperature = Some(37.123_456_789);
        r.consciousness = Some("V".into());
        r.on_oxygen = Some(true);
        let t = read_one(&write_oru(&r, 7));
        assert!(t.rejections.is_empty(), "{:?}", t.rejections);
        assert_eq!(t.readings, vec![r]);
    }

    #[test]
    fn offsets_escapes_and_ranked_codes() {
        let msg = "MSH|^~\\&|GW|ICU|VF|H|20261130100000+0100||ORU^R01|1|P|2.6\r\
                   PID|1||P\\T\\7^^^H^MR\r\
                   OBR|1|||x|||202611301000\r\
                   OBX|1|NM|149530^MDC_PULS_OXIM_PULS_RATE^MDC||90|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||F\r\
                   OBX|2|NM|147842^MDC_ECG_HEART_RATE^MDC||88|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||F\r\
                   OBX|3|NM|150023^MDC_PRESS_BLD_NONINV_MEAN^MDC||93|266016^MDC_DIM_MMHG^MDC|||||F\r";
        let t = read_one(msg);
        assert!(t.rejections.is_empty(), "{:?}", t.rejections);
        assert_eq!(t.readings.len(), 1);
        assert_eq!(t.readings[0].patient_id, "P&7");
        // The ECG's heart rate wins over the oximeter's pulse rate.
        assert_eq!(t.readings[0].heart_rate, Some(88));
        // 10:00 at MSH-7's +01:00.
        assert_eq!(t.readings[0].ts, 1_796_029_200_000);
    }

    #[test]
    fn malformed_segments_name_the_segment_and_field() {
        let msg = "MSH|^~\\&|GW|ICU|VF|H|20261130100000||ORU^R01|1|P|2.6\r\
                   PID|1||P1\r\
                   OBX|1|NM|147842^MDC_ECG_HEART_RATE^MDC||8o|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||F|||20261130100000\r\
                   OBX|2|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC||97|262688^MDC_DIM_PERCENT^MDC|||||F\r\
                   OBX|3|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC||97|266016^MDC_DIM_MMHG^MDC|||||F|||20261130100000\r\
                   OBX|4|NM|151562^MDC_RESP_RATE^MDC||18|264928^MDC_DIM_RESP_PER_MIN^MDC|||||F|||20261130100000\r";
        let t = read_one(msg);
        let reasons: Vec<&str> = t.rejections.iter().map(|r| r.reason.as_str()).collect();
        assert!(
            reasons[0].starts_with("OBX[1]: OBX-5 `8o` is not a number"),
            "{reasons:?}"
        );
        assert!(
            reasons[1].starts_with("OBX[2]: neither OBX-14 nor OBR-7"),
            "{reasons:?}"
        );
        assert!(
            reasons[2].starts_with("OBX[3]: OBX-6: unit `266016`"),
            "{reasons:?}"
        );
        assert_eq!(t.readings.len(), 1);
        assert_eq!(t.readings[0].respiratory_rate, Some(18));
        let broken = read_one("MSH|^~\\&|A|B|C|D|20261130||ORU^R01|1|P|2.5\rPID|1||P1\rob x|1\r");
        assert!(
            broken.rejections[0].reason.contains("segment 3 (`ob x|1`)"),
            "{:?}",
            broken.rejections
        );
        let no_encoding = read_one("MSH|^|A\rPID|1||P1\r");
        assert!(
            no_encoding.rejections[0].reason.contains("MSH-2"),
            "{:?}",
            no_encoding.rejections
        );
        let adt = read_one("MSH|^~\\&|A|B|C|D|20261130||ADT^A01|1|P|2.5\rPID|1||P1\r");
        assert!(
            adt.rejections[0].reason.contains("MSH-9 is `ADT^A01`"),
            "{:?}",
            adt.rejections
        );
    }
}
