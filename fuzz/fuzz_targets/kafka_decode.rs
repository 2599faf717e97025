//! Kafka record decoding: any batch of payloads becomes rows plus dead
//! letters, one per message, without a panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use vitalflow::sources::kafka::{MessageDecoder, RawMessages};

/// The shipped Kafka pipeline's record schema.
fn source() -> &'static vitalflow::sources::KafkaSourceConfig {
    static SOURCE: OnceLock<vitalflow::sources::KafkaSourceConfig> = OnceLock::new();
    SOURCE.get_or_init(|| {
        let spec = vitalflow::spec::load(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../pipelines/vitals-kafka.yaml"
        )))
        .expect("the shipped Kafka pipeline loads");
        spec.sources
            .iter()
            .find_map(|s| match &s.config {
                vitalflow::sources::SourceConfig::Kafka(k) => Some(k.clone()),
                _ => None,
            })
            .expect("a Kafka source")
    })
}

fuzz_target!(|data: &[u8]| {
    // Messages are separated by 0xFF bytes (never valid UTF-8, so never
    // inside a JSON text the fuzzer would otherwise grow).
    let mut raw = RawMessages::default();
    for (i, payload) in data.split(|b| *b == 0xFF).enumerate() {
        raw.push("vitals", 0, i as i64, None, Some(b"k"), Some(payload));
    }
    let config = source();
    let mut decoder = MessageDecoder::new("monitors", config.record_schema(), 64).unwrap();
    let decoded = decoder.decode(&raw).expect("decoding never fails as a whole");
    let dead = decoded.dead_letters.map_or(0, |d| d.num_rows());
    assert_eq!(decoded.rows.num_rows() + dead, raw.len());
});
