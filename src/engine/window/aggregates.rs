//! The aggregate functions of a windowed query, and their inputs evaluated
//! for one micro-batch.
//!
//! State is DataFusion's own: a `GroupsAccumulator` per aggregate per open
//! window (one slot per key), the same vectorised code DataFusion's hash
//! aggregate uses. Aggregates without a groups implementation (percentiles,
//! DISTINCT) run through DataFusion's adapter over their row accumulator.
//! Memory is therefore partial aggregates x keys x open windows, never the
//! raw rows of a window.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, Int64Array, UInt32Array};
use arrow::compute::take;
use arrow::datatypes::FieldRef;
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, Rows, SortField};
use datafusion::logical_expr::{Accumulator, GroupsAccumulator};
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_expr::{GroupsAccumulatorAdapter, PhysicalExpr};

use crate::engine::EngineError;
use crate::engine::error::OperatorError;

/// One aggregate of the query: the function and its optional FILTER.
#[derive(Debug, Clone)]
pub struct WindowAggregate {
    pub function: Arc<AggregateFunctionExpr>,
    pub filter: Option<Arc<dyn PhysicalExpr>>,
}

/// Everything the window state needs to evaluate a batch.
#[derive(Debug, Clone)]
pub struct AggregateSpec {
    pub event_time: usize,
    pub keys: Vec<Arc<dyn PhysicalExpr>>,
    pub aggregates: Vec<WindowAggregate>,
    pub key_fields: Vec<FieldRef>,
}

/// One micro-batch, evaluated: event times, keys as comparable rows, and
/// each aggregate's arguments.
pub struct EvaluatedBatch {
    pub times: Int64Array,
    pub keys: Rows,
    pub values: Vec<Vec<ArrayRef>>,
    pub filters: Vec<Option<BooleanArray>>,
}

impl EvaluatedBatch {
    pub fn num_rows(&self) -> usize {
        self.times.len()
    }

    /// The arguments (and filter) of aggregate `i` for the rows `indices`
    /// (`None`: every row).
    pub fn inputs_of(
        &self,
        i: usize,
        indices: Option<&UInt32Array>,
    ) -> Result<(Vec<ArrayRef>, Option<BooleanArray>), OperatorError> {
        match indices {
            None => Ok((self.values[i].clone(), self.filters[i].clone())),
            Some(indices) => {
                let values = self.values[i]
                    .iter()
                    .map(|v| take(v.as_ref(), indices, None))
                    .collect::<Result<Vec<_>, _>>()?;
                let filter = match &self.filters[i] {
                    Some(f) => Some(
                        take(f, indices, None)?
                            .as_any()
                            .downcast_ref::<BooleanArray>()
                            .ok_or(OperatorError::UnexpectedType {
                                what: "filter is not boolean",
                            })?
                            .clone(),
                    ),
                    None => None,
                };
                Ok((values, filter))
            }
        }
    }
}

impl AggregateSpec {
    pub fn row_converter(&self) -> Result<RowConverter, arrow::error::ArrowError> {
        let fields = self
            .key_fields
            .iter()
            .map(|f| SortField::new(f.data_type().clone()))
            .collect();
        RowConverter::new(fields)
    }

    pub fn evaluate(
        &self,
        batch: &RecordBatch,
        converter: &RowConverter,
    ) -> Result<EvaluatedBatch, OperatorError> {
        let rows = batch.num_rows();
        let times =
            crate::common::event_times_ms(batch, batch.schema().field(self.event_time).name())?;
        let key_arrays = self
            .keys
            .iter()
            .map(|k| k.evaluate(batch).and_then(|v| v.into_array(rows)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| OperatorError::Evaluate {
                what: "GROUP BY keys".to_string(),
                source,
            })?;
        let keys = converter.convert_columns(&key_arrays)?;
        let mut values = Vec::with_capacity(self.aggregates.len());
        let mut filters = Vec::with_capacity(self.aggregates.len());
        for aggregate in &self.aggregates {
            let arguments = aggregate
                .function
                .expressions()
                .iter()
                .map(|e| e.evaluate(batch).and_then(|v| v.into_array(rows)))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|source| OperatorError::Evaluate {
                    what: format!("the arguments of {}", aggregate.function.name()),
                    source,
                })?;
            values.push(arguments);
            let filter = match &aggregate.filter {
                Some(f) => {
                    let mask = f.evaluate(batch)?.into_array(rows)?;
                    Some(
                        mask.as_any()
                            .downcast_ref::<BooleanArray>()
                            .ok_or(OperatorError::UnexpectedType {
                                what: "FILTER (WHERE ...) is not boolean",
                            })?
                            .clone(),
                    )
                }
                None => None,
            };
            filters.push(filter);
        }
        Ok(EvaluatedBatch {
            times,
            keys,
            values,
            filters,
        })
    }

    /// Fresh vectorised accumulators, one per aggregate.
    pub fn groups_accumulators(&self) -> Result<Vec<Box<dyn GroupsAccumulator>>, OperatorError> {
        self.aggregates
            .iter()
            .map(|a| {
                let function = a.function.clone();
                if function.groups_accumulator_supported() {
                    Ok(function.create_groups_accumulator()?)
                } else {
                    Ok(Box::new(GroupsAccumulatorAdapter::new(move || {
                        function.create_accumulator()
                    })) as Box<dyn GroupsAccumulator>)
                }
            })
            .collect()
    }

    /// Fresh row accumulators (session windows, which merge sessions).
    pub fn accumulators(&self) -> Result<Vec<Box<dyn Accumulator>>, OperatorError> {
        self.aggregates
            .iter()
            .map(|a| Ok(a.function.create_accumulator()?))
            .collect()
    }

    /// The state columns of every aggregate, for checkpoints.
    pub fn state_fields(&self) -> Result<Vec<FieldRef>, EngineError> {
        let mut fields = Vec::new();
        for (i, aggregate) in self.aggregates.iter().enumerate() {
            for field in aggregate.function.state_fields()? {
                fields.push(Arc::new(
                    field
                        .as_ref()
                        .clone()
                        .with_name(format!("a{i}_{}", field.name()))
                        .with_nullable(true),
                ));
            }
        }
        Ok(fields)
    }

    /// How many state columns aggregate `i` has.
    pub fn state_widths(&self) -> Result<Vec<usize>, OperatorError> {
        self.aggregates
            .iter()
            .map(|a| Ok(a.function.state_fields()?.len()))
            .collect()
    }
}
