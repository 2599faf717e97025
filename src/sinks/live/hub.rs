//! The in-memory state behind the dashboard: latest reading and recent
//! readings per patient, escalation alerts, and a broadcast of every update.
//! A patient not seen for `forget_after` is forgotten, so ids that come and
//! go (or random ones) do not grow memory without bound.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use tokio::sync::broadcast;

use super::config::{LiveAlertsConfig, LiveSinkConfig};
use crate::alert::AlertStates;

/// One row as JSON (`ts` in epoch milliseconds).
pub type Row = Map<String, Value>;

/// What subscribers receive, already serialized once for all of them.
#[derive(Debug, Clone)]
pub enum LiveEvent {
    /// `{"readings": [...]}`: the rows of one micro-batch.
    Readings(Arc<str>),
    /// One alert object.
    Alert(Arc<str>),
    /// One acknowledgement of an alert (made through the server).
    Ack(Arc<str>),
}

const ALERTS_KEPT: usize = 200;

pub struct LiveHub {
    recent_per_key: usize,
    forget_after: Duration,
    /// The event-time column (epoch milliseconds in the JSON rows).
    time_column: String,
    rules: LiveAlertsConfig,
    /// When each patient was last published, and when to sweep next.
    seen: Mutex<(HashMap<String, Instant>, Instant)>,
    latest: RwLock<HashMap<String, Row>>,
    recent: RwLock<HashMap<String, VecDeque<Row>>>,
    alerts: RwLock<VecDeque<Row>>,
    /// The level already alerted per patient, with its hysteresis.
    alerted: Mutex<AlertStates>,
    events: broadcast::Sender<LiveEvent>,
    running: AtomicBool,
}

/// A live sink's name and its hub.
type NamedHub = (String, Arc<LiveHub>);

/// The live hubs of one run by sink name, shared (cheap clones) between the
/// live sinks that publish and the server that shows them. A hub outlives
/// its sink, so a restarted run keeps the dashboard's state.
#[derive(Clone, Default)]
pub struct LiveHubs {
    hubs: Arc<Mutex<Vec<NamedHub>>>,
}

impl std::fmt::Debug for LiveHubs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hubs = self.hubs.lock().unwrap_or_else(|p| p.into_inner());
        f.debug_list().entries(hubs.iter().map(|(n, _)| n)).finish()
    }
}

impl LiveHubs {
    /// The hub of live sink `name`, created on first use.
    pub fn hub(&self, name: &str, config: &LiveSinkConfig) -> Arc<LiveHub> {
        let mut all = self.hubs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, h)) = all.iter().find(|(n, _)| n == name) {
            return h.clone();
        }
        let h = Arc::new(LiveHub::new(config));
        all.push((name.to_string(), h.clone()));
        h
    }

    /// The hub the dashboard shows: the first live sink built.
    pub fn first(&self) -> Option<Arc<LiveHub>> {
        self.hubs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .first()
            .map(|(_, h)| h.clone())
    }
}

impl LiveHub {
    pub fn new(config: &LiveSinkConfig) -> Self {
        let (events, _) = broadcast::channel(1024);
        Self {
            recent_per_key: config.recent,
            forget_after: config.forget_after.0,
            time_column: config.time.clone(),
            rules: config.alerts.clone(),
            seen: Mutex::new((HashMap::new(), Instant::now())),
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
        self.forget_idle(Instant::now());
        self.latest
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Patients currently known.
    pub fn patients(&self) -> usize {
        self.latest.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Up to `recent` readings of one patient, newest first.
    pub fn recent(&self, key: &str) -> Option<Vec<Row>> {
        self.forget_idle(Instant::now());
        self.recent
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .map(|q| q.iter().rev().cloned().collect())
    }

    /// The reading before the latest of one patient.
    pub fn previous(&self, key: &str) -> Option<Row> {
        let recent = self.recent.read().unwrap_or_else(|p| p.into_inner());
        let queue = recent.get(key)?;
        queue
            .len()
            .checked_sub(2)
            .and_then(|i| queue.get(i))
            .cloned()
    }

    /// The column of the score the alerts quote (`news2_score`).
    pub fn score_column(&self) -> &str {
        &self.rules.score
    }

    /// The alert with this `id`, if still kept.
    pub fn alert(&self, id: &str) -> Option<Row> {
        self.alerts
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|a| a.get("id").and_then(Value::as_str) == Some(id))
            .cloned()
    }

    /// Tell every open dashboard that an alert was acknowledged (`ack` is
    /// the acknowledgement as JSON).
    pub fn announce_ack(&self, ack: String) {
        let _ = self.events.send(LiveEvent::Ack(ack.into()));
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
        self.publish_at(rows, key_column, Instant::now());
    }

    /// [`LiveHub::publish`] at a given time (tests pass their own clock).
    pub fn publish_at(&self, rows: Vec<Row>, key_column: &str, now: Instant) {
        self.forget_idle(now);
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
                self.seen
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .0
                    .insert(key.to_string(), now);
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

    /// Drop every patient not published for `forget_after` (latest, recent
    /// readings, alert memory). Sweeps at most every `forget_after / 4`.
    pub fn forget_idle(&self, now: Instant) {
        let idle: Vec<String> = {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            let (last_seen, next_sweep) = &mut *seen;
            if now < *next_sweep {
                return;
            }
            *next_sweep = now + (self.forget_after / 4).min(Duration::from_secs(10));
            let idle: Vec<String> = last_seen
                .iter()
                .filter(|(_, at)| now.saturating_duration_since(**at) >= self.forget_after)
                .map(|(key, _)| key.clone())
                .collect();
            for key in &idle {
                last_seen.remove(key);
            }
            idle
        };
        if idle.is_empty() {
            return;
        }
        {
            let mut latest = self.latest.write().unwrap_or_else(|p| p.into_inner());
            let mut recent = self.recent.write().unwrap_or_else(|p| p.into_inner());
            let mut alerted = self.alerted.lock().unwrap_or_else(|p| p.into_inner());
            for key in &idle {
                latest.remove(key);
                recent.remove(key);
                alerted.forget(key);
            }
        }
        crate::telemetry::events::LivePatientsForgotten {
            patients: idle.len(),
        }
        .emit();
    }

    /// An alert when a patient's level rises above the one already
    /// alerted; the armed level steps down only after the patient has been
    /// below it for `rearm_after` of event time, so a patient hovering
    /// around a threshold does not alert every reading.
    fn escalation(&self, key: &str, row: &Row) -> Option<Row> {
        let level = row.get(&self.rules.column)?.as_str()?;
        let rank = self.rules.rank(level);
        let time = row.get(&self.time_column).and_then(Value::as_i64)?;
        let escalation = self
            .alerted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .observe(key, 0, time, rank, self.rules.rearm_after_ms())?;
        let score = row.get(&self.rules.score).cloned().unwrap_or(Value::Null);
        let reason = self.rules.levels[escalation.level - 1]
            .reason
            .replace("{score}", &score.to_string());
        let mut alert = Map::new();
        // One alert per patient and reading at most: the pair names it,
        // and names it the same when the same readings are replayed.
        alert.insert("id".into(), Value::from(format!("{key}@{time}")));
        alert.insert("patient_id".into(), Value::from(key));
        alert.insert("ts".into(), Value::from(time));
        alert.insert("news2_score".into(), score);
        alert.insert("level".into(), Value::from(level));
        alert.insert("reason".into(), Value::from(reason));
        Some(alert)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reading(patient: &str) -> Row {
        json!({"patient_id": patient, "ts": 0, "news2_score": 1, "risk_level": "low"})
            .as_object()
            .unwrap()
            .clone()
    }

    fn config(recent: usize, forget_after: Duration) -> LiveSinkConfig {
        let mut config: LiveSinkConfig = serde_saphyr::from_str("input: scored").unwrap();
        config.recent = recent;
        config.forget_after = crate::common::HumanDuration(forget_after);
        config
    }

    fn scored(patient: &str, ts: i64, level: &str) -> Row {
        json!({"patient_id": patient, "ts": ts, "news2_score": 6, "risk_level": level})
            .as_object()
            .unwrap()
            .clone()
    }

    #[test]
    fn alerts_use_the_shared_hysteresis() {
        let mut config = config(5, Duration::from_secs(3600));
        config.alerts.rearm_after = crate::common::HumanDuration(Duration::from_secs(60));
        let hub = LiveHub::new(&config);
        let publish = |rows: Vec<Row>| hub.publish(rows, "patient_id");
        publish(vec![scored("a", 0, "low"), scored("a", 1_000, "medium")]);
        publish(vec![
            scored("a", 2_000, "low"),
            scored("a", 3_000, "medium"),
        ]);
        assert_eq!(
            hub.alerts().len(),
            1,
            "back up within rearm_after: one alert"
        );
        publish(vec![scored("a", 4_000, "high")]);
        // Low for over a minute of event time: the next rise alerts again.
        publish(vec![scored("a", 5_000, "low"), scored("a", 70_000, "low")]);
        publish(vec![scored("a", 71_000, "medium")]);
        let alerts = hub.alerts();
        let levels: Vec<&str> = alerts
            .iter()
            .map(|a| a["level"].as_str().unwrap())
            .collect();
        assert_eq!(levels, ["medium", "high", "medium"]);
        assert_eq!(alerts[0]["reason"], "NEWS2 6: urgent response");
        assert_eq!(alerts[0]["id"], "a@71000");
        assert_eq!(hub.alert("a@4000").unwrap()["level"], "high");
        assert!(hub.alert("a@5000").is_none());
        assert_eq!(hub.previous("a").unwrap()["ts"], 70_000);
    }

    #[test]
    fn patients_not_seen_for_forget_after_are_forgotten() {
        let hub = LiveHub::new(&config(5, Duration::from_millis(100)));
        let start = Instant::now();
        hub.publish_at(vec![reading("a"), reading("b")], "patient_id", start);
        assert_eq!(hub.patients(), 2);
        // `a` keeps reporting, `b` goes quiet.
        let later = start + Duration::from_millis(60);
        hub.publish_at(vec![reading("a")], "patient_id", later);
        hub.publish_at(vec![], "patient_id", start + Duration::from_millis(130));
        assert_eq!(hub.patients(), 1, "b was idle for 130 ms");
        assert!(hub.recent("b").is_none());
        assert_eq!(hub.recent("a").unwrap().len(), 2);

        // Random ids do not accumulate: each batch of new ids replaces the
        // idle ones.
        for round in 0..50u32 {
            let at = start + Duration::from_millis(200 + 100 * u64::from(round));
            let rows = (0..100)
                .map(|i| reading(&format!("r{round}-{i}")))
                .collect();
            hub.publish_at(rows, "patient_id", at);
            assert!(hub.patients() <= 200, "round {round}: {}", hub.patients());
        }
        let seen = hub.seen.lock().unwrap().0.len();
        assert!(seen <= 200, "{seen}");
    }
}
