//! vitalflow's benchmark harness: everything around the benchmarks that is
//! not the engine, so it can live outside the `vitalflow` library.
//!
//! - [`pipeline`], [`windows`], [`storage`], [`kafka`], [`soak`],
//!   [`scale_out`], [`history`], [`query`]: each
//!   benchmark's pipeline YAML, its report and the accounting that needs no
//!   engine (the soak's balance, the Kafka rates).
//! - [`report`]: [`BenchReport`], what a pipeline benchmark run prints.
//! - [`memory`]: peak and current RSS from `/proc/self/status`.
//! - [`s3`], [`tansu`]: the s3s-fs and Tansu servers the benchmarks (and the
//!   tests) start on a free loopback port.
//! - [`net`]: free ports, waiting for a port: one implementation for this
//!   crate, the root package's tests and its `cargo bench` targets.
//!
//! The parts that plan and run pipelines (`spec::parse`, `engine::run`,
//! Kafka producers, queries) are in the `vitalflow` package,
//! `src/cli/bench/`: this crate does not depend on `vitalflow`, because
//! `vitalflow`'s binary depends on this crate (`vitalflow bench`).

pub mod history;
pub mod kafka;
pub mod memory;
pub mod net;
pub mod pipeline;
pub mod query;
pub mod report;
pub mod s3;
pub mod scale_out;
pub mod soak;
pub mod storage;
pub mod tansu;
pub mod windows;

pub use report::BenchReport;

/// An environment variable parsed, or `default` when unset or unparsable
/// (the `cargo bench` targets' settings).
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `sql` as the body of a `sql: |` block of a transform (six spaces in).
pub fn sql_block(sql: &str) -> String {
    sql.lines().map(|l| format!("      {l}\n")).collect()
}
