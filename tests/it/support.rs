//! Shared helpers: write a pipeline, run it in-process, read a dataset back.

use std::path::{Path, PathBuf};
use std::time::Duration;

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

/// Ports: one implementation for the tests, the benches and the
/// benchmark harness (`vitalflow-bench`).
pub use vitalflow_bench::net::{free_port, wait_for_port};

/// `vitalflow --log warn up --insecure-no-auth` serving on `port`, with
/// no model and its audit log and tokens in `dir`; the caller adds the
/// pipeline, environment and output.
pub fn up_command(port: u16, dir: &Path) -> std::process::Command {
    let mut command = std::process::Command::new(binary());
    command
        .args(["--log", "warn", "up", "--insecure-no-auth"])
        .args(["--model", "models/missing.onnx"])
        .args(["--addr", &format!("127.0.0.1:{port}")])
        .arg("--audit-dir")
        .arg(dir.join("audit"))
        .arg("--tokens")
        .arg(dir.join("tokens.yaml"));
    command
}

/// The JSON body of `GET http://127.0.0.1:{port}{path}`, or `None` while
/// the server is not answering (or not with JSON) yet.
pub async fn get_json(port: u16, path: &str) -> Option<serde_json::Value> {
    reqwest::get(format!("http://127.0.0.1:{port}{path}"))
        .await
        .ok()?
        .json()
        .await
        .ok()
}

// ---- programs the tests drive ---------------------------------------------

/// An external program some tests drive for real. `./scripts/test.sh`
/// installs every one of them and sets `VITALFLOW_TEST_REQUIRE_ALL=1`.
pub struct Program {
    /// What it is called, and looked up as on `PATH` (when `on_path`).
    pub name: &'static str,
    /// The environment variable that points at it.
    pub env: &'static str,
    /// Where it is looked for when `env` is not set.
    pub default: &'static str,
    /// Whether it is also looked up on `PATH` (not for a program whose
    /// helper only reads `env` and `default`).
    pub on_path: bool,
    /// How to get it.
    pub install: &'static str,
}

/// The Kafka-compatible broker (see `broker.rs`).
pub const TANSU: Program = Program {
    name: "tansu",
    env: "TANSU",
    default: "/opt/vitalflow-cache/tansu/bin/tansu",
    on_path: true,
    install: "run ./scripts/test.sh, which installs it",
};
/// The S3 server (see `s3_server.rs`, which reads the same variable).
pub const S3S_FS: Program = Program {
    name: "s3s-fs",
    env: "VITALFLOW_S3_SERVER",
    default: "/opt/vitalflow-cache/s3s-fs/bin/s3s-fs",
    on_path: false,
    install: "run ./scripts/test.sh, which installs it",
};
pub const CHROMIUM: Program = Program {
    name: "chromium",
    env: "CHROMIUM",
    default: "/usr/bin/chromium",
    on_path: true,
    install: "apt-get install chromium, or run ./scripts/test.sh",
};
pub const CHROMEDRIVER: Program = Program {
    name: "chromedriver",
    env: "CHROMEDRIVER",
    default: "/usr/bin/chromedriver",
    on_path: true,
    install: "apt-get install chromium-driver, or run ./scripts/test.sh",
};
pub const PROMETHEUS: Program = Program {
    name: "prometheus",
    env: "PROMETHEUS",
    default: "/usr/bin/prometheus",
    on_path: true,
    install: "apt-get install prometheus, or run ./scripts/test.sh",
};
pub const OPENSSL: Program = Program {
    name: "openssl",
    env: "OPENSSL",
    default: "/usr/bin/openssl",
    on_path: true,
    install: "apt-get install openssl",
};

/// Set (to anything but `0` or nothing) by `./scripts/test.sh`: a missing
/// program fails the test instead of skipping it, so CI never skips.
pub const REQUIRE_ALL: &str = "VITALFLOW_TEST_REQUIRE_ALL";

/// Where `program` is, if it is installed. If it is not, the test is
/// skipped (`None`, after saying so on stderr) in a plain `cargo test`,
/// and fails when [`REQUIRE_ALL`] is set. Use as
/// `let Some(path) = require(&TANSU) else { return };`.
pub fn require(program: &Program) -> Option<PathBuf> {
    let found = locate(program);
    if found.is_some() {
        return found;
    }
    let test = std::thread::current()
        .name()
        .unwrap_or("this test")
        .to_string();
    let looked = match std::env::var_os(program.env).filter(|v| !v.is_empty()) {
        Some(set) => format!("${} = {}", program.env, set.to_string_lossy()),
        None if program.on_path => format!("{}, PATH", program.default),
        None => program.default.to_string(),
    };
    let why = format!(
        "{test} needs {}, not found (looked at {looked}): set {}, or {}",
        program.name, program.env, program.install,
    );
    let required = std::env::var(REQUIRE_ALL).is_ok_and(|v| !v.is_empty() && v != "0");
    assert!(
        !required,
        "{why} ({REQUIRE_ALL} is set: nothing may be skipped)"
    );
    // Straight to stderr, not through `eprintln!`: the test harness
    // captures that for passing tests, and a skip must be seen.
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "skipped: {why}");
    None
}

fn locate(program: &Program) -> Option<PathBuf> {
    let executable = |path: &Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let on_path = |name: &Path| {
        std::env::split_paths(&std::env::var_os("PATH")?)
            .map(|dir| dir.join(name))
            .find(|path| executable(path))
    };
    if let Some(set) = std::env::var_os(program.env).filter(|v| !v.is_empty()) {
        // What the variable names is what is used, or nothing.
        let set = PathBuf::from(set);
        if set.components().count() == 1 && program.on_path {
            return on_path(&set);
        }
        return executable(&set).then_some(set);
    }
    let default = PathBuf::from(program.default);
    if executable(&default) {
        return Some(default);
    }
    if !program.on_path {
        return None;
    }
    on_path(Path::new(program.name))
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
        self.child.as_ref()?;
        let status = poll_until_blocking(within, || {
            self.child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
        })?;
        self.kill_group();
        self.child = None;
        Some(status)
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

/// A listener on a free loopback port, for a server inside the test.
pub async fn loopback_listener() -> tokio::net::TcpListener {
    tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding a loopback port")
}

/// An in-process HTTP server on a free loopback port. Dropping it cancels
/// its shutdown token.
pub struct TestServer {
    pub addr: std::net::SocketAddr,
    pub base: String,
    pub stop: CancellationToken,
    /// Ends when `server::serve` returns.
    pub task: tokio::task::JoinHandle<Result<(), vitalflow::server::ServerError>>,
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

// ---- waiting on a condition, with a deadline ------------------------------
//
// Tests never sleep to let something happen: they poll what they wait for
// (a port, a row count, a log line, a metric) until it is there or a
// deadline passes, and then fail saying what they waited for. The pause
// between looks starts at a few milliseconds, so a condition that is nearly
// true is seen at once, and grows to at most 250 ms, so a costly check (a
// query over a dataset) does not starve the pipeline it watches on a loaded
// machine. `poll_until*` is the one loop; the rest are built on it.

/// The pauses between two looks at a condition.
fn pauses() -> impl Iterator<Item = Duration> {
    std::iter::successors(Some(Duration::from_millis(5)), |pause| {
        Some((*pause * 2).min(Duration::from_millis(250)))
    })
}

/// Call `attempt` until it returns `Some` (returned) or `within` has passed
/// (`None`; `attempt` was called one last time at the deadline).
pub async fn poll_until<T, F, Fut>(within: Duration, mut attempt: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    for pause in pauses() {
        if let Some(found) = attempt().await {
            return Some(found);
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return None;
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
    }
    unreachable!("pauses() never ends")
}

/// [`poll_until`] for synchronous code (a `#[test]`, a child process's
/// start-up); async code uses [`poll_until`] and never blocks its thread.
pub fn poll_until_blocking<T>(
    within: Duration,
    mut attempt: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = std::time::Instant::now() + within;
    for pause in pauses() {
        if let Some(found) = attempt() {
            return Some(found);
        }
        let now = std::time::Instant::now();
        if now >= deadline {
            return None;
        }
        std::thread::sleep(pause.min(deadline - now));
    }
    unreachable!("pauses() never ends")
}

/// Wait until `attempt` returns something, or panic saying what was
/// awaited after `within`.
pub async fn wait_for<T, F, Fut>(within: Duration, what: &str, attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    poll_until(within, attempt)
        .await
        .unwrap_or_else(|| panic!("timed out after {within:?} waiting for {what}"))
}

/// Wait until `check` is true, or panic saying what was awaited after
/// `within`.
pub async fn wait_until<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    wait_for(within, what, || {
        let done = check();
        async move { done.await.then_some(()) }
    })
    .await
}

/// The tokens file and admin token every in-process test server admits
/// (one per test process; the file lives in a kept temporary directory
/// under the build's `target/tmp`, not the system's, so runs do not pile
/// up there).
pub struct TestCredentials {
    pub tokens: PathBuf,
    pub admin: String,
}

pub fn credentials() -> &'static TestCredentials {
    static CREDENTIALS: std::sync::OnceLock<TestCredentials> = std::sync::OnceLock::new();
    CREDENTIALS.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("vitalflow-test-tokens")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
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

/// `rows` (JSON objects with epoch-ms `ts`) as a date-partitioned Parquet
/// dataset at `dir`, one file per UTC day, as the Parquet sink lays it out.
/// Columns of `schema` a row lacks get zero values.
pub fn write_vitals(
    dir: &std::path::Path,
    schema: &arrow::datatypes::SchemaRef,
    rows: Vec<serde_json::Value>,
) {
    use std::collections::BTreeMap;
    let mut by_day: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in rows {
        let mut row = row.as_object().unwrap().clone();
        let ts = row["ts"].as_i64().unwrap();
        let day = chrono::DateTime::from_timestamp_millis(ts)
            .unwrap()
            .format("%Y-%m-%d")
            .to_string();
        for field in schema.fields() {
            use arrow::datatypes::DataType::*;
            let zero = match field.data_type() {
                Boolean => serde_json::json!(false),
                Utf8 | LargeUtf8 | Utf8View => serde_json::json!(""),
                Float32 | Float64 => serde_json::json!(0.0),
                _ => serde_json::json!(0),
            };
            row.entry(field.name().clone()).or_insert(zero);
        }
        by_day
            .entry(day)
            .or_default()
            .push(serde_json::Value::Object(row).to_string());
    }
    for (day, rows) in by_day {
        let part = dir.join(format!("date={day}"));
        std::fs::create_dir_all(&part).unwrap();
        let file =
            std::fs::File::create(part.join(format!("part-{}.parquet", rand::random::<u32>())))
                .unwrap();
        let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema.clone(), None).unwrap();
        let reader = arrow::json::ReaderBuilder::new(schema.clone())
            .build(std::io::Cursor::new(rows.join("\n")))
            .unwrap();
        for batch in reader {
            writer.write(&batch.unwrap()).unwrap();
        }
        writer.close().unwrap();
    }
}
