//! Internal events: one struct per thing that happened. `emit` writes the
//! structured log line and the metrics together, so components never call
//! the metrics macros directly.
#![allow(clippy::disallowed_macros)]

use std::time::Duration;

/// An HTTP request finished.
pub struct HttpRequestCompleted<'a> {
    pub route: &'a str,
    pub method: &'a str,
    pub status: u16,
    pub elapsed: Duration,
}

impl HttpRequestCompleted<'_> {
    pub fn emit(&self) {
        let seconds = self.elapsed.as_secs_f64();
        tracing::info!(
            method = self.method,
            route = self.route,
            status = self.status,
            latency_ms = seconds * 1e3,
            "http request"
        );
        let status = status_label(self.status);
        metrics::counter!(
            "vitalflow_http_requests_total",
            "route" => self.route.to_owned(), "method" => self.method.to_owned(), "status" => status
        )
        .increment(1);
        metrics::histogram!("vitalflow_http_request_duration_seconds", "route" => self.route.to_owned())
            .record(seconds);
    }
}

/// Status codes as a small fixed label set.
fn status_label(status: u16) -> &'static str {
    match status {
        200 => "200",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        413 => "413",
        422 => "422",
        429 => "429",
        500 => "500",
        503 => "503",
        s if s < 300 => "2xx",
        s if s < 400 => "3xx",
        s if s < 500 => "4xx",
        _ => "5xx",
    }
}

/// A request was refused access (401: no valid credential; 403: a valid
/// one that does not allow the route). The reason is logged, never sent.
pub struct AccessRefused<'a> {
    pub route: &'a str,
    pub status: u16,
    pub reason: &'a str,
}

impl AccessRefused<'_> {
    pub fn emit(&self) {
        tracing::info!(
            route = self.route,
            status = self.status,
            reason = self.reason,
            "access refused"
        );
        metrics::counter!(
            "vitalflow_access_refused_total",
            "route" => self.route.to_owned(), "status" => status_label(self.status)
        )
        .increment(1);
    }
}

/// The server started; exported as info-style gauges (value 1, facts in labels).
pub struct ServerStarted<'a> {
    /// `(name, version)` of the loaded model, if any.
    pub model: Option<(&'a str, &'a str)>,
}

impl ServerStarted<'_> {
    pub fn emit(&self) {
        metrics::gauge!("vitalflow_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
        match self.model {
            Some((name, version)) => {
                metrics::gauge!("vitalflow_model_info", "model_name" => name.to_owned(), "model_version" => version.to_owned()).set(1.0);
                metrics::gauge!("vitalflow_model_loaded").set(1.0);
            }
            None => metrics::gauge!("vitalflow_model_loaded").set(0.0),
        }
    }
}

/// The model scored or explained `rows` rows.
pub struct ModelInvoked {
    /// `predict` or `explain`: a fixed label set.
    pub operation: &'static str,
    pub rows: usize,
    pub elapsed: Duration,
}

impl ModelInvoked {
    pub fn emit(&self) {
        metrics::histogram!("vitalflow_model_inference_duration_seconds", "operation" => self.operation).record(self.elapsed.as_secs_f64());
        metrics::counter!("vitalflow_model_rows_scored_total", "operation" => self.operation)
            .increment(self.rows as u64);
    }
}

/// A model worker ran `rows` queued single-row requests as one batch.
pub struct ModelBatched {
    /// `predict` or `explain`: a fixed label set.
    pub operation: &'static str,
    pub rows: usize,
}

impl ModelBatched {
    pub fn emit(&self) {
        metrics::histogram!("vitalflow_model_batch_rows", "operation" => self.operation)
            .record(self.rows as f64);
    }
}

/// The simulator handed messages to the Kafka producer.
pub struct SimulatorProduced {
    pub messages: usize,
}

impl SimulatorProduced {
    pub fn emit(&self) {
        metrics::counter!("vitalflow_simulator_messages_total").increment(self.messages as u64);
    }
}

/// A simulated reading could not be delivered to Kafka (after retries).
pub struct SimulatorDeliveryFailed<'a> {
    pub error: &'a str,
}

impl SimulatorDeliveryFailed<'_> {
    pub fn emit(&self) {
        tracing::error!(error = self.error, "kafka delivery failed");
        metrics::counter!("vitalflow_simulator_delivery_failures_total").increment(1);
    }
}

/// A server limit refused or ended a request (rate, concurrency, timeout,
/// memory, result size, subscribers).
pub struct LimitHit {
    /// The limit, a fixed label set: `rate_limit`, `too_many_queries`,
    /// `query_timeout`, `memory_limit`, `result_bytes`, `too_many_streams`,
    /// `request_timeout`.
    pub limit: &'static str,
}

impl LimitHit {
    pub fn emit(&self) {
        metrics::counter!("vitalflow_server_limit_hits_total", "limit" => self.limit).increment(1);
        // A client hammering a limit must not flood the log: one line per
        // limit every 10 s, with how many were not logged.
        if let Some(suppressed) = rate_limited_log(self.limit, Duration::from_secs(10)) {
            tracing::warn!(limit = self.limit, suppressed, "server limit hit");
        }
    }
}

/// Rate-limited logging, declared per event: `Some(hits not logged since
/// the last line)` when `key` (the event's name) may log again (at most once
/// per `every`), `None` while it is quiet. The metric is still counted on
/// every emit; only the log line is limited.
pub fn rate_limited_log(key: &'static str, every: Duration) -> Option<u64> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    use std::time::Instant;
    static LAST: OnceLock<Mutex<HashMap<&'static str, (Instant, u64)>>> = OnceLock::new();
    let mut last = LAST
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let now = Instant::now();
    match last.get_mut(key) {
        Some((at, skipped)) if now.duration_since(*at) < every => {
            *skipped += 1;
            None
        }
        Some((at, skipped)) => {
            let suppressed = *skipped;
            *at = now;
            *skipped = 0;
            Some(suppressed)
        }
        None => {
            last.insert(key, (now, 0));
            Some(0)
        }
    }
}

/// The live hub forgot patients it had not seen for its `forget_after`.
pub struct LivePatientsForgotten {
    pub patients: usize,
}

impl LivePatientsForgotten {
    pub fn emit(&self) {
        tracing::debug!(patients = self.patients, "live view forgot idle patients");
        metrics::counter!("vitalflow_live_patients_forgotten_total")
            .increment(self.patients as u64);
    }
}
