//! The windowed benchmark (`vitalflow bench --windows`, `cargo bench
//! --bench windows`); the shapes and their pipelines are
//! [`vitalflow_bench::windows`].

use std::path::Path;

use vitalflow_bench::BenchReport;
pub use vitalflow_bench::windows::Shape;

/// Run `shape` over `events` readings of `patients`, writing below `output`.
/// The `ward` shape loads this repository's UDF plugins, model and patients
/// table.
pub async fn run(
    shape: Shape,
    events: u64,
    patients: u32,
    output: &Path,
) -> anyhow::Result<BenchReport> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    super::run_yaml(
        &vitalflow_bench::windows::pipeline_yaml(shape, events, patients, output, repo),
        "bench-windows.yaml",
    )
    .await
}
