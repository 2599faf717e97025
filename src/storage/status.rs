//! What `/health`, logs and metrics say about remote stores: per dataset
//! target, whether uploads succeed and how much waits in the spool.
//!
//! Process-wide, like the metrics registry: the forwarders of a running
//! pipeline write it and the server of the same process (`vitalflow up`)
//! reads it.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

use serde::Serialize;
use utoipa::ToSchema;

/// One remote dataset as its forwarder last saw it.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct StoreStatus {
    /// The sink writing the dataset.
    pub sink: String,
    /// `s3://bucket/prefix` or `hdfs://namenode:port/path`.
    pub target: String,
    /// Local directory where completed files wait for upload.
    pub spool: String,
    /// `ok`, or `degraded` while uploads fail.
    pub state: String,
    pub waiting_files: u64,
    pub waiting_bytes: u64,
    pub uploaded_files: u64,
    /// The last upload error while degraded.
    pub last_error: Option<String>,
    /// RFC 3339 time of the first failure of the current outage.
    pub degraded_since: Option<String>,
    /// The spool is full: the sink waits for room and the pipeline is
    /// paused behind it (nothing is lost; it resumes as uploads free room).
    pub paused: bool,
}

impl StoreStatus {
    pub fn is_degraded(&self) -> bool {
        self.state != "ok" || self.paused
    }
}

fn registry() -> &'static Mutex<BTreeMap<String, StoreStatus>> {
    static REGISTRY: OnceLock<Mutex<BTreeMap<String, StoreStatus>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// Record the latest status of a target, and export it as metrics.
pub fn report(status: StoreStatus) {
    let labels = [
        ("sink", status.sink.clone()),
        ("target", status.target.clone()),
    ];
    metrics::gauge!("vitalflow_store_up", &labels).set(if status.is_degraded() {
        0.0
    } else {
        1.0
    });
    metrics::gauge!("vitalflow_spool_waiting_files", &labels).set(status.waiting_files as f64);
    metrics::gauge!("vitalflow_spool_waiting_bytes", &labels).set(status.waiting_bytes as f64);
    metrics::gauge!("vitalflow_spool_full", &labels).set(if status.paused { 1.0 } else { 0.0 });
    let mut all = registry().lock().unwrap_or_else(|e| e.into_inner());
    all.insert(status.target.clone(), status);
}

/// Every remote target of this process.
pub fn all() -> Vec<StoreStatus> {
    let all = registry().lock().unwrap_or_else(|e| e.into_inner());
    all.values().cloned().collect()
}
