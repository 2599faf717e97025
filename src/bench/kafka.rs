//! The Kafka benchmark: against one broker, in one run, (1) the simulator's
//! produce rate, (2) a raw consume-and-discard rate with the Kafka source's
//! own client settings, and (3) the pipeline's Kafka -> NEWS2 SQL -> Parquet
//! rate until every message is durably published. The ratio (3)/(2) is how
//! much of the broker's deliverable rate the pipeline keeps.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::consumer::{BaseConsumer, Consumer};
use tokio_util::sync::CancellationToken;

use crate::engine::{self, RunOptions};
use crate::kafka::{ClientSettings, TopicSettings};
use crate::sources::simulator::{PublishOptions, publish_readings};
use crate::sources::simulator::{Pacing, SimulatorConfig};
use crate::spec;

#[derive(Debug, Clone)]
pub struct KafkaBenchReport {
    pub messages: u64,
    pub produce: Duration,
    pub raw_consume: Duration,
    pub pipeline: Duration,
}

fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

impl std::fmt::Display for KafkaBenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.messages;
        writeln!(f, "messages:              {n}")?;
        writeln!(
            f,
            "simulator produce:     {:.0} msg/s ({:.2} s)",
            rate(n, self.produce),
            self.produce.as_secs_f64()
        )?;
        writeln!(
            f,
            "raw consume+discard:   {:.0} msg/s ({:.2} s)",
            rate(n, self.raw_consume),
            self.raw_consume.as_secs_f64()
        )?;
        writeln!(
            f,
            "pipeline -> Parquet:   {:.0} msg/s ({:.2} s)",
            rate(n, self.pipeline),
            self.pipeline.as_secs_f64()
        )?;
        write!(
            f,
            "pipeline / raw:        {:.2}",
            rate(n, self.pipeline) / rate(n, self.raw_consume)
        )
    }
}

/// Librdkafka settings both consumers use, so the comparison is fair.
const SESSION_TIMEOUT_MS: &str = "6000";

pub async fn run(
    brokers: &str,
    messages: u64,
    work_dir: &Path,
) -> anyhow::Result<KafkaBenchReport> {
    let topic = format!("bench-{:08x}", rand::random::<u32>());
    let client = ClientSettings::new(brokers);

    let simulator = SimulatorConfig {
        patients: 50,
        pacing: Pacing::Unpaced,
        limit: Some(messages),
        batch_rows: 8192,
        start: Some("2026-01-01T00:00:00Z".into()),
        ..Default::default()
    };
    let options = PublishOptions {
        client: client.clone(),
        topic: topic.clone(),
        create_topic: Some(TopicSettings::default()),
        flush_timeout: Duration::from_secs(600),
    };
    let started = Instant::now();
    let published = publish_readings(simulator, options, CancellationToken::new()).await?;
    let produce = started.elapsed();
    anyhow::ensure!(
        published.delivered == messages,
        "only {} of {messages} messages were delivered",
        published.delivered
    );

    let raw_client = client.clone();
    let raw_topic = topic.clone();
    let raw_consume =
        tokio::task::spawn_blocking(move || consume_and_discard(&raw_client, &raw_topic, messages))
            .await
            .context("raw consumer thread")??;

    let pipeline = run_pipeline(brokers, &topic, messages, work_dir).await?;
    Ok(KafkaBenchReport {
        messages,
        produce,
        raw_consume,
        pipeline,
    })
}

/// Subscribe in a fresh group and poll until `messages` arrived.
fn consume_and_discard(
    client: &ClientSettings,
    topic: &str,
    messages: u64,
) -> anyhow::Result<Duration> {
    let group = format!("bench-raw-{:08x}", rand::random::<u32>());
    let consumer: BaseConsumer = client
        .client_config(&[
            ("group.id", group.as_str()),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("auto.offset.reset", "earliest"),
            ("enable.partition.eof", "false"),
            ("statistics.interval.ms", "5000"),
            ("session.timeout.ms", SESSION_TIMEOUT_MS),
        ])
        .create()
        .context("creating the raw consumer")?;
    consumer.subscribe(&[topic])?;
    let started = Instant::now();
    let mut seen = 0u64;
    let mut bytes = 0usize;
    while seen < messages {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(1800),
            "raw consume timed out at {seen}"
        );
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let message = message?;
            bytes += message.payload_len();
            seen += 1;
        }
    }
    std::hint::black_box(bytes);
    Ok(started.elapsed())
}

/// The shipped Kafka pipeline's shape (same source settings, scoring SQL,
/// Parquet sink) until every message is durably stored.
async fn run_pipeline(
    brokers: &str,
    topic: &str,
    messages: u64,
    work_dir: &Path,
) -> anyhow::Result<Duration> {
    let output = work_dir.join("vitals");
    let dead = work_dir.join("dead_letters");
    let sql = super::scoring_sql_block();
    let yaml = format!(
        "name: bench_kafka
sources:
  monitors:
    kind: kafka
    brokers: \"{brokers}\"
    topic: \"{topic}\"
    group_id: bench-pipeline-{group:08x}
    properties:
      session.timeout.ms: \"{SESSION_TIMEOUT_MS}\"
{schema}transforms:
  scored:
    sql: |
{sql}
sinks:
  vitals:
    kind: parquet
    input: scored
    path: \"{}\"
    partition_by_date: ts
    sort_by: [patient_id, ts]
    roll: {{max_age: 500ms}}
  dead_letters:
    kind: parquet
    input: monitors_dead_letters
    path: \"{}\"
",
        output.display(),
        dead.display(),
        group = rand::random::<u32>(),
        schema = record_schema_yaml(""),
    );
    let spec = spec::parse(&yaml, Path::new("<bench>/bench-kafka.yaml"))?;
    let planned = engine::plan(spec).await?;
    let stop = CancellationToken::new();
    let started = Instant::now();
    let run = {
        let stop = stop.clone();
        tokio::spawn(async move { engine::run(&planned, stop, RunOptions::default()).await })
    };
    loop {
        let stored = stored_rows(&output)?;
        if stored >= messages {
            break;
        }
        anyhow::ensure!(
            !run.is_finished(),
            "the pipeline stopped after {stored} rows"
        );
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(1800),
            "pipeline timed out at {stored}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = started.elapsed();
    stop.cancel();
    run.await.context("pipeline task")??;
    Ok(elapsed)
}

/// The shipped Kafka pipelines' record schema as a `schema:` block (for a
/// source at 4 spaces), with `ts_extra` added to the `ts` field (e.g.
/// `, max_future: 5m`).
pub(crate) fn record_schema_yaml(ts_extra: &str) -> String {
    format!(
        "    schema:
      - {{name: patient_id, type: string}}
      - {{name: ts, type: timestamp{ts_extra}}}
      - {{name: heart_rate, type: int32, min: 0, max: 300}}
      - {{name: spo2, type: int32, min: 0, max: 100}}
      - {{name: systolic_bp, type: int32, min: 0, max: 300}}
      - {{name: diastolic_bp, type: int32, min: 0, max: 250}}
      - {{name: respiratory_rate, type: int32, min: 0, max: 100}}
      - {{name: temperature, type: float64, min: 25, max: 45}}
      - {{name: consciousness, type: string, values: [A, C, V, P, U]}}
      - {{name: on_oxygen, type: boolean}}
"
    )
}

/// Rows in the published files, from their footers.
pub(crate) fn stored_rows(dir: &Path) -> anyhow::Result<u64> {
    let mut rows = 0;
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                dirs.push(path);
            } else if name.ends_with(".parquet") && !name.starts_with('.') {
                let file = std::fs::File::open(&path)?;
                let reader = parquet::file::reader::SerializedFileReader::new(file)?;
                rows += parquet::file::reader::FileReader::metadata(&reader)
                    .file_metadata()
                    .num_rows() as u64;
            }
        }
    }
    Ok(rows)
}
