//! `kind: fhir_ingest`: FHIR resources POSTed to the server of the same
//! process (`POST /fhir`, `POST /fhir/Observation`) as a pipeline source.
//!
//! - `config.rs`: the YAML (the reading's schema, codes, queue, ids kept).
//! - `source.rs`: takes requests from its channel in groups, reads them
//!   (`interop::fhir_in`), checks the readings against the declared schema
//!   (the Kafka source's decoder), hands the rows over, asks the engine for
//!   a checkpoint and only then answers each request: a `201` means stored.
//! - `seen.rs`: the ids of Observations already stored, so that a retried
//!   POST stores nothing twice (at-least-once delivery, idempotent by id).

mod config;
mod seen;
mod source;

pub use config::IngestSourceConfig;
