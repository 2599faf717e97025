//! One simulated patient: a personal baseline, mean-reverting drift around
//! it, and deterioration episodes that push every vital the clinically
//! plausible way (tachycardia, desaturation, hypotension, tachypnoea, fever,
//! then oxygen and sometimes new confusion).

use rand::Rng;
use rand_distr::StandardNormal;

/// Clamp ranges of the emitted readings (the monitor's display ranges).
pub const HEART_RATE: (f64, f64) = (50.0, 140.0);
pub const SPO2: (f64, f64) = (85.0, 100.0);
pub const SYSTOLIC: (f64, f64) = (90.0, 180.0);
pub const DIASTOLIC: (f64, f64) = (60.0, 110.0);
pub const RESPIRATORY: (f64, f64) = (10.0, 30.0);
pub const TEMPERATURE: (f64, f64) = (35.0, 40.5);

/// One emitted reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    pub heart_rate: i32,
    pub spo2: i32,
    pub systolic_bp: i32,
    pub diastolic_bp: i32,
    pub respiratory_rate: i32,
    pub temperature: f64,
    pub consciousness: u8,
    pub on_oxygen: bool,
}

#[derive(Debug, Clone, Copy)]
struct Vitals {
    hr: f64,
    spo2: f64,
    sbp: f64,
    dbp: f64,
    rr: f64,
    temp: f64,
}

/// Offsets from baseline at full severity of an episode.
const EPISODE_PEAK: Vitals = Vitals {
    hr: 42.0,
    spo2: -11.0,
    sbp: -38.0,
    dbp: -16.0,
    rr: 13.0,
    temp: 2.2,
};
/// Random-walk step sizes (one standard deviation per reading).
const DRIFT: Vitals = Vitals {
    hr: 1.2,
    spo2: 0.35,
    sbp: 1.8,
    dbp: 1.2,
    rr: 0.45,
    temp: 0.02,
};
/// Pull back towards the target per reading (Ornstein-Uhlenbeck).
const REVERSION: f64 = 0.08;

#[derive(Debug, Clone)]
struct Episode {
    elapsed: u32,
    length: u32,
    peak: f64,
}

impl Episode {
    /// Severity 0..=peak: ramps up over the first 40 %, holds, recovers over
    /// the last 30 %.
    fn severity(&self) -> f64 {
        let t = f64::from(self.elapsed) / f64::from(self.length.max(1));
        let shape = if t < 0.4 {
            t / 0.4
        } else if t < 0.7 {
            1.0
        } else {
            ((1.0 - t) / 0.3).max(0.0)
        };
        shape * self.peak
    }
}

#[derive(Debug, Clone)]
pub struct Patient {
    baseline: Vitals,
    state: Vitals,
    episode: Option<Episode>,
    consciousness: u8,
    on_oxygen: bool,
}

impl Patient {
    pub fn new(rng: &mut impl Rng) -> Self {
        let n = |rng: &mut dyn rand::RngCore, mean: f64, sd: f64, lo: f64, hi: f64| -> f64 {
            let z: f64 = rng.sample(StandardNormal);
            (mean + sd * z).clamp(lo, hi)
        };
        let baseline = Vitals {
            hr: n(rng, 76.0, 9.0, 58.0, 98.0),
            spo2: n(rng, 97.2, 1.0, 95.0, 99.5),
            sbp: n(rng, 124.0, 11.0, 105.0, 160.0),
            dbp: n(rng, 78.0, 7.0, 64.0, 98.0),
            rr: n(rng, 15.0, 1.8, 12.0, 19.5),
            temp: n(rng, 36.8, 0.25, 36.2, 37.6),
        };
        Self {
            baseline,
            state: baseline,
            episode: None,
            consciousness: b'A',
            on_oxygen: false,
        }
    }

    /// Advance one reading. `episode_probability` is the chance that a
    /// deterioration episode starts at this reading; `readings_per_minute`
    /// scales episode lengths to wall time.
    pub fn step(
        &mut self,
        rng: &mut impl Rng,
        episode_probability: f64,
        readings_per_minute: f64,
    ) -> Reading {
        if self.episode.is_none() && rng.random::<f64>() < episode_probability {
            // 3 to 30 minutes, mild to severe.
            let minutes = rng.random_range(3.0..30.0);
            self.episode = Some(Episode {
                elapsed: 0,
                length: (minutes * readings_per_minute).max(4.0) as u32,
                peak: rng.random_range(0.35..1.0),
            });
        }
        let severity = match &mut self.episode {
            Some(ep) => {
                ep.elapsed += 1;
                let s = ep.severity();
                if ep.elapsed >= ep.length {
                    self.episode = None;
                }
                s
            }
            None => 0.0,
        };

        // Staff respond: oxygen when saturation drops in a bad episode,
        // removed once the patient recovers.
        if severity > 0.5 && self.state.spo2 < 93.0 {
            self.on_oxygen = true;
        } else if severity < 0.1 {
            self.on_oxygen = false;
        }
        if severity > 0.85 && self.consciousness == b'A' && rng.random::<f64>() < 0.03 {
            self.consciousness = if rng.random::<bool>() { b'C' } else { b'V' };
        } else if severity < 0.4 {
            self.consciousness = b'A';
        }

        let oxygen_boost = if self.on_oxygen { 4.0 } else { 0.0 };
        let target = Vitals {
            hr: self.baseline.hr + EPISODE_PEAK.hr * severity,
            spo2: self.baseline.spo2 + EPISODE_PEAK.spo2 * severity + oxygen_boost,
            sbp: self.baseline.sbp + EPISODE_PEAK.sbp * severity,
            dbp: self.baseline.dbp + EPISODE_PEAK.dbp * severity,
            rr: self.baseline.rr + EPISODE_PEAK.rr * severity,
            temp: self.baseline.temp + EPISODE_PEAK.temp * severity,
        };
        let mut walk = |x: f64, target: f64, sd: f64| -> f64 {
            let z: f64 = rng.sample(StandardNormal);
            x + REVERSION * (target - x) + sd * z
        };
        self.state = Vitals {
            hr: walk(self.state.hr, target.hr, DRIFT.hr),
            spo2: walk(self.state.spo2, target.spo2, DRIFT.spo2),
            sbp: walk(self.state.sbp, target.sbp, DRIFT.sbp),
            dbp: walk(self.state.dbp, target.dbp, DRIFT.dbp),
            rr: walk(self.state.rr, target.rr, DRIFT.rr),
            temp: walk(self.state.temp, target.temp, DRIFT.temp),
        };
        // Keep the hidden state inside plausible bounds too, so a long walk
        // cannot wander off.
        self.state.spo2 = self.state.spo2.min(100.0);

        let clamp_round = |x: f64, (lo, hi): (f64, f64)| x.clamp(lo, hi).round() as i32;
        Reading {
            heart_rate: clamp_round(self.state.hr, HEART_RATE),
            spo2: clamp_round(self.state.spo2, SPO2),
            systolic_bp: clamp_round(self.state.sbp, SYSTOLIC),
            diastolic_bp: clamp_round(self.state.dbp, DIASTOLIC),
            respiratory_rate: clamp_round(self.state.rr, RESPIRATORY),
            temperature: (self.state.temp.clamp(TEMPERATURE.0, TEMPERATURE.1) * 10.0).round()
                / 10.0,
            consciousness: self.consciousness,
            on_oxygen: self.on_oxygen,
        }
    }
}
