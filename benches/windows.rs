//! `cargo bench --bench windows`: unpaced simulator (10,000 patients) ->
//! per-patient event-time windows -> Parquet, printing events/s and peak
//! RSS. `VITALFLOW_BENCH_EVENTS` (default 50,000,000),
//! `VITALFLOW_BENCH_PATIENTS` (default 10,000), `VITALFLOW_BENCH_SHAPE`
//! (`ward`: 1-minute tumble + 10 s/1 min hop, the default; `count`: a
//! 1-second tumbling count, Arroyo's benchmark job).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use vitalflow_bench::env_or;
use vitalflow_bench::windows::Shape;

fn main() -> anyhow::Result<()> {
    let events = env_or("VITALFLOW_BENCH_EVENTS", 50_000_000u64);
    let patients = env_or("VITALFLOW_BENCH_PATIENTS", 10_000u32);
    let shape: Shape = std::env::var("VITALFLOW_BENCH_SHAPE")
        .unwrap_or_else(|_| "ward".into())
        .parse()
        .map_err(anyhow::Error::msg)?;
    let dir = tempfile::tempdir()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(vitalflow::cli::bench::windows::run(
        shape,
        events,
        patients,
        dir.path(),
    ))?;
    println!(
        "windows bench ({shape:?}): simulator ({patients} patients) -> event-time windows -> Parquet\n{report}"
    );
    Ok(())
}
