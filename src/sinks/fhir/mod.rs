//! FHIR out: NEWS2 scores as `Observation`s and alerts as `Flag`s.
//!
//! - `resources.rs`: which rows become which resources (`fhir:` settings
//!   shared by both targets) and the encoding (`interop::fhir_out`).
//! - `server.rs`: `kind: fhir_server`, the resources to a FHIR server over
//!   HTTP: at each checkpoint one `batch` Bundle of `PUT`s by id (a retry
//!   updates rather than duplicates), retried with exponential back-off;
//!   the checkpoint waits for the server's answer.
//!
//! The Kafka sink's `format: fhir` publishes the same resources to a topic.

mod resources;
mod server;

pub use resources::{Encoder, FhirResource, FhirResourcesConfig};
pub use server::{FhirServerSink, FhirServerSinkConfig};
