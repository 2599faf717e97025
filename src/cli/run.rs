//! `vitalflow run PIPELINE` and `vitalflow up`.

use std::path::Path;

use super::args::{RunArgs, UpArgs};
use super::signal::shutdown_on_signal;
use crate::engine::{self, RunOptions, RunSummary};
use crate::query::datasets_of;
use crate::sinks::SinkContext;
use crate::spec;

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let shutdown = shutdown_on_signal();
    if let Some(duration) = args.duration {
        let stop = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(duration).await;
            stop.cancel();
        });
    }
    let ingest = crate::common::IngestHubs::default();
    run_pipeline(
        &args.pipeline,
        shutdown,
        false,
        &SinkContext::default(),
        &ingest,
    )
    .await
}

/// The whole system: the pipeline and, beside it, the HTTP server.
pub async fn up(args: UpArgs) -> anyhow::Result<()> {
    let shutdown = shutdown_on_signal();
    // Handed to both: the pipeline's live sink and forwarders report
    // through it, the server reads it.
    let run = SinkContext::default();
    // And where the server hands `POST /fhir` to the pipeline's ingest source.
    let ingest = crate::common::IngestHubs::default();
    let server = super::serve::start(
        &args.server,
        &args.pipeline,
        shutdown.clone(),
        &run,
        &ingest,
    )
    .await?;
    let pipeline = run_pipeline(&args.pipeline, shutdown.clone(), true, &run, &ingest).await;
    // The pipeline ends on Ctrl-C or failure; the server goes with it.
    shutdown.cancel();
    let served = server.await.map_err(anyhow::Error::from).and_then(|r| r);
    pipeline.and(served)
}

async fn run_pipeline(
    path: &Path,
    shutdown: tokio_util::sync::CancellationToken,
    banner: bool,
    run: &SinkContext,
    ingest: &crate::common::IngestHubs,
) -> anyhow::Result<()> {
    loop {
        match run_once(path, shutdown.clone(), banner, run, ingest).await {
            Err(error) if !shutdown.is_cancelled() && lost_partitions(&error) => {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "restarting the pipeline from its last checkpoint"
                );
            }
            other => return other,
        }
    }
}

/// Whether the run failed because partitions it read are another
/// instance's now: its consumer lost them to a rebalance, or another
/// instance published rows of them first (a checkpoint refused). Either
/// way nothing of the overlap was published, and the run restarts from
/// the checkpoints.
fn lost_partitions(error: &anyhow::Error) -> bool {
    error.chain().any(|e| {
        e.downcast_ref::<crate::sources::SourceError>()
            .is_some_and(crate::sources::SourceError::is_assignment_lost)
            || e.downcast_ref::<crate::engine::CheckpointError>()
                .is_some_and(|c| matches!(c, crate::engine::CheckpointError::Fenced { .. }))
    })
}

async fn run_once(
    path: &Path,
    shutdown: tokio_util::sync::CancellationToken,
    banner: bool,
    run: &SinkContext,
    ingest: &crate::common::IngestHubs,
) -> anyhow::Result<()> {
    let spec = spec::load(path)?;
    let planned = engine::plan(spec).await?;
    let datasets = datasets_of(&planned)?;
    tracing::info!(pipeline = %planned.spec.name, file = %path.display(), "pipeline started");
    if banner {
        println!(
            "vitalflow is running pipeline `{}` ({})",
            planned.spec.name,
            path.display()
        );
        for d in &datasets {
            println!("  table {:<12} -> {}", d.name, d.location);
        }
        println!("query it in another terminal, e.g.:");
        println!(
            "  cargo run --release -- query \"SELECT patient_id, count(*) AS readings, max(news2_score) AS worst FROM vitals GROUP BY patient_id ORDER BY worst DESC LIMIT 10\""
        );
        println!("stop with Ctrl-C (open files are flushed and published).");
    }
    let options = RunOptions {
        sinks: run.clone(),
        ingest: ingest.clone(),
        ..RunOptions::default()
    };
    let summary = engine::run(&planned, shutdown, options).await?;
    print_summary(&summary);
    Ok(())
}

fn print_summary(summary: &RunSummary) {
    let secs = summary.elapsed.as_secs_f64();
    for (name, s) in &summary.sources {
        eprintln!(
            "source {name}: {} records in {} batches ({:.0} records/s)",
            s.records,
            s.batches,
            s.records as f64 / secs.max(1e-9)
        );
    }
    for (name, s) in &summary.sinks {
        eprintln!(
            "sink {name}: {} rows in {} files, {} bytes -> {}",
            s.rows, s.files, s.bytes, s.location
        );
    }
}

#[cfg(test)]
mod tests {
    use super::lost_partitions;
    use crate::common::TopicPartition;
    use crate::engine::{CheckpointError, EngineError};

    #[test]
    fn a_refused_checkpoint_restarts_the_run_and_other_failures_end_it() {
        let refused = EngineError::from(CheckpointError::Fenced {
            source_name: "monitors".into(),
            partition: TopicPartition::new("vitals", 2),
            from: Some(10),
            durable: 25,
        });
        let error = anyhow::Error::new(refused).context("pipeline `vitals` failed");
        assert!(lost_partitions(&error), "{error:#}");
        let other = EngineError::from(CheckpointError::Encode(
            serde_json::from_str::<u8>("x").unwrap_err(),
        ));
        assert!(!lost_partitions(&anyhow::Error::new(other)));
    }
}
