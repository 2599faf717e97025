//! The in-memory state behind the dashboard: latest reading and recent
//! readings per patient, escalation alerts, and a broadcast of every update.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use serde_json::{Map, Value};
use tokio::sync::broadcast;

/// One row as JSON (`ts` in epoch milliseconds).
pub type Row = Map<String, Value>;

/// What subscribers receive, already serialized once for all of them.
#[derive(Debug, Clone)]
pub enum LiveEvent {
    /// `{"readings": [...]}`: the rows of one micro-batch.
    Readings(Arc<str>),
    /// One alert object.
    Alert(Arc<str>),
}

const ALERTS_KEPT: usize = 200;

pub struct LiveHub {
    recent_per_key: usize,
    latest: RwLock<HashMap<String, Row>>,
    recent: RwLock<HashMap<String, VecDeque<Row>>>,
    alerts: RwLock<VecDeque<Row>>,
    /// The highest level already alerted per patient (hysteresis).
    alerted: Mutex<HashMap<String, u8>>,
    events: broadcast::Sender<LiveEvent>,
    running: AtomicBool,
}

/// Live hubs by name.
type Hubs = Mutex<Vec<(String, Arc<LiveHub>)>>;
static HUBS: OnceLock<Hubs> = OnceLock::new();

fn hubs() -> &'static Mutex<Vec<(String, Arc<LiveHub>)>> {
    HUBS.get_or_init(|| Mutex::new(Vec::new()))
}

/// The hub of live sink `name`, created on first use.
pub fn hub(name: &str, recent_per_key: usize) -> Arc<LiveHub> {
    let mut all = hubs().lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, h)) = all.iter().find(|(n, _)| n == name) {
        return h.clone();
    }
    let h = Arc::new(LiveHub::new(recent_per_key));
    all.push((name.to_string(), h.clone()));
    h
}

/// The hub the dashboard shows: the first live sink of this process.
pub fn registered_hub() -> Option<Arc<LiveHub>> {
    hubs()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .first()
        .map(|(_, h)| h.clone())
}

/// NEWS2 risk levels in escalation order.
fn level_rank(level: &str) -> u8 {
    match level {
        "low-medium" => 1,
        "medium" => 2,
        "high" => 3,
        _ => 0,
    }
}

impl LiveHub {
    pub fn new(recent_per_key: usize) -> Self {
        let (events, _) = broadcast::channel(1024);
        Self {
            recent_per_key,
            latest: RwLock::default(),
            recent: RwLock::default(),
            alerts: RwLock::default(),
            alerted: Mutex::default(),
            events,
            running: AtomicBool::new(false),
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.events.subscribe()
    }

    pub fn set_running(&self, running: bool) {
        self.running.store(running, Ordering::Relaxed);
    }

    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Relaxed)
    }

    /// Latest reading of every patient.
    pub fn latest(&self) -> Vec<Row> {
        self.latest
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Up to `recent` readings of one patient, newest first.
    pub fn recent(&self, key: &str) -> Option<Vec<Row>> {
        self.recent
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .map(|q| q.iter().rev().cloned().collect())
    }

    /// Alerts, newest first.
    pub fn alerts(&self) -> Vec<Row> {
        self.alerts
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .rev()
            .cloned()
            .collect()
    }

    /// Take one micro-batch of rows (already JSON) keyed by `key_column`.
    pub fn publish(&self, rows: Vec<Row>, key_column: &str) {
        if rows.is_empty() {
            return;
        }
        let mut new_alerts = Vec::new();
        {
            let mut latest = self.latest.write().unwrap_or_else(|p| p.into_inner());
            let mut recent = self.recent.write().unwrap_or_else(|p| p.into_inner());
            for row in &rows {
                let Some(key) = row.get(key_column).and_then(Value::as_str) else {
                    continue;
                };
                if let Some(alert) = self.escalation(key, row) {
                    new_alerts.push(alert);
                }
                latest.insert(key.to_string(), row.clone());
                let queue = recent.entry(key.to_string()).or_default();
                queue.push_back(row.clone());
                while queue.len() > self.recent_per_key {
                    queue.pop_front();
                }
            }
        }
        let payload = serde_json::json!({ "readings": rows }).to_string();
        // No subscribers is fine: nobody has the dashboard open.
        let _ = self.events.send(LiveEvent::Readings(payload.into()));
        for alert in new_alerts {
            let text = Value::Object(alert.clone()).to_string();
            {
                let mut alerts = self.alerts.write().unwrap_or_else(|p| p.into_inner());
                alerts.push_back(alert);
                while alerts.len() > ALERTS_KEPT {
                    alerts.pop_front();
                }
            }
            let _ = self.events.send(LiveEvent::Alert(text.into()));
        }
    }

    /// An alert when a patient's NEWS2 risk level rises above what was
    /// already alerted; the memory resets once the patient is back to low,
    /// so a patient hovering around a threshold does not alert every reading.
    fn escalation(&self, key: &str, row: &Row) -> Option<Row> {
        let level = row.get("risk_level")?.as_str()?;
        let rank = level_rank(level);
        let mut alerted = self.alerted.lock().unwrap_or_else(|p| p.into_inner());
        let previous = alerted.get(key).copied().unwrap_or(0);
        if rank == 0 {
            alerted.remove(key);
            return None;
        }
        if rank <= previous {
            return None;
        }
        alerted.insert(key.to_string(), rank);
        let score = row.get("news2_score").cloned().unwrap_or(Value::Null);
        let reason = match level {
            "high" => format!("NEWS2 {score}: emergency response"),
            "medium" => format!("NEWS2 {score}: urgent response"),
            _ => "a single parameter scores 3: urgent ward-based review".to_string(),
        };
        let mut alert = Map::new();
        alert.insert("patient_id".into(), Value::from(key));
        alert.insert("ts".into(), row.get("ts").cloned().unwrap_or(Value::Null));
        alert.insert("news2_score".into(), score);
        alert.insert("level".into(), Value::from(level));
        alert.insert("reason".into(), Value::from(reason));
        Some(alert)
    }
}
