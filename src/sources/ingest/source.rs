//! The FHIR ingest source: requests in groups -> readings -> rows ->
//! checkpoint -> answers.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};

use arrow::array::{Array, AsArray, BooleanArray};
use arrow::compute::filter_record_batch;
use tokio::sync::mpsc;

use super::config::IngestSourceConfig;
use super::seen::SeenIds;
use crate::common::{IngestFailure, IngestHubs, IngestReply, IngestRequest, PartOutcome};
use crate::interop::{Translated, fhir_in};
use crate::sources::kafka::{MessageDecoder, RawMessages};
use crate::sources::{
    CheckpointReply, ConfigError, Source, SourceBatch, SourceContext, SourceError, SourceEvent,
    SourceSummary,
};

/// Requests read together, answered after one checkpoint.
const GROUP: usize = 256;

pub struct IngestSource {
    config: IngestSourceConfig,
}

impl IngestSource {
    pub fn new(config: IngestSourceConfig) -> Self {
        Self { config }
    }
}

/// Takes the source off the registry when it stops, however it stops.
struct Registered(IngestHubs, String);

impl Drop for Registered {
    fn drop(&mut self) {
        self.0.remove(&self.1);
    }
}

#[async_trait::async_trait]
impl Source for IngestSource {
    async fn run(self: Box<Self>, ctx: SourceContext) -> Result<SourceSummary, SourceError> {
        let codes = self
            .config
            .codes()
            .map_err(|e| SourceError::from(ConfigError::Ingest(e.0)))?;
        let (sender, mut requests) = mpsc::channel::<IngestRequest>(self.config.queue);
        ctx.ingest.register(&ctx.name, sender);
        let _registered = Registered(ctx.ingest.clone(), ctx.name.clone());
        let mut decoder = MessageDecoder::new(&ctx.name, self.config.record_schema(), GROUP * 64)?;
        let mut seen = SeenIds::new(self.config.remember_ids);
        let mut summary = SourceSummary::default();
        loop {
            let first = tokio::select! {
                _ = ctx.shutdown.cancelled() => break,
                next = requests.recv() => match next {
                    Some(request) => request,
                    None => break,
                },
            };
            let mut group = vec![first];
            while group.len() < GROUP {
                match requests.try_recv() {
                    Ok(request) => group.push(request),
                    Err(_) => break,
                }
            }
            let read = read_group(&group, &codes, &seen);
            let decoded = decoder.decode(&read.records)?;
            let mut plan = Plan::new(&group, &read, &decoded);
            let rows = filter_record_batch(
                &decoded.rows,
                &BooleanArray::from(plan.keep_rows(&decoded.message_of_row)),
            )
            .map_err(|e| SourceError::from(e).context("dropping refused transactions"))?;
            let stored = rows.num_rows();
            let durable = if stored == 0 {
                Ok(())
            } else {
                store(&ctx, rows).await
            };
            match durable {
                Ok(()) => {
                    summary.records += stored as u64;
                    summary.batches += u64::from(stored > 0);
                    for id in plan.stored_ids() {
                        seen.insert(id);
                    }
                    for (request, reply) in group.into_iter().zip(plan.replies.drain(..)) {
                        let _ = request.reply.send(reply);
                    }
                }
                Err(error) => {
                    // The cause names files and stores: it goes to the log,
                    // the caller learns only to retry.
                    tracing::error!(source = %ctx.name, error = %crate::common::ErrorChain(&error), "ingested readings could not be made durable");
                    let failure = IngestFailure {
                        transient: true,
                        reason: "the pipeline could not store the readings (the server log says why); retry later".into(),
                    };
                    for request in group {
                        let _ = request.reply.send(IngestReply {
                            failure: Some(failure.clone()),
                            ..IngestReply::default()
                        });
                    }
                    return Err(error);
                }
            }
        }
        Ok(summary)
    }
}

/// Hand rows to the engine and wait until a checkpoint has made them durable.
async fn store(ctx: &SourceContext, rows: arrow::array::RecordBatch) -> Result<(), SourceError> {
    let batch = SourceEvent::Batch(SourceBatch {
        batch: rows,
        dead_letters: None,
        offsets: Default::default(),
        partition_event_times: Default::default(),
        assigned_partitions: Vec::new(),
        row_partitions: Vec::new(),
    });
    let (reply, answer) = CheckpointReply::channel();
    let stopped =
        || SourceError::Internal("the engine stopped before the readings were durable".into());
    ctx.output.send(batch).await.map_err(|_| stopped())?;
    ctx.output
        .send(SourceEvent::Checkpoint(reply))
        .await
        .map_err(|_| stopped())?;
    match answer.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(SourceError::Checkpoint {
            context: "making ingested readings durable",
            source: e,
        }),
        Err(_) => Err(stopped()),
    }
}

/// A group of requests read into JSON records.
struct Read {
    records: RawMessages,
    /// Per record: its request and reading.
    origin: Vec<(usize, usize)>,
    translated: Vec<Translated>,
}

/// Read each request; an Observation id already stored, or stored earlier
/// in this group, is a duplicate.
fn read_group(group: &[IngestRequest], codes: &crate::interop::CodeSet, seen: &SeenIds) -> Read {
    let in_group: RefCell<HashSet<String>> = RefCell::new(HashSet::new());
    let mut read = Read {
        records: RawMessages::default(),
        origin: Vec::new(),
        translated: Vec::new(),
    };
    for (r, request) in group.iter().enumerate() {
        let is_seen = |id: &str| seen.contains(id) || in_group.borrow().contains(id);
        let t = fhir_in::read_new(&request.payload, codes, &is_seen);
        for (_, id) in &t.contributed {
            if let Some(id) = id {
                in_group.borrow_mut().insert(id.clone());
            }
        }
        for (i, reading) in t.readings.iter().enumerate() {
            let offset = read.origin.len() as i64;
            read.records
                .push("ingest", 0, offset, None, None, Some(&reading.to_json()));
            read.origin.push((r, i));
        }
        read.translated.push(t);
    }
    read
}

/// What becomes of each request of a group.
struct Plan {
    replies: Vec<IngestReply>,
    /// Requests refused whole (transactions with a refused part).
    refused: Vec<bool>,
    /// Per record: its request.
    request_of_record: Vec<usize>,
    stored_ids: Vec<String>,
}

impl Plan {
    fn new(
        group: &[IngestRequest],
        read: &Read,
        decoded: &crate::sources::kafka::DecodedBatch,
    ) -> Self {
        // Readings the schema check refused, by record.
        let mut refused_records: BTreeMap<usize, (String, String)> = BTreeMap::new();
        if let Some(dead) = &decoded.dead_letters {
            let offsets = dead
                .column_by_name("offset")
                .map(|c| c.as_primitive::<arrow::datatypes::Int64Type>().clone());
            let kinds = dead
                .column_by_name("reason_kind")
                .map(|c| c.as_string::<i32>().clone());
            let reasons = dead
                .column_by_name("reason")
                .map(|c| c.as_string::<i32>().clone());
            if let (Some(offsets), Some(kinds), Some(reasons)) = (offsets, kinds, reasons) {
                for i in 0..dead.num_rows() {
                    if offsets.is_valid(i) {
                        refused_records.insert(
                            offsets.value(i) as usize,
                            (kinds.value(i).to_string(), reasons.value(i).to_string()),
                        );
                    }
                }
            }
        }
        let mut replies = Vec::with_capacity(group.len());
        let mut refused = Vec::with_capacity(group.len());
        let mut stored_ids = Vec::new();
        for (r, (request, t)) in group.iter().zip(&read.translated).enumerate() {
            let mut reply = IngestReply::default();
            for rejection in &t.rejections {
                match rejection.entry {
                    Some(entry) => {
                        reply.parts.insert(
                            entry,
                            PartOutcome::Rejected {
                                kind: rejection.kind.as_str().to_string(),
                                reason: rejection.reason.clone(),
                            },
                        );
                    }
                    None => {
                        reply.failure.get_or_insert(IngestFailure {
                            transient: false,
                            reason: rejection.reason.clone(),
                        });
                    }
                }
            }
            for (entry, id) in &t.duplicates {
                reply
                    .parts
                    .insert(*entry, PartOutcome::Duplicate { id: id.clone() });
            }
            // Parts whose reading the schema refused (a SpO2 of 140).
            for (record, (kind, reason)) in &refused_records {
                let (req, reading) = read.origin[*record];
                if req != r {
                    continue;
                }
                for entry in &t.parts[reading] {
                    reply.parts.insert(
                        *entry,
                        PartOutcome::Rejected {
                            kind: kind.clone(),
                            reason: reason.clone(),
                        },
                    );
                }
            }
            for (entry, id) in &t.contributed {
                reply
                    .parts
                    .entry(*entry)
                    .or_insert_with(|| PartOutcome::Stored { id: id.clone() });
            }
            let any_refused = reply
                .parts
                .values()
                .any(|p| matches!(p, PartOutcome::Rejected { .. }));
            let whole = reply.failure.is_some() || (request.atomic && any_refused);
            if request.atomic && any_refused && reply.failure.is_none() {
                reply.failure = Some(IngestFailure {
                    transient: false,
                    reason: "a transaction is stored whole or not at all, and some of its entries were refused".into(),
                });
            }
            if !whole {
                for part in reply.parts.values() {
                    if let PartOutcome::Stored { id: Some(id) } = part {
                        stored_ids.push(id.clone());
                    }
                }
            }
            refused.push(whole);
            replies.push(reply);
        }
        let request_of_record = read.origin.iter().map(|(r, _)| *r).collect();
        Plan {
            replies,
            refused,
            request_of_record,
            stored_ids,
        }
    }

    /// Which decoded rows are stored (not of a request refused whole), and
    /// each reply's row count.
    fn keep_rows(&mut self, record_of_row: &[usize]) -> Vec<bool> {
        record_of_row
            .iter()
            .map(|&record| {
                let request = self.request_of_record[record];
                let keep = !self.refused[request];
                if keep {
                    self.replies[request].rows += 1;
                }
                keep
            })
            .collect()
    }

    fn stored_ids(&mut self) -> Vec<String> {
        std::mem::take(&mut self.stored_ids)
    }
}
