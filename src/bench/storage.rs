//! Parquet sink throughput to the local disk vs to an S3 server, same data,
//! same run (`cargo bench --bench storage`).
//!
//! Both legs run the benchmark pipeline (unpaced simulator -> NEWS2 scoring
//! SQL -> date-partitioned Parquet). The S3 leg's time runs until every file
//! is uploaded and gone from the spool (the end-of-run drain), so it measures
//! data in the store, not data on its way there.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::{BenchReport, pipeline_yaml, run_yaml};

/// Where the S3 leg writes.
#[derive(Debug, Clone)]
pub struct S3Target {
    pub endpoint: String,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
}

/// s3s-fs started for the benchmark on a free loopback port; stopped on drop.
pub struct LocalS3Server {
    child: Child,
    pub target: S3Target,
}

impl Drop for LocalS3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl LocalS3Server {
    /// `binary`: s3s-fs (`VITALFLOW_S3_SERVER`; `./scripts/test.sh`
    /// installs it into `/opt/vitalflow-cache/s3s-fs`).
    pub fn start(binary: &Path, root: &Path, bucket: &str) -> anyhow::Result<Self> {
        std::fs::create_dir_all(root.join(bucket))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let (access_key, secret_key) = ("bench".to_string(), "bench-secret".to_string());
        let child = Command::new(binary)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", &access_key, "--secret-key", &secret_key])
            .arg(root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                anyhow::anyhow!(
                    "starting {}: {e} (install it with ./scripts/test.sh or set VITALFLOW_S3_SERVER)",
                    binary.display()
                )
            })?;
        let server = Self {
            child,
            target: S3Target {
                endpoint: format!("http://127.0.0.1:{port}"),
                bucket: bucket.to_string(),
                access_key,
                secret_key,
            },
        };
        for _ in 0..300 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(server);
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        anyhow::bail!("{} did not listen on {port} within 30 s", binary.display())
    }
}

/// Where the S3 server binary is: `VITALFLOW_S3_SERVER`, else the test cache.
pub fn s3_server_binary() -> std::path::PathBuf {
    std::env::var_os("VITALFLOW_S3_SERVER")
        .map(Into::into)
        .unwrap_or_else(|| "/opt/vitalflow-cache/s3s-fs/bin/s3s-fs".into())
}

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

/// The benchmark pipeline with its sink pointed at `s3://bucket/bench`.
fn s3_yaml(events: u64, patients: u32, target: &S3Target, spool: &Path) -> String {
    let local = pipeline_yaml(events, patients, Path::new("@@PATH@@"));
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
    let s3 = run_yaml(&s3_yaml(events, patients, target, &spool), "bench-s3.yaml").await?;
    let left = crate::storage::spool::waiting_files(&spool)?;
    anyhow::ensure!(
        left.is_empty(),
        "{} files were still waiting in the spool after the S3 run: the store failed",
        left.len()
    );
    Ok(StorageReport { local, s3 })
}
