//! The two halves of a transform: the [`TransformPlan`] a spec is planned
//! into (immutable, shared, built once) and the [`Operator`] a run owns
//! (its state, built fresh by [`TransformPlan::start`] for every run and,
//! for state kept per source partition, for every partition).

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use super::error::OperatorError;

/// A planned transform: schemas known, SQL planned. It holds no run state,
/// so one plan serves every run and every partition at once.
pub trait TransformPlan: Send + Sync {
    /// The name of the table this transform defines.
    fn name(&self) -> &str;

    /// The table it reads.
    fn input(&self) -> &str;

    fn output_schema(&self) -> SchemaRef;

    /// For a transform that keeps state between batches (windows, alert
    /// levels), the input columns its state is keyed by; `None` when it
    /// keeps none. When these include the column a partitioned source is
    /// keyed by, the state can live per source partition (see
    /// [`super::plan::StateScope`]).
    fn state_key_columns(&self) -> Option<Vec<String>> {
        None
    }

    /// A new operator with empty state.
    fn start(&self) -> Result<Box<dyn Operator>, OperatorError>;
}

/// A running transform with an explicit lifecycle, owned by the run (or by
/// one source partition of it): built by [`TransformPlan::start`], possibly
/// [`restore`](Operator::restore)d from a checkpoint, then fed batches
/// ([`process`](Operator::process)) and watermarks
/// ([`advance`](Operator::advance)); its state is saved at every checkpoint
/// ([`checkpoint`](Operator::checkpoint)); it is dropped when its partition
/// is revoked (after a checkpoint saved it) or [`close`](Operator::close)d
/// when the input really ended.
///
/// Contract for implementors:
/// - `process` is called with batches of exactly the plan's input schema,
///   in the order the source produced them; outputs have its output schema.
/// - A stateless operator returns everything derived from its input at once.
///   A stateful one (windows) may hold rows back; it must then emit them no
///   later than [`Operator::close`], or results are lost.
/// - Errors are the operator's to classify: bad data should not fail the
///   pipeline; an `Err` ([`OperatorError`]) stops it, and the runtime
///   reports it with the transform's name.
#[async_trait::async_trait]
pub trait Operator: Send {
    async fn process(&mut self, input: RecordBatch) -> Result<Vec<RecordBatch>, OperatorError>;

    /// Event time has certainly passed `watermark` (epoch ms) for the rows
    /// this operator sees: emit what is now complete.
    async fn advance(&mut self, _watermark: i64) -> Result<Vec<RecordBatch>, OperatorError> {
        Ok(Vec::new())
    }

    /// The input is exhausted: emit whatever is still held.
    async fn close(&mut self) -> Result<Vec<RecordBatch>, OperatorError> {
        Ok(Vec::new())
    }

    /// The held state as one batch, for a checkpoint (`None`: none held).
    async fn checkpoint(&mut self) -> Result<Option<RecordBatch>, OperatorError> {
        Ok(None)
    }

    /// Load state saved by [`Operator::checkpoint`] (before any input).
    async fn restore(&mut self, _state: RecordBatch) -> Result<(), OperatorError> {
        Err(OperatorError::NotStateful)
    }
}
