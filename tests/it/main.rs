//! Integration tests: one binary, one module per area.

mod api;
mod broker;
mod browser;
mod cli_query;
mod cli_validate;
mod compose;
mod crash_safety;
mod kafka;
mod models;
mod pipeline_run;
mod prometheus;
mod support;
mod transforms;
mod udfs;
mod windows;
