//! Shared helpers: write a pipeline, run it in-process, read a dataset back.

use std::path::{Path, PathBuf};

use arrow::record_batch::RecordBatch;
use tokio_util::sync::CancellationToken;
use vitalflow::engine::{self, RunOptions, RunSummary};
use vitalflow::query::{Dataset, query_context, run_sql};
use vitalflow::spec;
use vitalflow::storage::Location;

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_vitalflow")
}

/// Run the binary to completion: (succeeded, stdout, stderr).
pub fn run_binary<I, S>(args: I) -> (bool, String, String)
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let output = std::process::Command::new(binary())
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary()));
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Write `yaml` as `pipeline.yaml` in `dir` and return its path.
pub fn write_pipeline(dir: &Path, yaml: &str) -> PathBuf {
    let path = dir.join("pipeline.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

/// Load, plan and run a pipeline file to completion.
pub async fn run_pipeline(path: &Path) -> RunSummary {
    run_pipeline_with(path, RunOptions::default()).await
}

/// [`run_pipeline`] with these options.
pub async fn run_pipeline_with(path: &Path, options: RunOptions) -> RunSummary {
    let spec = spec::load(path).unwrap_or_else(|e| panic!("{e}"));
    let planned = engine::plan(spec).await.unwrap_or_else(|e| panic!("{e}"));
    engine::run(&planned, CancellationToken::new(), options)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A live sink's settings with its defaults (for a hub made by a test).
pub fn live_config() -> vitalflow::sinks::LiveSinkConfig {
    serde_saphyr::from_str("input: scored").unwrap()
}

/// Run SQL over one dataset directory registered as `t`.
pub async fn sql(dataset: &Path, query: &str) -> Vec<RecordBatch> {
    let ctx = query_context(&[Dataset {
        date_partitioned: has_date_partitions(dataset),
        ..Dataset::at("t", Location::Local(dataset.to_path_buf()))
    }])
    .await
    .unwrap();
    run_sql(&ctx, query)
        .await
        .unwrap_or_else(|e| panic!("{query}: {e}"))
        .1
}

/// A single i64 result.
pub async fn scalar_i64(dataset: &Path, query: &str) -> i64 {
    use arrow::array::AsArray;
    let batches = sql(dataset, query).await;
    let column =
        arrow::compute::cast(batches[0].column(0), &arrow::datatypes::DataType::Int64).unwrap();
    column
        .as_primitive::<arrow::datatypes::Int64Type>()
        .value(0)
}

/// Every file below `dir` (recursively) whose name satisfies `keep`.
pub fn files_below(dir: &Path, keep: impl Fn(&str) -> bool + Copy) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_below(&path, keep));
        } else if keep(&entry.file_name().to_string_lossy()) {
            out.push(path);
        }
    }
    out.sort();
    out
}

pub fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    files_below(dir, |n| n.ends_with(".parquet") && !n.starts_with('.'))
}

/// Read a whole Parquet file; panics if it is not complete and valid.
pub fn read_parquet(path: &Path) -> Vec<RecordBatch> {
    let file = std::fs::File::open(path).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .build()
        .unwrap();
    reader
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn has_date_partitions(dataset: &Path) -> bool {
    std::fs::read_dir(dataset)
        .map(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("date="))
        })
        .unwrap_or(false)
}

/// A string column as `StringArray`, whatever string type the reader chose
/// (DataFusion reads Parquet strings as Utf8View by default).
pub fn utf8(column: &arrow::array::ArrayRef) -> arrow::array::StringArray {
    use arrow::array::AsArray;
    arrow::compute::cast(column, &arrow::datatypes::DataType::Utf8)
        .unwrap()
        .as_string::<i32>()
        .clone()
}

/// Wait until something listens on `127.0.0.1:port`, or fail with the
/// server's log.
pub fn wait_for_port(port: u16, what: &str, log: &Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not listen on {port} within 30 s; log: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A child process the test owns: started in a process group of its own,
/// and the whole group killed (SIGKILL) and reaped when the guard is
/// dropped, whether the test passes, fails or panics. A process that
/// starts others (chromedriver starts Chromium, which starts its helpers)
/// takes them with it.
pub struct ChildGuard {
    child: Option<std::process::Child>,
}

impl ChildGuard {
    /// Spawn `command` in a new process group.
    pub fn spawn(command: &mut std::process::Command) -> std::io::Result<Self> {
        use std::os::unix::process::CommandExt;
        let child = command.process_group(0).spawn()?;
        Ok(Self { child: Some(child) })
    }

    /// The process, e.g. to take its piped output.
    pub fn child_mut(&mut self) -> &mut std::process::Child {
        self.child.as_mut().expect("the child was already reaped")
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Send `signal` to the process alone (not its group).
    pub fn signal(&self, signal: i32) {
        if let Some(child) = &self.child {
            // SAFETY: kill(2) with a pid we spawned and have not reaped.
            unsafe { libc::kill(child.id() as i32, signal) };
        }
    }

    /// The exit status once it has exited, waiting at most `within`.
    pub fn wait_for_exit(
        &mut self,
        within: std::time::Duration,
    ) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + within;
        let child = self.child.as_mut()?;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.kill_group();
                self.child = None;
                return Some(status);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// SIGKILL the whole group and reap the leader.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: a negative pid addresses the group this guard created
            // (its leader has not been reaped yet, so the id is still ours).
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn kill_group(&self) {
        if let Some(child) = &self.child {
            // SAFETY: as in `kill`; members may outlive an exited leader.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Processes (other than this one) whose command line mentions `needle`.
pub fn processes_mentioning(needle: &str) -> Vec<u32> {
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|cmd| {
                    String::from_utf8_lossy(&cmd)
                        .replace('\0', " ")
                        .contains(needle)
                })
                .unwrap_or(false)
        })
        .collect()
}

/// A free TCP port on loopback (the OS picks it; the caller binds it next).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An in-process HTTP server on a free loopback port. Dropping it cancels
/// its shutdown token.
pub struct TestServer {
    pub addr: std::net::SocketAddr,
    pub base: String,
    pub stop: CancellationToken,
    /// Ends when `server::serve` returns.
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Serve `state` on `127.0.0.1:0`, admitting the test credentials
/// ([`client`] sends the admin's).
pub async fn start_server(state: vitalflow::server::AppState) -> TestServer {
    let listener = vitalflow::server::bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    // A state without its own credentials admits the test admin.
    let state = if state.auth.has_credentials() || state.auth.insecure {
        state
    } else {
        secured(state)
    };
    let task = tokio::spawn(vitalflow::server::serve(listener, state, stop.clone()));
    TestServer {
        addr,
        base: format!("http://{addr}"),
        stop,
        task,
    }
}

/// Poll `attempt` every 20 ms until it returns something, or panic with
/// `what` after `within`.
pub async fn wait_for<T, F, Fut>(within: std::time::Duration, what: &str, mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(found) = attempt().await {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {within:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The tokens file and admin token every in-process test server admits
/// (one per test process; the file lives in a kept temporary directory).
pub struct TestCredentials {
    pub tokens: PathBuf,
    pub admin: String,
}

pub fn credentials() -> &'static TestCredentials {
    static CREDENTIALS: std::sync::OnceLock<TestCredentials> = std::sync::OnceLock::new();
    CREDENTIALS.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("vitalflow-test-tokens")
            .tempdir()
            .unwrap()
            .keep();
        let tokens = dir.join("tokens.yaml");
        let admin = vitalflow::auth::tokens::create(
            &tokens,
            "test-admin",
            [vitalflow::auth::Role::Admin].into_iter().collect(),
        )
        .unwrap();
        TestCredentials { tokens, admin }
    })
}

/// Access control admitting the test tokens file's principals.
pub fn test_auth() -> vitalflow::auth::Authenticator {
    vitalflow::auth::Authenticator {
        tokens: Some(vitalflow::auth::TokensFile::open(&credentials().tokens).unwrap()),
        oidc: None,
        sessions: vitalflow::auth::Sessions::new(std::time::Duration::from_secs(3600)),
        insecure: false,
    }
}

/// `state` with access control on: the test admin's token gets in.
pub fn secured(state: vitalflow::server::AppState) -> vitalflow::server::AppState {
    state.with_auth(test_auth())
}

/// A token for `name` with `roles`, added to the test tokens file.
pub fn token_for(name: &str, roles: &[vitalflow::auth::Role]) -> String {
    // Tests run in parallel; the file is read, extended and replaced.
    static WRITING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = WRITING.lock().unwrap_or_else(|e| e.into_inner());
    let unique = format!("{name}-{:08x}", rand::random::<u32>());
    vitalflow::auth::tokens::create(
        &credentials().tokens,
        &unique,
        roles.iter().copied().collect(),
    )
    .unwrap()
}

/// An HTTP client that sends `token` as its bearer credential.
pub fn client_with(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

/// An HTTP client with the test admin's credential.
pub fn client() -> reqwest::Client {
    client_with(&credentials().admin)
}
