//! s3s-fs (the s3s project's file-backed S3 server) started on a free
//! loopback port, for `vitalflow bench --storage` and `cargo bench --bench
//! storage`; the integration tests find the same binary here.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::net;

/// Where an S3 benchmark leg writes.
#[derive(Debug, Clone)]
pub struct S3Target {
    pub endpoint: String,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
}

/// Where the S3 server binary is: `VITALFLOW_S3_SERVER`, else the test
/// cache (`./scripts/test.sh` installs it into `/opt/vitalflow-cache/s3s-fs`).
pub fn s3_server_binary() -> PathBuf {
    std::env::var_os("VITALFLOW_S3_SERVER")
        .map(Into::into)
        .unwrap_or_else(|| "/opt/vitalflow-cache/s3s-fs/bin/s3s-fs".into())
}

/// s3s-fs on a free loopback port serving `root`; stopped on drop.
pub struct LocalS3Server {
    _server: net::LocalServer,
    pub target: S3Target,
}

impl LocalS3Server {
    /// Start `binary` (see [`s3_server_binary`]) with the bucket `bucket`
    /// (a directory under `root`), and wait until it listens.
    pub fn start(binary: &Path, root: &Path, bucket: &str) -> anyhow::Result<Self> {
        std::fs::create_dir_all(root.join(bucket))?;
        let port = net::try_free_port()?;
        let (access_key, secret_key) = ("bench".to_string(), "bench-secret".to_string());
        let mut command = Command::new(binary);
        command
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", &access_key, "--secret-key", &secret_key])
            .arg(root);
        let server = net::LocalServer::start(
            command,
            port,
            "install it with ./scripts/test.sh or set VITALFLOW_S3_SERVER",
        )?;
        Ok(Self {
            _server: server,
            target: S3Target {
                endpoint: format!("http://127.0.0.1:{port}"),
                bucket: bucket.to_string(),
                access_key,
                secret_key,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs where s3s-fs is installed (`./scripts/test.sh`); says so otherwise.
    #[test]
    fn the_server_listens_until_dropped() {
        let binary = s3_server_binary();
        if !binary.exists() {
            eprintln!("skipped: {} not installed", binary.display());
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let server = LocalS3Server::start(&binary, dir.path(), "b").unwrap();
        assert!(dir.path().join("b").is_dir());
        let port: u16 = server
            .target
            .endpoint
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(net::listening_within(port, std::time::Duration::ZERO));
        drop(server);
        assert!(!net::listening_within(
            port,
            std::time::Duration::from_millis(200)
        ));
    }

    #[test]
    fn a_missing_binary_is_named_with_the_way_to_install_it() {
        let dir = tempfile::tempdir().unwrap();
        let Err(e) = LocalS3Server::start(&dir.path().join("no-s3s-fs"), dir.path(), "b") else {
            panic!("started a binary that does not exist");
        };
        let message = e.to_string();
        assert!(
            message.contains("no-s3s-fs") && message.contains("VITALFLOW_S3_SERVER"),
            "{message}"
        );
    }
}
