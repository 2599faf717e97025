//! Logs and metrics of the storage layer: uploads from the spool and the
//! status of remote stores.
#![allow(clippy::disallowed_macros)]

use std::time::Duration;

use super::status::StoreStatus;

/// A spooled file reached its remote store.
pub struct FileUploaded<'a> {
    pub sink: &'a str,
    pub object: &'a str,
    pub bytes: u64,
    pub elapsed: Duration,
}

impl FileUploaded<'_> {
    pub fn emit(&self) {
        let labels = [("sink", self.sink.to_owned())];
        metrics::counter!("vitalflow_store_uploaded_files_total", &labels).increment(1);
        metrics::counter!("vitalflow_store_uploaded_bytes_total", &labels).increment(self.bytes);
        metrics::histogram!("vitalflow_store_upload_duration_seconds", &labels)
            .record(self.elapsed.as_secs_f64());
        tracing::debug!(sink = %self.sink, object = %self.object, bytes = self.bytes, "uploaded");
    }
}

/// An upload failed (the file stays in the spool and is retried). Counted
/// every time; the warning is logged by [`StoreDegraded`] once per outage.
pub struct UploadFailed<'a> {
    pub sink: &'a str,
}

impl UploadFailed<'_> {
    pub fn emit(&self) {
        metrics::counter!("vitalflow_store_upload_errors_total", "sink" => self.sink.to_owned())
            .increment(1);
    }
}

/// The forwarder's view of a store changed: exported as gauges.
pub struct StoreStatusChanged<'a> {
    pub status: &'a StoreStatus,
}

impl StoreStatusChanged<'_> {
    pub fn emit(&self) {
        let status = self.status;
        let labels = [
            ("sink", status.sink.clone()),
            ("target", status.target.clone()),
        ];
        let flag = |on: bool| if on { 1.0 } else { 0.0 };
        metrics::gauge!("vitalflow_store_up", &labels).set(flag(!status.is_degraded()));
        metrics::gauge!("vitalflow_spool_waiting_files", &labels).set(status.waiting_files as f64);
        metrics::gauge!("vitalflow_spool_waiting_bytes", &labels).set(status.waiting_bytes as f64);
        metrics::gauge!("vitalflow_spool_full", &labels).set(flag(status.paused));
    }
}
