//! Units to the pipeline's units: per minute for rates, percent for SpO2 and
//! oxygen concentration, mm Hg for blood pressure, degrees Celsius for
//! temperature, litres per minute for oxygen flow.
//!
//! Units are read as UCUM codes (`/min`, `{beats}/min`, `%`, `mm[Hg]`, `kPa`,
//! `Cel`, `[degF]`, `K`, `L/min`) or IEEE 11073 MDC dimensions (by number,
//! e.g. `264864`, or by name, `MDC_DIM_BEAT_PER_MIN`). A unit of another
//! system, or one that does not measure the parameter (SpO2 in mm Hg), is
//! refused.

use super::codes::{MDC, Param, UCUM, canonical_system};
use super::error::{Rejection, RejectionKind};

/// A unit as a message states it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unit<'a> {
    /// The code system (`http://unitsofmeasure.org`, `UCUM`, `MDC`), if
    /// stated.
    pub system: Option<&'a str>,
    /// The unit's code.
    pub code: Option<&'a str>,
    /// The human-readable unit (HL7 v2 CWE text; read only for MDC names).
    pub text: Option<&'a str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dimension {
    PerMin,
    Percent,
    MmHg,
    KPa,
    Celsius,
    Fahrenheit,
    Kelvin,
    LitrePerMin,
}

fn ucum(code: &str) -> Option<Dimension> {
    use Dimension::*;
    Some(match code {
        "/min" | "{beats}/min" | "{beat}/min" | "{breaths}/min" | "{breath}/min" | "{resp}/min"
        | "1/min" => PerMin,
        "%" => Percent,
        "mm[Hg]" => MmHg,
        "kPa" => KPa,
        "Cel" => Celsius,
        "[degF]" => Fahrenheit,
        "K" => Kelvin,
        "L/min" | "l/min" => LitrePerMin,
        _ => return None,
    })
}

fn mdc(code: &str) -> Option<Dimension> {
    use Dimension::*;
    Some(match code {
        "264864"
        | "MDC_DIM_BEAT_PER_MIN"
        | "264928"
        | "MDC_DIM_RESP_PER_MIN"
        | "264352"
        | "MDC_DIM_PER_MIN" => PerMin,
        "262688" | "MDC_DIM_PERCENT" => Percent,
        "266016" | "MDC_DIM_MMHG" => MmHg,
        "268192" | "MDC_DIM_DEGC" => Celsius,
        "266560" | "MDC_DIM_FAHR" => Fahrenheit,
        "265314" | "MDC_DIM_L_PER_MIN" => LitrePerMin,
        _ => return None,
    })
}

impl Unit<'_> {
    fn describe(&self) -> String {
        let code = self.code.or(self.text).unwrap_or("");
        match self.system {
            Some(system) => format!("`{code}` ({system})"),
            None => format!("`{code}`"),
        }
    }

    fn dimension(&self) -> Result<Dimension, Rejection> {
        let bad = |why: String| Rejection::new(RejectionKind::BadUnit, why);
        let code = self.code.map(str::trim).filter(|c| !c.is_empty());
        let system = self
            .system
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(canonical_system);
        match system {
            Some(UCUM) | Some("UCUM") | None => {
                let Some(code) = code else {
                    return Err(bad("the quantity has no unit code".into()));
                };
                ucum(code)
                    .or_else(|| if system.is_none() { mdc(code) } else { None })
                    .ok_or_else(|| {
                        bad(format!(
                            "unit {} is not a unit vitalflow reads",
                            self.describe()
                        ))
                    })
            }
            Some(MDC) => code
                .and_then(mdc)
                .or_else(|| self.text.and_then(mdc))
                .ok_or_else(|| {
                    bad(format!(
                        "unit {} is not a unit vitalflow reads",
                        self.describe()
                    ))
                }),
            Some(other) => Err(bad(format!(
                "unit {} is not UCUM or IEEE 11073 (system `{other}`)",
                self.describe()
            ))),
        }
    }
}

/// `value` in `unit` as the parameter's pipeline unit.
pub fn convert(param: Param, value: f64, unit: &Unit<'_>) -> Result<f64, Rejection> {
    use Dimension::*;
    if !value.is_finite() {
        return Err(Rejection::new(
            RejectionKind::BadValue,
            format!("{} value {value} is not a number", param.name()),
        ));
    }
    let dimension = unit.dimension()?;
    let converted = match (param, dimension) {
        (Param::HeartRate | Param::RespiratoryRate, PerMin) => value,
        (Param::Spo2 | Param::OxygenConcentration, Percent) => value,
        (Param::SystolicBp | Param::DiastolicBp, MmHg) => value,
        // 1 kPa = 1000 / 133.322387415 mm Hg.
        (Param::SystolicBp | Param::DiastolicBp, KPa) => value * 1000.0 / 133.322_387_415,
        (Param::Temperature, Celsius) => value,
        (Param::Temperature, Fahrenheit) => (value - 32.0) * 5.0 / 9.0,
        (Param::Temperature, Kelvin) => value - 273.15,
        (Param::OxygenFlow, LitrePerMin) => value,
        _ => {
            return Err(Rejection::new(
                RejectionKind::BadUnit,
                format!("unit {} does not measure {}", unit.describe(), param.name()),
            ));
        }
    };
    Ok(converted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ucum_unit(code: &str) -> Unit<'_> {
        Unit {
            system: Some(UCUM),
            code: Some(code),
            text: None,
        }
    }

    #[test]
    fn ucum_and_mdc_units_convert_to_the_pipeline_units() {
        assert_eq!(
            convert(Param::HeartRate, 82.0, &ucum_unit("/min")).unwrap(),
            82.0
        );
        let f = convert(Param::Temperature, 98.6, &ucum_unit("[degF]")).unwrap();
        assert!((f - 37.0).abs() < 1e-9, "{f}");
        let k = convert(Param::Temperature, 310.15, &ucum_unit("K")).unwrap();
        assert!((k - 37.0).abs() < 1e-9, "{k}");
        let mdc_percent = Unit {
            system: Some("MDC"),
            code: Some("262688"),
            text: Some("MDC_DIM_PERCENT"),
        };
        assert_eq!(convert(Param::Spo2, 97.0, &mdc_percent).unwrap(), 97.0);
        let by_name = Unit {
            system: Some("MDC"),
            code: Some(""),
            text: Some("MDC_DIM_MMHG"),
        };
        assert_eq!(convert(Param::SystolicBp, 120.0, &by_name).unwrap(), 120.0);
        let kpa = convert(Param::SystolicBp, 16.0, &ucum_unit("kPa")).unwrap();
        assert!((kpa - 120.0).abs() < 0.01, "{kpa}");
    }

    #[test]
    fn impossible_units_are_refused_with_the_unit_named() {
        let e = convert(Param::Spo2, 97.0, &ucum_unit("mm[Hg]")).unwrap_err();
        assert_eq!(e.kind, RejectionKind::BadUnit);
        assert!(
            e.reason.contains("`mm[Hg]`") && e.reason.contains("spo2"),
            "{}",
            e.reason
        );
        let e = convert(Param::HeartRate, 80.0, &ucum_unit("beats")).unwrap_err();
        assert!(
            e.reason.contains("not a unit vitalflow reads"),
            "{}",
            e.reason
        );
        let other = Unit {
            system: Some("http://example.org/units"),
            code: Some("/min"),
            text: None,
        };
        assert!(
            convert(Param::HeartRate, 80.0, &other)
                .unwrap_err()
                .reason
                .contains("not UCUM")
        );
        let none = Unit::default();
        assert!(
            convert(Param::HeartRate, 80.0, &none)
                .unwrap_err()
                .reason
                .contains("no unit code")
        );
        let nan = convert(Param::HeartRate, f64::NAN, &ucum_unit("/min")).unwrap_err();
        assert_eq!(nan.kind, RejectionKind::BadValue);
    }
}
