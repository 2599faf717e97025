//! `cargo bench --bench kafka`: simulator produce rate, raw consume rate and
//! the Kafka -> Parquet pipeline rate against one broker, side by side.
//! Uses `VITALFLOW_BENCH_BROKERS` if set, else starts Tansu (`TANSU`, or the
//! test cache) on a free port with its durable sqlite engine.
//! `VITALFLOW_BENCH_MESSAGES` sets the size (default 1,000,000).

/// mimalloc returns freed memory promptly; glibc malloc's RSS grew with
/// the length of the stream (fragmentation across threads).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Tansu(Child);

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_tansu(dir: &std::path::Path) -> anyhow::Result<(Tansu, String)> {
    let binary =
        std::env::var("TANSU").unwrap_or_else(|_| "/opt/vitalflow-cache/tansu/bin/tansu".into());
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let url = format!("tcp://127.0.0.1:{port}");
    let child = Command::new(&binary)
        .current_dir(dir)
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
        ])
        .args(["--storage-engine", "sqlite://tansu.db"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| {
            anyhow::anyhow!("starting {binary}: {e} (set TANSU or VITALFLOW_BENCH_BROKERS)")
        })?;
    let tansu = Tansu(child);
    for _ in 0..300 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok((tansu, format!("127.0.0.1:{port}")));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    anyhow::bail!("tansu did not start on port {port}")
}

fn main() -> anyhow::Result<()> {
    let messages: u64 = std::env::var("VITALFLOW_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir()?;
    let (_tansu, brokers) = match std::env::var("VITALFLOW_BENCH_BROKERS") {
        Ok(b) => (None, b),
        Err(_) => {
            let (t, b) = start_tansu(dir.path())?;
            (Some(t), b)
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(vitalflow::bench::kafka::run(&brokers, messages, dir.path()))?;
    println!("kafka bench against {brokers}:\n{report}");
    Ok(())
}
