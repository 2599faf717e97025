//! Which codes mean which vital sign.
//!
//! Matching is by code system and code, never by display text. FHIR names
//! systems by URI (`http://loinc.org`, `urn:iso:std:iso:11073:10101`); HL7 v2
//! by the coding-system component of a CWE (`LN`, `MDC`): both are accepted
//! for each. IEEE 11073 codes are the context-free numbers (the partition
//! times 2^16 plus the term code, e.g. `150456`); the `0002-4bb8`
//! partition-term spelling some gateways send is read as the same code.
//!
//! The defaults and where they come from:
//! - LOINC, from the FHIR R4 vital-signs profiles: heart rate `8867-4`, SpO2
//!   `59408-5` / `2708-6`, respiratory rate `9279-1`, body temperature
//!   `8310-5`, systolic `8480-6` and diastolic `8462-4` inside the blood
//!   pressure panel `85354-9`, the vital-signs panel `85353-1`; inhaled
//!   oxygen flow rate `3151-8` and concentration `3150-0` (the components
//!   the US Core pulse-oximetry profile adds to SpO2).
//! - Level of consciousness: LOINC `67775-7` (level of responsiveness, the
//!   LOINC term for AVPU); its value is a letter of ACVPU, as `valueString`
//!   or as the code of `valueCodeableConcept`. Hospitals that code it
//!   otherwise (SNOMED CT in the UK) list their codes under `codes:`.
//! - IEEE 11073-10101 (MDC), the codes monitor gateways send in `OBX-3`:
//!   `MDC_ECG_HEART_RATE` 147842, `MDC_PULS_OXIM_PULS_RATE` 149530,
//!   `MDC_PULS_RATE_NON_INV` 149546, `MDC_PULS_OXIM_SAT_O2` 150456,
//!   `MDC_RESP_RATE` 151562, `MDC_AWAY_RESP_RATE` 151570,
//!   `MDC_PRESS_BLD_NONINV_SYS` 150021, `MDC_PRESS_BLD_NONINV_DIA` 150022,
//!   `MDC_TEMP_BODY` 150364 and its sites (oral 150380, axillary 150384,
//!   rectal 150388, tympanic 150392).
//! - Supplemental oxygen: no default boolean code; it is derived from the
//!   inhaled oxygen flow rate (> 0 L/min) or concentration (> 21 %).

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

use super::error::SettingsError;

/// The parameters a reading has, and the two oxygen measures that set
/// `on_oxygen`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Param {
    HeartRate,
    Spo2,
    SystolicBp,
    DiastolicBp,
    RespiratoryRate,
    Temperature,
    Consciousness,
    OnOxygen,
    OxygenFlow,
    OxygenConcentration,
}

impl Param {
    pub const ALL: [Param; 10] = [
        Param::HeartRate,
        Param::Spo2,
        Param::SystolicBp,
        Param::DiastolicBp,
        Param::RespiratoryRate,
        Param::Temperature,
        Param::Consciousness,
        Param::OnOxygen,
        Param::OxygenFlow,
        Param::OxygenConcentration,
    ];

    /// The YAML name (`heart_rate`), which is also the reading's column for
    /// all but the two oxygen measures.
    pub fn name(self) -> &'static str {
        match self {
            Param::HeartRate => "heart_rate",
            Param::Spo2 => "spo2",
            Param::SystolicBp => "systolic_bp",
            Param::DiastolicBp => "diastolic_bp",
            Param::RespiratoryRate => "respiratory_rate",
            Param::Temperature => "temperature",
            Param::Consciousness => "consciousness",
            Param::OnOxygen => "on_oxygen",
            Param::OxygenFlow => "oxygen_flow",
            Param::OxygenConcentration => "oxygen_concentration",
        }
    }
}

/// What a code names: a parameter, or a panel whose components are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meaning {
    Param(Param),
    Panel,
}

pub const LOINC: &str = "http://loinc.org";
pub const MDC: &str = "urn:iso:std:iso:11073:10101";
pub const UCUM: &str = "http://unitsofmeasure.org";

/// A code system's canonical URI from either spelling (`LN` -> LOINC).
pub fn canonical_system(system: &str) -> &str {
    match system {
        "LN" | "LOINC" | "http://loinc.org/" => LOINC,
        "MDC" | "MDIL" | "IEEE11073" | "urn:iso:std:iso:11073:10101:" => MDC,
        "SCT" | "SNOMED" | "SNM" => "http://snomed.info/sct",
        other => other,
    }
}

/// A code as the same string however it was spelled (MDC `0002-4bb8` ->
/// `150456`).
fn canonical_code<'a>(system: &str, code: &'a str) -> std::borrow::Cow<'a, str> {
    if system == MDC
        && let Some((partition, term)) = code.split_once('-')
        && let (Ok(p), Ok(t)) = (
            u32::from_str_radix(partition, 16),
            u32::from_str_radix(term, 16),
        )
    {
        return ((p << 16) + t).to_string().into();
    }
    code.into()
}

/// `codes:` in the YAML: per parameter, `system|code` strings that replace
/// the defaults for it; `consciousness_values:` maps answer codes to ACVPU
/// letters.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VitalCodes {
    #[serde(default)]
    pub codes: BTreeMap<Param, Vec<String>>,
    #[serde(default)]
    pub consciousness_values: BTreeMap<String, String>,
}

impl VitalCodes {
    /// The lookup table these settings give.
    pub fn build(&self) -> Result<CodeSet, SettingsError> {
        let mut set = CodeSet::defaults();
        for (param, codes) in &self.codes {
            for codes in set.by_code.values_mut() {
                codes.retain(|_, (m, _)| *m != Meaning::Param(*param));
            }
            for entry in codes {
                let (system, code) = entry.split_once('|').ok_or_else(|| {
                    SettingsError(format!(
                        "codes.{}: `{entry}` is not `system|code` (e.g. `http://loinc.org|8867-4`)",
                        param.name()
                    ))
                })?;
                set.insert(system, code, Meaning::Param(*param));
            }
        }
        for (code, letter) in &self.consciousness_values {
            if !matches!(letter.as_str(), "A" | "C" | "V" | "P" | "U") {
                return Err(SettingsError(format!(
                    "consciousness_values.{code}: `{letter}` is not one of A, C, V, P, U"
                )));
            }
            set.consciousness
                .insert(code.clone(), letter.chars().next().unwrap_or('A'));
        }
        Ok(set)
    }
}

/// Code -> meaning, built once per source.
#[derive(Debug, Clone)]
pub struct CodeSet {
    /// System -> code -> meaning, with its rank: when one parameter comes
    /// under two codes in a message, the lower rank (listed first) wins.
    /// Two levels, so a lookup by `&str` allocates nothing.
    by_code: HashMap<String, HashMap<String, (Meaning, u8)>>,
    /// Answer codes (`system|code` or a bare code) -> ACVPU letter.
    consciousness: HashMap<String, char>,
}

impl CodeSet {
    pub fn defaults() -> Self {
        let mut set = CodeSet {
            by_code: HashMap::new(),
            consciousness: HashMap::new(),
        };
        use Param::*;
        let loinc: [(&str, Meaning); 13] = [
            ("8867-4", Meaning::Param(HeartRate)),
            ("59408-5", Meaning::Param(Spo2)),
            ("2708-6", Meaning::Param(Spo2)),
            ("9279-1", Meaning::Param(RespiratoryRate)),
            ("8310-5", Meaning::Param(Temperature)),
            ("8480-6", Meaning::Param(SystolicBp)),
            ("8462-4", Meaning::Param(DiastolicBp)),
            ("67775-7", Meaning::Param(Consciousness)),
            ("3151-8", Meaning::Param(OxygenFlow)),
            ("3150-0", Meaning::Param(OxygenConcentration)),
            ("85354-9", Meaning::Panel),
            ("85353-1", Meaning::Panel),
            // The blood pressure panel's older LOINC, still sent.
            ("55284-4", Meaning::Panel),
        ];
        for (code, meaning) in loinc {
            set.insert(LOINC, code, meaning);
        }
        let mdc: [(&str, Param); 13] = [
            ("147842", HeartRate),
            ("149530", HeartRate),
            ("149546", HeartRate),
            ("150456", Spo2),
            ("151562", RespiratoryRate),
            ("151570", RespiratoryRate),
            ("150021", SystolicBp),
            ("150022", DiastolicBp),
            ("150364", Temperature),
            ("150380", Temperature),
            ("150384", Temperature),
            ("150388", Temperature),
            ("150392", Temperature),
        ];
        for (code, param) in mdc {
            set.insert(MDC, code, Meaning::Param(param));
        }
        set
    }

    fn insert(&mut self, system: &str, code: &str, meaning: Meaning) {
        let system = canonical_system(system).to_string();
        let code = canonical_code(&system, code).into_owned();
        let known: usize = self.by_code.values().map(HashMap::len).sum();
        let rank = u8::try_from(known).unwrap_or(u8::MAX);
        self.by_code
            .entry(system)
            .or_default()
            .insert(code, (meaning, rank));
    }

    /// What `system|code` names, if anything.
    pub fn meaning(&self, system: &str, code: &str) -> Option<Meaning> {
        self.ranked(system, code).map(|(meaning, _)| meaning)
    }

    /// [`Self::meaning`] with the code's rank.
    pub fn ranked(&self, system: &str, code: &str) -> Option<(Meaning, u8)> {
        let system = canonical_system(system);
        let code = canonical_code(system, code);
        self.by_code.get(system)?.get(code.as_ref()).copied()
    }

    /// The ACVPU letter an answer means: a configured `system|code` or bare
    /// code, else the letter itself.
    pub fn consciousness(&self, system: Option<&str>, code: &str) -> Option<char> {
        if let Some(system) = system
            && let Some(letter) = self
                .consciousness
                .get(&format!("{}|{code}", canonical_system(system)))
        {
            return Some(*letter);
        }
        if let Some(letter) = self.consciousness.get(code) {
            return Some(*letter);
        }
        match code.trim() {
            "A" | "C" | "V" | "P" | "U" => code.trim().chars().next(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_by_system_and_code_in_either_spelling() {
        let set = CodeSet::defaults();
        let hr = Some(Meaning::Param(Param::HeartRate));
        assert_eq!(set.meaning(LOINC, "8867-4"), hr);
        assert_eq!(set.meaning("LN", "8867-4"), hr);
        // The same code in another system is not a heart rate.
        assert_eq!(set.meaning("http://snomed.info/sct", "8867-4"), None);
        let spo2 = Some(Meaning::Param(Param::Spo2));
        assert_eq!(set.meaning("MDC", "150456"), spo2);
        assert_eq!(set.meaning(MDC, "0002-4bb8"), spo2);
        assert_eq!(set.meaning(LOINC, "85354-9"), Some(Meaning::Panel));
    }

    #[test]
    fn configured_codes_replace_the_defaults_of_their_parameter() {
        let codes = VitalCodes {
            codes: BTreeMap::from([(
                Param::Consciousness,
                vec!["http://snomed.info/sct|1104441000000107".to_string()],
            )]),
            consciousness_values: BTreeMap::from([(
                "http://snomed.info/sct|248234008".to_string(),
                "C".to_string(),
            )]),
        };
        let set = codes.build().unwrap();
        assert_eq!(set.meaning(LOINC, "67775-7"), None);
        assert_eq!(
            set.meaning("SCT", "1104441000000107"),
            Some(Meaning::Param(Param::Consciousness))
        );
        assert_eq!(set.consciousness(Some("SCT"), "248234008"), Some('C'));
        assert_eq!(set.consciousness(None, "V"), Some('V'));
        assert_eq!(set.consciousness(None, "confused"), None);
        let bad = VitalCodes {
            codes: BTreeMap::from([(Param::HeartRate, vec!["8867-4".to_string()])]),
            ..Default::default()
        };
        assert!(bad.build().unwrap_err().0.contains("codes.heart_rate"));
    }
}
