//! Session windows: per key, rows closer than the gap to each other share a
//! window that ends one gap after its last row. A row arriving between two
//! sessions can join them, so each session keeps row accumulators whose
//! states can be merged.

use arrow::array::{Array, ArrayRef, BooleanArray, UInt32Array};
use arrow::compute::filter;
use arrow::row::RowConverter;
use datafusion::common::{HashMap, ScalarValue};
use datafusion::logical_expr::Accumulator;

use super::aggregates::{AggregateSpec, EvaluatedBatch};
use super::state::{ClosedGroups, SavedGroups, local_key_ids};
use crate::engine::error::OperatorError;

struct Session {
    start: i64,
    /// The newest event time in the session; it ends at `last + gap`.
    last: i64,
    accumulators: Vec<Box<dyn Accumulator>>,
}

impl Session {
    fn absorb(&mut self, mut other: Session) -> Result<(), OperatorError> {
        self.start = self.start.min(other.start);
        self.last = self.last.max(other.last);
        for (mine, theirs) in self
            .accumulators
            .iter_mut()
            .zip(other.accumulators.iter_mut())
        {
            let state = theirs
                .state()?
                .iter()
                .map(ScalarValue::to_array)
                .collect::<Result<Vec<_>, _>>()?;
            mine.merge_batch(&state)?;
        }
        Ok(())
    }
}

/// A session leaving the state: start, end (or last row), key, values.
type SessionRow = (i64, i64, Box<[u8]>, Vec<ScalarValue>);

/// Open session windows, per key in start order.
pub struct SessionWindows {
    gap: i64,
    sessions: HashMap<Box<[u8]>, Vec<Session>>,
    /// No session ends before this, so most watermarks need no scan.
    earliest_end: i64,
}

impl SessionWindows {
    pub fn new(gap: i64) -> Self {
        Self {
            gap,
            sessions: HashMap::default(),
            earliest_end: i64::MAX,
        }
    }

    pub fn open_windows(&self) -> usize {
        self.sessions.values().map(Vec::len).sum()
    }

    pub fn update(
        &mut self,
        spec: &AggregateSpec,
        _converter: &RowConverter,
        batch: &EvaluatedBatch,
    ) -> Result<(), OperatorError> {
        let (local, first_row) = local_key_ids(&batch.keys);
        let mut rows_of_key: Vec<Vec<(i64, u32)>> = vec![Vec::new(); first_row.len()];
        for row in 0..batch.num_rows() {
            if !arrow::array::Array::is_null(&batch.times, row) {
                rows_of_key[local[row] as usize].push((batch.times.value(row), row as u32));
            }
        }
        let gap = self.gap;
        for (id, mut rows) in rows_of_key.into_iter().enumerate() {
            if rows.is_empty() {
                continue;
            }
            rows.sort_unstable();
            let key = batch.keys.row(first_row[id]).data();
            let sessions = self.sessions.entry(key.into()).or_default();
            // Shape the sessions first (extend, create, merge)...
            for &(time, _) in &rows {
                let position = sessions.partition_point(|s| s.last + gap <= time);
                let joins = sessions.get(position).is_some_and(|s| s.start - gap < time);
                if joins {
                    let session = &mut sessions[position];
                    session.start = session.start.min(time);
                    session.last = session.last.max(time);
                    // A longer session may now reach the next one.
                    while position + 1 < sessions.len()
                        && sessions[position + 1].start < sessions[position].last + gap
                    {
                        let next = sessions.remove(position + 1);
                        sessions[position].absorb(next)?;
                    }
                } else {
                    sessions.insert(
                        position,
                        Session {
                            start: time,
                            last: time,
                            accumulators: spec.accumulators()?,
                        },
                    );
                }
            }
            // ...then feed each session its rows in one call per aggregate.
            let mut members: Vec<Vec<u32>> = vec![Vec::new(); sessions.len()];
            for &(time, row) in &rows {
                let position = sessions.partition_point(|s| s.last < time);
                members[position].push(row);
            }
            for (session, rows) in sessions.iter_mut().zip(members) {
                if rows.is_empty() {
                    continue;
                }
                let indices = UInt32Array::from(rows);
                for (i, accumulator) in session.accumulators.iter_mut().enumerate() {
                    let (values, mask) = batch.inputs_of(i, Some(&indices))?;
                    let values = match mask {
                        Some(mask) => only_selected(&values, &mask)?,
                        None => values,
                    };
                    accumulator.update_batch(&values)?;
                }
                self.earliest_end = self.earliest_end.min(session.last + gap);
            }
        }
        Ok(())
    }

    pub fn close_until(
        &mut self,
        watermark: i64,
        converter: &RowConverter,
    ) -> Result<Vec<ClosedGroups>, OperatorError> {
        if watermark < self.earliest_end {
            return Ok(Vec::new());
        }
        let gap = self.gap;
        let mut closed: Vec<SessionRow> = Vec::new();
        let mut earliest_end = i64::MAX;
        for (key, sessions) in self.sessions.iter_mut() {
            let ended = sessions.partition_point(|s| s.last + gap <= watermark);
            for mut session in sessions.drain(..ended) {
                let results = session
                    .accumulators
                    .iter_mut()
                    .map(|a| a.evaluate())
                    .collect::<Result<Vec<_>, _>>()?;
                closed.push((session.start, session.last + gap, key.clone(), results));
            }
            if let Some(first) = sessions.first() {
                earliest_end = earliest_end.min(first.last + gap);
            }
        }
        self.sessions.retain(|_, s| !s.is_empty());
        self.earliest_end = earliest_end;
        if closed.is_empty() {
            return Ok(Vec::new());
        }
        closed.sort_by(|a, b| (a.1, a.0, &a.2).cmp(&(b.1, b.0, &b.2)));
        let parser = converter.parser();
        let keys = converter.convert_rows(closed.iter().map(|c| parser.parse(&c.2)))?;
        let aggregates = closed[0].3.len();
        let results = (0..aggregates)
            .map(|i| ScalarValue::iter_to_array(closed.iter().map(|c| c.3[i].clone())))
            .collect::<Result<Vec<ArrayRef>, _>>()?;
        Ok(vec![ClosedGroups {
            starts: closed.iter().map(|c| c.0).collect(),
            ends: closed.iter().map(|c| c.1).collect(),
            keys,
            results,
        }])
    }

    /// Every open session with its partial state (merged straight back into
    /// fresh accumulators, since taking the state may consume it).
    pub fn snapshot(
        &mut self,
        spec: &AggregateSpec,
        converter: &RowConverter,
    ) -> Result<Vec<SavedGroups>, OperatorError> {
        let mut rows: Vec<SessionRow> = Vec::new();
        for (key, sessions) in self.sessions.iter_mut() {
            for session in sessions.iter_mut() {
                let mut state = Vec::new();
                let mut fresh = spec.accumulators()?;
                for (accumulator, refill) in session.accumulators.iter_mut().zip(fresh.iter_mut()) {
                    let values = accumulator.state()?;
                    let arrays = values
                        .iter()
                        .map(ScalarValue::to_array)
                        .collect::<Result<Vec<_>, _>>()?;
                    refill.merge_batch(&arrays)?;
                    state.extend(values);
                }
                session.accumulators = fresh;
                rows.push((session.start, session.last, key.clone(), state));
            }
        }
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let parser = converter.parser();
        let keys = converter.convert_rows(rows.iter().map(|r| parser.parse(&r.2)))?;
        let columns = rows[0].3.len();
        let states = (0..columns)
            .map(|i| ScalarValue::iter_to_array(rows.iter().map(|r| r.3[i].clone())))
            .collect::<Result<Vec<ArrayRef>, _>>()?;
        Ok(vec![SavedGroups {
            starts: rows.iter().map(|r| r.0).collect(),
            ends: rows.iter().map(|r| r.1).collect(),
            keys,
            states,
        }])
    }

    pub fn restore(
        &mut self,
        spec: &AggregateSpec,
        converter: &RowConverter,
        saved: &SavedGroups,
    ) -> Result<(), OperatorError> {
        let keys = converter.convert_columns(&saved.keys)?;
        let widths = spec.state_widths()?;
        for row in 0..saved.starts.len() {
            let mut accumulators = spec.accumulators()?;
            let mut offset = 0;
            for (accumulator, &width) in accumulators.iter_mut().zip(&widths) {
                let state: Vec<ArrayRef> = saved.states[offset..offset + width]
                    .iter()
                    .map(|s| s.slice(row, 1))
                    .collect();
                accumulator.merge_batch(&state)?;
                offset += width;
            }
            let session = Session {
                start: saved.starts[row],
                last: saved.ends[row],
                accumulators,
            };
            self.earliest_end = self.earliest_end.min(session.last + self.gap);
            let sessions = self
                .sessions
                .entry(keys.row(row).data().into())
                .or_default();
            let position = sessions.partition_point(|s| s.start < session.start);
            sessions.insert(position, session);
        }
        Ok(())
    }
}

/// Keep the rows a FILTER (WHERE ...) selects (null counts as not).
fn only_selected(values: &[ArrayRef], mask: &BooleanArray) -> Result<Vec<ArrayRef>, OperatorError> {
    let mask = if mask.null_count() > 0 {
        arrow::compute::prep_null_mask_filter(mask)
    } else {
        mask.clone()
    };
    Ok(values
        .iter()
        .map(|v| filter(v.as_ref(), &mask))
        .collect::<Result<Vec<_>, _>>()?)
}
