//! [`IngestHubs`]: where the server hands messages to a pipeline's ingest
//! source in the same process (`POST /fhir`), and how the source answers.
//!
//! The server knows nothing of the pipeline and the pipeline nothing of
//! HTTP: a source of `kind: fhir_ingest` registers a bounded channel here
//! under its name while it runs; the server sends each request's body with
//! a reply slot, and the source answers once what it accepted is durable.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

/// One message for an ingest source.
#[derive(Debug)]
pub struct IngestRequest {
    /// The request body (a FHIR resource).
    pub payload: Vec<u8>,
    /// All or nothing (a FHIR `transaction`): if any part is refused,
    /// nothing of the message is stored.
    pub atomic: bool,
    /// Where the source answers.
    pub reply: oneshot::Sender<IngestReply>,
}

/// What the source did with one message.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IngestReply {
    /// Rows stored (durable when the reply is sent).
    pub rows: usize,
    /// Per part of the message (a Bundle entry; index 0 for a single
    /// resource): what became of it.
    pub parts: BTreeMap<usize, PartOutcome>,
    /// A message-level failure: nothing of it was stored.
    pub failure: Option<IngestFailure>,
}

/// The fate of one resource of a message.
#[derive(Debug, Clone, PartialEq)]
pub enum PartOutcome {
    /// Stored, under this id if it had one.
    Stored { id: Option<String> },
    /// Already stored earlier (same id): not stored again.
    Duplicate { id: String },
    /// Refused: the class (`unknown_code`, ...) and where and why.
    Rejected { kind: String, reason: String },
}

/// Why a whole message was refused.
#[derive(Debug, Clone, PartialEq)]
pub struct IngestFailure {
    /// `invalid` (the request's fault) or `transient` (retry later).
    pub transient: bool,
    pub reason: String,
}

/// The ingest sources of a run, by name.
#[derive(Debug, Clone, Default)]
pub struct IngestHubs(Arc<Mutex<BTreeMap<String, mpsc::Sender<IngestRequest>>>>);

impl IngestHubs {
    /// Make source `name` reachable through `sender` (until [`Self::remove`]).
    pub fn register(&self, name: &str, sender: mpsc::Sender<IngestRequest>) {
        if let Ok(mut hubs) = self.0.lock() {
            hubs.insert(name.to_string(), sender);
        }
    }

    pub fn remove(&self, name: &str) {
        if let Ok(mut hubs) = self.0.lock() {
            hubs.remove(name);
        }
    }

    /// The only ingest source, or why there is not exactly one.
    pub fn single(&self) -> Result<(String, mpsc::Sender<IngestRequest>), NoIngestSource> {
        let hubs = self.0.lock().map_err(|_| NoIngestSource::Poisoned)?;
        let mut running = hubs.iter();
        match (running.next(), running.next()) {
            (Some((name, sender)), None) => Ok((name.clone(), sender.clone())),
            (None, _) => Err(NoIngestSource::None),
            (Some(_), Some(_)) => Err(NoIngestSource::Several(hubs.len())),
        }
    }
}

/// Why the server has no ingest source to hand a message to.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NoIngestSource {
    #[error("no running pipeline source takes FHIR ingest (`kind: fhir_ingest`)")]
    None,
    #[error("{0} running sources take FHIR ingest; the endpoint needs exactly one")]
    Several(usize),
    #[error("the ingest registry is poisoned (a thread panicked while holding it)")]
    Poisoned,
}
