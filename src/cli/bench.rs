//! `vitalflow bench`

use anyhow::Context;

use super::args::BenchArgs;

pub async fn bench(args: BenchArgs) -> anyhow::Result<()> {
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
        let options = crate::bench::soak::SoakOptions {
            brokers: brokers.clone(),
            duration,
            rate: args.rate,
            malformed_every: 100,
            hostile_every: std::time::Duration::from_secs(60),
        };
        let report = crate::bench::soak::run(options, work.path()).await?;
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
        let report = crate::bench::windows::run(shape, args.events, patients, &output).await?;
        println!("{report}");
        return Ok(());
    }
    let patients = args.patients.unwrap_or(50);
    if args.storage {
        let work = tempfile::tempdir().context("creating a temporary directory")?;
        let server = crate::bench::storage::LocalS3Server::start(
            &crate::bench::storage::s3_server_binary(),
            &work.path().join("s3"),
            "vitalflow-bench",
        )?;
        eprintln!(
            "bench: {} events, {} patients -> local disk, then S3 at {}",
            args.events, patients, server.target.endpoint
        );
        let report =
            crate::bench::storage::run(args.events, patients, &server.target, work.path()).await?;
        println!("{report}");
        return Ok(());
    }
    eprintln!(
        "bench: {} events, {patients} patients -> {}",
        args.events,
        output.display()
    );
    let report = crate::bench::run(args.events, patients, &output).await?;
    println!("{report}");
    Ok(())
}
