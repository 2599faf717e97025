//! Failover and scale-out against the real broker (Tansu): window state
//! kept per Kafka partition moves with the partition to whichever instance
//! takes it over, so every patient-minute is emitted once with every
//! reading counted once, whatever instance computed which part of it.
//!
//! What the test broker allows (see the README's "Scaling"): a killed
//! member keeps its partitions until its session expires, and the broker
//! reassigns them only when a member joins; members already in the group
//! are not rebalanced on their own. So the replacement of a killed instance
//! is started after the session timeout, as an operator would start one.

use std::path::{Path, PathBuf};
use std::time::Duration;

use vitalflow::kafka::{ClientSettings, KeyedProducer, TopicSettings, ensure_topic};
use vitalflow::sources::simulator::{SimulatorConfig, VitalsGenerator, encode_json_lines};

use crate::broker::SharedBroker;
use crate::kafka::{
    Instance, START, alerts_pipeline_yaml, by_second, count, expected_alerts, holds_partitions,
    pipeline_env, publish, rows_in, start_after_sessions_expire, stored_alerts, unique, unpaced,
    wait_for_rows, windowed_pipeline,
};
use crate::s3_server::{BUCKET, S3Server};
use crate::support::{binary, poll_until};

/// The per-minute window pipeline with the source keyed by patient (as the
/// producer keys its messages), so the windows live per partition.
fn keyed_windows(dir: &Path) -> PathBuf {
    let path = windowed_pipeline(dir);
    let yaml = std::fs::read_to_string(&path).unwrap();
    // The shipped Kafka pipeline's source, which windowed_pipeline copies,
    // declares the key (without it both tests here fail).
    assert!(yaml.contains("\n    key: patient_id\n"), "{yaml}");
    path
}

/// 20 patients every 500 ms from 08:00:00 to 08:02:30 (minute 2 half full).
fn first_half() -> SimulatorConfig {
    unpaced(6_000)
}

/// The next 150 s: minutes 2 to 4.
fn second_half() -> SimulatorConfig {
    SimulatorConfig {
        start: Some("2026-11-26T08:02:30Z".into()),
        ..unpaced(6_000)
    }
}

/// The batch computation over all 12,000 readings: minutes 0-3 close (the
/// watermark never passes the end of minute 4), 20 patients each, every
/// minute holding 60 s / 500 ms = 120 readings; checked on the dataset.
async fn assert_each_minute_once(per_minute: &Path, late: &Path, logs: &str) {
    assert_eq!(rows_in(per_minute).await, 80, "windows emitted:\n{logs}");
    assert_eq!(
        count(
            per_minute,
            "SELECT count(*) FROM (SELECT DISTINCT patient_id, window_start FROM t)"
        )
        .await,
        80,
        "each patient-minute once:\n{logs}"
    );
    assert_eq!(
        count(per_minute, "SELECT count(*) FROM t WHERE readings <> 120").await,
        0,
        "a minute lost or double-counted readings across the takeover:\n{logs}"
    );
    assert_eq!(rows_in(late).await, 0, "no reading was late:\n{logs}");
}

/// A test's topic with the first half of the ward published, and the
/// keyed window pipeline over it with its data directory.
struct Ward {
    dir: tempfile::TempDir,
    pipeline: PathBuf,
    env: Vec<(&'static str, String)>,
    per_minute: PathBuf,
    topic: String,
}

impl Ward {
    async fn first_half(broker: &SharedBroker, prefix: &str) -> Self {
        let (topic, group) = (unique(prefix), unique("g"));
        assert_eq!(publish(&broker.addr(), &topic, first_half()).await, 6_000);
        let dir = tempfile::tempdir().unwrap();
        let pipeline = keyed_windows(dir.path());
        let env = pipeline_env(&broker.addr(), &topic, &group, dir.path());
        let per_minute = dir.path().join("per_minute");
        Self {
            dir,
            pipeline,
            env,
            per_minute,
            topic,
        }
    }

    async fn publish_second_half(&self, broker: &SharedBroker) {
        assert_eq!(
            publish(&broker.addr(), &self.topic, second_half()).await,
            6_000
        );
    }
}

/// Whether a log shows a partition taken over with open windows restored.
fn took_over_state(log: &str) -> bool {
    log.lines().any(|l| {
        l.contains("took over partition with its saved state") && !l.contains("restored_rows=0")
    })
}

async fn wait_holding(instances: &[&Instance]) {
    let all = poll_until(Duration::from_secs(90), || async {
        instances
            .iter()
            .all(|i| holds_partitions(&i.log()))
            .then_some(())
    })
    .await;
    let logs: Vec<String> = instances.iter().map(|i| i.log()).collect();
    assert!(
        all.is_some(),
        "timed out after 90 s waiting for every instance to hold partitions:\n{}",
        logs.join("\n---\n")
    );
}

/// Two instances share the 4 partitions; one is killed with `kill -9` while
/// minute 2 is open; a replacement started after the session timeout takes
/// its partitions over with their saved windows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_s_windows_move_to_its_replacement() {
    let Some(broker) = SharedBroker::get() else {
        return;
    };
    let ward = Ward::first_half(&broker, "failover").await;
    kill_one_and_replace_it(&broker, &ward).await;
}

/// The same with the checkpoints in S3 (the S3 test server), as instances
/// on different machines would share them: nothing is checkpointed on the
/// local disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_s_windows_move_with_checkpoints_in_s3() {
    let Some(broker) = SharedBroker::get() else {
        return;
    };
    let server = S3Server::start();
    let ward = Ward::first_half(&broker, "s3failover").await;
    let yaml = std::fs::read_to_string(&ward.pipeline).unwrap();
    let checkpoints = format!(
        "checkpoint_dir: s3://{BUCKET}/checkpoints/windows\n{}",
        server
            .store_yaml("")
            .replacen("store:", "checkpoint_store:", 1)
    );
    std::fs::write(&ward.pipeline, format!("{yaml}{checkpoints}")).unwrap();

    kill_one_and_replace_it(&broker, &ward).await;
    // The instances wrote their manifests to the bucket.
    let writers: std::collections::BTreeSet<String> =
        walkdir::WalkDir::new(server.bucket_dir().join("checkpoints"))
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| {
                let name = e.file_name().to_string_lossy();
                name.starts_with("checkpoint-") && name.ends_with(".json")
            })
            .filter_map(|e| {
                Some(
                    e.path()
                        .parent()?
                        .file_name()?
                        .to_string_lossy()
                        .into_owned(),
                )
            })
            .collect();
    // B and C at least (A may have been killed before it had anything to
    // checkpoint: when it joined after B had read everything, it took its
    // partitions over with their state and read nothing new).
    assert!(writers.len() >= 2, "{writers:?}");
    assert!(
        !ward.per_minute.join("_vitalflow").exists(),
        "checkpoints were written beside the dataset"
    );
}

/// A and B share the partitions; A is killed while minute 2 is open; the
/// second half is published; C, started after A's session expired, takes
/// A's partitions over. Every window is then checked against the batch
/// computation.
async fn kill_one_and_replace_it(broker: &SharedBroker, ward: &Ward) {
    let Ward {
        dir,
        pipeline,
        env,
        per_minute,
        ..
    } = ward;
    let a = Instance::start(pipeline, env, dir.path().join("a.log"));
    let b = Instance::start(pipeline, env, dir.path().join("b.log"));
    wait_holding(&[&a, &b]).await;
    // Minutes 0 and 1 closed on both instances; minute 2 is open in both.
    let have = wait_for_rows(per_minute, 40, Duration::from_secs(120)).await;
    assert_eq!(have, 40, "A:\n{}\nB:\n{}", a.log(), b.log());
    let log_a = a.log();
    a.kill9();
    let killed = tokio::time::Instant::now();

    ward.publish_second_half(broker).await;
    let c = start_after_sessions_expire(pipeline, env, dir.path().join("c.log"), killed).await;
    let have = wait_for_rows(per_minute, 80, Duration::from_secs(120)).await;
    let (log_b, log_c) = (b.stop(), c.stop());
    let logs = format!("A (killed):\n{log_a}\nB:\n{log_b}\nC:\n{log_c}");
    assert_eq!(have, 80, "{logs}");
    assert_each_minute_once(per_minute, &dir.path().join("late"), &logs).await;
    assert!(
        took_over_state(&log_b) || took_over_state(&log_c),
        "no instance restored the killed one's open windows:\n{logs}"
    );
}

/// One instance runs alone; a second joins and takes half the partitions,
/// with the open windows of those partitions, and continues them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_instance_continues_the_windows_of_the_partitions_it_takes() {
    let Some(broker) = SharedBroker::get() else {
        return;
    };
    let ward = Ward::first_half(&broker, "scaleout").await;
    let Ward {
        dir,
        pipeline,
        env,
        per_minute,
        topic,
    } = &ward;

    let a = Instance::start(pipeline, env, dir.path().join("a.log"));
    wait_holding(&[&a]).await;
    let have = wait_for_rows(per_minute, 40, Duration::from_secs(120)).await;
    assert_eq!(have, 40, "A:\n{}", a.log());

    let b = Instance::start(pipeline, env, dir.path().join("b.log"));
    wait_holding(&[&b]).await;
    ward.publish_second_half(&broker).await;
    let have = wait_for_rows(per_minute, 80, Duration::from_secs(120)).await;
    let (log_a, log_b) = (a.stop(), b.stop());
    let logs = format!("A:\n{log_a}\nB:\n{log_b}");
    assert_eq!(have, 80, "{logs}");
    assert_each_minute_once(per_minute, &dir.path().join("late"), &logs).await;
    assert!(
        took_over_state(&log_b),
        "the joining instance did not continue open windows:\n{logs}"
    );

    // `vitalflow status` reads the same checkpoints: two writers, and every
    // partition with the writer whose state a takeover would restore.
    let output = std::process::Command::new(binary())
        .args(["status", "--pipeline"])
        .arg(pipeline)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(report.matches("\nwriter ").count(), 2, "{report}");
    for partition in 0..4 {
        let line = format!("monitors {topic}/{partition}: writer ");
        assert!(
            report.contains(&line),
            "no owner of partition {partition}:\n{report}"
        );
    }
}

/// `vitalflow up` over the keyed Kafka pipeline shows on `/health` the
/// partitions it owns, each with its offset, watermark and last checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_shows_the_partitions_an_instance_owns() {
    let Some(broker) = SharedBroker::get() else {
        return;
    };
    let ward = Ward::first_half(&broker, "health").await;
    let port = crate::support::free_port();
    let mut command = crate::support::up_command(port, ward.dir.path());
    command
        .arg("--pipeline")
        .arg(&ward.pipeline)
        .envs(ward.env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let _up = crate::support::ChildGuard::spawn(&mut command).unwrap();
    let health = crate::support::wait_for(
        Duration::from_secs(120),
        "/health to list 4 checkpointed partitions, all read, with open windows",
        || async {
            let body = crate::support::get_json(port, "/health").await?;
            let partitions = body["partitions"].as_array()?;
            // 6,000 readings over 4 partitions: every offset read.
            let read: i64 = partitions
                .iter()
                .filter_map(|p| p["next_offset"].as_i64())
                .sum();
            let ready = partitions.len() == 4
                && read == 6_000
                && partitions.iter().all(|p| {
                    p["last_checkpoint"].is_string()
                        && p["watermark"].is_string()
                        && p["state_rows"].as_u64().is_some_and(|rows| rows > 0)
                });
            ready.then_some(body)
        },
    )
    .await;
    let partitions = health["partitions"].as_array().unwrap();
    let mut numbers: Vec<i64> = partitions
        .iter()
        .map(|p| p["partition"].as_i64().unwrap())
        .collect();
    numbers.sort();
    assert_eq!(numbers, [0, 1, 2, 3], "{health}");
    assert!(
        partitions.iter().all(|p| p["topic"] == ward.topic.as_str()),
        "{health}"
    );
}

/// The alerts pipeline (as shipped: `alert:` keyed by patient, the source
/// keyed by patient) over two instances; one is killed half-way and a
/// replacement takes its partitions over with their alert levels. The
/// alerts stored are exactly those of the batch computation over all
/// readings: a lost level would alert again, a lost batch would miss one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_s_alert_levels_move_to_its_replacement() {
    let Some(broker) = SharedBroker::get() else {
        return;
    };
    let (topic, alerts_topic, group) = (unique("alerts-fo"), unique("alerts-out"), unique("g"));
    let simulator = SimulatorConfig {
        episodes_per_hour: 30.0,
        ..unpaced(24_000)
    };
    let expected = expected_alerts(&simulator, 60_000);
    // The readings in order, as JSON messages keyed by patient; the first
    // half (the first 300 s) is published before the instances start.
    let start = chrono::DateTime::parse_from_rfc3339(START)
        .unwrap()
        .timestamp_millis();
    let mut generator = VitalsGenerator::new(&simulator, start);
    let mut messages: Vec<(String, Vec<u8>)> = Vec::new();
    while let Some(batch) = generator.next_batch(1_000) {
        let (keys, payloads) = encode_json_lines(&batch).unwrap();
        messages.extend(keys.into_iter().zip(payloads));
    }
    assert_eq!(messages.len(), 24_000);
    let half_time = start + 300_000;
    let first_half_alerts = expected.iter().filter(|a| a.1 < half_time).count();
    assert!(
        first_half_alerts > 5 && expected.len() > first_half_alerts + 5,
        "alerts on both sides of the kill: {expected:?}"
    );
    let client = ClientSettings::new(&broker.addr());
    ensure_topic(
        &client,
        &topic,
        &TopicSettings {
            partitions: 4,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let produce = |part: &[(String, Vec<u8>)]| {
        let producer =
            KeyedProducer::new(&client, &topic, |e| panic!("delivery failed: {e}")).unwrap();
        for (key, payload) in part {
            producer.send(key.as_bytes(), payload).unwrap();
        }
        producer.flush(Duration::from_secs(60)).unwrap();
    };
    produce(&messages[..12_000]);

    let dir = tempfile::tempdir().unwrap();
    let yaml = alerts_pipeline_yaml(&alerts_topic).replace("max_age: 10s", "max_age: 1s");
    assert!(yaml.contains("key: patient_id") && yaml.contains("max_age: 1s"));
    let pipeline = dir.path().join("alerts.yaml");
    std::fs::write(&pipeline, yaml).unwrap();
    let mut env = pipeline_env(&broker.addr(), &topic, &group, dir.path());
    env.push(("KAFKA_ALERTS_GROUP", group.clone()));
    let alerts = dir.path().join("alerts");

    let a = Instance::start(&pipeline, &env, dir.path().join("a.log"));
    let b = Instance::start(&pipeline, &env, dir.path().join("b.log"));
    wait_holding(&[&a, &b]).await;
    let have = wait_for_rows(&alerts, first_half_alerts as u64, Duration::from_secs(120)).await;
    assert_eq!(
        have,
        first_half_alerts as u64,
        "A:\n{}\nB:\n{}",
        a.log(),
        b.log()
    );
    let log_a = a.log();
    a.kill9();
    let killed = tokio::time::Instant::now();

    produce(&messages[12_000..]);
    let c = start_after_sessions_expire(&pipeline, &env, dir.path().join("c.log"), killed).await;
    let have = wait_for_rows(&alerts, expected.len() as u64, Duration::from_secs(120)).await;
    let (log_b, log_c) = (b.stop(), c.stop());
    let logs = format!("A (killed):\n{log_a}\nB:\n{log_b}\nC:\n{log_c}");
    assert_eq!(have, expected.len() as u64, "{logs}");

    let actual: Vec<(String, i64, String)> = stored_alerts(&alerts)
        .await
        .into_iter()
        .map(|(p, t, l, _)| (p, t, l))
        .collect();
    assert_eq!(actual, by_second(&expected), "{logs}");
}
