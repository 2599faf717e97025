//! A batch of Kafka messages -> Arrow rows of the declared schema, plus a
//! dead letter for every message that is not exactly one JSON object of that
//! schema with plausible values.
//!
//! The fast path hands all payloads to one `arrow-json` decoder. Only when
//! that fails (or yields a different number of rows than messages) is each
//! message decoded on its own to find the culprits, so bad data costs time
//! only in the batches that contain it.
//!
//! With `format: fhir | hl7v2`, each message is read into readings first
//! (`interop`), which go straight into the declared columns; the schema's
//! checks (required fields, ranges, times) then apply as for JSON, and a
//! dead letter carries the message and which of its parts the reading came
//! from.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{ArrayRef, BooleanArray, RecordBatch};
use arrow::compute::{concat_batches, filter_record_batch};
use arrow::error::ArrowError;
use arrow::json::reader::{Decoder, ReaderBuilder};

use super::dead_letters::{DeadLetter, DeadLetterBuilder, ReasonKind};
use super::schema::{FieldSpec, FieldType, RecordSchema};
use crate::common::{ErrorChain, Offsets, TopicPartition};
use crate::interop::{FieldKind, FieldValue, Reading, Translator, reading_field};
use crate::sources::SourceError;

/// Where one message sits in [`RawMessages`].
#[derive(Debug, Clone)]
struct MessageMeta {
    topic: Arc<str>,
    partition: i32,
    offset: i64,
    timestamp_ms: Option<i64>,
    key: Option<Range<usize>>,
    /// `None` for a null payload (a tombstone).
    payload: Option<Range<usize>>,
}

/// Messages copied out of the consumer, waiting to be decoded as one batch.
#[derive(Debug, Default)]
pub struct RawMessages {
    /// Payloads back to back, each followed by a newline.
    payloads: Vec<u8>,
    keys: Vec<u8>,
    metas: Vec<MessageMeta>,
    first_at: Option<Instant>,
}

impl RawMessages {
    pub fn push(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
        timestamp_ms: Option<i64>,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
    ) {
        let topic = match self.metas.last() {
            Some(last) if &*last.topic == topic => last.topic.clone(),
            _ => Arc::from(topic),
        };
        let key = key.map(|k| {
            let start = self.keys.len();
            self.keys.extend_from_slice(k);
            start..self.keys.len()
        });
        let payload = payload.map(|p| {
            let start = self.payloads.len();
            self.payloads.extend_from_slice(p);
            let range = start..self.payloads.len();
            self.payloads.push(b'\n');
            range
        });
        self.first_at.get_or_insert_with(Instant::now);
        self.metas.push(MessageMeta {
            topic,
            partition,
            offset,
            timestamp_ms,
            key,
            payload,
        });
    }

    pub fn len(&self) -> usize {
        self.metas.len()
    }

    pub fn is_empty(&self) -> bool {
        self.metas.is_empty()
    }

    /// Payload bytes held (the batch byte budget counts these).
    pub fn payload_bytes(&self) -> usize {
        self.payloads.len()
    }

    /// A copy holding only messages `keep` (ascending indices).
    fn subset(&self, keep: &[usize]) -> RawMessages {
        let mut out = RawMessages::default();
        for &i in keep {
            let meta = &self.metas[i];
            out.push(
                &meta.topic,
                meta.partition,
                meta.offset,
                meta.timestamp_ms,
                self.key(i),
                self.payload(i),
            );
        }
        out.first_at = self.first_at;
        out
    }

    /// When the first message arrived (`None` when empty): batching waits
    /// from here.
    pub fn first_at(&self) -> Option<Instant> {
        self.first_at
    }

    /// The next offset to read per partition after these messages.
    pub fn next_offsets(&self) -> Offsets {
        let mut offsets = Offsets::new();
        for meta in &self.metas {
            let slot = offsets
                .entry(TopicPartition::new(&meta.topic, meta.partition))
                .or_insert(meta.offset + 1);
            *slot = (*slot).max(meta.offset + 1);
        }
        offsets
    }

    /// Messages per partition (for the per-partition metric).
    pub fn counts(&self) -> BTreeMap<TopicPartition, u64> {
        let mut counts = BTreeMap::new();
        for meta in &self.metas {
            *counts
                .entry(TopicPartition::new(&meta.topic, meta.partition))
                .or_default() += 1;
        }
        counts
    }

    pub fn clear(&mut self) {
        self.payloads.clear();
        self.keys.clear();
        self.metas.clear();
        self.first_at = None;
    }

    /// The partition message `i` came from.
    pub fn partition_of(&self, i: usize) -> TopicPartition {
        let meta = &self.metas[i];
        TopicPartition::new(&meta.topic, meta.partition)
    }

    /// Whether messages `a` and `b` came from the same partition.
    pub fn same_partition(&self, a: usize, b: usize) -> bool {
        let (a, b) = (&self.metas[a], &self.metas[b]);
        a.partition == b.partition && a.topic == b.topic
    }

    fn payload(&self, i: usize) -> Option<&[u8]> {
        self.metas[i].payload.clone().map(|r| &self.payloads[r])
    }

    fn key(&self, i: usize) -> Option<&[u8]> {
        self.metas[i].key.clone().map(|r| &self.keys[r])
    }

    fn dead_letter(&self, i: usize, kind: ReasonKind, reason: String) -> DeadLetter<'_> {
        let meta = &self.metas[i];
        DeadLetter {
            topic: &meta.topic,
            partition: meta.partition,
            offset: meta.offset,
            kafka_timestamp: meta.timestamp_ms,
            key: self.key(i),
            payload: self.payload(i),
            kind,
            reason,
        }
    }
}

/// The outcome of decoding one batch of messages.
#[derive(Debug)]
pub struct DecodedBatch {
    /// Accepted rows, in message order.
    pub rows: RecordBatch,
    /// Rejected messages as rows of the dead-letter table.
    pub dead_letters: Option<RecordBatch>,
    /// Rejections per reason kind.
    pub rejected: BTreeMap<&'static str, u64>,
    /// Per accepted row, the index of its message in the raw batch.
    pub message_of_row: Vec<usize>,
}

/// Decodes message batches of one source.
pub struct MessageDecoder {
    source: String,
    schema: RecordSchema,
    max_rows: usize,
    /// Bytes of a rejected payload kept in its dead letter.
    dead_letter_payload: usize,
    decoder: Decoder,
    /// `format: fhir | hl7v2`: messages -> JSON records first.
    translator: Option<Translator>,
}

/// For records translated from messages: the messages, and per record its
/// message and the resources or segments it was read from.
struct Origin<'a> {
    messages: &'a RawMessages,
    message_of_record: &'a [usize],
    read_from: &'a [String],
}

impl Origin<'_> {
    /// The dead letter of record `i`: its message, with the reason saying
    /// which of its parts the record was read from.
    fn dead_letter(&self, i: usize, kind: ReasonKind, reason: String) -> DeadLetter<'_> {
        self.messages.dead_letter(
            self.message_of_record[i],
            kind,
            format!("the reading from {}: {reason}", self.read_from[i]),
        )
    }
}

impl MessageDecoder {
    pub fn new(source: &str, schema: RecordSchema, max_rows: usize) -> Result<Self, SourceError> {
        let decoder = Self::build(&schema, max_rows)?;
        Ok(Self {
            source: source.to_string(),
            schema,
            max_rows,
            dead_letter_payload: 64 << 10,
            decoder,
            translator: None,
        })
    }

    /// Read each message with `translator` (FHIR, HL7 v2) into records first.
    pub fn with_translator(mut self, translator: Option<Translator>) -> Self {
        self.translator = translator;
        self
    }

    /// Keep at most `bytes` of each rejected payload (and key).
    pub fn with_dead_letter_payload(mut self, bytes: usize) -> Self {
        self.dead_letter_payload = bytes;
        self
    }

    fn build(schema: &RecordSchema, batch_size: usize) -> Result<Decoder, SourceError> {
        ReaderBuilder::new(schema.arrow_schema())
            .with_batch_size(batch_size.max(1))
            .build_decoder()
            .map_err(|e| SourceError::from(e).context("building the JSON decoder"))
    }

    pub fn decode(&mut self, raw: &RawMessages) -> Result<DecodedBatch, SourceError> {
        self.decode_at(raw, chrono::Utc::now().timestamp_millis())
    }

    /// [`Self::decode`] with the wall clock at `now_ms` (received time and
    /// the plausibility window of timestamps).
    pub fn decode_at(
        &mut self,
        raw: &RawMessages,
        now_ms: i64,
    ) -> Result<DecodedBatch, SourceError> {
        let mut dead = DeadLetterBuilder::new(&self.source, now_ms, self.dead_letter_payload);
        let mut rejected = BTreeMap::new();
        let (rows, message_of_row) = match self.translator.take() {
            None => self.decode_records(raw, &mut dead, &mut rejected, now_ms)?,
            Some(translator) => {
                let decoded =
                    self.decode_translated(&translator, raw, &mut dead, &mut rejected, now_ms);
                self.translator = Some(translator);
                decoded?
            }
        };
        Ok(DecodedBatch {
            rows,
            dead_letters: dead.finish()?,
            rejected,
            message_of_row,
        })
    }

    /// Messages of a format -> readings as JSON records -> rows; what a
    /// message, or a part of it, cannot give is a dead letter of that
    /// message.
    fn decode_translated(
        &mut self,
        translator: &Translator,
        raw: &RawMessages,
        dead: &mut DeadLetterBuilder,
        rejected: &mut BTreeMap<&'static str, u64>,
        now_ms: i64,
    ) -> Result<(RecordBatch, Vec<usize>), SourceError> {
        let mut readings: Vec<Reading> = Vec::with_capacity(raw.len());
        let mut message_of_record = Vec::with_capacity(raw.len());
        let mut read_from = Vec::with_capacity(raw.len());
        for i in 0..raw.len() {
            let payload = match raw.payload(i) {
                Some(p) if !p.iter().all(u8::is_ascii_whitespace) => p,
                _ => {
                    let letter =
                        raw.dead_letter(i, ReasonKind::Empty, "the message has no payload".into());
                    reject(dead, rejected, letter);
                    continue;
                }
            };
            let translated = translator.translate(payload);
            for rejection in translated.rejections {
                let letter =
                    raw.dead_letter(i, ReasonKind::Format(rejection.kind), rejection.reason);
                reject(dead, rejected, letter);
            }
            for (reading, from) in translated.readings.into_iter().zip(translated.sources) {
                readings.push(reading);
                message_of_record.push(i);
                read_from.push(from);
            }
        }
        let origin = Origin {
            messages: raw,
            message_of_record: &message_of_record,
            read_from: &read_from,
        };
        // The readings straight into the declared columns (they are typed
        // already: no JSON between), then the schema's checks as for JSON.
        let mut record_of_row = Vec::with_capacity(readings.len());
        for (r, reading) in readings.iter().enumerate() {
            match self
                .schema
                .fields()
                .iter()
                .find(|f| f.required && !has_field(reading, &f.name))
            {
                Some(missing) => {
                    let reason = format!("required field `{}` is missing or null", missing.name);
                    reject(
                        dead,
                        rejected,
                        origin.dead_letter(r, ReasonKind::MissingField, reason),
                    );
                }
                None => record_of_row.push(r),
            }
        }
        let kept: Vec<&Reading> = record_of_row.iter().map(|&r| &readings[r]).collect();
        let columns = self
            .schema
            .fields()
            .iter()
            .map(|spec| reading_column(spec, &kept))
            .collect::<Result<Vec<_>, _>>()?;
        let rows = RecordBatch::try_new(self.schema.arrow_schema(), columns)
            .map_err(|e| SourceError::from(e).context("building rows from readings"))?;
        let rows = self.drop_violations(
            rows,
            &mut record_of_row,
            &|i, kind, reason| origin.dead_letter(i, kind, reason),
            dead,
            rejected,
            now_ms,
        )?;
        let message_of_row = record_of_row
            .into_iter()
            .map(|r| message_of_record[r])
            .collect();
        Ok((rows, message_of_row))
    }

    /// JSON records -> rows of the schema, and per row its record. Dead
    /// letters name the record.
    fn decode_records(
        &mut self,
        raw: &RawMessages,
        dead: &mut DeadLetterBuilder,
        rejected: &mut BTreeMap<&'static str, u64>,
        now_ms: i64,
    ) -> Result<(RecordBatch, Vec<usize>), SourceError> {
        let letter = |i: usize, kind: ReasonKind, reason: String| raw.dead_letter(i, kind, reason);

        // Exact types first: what arrow-json would silently coerce is refused.
        let mut accepted = Vec::with_capacity(raw.len());
        for i in 0..raw.len() {
            match super::strict::check(raw.payload(i), self.schema.fields()) {
                Ok(()) => accepted.push(i),
                Err((kind, reason)) => reject(dead, rejected, letter(i, kind, reason)),
            }
        }
        let subset;
        let checked = if accepted.len() == raw.len() {
            raw
        } else {
            subset = raw.subset(&accepted);
            &subset
        };
        // Index in `raw` of message `i` of `checked`.
        let to_raw = |i: usize| {
            if accepted.len() == raw.len() {
                i
            } else {
                accepted[i]
            }
        };

        let (rows, positions) = match self.decode_all(checked) {
            Ok(Some(rows)) if rows.num_rows() == checked.len() => (rows, None),
            _ => {
                // Something in here still does not decode: find it message
                // by message.
                self.decoder = Self::build(&self.schema, self.max_rows)?;
                let mut good = Vec::new();
                let mut positions = Vec::new();
                for i in 0..checked.len() {
                    match self.decode_one(checked.payload(i)) {
                        Ok(row) => {
                            good.push(row);
                            positions.push(i);
                        }
                        Err((kind, reason)) => {
                            reject(dead, rejected, letter(to_raw(i), kind, reason))
                        }
                    }
                }
                let rows = concat_batches(&self.schema.arrow_schema(), &good)
                    .map_err(|e| SourceError::from(e).context("joining accepted rows"))?;
                (rows, Some(positions))
            }
        };
        let mut message_of_row: Vec<usize> = match &positions {
            Some(p) => p.iter().map(|&i| to_raw(i)).collect(),
            None => (0..rows.num_rows()).map(to_raw).collect(),
        };

        let rows =
            self.drop_violations(rows, &mut message_of_row, &letter, dead, rejected, now_ms)?;
        Ok((rows, message_of_row))
    }

    /// Rows whose values parse but cannot be real readings (out of the
    /// declared range, an implausible time) dropped into dead letters;
    /// `message_of_row` keeps pace.
    fn drop_violations<'r>(
        &self,
        rows: RecordBatch,
        message_of_row: &mut Vec<usize>,
        letter: &dyn Fn(usize, ReasonKind, String) -> DeadLetter<'r>,
        dead: &mut DeadLetterBuilder,
        rejected: &mut BTreeMap<&'static str, u64>,
        now_ms: i64,
    ) -> Result<RecordBatch, SourceError> {
        let mut violations: Vec<(usize, ReasonKind, String)> = self
            .schema
            .violations(rows.columns())
            .into_iter()
            .map(|v| (v.row, ReasonKind::OutOfRange, v.reason))
            .collect();
        for v in self.schema.implausible_times(rows.columns(), now_ms) {
            if !violations.iter().any(|(row, _, _)| *row == v.row) {
                violations.push((v.row, ReasonKind::ImplausibleTime, v.reason));
            }
        }
        if violations.is_empty() {
            return Ok(rows);
        }
        violations.sort_by_key(|(row, _, _)| *row);
        let mut keep = vec![true; rows.num_rows()];
        for (row, kind, reason) in violations {
            keep[row] = false;
            reject(dead, rejected, letter(message_of_row[row], kind, reason));
        }
        let mut row = 0;
        message_of_row.retain(|_| {
            row += 1;
            keep[row - 1]
        });
        filter_record_batch(&rows, &BooleanArray::from(keep))
            .map_err(|e| SourceError::from(e).context("dropping rejected rows"))
    }

    /// All payloads through one decoder.
    fn decode_all(&mut self, raw: &RawMessages) -> Result<Option<RecordBatch>, ArrowError> {
        if raw.metas.iter().any(|m| m.payload.is_none()) {
            return Ok(None);
        }
        let mut buffer = &raw.payloads[..];
        while !buffer.is_empty() {
            let consumed = self.decoder.decode(buffer)?;
            if consumed == 0 {
                // More rows than messages: some message holds several objects.
                return Ok(None);
            }
            buffer = &buffer[consumed..];
        }
        self.decoder.flush()
    }

    /// One message that passed the type check through Arrow on its own:
    /// what still fails here (an unparseable timestamp string, say) is a
    /// decoder-level type error.
    fn decode_one(&self, payload: Option<&[u8]>) -> Result<RecordBatch, (ReasonKind, String)> {
        let payload = payload.unwrap_or_default();
        let wrong_type = |e: String| (ReasonKind::WrongType, e);
        let mut decoder =
            Self::build(&self.schema, 1).map_err(|e| wrong_type(ErrorChain(&e).to_string()))?;
        decoder
            .decode(payload)
            .and_then(|_| decoder.flush())
            .map_err(|e| wrong_type(clean_arrow_error(&e)))?
            .filter(|b| b.num_rows() == 1)
            .ok_or_else(|| wrong_type("the message does not decode to exactly one record".into()))
    }
}

/// Whether `reading` has a value for the schema field `name`.
fn has_field(reading: &Reading, name: &str) -> bool {
    reading.field(name).is_some_and(|v| v.is_present())
}

/// The column of `spec` for these readings (the source's settings checked
/// that every declared field is a reading's, of a type it can take).
fn reading_column(spec: &FieldSpec, readings: &[&Reading]) -> Result<ArrayRef, SourceError> {
    use arrow::array::{
        BooleanArray, Float64Array, Int32Array, Int64Array, StringArray, TimestampMillisecondArray,
    };
    let refused = || {
        SourceError::Internal(format!(
            "a reading has no {:?} field `{}`",
            spec.field_type, spec.name
        ))
    };
    let field = reading_field(&spec.name).ok_or_else(refused)?;
    let values = || readings.iter().map(|r| (field.get)(r));
    Ok(match (field.kind, spec.field_type) {
        (FieldKind::Text, FieldType::String) => {
            Arc::new(values().map(FieldValue::text).collect::<StringArray>())
        }
        (FieldKind::Time, FieldType::Timestamp) => Arc::new(
            TimestampMillisecondArray::from_iter_values(readings.iter().map(|r| r.ts))
                .with_timezone("UTC"),
        ),
        (FieldKind::Flag, FieldType::Boolean) => {
            Arc::new(values().map(FieldValue::flag).collect::<BooleanArray>())
        }
        (FieldKind::Decimal, FieldType::Float64) => {
            Arc::new(values().map(FieldValue::decimal).collect::<Float64Array>())
        }
        (FieldKind::Whole, FieldType::Int32) => {
            Arc::new(values().map(FieldValue::whole).collect::<Int32Array>())
        }
        (FieldKind::Whole, FieldType::Int64) => Arc::new(
            values()
                .map(|v| v.whole().map(i64::from))
                .collect::<Int64Array>(),
        ),
        (FieldKind::Whole, FieldType::Float64) => Arc::new(
            values()
                .map(|v| v.whole().map(f64::from))
                .collect::<Float64Array>(),
        ),
        _ => return Err(refused()),
    })
}

/// Count `letter` under its reason and add it to the dead letters.
fn reject(
    dead: &mut DeadLetterBuilder,
    rejected: &mut BTreeMap<&'static str, u64>,
    letter: DeadLetter<'_>,
) {
    *rejected.entry(letter.kind.as_str()).or_default() += 1;
    dead.push(letter);
}

/// `Json error: whilst decoding field 'x': failed to parse "a" as Int32`
/// -> `field 'x': failed to parse "a" as Int32`.
fn clean_arrow_error(error: &ArrowError) -> String {
    let text = error.to_string();
    let text = text.strip_prefix("Json error: ").unwrap_or(&text);
    text.strip_prefix("whilst decoding ")
        .unwrap_or(text)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::kafka::schema::{FieldSpec, FieldType};
    use arrow::array::AsArray;
    use arrow::datatypes::Int32Type;

    fn schema() -> RecordSchema {
        let field = |name: &str, field_type, min, max| FieldSpec {
            min,
            max,
            ..FieldSpec::new(name, field_type)
        };
        RecordSchema::try_new(&[
            field("patient_id", FieldType::String, None, None),
            field("ts", FieldType::Timestamp, None, None),
            field("heart_rate", FieldType::Int32, Some(0.0), Some(300.0)),
            field("spo2", FieldType::Int32, Some(0.0), Some(100.0)),
        ])
        .unwrap()
    }

    fn messages(payloads: &[&str]) -> RawMessages {
        let mut raw = RawMessages::default();
        for (i, p) in payloads.iter().enumerate() {
            raw.push(
                "vitals",
                2,
                100 + i as i64,
                Some(5),
                Some(b"k"),
                Some(p.as_bytes()),
            );
        }
        raw
    }

    const GOOD: &str =
        r#"{"patient_id":"P1","ts":"2026-11-26T09:00:00Z","heart_rate":72,"spo2":97}"#;

    #[test]
    fn fhir_readings_go_straight_into_the_columns_and_the_schema_still_checks_them() {
        use crate::interop::hl7v2::Hl7Options;
        use crate::interop::{CodeSet, Format};
        let obs = |id: &str, code: &str, value: u32, unit: &str| {
            format!(
                r#"{{"resourceType":"Observation","id":"{id}","status":"final","code":{{"coding":[{{"system":"http://loinc.org","code":"{code}"}}]}},"subject":{{"reference":"Patient/P1"}},"effectiveDateTime":"2026-11-30T10:00:00Z","valueQuantity":{{"value":{value},"system":"http://unitsofmeasure.org","code":"{unit}"}}}}"#
            )
        };
        let both = format!(
            r#"{{"resourceType":"Bundle","type":"collection","entry":[{{"resource":{}}},{{"resource":{}}}]}}"#,
            obs("hr", "8867-4", 80, "/min"),
            obs("sat", "59408-5", 97, "%")
        );
        let spo2_only = obs("sat2", "59408-5", 96, "%");
        let too_fast = format!(
            r#"{{"resourceType":"Bundle","type":"collection","entry":[{{"resource":{}}},{{"resource":{}}}]}}"#,
            obs("hr3", "8867-4", 400, "/min"),
            obs("sat3", "59408-5", 97, "%")
        );
        let translator = Translator::new(Format::Fhir, CodeSet::defaults(), Hl7Options::default());
        let mut decoder = MessageDecoder::new("vitals", schema(), 16)
            .unwrap()
            .with_translator(translator);
        let decoded = decoder
            .decode_at(
                &messages(&[&both, &spo2_only, &too_fast]),
                1_796_029_200_000,
            )
            .unwrap();
        assert_eq!(decoded.rows.num_rows(), 1);
        assert_eq!(decoded.message_of_row, vec![0]);
        let hr = decoded.rows.column(2).as_primitive::<Int32Type>().value(0);
        assert_eq!(hr, 80);
        let dead = decoded.dead_letters.unwrap();
        let reasons = dead.column_by_name("reason").unwrap().as_string::<i32>();
        assert_eq!(dead.num_rows(), 2);
        // The reading lacks the required heart rate / is out of range; the
        // dead letter says which resources it was read from.
        assert!(
            reasons
                .value(0)
                .starts_with("the reading from Observation/sat2: required field `heart_rate`"),
            "{}",
            reasons.value(0)
        );
        assert!(
            reasons.value(1).starts_with(
                "the reading from entry[0] Observation/hr3, entry[1] Observation/sat3:"
            ),
            "{}",
            reasons.value(1)
        );
    }

    #[test]
    fn good_messages_take_the_fast_path() {
        let mut decoder = MessageDecoder::new("monitors", schema(), 100).unwrap();
        let raw = messages(&[GOOD, GOOD, GOOD]);
        let decoded = decoder.decode(&raw).unwrap();
        assert_eq!(decoded.rows.num_rows(), 3);
        assert!(decoded.dead_letters.is_none());
        let hr = decoded.rows.column(2).as_primitive::<Int32Type>();
        assert_eq!(hr.value(0), 72);
        assert_eq!(raw.next_offsets()[&TopicPartition::new("vitals", 2)], 103);
        // The decoder is reusable batch after batch.
        assert_eq!(decoder.decode(&raw).unwrap().rows.num_rows(), 3);
    }

    #[test]
    fn every_bad_message_becomes_a_dead_letter_with_its_reason() {
        let mut decoder = MessageDecoder::new("monitors", schema(), 100).unwrap();
        let cases = [
            ("{not json", "invalid_json", "not valid JSON"),
            (
                r#"{"patient_id":"P2","ts":"2026-11-26T09:00:00Z","heart_rate":72}"#,
                "missing_field",
                "`spo2`",
            ),
            (
                r#"{"patient_id":"P3","ts":"2026-11-26T09:00:00Z","heart_rate":"fast","spo2":97}"#,
                "wrong_type",
                "heart_rate",
            ),
            (
                r#"{"patient_id":"P4","ts":"2026-11-26T09:00:00Z","heart_rate":72,"spo2":140}"#,
                "out_of_range",
                "`spo2` = 140",
            ),
            (
                r#"{"patient_id":"P5","ts":"2026-11-26T09:00:00Z","heart_rate":-5,"spo2":97}"#,
                "out_of_range",
                "`heart_rate` = -5",
            ),
            ("[1,2]", "not_an_object", "an array"),
            ("", "empty", "no payload"),
            (&format!("{GOOD}{GOOD}"), "invalid_json", "trailing"),
        ];
        let mut payloads = vec![GOOD];
        payloads.extend(cases.iter().map(|(p, _, _)| *p));
        payloads.push(GOOD);
        let raw = messages(&payloads);
        let decoded = decoder.decode(&raw).unwrap();
        assert_eq!(decoded.rows.num_rows(), 2);
        let dead = decoded.dead_letters.unwrap();
        assert_eq!(dead.num_rows(), cases.len());
        let kinds = dead
            .column_by_name("reason_kind")
            .unwrap()
            .as_string::<i32>();
        let reasons = dead.column_by_name("reason").unwrap().as_string::<i32>();
        let offsets = dead
            .column_by_name("offset")
            .unwrap()
            .as_primitive::<arrow::datatypes::Int64Type>();
        let payload = dead.column_by_name("payload").unwrap().as_binary::<i32>();
        for (kind, reason) in cases.iter().map(|(_, k, r)| (k, r)) {
            let row = (0..dead.num_rows())
                .find(|&r| reasons.value(r).contains(reason))
                .unwrap_or_else(|| panic!("no dead letter mentions {reason}: {reasons:?}"));
            assert_eq!(kinds.value(row), *kind, "{}", reasons.value(row));
            let message = (offsets.value(row) - 100) as usize;
            assert_eq!(payload.value(row), payloads[message].as_bytes());
        }
        assert_eq!(decoded.rejected.values().sum::<u64>(), cases.len() as u64);
        // Good rows still decode after a bad batch.
        assert_eq!(
            decoder.decode(&messages(&[GOOD])).unwrap().rows.num_rows(),
            1
        );
    }

    /// Arbitrary JSON values, nested a few levels.
    fn json_value() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<u64>().prop_map(serde_json::Value::from),
            any::<f64>()
                .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
                .prop_map(serde_json::Value::from),
            "[a-zA-Z0-9:. -]{0,24}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                proptest::collection::btree_map(
                    prop_oneof![
                        Just("patient_id".to_string()),
                        Just("ts".to_string()),
                        Just("heart_rate".to_string()),
                        Just("spo2".to_string()),
                        "[a-z]{1,6}",
                    ],
                    inner,
                    0..6
                )
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 256,
            max_shrink_time: 10_000,
            ..Default::default()
        })]

        /// Any bytes: every message is a row or a dead letter, never a panic.
        #[test]
        fn arbitrary_bytes_are_rows_or_dead_letters(
            payloads in proptest::collection::vec(
                proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200), 1..20)
        ) {
            let mut decoder = MessageDecoder::new("monitors", schema(), 100).unwrap();
            let mut raw = RawMessages::default();
            for (i, p) in payloads.iter().enumerate() {
                raw.push("vitals", 0, i as i64, None, None, Some(p));
            }
            let decoded = decoder.decode(&raw).unwrap();
            let dead = decoded.dead_letters.map_or(0, |d| d.num_rows());
            proptest::prop_assert_eq!(decoded.rows.num_rows() + dead, payloads.len());
            proptest::prop_assert_eq!(decoded.message_of_row.len(), decoded.rows.num_rows());
        }

        /// Any JSON values (objects with the declared names among others,
        /// arrays, scalars), alone or beside good records.
        #[test]
        fn arbitrary_json_is_rows_or_dead_letters(
            values in proptest::collection::vec(json_value(), 1..12)
        ) {
            let mut decoder = MessageDecoder::new("monitors", schema(), 100).unwrap();
            let texts: Vec<String> = values.iter().map(|v| v.to_string()).collect();
            let mut payloads: Vec<&str> = texts.iter().map(String::as_str).collect();
            payloads.push(GOOD);
            let raw = messages(&payloads);
            let decoded = decoder.decode(&raw).unwrap();
            let dead = decoded.dead_letters.map_or(0, |d| d.num_rows());
            proptest::prop_assert_eq!(decoded.rows.num_rows() + dead, payloads.len());
            // The good record is always accepted, and is the last row.
            proptest::prop_assert_eq!(
                decoded.message_of_row.last().copied(),
                Some(payloads.len() - 1)
            );
        }
    }

    #[test]
    fn an_integer_with_a_fraction_is_refused_not_truncated() {
        let mut decoder = MessageDecoder::new("monitors", schema(), 100).unwrap();
        let fraction = GOOD.replace(r#""spo2":97"#, r#""spo2":97.5"#);
        let decoded = decoder.decode(&messages(&[GOOD, &fraction, GOOD])).unwrap();
        assert_eq!(decoded.rows.num_rows(), 2);
        assert_eq!(decoded.message_of_row, vec![0, 2]);
        assert_eq!(decoded.rejected.get("wrong_type"), Some(&1));
    }

    #[test]
    fn readings_from_the_future_are_implausible() {
        use crate::sources::kafka::schema::tests::field;
        let schema = RecordSchema::try_new(&[
            field("patient_id", FieldType::String),
            FieldSpec {
                max_future: Some(crate::common::HumanDuration(
                    std::time::Duration::from_secs(300),
                )),
                ..field("ts", FieldType::Timestamp)
            },
        ])
        .unwrap();
        let mut decoder = MessageDecoder::new("monitors", schema, 100).unwrap();
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-26T09:00:00Z")
            .unwrap()
            .timestamp_millis();
        let raw = messages(&[
            r#"{"patient_id":"P1","ts":"2026-11-26T09:00:00Z"}"#,
            r#"{"patient_id":"P1","ts":"9999-12-31T23:59:59Z"}"#,
            r#"{"patient_id":"P1","ts":"2026-11-26T09:04:59Z"}"#,
            r#"{"patient_id":"P1","ts":"2026-11-26T09:05:01Z"}"#,
        ]);
        let decoded = decoder.decode_at(&raw, now).unwrap();
        assert_eq!(decoded.message_of_row, vec![0, 2]);
        assert_eq!(decoded.rejected.get("implausible_time"), Some(&2));
        let dead = decoded.dead_letters.unwrap();
        let kinds = dead
            .column_by_name("reason_kind")
            .unwrap()
            .as_string::<i32>();
        assert_eq!(kinds.value(0), "implausible_time");
        let offsets = dead
            .column_by_name("offset")
            .unwrap()
            .as_primitive::<arrow::datatypes::Int64Type>();
        assert_eq!((offsets.value(0), offsets.value(1)), (101, 103));
    }
}
