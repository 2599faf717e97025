//! Loopback ports: one implementation for the benchmark servers, the
//! `cargo bench` targets and the root package's integration tests.

use std::path::Path;
use std::time::{Duration, Instant};

/// A free TCP port on loopback (the OS picks it; the caller binds it next).
/// Panics if no loopback port can be bound at all.
pub fn free_port() -> u16 {
    try_free_port().expect("binding a loopback port")
}

/// [`free_port`] as a `Result`.
pub fn try_free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Whether something accepts connections on `127.0.0.1:port` within
/// `within`, trying every 50 ms.
pub fn listening_within(port: u16, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// How long a server gets to start listening.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Wait until something listens on `127.0.0.1:port`, or panic with the
/// server's log (`what` names the server): the tests' form.
pub fn wait_for_port(port: u16, what: &str, log: &Path) {
    assert!(
        listening_within(port, START_TIMEOUT),
        "{what} did not listen on {port} within {} s; log: {}",
        START_TIMEOUT.as_secs(),
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// A server process listening on a loopback port; killed (and reaped) on
/// drop. The one way the harness starts the servers it measures against.
pub struct LocalServer {
    child: std::process::Child,
    pub port: u16,
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl LocalServer {
    /// Spawn `command` (told to listen on `port`, output discarded) and
    /// wait until it listens. `hint` says how to get the program when it
    /// cannot be started.
    pub fn start(
        mut command: std::process::Command,
        port: u16,
        hint: &str,
    ) -> anyhow::Result<Self> {
        let program = command.get_program().to_string_lossy().into_owned();
        let child = command
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| anyhow::anyhow!("starting {program}: {e} ({hint})"))?;
        let server = Self { child, port };
        anyhow::ensure!(
            listening_within(port, START_TIMEOUT),
            "{program} did not listen on {port} within {} s",
            START_TIMEOUT.as_secs()
        );
        Ok(server)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bound_port_is_listening_and_a_free_one_is_not() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(listening_within(port, Duration::ZERO));
        drop(listener);
        assert!(!listening_within(port, Duration::from_millis(120)));
        assert_ne!(free_port(), 0);
    }
}
