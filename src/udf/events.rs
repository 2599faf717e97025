//! Metrics of UDF plugin calls.
#![allow(clippy::disallowed_macros)]

use std::time::Duration;

/// A plugin was called on a batch (`failed`: it returned an error).
pub struct UdfCalled<'a> {
    pub udf: &'a str,
    pub rows: usize,
    pub elapsed: Duration,
    pub failed: bool,
}

impl UdfCalled<'_> {
    pub fn emit(&self) {
        let udf = self.udf.to_owned();
        metrics::histogram!("vitalflow_udf_call_duration_seconds", "udf" => udf.clone())
            .record(self.elapsed.as_secs_f64());
        if self.failed {
            metrics::counter!("vitalflow_udf_errors_total", "udf" => udf).increment(1);
        } else {
            metrics::counter!("vitalflow_udf_rows_total", "udf" => udf).increment(self.rows as u64);
        }
    }
}
