//! vitalflow: a real-time patient vital-signs pipeline.
//!
//! Bedside monitors (or the built-in simulator) produce readings; a
//! declarative YAML pipeline runs SQL transforms over them with an embedded
//! DataFusion engine and writes the results as Parquet, which `vitalflow
//! query` serves back with SQL.
//!
//! Data flows one way: [`sources`] -> [`engine`] -> [`sinks`].
//! - [`spec`]: pipeline YAML in, validated [`spec::PipelineSpec`] out.
//! - [`engine`]: plans SQL once, runs it per micro-batch, moves batches
//!   through bounded channels, checkpoints files and source offsets together.
//! - [`sources`]: the simulator and Kafka (JSON, consumer groups, dead letters).
//! - [`sinks`]: rolling, date-partitioned Parquet; Kafka; the live dashboard feed.
//! - [`kafka`]: client settings, topics, the producer, `vitalflow simulate`.
//! - [`storage`]: dataset locations as URLs.
//! - [`query`]: SQL over stored datasets with partition and statistics pruning.
//! - [`models`]: the ONNX risk model (tract prediction, TreeSHAP explanations).
//! - [`udf`]: Arroyo UDF plugins (dylibs over the Arrow C Data Interface).
//! - [`cli`], [`telemetry`]: the binary's glue (with the benchmark runs,
//!   [`cli::bench`]; their harness is the `vitalflow-bench` crate), logs.

pub mod alert;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod common;
pub mod engine;
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
