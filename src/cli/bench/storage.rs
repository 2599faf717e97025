//! The storage benchmark (`vitalflow bench --storage`, `cargo bench
//! --bench storage`): the throughput pipeline to the local disk, then to an
//! S3 server; see [`vitalflow_bench::storage`].

use std::path::Path;

use vitalflow_bench::pipeline::pipeline_yaml;
use vitalflow_bench::storage::{S3Target, StorageReport, s3_pipeline_yaml};

use super::run_yaml;

/// Run both legs over the same events; `work` holds the local dataset and
/// the spool.
pub async fn run(
    events: u64,
    patients: u32,
    target: &S3Target,
    work: &Path,
) -> anyhow::Result<StorageReport> {
    let local = run_yaml(
        &pipeline_yaml(events, patients, &work.join("local")),
        "bench-local.yaml",
    )
    .await?;
    let spool = work.join("spool");
    let s3 = run_yaml(
        &s3_pipeline_yaml(events, patients, target, &spool),
        "bench-s3.yaml",
    )
    .await?;
    let left = crate::storage::spool::waiting_files(&spool)?;
    anyhow::ensure!(
        left.is_empty(),
        "{} files were still waiting in the spool after the S3 run: the store failed",
        left.len()
    );
    Ok(StorageReport { local, s3 })
}
