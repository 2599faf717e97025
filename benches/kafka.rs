//! `cargo bench --bench kafka`: simulator produce rate, raw consume rate and
//! the Kafka -> Parquet pipeline rate against one broker, side by side,
//! each consumer's group join apart from its steady rate, and the
//! pipeline's ceiling without a broker. Uses `VITALFLOW_BENCH_BROKERS` if
//! set, else starts Tansu (`TANSU`, or the test cache) on a free port with
//! its in-memory engine, its fastest (`TANSU_STORAGE_ENGINE` for another).
//! `VITALFLOW_BENCH_MESSAGES` sets the size (default 1,000,000).

/// mimalloc returns freed memory promptly; glibc malloc's RSS grew with
/// the length of the stream (fragmentation across threads).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use vitalflow_bench::env_or;
use vitalflow_bench::tansu::bench_brokers;

fn main() -> anyhow::Result<()> {
    let messages = env_or("VITALFLOW_BENCH_MESSAGES", 1_000_000u64);
    let dir = tempfile::tempdir()?;
    let (tansu, brokers) = bench_brokers(dir.path())?;
    let broker = match tansu {
        Some(_) => format!("Tansu, {}", vitalflow_bench::tansu::engine()),
        None => "VITALFLOW_BENCH_BROKERS".to_string(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(vitalflow::cli::bench::kafka::run(
        &brokers,
        &broker,
        messages,
        dir.path(),
    ))?;
    drop(tansu);
    println!("kafka bench against {brokers}:\n{report}");
    Ok(())
}
