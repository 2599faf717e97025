//! NEWS2 scoring table (Royal College of Physicians, 2017), SpO2 **Scale 1** only.
//!
//! Plain library with no Arroyo or arrow dependency: the three UDF plugin crates
//! (`news2`, `news2_missing`, `news2_max_param`) call into it, and its unit tests pin every
//! band edge.
//!
//! | parameter          | 3         | 2         | 1              | 0         | 1         | 2          | 3     |
//! |--------------------|-----------|-----------|----------------|-----------|-----------|------------|-------|
//! | respiration rate   | <=8       |           | 9-11           | 12-20     |           | 21-24      | >=25  |
//! | SpO2 scale 1 (%)   | <=91      | 92-93     | 94-95          | >=96      |           |            |       |
//! | air or oxygen      |           | oxygen    |                | air       |           |            |       |
//! | systolic BP        | <=90      | 91-100    | 101-110        | 111-219   |           |            | >=220 |
//! | pulse              | <=40      |           | 41-50          | 51-90     | 91-110    | 111-130    | >=131 |
//! | consciousness      |           |           |                | Alert     |           |            | C/V/P/U |
//! | temperature (°C)   | <=35.0    |           | 35.1-36.0      | 36.1-38.0 | 38.1-39.0 | >=39.1     |       |
//!
//! Decisions (documented in `udfs/README.md` too):
//! * A missing (`None`) parameter contributes 0 to the total and is counted by
//!   [`Observations::missing_count`].
//! * Consciousness is read after trimming, case-insensitively: `"A"` or `"ALERT"` scores 0;
//!   an empty/blank string counts as **missing**; **any other value scores 3** (every non-Alert
//!   category of ACVPU — new Confusion, Voice, Pain, Unresponsive — scores 3, so an unknown code
//!   is treated as "not alert", erring on the side of escalation).
//! * A temperature of NaN counts as missing. Other values (including negative or absurd ones)
//!   are not range-checked: they fall into the band their value lands in.
//! * Temperatures use the thresholds `t <= 35.0`, `t <= 36.0`, `t <= 38.0`, `t <= 39.0`, else 2,
//!   so non-one-decimal readings such as 36.05 land in the band above the lower edge.

/// Number of NEWS2 parameters.
pub const PARAMETERS: usize = 7;

/// Respiration rate (breaths/min) score.
pub fn respiration_rate_score(rr: i64) -> u8 {
    match rr {
        i64::MIN..=8 => 3,
        9..=11 => 1,
        12..=20 => 0,
        21..=24 => 2,
        _ => 3,
    }
}

/// SpO2 (%) score on Scale 1 (patients without hypercapnic respiratory failure).
pub fn spo2_scale1_score(spo2: i64) -> u8 {
    match spo2 {
        i64::MIN..=91 => 3,
        92..=93 => 2,
        94..=95 => 1,
        _ => 0,
    }
}

/// Air or supplemental oxygen: oxygen scores 2, air 0.
pub fn air_or_oxygen_score(on_oxygen: bool) -> u8 {
    if on_oxygen {
        2
    } else {
        0
    }
}

/// Systolic blood pressure (mmHg) score.
pub fn systolic_bp_score(sbp: i64) -> u8 {
    match sbp {
        i64::MIN..=90 => 3,
        91..=100 => 2,
        101..=110 => 1,
        111..=219 => 0,
        _ => 3,
    }
}

/// Pulse (beats/min) score.
pub fn pulse_score(hr: i64) -> u8 {
    match hr {
        i64::MIN..=40 => 3,
        41..=50 => 1,
        51..=90 => 0,
        91..=110 => 1,
        111..=130 => 2,
        _ => 3,
    }
}

/// Consciousness (ACVPU) score; `None` when the value is blank (treated as missing).
pub fn consciousness_score(level: &str) -> Option<u8> {
    let level = level.trim();
    if level.is_empty() {
        None
    } else if level.eq_ignore_ascii_case("A") || level.eq_ignore_ascii_case("ALERT") {
        Some(0)
    } else {
        Some(3)
    }
}

/// Temperature (°C) score; `None` for NaN (treated as missing).
pub fn temperature_score(t: f64) -> Option<u8> {
    if t.is_nan() {
        None
    } else if t <= 35.0 {
        Some(3)
    } else if t <= 36.0 {
        Some(1)
    } else if t <= 38.0 {
        Some(0)
    } else if t <= 39.0 {
        Some(1)
    } else {
        Some(2)
    }
}

/// One set of observations, each parameter optional (SQL NULL = `None`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Observations<'a> {
    pub respiratory_rate: Option<i64>,
    pub spo2: Option<i64>,
    pub on_oxygen: Option<bool>,
    pub systolic_bp: Option<i64>,
    pub heart_rate: Option<i64>,
    pub consciousness: Option<&'a str>,
    pub temperature: Option<f64>,
}

impl<'a> Observations<'a> {
    /// Per-parameter scores in the order of the struct fields; `None` = missing.
    pub fn parameter_scores(&self) -> [Option<u8>; PARAMETERS] {
        [
            self.respiratory_rate.map(respiration_rate_score),
            self.spo2.map(spo2_scale1_score),
            self.on_oxygen.map(air_or_oxygen_score),
            self.systolic_bp.map(systolic_bp_score),
            self.heart_rate.map(pulse_score),
            self.consciousness.and_then(consciousness_score),
            self.temperature.and_then(temperature_score),
        ]
    }

    /// Aggregate NEWS2 score over the parameters present (missing contribute 0); 0..=20.
    pub fn total_score(&self) -> i64 {
        self.parameter_scores()
            .iter()
            .map(|s| s.unwrap_or(0) as i64)
            .sum()
    }

    /// Number of missing parameters (0..=7).
    pub fn missing_count(&self) -> i64 {
        self.parameter_scores()
            .iter()
            .filter(|s| s.is_none())
            .count() as i64
    }

    /// Highest single-parameter score (0..=3); 0 when every parameter is missing.
    pub fn max_parameter_score(&self) -> i64 {
        self.parameter_scores()
            .iter()
            .map(|s| s.unwrap_or(0) as i64)
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check<T: Copy + std::fmt::Debug>(f: impl Fn(T) -> u8, cases: &[(T, u8)]) {
        for &(v, want) in cases {
            assert_eq!(f(v), want, "value {v:?}");
        }
    }

    #[test]
    fn respiration_rate_band_edges() {
        check(
            respiration_rate_score,
            &[
                (i64::MIN, 3),
                (0, 3),
                (8, 3),
                (9, 1),
                (11, 1),
                (12, 0),
                (20, 0),
                (21, 2),
                (24, 2),
                (25, 3),
                (60, 3),
                (i64::MAX, 3),
            ],
        );
    }

    #[test]
    fn spo2_scale1_band_edges() {
        check(
            spo2_scale1_score,
            &[
                (0, 3),
                (91, 3),
                (92, 2),
                (93, 2),
                (94, 1),
                (95, 1),
                (96, 0),
                (100, 0),
                (i64::MIN, 3),
            ],
        );
    }

    #[test]
    fn air_or_oxygen() {
        assert_eq!(air_or_oxygen_score(true), 2);
        assert_eq!(air_or_oxygen_score(false), 0);
    }

    #[test]
    fn systolic_bp_band_edges() {
        check(
            systolic_bp_score,
            &[
                (0, 3),
                (90, 3),
                (91, 2),
                (100, 2),
                (101, 1),
                (110, 1),
                (111, 0),
                (219, 0),
                (220, 3),
                (300, 3),
            ],
        );
    }

    #[test]
    fn pulse_band_edges() {
        check(
            pulse_score,
            &[
                (0, 3),
                (40, 3),
                (41, 1),
                (50, 1),
                (51, 0),
                (90, 0),
                (91, 1),
                (110, 1),
                (111, 2),
                (130, 2),
                (131, 3),
                (250, 3),
            ],
        );
    }

    #[test]
    fn temperature_band_edges() {
        let cases = [
            (30.0, Some(3)),
            (35.0, Some(3)),
            (35.1, Some(1)),
            (36.0, Some(1)),
            (36.1, Some(0)),
            (38.0, Some(0)),
            (38.1, Some(1)),
            (39.0, Some(1)),
            (39.1, Some(2)),
            (42.0, Some(2)),
            // Between one-decimal readings: the edge value belongs to the lower band.
            (35.05, Some(1)),
            (36.05, Some(0)),
            (38.05, Some(1)),
            (39.05, Some(2)),
            (f64::NEG_INFINITY, Some(3)),
            (f64::INFINITY, Some(2)),
            (f64::NAN, None),
        ];
        for (t, want) in cases {
            assert_eq!(temperature_score(t), want, "temperature {t}");
        }
    }

    #[test]
    fn consciousness_acvpu() {
        assert_eq!(consciousness_score("A"), Some(0));
        for level in ["C", "V", "P", "U"] {
            assert_eq!(consciousness_score(level), Some(3), "{level}");
        }
        // Lenient reading of Alert.
        assert_eq!(consciousness_score("a"), Some(0));
        assert_eq!(consciousness_score(" A "), Some(0));
        assert_eq!(consciousness_score("Alert"), Some(0));
        assert_eq!(consciousness_score("v"), Some(3));
        // Unknown codes are "not alert".
        assert_eq!(consciousness_score("X"), Some(3));
        assert_eq!(consciousness_score("AA"), Some(3));
        assert_eq!(consciousness_score("confused"), Some(3));
        // Blank is missing.
        assert_eq!(consciousness_score(""), None);
        assert_eq!(consciousness_score("   "), None);
    }

    fn healthy() -> Observations<'static> {
        Observations {
            respiratory_rate: Some(16),
            spo2: Some(98),
            on_oxygen: Some(false),
            systolic_bp: Some(120),
            heart_rate: Some(70),
            consciousness: Some("A"),
            temperature: Some(37.0),
        }
    }

    #[test]
    fn aggregate_healthy_is_zero() {
        let o = healthy();
        assert_eq!(o.parameter_scores(), [Some(0); 7]);
        assert_eq!(o.total_score(), 0);
        assert_eq!(o.missing_count(), 0);
        assert_eq!(o.max_parameter_score(), 0);
    }

    #[test]
    fn aggregate_worst_case_is_twenty() {
        let o = Observations {
            respiratory_rate: Some(30),
            spo2: Some(85),
            on_oxygen: Some(true),
            systolic_bp: Some(80),
            heart_rate: Some(140),
            consciousness: Some("U"),
            temperature: Some(34.0),
        };
        assert_eq!(
            o.parameter_scores(),
            [
                Some(3),
                Some(3),
                Some(2),
                Some(3),
                Some(3),
                Some(3),
                Some(3)
            ]
        );
        assert_eq!(o.total_score(), 20);
        assert_eq!(o.missing_count(), 0);
        assert_eq!(o.max_parameter_score(), 3);
    }

    #[test]
    fn aggregate_mixed() {
        // RR 22 -> 2, SpO2 95 -> 1, oxygen -> 2, SBP 105 -> 1, HR 95 -> 1, A -> 0, 38.5 -> 1
        let o = Observations {
            respiratory_rate: Some(22),
            spo2: Some(95),
            on_oxygen: Some(true),
            systolic_bp: Some(105),
            heart_rate: Some(95),
            consciousness: Some("A"),
            temperature: Some(38.5),
        };
        assert_eq!(o.total_score(), 8);
        assert_eq!(o.max_parameter_score(), 2);
        assert_eq!(o.missing_count(), 0);
    }

    #[test]
    fn single_parameter_three_with_low_total() {
        // Only HR scores: 3 (the "any single parameter scores 3" alert rule).
        let o = Observations {
            heart_rate: Some(35),
            ..healthy()
        };
        assert_eq!(o.total_score(), 3);
        assert_eq!(o.max_parameter_score(), 3);
    }

    #[test]
    fn missing_parameters_contribute_zero() {
        let all_missing = Observations::default();
        assert_eq!(all_missing.parameter_scores(), [None; 7]);
        assert_eq!(all_missing.total_score(), 0);
        assert_eq!(all_missing.missing_count(), 7);
        assert_eq!(all_missing.max_parameter_score(), 0);

        let partial = Observations {
            respiratory_rate: Some(25), // 3
            spo2: None,
            on_oxygen: Some(true), // 2
            systolic_bp: None,
            heart_rate: Some(45),        // 1
            consciousness: Some(""),     // blank -> missing
            temperature: Some(f64::NAN), // NaN -> missing
        };
        assert_eq!(partial.total_score(), 6);
        assert_eq!(partial.missing_count(), 4);
        assert_eq!(partial.max_parameter_score(), 3);
    }

    #[test]
    fn missing_count_each_parameter() {
        let base = healthy();
        let variants = [
            Observations {
                respiratory_rate: None,
                ..base
            },
            Observations { spo2: None, ..base },
            Observations {
                on_oxygen: None,
                ..base
            },
            Observations {
                systolic_bp: None,
                ..base
            },
            Observations {
                heart_rate: None,
                ..base
            },
            Observations {
                consciousness: None,
                ..base
            },
            Observations {
                temperature: None,
                ..base
            },
        ];
        for (i, o) in variants.iter().enumerate() {
            assert_eq!(o.missing_count(), 1, "parameter {i}");
            assert!(o.parameter_scores()[i].is_none(), "parameter {i}");
            assert_eq!(o.total_score(), 0, "parameter {i}");
        }
    }

    #[test]
    fn total_is_sum_of_parameter_scores_exhaustively() {
        // Sweep a grid of values crossing every band edge; total must equal the sum and the
        // max must equal the largest parameter score.
        let rrs = [None, Some(8), Some(9), Some(12), Some(21), Some(25)];
        let spo2s = [None, Some(91), Some(92), Some(94), Some(96)];
        let o2s = [None, Some(false), Some(true)];
        let temps = [
            None,
            Some(35.0),
            Some(35.1),
            Some(36.1),
            Some(38.1),
            Some(39.1),
        ];
        for rr in rrs {
            for spo2 in spo2s {
                for o2 in o2s {
                    for t in temps {
                        let o = Observations {
                            respiratory_rate: rr,
                            spo2,
                            on_oxygen: o2,
                            temperature: t,
                            ..Observations::default()
                        };
                        let s = o.parameter_scores();
                        let sum: i64 = s.iter().map(|x| x.unwrap_or(0) as i64).sum();
                        let max = s.iter().map(|x| x.unwrap_or(0) as i64).max().unwrap();
                        let missing = s.iter().filter(|x| x.is_none()).count() as i64;
                        assert_eq!(o.total_score(), sum);
                        assert_eq!(o.max_parameter_score(), max);
                        assert_eq!(o.missing_count(), missing);
                        assert!((0..=20).contains(&o.total_score()));
                        assert!((0..=7).contains(&o.missing_count()));
                    }
                }
            }
        }
    }
}
