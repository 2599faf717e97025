//! The soak (`vitalflow bench --soak 30m --brokers HOST:PORT`): runs the
//! Kafka pipeline and feeds it at a steady rate; the options, records,
//! pipeline and the balance are [`vitalflow_bench::soak`].

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use vitalflow_bench::memory::resident_bytes;
use vitalflow_bench::soak::{
    HOSTILE_KEY, SoakOptions, SoakReport, hostile, key, malformed, pipeline_yaml, reading,
};

use super::kafka::stored_rows;
use crate::engine::{self, RunOptions};
use crate::kafka::{ClientSettings, KeyedProducer, TopicSettings, ensure_topic};
use crate::spec;

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
            producer.send(key(sent).as_bytes(), payload.as_bytes())?;
        }
        if Instant::now() >= next_hostile {
            next_hostile += options.hostile_every;
            report.hostile_sent += 1;
            producer.send(HOSTILE_KEY, hostile(sent).as_bytes())?;
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
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let stored = stored_rows(&work_dir.join("vitals"))?;
        let dead = stored_rows(&work_dir.join("dead_letters"))?;
        if stored + dead >= report.sent() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stop.cancel();
    pipeline.await.context("pipeline task")??;
    report.stored = stored_rows(&work_dir.join("vitals"))?;
    report.late = stored_rows(&work_dir.join("late"))?;
    report.dead_letters = dead_letters_by_reason(&work_dir.join("dead_letters")).await?;
    Ok(report)
}

async fn dead_letters_by_reason(dir: &Path) -> anyhow::Result<BTreeMap<String, u64>> {
    use arrow::array::AsArray;
    let mut out = BTreeMap::new();
    if stored_rows(dir)? == 0 {
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
