//! Sorting a row group by its `sort_by` columns.
//!
//! Arrow's `lexsort_to_indices` compares through a dynamic comparator per
//! column and pair of rows; for the shapes a vitals dataset has (a string
//! key with few distinct values, then a timestamp) that comparison is most
//! of the sink's CPU. Here each column is first turned into order-preserving
//! integer keys (strings by the rank of their distinct value, numbers by their
//! bits), so the sort itself compares plain integers. Same order as
//! `lexsort_to_indices` with default options (ascending, nulls first);
//! other column types fall back to it.

use std::collections::HashMap;

use arrow::array::{Array, ArrayRef, AsArray, UInt32Array};
use arrow::compute::{SortColumn, lexsort_to_indices};
use arrow::datatypes::{
    DataType, Float64Type, Int32Type, Int64Type, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
};

use crate::sinks::{SinkError, SinkResultExt};

/// Indices that put the rows in ascending order of `columns`.
pub fn sort_indices(columns: &[ArrayRef]) -> Result<UInt32Array, SinkError> {
    let rows = columns.first().map_or(0, |c| c.len());
    let keys: Option<Vec<Keys>> = columns.iter().map(order_keys).collect();
    let Some(keys) = keys else {
        let sort_columns: Vec<SortColumn> = columns
            .iter()
            .map(|c| SortColumn {
                values: c.clone(),
                options: None,
            })
            .collect();
        return lexsort_to_indices(&sort_columns, None).context("sorting a row group");
    };
    let indices = match keys.split_first() {
        // A leading string column: bucket the rows by its rank (linear,
        // stable), then order each bucket by the rest, which is usually
        // already in order (readings arrive in time order per patient).
        Some((
            Keys {
                values,
                ranks: Some(buckets),
            },
            rest,
        )) => {
            let mut indices = bucket_by_rank(values, *buckets);
            let mut start = 0;
            while start < indices.len() {
                let rank = values[indices[start] as usize];
                let end = start
                    + indices[start..]
                        .iter()
                        .take_while(|&&i| values[i as usize] == rank)
                        .count();
                sort_run(&mut indices[start..end], rest);
                start = end;
            }
            indices
        }
        _ => {
            let mut indices: Vec<u32> = (0..rows as u32).collect();
            sort_run(&mut indices, &keys);
            indices
        }
    };
    Ok(UInt32Array::from(indices))
}

/// Order-preserving integer keys of one column.
struct Keys {
    values: Vec<u128>,
    /// For string columns: the number of distinct keys (ranks `0..n`).
    ranks: Option<usize>,
}

/// Counting sort by rank: stable, O(rows + ranks).
fn bucket_by_rank(values: &[u128], buckets: usize) -> Vec<u32> {
    let mut starts = vec![0usize; buckets + 1];
    for &v in values {
        starts[v as usize + 1] += 1;
    }
    for b in 1..starts.len() {
        starts[b] += starts[b - 1];
    }
    let mut indices = vec![0u32; values.len()];
    for (i, &v) in values.iter().enumerate() {
        let slot = &mut starts[v as usize];
        indices[*slot] = i as u32;
        *slot += 1;
    }
    indices
}

/// Stable-sort `indices` by `keys`, skipping the work if already in order.
fn sort_run(indices: &mut [u32], keys: &[Keys]) {
    let compare = |x: &u32, y: &u32| {
        keys.iter()
            .map(|k| k.values[*x as usize].cmp(&k.values[*y as usize]))
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    };
    if keys.is_empty() || indices.is_sorted_by(|x, y| compare(x, y).is_le()) {
        return;
    }
    indices.sort_by(compare);
}

/// Order-preserving keys (null < every value), or `None` for a type
/// without a fast path.
fn order_keys(column: &ArrayRef) -> Option<Keys> {
    /// A value sorts after null: bit 64 set, the order-preserving bits below.
    const VALID: u128 = 1 << 64;
    fn signed(values: impl Iterator<Item = Option<i64>>) -> Vec<u128> {
        // Flipping the sign bit turns i64 order into u64 order.
        values
            .map(|v| v.map_or(0, |v| VALID | u128::from((v as u64) ^ (1 << 63))))
            .collect()
    }
    let values = match column.data_type() {
        DataType::Utf8 => return Some(ranks(column.as_string::<i32>().iter())),
        DataType::LargeUtf8 => return Some(ranks(column.as_string::<i64>().iter())),
        DataType::Utf8View => return Some(ranks(column.as_string_view().iter())),
        DataType::Int32 => signed(
            column
                .as_primitive::<Int32Type>()
                .iter()
                .map(|v| v.map(i64::from)),
        ),
        DataType::Int64 => signed(column.as_primitive::<Int64Type>().iter()),
        DataType::Timestamp(unit, _) => {
            use arrow::datatypes::TimeUnit::*;
            match unit {
                Second => signed(column.as_primitive::<TimestampSecondType>().iter()),
                Millisecond => signed(column.as_primitive::<TimestampMillisecondType>().iter()),
                Microsecond => signed(column.as_primitive::<TimestampMicrosecondType>().iter()),
                Nanosecond => signed(column.as_primitive::<TimestampNanosecondType>().iter()),
            }
        }
        DataType::Float64 if column.null_count() == 0 => column
            .as_primitive::<Float64Type>()
            .values()
            .iter()
            .map(|v| {
                // IEEE total order as unsigned bits (same as f64::total_cmp).
                let bits = v.to_bits();
                VALID
                    | u128::from(if bits >> 63 == 1 {
                        !bits
                    } else {
                        bits | (1 << 63)
                    })
            })
            .collect(),
        _ => return None,
    };
    Some(Keys {
        values,
        ranks: None,
    })
}

/// Each string's rank among the distinct strings (1-based; null is 0).
/// One hash lookup per row: ids in order of first appearance, then a small
/// table maps ids to ranks.
fn ranks<'a>(values: impl Iterator<Item = Option<&'a str>>) -> Keys {
    let mut ids: HashMap<&str, u32> = HashMap::new();
    let mut first_seen: Vec<&str> = Vec::new();
    let row_ids: Vec<u32> = values
        .map(|v| match v {
            None => u32::MAX,
            Some(v) => *ids.entry(v).or_insert_with(|| {
                first_seen.push(v);
                first_seen.len() as u32 - 1
            }),
        })
        .collect();
    let mut by_value: Vec<u32> = (0..first_seen.len() as u32).collect();
    by_value.sort_unstable_by_key(|&id| first_seen[id as usize]);
    let mut rank_of = vec![0u128; first_seen.len()];
    for (rank, id) in by_value.into_iter().enumerate() {
        rank_of[id as usize] = rank as u128 + 1;
    }
    Keys {
        values: row_ids
            .into_iter()
            .map(|id| {
                if id == u32::MAX {
                    0
                } else {
                    rank_of[id as usize]
                }
            })
            .collect(),
        ranks: Some(first_seen.len() + 1),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use arrow::array::{Float64Array, Int64Array, StringArray, TimestampMillisecondArray};
    use proptest::prelude::*;

    fn reference(columns: &[ArrayRef]) -> Vec<u32> {
        let sort_columns: Vec<SortColumn> = columns
            .iter()
            .map(|c| SortColumn {
                values: c.clone(),
                options: None,
            })
            .collect();
        lexsort_to_indices(&sort_columns, None)
            .unwrap()
            .values()
            .to_vec()
    }

    /// Rows in key order must equal what Arrow's lexsort gives (ties may be
    /// ordered differently, so compare the sorted keys, not the indices).
    fn same_order(columns: &[ArrayRef]) {
        let ours = sort_indices(columns).unwrap();
        let theirs = reference(columns);
        let render = |idx: &[u32]| -> Vec<String> {
            idx.iter()
                .map(|&i| {
                    columns
                        .iter()
                        .map(|c| {
                            arrow::util::display::array_value_to_string(c, i as usize).unwrap()
                        })
                        .collect::<Vec<_>>()
                        .join("|")
                })
                .collect()
        };
        assert_eq!(render(ours.values()), render(&theirs));
    }

    proptest! {
        #[test]
        fn matches_lexsort(
            rows in proptest::collection::vec(
                (proptest::option::of("[a-c]{0,3}"), proptest::option::of(any::<i64>()), any::<f64>()),
                0..200,
            )
        ) {
            let strings: ArrayRef = Arc::new(StringArray::from(rows.iter().map(|r| r.0.clone()).collect::<Vec<_>>()));
            let ints: ArrayRef = Arc::new(Int64Array::from(rows.iter().map(|r| r.1).collect::<Vec<_>>()));
            let ts: ArrayRef = Arc::new(TimestampMillisecondArray::from(rows.iter().map(|r| r.1).collect::<Vec<_>>()).with_timezone("UTC"));
            let floats: ArrayRef = Arc::new(Float64Array::from(rows.iter().map(|r| r.2).collect::<Vec<_>>()));
            same_order(&[strings.clone(), ts]);
            same_order(&[ints, strings.clone()]);
            same_order(std::slice::from_ref(&floats));
            same_order(&[strings, floats.clone(), floats]);
        }
    }
}
