//! `cargo bench --bench storage`: the Parquet sink's throughput to the local
//! disk and to an S3 server on loopback, same data, same run. Starts s3s-fs
//! (`VITALFLOW_S3_SERVER`, or the test cache) on a free port unless
//! `VITALFLOW_BENCH_S3_ENDPOINT` (with `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY` and an existing bucket `VITALFLOW_BENCH_S3_BUCKET`)
//! names another server. `VITALFLOW_BENCH_EVENTS` sets the size (default
//! 10,000,000), `VITALFLOW_BENCH_PATIENTS` the ward (default 1,000).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::{Child, Command, Stdio};

use vitalflow::bench::storage::{S3Target, run};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn start_s3s_fs(root: &std::path::Path, bucket: &str) -> anyhow::Result<(Server, S3Target)> {
    let binary = std::env::var("VITALFLOW_S3_SERVER")
        .unwrap_or_else(|_| "/opt/vitalflow-cache/s3s-fs/bin/s3s-fs".into());
    std::fs::create_dir_all(root.join(bucket))?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let (access_key, secret_key) = ("bench".to_string(), "bench-secret".to_string());
    let child = Command::new(&binary)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--access-key", &access_key, "--secret-key", &secret_key])
        .arg(root)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| anyhow::anyhow!("starting {binary}: {e} (set VITALFLOW_S3_SERVER)"))?;
    let server = Server(child);
    for _ in 0..300 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            let target = S3Target {
                endpoint: format!("http://127.0.0.1:{port}"),
                bucket: bucket.to_string(),
                access_key,
                secret_key,
            };
            return Ok((server, target));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    anyhow::bail!("{binary} did not listen on {port} within 30 s")
}

fn main() -> anyhow::Result<()> {
    let events = env_or("VITALFLOW_BENCH_EVENTS", 10_000_000u64);
    let patients = env_or("VITALFLOW_BENCH_PATIENTS", 1_000u32);
    let work = tempfile::tempdir()?;
    let (_server, target) = match std::env::var("VITALFLOW_BENCH_S3_ENDPOINT") {
        Ok(endpoint) => (
            None,
            S3Target {
                endpoint,
                bucket: env_or("VITALFLOW_BENCH_S3_BUCKET", "vitalflow-bench".to_string()),
                access_key: std::env::var("AWS_ACCESS_KEY_ID")?,
                secret_key: std::env::var("AWS_SECRET_ACCESS_KEY")?,
            },
        ),
        Err(_) => {
            let (server, target) = start_s3s_fs(&work.path().join("s3"), "vitalflow-bench")?;
            (Some(server), target)
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(run(events, patients, &target, work.path()))?;
    println!(
        "storage bench: simulator ({patients} patients) -> NEWS2 SQL -> Parquet, local disk vs S3 at {}\n{report}",
        target.endpoint
    );
    Ok(())
}
