//! The [`Operator`] trait: the one seam between a planned spec and the
//! runtime.

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use super::error::OperatorError;

/// A step of a pipeline that turns input micro-batches into output batches.
///
/// Contract for implementors:
/// - `process` is called with batches of exactly `input_schema`, in the
///   order the source produced them; outputs must have `output_schema`.
/// - A stateless operator returns everything derived from its input at once.
///   A stateful one (windows) may hold rows back; it must then emit them no
///   later than [`Operator::finish`], or results are lost.
/// - Errors are the operator's to classify: bad data should not fail the
///   pipeline; an `Err` ([`OperatorError`]) stops it, and the runtime
///   reports it with the transform's name.
#[async_trait::async_trait]
pub trait Operator: Send + Sync {
    /// The name of the table this operator defines.
    fn name(&self) -> &str;

    /// The table it reads.
    fn input(&self) -> &str;

    fn output_schema(&self) -> SchemaRef;

    async fn process(&self, input: RecordBatch) -> Result<Vec<RecordBatch>, OperatorError>;

    /// The input is exhausted: emit whatever is still held.
    async fn finish(&self) -> Result<Vec<RecordBatch>, OperatorError> {
        Ok(Vec::new())
    }

    /// Whether the operator holds state between batches (windows), which
    /// checkpoints must save.
    fn is_stateful(&self) -> bool {
        false
    }

    /// Event time has certainly passed `watermark` (epoch ms) on the
    /// operator's source: emit what is now complete.
    async fn advance(&self, _watermark: i64) -> Result<Vec<RecordBatch>, OperatorError> {
        Ok(Vec::new())
    }

    /// The held state as one batch, for a checkpoint.
    async fn snapshot(&self) -> Result<Option<RecordBatch>, OperatorError> {
        Ok(None)
    }

    /// Load state saved by [`Operator::snapshot`] (before any input).
    async fn restore(&self, _state: RecordBatch) -> Result<(), OperatorError> {
        Err(OperatorError::NotStateful {
            transform: self.name().to_string(),
        })
    }
}
