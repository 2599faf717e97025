//! A real S3-compatible server per test: s3s-fs (the s3s project's
//! file-backed S3 server from crates.io), on its own port with its own
//! directory, so a test may stop and restart it. `./scripts/test.sh`
//! installs the binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::support::ChildGuard;

pub const ACCESS_KEY: &str = "vitalflow-test";
pub const SECRET_KEY: &str = "vitalflow-test-secret";
pub const BUCKET: &str = "vitals-lake";

pub struct S3Server {
    child: Option<ChildGuard>,
    port: u16,
    dir: tempfile::TempDir,
}

fn binary() -> PathBuf {
    let path = vitalflow_bench::s3::s3_server_binary();
    assert!(
        path.exists(),
        "{} not found: run the tests with ./scripts/test.sh, which installs s3s-fs (or set VITALFLOW_S3_SERVER)",
        path.display()
    );
    path
}

impl S3Server {
    /// A running server with the bucket `vitals-lake`.
    pub fn start() -> Self {
        let port = vitalflow_bench::net::free_port();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("data").join(BUCKET)).unwrap();
        let mut server = Self {
            child: None,
            port,
            dir,
        };
        server.spawn();
        server
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Where the server keeps the objects of the bucket, one file per
    /// object: what was stored, seen without going through S3.
    pub fn bucket_dir(&self) -> PathBuf {
        self.dir.path().join("data").join(BUCKET)
    }

    /// Start again on the same port with the same objects.
    pub fn spawn(&mut self) {
        self.stop();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("s3s.log"))
            .unwrap();
        let child = ChildGuard::spawn(
            Command::new(binary())
                .arg("--host")
                .arg("127.0.0.1")
                .arg("--port")
                .arg(self.port.to_string())
                .arg("--access-key")
                .arg(ACCESS_KEY)
                .arg("--secret-key")
                .arg(SECRET_KEY)
                .arg(self.dir.path().join("data"))
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(log),
        )
        .expect("starting s3s-fs");
        self.child = Some(child);
        vitalflow_bench::net::wait_for_port(self.port, "s3s-fs", &self.dir.path().join("s3s.log"));
    }

    /// SIGKILL: the store vanishes mid-stream.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill();
        }
    }

    /// Store settings for reading this server from the test process.
    pub fn settings(&self) -> std::collections::BTreeMap<String, String> {
        [
            ("endpoint", self.endpoint()),
            ("region", "us-east-1".to_string()),
            ("access_key_id", ACCESS_KEY.to_string()),
            ("secret_access_key", SECRET_KEY.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// The `store:` block of a sink writing to this server.
    pub fn store_yaml(&self, indent: &str) -> String {
        format!(
            "{indent}store:\n{indent}  endpoint: {}\n{indent}  region: us-east-1\n{indent}  access_key_id: {ACCESS_KEY}\n{indent}  secret_access_key: {SECRET_KEY}\n",
            self.endpoint()
        )
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Parquet objects below `dir` (the bucket directory), relative names.
pub fn stored_objects(dir: &Path) -> Vec<String> {
    crate::support::parquet_files(dir)
        .iter()
        .map(|path| path.strip_prefix(dir).unwrap().display().to_string())
        .collect()
}
