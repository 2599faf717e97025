//! `cargo bench --bench scale_out`: one topic of keyed readings consumed by
//! one `vitalflow run` process, then by two in one consumer group: events/s,
//! peak RSS per process, whether the windows stay exact, and the state size
//! and checkpoint time of 10,000 patients' open minute windows.
//! Uses `VITALFLOW_BENCH_BROKERS` if set, else starts Tansu (`TANSU`, or the
//! test cache). `VITALFLOW_BENCH_MESSAGES` (default 1,500,000) and
//! `VITALFLOW_BENCH_PATIENTS` (default 10,000) set the size.

use vitalflow_bench::env_or;
use vitalflow_bench::tansu::bench_brokers;

fn main() -> anyhow::Result<()> {
    let messages = env_or("VITALFLOW_BENCH_MESSAGES", 1_500_000u64);
    let patients = env_or("VITALFLOW_BENCH_PATIENTS", 10_000u32);
    let dir = tempfile::tempdir()?;
    let (_tansu, brokers) = bench_brokers(dir.path())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(vitalflow::cli::bench::scale_out::run(
        &brokers,
        messages,
        patients,
        dir.path(),
        std::path::Path::new(env!("CARGO_BIN_EXE_vitalflow")),
    ))?;
    println!("scale-out bench against {brokers}:\n{report}");
    Ok(())
}
