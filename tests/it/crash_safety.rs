//! A process killed (SIGKILL) at any moment while writing leaves only
//! complete, readable files in the dataset.

use std::process::{Command, Stdio};
use std::time::Duration;

use rand::Rng;

use super::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_writing_leaves_only_complete_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("vitals");
    let yaml = format!(
        r#"
name: crash
sources:
  monitors:
    kind: simulator
    patients: 100
    pacing: unpaced
    batch_rows: 2000
transforms:
  scored:
    sql_file: "{}"
sinks:
  vitals:
    kind: parquet
    input: scored
    path: "{}"
    partition_by_date: ts
    sort_by: [patient_id, ts]
    row_group_rows: 4000
    roll:
      max_rows: 12000
"#,
        std::fs::canonicalize("sql/vitals_scored.sql")
            .unwrap()
            .display(),
        out.display()
    );
    let pipeline = write_pipeline(dir.path(), &yaml);
    let mut rng = rand::rng();
    for round in 0..4 {
        let mut child = ChildGuard::spawn(
            Command::new(binary())
                .args(["run", pipeline.to_str().unwrap(), "--log", "warn"])
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )
        .unwrap();
        // Wait for this round's writer to publish something, then kill it
        // at a random point of its work.
        let before = parquet_files(&out).len();
        wait_until(
            Duration::from_secs(60),
            &format!("round {round}: a file published"),
            || std::future::ready(parquet_files(&out).len() != before),
        )
        .await;
        // Not a wait for anything: the kill lands at a random moment of
        // the writer's work, which is the point of the test.
        let moment = Duration::from_millis(rng.random_range(0..400));
        tokio::time::sleep(moment).await;
        child.kill(); // SIGKILL
    }

    let files = parquet_files(&out);
    assert!(files.len() >= 4);
    let mut total = 0;
    for file in &files {
        let rows: usize = read_parquet(file).iter().map(|b| b.num_rows()).sum();
        assert!(
            rows > 0 && rows <= 12_000,
            "{}: {rows} rows",
            file.display()
        );
        total += rows;
    }
    // Killed writers leave hidden in-progress files; readers never see them.
    assert_eq!(
        scalar_i64(&out, "SELECT count(*) FROM t").await,
        total as i64
    );
}
