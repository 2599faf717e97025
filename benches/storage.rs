//! `cargo bench --bench storage`: the Parquet sink's throughput to the local
//! disk and to an S3 server on loopback, same data, same run. Starts s3s-fs
//! (`VITALFLOW_S3_SERVER`, or the test cache) on a free port unless
//! `VITALFLOW_BENCH_S3_ENDPOINT` (with `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY` and an existing bucket `VITALFLOW_BENCH_S3_BUCKET`)
//! names another server. `VITALFLOW_BENCH_EVENTS` sets the size (default
//! 10,000,000), `VITALFLOW_BENCH_PATIENTS` the ward (default 1,000).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use vitalflow::cli::bench::storage::run;
use vitalflow_bench::env_or;
use vitalflow_bench::s3::{LocalS3Server, S3Target, s3_server_binary};

fn main() -> anyhow::Result<()> {
    let events = env_or("VITALFLOW_BENCH_EVENTS", 10_000_000u64);
    let patients = env_or("VITALFLOW_BENCH_PATIENTS", 1_000u32);
    let work = tempfile::tempdir()?;
    let (_server, target) = match std::env::var("VITALFLOW_BENCH_S3_ENDPOINT") {
        Ok(endpoint) => (
            None,
            S3Target {
                endpoint,
                bucket: env_or("VITALFLOW_BENCH_S3_BUCKET", "vitalflow-bench".to_string()),
                access_key: std::env::var("AWS_ACCESS_KEY_ID")?,
                secret_key: std::env::var("AWS_SECRET_ACCESS_KEY")?,
            },
        ),
        Err(_) => {
            let server = LocalS3Server::start(
                &s3_server_binary(),
                &work.path().join("s3"),
                "vitalflow-bench",
            )?;
            let target = server.target.clone();
            (Some(server), target)
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(run(events, patients, &target, work.path()))?;
    println!(
        "storage bench: simulator ({patients} patients) -> NEWS2 SQL -> Parquet, local disk vs S3 at {}\n{report}",
        target.endpoint
    );
    Ok(())
}
