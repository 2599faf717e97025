//! `cargo bench --bench formats`: how fast the Kafka source's decoder turns
//! messages into rows, one core, for each `format:` side by side in one run:
//! JSON records (the default), FHIR (a transaction Bundle of six vital-sign
//! Observations per reading, as `simulate --format fhir` sends; and one
//! Observation per message), and HL7 v2 ORU^R01 (eight OBX per message, as
//! `simulate --format hl7v2` sends). Each is the whole path up to Arrow rows:
//! parse, map codes and units, merge per patient and instant, check the
//! declared schema. Rounds alternate the formats so drift hits all alike.
//! `VITALFLOW_BENCH_READINGS` (default 100,000) per round,
//! `VITALFLOW_BENCH_ROUNDS` (default 3); `VITALFLOW_BENCH_ONLY=hl7` runs the
//! formats whose name contains it (and JSON, the reference), for profiling.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::{Duration, Instant};

use vitalflow::interop::{Format, fhir_out};
use vitalflow::sources::KafkaSourceConfig;
use vitalflow::sources::kafka::{MessageDecoder, RawMessages};
use vitalflow::sources::simulator::{
    Pacing, SimulatorConfig, VitalsGenerator, encode_messages, readings_of,
};
use vitalflow_bench::env_or;

/// The source of `pipelines/vitals-fhir.yaml` in `format` (every parameter
/// nullable, so all formats are decoded against the same schema).
fn source(format: &str) -> anyhow::Result<KafkaSourceConfig> {
    let yaml = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/vitals-fhir.yaml"),
    )?;
    let start = yaml.find("  monitors:\n").expect("the monitors source");
    let end = yaml.find("\ntransforms:").expect("transforms");
    let body: String = yaml[start..end]
        .lines()
        .skip(1)
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .filter(|l| !l.trim_start().starts_with("kind:"))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("format: fhir", &format!("format: {format}"));
    let config: KafkaSourceConfig = serde_saphyr::from_str(&body)?;
    config.validate()?;
    Ok(config)
}

struct Case {
    name: &'static str,
    format: &'static str,
    /// Messages of a batch, in batches of 8192.
    batches: Vec<Vec<Vec<u8>>>,
    /// Observations (FHIR resources, HL7 OBX) per message.
    observations_per_message: f64,
    elapsed: Duration,
    rows: usize,
}

fn main() -> anyhow::Result<()> {
    let readings = env_or("VITALFLOW_BENCH_READINGS", 100_000u64);
    let rounds = env_or("VITALFLOW_BENCH_ROUNDS", 3usize);
    let simulator = SimulatorConfig {
        patients: 232,
        pacing: Pacing::Unpaced,
        limit: Some(readings),
        start: Some("2026-11-30T00:00:00Z".into()),
        ..Default::default()
    };
    let mut generator = VitalsGenerator::new(&simulator, simulator.start_millis()?);
    let mut json = Vec::new();
    let mut fhir = Vec::new();
    let mut hl7 = Vec::new();
    let mut single = Vec::new();
    while let Some(batch) = generator.next_batch(8192) {
        json.push(encode_messages(&batch, Format::Json)?.1);
        fhir.push(encode_messages(&batch, Format::Fhir)?.1);
        hl7.push(encode_messages(&batch, Format::Hl7v2)?.1);
        // One heart-rate Observation per message: the Bundle's first entry.
        single.push(
            readings_of(&batch)?
                .iter()
                .map(|r| {
                    let bundle = fhir_out::reading_bundle(r);
                    serde_json::to_vec(&bundle["entry"][0]["resource"]).unwrap_or_default()
                })
                .collect(),
        );
    }
    let bytes = |b: &Vec<Vec<Vec<u8>>>| {
        b.iter().flatten().map(Vec::len).sum::<usize>() as f64 / readings as f64
    };
    println!(
        "message sizes (bytes): json {:.0}, fhir bundle {:.0}, fhir observation {:.0}, hl7v2 {:.0}",
        bytes(&json),
        bytes(&fhir),
        bytes(&single),
        bytes(&hl7)
    );
    let mut cases = vec![
        Case {
            name: "json record",
            format: "json",
            batches: json,
            observations_per_message: 1.0,
            elapsed: Duration::ZERO,
            rows: 0,
        },
        Case {
            name: "fhir bundle (6 Observations)",
            format: "fhir",
            batches: fhir,
            observations_per_message: 6.0,
            elapsed: Duration::ZERO,
            rows: 0,
        },
        Case {
            name: "fhir single Observation",
            format: "fhir",
            batches: single,
            observations_per_message: 1.0,
            elapsed: Duration::ZERO,
            rows: 0,
        },
        Case {
            name: "hl7v2 ORU^R01 (8 OBX)",
            format: "hl7v2",
            batches: hl7,
            observations_per_message: 8.0,
            elapsed: Duration::ZERO,
            rows: 0,
        },
    ];
    let only = std::env::var("VITALFLOW_BENCH_ONLY").unwrap_or_default();
    cases.retain(|c| c.format == "json" || c.name.contains(only.as_str()));
    for _ in 0..rounds {
        for case in &mut cases {
            let config = source(case.format)?;
            let mut decoder = MessageDecoder::new("monitors", config.record_schema(), 8192)?
                .with_translator(config.translator()?);
            let mut raw = RawMessages::default();
            let started = Instant::now();
            for (b, batch) in case.batches.iter().enumerate() {
                raw.clear();
                for (i, payload) in batch.iter().enumerate() {
                    raw.push("bench", 0, (b * 8192 + i) as i64, None, None, Some(payload));
                }
                let decoded = decoder.decode(&raw)?;
                anyhow::ensure!(
                    decoded.dead_letters.is_none(),
                    "{}: dead letters",
                    case.name
                );
                case.rows += decoded.rows.num_rows();
            }
            case.elapsed += started.elapsed();
        }
    }
    let messages = (readings as usize * rounds) as f64;
    let json_rate = messages / cases[0].elapsed.as_secs_f64();
    println!("decoding, one core, {readings} messages x {rounds} rounds:");
    println!(
        "{:<30} {:>14} {:>16} {:>10}",
        "format", "messages/s", "observations/s", "vs json"
    );
    for case in &cases {
        anyhow::ensure!(
            case.rows == messages as usize,
            "{}: {} rows",
            case.name,
            case.rows
        );
        let rate = messages / case.elapsed.as_secs_f64();
        println!(
            "{:<30} {:>14.0} {:>16.0} {:>9.2}x",
            case.name,
            rate,
            rate * case.observations_per_message,
            rate / json_rate
        );
    }
    Ok(())
}
