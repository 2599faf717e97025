//! Integration tests: one binary, one module per area.

mod api;
mod browser;
mod cli_query;
mod cli_validate;
mod crash_safety;
mod models;
mod pipeline_run;
mod prometheus;
mod support;
mod transforms;
