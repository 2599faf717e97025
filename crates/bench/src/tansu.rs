//! A Tansu Kafka broker (durable sqlite engine) started on a free loopback
//! port, for `cargo bench --bench kafka` when no brokers are given.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::net;

/// Where the Tansu binary is: `TANSU`, else the test cache
/// (`./scripts/test.sh` installs it into `/opt/vitalflow-cache/tansu`).
pub fn tansu_binary() -> PathBuf {
    std::env::var_os("TANSU")
        .map(Into::into)
        .unwrap_or_else(|| "/opt/vitalflow-cache/tansu/bin/tansu".into())
}

/// A running broker; killed on drop.
pub struct LocalTansu {
    child: Child,
    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub brokers: String,
}

impl Drop for LocalTansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl LocalTansu {
    /// Start `binary` (see [`tansu_binary`]) with its sqlite database in
    /// `dir`, and wait until it listens.
    pub fn start(binary: &Path, dir: &Path) -> anyhow::Result<Self> {
        let port = net::try_free_port()?;
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(binary)
            .current_dir(dir)
            .args(["broker", "--listener-url", &url])
            .args(["--advertised-listener-url", &url])
            .args(["--storage-engine", "sqlite://tansu.db"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                anyhow::anyhow!(
                    "starting {}: {e} (set TANSU or VITALFLOW_BENCH_BROKERS)",
                    binary.display()
                )
            })?;
        let tansu = Self {
            child,
            brokers: format!("127.0.0.1:{port}"),
        };
        anyhow::ensure!(
            net::listening_within(port, net::START_TIMEOUT),
            "tansu did not start on port {port}"
        );
        Ok(tansu)
    }
}
