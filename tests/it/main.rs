//! Integration tests: one binary, one module per area.

mod cli_query;
mod cli_validate;
mod crash_safety;
mod pipeline_run;
mod support;
mod transforms;
