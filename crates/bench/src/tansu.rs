//! A Tansu Kafka broker started on a free loopback port, for the Kafka
//! benchmarks when no brokers are given: its in-memory engine (Tansu's
//! fastest) unless `TANSU_STORAGE_ENGINE` names another (`sqlite://...`).

use std::path::{Path, PathBuf};
use std::process::Command;

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
    _server: net::LocalServer,
    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub brokers: String,
}

impl LocalTansu {
    /// Start `binary` (see [`tansu_binary`]) in `dir` with [`engine`]'s
    /// storage, and wait until it listens.
    pub fn start(binary: &Path, dir: &Path) -> anyhow::Result<Self> {
        let port = net::try_free_port()?;
        let url = format!("tcp://127.0.0.1:{port}");
        let mut command = Command::new(binary);
        command
            .current_dir(dir)
            .args(["broker", "--listener-url", &url])
            .args(["--advertised-listener-url", &url])
            .args(["--storage-engine", &engine()]);
        Ok(Self {
            _server: net::LocalServer::start(
                command,
                port,
                "set TANSU or VITALFLOW_BENCH_BROKERS",
            )?,
            brokers: format!("127.0.0.1:{port}"),
        })
    }
}

/// The storage engine benchmarks start Tansu with: `TANSU_STORAGE_ENGINE`,
/// else `memory://tansu/`.
pub fn engine() -> String {
    std::env::var("TANSU_STORAGE_ENGINE").unwrap_or_else(|_| "memory://tansu/".into())
}

/// `VITALFLOW_BENCH_BROKERS` if set, else a Tansu started with its
/// database in `dir` (kept running while the returned guard lives).
pub fn bench_brokers(dir: &Path) -> anyhow::Result<(Option<LocalTansu>, String)> {
    match std::env::var("VITALFLOW_BENCH_BROKERS") {
        Ok(brokers) => Ok((None, brokers)),
        Err(_) => {
            let tansu = LocalTansu::start(&tansu_binary(), dir)?;
            let brokers = tansu.brokers.clone();
            Ok((Some(tansu), brokers))
        }
    }
}
