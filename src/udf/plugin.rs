//! A loaded plugin as a DataFusion function: scalar, or aggregate when its
//! arguments are `Vec<T>`.
//!
//! DataFusion casts arguments to the declared types during planning (the
//! signature is user-defined with `coerce_types`), and `invoke` casts again
//! defensively: a plugin must only ever see exactly its declared types (see
//! [`super::ffi`] for why a wrong one could abort the process).

use super::events::UdfCalled;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, ListArray, new_empty_array};
use arrow::compute::{cast, concat};
use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{Result as DfResult, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature,
    Volatility,
};

use super::ffi::{RunFn, call};
use super::signature::UdfSignature;

/// What every plugin function shares. Equal when loaded from the same
/// build with the same signature.
#[derive(Debug, Clone)]
pub struct PluginFunction {
    pub signature: UdfSignature,
    /// Where it was loaded from, for messages.
    pub origin: String,
    sql_signature: Signature,
    arg_types: Vec<DataType>,
    run: RunFn,
}

impl PartialEq for PluginFunction {
    fn eq(&self, other: &Self) -> bool {
        self.signature == other.signature && self.origin == other.origin
    }
}

impl Eq for PluginFunction {}

impl std::hash::Hash for PluginFunction {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.signature.hash(state);
        self.origin.hash(state);
    }
}

impl PluginFunction {
    pub fn new(signature: UdfSignature, origin: String, run: RunFn) -> Self {
        let arg_types = signature.args.iter().map(|a| a.data_type.clone()).collect();
        Self {
            signature,
            origin,
            sql_signature: Signature::user_defined(Volatility::Volatile),
            arg_types,
            run,
        }
    }

    /// The declared argument types, in order.
    fn declared(&self) -> &[DataType] {
        &self.arg_types
    }

    fn coerce(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        let declared = self.declared();
        if arg_types.len() != declared.len() {
            return plan_err!(
                "{}() takes {} arguments ({}), got {}",
                self.signature.name,
                declared.len(),
                declared
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                arg_types.len()
            );
        }
        Ok(declared.to_vec())
    }

    /// Call the plugin on arrays of equal length, cast to the declared types.
    fn invoke_arrays(&self, arrays: Vec<ArrayRef>, rows: usize) -> DfResult<ArrayRef> {
        let args = arrays
            .iter()
            .zip(self.declared())
            .map(|(a, t)| as_declared(a, t))
            .collect::<Result<Vec<_>, _>>()?;
        let started = std::time::Instant::now();
        // SAFETY: `run` is this plugin's `__run`, the arrays have exactly
        // the declared types, there is at least one (checked at load) and
        // all have `rows` rows.
        let result = unsafe { call(self.run, &args) };
        UdfCalled {
            udf: &self.signature.name,
            rows: args[0].len(),
            elapsed: started.elapsed(),
            failed: result.is_err(),
        }
        .emit();
        let result = result.map_err(|e| {
            datafusion::error::DataFusionError::Execution(format!(
                "UDF {}() from {} failed: {e}",
                self.signature.name, self.origin
            ))
        })?;
        if result.len() != rows || result.data_type() != &self.signature.ret.data_type {
            return exec_err!(
                "UDF {}() returned {} rows of {} for {rows} rows of {}",
                self.signature.name,
                result.len(),
                result.data_type(),
                self.signature.ret.data_type
            );
        }
        Ok(result)
    }
}

/// `array` as the declared type: a plugin must only see exactly that type.
fn as_declared(
    array: &ArrayRef,
    declared: &DataType,
) -> Result<ArrayRef, arrow::error::ArrowError> {
    if array.data_type() == declared {
        Ok(array.clone())
    } else {
        cast(array, declared)
    }
}

/// A scalar plugin: one call per batch.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PluginScalar(pub PluginFunction);

impl ScalarUDFImpl for PluginScalar {
    fn name(&self) -> &str {
        &self.0.signature.name
    }

    fn signature(&self) -> &Signature {
        &self.0.sql_signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        self.0.coerce(arg_types)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(self.0.signature.ret.data_type.clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let rows = args.number_rows;
        if rows == 0 {
            return Ok(ColumnarValue::Array(new_empty_array(
                &self.0.signature.ret.data_type,
            )));
        }
        let arrays = args
            .args
            .into_iter()
            .map(|a| a.into_array(rows))
            .collect::<DfResult<Vec<_>>>()?;
        self.0.invoke_arrays(arrays, rows).map(ColumnarValue::Array)
    }
}

/// An aggregate plugin (`Vec<T>` arguments): a group's values are buffered
/// and the plugin is called once per group with all of them, as Arroyo
/// does. Partial states are the buffered values as lists.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PluginAggregate(pub PluginFunction);

impl AggregateUDFImpl for PluginAggregate {
    fn name(&self) -> &str {
        &self.0.signature.name
    }

    fn signature(&self) -> &Signature {
        &self.0.sql_signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        self.0.coerce(arg_types)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(self.0.signature.ret.data_type.clone())
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        Ok(Box::new(PluginAccumulator {
            function: self.0.clone(),
            values: vec![Vec::new(); self.0.signature.args.len()],
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> DfResult<Vec<FieldRef>> {
        Ok(self
            .0
            .signature
            .args
            .iter()
            .enumerate()
            .map(|(i, a)| {
                Arc::new(Field::new(
                    format!("{}[values_{i}]", args.name),
                    DataType::List(Arc::new(Field::new_list_field(a.data_type.clone(), true))),
                    true,
                ))
            })
            .collect())
    }
}

#[derive(Debug)]
struct PluginAccumulator {
    function: PluginFunction,
    /// Per argument, the batches of values seen.
    values: Vec<Vec<ArrayRef>>,
}

impl PluginAccumulator {
    fn concatenated(&self) -> DfResult<Vec<ArrayRef>> {
        self.values
            .iter()
            .zip(self.function.declared())
            .map(|(parts, t)| {
                if parts.is_empty() {
                    return Ok(new_empty_array(t));
                }
                let refs: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
                Ok(concat(&refs)?)
            })
            .collect()
    }
}

impl Accumulator for PluginAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        for ((slot, array), t) in self
            .values
            .iter_mut()
            .zip(values)
            .zip(self.function.declared())
        {
            slot.push(as_declared(array, t)?);
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        for (slot, state) in self.values.iter_mut().zip(states) {
            let Some(lists) = state.as_any().downcast_ref::<ListArray>() else {
                return exec_err!(
                    "state of UDF {}() is not a list",
                    self.function.signature.name
                );
            };
            for row in 0..lists.len() {
                if lists.is_valid(row) {
                    slot.push(lists.value(row));
                }
            }
        }
        Ok(())
    }

    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        Ok(self
            .concatenated()?
            .into_iter()
            .map(|values| {
                ScalarValue::List(Arc::new(ListArray::from_iter_primitive_or_values(values)))
            })
            .collect())
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        let values = self.concatenated()?;
        // The plugin is called once per group, even for an empty group
        // (its function sees empty vectors).
        let result = self.function.invoke_arrays(values, 1)?;
        ScalarValue::try_from_array(&result, 0)
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self
                .values
                .iter()
                .flatten()
                .map(|a| a.get_array_memory_size())
                .sum::<usize>()
    }
}

/// A single-row list holding `values`.
trait SingleList {
    fn from_iter_primitive_or_values(values: ArrayRef) -> ListArray;
}

impl SingleList for ListArray {
    fn from_iter_primitive_or_values(values: ArrayRef) -> ListArray {
        let field = Arc::new(Field::new_list_field(values.data_type().clone(), true));
        let offsets = arrow::buffer::OffsetBuffer::from_lengths([values.len()]);
        ListArray::new(field, offsets, values, None)
    }
}
