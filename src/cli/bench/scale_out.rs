//! The scale-out benchmark (`cargo bench --bench scale_out`): one topic of
//! keyed readings, consumed by one `vitalflow run` process and then by two
//! in one consumer group (each in its own group and data directory), each
//! until every reading is stored. The report and the pipeline are
//! [`vitalflow_bench::scale_out`].

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use vitalflow_bench::memory::peak_rss_of;
use vitalflow_bench::scale_out::{
    InstancesRun, ScaleOutReport, StateFigures, checkpoint_times, pipeline_yaml,
};

use super::kafka::{StoredRows, stored_rows};
use crate::engine::checkpoint::{CheckpointFiles, status};
use crate::kafka::{ClientSettings, TopicSettings};
use crate::sources::simulator::{Pacing, PublishOptions, SimulatorConfig, publish_readings};

/// Publish `messages` readings of `patients` patients (one a second each),
/// then run 1 and 2 instances of `binary` over them.
pub async fn run(
    brokers: &str,
    messages: u64,
    patients: u32,
    work_dir: &Path,
    binary: &Path,
) -> anyhow::Result<ScaleOutReport> {
    let topic = format!("bench-scale-{:08x}", rand::random::<u32>());
    let simulator = SimulatorConfig {
        patients,
        pacing: Pacing::Unpaced,
        limit: Some(messages),
        batch_rows: 8192,
        start: Some("2026-01-01T00:00:00Z".into()),
        ..Default::default()
    };
    let options = PublishOptions {
        client: ClientSettings::new(brokers),
        topic: topic.clone(),
        create_topic: Some(TopicSettings {
            partitions: 4,
            ..Default::default()
        }),
        flush_timeout: Duration::from_secs(600),
        format: crate::interop::Format::Json,
    };
    let published = publish_readings(simulator, options, CancellationToken::new()).await?;
    anyhow::ensure!(
        published.delivered == messages,
        "only {} of {messages} readings were delivered",
        published.delivered
    );
    let mut report = ScaleOutReport {
        messages,
        patients: patients as u64,
        ..Default::default()
    };
    for instances in [1, 2] {
        let data = work_dir.join(format!("{instances}-instances"));
        let (run, logs) =
            run_instances(brokers, &topic, instances, messages, &data, binary).await?;
        if instances == 1 {
            report.state = state_figures(&data.join("checkpoints"), &logs)?;
        }
        report.runs.push(run);
    }
    Ok(report)
}

/// A child process, killed if the benchmark fails while it runs.
struct Instance {
    child: Child,
    log: PathBuf,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn run_instances(
    brokers: &str,
    topic: &str,
    instances: usize,
    messages: u64,
    data: &Path,
    binary: &Path,
) -> anyhow::Result<(InstancesRun, String)> {
    std::fs::create_dir_all(data)?;
    let group = format!("bench-scale-{:08x}", rand::random::<u32>());
    let pipeline = data.join("pipeline.yaml");
    std::fs::write(&pipeline, pipeline_yaml(brokers, topic, &group, data))?;
    let started = Instant::now();
    let mut running = Vec::new();
    for i in 0..instances {
        let log = data.join(format!("instance-{i}.log"));
        let child = Command::new(binary)
            .arg("run")
            .arg(&pipeline)
            .env("VITALFLOW_LOG", "info,vitalflow::engine::events=debug")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        running.push(Instance { child, log });
    }
    let vitals = data.join("vitals");
    let mut counter = StoredRows::default();
    loop {
        let stored = counter.count(&vitals)?;
        if stored >= messages {
            break;
        }
        for instance in running.iter_mut() {
            if let Some(status) = instance.child.try_wait()? {
                let log = std::fs::read_to_string(&instance.log).unwrap_or_default();
                anyhow::bail!("an instance stopped ({status}) after {stored} readings:\n{log}");
            }
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(1800),
            "timed out at {stored} of {messages} readings"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = started.elapsed();
    let peak_rss = running
        .iter()
        .map(|i| peak_rss_of(i.child.id()).unwrap_or(0))
        .collect();
    // SIGTERM: each publishes what it holds and saves its open windows.
    let mut logs = String::new();
    for mut instance in running {
        // SAFETY: a plain signal to our own child.
        unsafe { libc::kill(instance.child.id() as i32, libc::SIGTERM) };
        let status = instance.child.wait()?;
        let log = std::fs::read_to_string(&instance.log).unwrap_or_default();
        anyhow::ensure!(status.success(), "an instance failed ({status}):\n{log}");
        logs.push_str(&log);
    }
    let (windows, distinct_windows) = count_windows(&data.join("per_minute")).await?;
    let run = InstancesRun {
        instances,
        elapsed,
        peak_rss,
        readings: stored_rows(&vitals)?,
        windows,
        distinct_windows,
    };
    Ok((run, logs))
}

/// Windows emitted, and distinct (patient, minute) among them.
async fn count_windows(dir: &Path) -> anyhow::Result<(u64, u64)> {
    if stored_rows(dir)? == 0 {
        return Ok((0, 0));
    }
    let ctx = datafusion::prelude::SessionContext::new();
    ctx.register_parquet(
        "w",
        dir.display().to_string(),
        datafusion::prelude::ParquetReadOptions::default(),
    )
    .await?;
    let batches = ctx
        .sql("SELECT count(*), count(DISTINCT (patient_id, window_start)) FROM w")
        .await?
        .collect()
        .await?;
    let value = |column: usize| -> anyhow::Result<u64> {
        let array = batches[0].column(column);
        let counts = arrow::array::cast::as_primitive_array::<arrow::datatypes::Int64Type>(array);
        Ok(counts.value(0) as u64)
    };
    Ok((value(0)?, value(1)?))
}

/// The newest state files of the checkpoints in `dir`: rows and bytes; and
/// the checkpoint times the instance logged.
fn state_figures(dir: &Path, logs: &str) -> anyhow::Result<StateFigures> {
    let files = CheckpointFiles::Local(dir.to_path_buf());
    let mut figures = StateFigures::default();
    for writer in status(&files)? {
        for file in writer.state.values() {
            let path = dir.join(&writer.writer).join(file);
            figures.bytes += std::fs::metadata(&path)?.len();
            let reader =
                arrow::ipc::reader::FileReader::try_new(std::fs::File::open(&path)?, None)?;
            for batch in reader {
                figures.rows += batch?.num_rows() as u64;
            }
        }
    }
    let (median, max, count) = checkpoint_times(logs);
    figures.checkpoint_median = median;
    figures.checkpoint_max = max;
    figures.checkpoints = count;
    Ok(figures)
}
