//! FHIR R4 and HL7 v2 in: the conformance files (`tests/conformance/`) read
//! as their standards mean them, and over Kafka, the simulated ward as FHIR
//! Bundles and as ORU^R01 messages scores exactly the NEWS2 of the JSON
//! path on the same seed, while what is not a reading lands in the dead
//! letters with its reason.

use std::path::Path;
use std::time::Duration;

use arrow::array::AsArray;
use tokio_util::sync::CancellationToken;
use vitalflow::interop::hl7v2::Hl7Options;
use vitalflow::interop::{CodeSet, Format, Reading, RejectionKind, Translated, fhir_in, hl7v2};
use vitalflow::kafka::{ClientSettings, KeyedProducer, TopicSettings};
use vitalflow::sources::simulator::{PublishOptions, SimulatorConfig, publish_readings};

use crate::broker::SharedBroker;
use crate::kafka::{
    START, assert_exactly, fill_env, pipeline_env, query, rows_in, start_in_process, unique,
    unpaced,
};
use crate::support::poll_until;

fn conformance(path: &str) -> Vec<u8> {
    std::fs::read(Path::new("tests/conformance").join(path)).unwrap()
}

fn fhir(path: &str) -> Translated {
    fhir_in::read(&conformance(path), &CodeSet::defaults())
}

fn hl7(path: &str) -> Translated {
    hl7v2::read(
        &conformance(path),
        &CodeSet::defaults(),
        &Hl7Options::default(),
    )
}

/// 2026-11-30 at `hh:mm:ss.mmm` UTC as epoch ms.
fn at(hms: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(&format!("2026-11-30T{hms}Z"))
        .unwrap()
        .timestamp_millis()
}

fn only_reading(t: &Translated) -> &Reading {
    assert!(t.rejections.is_empty(), "{:?}", t.rejections);
    assert_eq!(t.readings.len(), 1, "{:?}", t.readings);
    &t.readings[0]
}

#[test]
fn the_fhir_vital_sign_examples_read_as_the_specification_means_them() {
    let expect = |path: &str, want: Reading| assert_eq!(only_reading(&fhir(path)), &want, "{path}");
    let example = |f: fn(&mut Reading)| {
        // 09:30 at +01:00.
        let mut r = Reading::new("example", at("08:30:00"));
        f(&mut r);
        r
    };
    expect("fhir/heart-rate.json", example(|r| r.heart_rate = Some(44)));
    expect(
        "fhir/respiratory-rate.json",
        example(|r| r.respiratory_rate = Some(26)),
    );
    expect(
        "fhir/body-temperature.json",
        example(|r| r.temperature = Some(36.5)),
    );
    expect(
        "fhir/blood-pressure.json",
        example(|r| {
            r.systolic_bp = Some(107);
            r.diastolic_bp = Some(60);
        }),
    );
    // Three codings of SpO2; oxygen at 6 L/min and 40 %.
    expect(
        "fhir/oxygen-saturation.json",
        example(|r| {
            r.spo2 = Some(95);
            r.on_oxygen = Some(true);
        }),
    );
    // The panel: the patient from an absolute, versioned reference, an
    // effectiveInstant with milliseconds, Fahrenheit, ACVPU as a coded
    // value; its body weight is not a vital sign and is left out.
    let panel = fhir("fhir/vital-signs-panel.json");
    let r = only_reading(&panel);
    assert_eq!(
        (r.patient_id.as_str(), r.ts),
        ("P00042", at("08:15:00.500"))
    );
    assert_eq!(
        (
            r.heart_rate,
            r.respiratory_rate,
            r.spo2,
            r.systolic_bp,
            r.diastolic_bp
        ),
        (Some(118), Some(23), Some(92), Some(95), Some(58))
    );
    assert!(
        (r.temperature.unwrap() - 38.5).abs() < 1e-9,
        "{:?}",
        r.temperature
    );
    assert_eq!(r.consciousness.as_deref(), Some("C"));
    assert_eq!(r.on_oxygen, None, "no oxygen measure: NULL, not false");
}

#[test]
fn a_bundle_mixing_valid_and_invalid_resources_keeps_the_valid_and_names_the_rest() {
    let t = fhir("fhir/bundle-mixed.json");
    // P00007's heart rate, SpO2 and (Fahrenheit) temperature merge into one
    // reading; P00008's heart rate is another.
    assert_eq!(t.readings.len(), 2, "{:?}", t.readings);
    let p7 = &t.readings[0];
    assert_eq!((p7.patient_id.as_str(), p7.ts), ("MIXED-7", at("10:00:00")));
    assert_eq!((p7.heart_rate, p7.spo2), (Some(72), Some(97)));
    assert!((p7.temperature.unwrap() - 37.0).abs() < 1e-9);
    assert_eq!(p7.respiratory_rate, None);
    assert_eq!(
        t.sources[0],
        "entry[1] Observation/hr-7, entry[2] Observation/spo2-7, entry[6] Observation/temp-7"
    );
    assert_eq!(
        (t.readings[1].patient_id.as_str(), t.readings[1].heart_rate),
        ("MIXED-8", Some(88))
    );

    let got: Vec<(RejectionKind, &str)> = t
        .rejections
        .iter()
        .map(|r| (r.kind, r.reason.as_str()))
        .collect();
    let expected: [(RejectionKind, &str); 7] = [
        (
            RejectionKind::Invalid,
            "entry[0] Patient/MIXED-7: a Patient, not an Observation",
        ),
        (
            RejectionKind::NotAResult,
            "entry[3] Observation/hr-7-wrong: status `entered-in-error`",
        ),
        (
            RejectionKind::UnknownCode,
            "entry[4] Observation/weight-7: code http://loinc.org|29463-7 is not a vital sign",
        ),
        (
            RejectionKind::BadUnit,
            "entry[5] Observation/spo2-7-mmhg: unit `mm[Hg]` (http://unitsofmeasure.org) does not measure spo2",
        ),
        (
            RejectionKind::BadTime,
            "entry[7] Observation/rr-7-dateonly: effectiveDateTime `2026-11-30` has no time of day",
        ),
        (
            RejectionKind::Invalid,
            "entry[8] Observation/hr-7-nostatus: not a valid Observation: missing field `status`",
        ),
        (
            RejectionKind::Conflict,
            "entry[10] Observation/hr-7-conflict: heart_rate is 72 and 90 for MIXED-7",
        ),
    ];
    assert_eq!(got.len(), expected.len(), "{got:#?}");
    for ((kind, reason), (want_kind, want)) in got.iter().zip(expected) {
        assert_eq!(*kind, want_kind, "{reason}");
        assert!(
            reason.starts_with(want),
            "`{reason}` does not start with `{want}`"
        );
    }
}

#[test]
fn a_monitor_gateway_oru_reads_with_escapes_repeats_and_a_missing_obx_14() {
    let r = only_reading(&hl7("hl7v2/monitor-oru.hl7")).clone();
    let mut want = Reading::new("P&0042", at("09:15:00"));
    // ECG heart rate over the oximeter's pulse rate; SpO2 without OBX-14
    // at OBR-7's time; the respiration rate under its partition-term code;
    // the mean pressure and the alarm text are not vital signs.
    want.heart_rate = Some(96);
    want.spo2 = Some(94);
    want.systolic_bp = Some(128);
    want.diastolic_bp = Some(81);
    want.respiratory_rate = Some(21);
    want.temperature = Some(38.4);
    want.consciousness = Some("V".into());
    assert_eq!(r, want);
}

#[test]
fn malformed_hl7v2_segments_are_rejected_with_segment_and_field_named() {
    let t = hl7("hl7v2/malformed-oru.hl7");
    let reasons: Vec<&str> = t.rejections.iter().map(|r| r.reason.as_str()).collect();
    let expected = [
        "OBX[1]: OBX-5 `9O` is not a number",
        "OBX[2]: OBX-6: unit `266016` (MDC) does not measure spo2",
        "OBX[3]: OBX-14: `2026-11-30T10:16` is not an HL7 timestamp",
        "OBX[4]: OBX-11 is `W`",
        "OBX[5]: OBR-7: `2026113010` is not precise to the minute",
    ];
    assert_eq!(reasons.len(), expected.len(), "{reasons:#?}");
    for (reason, want) in reasons.iter().zip(expected) {
        assert!(
            reason.starts_with(want),
            "`{reason}` does not start with `{want}`"
        );
    }
    // The one good OBX still gives its reading (no offset anywhere: UTC).
    assert_eq!(t.readings.len(), 1);
    assert_eq!(t.readings[0].diastolic_bp, Some(77));
    assert_eq!(t.readings[0].ts, at("10:16:00"));
}

/// Publish the simulated ward in `format`.
async fn publish_as(brokers: &str, topic: &str, simulator: SimulatorConfig, format: Format) {
    let options = PublishOptions {
        client: ClientSettings::new(brokers),
        topic: topic.to_string(),
        create_topic: Some(TopicSettings {
            partitions: 4,
            ..Default::default()
        }),
        flush_timeout: Duration::from_secs(120),
        format,
    };
    let summary = publish_readings(simulator, options, CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("publishing {format:?}: {e:#}"));
    assert_eq!(summary.failed, 0);
}

/// The shipped FHIR pipeline for `topic`, writing under `dir`, reading
/// `format`.
fn fhir_pipeline(dir: &Path, brokers: &str, topic: &str, format: &str) -> std::path::PathBuf {
    let root = std::fs::canonicalize(".").unwrap();
    let yaml = std::fs::read_to_string("pipelines/vitals-fhir.yaml")
        .unwrap()
        .replace("../udfs", &root.join("udfs").display().to_string())
        .replace("format: fhir", &format!("format: {format}"))
        .replace("max_age: 1m", "max_age: 1s");
    let env = pipeline_env(brokers, topic, &unique("g"), dir);
    let path = dir.join("vitals-fhir.yaml");
    std::fs::write(&path, fill_env(&yaml, &env)).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fhir_and_hl7v2_over_kafka_score_the_news2_of_the_json_path() {
    let Some(broker) = SharedBroker::get() else {
        return;
    };
    let n = 400;
    let simulator = unpaced(n);
    let brokers = broker.addr();
    let (json_topic, fhir_topic, hl7_topic) = (unique("json"), unique("fhir"), unique("hl7"));
    publish_as(&brokers, &json_topic, simulator.clone(), Format::Json).await;
    publish_as(&brokers, &fhir_topic, simulator.clone(), Format::Fhir).await;
    publish_as(&brokers, &hl7_topic, simulator.clone(), Format::Hl7v2).await;
    // A Bundle mixing good and bad resources and two ORU^R01 from gateways
    // join the ward's messages.
    let extra = |topic: &str, file: &str| {
        let producer =
            KeyedProducer::new(&ClientSettings::new(&brokers), topic, |e| panic!("{e}")).unwrap();
        producer.send(b"extra", &conformance(file)).unwrap();
        producer.flush(Duration::from_secs(60)).unwrap();
    };
    extra(&fhir_topic, "fhir/bundle-mixed.json");
    extra(&hl7_topic, "hl7v2/monitor-oru.hl7");
    extra(&hl7_topic, "hl7v2/malformed-oru.hl7");

    let json_dir = tempfile::tempdir().unwrap();
    let json_path =
        crate::kafka::shipped_yaml_for(json_dir.path(), &brokers, &json_topic, &unique("g"));
    let fhir_dir = tempfile::tempdir().unwrap();
    let fhir_path = fhir_pipeline(fhir_dir.path(), &brokers, &fhir_topic, "fhir");
    let hl7_dir = tempfile::tempdir().unwrap();
    let hl7_path = fhir_pipeline(hl7_dir.path(), &brokers, &hl7_topic, "hl7v2");
    let mut runs = Vec::new();
    for path in [&json_path, &fhir_path, &hl7_path] {
        runs.push(start_in_process(path).await);
    }
    let (json_vitals, fhir_vitals, hl7_vitals) = (
        json_dir.path().join("vitals"),
        fhir_dir.path().join("vitals_fhir"),
        hl7_dir.path().join("vitals_fhir"),
    );
    let (fhir_dead, hl7_dead) = (
        fhir_dir.path().join("dead_letters_fhir"),
        hl7_dir.path().join("dead_letters_fhir"),
    );
    // The ward plus the extra messages' readings (2 from the Bundle; 1 from
    // each ORU) and their rejections (7 in the Bundle, 5 in the bad ORU).
    let arrived = poll_until(Duration::from_secs(180), || async {
        (rows_in(&json_vitals).await >= n
            && rows_in(&fhir_vitals).await >= n + 2
            && rows_in(&hl7_vitals).await >= n + 2
            && rows_in(&fhir_dead).await >= 7
            && rows_in(&hl7_dead).await >= 5)
            .then_some(())
    })
    .await;
    for (stop, run) in runs {
        stop.cancel();
        run.await.unwrap().unwrap_or_else(|e| panic!("{e}"));
    }
    assert!(
        arrived.is_some(),
        "timed out: json {} fhir {} (+{} dead) hl7 {} (+{} dead)",
        rows_in(&json_vitals).await,
        rows_in(&fhir_vitals).await,
        rows_in(&fhir_dead).await,
        rows_in(&hl7_vitals).await,
        rows_in(&hl7_dead).await
    );

    // The ward's readings arrive intact through either format...
    for dataset in [&fhir_vitals, &hl7_vitals] {
        let ward_only = dataset.parent().unwrap().join("ward_only");
        copy_ward_rows(dataset, &ward_only).await;
        assert_exactly(&ward_only, &simulator, n).await;
    }
    // ...and score exactly the NEWS2 of the JSON path (its SQL, theirs the
    // plugins): reading by reading.
    let scores = |dataset: std::path::PathBuf| async move {
        scored_readings(
            &dataset,
            &format!("SELECT patient_id, CAST(ts AS BIGINT), CAST(news2_score AS BIGINT) FROM t WHERE ts >= TIMESTAMP '{START}' AND patient_id LIKE 'P000%' ORDER BY 1, 2"),
        )
        .await
    };
    let json_scores = scores(json_vitals.clone()).await;
    assert_eq!(json_scores.len() as u64, n);
    assert_eq!(
        scores(fhir_vitals.clone()).await,
        json_scores,
        "FHIR NEWS2 differs from JSON"
    );
    assert_eq!(
        scores(hl7_vitals.clone()).await,
        json_scores,
        "HL7 v2 NEWS2 differs from JSON"
    );

    // The Bundle's bad entries are dead letters with their place and reason.
    let reasons = |dataset: std::path::PathBuf| async move {
        let batches = query(
            &dataset,
            "SELECT reason_kind, reason FROM t ORDER BY reason",
            None,
        )
        .await;
        let mut out = Vec::new();
        for b in batches {
            let (kinds, texts) = (utf8(b.column(0)), utf8(b.column(1)));
            for i in 0..b.num_rows() {
                out.push(format!("{}: {}", kinds[i], texts[i]));
            }
        }
        out
    };
    let fhir_reasons = reasons(fhir_dead).await;
    assert_eq!(fhir_reasons.len(), 7, "{fhir_reasons:#?}");
    assert!(
        fhir_reasons
            .iter()
            .any(|r| r.starts_with("not_a_result: entry[3] Observation/hr-7-wrong")),
        "{fhir_reasons:#?}"
    );
    assert!(
        fhir_reasons
            .iter()
            .any(|r| r.starts_with("bad_unit: entry[5]")),
        "{fhir_reasons:#?}"
    );
    let hl7_reasons = reasons(hl7_dead).await;
    assert_eq!(hl7_reasons.len(), 5, "{hl7_reasons:#?}");
    assert!(
        hl7_reasons
            .iter()
            .any(|r| r.starts_with("bad_value: OBX[1]: OBX-5 `9O`")),
        "{hl7_reasons:#?}"
    );
    // The gateway's reading is scored: NEWS2 counts what it lacks.
    let gateway = query(
        &hl7_vitals,
        "SELECT CAST(news2_missing AS BIGINT) FROM t WHERE patient_id = 'P&0042'",
        None,
    )
    .await;
    // on_oxygen was not sent: one parameter missing.
    assert_eq!(
        gateway[0]
            .column(0)
            .as_primitive::<arrow::datatypes::Int64Type>()
            .value(0),
        1
    );
}

/// `(patient, ts, score)` rows of `sql` (three columns: a string and two
/// BIGINTs) over `dataset`.
async fn scored_readings(dataset: &Path, sql: &str) -> Vec<(String, i64, i64)> {
    let mut out = Vec::new();
    for b in query(dataset, sql, None).await {
        let ids = utf8(b.column(0));
        let (ts, score) = (
            b.column(1).as_primitive::<arrow::datatypes::Int64Type>(),
            b.column(2).as_primitive::<arrow::datatypes::Int64Type>(),
        );
        for (i, id) in ids.into_iter().enumerate() {
            out.push((id, ts.value(i), score.value(i)));
        }
    }
    out
}

/// A string column (plain or view) as strings.
fn utf8(column: &arrow::array::ArrayRef) -> Vec<String> {
    let plain = arrow::compute::cast(column, &arrow::datatypes::DataType::Utf8).unwrap();
    plain
        .as_string::<i32>()
        .iter()
        .map(|v| v.unwrap_or_default().to_string())
        .collect()
}

/// The ward's rows of `dataset` (not the conformance messages') as a
/// Parquet dataset of their own, with the reading's columns only.
async fn copy_ward_rows(dataset: &Path, to: &Path) {
    let batches = query(
        dataset,
        &format!("SELECT patient_id, ts, heart_rate, spo2, systolic_bp, diastolic_bp, respiratory_rate, temperature, consciousness, on_oxygen FROM t WHERE ts >= TIMESTAMP '{START}' AND patient_id LIKE 'P000%'"),
        None,
    )
    .await;
    std::fs::create_dir_all(to).unwrap();
    let file = std::fs::File::create(to.join("rows.parquet")).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, batches[0].schema(), None).unwrap();
    for b in &batches {
        writer.write(b).unwrap();
    }
    writer.close().unwrap();
}

/// A pipeline taking FHIR POSTed to the server into Parquet.
const INGEST_PIPELINE: &str = "name: ingest
sources:
  posted:
    kind: fhir_ingest
    schema:
      - {name: patient_id, type: string}
      - {name: ts, type: timestamp, max_future: 5m}
      - {name: heart_rate, type: int32, min: 0, max: 300, required: false}
      - {name: spo2, type: int32, min: 0, max: 100, required: false}
      - {name: respiratory_rate, type: int32, min: 0, max: 100, required: false}
      - {name: temperature, type: float64, min: 25, max: 45, required: false}
sinks:
  vitals:
    kind: parquet
    input: posted
    path: DIR/vitals
    roll: {max_age: 1h}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posted_fhir_is_stored_before_the_answer_and_a_retry_stores_nothing_twice() {
    use vitalflow::auth::Role;
    use vitalflow::common::IngestHubs;

    let dir = tempfile::tempdir().unwrap();
    let path = crate::support::write_pipeline(
        dir.path(),
        &INGEST_PIPELINE.replace("DIR", &dir.path().display().to_string()),
    );
    let hubs = IngestHubs::default();
    let planned = vitalflow::engine::plan(vitalflow::spec::load(&path).unwrap())
        .await
        .unwrap();
    let stop = CancellationToken::new();
    let options = vitalflow::engine::RunOptions {
        ingest: hubs.clone(),
        ..Default::default()
    };
    let token = stop.clone();
    let run = tokio::spawn(async move { vitalflow::engine::run(&planned, token, options).await });
    // Tokens first: the server reads the tokens file when it starts.
    let gateway =
        crate::support::client_with(&crate::support::token_for("gateway", &[Role::Ingest]));
    let viewer = crate::support::client_with(&crate::support::token_for("nurse", &[Role::Viewer]));
    let server = crate::support::start_server(
        vitalflow::server::AppState::new(Err("no model in this test".into())).with_ingest(&hubs),
    )
    .await;
    let base = server.base.clone();
    let vitals = dir.path().join("vitals");
    let rows = || async { rows_in(&vitals).await };

    // The source registers once the pipeline runs; until then: 503.
    crate::support::wait_until(
        Duration::from_secs(30),
        "the ingest source to register",
        || async { hubs.single().is_ok() },
    )
    .await;

    let heart_rate = conformance("fhir/heart-rate.json");
    let post = |url: &'static str, body: Vec<u8>| {
        let gateway = gateway.clone();
        let base = base.clone();
        async move {
            let response = gateway
                .post(format!("{base}{url}"))
                .header("content-type", "application/fhir+json")
                .body(body)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let location = response
                .headers()
                .get("location")
                .map(|v| v.to_str().unwrap().to_string());
            let body: serde_json::Value = response.json().await.unwrap();
            (status, location, body)
        }
    };
    // Stored, durably, before the answer: the row is in the dataset as the
    // 201 arrives.
    let (status, location, body) = post("/fhir/Observation", heart_rate.clone()).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(location.as_deref(), Some("Observation/heart-rate"));
    assert_eq!(rows().await, 1);
    // A retry: 200, nothing stored twice.
    let (status, _, body) = post("/fhir/Observation", heart_rate.clone()).await;
    assert_eq!(
        (status, body["issue"][0]["code"].as_str()),
        (200, Some("duplicate")),
        "{body}"
    );
    assert_eq!(rows().await, 1);
    // A value the declared schema refuses: 422 with the reason.
    let too_fast = String::from_utf8(heart_rate.clone())
        .unwrap()
        .replace("\"id\": \"heart-rate\"", "\"id\": \"hr-400\"")
        .replace("\"value\": 44", "\"value\": 400");
    let (status, _, body) = post("/fhir/Observation", too_fast.into_bytes()).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["resourceType"], "OperationOutcome");
    assert!(
        body["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("heart_rate"),
        "{body}"
    );
    assert_eq!(rows().await, 1);

    // A batch: every entry answered in order; the valid ones stored.
    let mixed = String::from_utf8(conformance("fhir/bundle-mixed.json")).unwrap();
    let batch = mixed.replace("\"type\": \"transaction\"", "\"type\": \"batch\"");
    let (status, _, body) = post("/fhir", batch.into_bytes()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["type"], "batch-response");
    let statuses: Vec<&str> = body["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["response"]["status"].as_str().unwrap())
        .collect();
    let (created, refused) = ("201 Created", "422 Unprocessable Entity");
    assert_eq!(
        statuses,
        [
            refused, created, created, refused, refused, refused, created, refused, refused,
            created, refused
        ],
        "{body}"
    );
    assert_eq!(
        body["entry"][4]["response"]["outcome"]["issue"][0]["code"], "code-invalid",
        "{body}"
    );
    assert_eq!(rows().await, 3, "MIXED-7's reading and MIXED-8's");

    // A transaction with a refused entry stores nothing.
    let fresh = mixed.replace("-7", "-17").replace("-8", "-18");
    let (status, _, body) = post("/fhir", fresh.into_bytes()).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["issue"][0]["code"], "processing");
    assert!(
        body["issue"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["expression"][0] == "Bundle.entry[3]"),
        "{body}"
    );
    assert_eq!(rows().await, 3);

    // A server whose process runs no ingest source: 503, retry later.
    let alone = crate::support::start_server(vitalflow::server::AppState::new(Err(
        "no model in this test".into(),
    )))
    .await;
    let unavailable = gateway
        .post(format!("{}/fhir/Observation", alone.base))
        .body(conformance("fhir/heart-rate.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(unavailable.status().as_u16(), 503);
    assert_eq!(unavailable.headers()["retry-after"], "1");
    let outcome: serde_json::Value = unavailable.json().await.unwrap();
    assert_eq!(outcome["issue"][0]["code"], "transient", "{outcome}");

    // Roles: a viewer may not post readings.
    let refused = viewer
        .post(format!("{}/fhir/Observation", server.base))
        .body(heart_rate)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 403);

    stop.cancel();
    run.await.unwrap().unwrap_or_else(|e| panic!("{e}"));
}

/// A FHIR server for the test: `POST /fhir` takes a batch Bundle of PUTs
/// and keeps each resource by type and id (an update replaces it); its
/// first `fail_first` requests get 503, as a server restarting would.
#[derive(Clone, Default)]
struct FhirServer {
    stored: std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, serde_json::Value>>>,
    requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    fail_first: usize,
}

impl FhirServer {
    async fn start(self) -> String {
        use axum::routing::post;
        let listener = crate::support::loopback_listener().await;
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .route("/fhir", post(Self::batch))
            .with_state(self);
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}/fhir")
    }

    async fn batch(
        axum::extract::State(server): axum::extract::State<FhirServer>,
        body: String,
    ) -> (axum::http::StatusCode, String) {
        let n = server
            .requests
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if n < server.fail_first {
            return (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "restarting".into(),
            );
        }
        let bundle: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(bundle["type"], "batch");
        let mut answers = Vec::new();
        for entry in bundle["entry"].as_array().unwrap() {
            assert_eq!(entry["request"]["method"], "PUT");
            let url = entry["request"]["url"].as_str().unwrap().to_string();
            server
                .stored
                .lock()
                .unwrap()
                .insert(url, entry["resource"].clone());
            answers.push(serde_json::json!({"response": {"status": "201 Created"}}));
        }
        let answer = serde_json::json!({"resourceType": "Bundle", "type": "batch-response", "entry": answers});
        (axum::http::StatusCode::OK, answer.to_string())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn news2_scores_and_alerts_reach_a_fhir_server_through_its_outage() {
    use fhir_model::r4b::resources::{Flag, Observation};

    let server = FhirServer {
        fail_first: 2,
        ..Default::default()
    };
    let url = server.clone().start().await;
    let dir = tempfile::tempdir().unwrap();
    let sql = std::fs::canonicalize("sql/vitals_scored.sql").unwrap();
    let yaml = format!(
        "name: fhir-out
sources:
  monitors: {{kind: simulator, patients: 10, pacing: unpaced, limit: 400, seed: 3, start: \"{START}\"}}
transforms:
  scored: {{sql_file: {sql}}}
  alerts:
    alert:
      input: scored
      key: patient_id
      time: ts
      score: news2_score
      levels:
        - {{name: watch, when: news2_score >= 1, reason: NEWS2 above 0}}
        - {{name: medium, when: news2_score >= 3, reason: NEWS2 reached 3}}
      rearm_after: 10m
sinks:
  scores_out: {{kind: fhir_server, input: scored, url: \"{url}\", timeout: 2s, max_delay: 100ms, bundle_size: 64}}
  flags_out:
    kind: fhir_server
    input: alerts
    url: \"{url}\"
    fhir: {{resource: news2_alert, score: news2_score}}
  scored_copy: {{kind: parquet, input: scored, path: {dir}/scored}}
  alerts_copy: {{kind: parquet, input: alerts, path: {dir}/alerts}}
",
        sql = sql.display(),
        dir = dir.path().display(),
    );
    let path = crate::support::write_pipeline(dir.path(), &yaml);
    crate::support::run_pipeline(&path).await;

    let stored = server.stored.lock().unwrap().clone();
    assert!(
        server.requests.load(std::sync::atomic::Ordering::SeqCst) > 2,
        "the 503s were retried"
    );
    // Every scored reading is one NEWS2 Observation with its score, and
    // every alert one Flag: valid FHIR resources, each stored once.
    let mut observations = Vec::new();
    let mut flags = 0;
    for (url, resource) in &stored {
        if url.starts_with("Observation/") {
            let typed: Observation = serde_json::from_value(resource.clone()).unwrap();
            let coding = typed.code.coding[0].clone().unwrap();
            assert_eq!(coding.code.as_deref(), Some("1104051000000101"));
            let patient = typed.subject.as_ref().unwrap().reference.clone().unwrap();
            let ts = chrono::DateTime::parse_from_rfc3339(
                resource["effectiveDateTime"].as_str().unwrap(),
            )
            .unwrap()
            .timestamp_millis();
            let score = resource["valueQuantity"]["value"].as_i64().unwrap();
            observations.push((
                patient.trim_start_matches("Patient/").to_string(),
                ts,
                score,
            ));
        } else {
            assert!(url.starts_with("Flag/"), "{url}");
            let flag: Flag = serde_json::from_value(resource.clone()).unwrap();
            assert!(
                flag.code.text.as_deref().unwrap().starts_with("NEWS2 "),
                "{resource}"
            );
            flags += 1;
        }
    }
    observations.sort();
    let expected = scored_readings(
        &dir.path().join("scored"),
        "SELECT patient_id, CAST(ts AS BIGINT), CAST(news2_score AS BIGINT) FROM t ORDER BY 1, 2",
    )
    .await;
    assert!(!expected.is_empty());
    assert_eq!(observations, expected);
    let alerts = rows_in(&dir.path().join("alerts")).await;
    assert!(alerts > 0, "the seed raises alerts");
    assert_eq!(flags, alerts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kafka_sink_publishes_news2_observations_keyed_by_patient() {
    use fhir_model::r4b::resources::Observation;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;

    let Some(broker) = SharedBroker::get() else {
        return;
    };
    let topic = unique("news2-fhir");
    let dir = tempfile::tempdir().unwrap();
    let sql = std::fs::canonicalize("sql/vitals_scored.sql").unwrap();
    let yaml = format!(
        "name: to_fhir_topic
sources:
  monitors: {{kind: simulator, patients: 10, pacing: unpaced, limit: 200, start: \"{START}\"}}
transforms:
  scored: {{sql_file: {}}}
sinks:
  out:
    kind: kafka
    input: scored
    brokers: \"{}\"
    topic: {topic}
    format: fhir
    fhir: {{score_code: {{system: \"http://loinc.org\", code: \"X-NEWS2\", display: local}}}}
    create_topic: {{partitions: 2}}
  copy: {{kind: parquet, input: scored, path: {}/scored}}
",
        sql.display(),
        broker.addr(),
        dir.path().display()
    );
    let path = crate::support::write_pipeline(dir.path(), &yaml);
    crate::support::run_pipeline(&path).await;
    let n = rows_in(&dir.path().join("scored")).await;
    assert!(n > 0);

    let consumer: BaseConsumer = ClientSettings::new(&broker.addr())
        .client_config(&[
            ("group.id", unique("check").as_str()),
            ("auto.offset.reset", "earliest"),
        ])
        .create()
        .unwrap();
    consumer.subscribe(&[topic.as_str()]).unwrap();
    let mut ids = std::collections::HashSet::new();
    let all = poll_until(Duration::from_secs(60), || {
        while let Some(message) = consumer.poll(Duration::ZERO) {
            let message = message.unwrap();
            let observation: Observation =
                serde_json::from_slice(message.payload().unwrap()).unwrap();
            let patient = observation
                .subject
                .as_ref()
                .unwrap()
                .reference
                .clone()
                .unwrap();
            assert_eq!(
                Some(patient.trim_start_matches("Patient/").as_bytes()),
                message.key(),
                "keyed by patient"
            );
            // The configured code replaces the default.
            assert_eq!(
                observation.code.coding[0].as_ref().unwrap().code.as_deref(),
                Some("X-NEWS2")
            );
            ids.insert(observation.id.clone().unwrap());
        }
        std::future::ready((ids.len() as u64 >= n).then_some(()))
    })
    .await;
    assert!(all.is_some(), "{} of {n} Observations", ids.len());
    assert_eq!(ids.len() as u64, n, "one Observation per scored reading");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_simulator_through_fhir_or_hl7v2_gives_the_rows_of_json() {
    let dir = tempfile::tempdir().unwrap();
    let mut datasets = Vec::new();
    for format in ["json", "fhir", "hl7v2"] {
        let yaml = format!(
            "name: sim-{format}
sources:
  monitors: {{kind: simulator, patients: 30, pacing: unpaced, limit: 3000, seed: 11, start: \"{START}\", format: {format}}}
sinks:
  out: {{kind: parquet, input: monitors, path: {}/{format}}}
",
            dir.path().display()
        );
        let path = dir.path().join(format!("{format}.yaml"));
        std::fs::write(&path, yaml).unwrap();
        let summary = crate::support::run_pipeline(&path).await;
        assert_eq!(summary.records_in(), 3000, "{format}");
        datasets.push(dir.path().join(format));
    }
    // Every column of every reading survives both formats exactly.
    let all = |path: &Path| {
        let path = path.to_path_buf();
        async move {
            let batches = query(&path, "SELECT * FROM t ORDER BY patient_id, ts", None).await;
            arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
        }
    };
    let json = all(&datasets[0]).await;
    assert_eq!(json.num_rows(), 3000);
    for other in &datasets[1..] {
        assert_eq!(all(other).await, json, "{}", other.display());
    }
}
