//! The per-key alert state machine: alert on escalation only.
//!
//! Each key has an *armed level* (0 = none). A row above it raises an alert
//! and becomes the armed level; a row at it changes nothing; rows below it
//! must stay below for `rearm_after` of event time before the armed level
//! steps down to theirs, so a score that hovers around a threshold alerts
//! once, not on every crossing.

use std::collections::HashMap;

/// One key's state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyState {
    pub armed: usize,
    /// Event time since which rows have been below `armed`.
    pub below_since: Option<i64>,
}

/// An escalation: `key` went from `previous` to `level` at `time`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Escalation {
    pub row: usize,
    pub previous: usize,
    pub level: usize,
}

#[derive(Debug, Default)]
pub struct AlertStates {
    pub keys: HashMap<String, KeyState>,
}

impl AlertStates {
    /// Drop a key's state (a patient no longer monitored).
    pub fn forget(&mut self, key: &str) {
        self.keys.remove(key);
    }

    /// Feed one row (rows of a key in event-time order); `Some` on an
    /// escalation.
    pub fn observe(
        &mut self,
        key: &str,
        row: usize,
        time: i64,
        level: usize,
        rearm_after: i64,
    ) -> Option<Escalation> {
        let state = match self.keys.get_mut(key) {
            Some(s) => s,
            None => self.keys.entry(key.to_string()).or_default(),
        };
        if level > state.armed {
            let previous = state.armed;
            *state = KeyState {
                armed: level,
                below_since: None,
            };
            return Some(Escalation {
                row,
                previous,
                level,
            });
        }
        if level == state.armed {
            state.below_since = None;
            return None;
        }
        match state.below_since {
            None => state.below_since = Some(time),
            Some(since) if time - since >= rearm_after => {
                *state = KeyState {
                    armed: level,
                    below_since: None,
                };
            }
            Some(_) => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(levels: &[(i64, usize)], rearm: i64) -> Vec<(i64, usize, usize)> {
        let mut states = AlertStates::default();
        levels
            .iter()
            .enumerate()
            .filter_map(|(row, &(t, l))| {
                states
                    .observe("P1", row, t, l, rearm)
                    .map(|e| (t, e.previous, e.level))
            })
            .collect()
    }

    #[test]
    fn each_escalation_alerts_once() {
        // 0 -> 2 -> 3: two alerts; staying at 3 adds none.
        assert_eq!(
            run(&[(0, 0), (1, 2), (2, 3), (3, 3), (4, 3)], 10),
            vec![(1, 0, 2), (2, 2, 3)]
        );
    }

    #[test]
    fn hovering_around_a_threshold_alerts_once_until_it_has_been_clear_long_enough() {
        // Up and down within the re-arm time: one alert.
        assert_eq!(
            run(&[(0, 2), (1, 1), (2, 2), (3, 1), (4, 2)], 10),
            vec![(0, 0, 2)]
        );
        // Below for 10 s (t = 1..11), then up again: a new alert.
        assert_eq!(
            run(&[(0, 2), (1, 1), (6, 1), (11, 1), (12, 2)], 10),
            vec![(0, 0, 2), (12, 1, 2)]
        );
        // A row back at the armed level resets the clear period.
        assert_eq!(
            run(&[(0, 2), (1, 1), (5, 2), (11, 1), (12, 2)], 10),
            vec![(0, 0, 2)]
        );
    }

    #[test]
    fn keys_are_independent() {
        let mut states = AlertStates::default();
        assert!(states.observe("P1", 0, 0, 3, 10).is_some());
        assert!(states.observe("P2", 1, 0, 3, 10).is_some());
        assert!(states.observe("P1", 2, 1, 3, 10).is_none());
    }
}
