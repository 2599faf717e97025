//! A real Kafka-compatible broker (Tansu, durable sqlite engine) per test,
//! on its own port, so a test may kill and restart it without disturbing
//! the others. `./scripts/test.sh` installs the binary; without it (and
//! without `VITALFLOW_TEST_BROKER` for the shared one) the constructors
//! return `None` and the test is skipped (see `support::require`).

use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::support::{ChildGuard, TANSU, free_port, loopback_listener, require};

pub struct Broker {
    /// The Tansu binary.
    tansu: PathBuf,
    child: Option<ChildGuard>,
    port: u16,
    /// The port clients are told to use, when not `port` (a TLS front).
    advertised: Option<u16>,
    dir: tempfile::TempDir,
}

impl Broker {
    /// A broker that is running (`None`: no Tansu, the test is skipped).
    pub fn start() -> Option<Self> {
        let mut broker = Self::reserved()?;
        broker.spawn();
        Some(broker)
    }

    /// A port and a data directory, but no process yet (for "the broker is
    /// down at startup"); `None`: no Tansu, the test is skipped.
    pub fn reserved() -> Option<Self> {
        Some(Self {
            tansu: require(&TANSU)?,
            child: None,
            port: free_port(),
            advertised: None,
            dir: tempfile::tempdir().unwrap(),
        })
    }

    /// A broker reached over TLS only: Tansu has no TLS listener, so a
    /// TLS-terminating front (rustls, with `cert` and `key`) listens on
    /// another port, forwards to the broker, and is what the broker
    /// advertises, so every connection a client opens (bootstrap, then the
    /// advertised address) goes through TLS.
    pub async fn behind_tls(
        cert: &std::path::Path,
        key: &std::path::Path,
    ) -> Option<(Self, TlsFront)> {
        let mut broker = Self::reserved()?;
        let front = loopback_listener().await;
        let front_port = front.local_addr().unwrap().port();
        broker.advertised = Some(front_port);
        broker.spawn();
        let acceptor = vitalflow::server::tls::acceptor(cert, key).unwrap();
        let backend = broker.addr();
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = front.accept().await else {
                    return;
                };
                let (acceptor, backend) = (acceptor.clone(), backend.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(client).await else {
                        return;
                    };
                    let Ok(mut plain) = tokio::net::TcpStream::connect(&backend).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });
        Some((
            broker,
            TlsFront {
                addr: format!("127.0.0.1:{front_port}"),
                task,
            },
        ))
    }

    /// Start (or start again) on the same port with the same data.
    pub fn spawn(&mut self) {
        self.kill();
        self.launch();
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn launch(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let advertised = format!("tcp://127.0.0.1:{}", self.advertised.unwrap_or(self.port));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("tansu.log"))
            .unwrap();
        let child = ChildGuard::spawn(
            Command::new(&self.tansu)
                .current_dir(self.dir.path())
                .arg("broker")
                .arg("--listener-url")
                .arg(&url)
                .arg("--advertised-listener-url")
                .arg(&advertised)
                .arg("--storage-engine")
                .arg("sqlite://tansu.db")
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(log),
        )
        .expect("starting tansu");
        self.child = Some(child);
        crate::support::wait_for_port(self.port, "tansu", &self.dir.path().join("tansu.log"));
    }

    /// SIGKILL: the broker vanishes mid-stream.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill();
        }
    }
}

/// The TLS front of a [`Broker::behind_tls`]; stops with the test.
pub struct TlsFront {
    /// Where clients connect, with `security.protocol=ssl`.
    pub addr: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The broker `./scripts/test.sh` started for the whole run
/// (`VITALFLOW_TEST_BROKER`), or a private one. Tests sharing it use their
/// own topics and groups, and never restart or delete anything.
pub enum SharedBroker {
    External(String),
    Owned(Broker),
}

impl SharedBroker {
    /// `None`: neither a shared broker nor Tansu, the test is skipped.
    pub fn get() -> Option<Self> {
        match std::env::var("VITALFLOW_TEST_BROKER") {
            Ok(addr) if !addr.is_empty() => Some(SharedBroker::External(addr)),
            _ => Broker::start().map(SharedBroker::Owned),
        }
    }

    pub fn addr(&self) -> String {
        match self {
            SharedBroker::External(addr) => addr.clone(),
            SharedBroker::Owned(broker) => broker.addr(),
        }
    }
}
