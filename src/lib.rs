//! vitalflow: a real-time patient vital-signs pipeline.
//!
//! Bedside monitors (or the built-in simulator) produce readings; a
//! declarative YAML pipeline runs SQL transforms over them with an embedded
//! DataFusion engine and writes the results as Parquet, which `vitalflow
//! query` serves back with SQL.
//!
//! Data flows one way: [`sources`] -> [`engine`] -> [`sinks`]; the [`server`]
//! reads what the sinks wrote. Modules are layered, lowest first; a module
//! imports only lower layers (the README's layout table is the map, and
//! `tests/it/layers.rs` checks the real imports against it):
//! 0. [`common`] (shared value types, imports nothing of ours), [`telemetry`]
//! 1. [`storage`], [`models`], [`udf`], [`alert`]
//! 2. [`kafka`]: client settings, topics, the producer
//! 3. [`sources`] (simulator, Kafka), [`sinks`] (Parquet, Kafka, live view)
//! 4. [`spec`]: pipeline YAML in, validated [`spec::PipelineSpec`] out
//! 5. [`engine`]: plans SQL once, runs it per micro-batch, checkpoints
//! 6. [`query`]: SQL over stored datasets
//! 7. [`auth`], [`audit`], [`acks`]
//! 8. [`server`]: the HTTP API and dashboard
//! 9. [`cli`]: the binary's subcommands

pub mod acks;
pub mod alert;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod common;
pub mod engine;
pub mod interop;
pub mod kafka;
pub mod models;
pub mod query;
pub mod server;
pub mod sinks;
pub mod sources;
pub mod spec;
pub mod storage;
pub mod telemetry;
pub mod udf;
