//! Integration tests: one binary, one module per area.

mod access;
mod api;
mod broker;
mod browser;
mod cli_bench;
mod cli_query;
mod cli_validate;
mod compose;
mod crash_safety;
mod exact_numbers;
mod failover;
mod history;
mod interop;
mod kafka;
mod layers;
mod models;
mod object_store;
mod oidc;
mod pipeline_run;
mod prometheus;
mod s3_server;
mod server_limits;
mod support;
mod transforms;
mod udfs;
mod windows;
