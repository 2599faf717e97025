//! Whether the consumer group session has certainly expired, judged from
//! librdkafka's statistics rather than from its log.
//!
//! librdkafka logs `SESSTMOUT` and revokes the assignment as lost only when
//! its join state is steady; a broker that dies while the member is joining
//! or syncing leaves it holding partitions the coordinator has already given
//! away. The statistics say how long the group handler has been away from
//! its coordinator and how long every broker has been unreachable: once
//! either exceeds `session.timeout.ms`, no heartbeat can have reached the
//! coordinator within the session, so the assignment is gone.

use std::time::Duration;

use rdkafka::statistics::Statistics;

/// librdkafka's default `session.timeout.ms`.
pub(super) const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_millis(45_000);

/// The session timeout set in a client's properties, or librdkafka's default.
pub(super) fn session_timeout(configured: Option<&str>) -> Duration {
    configured
        .and_then(|ms| ms.trim().parse::<u64>().ok())
        .map_or(DEFAULT_SESSION_TIMEOUT, Duration::from_millis)
}

/// Why the session has certainly expired, if it has.
pub(super) fn expired(stats: &Statistics, session: Duration) -> Option<String> {
    let session_ms = i64::try_from(session.as_millis()).unwrap_or(i64::MAX);
    if let Some(group) = &stats.cgrp
        && group.state != "up"
        && group.stateage >= session_ms
    {
        return Some(format!(
            "the group handler has been in state `{}` for {} ms, longer than the {} ms session",
            group.state, group.stateage, session_ms
        ));
    }
    // Broker state ages are in microseconds. Only the cluster's brokers
    // count: librdkafka's internal and logical brokers are not connections.
    let mut brokers = stats
        .brokers
        .values()
        .filter(|b| b.source == "configured" || b.source == "learned")
        .peekable();
    brokers.peek()?;
    let session_us = session_ms.saturating_mul(1000);
    brokers
        .all(|b| b.state != "UP" && b.stateage >= session_us)
        .then(|| {
            format!("no broker has been reachable for longer than the {session_ms} ms session")
        })
}

#[cfg(test)]
mod tests {
    use rdkafka::statistics::{Broker, ConsumerGroup};

    use super::*;

    fn broker(source: &str, state: &str, age: Duration) -> Broker {
        Broker {
            source: source.into(),
            state: state.into(),
            stateage: age.as_micros() as i64,
            ..Broker::default()
        }
    }

    fn stats(group: Option<(&str, Duration)>, brokers: Vec<Broker>) -> Statistics {
        Statistics {
            cgrp: group.map(|(state, age)| ConsumerGroup {
                state: state.into(),
                stateage: age.as_millis() as i64,
                ..ConsumerGroup::default()
            }),
            brokers: brokers
                .into_iter()
                .enumerate()
                .map(|(i, b)| (i.to_string(), b))
                .collect(),
            ..Statistics::default()
        }
    }

    const SESSION: Duration = Duration::from_secs(6);
    const LONGER: Duration = Duration::from_secs(7);
    const SHORTER: Duration = Duration::from_secs(5);

    #[test]
    fn a_group_away_from_its_coordinator_past_the_session_has_expired() {
        let up = broker("learned", "UP", LONGER);
        let s = stats(Some(("query-coord", LONGER)), vec![up.clone()]);
        assert!(expired(&s, SESSION).unwrap().contains("query-coord"));
        let s = stats(Some(("query-coord", SHORTER)), vec![up.clone()]);
        assert_eq!(expired(&s, SESSION), None);
        let s = stats(Some(("up", LONGER)), vec![up]);
        assert_eq!(expired(&s, SESSION), None);
    }

    #[test]
    fn every_cluster_broker_down_past_the_session_has_expired() {
        let internal = broker("internal", "UP", LONGER);
        let down = vec![
            broker("configured", "INIT", LONGER),
            broker("learned", "DOWN", LONGER),
            internal.clone(),
        ];
        let s = stats(Some(("up", Duration::ZERO)), down);
        assert!(expired(&s, SESSION).unwrap().contains("no broker"));
        // One broker down for less than the session: not yet.
        let recent = vec![broker("learned", "CONNECT", SHORTER), internal.clone()];
        assert_eq!(expired(&stats(None, recent), SESSION), None);
        // One broker up: the coordinator may be hearing heartbeats.
        let one_up = vec![
            broker("learned", "DOWN", LONGER),
            broker("learned", "UP", LONGER),
        ];
        assert_eq!(expired(&stats(None, one_up), SESSION), None);
        // Only internal brokers: nothing is known.
        assert_eq!(expired(&stats(None, vec![internal]), SESSION), None);
    }

    #[test]
    fn the_timeout_is_read_from_the_properties_or_defaults() {
        assert_eq!(session_timeout(Some("6000")), SESSION);
        assert_eq!(session_timeout(None), DEFAULT_SESSION_TIMEOUT);
        assert_eq!(session_timeout(Some("six")), DEFAULT_SESSION_TIMEOUT);
    }
}
