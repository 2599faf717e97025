//! `cargo bench --bench query`: analyst queries over a week of 1,000
//! patients' stored vitals (20.16M rows, 7 date partitions, written by the
//! Parquet sink) through `vitalflow query` and, when installed (`pip
//! install duckdb-cli`, or `VITALFLOW_DUCKDB`), DuckDB's CLI on the same
//! files: each a fresh process, median of `VITALFLOW_BENCH_RUNS` (default
//! 3) runs, time and peak RSS side by side. `VITALFLOW_BENCH_QUERY_DATA`
//! keeps the dataset in (and reuses it from) that directory.

use vitalflow_bench::env_or;

fn main() -> anyhow::Result<()> {
    let runs = env_or("VITALFLOW_BENCH_RUNS", 3usize);
    let dir = tempfile::tempdir()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(vitalflow::cli::bench::query::run(
        dir.path(),
        std::path::Path::new(env!("CARGO_BIN_EXE_vitalflow")),
        runs,
    ))?;
    println!("query bench:\n{report}");
    Ok(())
}
