//! `cargo bench --bench history`: the dashboard's trend endpoint over ~20M
//! stored readings (232 patients x 24 h at 1 reading/s, written by the
//! Parquet sink): one patient's whole day downsampled to <= 500 points,
//! p50/p95 over HTTP, beside a raw read of the same patient-day.
//! `VITALFLOW_BENCH_PATIENTS` (default 232) and `VITALFLOW_BENCH_REQUESTS`
//! (default 100) set the size.

use vitalflow_bench::env_or;

fn main() -> anyhow::Result<()> {
    let patients = env_or("VITALFLOW_BENCH_PATIENTS", 232u32);
    let requests = env_or("VITALFLOW_BENCH_REQUESTS", 100usize);
    let dir = tempfile::tempdir()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(vitalflow::cli::bench::history::run(
        patients,
        requests,
        dir.path(),
    ))?;
    println!("history bench:\n{report}");
    Ok(())
}
