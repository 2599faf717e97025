//! The table a planned SQL transform reads: whatever micro-batch the engine
//! has put in its slot right now.
//!
//! This is how a transform is planned once and executed many times:
//! DataFusion plans the SQL against a [`StreamingTable`] over a
//! [`MicroBatchPartition`]; before each execution the engine fills the slot,
//! and the physical plan's scan streams exactly those batches.

use std::sync::{Arc, Mutex};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::execution_plan::reset_plan_states;
use datafusion::physical_plan::memory::MemoryStream;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::physical_plan::{ExecutionPlan, collect};

/// Shared handle to the batches of the current execution.
#[derive(Debug, Clone, Default)]
pub struct MicroBatchSlot(Arc<Mutex<Vec<RecordBatch>>>);

impl MicroBatchSlot {
    pub fn set(&self, batches: Vec<RecordBatch>) {
        *self.lock() = batches;
    }

    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<RecordBatch>> {
        // A poisoned lock only means another execution panicked; the data is
        // a plain Vec and stays consistent.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Debug)]
pub struct MicroBatchPartition {
    schema: SchemaRef,
    slot: MicroBatchSlot,
}

impl PartitionStream for MicroBatchPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let batches = self.slot.lock().clone();
        // try_new only fails on a schema mismatch, which the engine rules out
        // by construction (the slot is filled from the same schema).
        match MemoryStream::try_new(batches, self.schema.clone(), None) {
            Ok(stream) => Box::pin(stream),
            Err(e) => Box::pin(
                datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
                    self.schema.clone(),
                    futures::stream::once(async move { Err(e) }),
                ),
            ),
        }
    }
}

/// A table provider over `slot`, to register under the upstream's name.
pub fn micro_batch_table(
    schema: SchemaRef,
    slot: MicroBatchSlot,
) -> datafusion::error::Result<StreamingTable> {
    let partition = Arc::new(MicroBatchPartition {
        schema: schema.clone(),
        slot,
    });
    StreamingTable::try_new(schema, vec![partition])
}

/// A physical plan planned once and executed on many inputs: each run puts
/// its batches in the slot the plan's scan reads.
///
/// A hash or cross join loads its build side once per plan instance and
/// keeps it, which is a wrong answer when the build side is the micro-batch
/// or the emitted windows; plans holding one are reset before every run
/// (dynamic filters, the other cross-run state, are off in the streaming
/// session). The caller runs one execution at a time.
#[derive(Debug)]
pub struct RepeatedPlan {
    slot: MicroBatchSlot,
    plan: Arc<dyn ExecutionPlan>,
    reset: bool,
    task_ctx: Arc<TaskContext>,
}

impl RepeatedPlan {
    pub fn new(
        slot: MicroBatchSlot,
        plan: Arc<dyn ExecutionPlan>,
        task_ctx: Arc<TaskContext>,
    ) -> Self {
        let mut reset = false;
        let _ = plan.apply(|node| {
            reset |= node.name().contains("Join");
            Ok(TreeNodeRecursion::Continue)
        });
        Self {
            slot,
            plan,
            reset,
            task_ctx,
        }
    }

    /// Run the plan over `batches`.
    pub async fn run(
        &self,
        batches: Vec<RecordBatch>,
    ) -> datafusion::error::Result<Vec<RecordBatch>> {
        self.slot.set(batches);
        let plan = if self.reset {
            reset_plan_states(self.plan.clone())?
        } else {
            self.plan.clone()
        };
        let result = collect(plan, self.task_ctx.clone()).await;
        self.slot.clear();
        result
    }
}
