//! Readings as JSON messages, one per row, keyed by patient: the wire
//! format of `vitalflow simulate` and of the Kafka source's default schema.

use arrow::array::{AsArray, RecordBatch};

use super::PublishError;

/// `(keys, payloads)`: the patient id and one JSON object per row, with
/// `ts` as an RFC 3339 UTC timestamp.
pub fn encode_json_lines(batch: &RecordBatch) -> Result<(Vec<String>, Vec<Vec<u8>>), PublishError> {
    let mut writer = arrow::json::LineDelimitedWriter::new(Vec::new());
    writer.write(batch).map_err(PublishError::Encode)?;
    writer.finish().map_err(PublishError::Encode)?;
    let text = writer.into_inner();
    // JSON escapes newlines inside strings, so lines are messages.
    let payloads: Vec<Vec<u8>> = text
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    let ids = batch
        .column_by_name("patient_id")
        .ok_or_else(|| PublishError::Internal("readings have no patient_id".into()))?
        .as_string_opt::<i32>()
        .ok_or_else(|| PublishError::Internal("patient_id is not a string column".into()))?;
    let keys = ids
        .iter()
        .map(|id| id.unwrap_or_default().to_string())
        .collect();
    Ok((keys, payloads))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::SimulatorConfig;
    use crate::sources::simulator::VitalsGenerator;

    #[test]
    fn one_message_per_reading_keyed_by_patient() {
        let mut g = VitalsGenerator::new(
            &SimulatorConfig {
                patients: 3,
                ..Default::default()
            },
            1_767_225_600_000,
        );
        let batch = g.next_batch(4).unwrap();
        let (keys, payloads) = encode_json_lines(&batch).unwrap();
        assert_eq!(keys, ["P00001", "P00002", "P00003", "P00001"]);
        let first: serde_json::Value = serde_json::from_slice(&payloads[0]).unwrap();
        assert_eq!(first["patient_id"], "P00001");
        assert_eq!(first["ts"], "2026-01-01T00:00:00Z");
        assert!(first["heart_rate"].is_i64());
        assert_eq!(payloads.len(), 4);
    }
}
