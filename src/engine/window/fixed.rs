//! Tumbling and hopping windows: fixed windows aligned to the epoch, held
//! per window start, each with one accumulator slot per key.

use std::collections::BTreeMap;

use arrow::array::{ArrayRef, UInt32Array};
use arrow::row::{Row, RowConverter, Rows};
use datafusion::common::HashMap;
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};

use super::aggregates::{AggregateSpec, EvaluatedBatch};
use super::state::{ClosedGroups, SavedGroups, local_key_ids};
use crate::engine::error::OperatorError;

/// The groups of one open window.
struct WindowGroups {
    index: HashMap<Box<[u8]>, u32>,
    keys: Rows,
    accumulators: Vec<Box<dyn GroupsAccumulator>>,
}

impl WindowGroups {
    fn new(spec: &AggregateSpec, converter: &RowConverter) -> Result<Self, OperatorError> {
        Ok(Self {
            index: HashMap::default(),
            keys: converter.empty_rows(64, 1024),
            accumulators: spec.groups_accumulators()?,
        })
    }

    fn group_of(&mut self, key: Row<'_>) -> u32 {
        if let Some(&group) = self.index.get(key.as_ref()) {
            return group;
        }
        let group = self.keys.num_rows() as u32;
        self.keys.push(key);
        self.index.insert(key.as_ref().into(), group);
        group
    }

    fn len(&self) -> usize {
        self.keys.num_rows()
    }
}

/// Open tumbling or hopping windows.
pub struct FixedWindows {
    width: i64,
    slide: i64,
    windows: BTreeMap<i64, WindowGroups>,
}

impl FixedWindows {
    /// `slide == width` is a tumbling window.
    pub fn new(width: i64, slide: i64) -> Self {
        Self {
            width,
            slide,
            windows: BTreeMap::new(),
        }
    }

    pub fn open_windows(&self) -> usize {
        self.windows.len()
    }

    /// Fold a batch into every window each row belongs to.
    pub fn update(
        &mut self,
        spec: &AggregateSpec,
        converter: &RowConverter,
        batch: &EvaluatedBatch,
    ) -> Result<(), OperatorError> {
        let rows = batch.num_rows();
        let (local, first_row) = local_key_ids(&batch.keys);
        let per_row = (self.width / self.slide) as usize;

        // Rows of each window start; consecutive rows usually share windows.
        let mut members: Vec<(i64, Vec<u32>)> = Vec::new();
        let mut slot_of: HashMap<i64, usize> = HashMap::default();
        let mut cached: Option<(i64, Vec<usize>)> = None;
        for row in 0..rows {
            if arrow::array::Array::is_null(&batch.times, row) {
                continue;
            }
            let last_start = batch.times.value(row).div_euclid(self.slide) * self.slide;
            let slots = match &cached {
                Some((start, slots)) if *start == last_start => slots,
                _ => {
                    let slots = (0..per_row)
                        .map(|k| {
                            let start = last_start - k as i64 * self.slide;
                            *slot_of.entry(start).or_insert_with(|| {
                                members.push((start, Vec::new()));
                                members.len() - 1
                            })
                        })
                        .collect();
                    &cached.insert((last_start, slots)).1
                }
            };
            for &slot in slots {
                members[slot].1.push(row as u32);
            }
        }

        let mut group_of_local = vec![u32::MAX; first_row.len()];
        for (start, window_rows) in members {
            let window = match self.windows.entry(start) {
                std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::btree_map::Entry::Vacant(v) => {
                    v.insert(WindowGroups::new(spec, converter)?)
                }
            };
            group_of_local.fill(u32::MAX);
            let group_indices: Vec<usize> = window_rows
                .iter()
                .map(|&row| {
                    let id = local[row as usize] as usize;
                    if group_of_local[id] == u32::MAX {
                        group_of_local[id] = window.group_of(batch.keys.row(first_row[id]));
                    }
                    group_of_local[id] as usize
                })
                .collect();
            let indices = (window_rows.len() != rows).then(|| UInt32Array::from(window_rows));
            let groups = window.len();
            for (i, accumulator) in window.accumulators.iter_mut().enumerate() {
                let (values, filter) = batch.inputs_of(i, indices.as_ref())?;
                accumulator.update_batch(&values, &group_indices, filter.as_ref(), groups)?;
            }
        }
        Ok(())
    }

    /// Remove and evaluate every window that ends at or before `watermark`.
    pub fn close_until(
        &mut self,
        watermark: i64,
        converter: &RowConverter,
    ) -> Result<Vec<ClosedGroups>, OperatorError> {
        let mut closed = Vec::new();
        while let Some(entry) = self.windows.first_entry() {
            let start = *entry.key();
            let end = start + self.width;
            if end > watermark {
                break;
            }
            let mut window = entry.remove();
            let results = window
                .accumulators
                .iter_mut()
                .map(|a| a.evaluate(EmitTo::All))
                .collect::<Result<Vec<ArrayRef>, _>>()?;
            let groups = window.len();
            closed.push(ClosedGroups {
                starts: vec![start; groups],
                ends: vec![end; groups],
                keys: converter.convert_rows(window.keys.iter())?,
                results,
            });
        }
        Ok(closed)
    }

    /// Every open window's partial aggregates, for a checkpoint. Taking a
    /// groups accumulator's state empties it, so it is merged straight back.
    pub fn snapshot(
        &mut self,
        spec: &AggregateSpec,
        converter: &RowConverter,
    ) -> Result<Vec<SavedGroups>, OperatorError> {
        let mut saved = Vec::with_capacity(self.windows.len());
        for (&start, window) in self.windows.iter_mut() {
            let groups = window.len();
            let all: Vec<usize> = (0..groups).collect();
            let mut states = Vec::new();
            let mut fresh = spec.groups_accumulators()?;
            for (accumulator, refill) in window.accumulators.iter_mut().zip(fresh.iter_mut()) {
                let state = accumulator.state(EmitTo::All)?;
                refill.merge_batch(&state, &all, groups)?;
                states.extend(state);
            }
            window.accumulators = fresh;
            saved.push(SavedGroups {
                starts: vec![start; groups],
                ends: vec![start + self.width; groups],
                keys: converter.convert_rows(window.keys.iter())?,
                states,
            });
        }
        Ok(saved)
    }

    /// Load windows saved by [`FixedWindows::snapshot`].
    pub fn restore(
        &mut self,
        spec: &AggregateSpec,
        converter: &RowConverter,
        saved: &SavedGroups,
    ) -> Result<(), OperatorError> {
        let keys = converter.convert_columns(&saved.keys)?;
        let widths = spec.state_widths()?;
        let mut by_start: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
        for (row, &start) in saved.starts.iter().enumerate() {
            by_start.entry(start).or_default().push(row as u32);
        }
        for (start, rows) in by_start {
            let window = match self.windows.entry(start) {
                std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::btree_map::Entry::Vacant(v) => {
                    v.insert(WindowGroups::new(spec, converter)?)
                }
            };
            let group_indices: Vec<usize> = rows
                .iter()
                .map(|&r| window.group_of(keys.row(r as usize)) as usize)
                .collect();
            let indices = UInt32Array::from(rows);
            let states = saved
                .states
                .iter()
                .map(|s| arrow::compute::take(s.as_ref(), &indices, None))
                .collect::<Result<Vec<_>, _>>()?;
            let groups = window.len();
            let mut offset = 0;
            for (accumulator, width) in window.accumulators.iter_mut().zip(&widths) {
                accumulator.merge_batch(&states[offset..offset + width], &group_indices, groups)?;
                offset += width;
            }
        }
        Ok(())
    }
}
