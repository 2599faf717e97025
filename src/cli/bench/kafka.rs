//! The Kafka benchmark (`cargo bench --bench kafka`): against one broker, in
//! one run, the simulator's produce rate, a raw consume-and-discard rate
//! with the Kafka source's own client settings, the pipeline's Kafka ->
//! NEWS2 SQL -> Parquet run until every message is durably published (each
//! with its group join separated), and the pipeline's ceiling without a
//! broker. The report and the pipeline are [`vitalflow_bench::kafka`].

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::consumer::{BaseConsumer, Consumer};
use tokio_util::sync::CancellationToken;
use vitalflow_bench::kafka::{Consumed, KafkaBenchReport, SESSION_TIMEOUT_MS, pipeline_yaml};

use crate::engine::{self, RunOptions};
use crate::kafka::{ClientSettings, TopicSettings};
use crate::sources::kafka::{MessageDecoder, RawMessages};
use crate::sources::simulator::{Pacing, SimulatorConfig, VitalsGenerator, encode_json_lines};
use crate::sources::simulator::{PublishOptions, publish_readings};
use crate::spec;

/// `broker` names the broker's storage engine for the report.
pub async fn run(
    brokers: &str,
    broker: &str,
    messages: u64,
    work_dir: &Path,
) -> anyhow::Result<KafkaBenchReport> {
    let topic = format!("bench-{:08x}", rand::random::<u32>());
    let client = ClientSettings::new(brokers);

    let simulator = bench_simulator(messages);
    let replay = simulator.clone();
    let options = PublishOptions {
        client: client.clone(),
        topic: topic.clone(),
        create_topic: Some(TopicSettings::default()),
        flush_timeout: Duration::from_secs(600),
        format: crate::interop::Format::Json,
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
    // The ceiling without a broker: the same messages decoded from memory,
    // and the same SQL and sink fed rows in-process.
    let decode = tokio::task::spawn_blocking(move || decode_in_memory(&replay))
        .await
        .context("decode thread")??;
    let sql_parquet = super::run(messages, 50, &work_dir.join("in-process"))
        .await?
        .elapsed;
    Ok(KafkaBenchReport {
        messages,
        broker: broker.to_string(),
        produce,
        raw: raw_consume,
        pipeline,
        decode,
        sql_parquet,
    })
}

/// The readings the benchmark publishes (and replays).
fn bench_simulator(messages: u64) -> SimulatorConfig {
    SimulatorConfig {
        patients: 50,
        pacing: Pacing::Unpaced,
        limit: Some(messages),
        batch_rows: 8192,
        start: Some("2026-01-01T00:00:00Z".into()),
        ..Default::default()
    }
}

/// The published messages again, encoded the same way, decoded in batches
/// as the Kafka source does (copied into its batch buffer, then decoded):
/// the decode rate without a broker.
fn decode_in_memory(simulator: &SimulatorConfig) -> anyhow::Result<Duration> {
    let yaml = pipeline_yaml(
        "127.0.0.1:9",
        "replay",
        Path::new("/nonexistent"),
        Path::new("/nonexistent"),
    );
    let spec = spec::parse(&yaml, Path::new("<bench>/bench-kafka.yaml"))?;
    let source = spec
        .sources
        .iter()
        .find_map(|s| match &s.config {
            crate::sources::SourceConfig::Kafka(k) => Some((**k).clone()),
            _ => None,
        })
        .context("the benchmark pipeline has a Kafka source")?;
    let start = simulator.start_millis()?;
    let mut generator = VitalsGenerator::new(simulator, start);
    let mut encoded = Vec::new();
    while let Some(batch) = generator.next_batch(source.batch.max_rows) {
        encoded.push(encode_json_lines(&batch)?);
    }
    let mut decoder =
        MessageDecoder::new("monitors", source.record_schema(), source.batch.max_rows)?;
    let mut raw = RawMessages::default();
    let mut rows = 0;
    let started = Instant::now();
    let mut offset = 0;
    for (keys, payloads) in &encoded {
        raw.clear();
        for (key, payload) in keys.iter().zip(payloads) {
            raw.push(
                "replay",
                0,
                offset,
                None,
                Some(key.as_bytes()),
                Some(payload),
            );
            offset += 1;
        }
        rows += decoder.decode(&raw)?.rows.num_rows();
    }
    let elapsed = started.elapsed();
    anyhow::ensure!(rows as i64 == offset, "{rows} of {offset} messages decoded");
    Ok(elapsed)
}

/// Subscribe in a fresh group and poll until `messages` arrived.
fn consume_and_discard(
    client: &ClientSettings,
    topic: &str,
    messages: u64,
) -> anyhow::Result<Consumed> {
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
    let mut first = None;
    while seen < messages {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(1800),
            "raw consume timed out at {seen}"
        );
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let message = message?;
            first.get_or_insert_with(|| started.elapsed());
            bytes += message.payload_len();
            seen += 1;
        }
    }
    std::hint::black_box(bytes);
    Ok(Consumed {
        first: first.unwrap_or_default(),
        at_first: 1,
        total: started.elapsed(),
    })
}

/// The shipped Kafka pipeline's shape until every message is durably stored.
async fn run_pipeline(
    brokers: &str,
    topic: &str,
    messages: u64,
    work_dir: &Path,
) -> anyhow::Result<Consumed> {
    let output = work_dir.join("vitals");
    let yaml = pipeline_yaml(brokers, topic, &output, &work_dir.join("dead_letters"));
    let spec = spec::parse(&yaml, Path::new("<bench>/bench-kafka.yaml"))?;
    let planned = engine::plan(spec).await?;
    let stop = CancellationToken::new();
    let started = Instant::now();
    let run = {
        let stop = stop.clone();
        tokio::spawn(async move { engine::run(&planned, stop, RunOptions::default()).await })
    };
    let mut first = None;
    let mut counter = StoredRows::default();
    loop {
        let stored = counter.count(&output)?;
        if stored > 0 && first.is_none() {
            first = Some((started.elapsed(), stored));
        }
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
    let (first, at_first) = first.unwrap_or((elapsed, messages));
    Ok(Consumed {
        first,
        at_first,
        total: elapsed,
    })
}

/// Rows in the published files below `dir`, from their footers.
pub(crate) fn stored_rows(dir: &Path) -> anyhow::Result<u64> {
    StoredRows::default().count(dir)
}

/// [`stored_rows`] for a watch that asks again and again: a published file
/// does not change (the sink writes under a hidden name and renames), so
/// each footer is read once. Reading every footer on every look took CPU
/// from the broker and the pipeline it measures (~20 files, 20 looks/s).
#[derive(Default)]
pub(crate) struct StoredRows {
    counted: std::collections::HashMap<std::path::PathBuf, u64>,
}

impl StoredRows {
    pub(crate) fn count(&mut self, dir: &Path) -> anyhow::Result<u64> {
        let mut rows = 0;
        for entry in walkdir::WalkDir::new(dir).into_iter().flatten() {
            let name = entry.file_name().to_string_lossy();
            if !(entry.file_type().is_file()
                && name.ends_with(".parquet")
                && !name.starts_with('.'))
            {
                continue;
            }
            rows += match self.counted.get(entry.path()) {
                Some(&counted) => counted,
                None => {
                    let file = std::fs::File::open(entry.path())?;
                    let reader = parquet::file::reader::SerializedFileReader::new(file)?;
                    let counted = parquet::file::reader::FileReader::metadata(&reader)
                        .file_metadata()
                        .num_rows() as u64;
                    self.counted.insert(entry.path().to_path_buf(), counted);
                    counted
                }
            };
        }
        Ok(rows)
    }
}
