//! Readings as messages, one per row, keyed by patient: the wire formats of
//! `vitalflow simulate`. JSON (the Kafka source's default schema), a FHIR
//! `transaction` Bundle of vital-sign Observations, or an HL7 v2 `ORU^R01`.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, Int32Type, TimestampMillisecondType};

use super::PublishError;
use crate::interop::{Format, Reading, fhir_out, hl7v2};

/// `(keys, payloads)` of a batch of readings in `format`.
pub fn encode_messages(
    batch: &RecordBatch,
    format: Format,
) -> Result<(Vec<String>, Vec<Vec<u8>>), PublishError> {
    if format == Format::Json {
        return encode_json_lines(batch);
    }
    let readings = readings_of(batch)?;
    let keys = readings.iter().map(|r| r.patient_id.clone()).collect();
    let payloads = readings
        .iter()
        .map(|r| match format {
            Format::Hl7v2 => hl7v2::write_oru(r, r.ts as u64).into_bytes(),
            _ => serde_json::to_vec(&fhir_out::reading_bundle(r)).unwrap_or_default(),
        })
        .collect();
    Ok((keys, payloads))
}

/// The simulator's rows as readings.
pub fn readings_of(batch: &RecordBatch) -> Result<Vec<Reading>, PublishError> {
    let column = |name: &str| {
        batch
            .column_by_name(name)
            .ok_or_else(|| PublishError::Internal(format!("readings have no {name}")))
    };
    let wrong = |name: &str| PublishError::Internal(format!("{name} has an unexpected type"));
    let ids = column("patient_id")?
        .as_string_opt::<i32>()
        .ok_or_else(|| wrong("patient_id"))?;
    let ts = column("ts")?
        .as_primitive_opt::<TimestampMillisecondType>()
        .ok_or_else(|| wrong("ts"))?;
    let int = |name: &'static str| -> Result<_, PublishError> {
        column(name)?
            .as_primitive_opt::<Int32Type>()
            .cloned()
            .ok_or_else(|| wrong(name))
    };
    let (hr, spo2, sbp, dbp, rr) = (
        int("heart_rate")?,
        int("spo2")?,
        int("systolic_bp")?,
        int("diastolic_bp")?,
        int("respiratory_rate")?,
    );
    let temp = column("temperature")?
        .as_primitive_opt::<Float64Type>()
        .ok_or_else(|| wrong("temperature"))?;
    let avpu = column("consciousness")?
        .as_string_opt::<i32>()
        .ok_or_else(|| wrong("consciousness"))?;
    let oxygen = column("on_oxygen")?
        .as_boolean_opt()
        .ok_or_else(|| wrong("on_oxygen"))?;
    let get = |a: &arrow::array::Int32Array, i: usize| (!a.is_null(i)).then(|| a.value(i));
    Ok((0..batch.num_rows())
        .map(|i| Reading {
            patient_id: ids.value(i).to_string(),
            ts: ts.value(i),
            heart_rate: get(&hr, i),
            spo2: get(&spo2, i),
            systolic_bp: get(&sbp, i),
            diastolic_bp: get(&dbp, i),
            respiratory_rate: get(&rr, i),
            temperature: (!temp.is_null(i)).then(|| temp.value(i)),
            consciousness: (!avpu.is_null(i)).then(|| avpu.value(i).to_string()),
            on_oxygen: (!oxygen.is_null(i)).then(|| oxygen.value(i)),
        })
        .collect())
}

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
