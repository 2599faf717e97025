//! The soak (`vitalflow bench --soak 30m --brokers HOST:PORT`): the Kafka
//! pipeline for a long time at a steady rate, with 1 % malformed records and
//! one reading from the year 9999 every minute, reporting whether memory
//! stays flat and whether every record is accounted for (stored or a dead
//! letter, none late).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::engine::{self, RunOptions};
use crate::kafka::{ClientSettings, KeyedProducer, TopicSettings, ensure_topic};
use crate::spec;

/// What the soak sends.
#[derive(Debug, Clone)]
pub struct SoakOptions {
    pub brokers: String,
    pub duration: Duration,
    /// Records per second, all kinds together.
    pub rate: f64,
    /// One record in this many is malformed.
    pub malformed_every: u64,
    /// One reading from the far future this often.
    pub hostile_every: Duration,
}

/// What happened, and the memory over time.
#[derive(Debug, Clone, Default)]
pub struct SoakReport {
    pub elapsed: Duration,
    pub valid_sent: u64,
    pub malformed_sent: u64,
    pub hostile_sent: u64,
    pub stored: u64,
    pub dead_letters: BTreeMap<String, u64>,
    pub late: u64,
    /// (seconds since start, RSS bytes), one a second.
    pub rss: Vec<(f64, u64)>,
}

impl SoakReport {
    fn dead_total(&self) -> u64 {
        self.dead_letters.values().sum()
    }

    /// Highest RSS within `[from, to)` seconds.
    fn max_rss(&self, from: f64, to: f64) -> Option<u64> {
        self.rss
            .iter()
            .filter(|(t, _)| *t >= from && *t < to)
            .map(|(_, r)| *r)
            .max()
    }

    /// Every record sent is stored or a dead letter, and none is late.
    pub fn balanced(&self) -> bool {
        let sent = self.valid_sent + self.malformed_sent + self.hostile_sent;
        self.stored == self.valid_sent && self.stored + self.dead_total() == sent && self.late == 0
    }
}

impl std::fmt::Display for SoakReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mb = |b: Option<u64>| {
            b.map_or_else(|| "n/a".into(), |b| format!("{:.1} MB", b as f64 / 1e6))
        };
        let secs = self.elapsed.as_secs_f64();
        writeln!(f, "soak:          {secs:.0} s")?;
        writeln!(
            f,
            "sent:          {} valid, {} malformed, {} from the year 9999",
            self.valid_sent, self.malformed_sent, self.hostile_sent
        )?;
        writeln!(f, "stored:        {}", self.stored)?;
        writeln!(
            f,
            "dead letters:  {} {:?}",
            self.dead_total(),
            self.dead_letters
        )?;
        writeln!(f, "late:          {}", self.late)?;
        writeln!(
            f,
            "balance:       {} (sent = stored + dead letters, stored = valid, late = 0)",
            if self.balanced() { "ok" } else { "MISMATCH" }
        )?;
        let tenth = secs / 10.0;
        writeln!(
            f,
            "RSS:           max {} in the first tenth, {} in the last tenth, {} overall",
            mb(self.max_rss(0.0, tenth)),
            mb(self.max_rss(secs - tenth, f64::MAX)),
            mb(self.max_rss(0.0, f64::MAX))
        )?;
        write!(f, "RSS by tenth:  ")?;
        for i in 0..10 {
            let from = tenth * i as f64;
            write!(f, "{} ", mb(self.max_rss(from, from + tenth)))?;
        }
        Ok(())
    }
}

/// The pipeline the soak runs: the shipped Kafka source (exact types,
/// `max_future`), event time declared so a future reading would move the
/// watermark, the scoring SQL, Parquet for readings, dead letters and late
/// readings.
fn pipeline_yaml(brokers: &str, topic: &str, dir: &Path) -> String {
    let sql = super::scoring_sql_block();
    format!(
        "name: soak
sources:
  monitors:
    kind: kafka
    brokers: \"{brokers}\"
    topic: \"{topic}\"
    group_id: soak-{group:08x}
    properties:
      session.timeout.ms: \"6000\"
    event_time: {{column: ts, max_delay: 5s}}
{schema}transforms:
  scored:
    sql: |
{sql}
sinks:
  vitals:
    kind: parquet
    input: scored
    path: \"{vitals}\"
    partition_by_date: ts
    sort_by: [patient_id, ts]
    roll: {{max_age: 10s}}
  dead_letters:
    kind: parquet
    input: monitors_dead_letters
    path: \"{dead}\"
    roll: {{max_age: 10s}}
  late:
    kind: parquet
    input: monitors_late_events
    path: \"{late}\"
    roll: {{max_age: 10s}}
",
        group = rand::random::<u32>(),
        schema = super::kafka::record_schema_yaml(", max_future: 5m"),
        vitals = dir.join("vitals").display(),
        dead = dir.join("dead_letters").display(),
        late = dir.join("late").display(),
    )
}

/// One reading of patient `i` taken now.
fn reading(i: u64, ts: &str) -> String {
    format!(
        r#"{{"patient_id":"P{:05}","ts":"{ts}","heart_rate":{},"spo2":{},"systolic_bp":{},"diastolic_bp":{},"respiratory_rate":{},"temperature":{:.1},"consciousness":"A","on_oxygen":false}}"#,
        i % 500,
        60 + i % 40,
        92 + i % 8,
        100 + i % 50,
        60 + i % 30,
        12 + i % 10,
        36.0 + (i % 20) as f64 / 10.0
    )
}

/// Malformed in turn: broken JSON, a wrong type, a missing field, an
/// impossible value.
fn malformed(i: u64, ts: &str) -> String {
    match (i / 7) % 4 {
        0 => format!(
            r#"{{"patient_id":"P{:05}","ts":"{ts}","heart_rate":"#,
            i % 500
        ),
        1 => reading(i, ts).replace(r#""on_oxygen":false"#, r#""on_oxygen":0"#),
        2 => reading(i, ts).replace(r#""consciousness":"A","#, ""),
        _ => reading(i, ts).replace(r#""spo2":9"#, r#""spo2":19"#),
    }
}

fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

pub async fn run(options: SoakOptions, work_dir: &Path) -> anyhow::Result<SoakReport> {
    let client = ClientSettings::new(&options.brokers);
    let topic = format!("soak-{:08x}", rand::random::<u32>());
    ensure_topic(&client, &topic, &TopicSettings::default()).await?;
    let yaml = pipeline_yaml(&options.brokers, &topic, work_dir);
    let planned = engine::plan(spec::parse(&yaml, Path::new("<bench>/soak.yaml"))?).await?;
    let stop = CancellationToken::new();
    let pipeline = {
        let stop = stop.clone();
        tokio::spawn(async move { engine::run(&planned, stop, RunOptions::default()).await })
    };

    let producer = KeyedProducer::new(
        &client,
        &topic,
        |e| tracing::error!(error = %e, "soak: delivery failed"),
    )?;
    let mut report = SoakReport::default();
    let started = Instant::now();
    let mut next_hostile = started + options.hostile_every;
    let mut next_sample = started;
    let mut sent = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    while started.elapsed() < options.duration {
        tick.tick().await;
        anyhow::ensure!(
            !pipeline.is_finished(),
            "the pipeline stopped during the soak"
        );
        let due = (started.elapsed().as_secs_f64() * options.rate) as u64;
        let ts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        while sent < due {
            sent += 1;
            let payload = if sent.is_multiple_of(options.malformed_every) {
                report.malformed_sent += 1;
                malformed(sent, &ts)
            } else {
                report.valid_sent += 1;
                reading(sent, &ts)
            };
            producer.send(format!("P{:05}", sent % 500).as_bytes(), payload.as_bytes())?;
        }
        if Instant::now() >= next_hostile {
            next_hostile += options.hostile_every;
            report.hostile_sent += 1;
            producer.send(
                b"P99999",
                reading(sent, "9999-12-31T23:59:59.000Z").as_bytes(),
            )?;
        }
        if Instant::now() >= next_sample {
            next_sample += Duration::from_secs(1);
            if let Some(rss) = resident_bytes() {
                report.rss.push((started.elapsed().as_secs_f64(), rss));
            }
        }
    }
    producer.flush(Duration::from_secs(60))?;
    report.elapsed = started.elapsed();

    // Everything sent is accounted for, or the deadline says it is not.
    let sent_total = report.valid_sent + report.malformed_sent + report.hostile_sent;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let stored = super::kafka::stored_rows(&work_dir.join("vitals"))?;
        let dead = super::kafka::stored_rows(&work_dir.join("dead_letters"))?;
        if stored + dead >= sent_total || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stop.cancel();
    pipeline.await.context("pipeline task")??;
    report.stored = super::kafka::stored_rows(&work_dir.join("vitals"))?;
    report.late = super::kafka::stored_rows(&work_dir.join("late"))?;
    report.dead_letters = dead_letters_by_reason(&work_dir.join("dead_letters")).await?;
    Ok(report)
}

async fn dead_letters_by_reason(dir: &Path) -> anyhow::Result<BTreeMap<String, u64>> {
    use arrow::array::AsArray;
    let mut out = BTreeMap::new();
    if super::kafka::stored_rows(dir)? == 0 {
        return Ok(out);
    }
    let ctx = crate::query::query_context(&[crate::query::Dataset {
        date_partitioned: false,
        ..crate::query::Dataset::at("d", crate::storage::Location::Local(dir.to_path_buf()))
    }])
    .await?;
    let (_, batches) =
        crate::query::run_sql(&ctx, "SELECT reason_kind, count(*) FROM d GROUP BY 1").await?;
    for batch in batches {
        use arrow::datatypes::DataType;
        let kinds = arrow::compute::cast(batch.column(0), &DataType::Utf8)?;
        let counts = arrow::compute::cast(batch.column(1), &DataType::Int64)?;
        let kinds = kinds.as_string::<i32>();
        let counts = counts.as_primitive::<arrow::datatypes::Int64Type>();
        for i in 0..batch.num_rows() {
            out.insert(kinds.value(i).to_string(), counts.value(i) as u64);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_balance_needs_every_record_accounted_for_and_none_late() {
        let mut report = SoakReport {
            valid_sent: 990,
            malformed_sent: 10,
            hostile_sent: 1,
            stored: 990,
            dead_letters: [
                ("invalid_json".to_string(), 10),
                ("implausible_time".to_string(), 1),
            ]
            .into_iter()
            .collect(),
            ..Default::default()
        };
        assert!(report.balanced());
        report.late = 1;
        assert!(!report.balanced());
        report.late = 0;
        report.stored = 989;
        assert!(!report.balanced());
    }
}
