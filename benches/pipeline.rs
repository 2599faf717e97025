//! `cargo bench --bench pipeline`: unpaced simulator -> scoring SQL ->
//! Parquet, printing events/s and peak RSS. Set `VITALFLOW_BENCH_EVENTS`
//! (default 50,000,000) and `VITALFLOW_BENCH_PATIENTS` (default 50).

/// mimalloc returns freed memory promptly; glibc malloc's RSS grew with
/// the length of the stream (fragmentation across threads).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use vitalflow_bench::env_or;

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; there is nothing to filter here.
    let events = env_or("VITALFLOW_BENCH_EVENTS", 50_000_000u64);
    let patients = env_or("VITALFLOW_BENCH_PATIENTS", 50u32);
    let dir = tempfile::tempdir()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(vitalflow::cli::bench::run(
        events,
        patients,
        &dir.path().join("vitals"),
    ))?;
    println!("pipeline bench: simulator -> scoring SQL -> Parquet ({patients} patients)\n{report}");
    Ok(())
}
