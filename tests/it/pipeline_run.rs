//! Rows in = rows stored: no loss, no duplicates, values intact, over
//! several file rolls and a date boundary.

use arrow::array::RecordBatch;
use arrow::compute::{SortColumn, concat_batches, lexsort_to_indices, take_record_batch};
use vitalflow::sources::SimulatorConfig;
use vitalflow::sources::simulator::VitalsGenerator;

use super::support::*;

const EVENTS: u64 = 60_000;

fn yaml(out: &std::path::Path) -> String {
    format!(
        r#"
name: roll-test
sources:
  monitors:
    kind: simulator
    patients: 37
    seed: 7
    pacing: unpaced
    limit: {EVENTS}
    batch_rows: 1000
    start: "2026-03-01T23:55:00Z"
transforms:
  passthrough:
    sql: SELECT * FROM monitors
sinks:
  raw:
    kind: parquet
    input: passthrough
    path: "{}"
    partition_by_date: ts
    row_group_rows: 3000
    roll:
      max_rows: 7000
"#,
        out.display()
    )
}

fn sorted(batches: &[RecordBatch]) -> RecordBatch {
    let schema = batches[0].schema();
    let all = concat_batches(&schema, batches).unwrap();
    let columns = vec![
        SortColumn {
            values: all.column_by_name("patient_id").unwrap().clone(),
            options: None,
        },
        SortColumn {
            values: all.column_by_name("ts").unwrap().clone(),
            options: None,
        },
    ];
    take_record_batch(&all, &lexsort_to_indices(&columns, None).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_row_is_stored_exactly_once_across_rolls_and_dates() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("raw");
    let summary = run_pipeline(&write_pipeline(dir.path(), &yaml(&out))).await;
    assert_eq!(summary.records_in(), EVENTS);
    assert_eq!(summary.sinks[0].1.rows, EVENTS);

    let files = parquet_files(&out);
    assert!(
        files.len() >= 9,
        "expected several rolls, got {} files",
        files.len()
    );
    let dates: std::collections::BTreeSet<_> = files
        .iter()
        .map(|f| {
            f.parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(
        dates.into_iter().collect::<Vec<_>>(),
        ["date=2026-03-01", "date=2026-03-02"]
    );
    assert!(
        files_below(&out, |n| n.ends_with(".inprogress")).is_empty(),
        "no in-progress file after a clean stop"
    );
    for file in &files {
        let rows: usize = read_parquet(file).iter().map(|b| b.num_rows()).sum();
        assert!(rows <= 7000, "{} has {rows} rows", file.display());
    }

    assert_eq!(
        scalar_i64(&out, "SELECT count(*) FROM t").await,
        EVENTS as i64
    );
    assert_eq!(
        scalar_i64(
            &out,
            "SELECT count(*) FROM (SELECT DISTINCT patient_id, ts FROM t)"
        )
        .await,
        EVENTS as i64,
        "no duplicates"
    );
    // Rows before midnight are in the first partition and only there.
    assert_eq!(
        scalar_i64(&out, "SELECT count(*) FROM t WHERE date = '2026-03-01' AND ts >= TIMESTAMP '2026-03-02T00:00:00Z'").await,
        0
    );

    // Values intact: the stored rows are exactly what the generator makes.
    let config = SimulatorConfig {
        patients: 37,
        seed: 7,
        limit: Some(EVENTS),
        ..Default::default()
    };
    let start = chrono::DateTime::parse_from_rfc3339("2026-03-01T23:55:00Z")
        .unwrap()
        .timestamp_millis();
    let mut generator = VitalsGenerator::new(&config, start);
    let mut expected = Vec::new();
    while let Some(b) = generator.next_batch(5000) {
        expected.push(b);
    }
    let stored = sql(&out, "SELECT * EXCEPT (date) FROM t").await;
    let (expected, stored) = (sorted(&expected), sorted(&stored));
    assert_eq!(expected.num_rows(), stored.num_rows());
    for (i, field) in expected.schema().fields().iter().enumerate() {
        let got = stored.column_by_name(field.name()).unwrap();
        let want = arrow::compute::cast(expected.column(i), got.data_type()).unwrap();
        assert_eq!(&want, got, "column {}", field.name());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiny_files_like_the_original_are_still_possible() {
    // The original flushed every 200 records or 5 s: still expressible.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("raw");
    let yaml = yaml(&out)
        .replace("max_rows: 7000", "max_rows: 200\n      max_age: 5s")
        .replace(&format!("limit: {EVENTS}"), "limit: 2000");
    let summary = run_pipeline(&write_pipeline(dir.path(), &yaml)).await;
    assert_eq!(summary.sinks[0].1.rows, 2000);
    assert!(parquet_files(&out).len() >= 10);
    assert_eq!(scalar_i64(&out, "SELECT count(*) FROM t").await, 2000);
}

/// `vitalflow up` hands one run's handles to its pipeline and its server:
/// the server's live ward shows the readings of the pipeline in the same
/// process (no process-wide registry in between).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_serves_the_live_ward_of_its_own_pipeline() {
    use std::process::Stdio;

    let dir = tempfile::tempdir().unwrap();
    let port = crate::support::free_port();
    let mut command = crate::support::up_command(port, dir.path());
    command
        .env("VITALFLOW_DATA_DIR", dir.path().join("data"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _up = crate::support::ChildGuard::spawn(&mut command).unwrap();
    let ward = crate::support::wait_for(
        std::time::Duration::from_secs(120),
        "the live ward to list the simulated patients",
        || async {
            let body = crate::support::get_json(port, "/api/ward").await?;
            let patients = body["patients"].as_array()?.len();
            (body["live"] == true && patients == 50).then_some(body)
        },
    )
    .await;
    assert!(ward["patients"][0]["news2_score"].is_number(), "{ward}");
}
