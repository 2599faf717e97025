//! The storage benchmark (`vitalflow bench --storage`, `cargo bench --bench
//! storage`): the Parquet sink's throughput to the local disk vs to an S3
//! server, same data, same run. Both legs run the [`crate::pipeline`]
//! benchmark; the S3 leg's time runs until every file is uploaded and gone
//! from the spool (the end-of-run drain), so it measures data in the store,
//! not data on its way there.

use std::path::Path;

use crate::BenchReport;
pub use crate::s3::S3Target;

pub struct StorageReport {
    pub local: BenchReport,
    pub s3: BenchReport,
}

impl std::fmt::Display for StorageReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mib_per_s =
            |r: &BenchReport| r.bytes as f64 / 1048576.0 / r.elapsed.as_secs_f64().max(1e-9);
        writeln!(f, "-- local disk --\n{}", self.local)?;
        writeln!(f, "parquet out:   {:.1} MiB/s", mib_per_s(&self.local))?;
        writeln!(
            f,
            "-- S3 (loopback), until every file is uploaded --\n{}",
            self.s3
        )?;
        writeln!(f, "parquet out:   {:.1} MiB/s", mib_per_s(&self.s3))?;
        write!(
            f,
            "ratio S3/local: {:.2}",
            self.s3.events_per_second() / self.local.events_per_second().max(1e-9)
        )
    }
}

/// The benchmark pipeline with its sink pointed at `s3://bucket/bench`,
/// spooling in `spool`.
pub fn s3_pipeline_yaml(events: u64, patients: u32, target: &S3Target, spool: &Path) -> String {
    let local = crate::pipeline::pipeline_yaml(events, patients, Path::new("@@PATH@@"));
    local.replace(
        "    path: \"@@PATH@@\"\n",
        &format!(
            "    path: s3://{bucket}/bench\n    store:\n      endpoint: {endpoint}\n      region: us-east-1\n      access_key_id: {access}\n      secret_access_key: {secret}\n    spool:\n      path: \"{spool}\"\n",
            bucket = target.bucket,
            endpoint = target.endpoint,
            access = target.access_key,
            secret = target.secret_key,
            spool = spool.display(),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_s3_leg_is_the_local_pipeline_with_a_store_and_a_spool() {
        let target = S3Target {
            endpoint: "http://127.0.0.1:9".into(),
            bucket: "b".into(),
            access_key: "a".into(),
            secret_key: "s".into(),
        };
        let yaml = s3_pipeline_yaml(10, 2, &target, Path::new("/spool"));
        assert!(!yaml.contains("@@PATH@@"), "{yaml}");
        assert!(
            yaml.contains(
                "    path: s3://b/bench\n    store:\n      endpoint: http://127.0.0.1:9\n"
            ),
            "{yaml}"
        );
        assert!(
            yaml.contains("    spool:\n      path: \"/spool\"\n"),
            "{yaml}"
        );
    }
}
