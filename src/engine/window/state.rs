//! Shapes shared by the window kinds: groups leaving a window (closed, or
//! saved for a checkpoint), and the batch-local key ids every update uses.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array};
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use arrow::row::Rows;
use datafusion::common::HashMap;

use crate::engine::error::OperatorError;

/// Groups of finished windows: per group its window bounds, key columns
/// and aggregate results.
pub struct ClosedGroups {
    pub starts: Vec<i64>,
    pub ends: Vec<i64>,
    pub keys: Vec<ArrayRef>,
    pub results: Vec<ArrayRef>,
}

/// Groups of open windows with their partial aggregate state.
pub struct SavedGroups {
    pub starts: Vec<i64>,
    pub ends: Vec<i64>,
    pub keys: Vec<ArrayRef>,
    pub states: Vec<ArrayRef>,
}

/// Number every distinct key of a batch: per row its local id, and per id
/// the first row holding it. Keys are hashed once per row here; windows
/// then map local ids to their own groups with a plain array.
pub fn local_key_ids(keys: &Rows) -> (Vec<u32>, Vec<usize>) {
    let mut ids: HashMap<&[u8], u32> = HashMap::default();
    let mut local = Vec::with_capacity(keys.num_rows());
    let mut first_row = Vec::new();
    for (row, key) in keys.iter().enumerate() {
        let next = first_row.len() as u32;
        let id = *ids.entry(key.data()).or_insert_with(|| {
            first_row.push(row);
            next
        });
        local.push(id);
    }
    (local, first_row)
}

/// The schema of saved window state: bounds, keys, then state columns.
pub fn saved_schema(key_fields: &[FieldRef], state_fields: &[FieldRef]) -> SchemaRef {
    let mut fields: Vec<FieldRef> = vec![
        Arc::new(Field::new("__window_start", DataType::Int64, false)),
        Arc::new(Field::new("__window_end", DataType::Int64, false)),
    ];
    fields.extend(key_fields.iter().enumerate().map(|(i, f)| {
        Arc::new(
            f.as_ref()
                .clone()
                .with_name(format!("k{i}"))
                .with_nullable(true),
        )
    }));
    fields.extend(state_fields.iter().cloned());
    Arc::new(Schema::new(fields))
}

impl SavedGroups {
    /// Concatenate saved groups into one batch of `schema`.
    pub fn to_batch(
        saved: Vec<SavedGroups>,
        schema: SchemaRef,
    ) -> Result<RecordBatch, OperatorError> {
        let columns = schema.fields().len();
        let mut parts: Vec<Vec<ArrayRef>> = vec![Vec::new(); columns];
        for group in saved {
            let mut arrays: Vec<ArrayRef> = vec![
                Arc::new(Int64Array::from(group.starts)),
                Arc::new(Int64Array::from(group.ends)),
            ];
            arrays.extend(group.keys);
            arrays.extend(group.states);
            if arrays.len() != columns {
                return Err(OperatorError::StateColumns {
                    found: arrays.len(),
                    expected: columns,
                });
            }
            for (part, array) in parts.iter_mut().zip(arrays) {
                part.push(array);
            }
        }
        let arrays = parts
            .into_iter()
            .zip(schema.fields())
            .map(|(part, field)| {
                if part.is_empty() {
                    Ok(arrow::array::new_empty_array(field.data_type()))
                } else {
                    let refs: Vec<&dyn arrow::array::Array> =
                        part.iter().map(|a| a.as_ref()).collect();
                    arrow::compute::concat(&refs)
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RecordBatch::try_new_with_options(
            schema,
            arrays,
            &arrow::record_batch::RecordBatchOptions::new().with_match_field_names(false),
        )?)
    }

    /// Split a saved batch back into bounds, keys and states.
    pub fn from_batch(batch: &RecordBatch, keys: usize) -> Result<Self, OperatorError> {
        let int64 = |i: usize| -> Result<Vec<i64>, OperatorError> {
            Ok(batch
                .column(i)
                .as_any()
                .downcast_ref::<Int64Array>()
                .ok_or(OperatorError::UnexpectedType {
                    what: "window bounds of saved state are not Int64",
                })?
                .values()
                .to_vec())
        };
        if batch.num_columns() < 2 + keys {
            return Err(OperatorError::StateTooFewColumns);
        }
        Ok(Self {
            starts: int64(0)?,
            ends: int64(1)?,
            keys: batch.columns()[2..2 + keys].to_vec(),
            states: batch.columns()[2 + keys..].to_vec(),
        })
    }
}
