//! Deterministic batch generator: the simulator without any clock or I/O,
//! so benchmarks and tests can drive it directly.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int32Builder, StringBuilder,
    TimestampMillisecondBuilder,
};
use arrow::record_batch::RecordBatch;
use rand::SeedableRng;
use rand_pcg::Pcg64Mcg;

use super::config::SimulatorConfig;
use super::patient::Patient;
use super::schema::vitals_schema;

/// Produces the ward's readings tick by tick: at tick `t` every patient
/// emits one reading stamped `start + t * interval`.
pub struct VitalsGenerator {
    patients: Vec<Patient>,
    ids: Vec<String>,
    rng: Pcg64Mcg,
    start_ms: i64,
    interval_ms: i64,
    episode_probability: f64,
    readings_per_minute: f64,
    tick: u64,
    next_patient: usize,
    produced: u64,
    limit: Option<u64>,
}

impl VitalsGenerator {
    /// `start_ms` is the event time of tick 0 (epoch milliseconds).
    pub fn new(config: &SimulatorConfig, start_ms: i64) -> Self {
        let mut rng = Pcg64Mcg::seed_from_u64(config.seed);
        let n = config.patients as usize;
        let width = n.to_string().len().max(5);
        let ids = (1..=n).map(|i| format!("P{i:0width$}")).collect();
        let patients = (0..n).map(|_| Patient::new(&mut rng)).collect();
        let interval_ms = (config.interval.0.as_millis() as i64).max(1);
        let readings_per_minute = 60_000.0 / interval_ms as f64;
        Self {
            patients,
            ids,
            rng,
            start_ms,
            interval_ms,
            episode_probability: config.episodes_per_hour / (60.0 * readings_per_minute),
            readings_per_minute,
            tick: 0,
            next_patient: 0,
            produced: 0,
            limit: config.limit,
        }
    }

    pub fn patients(&self) -> usize {
        self.patients.len()
    }

    /// Readings produced so far.
    pub fn produced(&self) -> u64 {
        self.produced
    }

    /// Event time of tick `tick`.
    pub fn tick_time_ms(&self, tick: u64) -> i64 {
        self.start_ms + tick as i64 * self.interval_ms
    }

    /// The tick the next reading belongs to.
    pub fn current_tick(&self) -> u64 {
        self.tick
    }

    /// Up to `max_rows` further readings (patient by patient, tick after
    /// tick), or `None` once the limit is reached.
    pub fn next_batch(&mut self, max_rows: usize) -> Option<RecordBatch> {
        let remaining = self
            .limit
            .map_or(u64::MAX, |l| l.saturating_sub(self.produced));
        let rows = (max_rows as u64).min(remaining) as usize;
        if rows == 0 {
            return None;
        }
        Some(self.generate(rows))
    }

    /// The rest of the current tick (every patient once, when called on a
    /// tick boundary), or `None` once the limit is reached.
    pub fn next_tick(&mut self) -> Option<RecordBatch> {
        let rest_of_tick = self.patients.len() - self.next_patient;
        self.next_batch(rest_of_tick)
    }

    fn generate(&mut self, rows: usize) -> RecordBatch {
        let mut patient_id = StringBuilder::with_capacity(rows, rows * 6);
        let mut ts = TimestampMillisecondBuilder::with_capacity(rows).with_timezone("UTC");
        let mut heart_rate = Int32Builder::with_capacity(rows);
        let mut spo2 = Int32Builder::with_capacity(rows);
        let mut systolic = Int32Builder::with_capacity(rows);
        let mut diastolic = Int32Builder::with_capacity(rows);
        let mut respiratory = Int32Builder::with_capacity(rows);
        let mut temperature = Float64Builder::with_capacity(rows);
        let mut consciousness = StringBuilder::with_capacity(rows, rows);
        let mut on_oxygen = BooleanBuilder::with_capacity(rows);

        let mut tick_ms = self.tick_time_ms(self.tick);
        for _ in 0..rows {
            let i = self.next_patient;
            let r = self.patients[i].step(
                &mut self.rng,
                self.episode_probability,
                self.readings_per_minute,
            );
            patient_id.append_value(&self.ids[i]);
            ts.append_value(tick_ms);
            heart_rate.append_value(r.heart_rate);
            spo2.append_value(r.spo2);
            systolic.append_value(r.systolic_bp);
            diastolic.append_value(r.diastolic_bp);
            respiratory.append_value(r.respiratory_rate);
            temperature.append_value(r.temperature);
            consciousness.append_value(consciousness_str(r.consciousness));
            on_oxygen.append_value(r.on_oxygen);

            self.next_patient += 1;
            if self.next_patient == self.patients.len() {
                self.next_patient = 0;
                self.tick += 1;
                tick_ms = self.tick_time_ms(self.tick);
            }
        }
        self.produced += rows as u64;

        let columns: Vec<ArrayRef> = vec![
            Arc::new(patient_id.finish()),
            Arc::new(ts.finish()),
            Arc::new(heart_rate.finish()),
            Arc::new(spo2.finish()),
            Arc::new(systolic.finish()),
            Arc::new(diastolic.finish()),
            Arc::new(respiratory.finish()),
            Arc::new(temperature.finish()),
            Arc::new(consciousness.finish()),
            Arc::new(on_oxygen.finish()),
        ];
        // The builders above follow vitals_schema() column by column; a
        // mismatch is a bug in this file, not bad input.
        RecordBatch::try_new(vitals_schema(), columns)
            .expect("generator columns match vitals_schema")
    }
}

fn consciousness_str(code: u8) -> &'static str {
    match code {
        b'A' => "A",
        b'C' => "C",
        b'V' => "V",
        b'P' => "P",
        _ => "U",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{AsArray, Int32Array};
    use arrow::datatypes::Int32Type;

    fn config(patients: u32) -> SimulatorConfig {
        SimulatorConfig {
            patients,
            episodes_per_hour: 30.0,
            ..Default::default()
        }
    }

    #[test]
    fn same_seed_same_readings() {
        let mut a = VitalsGenerator::new(&config(20), 0);
        let mut b = VitalsGenerator::new(&config(20), 0);
        for _ in 0..10 {
            assert_eq!(a.next_batch(333), b.next_batch(333));
        }
    }

    #[test]
    fn stable_ids_and_tick_times() {
        let mut g = VitalsGenerator::new(&config(3), 1_000);
        let batch = g.next_batch(7).unwrap();
        let ids: Vec<_> = batch
            .column(0)
            .as_string::<i32>()
            .iter()
            .flatten()
            .collect();
        assert_eq!(
            ids,
            [
                "P00001", "P00002", "P00003", "P00001", "P00002", "P00003", "P00001"
            ]
        );
        let ts = batch
            .column(1)
            .as_primitive::<arrow::datatypes::TimestampMillisecondType>();
        assert_eq!(
            ts.values().to_vec(),
            vec![1000, 1000, 1000, 1500, 1500, 1500, 2000]
        );
    }

    #[test]
    fn readings_stay_in_range_and_deteriorate_sometimes() {
        let mut g = VitalsGenerator::new(&config(50), 0);
        let mut low_spo2 = 0;
        while let Some(batch) = g.next_batch(10_000) {
            let col =
                |i: usize| -> Int32Array { batch.column(i).as_primitive::<Int32Type>().clone() };
            for (i, (lo, hi)) in [
                (2, (50, 140)),
                (3, (85, 100)),
                (4, (90, 180)),
                (5, (60, 110)),
                (6, (10, 30)),
            ] {
                for v in col(i).values().iter() {
                    assert!(
                        (lo..=hi).contains(v),
                        "column {i} value {v} outside {lo}..={hi}"
                    );
                }
            }
            low_spo2 += col(3).values().iter().filter(|v| **v <= 91).count();
            if g.produced() >= 200_000 {
                break;
            }
        }
        assert!(
            low_spo2 > 0,
            "some readings should come from deterioration episodes"
        );
    }

    #[test]
    fn limit_is_exact() {
        let mut g = VitalsGenerator::new(
            &SimulatorConfig {
                limit: Some(1_001),
                ..config(10)
            },
            0,
        );
        let mut total = 0;
        while let Some(b) = g.next_batch(100) {
            total += b.num_rows();
        }
        assert_eq!(total, 1_001);
    }
}
