//! Readings, NEWS2 scores and alerts as FHIR R4 JSON resources.
//!
//! Written as JSON values and checked, in the tests, to read back through
//! `fhir-model`'s types; the ids are derived from patient, time and
//! parameter, so a resource sent twice is the same resource (a server that
//! upserts by id keeps one).

use serde_json::{Value as Json, json};

use super::codes::{LOINC, UCUM};
use super::reading::Reading;

/// The SNOMED CT code of the NEWS2 total score (the UK Core NEWS2
/// observations example uses it): the default of `score_code`.
pub const NEWS2_SNOMED: &str = "1104051000000101";
pub const SNOMED: &str = "http://snomed.info/sct";

fn instant(ts: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ts)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

/// A resource id from free text: FHIR ids are `[A-Za-z0-9\-\.]{1,64}`.
pub fn resource_id(parts: &[&str]) -> String {
    let mut id: String = parts
        .join("-")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    id.truncate(64);
    id
}

fn quantity(value: f64, code: &str) -> Json {
    json!({"value": value, "unit": code, "system": UCUM, "code": code})
}

fn vital(reading: &Reading, key: &str, code: &str, display: &str) -> serde_json::Map<String, Json> {
    let ts = reading.ts.to_string();
    let mut obs = serde_json::Map::new();
    obs.insert("resourceType".into(), json!("Observation"));
    obs.insert(
        "id".into(),
        json!(resource_id(&[&reading.patient_id, &ts, key])),
    );
    obs.insert("status".into(), json!("final"));
    obs.insert(
        "category".into(),
        json!([{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "vital-signs", "display": "Vital Signs"}]}]),
    );
    obs.insert(
        "code".into(),
        json!({"coding": [{"system": LOINC, "code": code, "display": display}]}),
    );
    obs.insert(
        "subject".into(),
        json!({"reference": format!("Patient/{}", reading.patient_id)}),
    );
    obs.insert("effectiveDateTime".into(), json!(instant(reading.ts)));
    obs
}

/// A reading as a `transaction` Bundle of vital-sign Observations: heart
/// rate, SpO2 (with the inhaled oxygen flow as a component, as the US Core
/// pulse-oximetry profile does), respiratory rate, body temperature, the
/// blood pressure panel with its two components, and the level of
/// consciousness.
pub fn reading_bundle(reading: &Reading) -> Json {
    let mut entries = Vec::new();
    let mut push = |obs: serde_json::Map<String, Json>| {
        entries.push(json!({"resource": obs, "request": {"method": "POST", "url": "Observation"}}));
    };
    if let Some(v) = reading.heart_rate {
        let mut o = vital(reading, "hr", "8867-4", "Heart rate");
        o.insert("valueQuantity".into(), quantity(f64::from(v), "/min"));
        push(o);
    }
    if reading.spo2.is_some() || reading.on_oxygen.is_some() {
        let mut o = vital(
            reading,
            "spo2",
            "59408-5",
            "Oxygen saturation in Arterial blood by Pulse oximetry",
        );
        match reading.spo2 {
            Some(v) => {
                o.insert("valueQuantity".into(), quantity(f64::from(v), "%"));
            }
            None => {
                o.insert("dataAbsentReason".into(), json!({"text": "not measured"}));
            }
        }
        if let Some(on) = reading.on_oxygen {
            let flow = if on { 2.0 } else { 0.0 };
            o.insert(
                "component".into(),
                json!([{"code": {"coding": [{"system": LOINC, "code": "3151-8", "display": "Inhaled oxygen flow rate"}]},
                        "valueQuantity": quantity(flow, "L/min")}]),
            );
        }
        push(o);
    }
    if let Some(v) = reading.respiratory_rate {
        let mut o = vital(reading, "rr", "9279-1", "Respiratory rate");
        o.insert("valueQuantity".into(), quantity(f64::from(v), "/min"));
        push(o);
    }
    if let Some(v) = reading.temperature {
        let mut o = vital(reading, "temp", "8310-5", "Body temperature");
        o.insert("valueQuantity".into(), quantity(v, "Cel"));
        push(o);
    }
    if reading.systolic_bp.is_some() || reading.diastolic_bp.is_some() {
        let mut o = vital(
            reading,
            "bp",
            "85354-9",
            "Blood pressure panel with all children optional",
        );
        let mut components = Vec::new();
        for (value, code, display) in [
            (reading.systolic_bp, "8480-6", "Systolic blood pressure"),
            (reading.diastolic_bp, "8462-4", "Diastolic blood pressure"),
        ] {
            if let Some(v) = value {
                components.push(json!({"code": {"coding": [{"system": LOINC, "code": code, "display": display}]},
                                       "valueQuantity": quantity(f64::from(v), "mm[Hg]")}));
            }
        }
        o.insert("component".into(), Json::Array(components));
        push(o);
    }
    if let Some(level) = &reading.consciousness {
        let mut o = vital(reading, "acvpu", "67775-7", "Level of responsiveness");
        o.insert("valueString".into(), json!(level));
        push(o);
    }
    json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
}

/// Where a NEWS2 score came from and how it is coded.
#[derive(Debug, Clone)]
pub struct ScoreCoding {
    pub system: String,
    pub code: String,
    pub display: String,
}

impl Default for ScoreCoding {
    fn default() -> Self {
        ScoreCoding {
            system: SNOMED.into(),
            code: NEWS2_SNOMED.into(),
            display:
                "Royal College of Physicians NEWS2 (National Early Warning Score 2) total score"
                    .into(),
        }
    }
}

/// A NEWS2 total score as an Observation (`survey` category, the score as
/// a `{score}` quantity, the risk level as its interpretation text).
pub fn news2_observation(
    patient_id: &str,
    ts: i64,
    score: i64,
    level: Option<&str>,
    coding: &ScoreCoding,
) -> Json {
    let mut obs = json!({
        "resourceType": "Observation",
        "id": resource_id(&[patient_id, &ts.to_string(), "news2"]),
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "survey", "display": "Survey"}]}],
        "code": {"coding": [{"system": coding.system, "code": coding.code, "display": coding.display}]},
        "subject": {"reference": format!("Patient/{patient_id}")},
        "effectiveDateTime": instant(ts),
        "valueQuantity": {"value": score, "system": UCUM, "code": "{score}"},
    });
    if let Some(level) = level {
        obs["interpretation"] = json!([{"text": format!("NEWS2 {level} risk")}]);
    }
    obs
}

/// A NEWS2 alert as a `Flag` on the patient, active from the reading's time.
pub fn alert_flag(patient_id: &str, ts: i64, score: i64, level: &str) -> Json {
    json!({
        "resourceType": "Flag",
        "id": resource_id(&[patient_id, &ts.to_string(), "news2-alert"]),
        "status": "active",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/flag-category", "code": "clinical", "display": "Clinical"}]}],
        "code": {"text": format!("NEWS2 {level}: score {score}")},
        "subject": {"reference": format!("Patient/{patient_id}")},
        "period": {"start": instant(ts)},
    })
}

/// One issue of an `OperationOutcome`.
#[derive(Debug, Clone)]
pub struct Issue {
    /// `error`, `warning` or `information`.
    pub severity: &'static str,
    /// An issue type code (`structure`, `code-invalid`, `value`, ...).
    pub code: &'static str,
    pub diagnostics: String,
    /// Where, as a FHIRPath (`Bundle.entry[2]`).
    pub expression: Option<String>,
}

/// The FHIR issue type of a rejection class (`unknown_code` ->
/// `code-invalid`), for the class strings of dead letters and rejections.
pub fn issue_code(kind: &str) -> &'static str {
    match kind {
        "invalid_resource" | "invalid_json" | "not_an_object" => "structure",
        "unknown_code" => "code-invalid",
        "missing_field" => "required",
        "not_a_result" => "business-rule",
        "conflict" => "conflict",
        _ => "value",
    }
}

/// An `OperationOutcome` of these issues.
pub fn operation_outcome(issues: &[Issue]) -> Json {
    let issues: Vec<Json> = issues
        .iter()
        .map(|i| {
            let mut issue =
                json!({"severity": i.severity, "code": i.code, "diagnostics": i.diagnostics});
            if let Some(expression) = &i.expression {
                issue["expression"] = json!([expression]);
            }
            issue
        })
        .collect();
    json!({"resourceType": "OperationOutcome", "issue": issues})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interop::codes::CodeSet;
    use fhir_model::r4b::resources::{Flag, Observation};

    fn full() -> Reading {
        Reading {
            patient_id: "P00042".into(),
            ts: 1_764_496_800_250,
            heart_rate: Some(82),
            spo2: Some(95),
            systolic_bp: Some(118),
            diastolic_bp: Some(77),
            respiratory_rate: Some(19),
            temperature: Some(37.812_345),
            consciousness: Some("C".into()),
            on_oxygen: Some(true),
        }
    }

    #[test]
    fn a_reading_bundle_reads_back_as_the_same_reading() {
        let bundle = serde_json::to_vec(&reading_bundle(&full())).unwrap();
        let t = crate::interop::fhir_in::read(&bundle, &CodeSet::defaults());
        assert!(t.rejections.is_empty(), "{:?}", t.rejections);
        assert_eq!(t.readings, vec![full()]);
    }

    #[test]
    fn scores_and_alerts_are_valid_fhir_resources() {
        let obs = news2_observation("P1", 0, 7, Some("high"), &ScoreCoding::default());
        let typed: Observation = serde_json::from_value(obs).unwrap();
        assert_eq!(
            typed.code.coding[0].as_ref().unwrap().code.as_deref(),
            Some(NEWS2_SNOMED)
        );
        let flag: Flag = serde_json::from_value(alert_flag("P1", 0, 7, "high")).unwrap();
        assert_eq!(flag.subject.reference.as_deref(), Some("Patient/P1"));
        let outcome = operation_outcome(&[Issue {
            severity: "error",
            code: issue_code("unknown_code"),
            diagnostics: "entry[4] ...".into(),
            expression: Some("Bundle.entry[4]".into()),
        }]);
        let typed: fhir_model::r4b::resources::OperationOutcome =
            serde_json::from_value(outcome).unwrap();
        assert_eq!(typed.issue.len(), 1);
    }
}
