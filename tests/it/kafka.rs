//! Kafka end to end against a real broker (Tansu): the simulator as
//! producer, the Kafka source in a consumer group, exactly-once Parquet
//! across kill -9, rebalances and broker restarts, and dead letters.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use arrow::array::{AsArray, RecordBatch};
use tokio_util::sync::CancellationToken;
use vitalflow::engine::{self, RunOptions};
use vitalflow::kafka::{ClientSettings, KeyedProducer, TopicSettings};
use vitalflow::query::{Dataset, query_context, run_sql};
use vitalflow::sources::simulator::{
    Pacing, PublishOptions, SimulatorConfig, VitalsGenerator, publish_readings,
};
use vitalflow::spec;
use vitalflow::storage::Location;

use crate::broker::{Broker, SharedBroker};
use crate::support::{
    ChildGuard, S3S_FS, binary, parquet_files, poll_until, require, wait_for, wait_until,
};

pub(crate) const START: &str = "2026-11-26T08:00:00Z";

pub(crate) fn unique(prefix: &str) -> String {
    format!("{prefix}-{:08x}", rand::random::<u32>())
}

/// The simulated ward the tests publish: deterministic, so the expected
/// rows can be generated again on this side.
pub(crate) fn ward(count: u64, interval: Duration) -> SimulatorConfig {
    SimulatorConfig {
        patients: 20,
        interval: vitalflow::common::HumanDuration(interval),
        seed: 7,
        pacing: Pacing::Realtime,
        limit: Some(count),
        start: Some(START.into()),
        ..Default::default()
    }
}

pub(crate) fn unpaced(count: u64) -> SimulatorConfig {
    SimulatorConfig {
        pacing: Pacing::Unpaced,
        batch_rows: 1000,
        ..ward(count, Duration::from_millis(500))
    }
}

pub(crate) async fn publish(brokers: &str, topic: &str, simulator: SimulatorConfig) -> u64 {
    let options = PublishOptions {
        client: ClientSettings::new(brokers),
        topic: topic.to_string(),
        create_topic: Some(TopicSettings {
            partitions: 4,
            ..Default::default()
        }),
        flush_timeout: Duration::from_secs(120),
        format: vitalflow::interop::Format::Json,
    };
    let summary = publish_readings(simulator, options, CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("publishing: {e:#}"));
    assert_eq!(summary.failed, 0, "{summary:?}");
    assert_eq!(summary.delivered, summary.produced, "{summary:?}");
    summary.produced
}

/// The shipped Kafka pipeline, with a short roll age so that checkpoints
/// (and so published files and commits) come every second.
fn shipped_pipeline(dir: &Path) -> PathBuf {
    shipped_pipeline_rolling(dir, "1s", "vitals-kafka.yaml")
}

/// The shipped Kafka pipeline as `dir/name`, its files rolled after
/// `max_age`.
fn shipped_pipeline_rolling(dir: &Path, max_age: &str, name: &str) -> PathBuf {
    let sql = std::fs::canonicalize("sql/vitals_scored.sql").unwrap();
    let yaml = std::fs::read_to_string("pipelines/vitals-kafka.yaml")
        .unwrap()
        .replace("../sql/vitals_scored.sql", &sql.display().to_string())
        .replace("max_age: 1m", &format!("max_age: {max_age}"));
    assert!(yaml.contains(&format!("max_age: {max_age}")));
    let path = dir.join(name);
    std::fs::write(&path, yaml).unwrap();
    path
}

/// The consumer group session of the pipelines started here: a member
/// killed without leaving holds its partitions for this long.
pub(crate) const SESSION_TIMEOUT: Duration = Duration::from_secs(6);

/// `max.poll.interval.ms` where a test sets it (at least the session).
const MAX_POLL_INTERVAL: Duration = Duration::from_secs(7);

/// Environment the shipped pipeline reads.
pub(crate) fn pipeline_env(
    brokers: &str,
    topic: &str,
    group: &str,
    data: &Path,
) -> Vec<(&'static str, String)> {
    vec![
        ("KAFKA_BROKERS", brokers.to_string()),
        ("VITALS_TOPIC", topic.to_string()),
        ("KAFKA_GROUP", group.to_string()),
        (
            "KAFKA_SESSION_TIMEOUT_MS",
            SESSION_TIMEOUT.as_millis().to_string(),
        ),
        ("VITALFLOW_DATA_DIR", data.display().to_string()),
    ]
}

/// The shipped pipeline with its `${...}` filled in, for in-process runs
/// (tests share the process environment, so nothing is set globally).
pub(crate) fn shipped_yaml_for(dir: &Path, brokers: &str, topic: &str, group: &str) -> PathBuf {
    let path = shipped_pipeline(dir);
    let yaml = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        fill_env(&yaml, &pipeline_env(brokers, topic, group, dir)),
    )
    .unwrap();
    path
}

/// `yaml` with every `${VAR...}` of `env` filled in.
pub(crate) fn fill_env(yaml: &str, env: &[(&'static str, String)]) -> String {
    env.iter().fold(yaml.to_string(), |text, (var, value)| {
        regex_free_replace_env(&text, var, value)
    })
}

/// Replace `${VAR:-default}` (or `${VAR}`) with `value`.
fn regex_free_replace_env(text: &str, var: &str, value: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    let open = format!("${{{var}");
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        if !(after.starts_with('}') || after.starts_with(":-")) {
            out.push_str(&rest[..start + open.len()]);
            rest = after;
            continue;
        }
        let end = after.find('}').expect("closing brace");
        out.push_str(&rest[..start]);
        out.push_str(value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Plan and start a pipeline file in this process; cancel the token to stop it.
pub(crate) async fn start_in_process(
    path: &Path,
) -> (
    CancellationToken,
    tokio::task::JoinHandle<Result<engine::RunSummary, engine::EngineError>>,
) {
    start_in_process_with(path, RunOptions::default()).await
}

/// [`start_in_process`] with these options (e.g. a store-status board to read).
async fn start_in_process_with(
    path: &Path,
    options: RunOptions,
) -> (
    CancellationToken,
    tokio::task::JoinHandle<Result<engine::RunSummary, engine::EngineError>>,
) {
    let planned = engine::plan(spec::load(path).unwrap()).await.unwrap();
    let stop = CancellationToken::new();
    let token = stop.clone();
    let run = tokio::spawn(async move { engine::run(&planned, token, options).await });
    (stop, run)
}

pub(crate) async fn rows_in(dataset: &Path) -> u64 {
    if parquet_files(dataset).is_empty() {
        return 0;
    }
    count(dataset, "SELECT count(*) FROM t").await
}

pub(crate) async fn count(dataset: &Path, sql: &str) -> u64 {
    count_in(local(dataset), sql).await
}

async fn count_in(dataset: Dataset, sql: &str) -> u64 {
    let batches = query_in(dataset, sql, None).await;
    let column =
        arrow::compute::cast(batches[0].column(0), &arrow::datatypes::DataType::Int64).unwrap();
    column
        .as_primitive::<arrow::datatypes::Int64Type>()
        .value(0) as u64
}

/// A local dataset directory as table `t`.
fn local(dataset: &Path) -> Dataset {
    Dataset {
        date_partitioned: crate::support::has_date_partitions(dataset),
        ..Dataset::at("t", Location::Local(dataset.to_path_buf()))
    }
}

/// SQL over `dataset` as `t` (and `expected` if given).
pub(crate) async fn query(
    dataset: &Path,
    sql: &str,
    expected: Option<RecordBatch>,
) -> Vec<RecordBatch> {
    query_in(local(dataset), sql, expected).await
}

/// SQL over any dataset registered as `t` (and `expected` if given).
async fn query_in(dataset: Dataset, sql: &str, expected: Option<RecordBatch>) -> Vec<RecordBatch> {
    let ctx = query_context(&[Dataset {
        name: "t".into(),
        ..dataset
    }])
    .await
    .unwrap();
    if let Some(batch) = expected {
        ctx.register_batch("expected", batch).unwrap();
    }
    run_sql(&ctx, sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .1
}

/// The rows in `dataset` once there are at least `want`, or after `within`
/// however many there are (the caller's assertion then says what is missing).
pub(crate) async fn wait_for_rows(dataset: &Path, want: u64, within: Duration) -> u64 {
    let enough = poll_until(within, || async {
        let have = rows_in(dataset).await;
        (have >= want).then_some(have)
    })
    .await;
    match enough {
        Some(have) => have,
        None => rows_in(dataset).await,
    }
}

/// Exactly the generated readings, each once, with every field intact.
pub(crate) async fn assert_exactly(dataset: &Path, simulator: &SimulatorConfig, n: u64) {
    assert_exactly_in(local(dataset), simulator, n).await
}

async fn assert_exactly_in(dataset: Dataset, simulator: &SimulatorConfig, n: u64) {
    let start = chrono::DateTime::parse_from_rfc3339(START)
        .unwrap()
        .timestamp_millis();
    let mut generator = VitalsGenerator::new(simulator, start);
    let mut batches = Vec::new();
    while let Some(b) = generator.next_batch(10_000) {
        batches.push(b);
    }
    let expected = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
    assert_eq!(expected.num_rows() as u64, n);
    let columns = "patient_id, ts, heart_rate, spo2, systolic_bp, diastolic_bp, respiratory_rate, temperature, consciousness, on_oxygen";
    assert_eq!(
        count_in(dataset.clone(), "SELECT count(*) FROM t").await,
        n,
        "row count"
    );
    assert_eq!(
        count_in(
            dataset.clone(),
            "SELECT count(*) FROM (SELECT DISTINCT patient_id, ts FROM t)"
        )
        .await,
        n,
        "every reading once"
    );
    let missing = query_in(
        dataset,
        &format!(
            "SELECT count(*) FROM (SELECT {columns} FROM expected EXCEPT SELECT {columns} FROM t)"
        ),
        Some(expected),
    )
    .await;
    let missing = missing[0]
        .column(0)
        .as_primitive::<arrow::datatypes::Int64Type>()
        .value(0);
    assert_eq!(missing, 0, "readings missing or altered in the dataset");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produced_readings_are_stored_exactly_once_with_their_values() {
    let Some(broker) = SharedBroker::get() else {
        return;
    };
    let topic = unique("once");
    let n = 6_000;
    let simulator = unpaced(n);
    assert_eq!(publish(&broker.addr(), &topic, simulator.clone()).await, n);

    let dir = tempfile::tempdir().unwrap();
    let path = shipped_yaml_for(dir.path(), &broker.addr(), &topic, &unique("g"));
    let (stop, run) = start_in_process(&path).await;
    let vitals = dir.path().join("vitals");
    let have = wait_for_rows(&vitals, n, Duration::from_secs(120)).await;
    // Consumer lag per partition reaches the metrics (librdkafka statistics).
    let lag_series =
        format!("vitalflow_kafka_consumer_lag_messages{{source=\"monitors\",topic=\"{topic}\"");
    wait_until(
        Duration::from_secs(20),
        &format!("a consumer lag series for {topic}"),
        || async { vitalflow::telemetry::metrics::render().contains(&lag_series) },
    )
    .await;
    stop.cancel();
    let summary = run.await.unwrap().unwrap_or_else(|e| panic!("{e}"));
    assert!(have >= n, "only {have} of {n} rows arrived");
    assert_exactly(&vitals, &simulator, n).await;
    assert_eq!(summary.records_in(), n);
    // NEWS2 was scored on the way.
    assert_eq!(
        count(&vitals, "SELECT count(*) FROM t WHERE news2_score IS NULL").await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_go_to_dead_letters_with_their_reason() {
    let Some(broker) = SharedBroker::get() else {
        return;
    };
    let topic = unique("dead");
    let n = 500;
    publish(&broker.addr(), &topic, unpaced(n)).await;
    let good = r#"{"patient_id":"PX","ts":"2026-11-26T08:00:00Z","heart_rate":72,"spo2":97,"systolic_bp":120,"diastolic_bp":80,"respiratory_rate":16,"temperature":37.0,"consciousness":"A","on_oxygen":false}"#;
    let bad: Vec<(String, &str, &str)> = vec![
        (
            "{\"patient_id\": \"PX\", ".into(),
            "invalid_json",
            "not valid JSON",
        ),
        (good.replace(r#""spo2":97,"#, ""), "missing_field", "`spo2`"),
        (
            good.replace(r#""heart_rate":72"#, r#""heart_rate":"fast""#),
            "wrong_type",
            "heart_rate",
        ),
        (
            good.replace(r#""spo2":97"#, r#""spo2":140"#),
            "out_of_range",
            "`spo2` = 140",
        ),
        (
            good.replace(r#""heart_rate":72"#, r#""heart_rate":-5"#),
            "out_of_range",
            "`heart_rate` = -5",
        ),
        (
            good.replace(r#""consciousness":"A""#, r#""consciousness":"Q""#),
            "out_of_range",
            "not one of",
        ),
        ("[1, 2, 3]".into(), "not_an_object", "an array"),
        (String::new(), "empty", "no payload"),
        // What a lenient decoder would silently change instead of refusing.
        (
            good.replace(r#""spo2":97"#, r#""spo2":97.5"#),
            "wrong_type",
            "`spo2`: 97.5 is not a whole number",
        ),
        (
            good.replace(r#""heart_rate":72"#, r#""heart_rate":"72""#),
            "wrong_type",
            "`heart_rate`: expected an integer, found a string",
        ),
        (
            good.replace(r#""on_oxygen":false"#, r#""on_oxygen":0"#),
            "wrong_type",
            "`on_oxygen`: expected true or false",
        ),
        (
            good.replace(r#""spo2":97"#, r#""spo2":1e20"#),
            "wrong_type",
            "does not fit int32",
        ),
        // One reading from the year 9999 would hold every window open and
        // send later real readings to the late table.
        (
            good.replace("2026-11-26T08:00:00Z", "9999-12-31T23:59:59Z"),
            "implausible_time",
            "ahead of the clock",
        ),
    ];
    let producer = KeyedProducer::new(&ClientSettings::new(&broker.addr()), &topic, |e| {
        panic!("delivery failed: {e}")
    })
    .unwrap();
    for (payload, _, _) in &bad {
        producer.send(b"PX", payload.as_bytes()).unwrap();
    }
    producer.flush(Duration::from_secs(60)).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let path = shipped_yaml_for(dir.path(), &broker.addr(), &topic, &unique("g"));
    let (stop, run) = start_in_process(&path).await;
    let vitals = dir.path().join("vitals");
    let dead = dir.path().join("dead_letters");
    // On a timeout the assertions below say which table fell short.
    poll_until(Duration::from_secs(120), || async {
        (rows_in(&vitals).await >= n && rows_in(&dead).await >= bad.len() as u64).then_some(())
    })
    .await;
    stop.cancel();
    let summary = run.await.unwrap().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rows_in(&vitals).await, n, "good readings stored");
    assert_eq!(summary.sources[0].1.dead_letters, bad.len() as u64);
    let rows = query(
        &dead,
        "SELECT reason_kind, reason, payload, topic, \"offset\" FROM t ORDER BY \"offset\"",
        None,
    )
    .await;
    let rows = arrow::compute::concat_batches(&rows[0].schema(), &rows).unwrap();
    assert_eq!(rows.num_rows(), bad.len());
    // The query layer reads strings as views; normalise for the checks.
    let plain = |i: usize, to: arrow::datatypes::DataType| {
        arrow::compute::cast(rows.column(i), &to).unwrap()
    };
    let (kinds, reasons, payloads, topics) = (
        plain(0, arrow::datatypes::DataType::Utf8),
        plain(1, arrow::datatypes::DataType::Utf8),
        plain(2, arrow::datatypes::DataType::Binary),
        plain(3, arrow::datatypes::DataType::Utf8),
    );
    let (kinds, reasons, payloads, topics) = (
        kinds.as_string::<i32>(),
        reasons.as_string::<i32>(),
        payloads.as_binary::<i32>(),
        topics.as_string::<i32>(),
    );
    for (i, (payload, kind, reason)) in bad.iter().enumerate() {
        assert_eq!(kinds.value(i), *kind, "message {i}: {}", reasons.value(i));
        assert!(
            reasons.value(i).contains(reason),
            "message {i}: {}",
            reasons.value(i)
        );
        assert_eq!(payloads.value(i), payload.as_bytes(), "raw bytes kept");
        assert_eq!(topics.value(i), topic);
    }
}

/// A flood of large invalid records cannot stop the source: batches are
/// bounded in bytes, dead letters keep a bounded prefix with the full length
/// and the SHA-256, and every valid record behind the flood is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_invalid_records_become_bounded_dead_letters_and_valid_ones_follow() {
    use sha2::Digest;
    let Some(broker) = SharedBroker::get() else {
        return;
    };
    let topic = unique("poison");
    vitalflow::kafka::ensure_topic(
        &ClientSettings::new(&broker.addr()),
        &topic,
        &TopicSettings {
            partitions: 4,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let producer = KeyedProducer::new(&ClientSettings::new(&broker.addr()), &topic, |e| {
        panic!("delivery failed: {e}")
    })
    .unwrap();
    // 300 records of 150 KB each (45 MB): half unterminated JSON, half
    // valid JSON that is not a reading.
    let bad = 300;
    let size = 150_000;
    let mut digests = Vec::new();
    for i in 0..bad {
        let filler = "x".repeat(size - 40);
        let payload = if i % 2 == 0 {
            format!("{{\"patient_id\": \"P{i:05}\", \"blob\": \"{filler}")
        } else {
            format!("{{\"patient_id\": \"P{i:05}\", \"blob\": \"{filler}\"}}")
        };
        digests.push((
            payload.len() as i64,
            hex(&sha2::Sha256::digest(payload.as_bytes())),
        ));
        producer.send(b"PX", payload.as_bytes()).unwrap();
    }
    producer.flush(Duration::from_secs(120)).unwrap();
    let n = 2_000;
    publish(&broker.addr(), &topic, unpaced(n)).await;

    let dir = tempfile::tempdir().unwrap();
    let path = shipped_yaml_for(dir.path(), &broker.addr(), &topic, &unique("g"));
    let yaml = std::fs::read_to_string(&path)
        .unwrap()
        .replace(
            "      max_rows: 8192\n",
            "      max_rows: 8192\n      max_bytes: 4MiB\n",
        )
        .replace(
            "    schema:\n",
            "    dead_letters: {max_payload: 16KiB}\n    schema:\n",
        );
    assert!(yaml.contains("max_bytes: 4MiB") && yaml.contains("max_payload: 16KiB"));
    std::fs::write(&path, yaml).unwrap();
    let (stop, run) = start_in_process(&path).await;
    let vitals = dir.path().join("vitals");
    let dead = dir.path().join("dead_letters");
    // On a timeout the assertions below say which table fell short.
    poll_until(Duration::from_secs(180), || async {
        (rows_in(&vitals).await >= n && rows_in(&dead).await >= bad as u64).then_some(())
    })
    .await;
    stop.cancel();
    let summary = run.await.unwrap().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rows_in(&vitals).await, n, "every valid reading stored");
    assert_eq!(summary.sources[0].1.dead_letters, bad as u64);
    // 45 MB of records under a 4 MiB budget: at least 11 batches, however
    // many records `max_rows` would allow in one.
    assert!(
        summary.sources[0].1.batches >= 11,
        "{} batches for 45 MB",
        summary.sources[0].1.batches
    );
    let rows = query(
        &dead,
        "SELECT payload, payload_bytes, payload_sha256, reason_kind FROM t ORDER BY \"offset\"",
        None,
    )
    .await;
    let rows = arrow::compute::concat_batches(&rows[0].schema(), &rows).unwrap();
    assert_eq!(rows.num_rows(), bad);
    let int = |i: usize| {
        arrow::compute::cast(rows.column(i), &arrow::datatypes::DataType::Int64).unwrap()
    };
    let text =
        |i: usize| arrow::compute::cast(rows.column(i), &arrow::datatypes::DataType::Utf8).unwrap();
    let kept = arrow::compute::cast(rows.column(0), &arrow::datatypes::DataType::Binary).unwrap();
    let (full, sha, kind) = (int(1), text(2), text(3));
    for (i, (len, digest)) in digests.iter().enumerate() {
        use arrow::datatypes::Int64Type;
        let prefix = kept.as_binary::<i32>().value(i);
        assert_eq!(prefix.len(), 16 * 1024, "prefix kept");
        assert!(
            prefix.starts_with(b"{\"patient_id\": \"P"),
            "the record's first bytes"
        );
        assert_eq!(
            full.as_primitive::<Int64Type>().value(i),
            *len,
            "full length"
        );
        assert_eq!(
            sha.as_string::<i32>().value(i),
            digest,
            "SHA-256 of the whole record"
        );
        let want = if i % 2 == 0 {
            "invalid_json"
        } else {
            "missing_field"
        };
        assert_eq!(kind.as_string::<i32>().value(i), want);
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A `vitalflow run` child process with the shipped pipeline, killed if
/// the test ends (or panics) while it runs.
pub(crate) struct Instance {
    process: ChildGuard,
    log: PathBuf,
}

impl Instance {
    pub(crate) fn start(pipeline: &Path, env: &[(&'static str, String)], log: PathBuf) -> Self {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let process = ChildGuard::spawn(
            Command::new(binary())
                .arg("run")
                .arg(pipeline)
                .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
                .env("VITALFLOW_LOG", "info")
                .stdout(Stdio::null())
                .stderr(file),
        )
        .unwrap();
        Self { process, log }
    }

    pub(crate) fn kill9(mut self) {
        self.process.kill();
    }

    /// SIGTERM and wait for the orderly shutdown.
    pub(crate) fn stop(mut self) -> String {
        self.process.signal(libc::SIGTERM);
        let status = self.process.wait_for_exit(Duration::from_secs(60));
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        match status {
            Some(status) => assert!(status.success(), "instance failed ({status}):\n{log}"),
            None => panic!("instance did not stop within 60 s:\n{log}"),
        }
        log
    }

    pub(crate) fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Start an instance and `kill -9` it after 1.5-5.5 s, three times (logs in
/// `dir/run-N.log`); the moments, for failure messages, and when the last
/// kill was.
async fn kill_three_times(
    pipeline: &Path,
    env: &[(&'static str, String)],
    dir: &Path,
) -> (Vec<Duration>, tokio::time::Instant) {
    let mut moments = Vec::new();
    for round in 0..3 {
        let instance = Instance::start(pipeline, env, dir.join(format!("run-{round}.log")));
        let moment = Duration::from_millis(1_500 + rand::random::<u64>() % 4_000);
        moments.push(moment);
        // Not a wait for anything: the kill lands at a random moment of
        // the instance's work, which is the point of the test.
        tokio::time::sleep(moment).await;
        instance.kill9();
    }
    (moments, tokio::time::Instant::now())
}

/// Start the instance that finishes the work after [`kill_three_times`]
/// (killed at `last_kill`), and wait until it holds partitions.
///
/// Tansu drops a killed member only when its session has expired, and only
/// when a member joins then; it does not rebalance the members already in
/// the group. A member joining earlier shares the group with the dead ones
/// and gets nothing, for good. So this lets the dead members' sessions run
/// out first (nothing observable marks that: the broker notices at the
/// next join), then waits for the assignment, which is observable.
pub(crate) async fn start_after_sessions_expire(
    pipeline: &Path,
    env: &[(&'static str, String)],
    log: PathBuf,
    last_kill: tokio::time::Instant,
) -> Instance {
    // The session counts from the member's last heartbeat, before the
    // kill; the margin covers the broker's millisecond rounding.
    tokio::time::sleep_until(last_kill + SESSION_TIMEOUT + Duration::from_millis(500)).await;
    let last = Instance::start(pipeline, env, log);
    let assigned = poll_until(Duration::from_secs(60), || async {
        holds_partitions(&last.log()).then_some(())
    })
    .await;
    assert!(
        assigned.is_some(),
        "timed out after 60 s waiting for the last instance to get partitions:\n{}",
        last.log()
    );
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_moments_loses_and_duplicates_nothing() {
    let Some(broker) = SharedBroker::get() else {
        return;
    };
    let topic = unique("kill");
    let group = unique("g");
    let n = 30_000;
    // Published while the pipeline runs and gets killed: ~6 s of traffic.
    let simulator = ward(n, Duration::from_millis(4));
    let producer = {
        let (addr, topic, simulator) = (broker.addr(), topic.clone(), simulator.clone());
        tokio::spawn(async move { publish(&addr, &topic, simulator).await })
    };
    let dir = tempfile::tempdir().unwrap();
    let pipeline = shipped_pipeline(dir.path());
    let env = pipeline_env(&broker.addr(), &topic, &group, dir.path());
    let vitals = dir.path().join("vitals");
    let (moments, last_kill) = kill_three_times(&pipeline, &env, dir.path()).await;
    assert_eq!(producer.await.unwrap(), n);
    let last =
        start_after_sessions_expire(&pipeline, &env, dir.path().join("run-last.log"), last_kill)
            .await;
    let have = wait_for_rows(&vitals, n, Duration::from_secs(180)).await;
    let log = last.stop();
    assert!(
        have >= n,
        "only {have} of {n} rows after kills at {moments:?}:\n{log}"
    );
    assert_exactly(&vitals, &simulator, n).await;
}

/// The same, with the dataset in S3 (a real S3 server): kills land while
/// files are being written, spooled or uploaded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_the_dataset_in_s3_loses_and_duplicates_nothing() {
    use crate::s3_server::{ACCESS_KEY, BUCKET, S3Server, SECRET_KEY};
    let Some(broker) = SharedBroker::get() else {
        return;
    };
    if require(&S3S_FS).is_none() {
        return;
    }
    let server = S3Server::start();
    let topic = unique("kills3");
    let group = unique("g");
    let n = 20_000;
    let simulator = ward(n, Duration::from_millis(4));
    let producer = {
        let (addr, topic, simulator) = (broker.addr(), topic.clone(), simulator.clone());
        tokio::spawn(async move { publish(&addr, &topic, simulator).await })
    };
    let dir = tempfile::tempdir().unwrap();
    let pipeline = shipped_pipeline(dir.path());
    let mut env = pipeline_env(&broker.addr(), &topic, &group, dir.path());
    let lake = format!("s3://{BUCKET}/{topic}");
    env.retain(|(k, _)| *k != "VITALFLOW_DATA_DIR");
    env.extend([
        ("VITALFLOW_DATA_DIR", lake.clone()),
        (
            "VITALFLOW_SPOOL_DIR",
            dir.path().join("spool").display().to_string(),
        ),
        ("AWS_ENDPOINT_URL", server.endpoint()),
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_string()),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_string()),
        ("AWS_REGION", "us-east-1".to_string()),
    ]);
    let (moments, last_kill) = kill_three_times(&pipeline, &env, dir.path()).await;
    assert_eq!(producer.await.unwrap(), n);
    let bucket = server.bucket_dir().join(&topic).join("vitals");
    let last =
        start_after_sessions_expire(&pipeline, &env, dir.path().join("run-last.log"), last_kill)
            .await;
    // The store alone (no spool): what is in S3.
    let dataset = Dataset {
        store: server.settings(),
        spool: None,
        ..Dataset::at(
            "t",
            Location::parse(&format!("{lake}/vitals"), Path::new(".")).unwrap(),
        )
    };
    let stored = || async {
        if crate::s3_server::stored_objects(&bucket).is_empty() {
            return 0;
        }
        count_in(dataset.clone(), "SELECT count(*) FROM t").await
    };
    let have = match poll_until(Duration::from_secs(180), || async {
        let have = stored().await;
        (have >= n).then_some(have)
    })
    .await
    {
        Some(have) => have,
        None => stored().await,
    };
    let log = last.stop();
    let earlier: String = (0..3)
        .map(|r| {
            std::fs::read_to_string(dir.path().join(format!("run-{r}.log"))).unwrap_or_default()
        })
        .collect();
    assert!(
        have >= n,
        "only {have} of {n} rows after kills at {moments:?}:\n{earlier}\n---- last run ----\n{log}"
    );
    // Everything left the spool, and the lake holds each reading once.
    let spooled = vitalflow::storage::spool::waiting_files(&dir.path().join("spool")).unwrap();
    assert!(spooled.is_empty(), "{spooled:?}");
    assert_exactly_in(dataset, &simulator, n).await;
}

/// A store down long enough to fill the spool pauses the pipeline instead
/// of stopping it: the Kafka source stops fetching but keeps polling, so it
/// stays in its group well past `max.poll.interval.ms`, and when the store
/// answers again everything is uploaded exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_spool_pauses_kafka_without_leaving_the_group_and_loses_nothing() {
    use crate::s3_server::{BUCKET, S3Server};
    let Some(broker) = SharedBroker::get() else {
        return;
    };
    if require(&S3S_FS).is_none() {
        return;
    }
    let mut server = S3Server::start();
    server.stop();
    let topic = unique("pause");
    // Published over ~20 s while the pipeline runs: most readings arrive
    // after the spool is full, so the source itself is held back.
    let n = 20_000;
    let simulator = ward(n, Duration::from_millis(20));
    let producer = {
        let (addr, topic, simulator) = (broker.addr(), topic.clone(), simulator.clone());
        tokio::spawn(async move { publish(&addr, &topic, simulator).await })
    };

    let dir = tempfile::tempdir().unwrap();
    let path = shipped_yaml_for(dir.path(), &broker.addr(), &topic, &unique("g"));
    let lake = format!("s3://{BUCKET}/{topic}");
    let yaml = std::fs::read_to_string(&path)
        .unwrap()
        .replace(&dir.path().display().to_string(), &lake)
        .replace(
            "      session.timeout.ms: 6000\n",
            &format!(
                "      session.timeout.ms: 6000\n      max.poll.interval.ms: {}\n",
                MAX_POLL_INTERVAL.as_millis()
            ),
        )
        // Small batches: more of them than the engine's channels hold, so
        // the source itself is held back while the sink waits.
        .replace("      max_rows: 8192\n", "      max_rows: 500\n")
        .replace(
            "    partition_by_date: ts\n    sort_by",
            &format!(
                "    partition_by_date: ts\n{}    spool: {{path: \"{}\", max_bytes: 64KiB}}\n    sort_by",
                server.store_yaml("    "),
                dir.path().join("spool").display()
            ),
        )
        .replace(
            "    partition_by_date: received_at\n",
            &format!(
                "    partition_by_date: received_at\n{}    spool: {{path: \"{}\"}}\n",
                server.store_yaml("    "),
                dir.path().join("spool-dead").display()
            ),
        );
    assert!(
        yaml.contains("max.poll.interval.ms: 7000")
            && yaml.contains("max_bytes: 64KiB")
            && yaml.contains("max_rows: 500"),
        "{yaml}"
    );
    std::fs::write(&path, yaml).unwrap();
    let run_handles = vitalflow::sinks::SinkContext::default();
    let options = RunOptions {
        sinks: run_handles.clone(),
        ..RunOptions::default()
    };
    let (stop, run) = start_in_process_with(&path, options).await;
    let target = format!("{lake}/vitals");
    let paused = || {
        run_handles
            .stores
            .all()
            .into_iter()
            .any(|s| s.target == target && s.paused)
    };
    wait_for(
        Duration::from_secs(120),
        "the spool to fill and the sink to pause",
        || async {
            assert!(!run.is_finished(), "the run ended instead of pausing");
            paused().then_some(())
        },
    )
    .await;
    // Proving that something does NOT happen takes time: the pause is held
    // for two poll intervals (and a second for librdkafka to act), watched
    // all along. A consumer that stopped polling would have left the group
    // after one, and the run would have failed on the lost assignment.
    let hold = 2 * MAX_POLL_INTERVAL + Duration::from_secs(1);
    let broke = poll_until(hold, || async {
        (run.is_finished() || !paused()).then_some(())
    })
    .await;
    if broke.is_some() {
        assert!(
            !run.is_finished(),
            "the paused run stopped: {:?}",
            run.await
        );
        panic!("no longer paused although the store is still down");
    }

    assert_eq!(producer.await.unwrap(), n);
    server.spawn();
    let dataset = Dataset {
        store: server.settings(),
        spool: None,
        ..Dataset::at("t", Location::parse(&target, Path::new(".")).unwrap())
    };
    let bucket = server.bucket_dir().join(&topic).join("vitals");
    wait_for(
        Duration::from_secs(180),
        &format!("the run to resume and store all {n} readings in S3"),
        || async {
            if !crate::s3_server::stored_objects(&bucket).is_empty()
                && count_in(dataset.clone(), "SELECT count(*) FROM t").await >= n
            {
                return Some(());
            }
            assert!(
                !run.is_finished(),
                "the run ended before storing everything"
            );
            None
        },
    )
    .await;
    stop.cancel();
    run.await.unwrap().unwrap_or_else(|e| panic!("{e}"));
    assert!(!paused());
    assert_exactly_in(dataset, &simulator, n).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_the_partitions_and_store_each_reading_once() {
    let Some(broker) = SharedBroker::get() else {
        return;
    };
    let topic = unique("pair");
    let group = unique("g");
    // Topic first, so both instances see its 4 partitions from the start.
    publish(&broker.addr(), &topic, unpaced(20)).await;
    let dir = tempfile::tempdir().unwrap();
    let pipeline = shipped_pipeline(dir.path());
    let env = pipeline_env(&broker.addr(), &topic, &group, dir.path());
    let a = Instance::start(&pipeline, &env, dir.path().join("a.log"));
    let b = Instance::start(&pipeline, &env, dir.path().join("b.log"));

    // Wait until both hold partitions, then publish while they run.
    let both = poll_until(Duration::from_secs(90), || async {
        (holds_partitions(&a.log()) && holds_partitions(&b.log())).then_some(())
    })
    .await;
    assert!(
        both.is_some(),
        "timed out after 90 s waiting for both instances to get partitions:\nA:\n{}\nB:\n{}",
        a.log(),
        b.log()
    );
    // The first 20 readings again (same seed), then 19,980 more: 20,000
    // distinct readings in all.
    let n = 20_000;
    let rest = SimulatorConfig {
        ..ward(n, Duration::from_millis(5))
    };
    let produced = publish(&broker.addr(), &topic, rest.clone()).await;
    assert_eq!(produced, n);
    let vitals = dir.path().join("vitals");
    // 20 early readings are published twice (same content, new offsets): a
    // Kafka duplicate the pipeline must keep, so n + 20 rows in all.
    let have = wait_for_rows(&vitals, n + 20, Duration::from_secs(120)).await;
    let (log_a, log_b) = (a.stop(), b.stop());
    assert_eq!(have, n + 20, "A:\n{log_a}\nB:\n{log_b}");
    assert_eq!(rows_in(&vitals).await, n + 20);
    assert_eq!(
        count(
            &vitals,
            "SELECT count(*) FROM (SELECT DISTINCT patient_id, ts FROM t)"
        )
        .await,
        n
    );
}

/// The partitions `vitalflow up` on `port` owns and how far it has read
/// them (the sum of their next offsets), from `/health`.
async fn read_so_far(port: u16) -> Option<(usize, i64)> {
    let body = crate::support::get_json(port, "/health").await?;
    let partitions = body["partitions"].as_array()?;
    let read = partitions
        .iter()
        .filter_map(|p| p["next_offset"].as_i64())
        .sum();
    Some((partitions.len(), read))
}

/// Two owners of the same partitions, made on purpose: A reads every
/// reading and is paused (SIGSTOP) before publishing any, past its group
/// session; B then gets the partitions, reads the readings again from the
/// start and publishes them. A is told to stop while paused and wakes
/// holding its copy. It must not publish it: its last checkpoint finds the
/// partitions published beyond where its rows start and is refused. Each
/// reading is stored once. (Without the check, A stored every reading a
/// second time in one run of two; with it, three of three runs were
/// refused by it rather than by the consumer noticing the lost session.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_wakes_after_losing_its_partitions_publishes_nothing_twice() {
    let Some(broker) = SharedBroker::get() else {
        return;
    };
    let topic = unique("paused");
    let group = unique("g");
    let n = 4_000;
    assert_eq!(publish(&broker.addr(), &topic, unpaced(n)).await, n);
    let dir = tempfile::tempdir().unwrap();
    let env = pipeline_env(&broker.addr(), &topic, &group, dir.path());
    // A rolls its files after 10 minutes: it publishes nothing on its own
    // during the test. B publishes within a second of reading.
    let holding = shipped_pipeline_rolling(dir.path(), "10m", "holding.yaml");
    let prompt = shipped_pipeline(dir.path());
    let port = crate::support::free_port();
    let a_log = dir.path().join("a.log");
    let mut a = ChildGuard::spawn(
        crate::support::up_command(port, dir.path())
            .arg("--pipeline")
            .arg(&holding)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&a_log).unwrap()),
    )
    .unwrap();
    let a_says = || std::fs::read_to_string(&a_log).unwrap_or_default();
    wait_for(
        Duration::from_secs(120),
        "A to own the 4 partitions and read every reading",
        || async { (read_so_far(port).await == Some((4, n as i64))).then_some(()) },
    )
    .await;
    let vitals = dir.path().join("vitals");
    assert_eq!(
        rows_in(&vitals).await,
        0,
        "A published early:\n{}",
        a_says()
    );
    a.signal(libc::SIGSTOP);
    let paused_at = tokio::time::Instant::now();

    let b = start_after_sessions_expire(&prompt, &env, dir.path().join("b.log"), paused_at).await;
    let published = wait_for_rows(&vitals, n, Duration::from_secs(120)).await;
    let b_says = b.stop();
    assert_eq!(published, n, "B:\n{b_says}");

    // Stopped while paused (as an orchestrator stops an unresponsive
    // instance): waking, A shuts down, and its last checkpoint would
    // publish its copy. The checkpoint is refused (or, if the consumer
    // notices first, the lost session stops the source before it).
    a.signal(libc::SIGTERM);
    a.signal(libc::SIGCONT);
    let status = a.wait_for_exit(Duration::from_secs(60));
    let a_said = a_says();
    let refused = a_said.contains("not publishing");
    let lost = a_said.contains("lost its partitions");
    assert!(
        status.is_some_and(|s| !s.success()) && (refused || lost),
        "A should have failed to publish ({status:?}):\n{a_said}"
    );
    assert_eq!(rows_in(&vitals).await, n, "A:\n{a_said}\nB:\n{b_says}");
    assert_eq!(
        count(
            &vitals,
            "SELECT count(*) FROM (SELECT DISTINCT patient_id, ts FROM t)"
        )
        .await,
        n
    );
}

/// Whether an instance's log shows a non-empty assignment.
pub(crate) fn holds_partitions(log: &str) -> bool {
    log.lines()
        .rfind(|l| l.contains("partitions assigned"))
        .is_some_and(|l| l.contains('@'))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_down_at_startup_and_killed_mid_stream_loses_nothing() {
    let Some(mut broker) = Broker::reserved() else {
        return;
    };
    let topic = unique("outage");
    let dir = tempfile::tempdir().unwrap();
    let pipeline = shipped_pipeline(dir.path());
    let env = pipeline_env(&broker.addr(), &topic, &unique("g"), dir.path());

    // The broker is down: the pipeline waits and says so, without crashing:
    // it tries again and again (three failed attempts seen), still running.
    let waiting = "waiting for Kafka brokers";
    let mut instance = Instance::start(&pipeline, &env, dir.path().join("run.log"));
    let retried = poll_until(Duration::from_secs(60), || {
        let (running, log) = (instance.is_running(), instance.log());
        async move {
            assert!(running, "the pipeline gave up:\n{log}");
            (log.matches(waiting).count() >= 3).then_some(())
        }
    })
    .await;
    assert!(
        retried.is_some(),
        "timed out after 60 s waiting for three `{waiting}` lines:\n{}",
        instance.log()
    );
    broker.spawn();

    let n = 20_000;
    let simulator = ward(n, Duration::from_millis(10));
    let producer = {
        let (addr, topic, simulator) = (broker.addr(), topic.clone(), simulator.clone());
        tokio::spawn(async move { publish(&addr, &topic, simulator).await })
    };
    let vitals = dir.path().join("vitals");
    // Mid-stream: some readings stored, more to come.
    let started = poll_until(Duration::from_secs(60), || async {
        (rows_in(&vitals).await > 0).then_some(())
    })
    .await;
    assert!(
        started.is_some(),
        "timed out after 60 s waiting for the first stored readings:\n{}",
        instance.log()
    );
    // The broker stays down until the outage has outlasted the group
    // session: the pipeline has lost its partitions and restarted from its
    // last checkpoint (its log says so), and waits for the broker again.
    let before = instance.log().len();
    broker.kill();
    let restarted = "restarting the pipeline from its last checkpoint";
    let restarted_and_waiting = |log: &str| {
        log.get(before..)
            .and_then(|since| since.find(restarted).map(|at| &since[at..]))
            .is_some_and(|after| after.contains(waiting))
    };
    let lost = poll_until(Duration::from_secs(120), || {
        let (running, log) = (instance.is_running(), instance.log());
        async move {
            assert!(running, "the pipeline stopped with the broker down:\n{log}");
            restarted_and_waiting(&log).then_some(())
        }
    })
    .await;
    assert!(
        lost.is_some(),
        "timed out after 120 s waiting for the pipeline to restart from its checkpoint and wait for the broker:\n{}",
        instance.log()
    );
    // The failed source closed its consumer before the restart, within the
    // bounded wait (or said it goes on closing in the background), and the
    // log says why it failed.
    let log = instance.log();
    let since = &log[before..];
    let closing = since
        .find("the Kafka source failed; closing its consumer")
        .unwrap_or_else(|| panic!("no closing line:\n{since}"));
    let closed = since[closing..]
        .find("Kafka consumer closed")
        .or_else(|| since[closing..].find("goes on closing in the background"))
        .unwrap_or_else(|| panic!("no closed line:\n{since}"));
    assert!(
        since[closing + closed..].contains(restarted),
        "the restart follows the close:\n{since}"
    );
    broker.spawn();

    assert_eq!(producer.await.unwrap(), n);
    let have = wait_for_rows(&vitals, n, Duration::from_secs(180)).await;
    let log = instance.stop();
    assert!(have >= n, "only {have} of {n}:\n{log}");
    assert_exactly(&vitals, &simulator, n).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kafka_sink_publishes_rows_as_keyed_json() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;

    let Some(broker) = SharedBroker::get() else {
        return;
    };
    let topic = unique("scored");
    let n = 300;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "name: to_kafka
sources:
  monitors:
    kind: simulator
    patients: 10
    pacing: unpaced
    limit: {n}
    start: \"{START}\"
sinks:
  out:
    kind: kafka
    input: monitors
    brokers: \"{}\"
    topic: {topic}
    key: patient_id
    create_topic: {{partitions: 2}}
",
        broker.addr()
    );
    let path = dir.path().join("p.yaml");
    std::fs::write(&path, yaml).unwrap();
    let planned = engine::plan(spec::load(&path).unwrap()).await.unwrap();
    let summary = engine::run(&planned, CancellationToken::new(), RunOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(summary.sinks[0].1.rows, n);

    let consumer: BaseConsumer = ClientSettings::new(&broker.addr())
        .client_config(&[
            ("group.id", unique("check").as_str()),
            ("auto.offset.reset", "earliest"),
        ])
        .create()
        .unwrap();
    consumer.subscribe(&[topic.as_str()]).unwrap();
    let mut seen = std::collections::HashSet::new();
    // Each look takes what has arrived (the consumer is polled without
    // blocking; the pauses between looks serve its group protocol too).
    let all = poll_until(Duration::from_secs(60), || {
        while let Some(message) = consumer.poll(Duration::ZERO) {
            let message = message.unwrap();
            let row: serde_json::Value =
                serde_json::from_slice(message.payload().unwrap()).unwrap();
            let patient = row["patient_id"].as_str().unwrap();
            assert_eq!(
                message.key(),
                Some(patient.as_bytes()),
                "keyed by patient_id"
            );
            assert!(row["heart_rate"].is_i64(), "{row}");
            seen.insert((patient.to_string(), row["ts"].as_str().unwrap().to_string()));
        }
        std::future::ready((seen.len() as u64 >= n).then_some(()))
    })
    .await;
    assert!(
        all.is_some(),
        "timed out after 60 s waiting for {n} messages: only {}",
        seen.len()
    );
    assert_eq!(seen.len() as u64, n, "each row once");
}

#[test]
fn simulate_publishes_and_reports_its_rate() {
    let Some(broker) = SharedBroker::get() else {
        return;
    };
    let topic = unique("cli");
    let output = Command::new(binary())
        .args(["simulate", "--brokers", &broker.addr(), "--topic", &topic])
        .args([
            "--patients",
            "5",
            "--unpaced",
            "--count",
            "250",
            "--partitions",
            "2",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("250 messages produced, 250 delivered, 0 failed"),
        "{stderr}"
    );
}

/// A windowed Kafka pipeline: per-minute summaries of the shipped SQL,
/// checkpoints every second.
pub(crate) fn windowed_pipeline(dir: &Path) -> PathBuf {
    let kafka = std::fs::read_to_string("pipelines/vitals-kafka.yaml").unwrap();
    let source_start = kafka.find("sources:").unwrap();
    let source_end = kafka.find("transforms:").unwrap();
    let source = kafka[source_start..source_end].replace(
        "    schema:\n",
        "    event_time: { column: ts, max_delay: 2s, idle_timeout: 60s }\n    schema:\n",
    );
    let sql = std::fs::canonicalize("sql/vitals_per_minute.sql").unwrap();
    let yaml = format!(
        "name: windows\n{source}transforms:\n  per_minute:\n    sql_file: {}\nsinks:\n  per_minute:\n    kind: parquet\n    input: per_minute\n    path: ${{VITALFLOW_DATA_DIR}}/per_minute\n    partition_by_date: window_start\n    roll: {{ max_age: 1s }}\n  late:\n    kind: parquet\n    input: monitors_late_events\n    path: ${{VITALFLOW_DATA_DIR}}/late\n    roll: {{ max_age: 1s }}\n  dead_letters:\n    kind: parquet\n    input: monitors_dead_letters\n    path: ${{VITALFLOW_DATA_DIR}}/dead_letters\n",
        sql.display()
    );
    let path = dir.join("windows.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

/// Open windows survive a restart: the minute that is open when the
/// pipeline stops is saved in its last checkpoint and finished after the
/// restart, so every minute is emitted once with every reading counted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_windows_survive_a_restart_and_each_minute_is_emitted_once() {
    let Some(broker) = SharedBroker::get() else {
        return;
    };
    let topic = unique("windows");
    let group = unique("g");
    // 20 patients every 500 ms: the first 150 s of event time...
    let first_half = unpaced(6_000);
    assert_eq!(publish(&broker.addr(), &topic, first_half).await, 6_000);
    let dir = tempfile::tempdir().unwrap();
    let pipeline = windowed_pipeline(dir.path());
    let env = pipeline_env(&broker.addr(), &topic, &group, dir.path());
    let per_minute = dir.path().join("per_minute");

    // Minutes 0 and 1 close; minute 2 holds 30 s of readings when it stops.
    let first = Instance::start(&pipeline, &env, dir.path().join("run-1.log"));
    let have = wait_for_rows(&per_minute, 40, Duration::from_secs(120)).await;
    let log = first.stop();
    assert_eq!(have, 40, "first run:\n{log}");

    // ...then the next 150 s, consumed by a restarted pipeline.
    let second_half = SimulatorConfig {
        start: Some("2026-11-26T08:02:30Z".into()),
        ..unpaced(6_000)
    };
    assert_eq!(publish(&broker.addr(), &topic, second_half).await, 6_000);
    let second = Instance::start(&pipeline, &env, dir.path().join("run-2.log"));
    // The last minute stays open (the watermark never passes its end); the
    // four before it close: 20 patients x 4 minutes.
    let have = wait_for_rows(&per_minute, 80, Duration::from_secs(120)).await;
    let log = second.stop();
    assert_eq!(have, 80, "second run:\n{log}");
    assert_eq!(
        rows_in(&per_minute).await,
        80,
        "after the stop: no window emitted twice, the open minute kept open"
    );
    assert!(log.contains("continuing open windows"), "{log}");
    assert_eq!(
        count(
            &per_minute,
            "SELECT count(*) FROM (SELECT DISTINCT patient_id, window_start FROM t)"
        )
        .await,
        80,
        "each patient-minute once"
    );
    // 60 s / 500 ms: every closed minute holds exactly 120 readings; minute
    // 2 got half of them before the restart and half after.
    assert_eq!(
        count(&per_minute, "SELECT count(*) FROM t WHERE readings <> 120").await,
        0,
        "a minute lost or double-counted readings across the restart"
    );
    assert_eq!(
        rows_in(&dir.path().join("late")).await,
        0,
        "no reading was late"
    );
}

/// The shipped alerts pipeline for a test: the UDF plugins of this
/// checkout, alerts to `alerts_topic`, levels re-armed after a minute.
pub(crate) fn alerts_pipeline_yaml(alerts_topic: &str) -> String {
    let root = std::fs::canonicalize(".").unwrap();
    std::fs::read_to_string("pipelines/vitals-alerts.yaml")
        .unwrap()
        .replace("../udfs", &root.join("udfs").display().to_string())
        .replace(
            "topic: ${ALERTS_TOPIC:-alerts}\n",
            &format!("topic: {alerts_topic}\n"),
        )
        .replace("rearm_after: 10m", "rearm_after: 1m")
}

/// The alerts stored in `dir` as (patient, alert time in whole seconds,
/// level, reason), sorted.
pub(crate) async fn stored_alerts(dir: &Path) -> Vec<(String, i64, String, String)> {
    let stored = query(
        dir,
        "SELECT patient_id, CAST(CAST(alert_time AS BIGINT) AS VARCHAR), level, reason FROM t",
        None,
    )
    .await;
    let mut alerts = Vec::new();
    for batch in &stored {
        let text = |i: usize| {
            arrow::compute::cast(batch.column(i), &arrow::datatypes::DataType::Utf8).unwrap()
        };
        let (ids, times, levels, reasons) = (text(0), text(1), text(2), text(3));
        for r in 0..batch.num_rows() {
            alerts.push((
                ids.as_string::<i32>().value(r).to_string(),
                times.as_string::<i32>().value(r).parse::<i64>().unwrap() / 1000,
                levels.as_string::<i32>().value(r).to_string(),
                reasons.as_string::<i32>().value(r).to_string(),
            ));
        }
    }
    alerts.sort();
    alerts
}

/// [`expected_alerts`] at whole seconds, sorted, as [`stored_alerts`] has
/// them (without the reason).
pub(crate) fn by_second(expected: &[(String, i64, &'static str)]) -> Vec<(String, i64, String)> {
    let mut alerts: Vec<(String, i64, String)> = expected
        .iter()
        .map(|(p, t, l)| (p.clone(), *t / 1000, l.to_string()))
        .collect();
    alerts.sort();
    alerts
}

/// The shipped alerts pipeline: readings from Kafka, NEWS2 from the UDF
/// plugins, one alert per escalation (re-armed after a clear minute here),
/// to Parquet and to a Kafka topic, against alerts computed independently
/// from the same readings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alerts_pipeline_raises_one_alert_per_escalation() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;

    let Some(broker) = SharedBroker::get() else {
        return;
    };
    let (topic, alerts_topic, group) = (unique("alerts-in"), unique("alerts-out"), unique("g"));
    let n = 24_000;
    let simulator = SimulatorConfig {
        episodes_per_hour: 30.0,
        ..unpaced(n)
    };
    assert_eq!(publish(&broker.addr(), &topic, simulator.clone()).await, n);
    let expected = expected_alerts(&simulator, 60_000);
    assert!(
        expected.len() > 10,
        "the ward should deteriorate now and then: {expected:?}"
    );
    assert!(expected.iter().any(|a| a.2 == "high"));

    let dir = tempfile::tempdir().unwrap();
    let yaml = alerts_pipeline_yaml(&alerts_topic);
    let mut env = pipeline_env(&broker.addr(), &topic, &group, dir.path());
    env.push(("KAFKA_ALERTS_GROUP", group.clone()));
    let yaml = fill_env(&yaml, &env);
    let path = dir.path().join("alerts.yaml");
    std::fs::write(&path, yaml).unwrap();
    let (stop, run) = start_in_process(&path).await;
    let alerts = dir.path().join("alerts");
    let have = wait_for_rows(&alerts, expected.len() as u64, Duration::from_secs(120)).await;
    stop.cancel();
    run.await.unwrap().unwrap();
    assert_eq!(have, expected.len() as u64);

    let stored = stored_alerts(&alerts).await;
    assert!(stored.iter().all(|(.., reason)| !reason.is_empty()));
    let actual: Vec<(String, i64, String)> =
        stored.into_iter().map(|(p, t, l, _)| (p, t, l)).collect();
    assert_eq!(actual, by_second(&expected));

    // The same alerts on the Kafka topic, keyed by patient.
    let consumer: BaseConsumer = ClientSettings::new(&broker.addr())
        .client_config(&[
            ("group.id", unique("check").as_str()),
            ("auto.offset.reset", "earliest"),
        ])
        .create()
        .unwrap();
    consumer.subscribe(&[alerts_topic.as_str()]).unwrap();
    let mut seen = 0;
    // Each look takes what has arrived (see the Kafka sink test).
    let all = poll_until(Duration::from_secs(60), || {
        while let Some(message) = consumer.poll(Duration::ZERO) {
            let message = message.unwrap();
            let row: serde_json::Value =
                serde_json::from_slice(message.payload().unwrap()).unwrap();
            assert_eq!(
                message.key(),
                Some(row["patient_id"].as_str().unwrap().as_bytes())
            );
            assert!(
                ["single_parameter", "medium", "high"].contains(&row["level"].as_str().unwrap()),
                "{row}"
            );
            assert!(row["news2"].is_i64() && row["reason"].is_string(), "{row}");
            seen += 1;
        }
        std::future::ready((seen >= expected.len()).then_some(()))
    })
    .await;
    assert!(
        all.is_some(),
        "timed out after 60 s waiting for {} alerts on the topic: only {seen}",
        expected.len()
    );
}

/// `(patient, time ms, level)` of every escalation, from the generated
/// readings, the published NEWS2 table and the escalation rule, written
/// independently of the engine.
pub(crate) fn expected_alerts(
    simulator: &SimulatorConfig,
    rearm_ms: i64,
) -> Vec<(String, i64, &'static str)> {
    use std::collections::HashMap;
    let start = chrono::DateTime::parse_from_rfc3339(START)
        .unwrap()
        .timestamp_millis();
    let mut generator = VitalsGenerator::new(simulator, start);
    let mut readings: Vec<(String, i64, usize)> = Vec::new();
    while let Some(batch) = generator.next_batch(10_000) {
        let col = |name: &str| batch.column_by_name(name).unwrap().clone();
        let ids = col("patient_id");
        let ts = col("ts");
        let ints = |name: &str| {
            col(name)
                .as_primitive::<arrow::datatypes::Int32Type>()
                .clone()
        };
        let (rr, spo2, sbp, hr) = (
            ints("respiratory_rate"),
            ints("spo2"),
            ints("systolic_bp"),
            ints("heart_rate"),
        );
        let oxygen = col("on_oxygen").as_boolean().clone();
        let acvpu = col("consciousness");
        let temp = col("temperature")
            .as_primitive::<arrow::datatypes::Float64Type>()
            .clone();
        for i in 0..batch.num_rows() {
            let (score, red, _) = crate::transforms::news2_detail(
                rr.value(i),
                spo2.value(i),
                oxygen.value(i),
                sbp.value(i),
                hr.value(i),
                acvpu.as_string::<i32>().value(i),
                temp.value(i),
            );
            let level = if score >= 7 {
                3
            } else if score >= 5 {
                2
            } else if red {
                1
            } else {
                0
            };
            readings.push((
                ids.as_string::<i32>().value(i).to_string(),
                ts.as_primitive::<arrow::datatypes::TimestampMillisecondType>()
                    .value(i),
                level,
            ));
        }
    }
    readings.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    let names = ["none", "single_parameter", "medium", "high"];
    let mut armed: HashMap<String, (usize, Option<i64>)> = HashMap::new();
    let mut alerts = Vec::new();
    for (patient, time, level) in readings {
        let (current, since) = armed.entry(patient.clone()).or_insert((0, None));
        if level > *current {
            alerts.push((patient, time, names[level]));
            (*current, *since) = (level, None);
        } else if level == *current {
            *since = None;
        } else if let Some(s) = *since {
            if time - s >= rearm_ms {
                (*current, *since) = (level, None);
            }
        } else {
            *since = Some(time);
        }
    }
    alerts
}

/// Readings that arrive behind the watermark are kept in the late-events
/// table and counted, not dropped: the second half of the ward's readings
/// is published and consumed before the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_behind_the_watermark_go_to_the_late_table_and_are_counted() {
    let Some(broker) = SharedBroker::get() else {
        return;
    };
    let topic = unique("late");
    let group = unique("g");
    let later = SimulatorConfig {
        start: Some("2026-11-26T08:02:30Z".into()),
        ..unpaced(6_000)
    };
    assert_eq!(publish(&broker.addr(), &topic, later).await, 6_000);

    let dir = tempfile::tempdir().unwrap();
    let path = windowed_pipeline(dir.path());
    let yaml = std::fs::read_to_string(&path).unwrap();
    let env = pipeline_env(&broker.addr(), &topic, &group, dir.path());
    std::fs::write(&path, fill_env(&yaml, &env)).unwrap();
    vitalflow::telemetry::metrics::handle();
    let (stop, run) = start_in_process(&path).await;
    let late = dir.path().join("late");
    let metric = |name: &str| -> u64 {
        let metrics = vitalflow::telemetry::metrics::render();
        let prefix = format!("{name}{{pipeline=\"windows\",source=\"monitors\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0, |v| v as u64)
    };
    wait_until(
        Duration::from_secs(120),
        "the pipeline to read the later half (6,000 events)",
        || async { metric("vitalflow_source_events_total") >= 6_000 },
    )
    .await;
    // The watermark is now near the end of the later half: every reading
    // of the earlier half is behind it.
    assert_eq!(publish(&broker.addr(), &topic, unpaced(6_000)).await, 6_000);
    wait_until(
        Duration::from_secs(120),
        "the pipeline to read every reading (12,000 events)",
        || async { metric("vitalflow_source_events_total") >= 12_000 },
    )
    .await;
    stop.cancel();
    let summary = run.await.unwrap().unwrap();
    assert_eq!(summary.records_in(), 12_000);
    let stored = rows_in(&late).await;
    assert_eq!(
        stored, 6_000,
        "every reading of the earlier half is kept as late"
    );
    assert_eq!(
        count(
            &late,
            "SELECT count(*) FROM t WHERE ts >= TIMESTAMP '2026-11-26T08:02:30Z'"
        )
        .await,
        0,
        "only readings of the earlier half can be late"
    );
    assert_eq!(metric("vitalflow_late_events_total"), stored);
}

/// The Kafka source and the producer over TLS (librdkafka with OpenSSL,
/// verifying the broker's certificate and host name against a CA made
/// here). The test broker has no TLS listener of its own, so a rustls
/// front terminates TLS for it (see `Broker::behind_tls`); SASL is not
/// tested: the test broker does not offer it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kafka_source_reads_over_tls_with_the_certificate_checked() {
    let dir = tempfile::tempdir().unwrap();
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap();
    let (ca, key) = (dir.path().join("ca.pem"), dir.path().join("key.pem"));
    std::fs::write(&ca, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let Some((_broker, front)) = crate::broker::Broker::behind_tls(&ca, &key).await else {
        return;
    };
    let tls = [
        ("security.protocol", "ssl".to_string()),
        ("ssl.ca.location", ca.display().to_string()),
        ("ssl.endpoint.identification.algorithm", "https".to_string()),
    ];

    let topic = unique("tls");
    let n = 2_000;
    let simulator = unpaced(n);
    let mut client = ClientSettings::new(&front.addr);
    for (key, value) in &tls {
        client
            .properties
            .insert(key.to_string(), vitalflow::common::EnvString(value.clone()));
    }
    let options = PublishOptions {
        client,
        topic: topic.clone(),
        create_topic: Some(TopicSettings {
            partitions: 2,
            ..Default::default()
        }),
        flush_timeout: Duration::from_secs(120),
        format: vitalflow::interop::Format::Json,
    };
    let summary = publish_readings(simulator.clone(), options, CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("publishing over TLS: {e:#}"));
    assert_eq!(summary.delivered, n, "{summary:?}");

    let path = shipped_yaml_for(dir.path(), &front.addr, &topic, &unique("g"));
    let yaml = std::fs::read_to_string(&path).unwrap();
    let properties = tls
        .iter()
        .map(|(key, value)| format!("      {key}: \"{value}\"\n"))
        .collect::<String>();
    let yaml = yaml.replacen(
        "    properties:\n",
        &format!("    properties:\n{properties}"),
        1,
    );
    assert!(yaml.contains("ssl.ca.location"));
    std::fs::write(&path, yaml).unwrap();
    let (stop, run) = start_in_process(&path).await;
    let vitals = dir.path().join("vitals");
    let have = wait_for_rows(&vitals, n, Duration::from_secs(120)).await;
    stop.cancel();
    run.await.unwrap().unwrap_or_else(|e| panic!("{e}"));
    assert!(have >= n, "only {have} of {n} rows arrived over TLS");
    assert_exactly(&vitals, &simulator, n).await;
}
