//! `vitalflow bench`, and the benchmark runs behind it and behind `cargo
//! bench` (benches/*.rs): the parts that plan and run vitalflow pipelines.
//! The harness around them (pipeline YAML, reports, `/proc` memory figures,
//! the s3s-fs and Tansu servers) is the `vitalflow-bench` crate
//! (crates/bench), which does not depend on this library.
//!
//! - this file: the subcommand and the throughput benchmark (unpaced
//!   simulator -> the shipped scoring SQL -> date-partitioned Parquet).
//! - [`windows`], [`storage`], [`kafka`], [`soak`], [`scale_out`]: one file
//!   per other kind.

pub mod history;
pub mod kafka;
pub mod query;
pub mod scale_out;
pub mod soak;
pub mod storage;
pub mod windows;

use std::path::Path;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use vitalflow_bench::{BenchReport, memory};

use super::args::BenchArgs;
use crate::engine::{self, RunOptions};
use crate::spec;

/// Run the throughput benchmark pipeline writing into `output`.
pub async fn run(events: u64, patients: u32, output: &Path) -> anyhow::Result<BenchReport> {
    run_yaml(
        &vitalflow_bench::pipeline::pipeline_yaml(events, patients, output),
        "bench.yaml",
    )
    .await
}

/// Plan and run a benchmark pipeline given as YAML; report what it did.
pub async fn run_yaml(yaml: &str, name: &str) -> anyhow::Result<BenchReport> {
    let spec = spec::parse(yaml, &Path::new("<bench>").join(name))?;
    let planned = engine::plan(spec).await?;
    let summary = engine::run(&planned, CancellationToken::new(), RunOptions::default()).await?;
    let (rows_stored, files, bytes) = summary.sinks.iter().fold((0, 0, 0), |(r, f, b), (_, s)| {
        (r + s.rows, f + s.files, b + s.bytes)
    });
    Ok(BenchReport {
        events: summary.records_in(),
        rows_stored,
        files,
        bytes,
        elapsed: summary.elapsed,
        peak_rss_bytes: memory::peak_rss_bytes(),
        mapped_files_rss_bytes: memory::mapped_files_rss_bytes(),
    })
}

/// The subcommand.
pub(crate) async fn bench(args: BenchArgs) -> anyhow::Result<()> {
    let temp;
    let output = match &args.output {
        Some(dir) => dir.clone(),
        None => {
            temp = tempfile::tempdir().context("creating a temporary output directory")?;
            temp.path().join("vitals")
        }
    };
    if cfg!(debug_assertions) {
        eprintln!(
            "warning: this is a debug build; run `cargo run --release -- bench` for real figures"
        );
    }
    if let (Some(duration), Some(brokers)) = (args.soak, &args.brokers) {
        anyhow::ensure!(
            args.rate.is_finite() && args.rate > 0.0,
            "--rate must be a positive number of records per second, got {}",
            args.rate
        );
        let work = tempfile::tempdir().context("creating a temporary directory")?;
        eprintln!(
            "bench: soak for {} at {} records/s against {brokers} -> {}",
            humantime::format_duration(duration),
            args.rate,
            work.path().display()
        );
        let options = vitalflow_bench::soak::SoakOptions {
            brokers: brokers.clone(),
            duration,
            rate: args.rate,
            malformed_every: 100,
            hostile_every: std::time::Duration::from_secs(60),
        };
        let report = soak::run(options, work.path()).await?;
        println!("{report}");
        anyhow::ensure!(report.balanced(), "the soak lost or misplaced records");
        return Ok(());
    }
    if let Some(shape) = args.windows {
        let patients = args.patients.unwrap_or(10_000);
        eprintln!(
            "bench: {} events, {patients} patients -> {shape:?} windows -> {}",
            args.events,
            output.display()
        );
        let report = windows::run(shape, args.events, patients, &output).await?;
        println!("{report}");
        return Ok(());
    }
    if args.query {
        let work = tempfile::tempdir().context("creating a temporary directory")?;
        let binary = std::env::current_exe().context("locating this binary")?;
        eprintln!(
            "bench: a week of 1,000 patients' vitals -> {}, then analyst queries",
            work.path().display()
        );
        let report = query::run(work.path(), &binary, 3).await?;
        println!("{report}");
        return Ok(());
    }
    if args.history {
        let patients = args.patients.unwrap_or(232);
        let work = tempfile::tempdir().context("creating a temporary directory")?;
        eprintln!(
            "bench: {patients} patients x 24 h at 1 reading/s -> {}, then the trend endpoint",
            work.path().display()
        );
        let report = history::run(patients, 100, work.path()).await?;
        println!("{report}");
        return Ok(());
    }
    let patients = args.patients.unwrap_or(50);
    if args.storage {
        let work = tempfile::tempdir().context("creating a temporary directory")?;
        let server = vitalflow_bench::s3::LocalS3Server::start(
            &vitalflow_bench::s3::s3_server_binary(),
            &work.path().join("s3"),
            "vitalflow-bench",
        )?;
        eprintln!(
            "bench: {} events, {} patients -> local disk, then S3 at {}",
            args.events, patients, server.target.endpoint
        );
        let report = storage::run(args.events, patients, &server.target, work.path()).await?;
        println!("{report}");
        return Ok(());
    }
    eprintln!(
        "bench: {} events, {patients} patients -> {}",
        args.events,
        output.display()
    );
    let report = run(args.events, patients, &output).await?;
    println!("{report}");
    Ok(())
}
