//! What `/health`, logs and metrics say about remote stores: per dataset
//! target, whether uploads succeed and how much waits in the spool.
//!
//! A [`StoreStatusBoard`] is created by whoever runs the pipeline and handed
//! explicitly to the forwarders (which write it) and to the server of the
//! same process (`vitalflow up`, which reads it): no process-wide registry.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use super::events::StoreStatusChanged;
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
    /// The spool is full and a sink waits for room: the pipeline is paused
    /// behind it (nothing is lost; it resumes as uploads free room). A full
    /// spool with no rows arriving is degraded, not paused.
    pub paused: bool,
}

impl StoreStatus {
    pub fn is_degraded(&self) -> bool {
        self.state != "ok" || self.paused
    }
}

/// The latest status of every remote target of one run; cheap to clone
/// (clones share the board).
#[derive(Debug, Clone, Default)]
pub struct StoreStatusBoard {
    targets: Arc<Mutex<BTreeMap<String, StoreStatus>>>,
}

impl StoreStatusBoard {
    /// Record the latest status of a target, and export it as metrics.
    pub fn report(&self, status: StoreStatus) {
        StoreStatusChanged { status: &status }.emit();
        let mut all = self.targets.lock().unwrap_or_else(|e| e.into_inner());
        all.insert(status.target.clone(), status);
    }

    /// Every remote target reported so far.
    pub fn all(&self) -> Vec<StoreStatus> {
        let all = self.targets.lock().unwrap_or_else(|e| e.into_inner());
        all.values().cloned().collect()
    }
}
