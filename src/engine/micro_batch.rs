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
/// Every run executes a fresh copy of the plan's nodes (`reset_plan_states`:
/// the same expressions and properties, new per-node state). DataFusion's
/// operators register new metrics on each `execute` and keep them for the
/// life of the node, so reusing one instance grew memory by ~30 KB per
/// micro-batch (100 MB over the 50M-event benchmark); and a hash or cross
/// join loads its build side once per instance, a wrong answer when the
/// build side is the micro-batch or the emitted windows. Copying the few
/// nodes costs microseconds per batch. Dynamic filters, the other cross-run
/// state, are off in the streaming session. The caller runs one execution
/// at a time.
#[derive(Debug)]
pub struct RepeatedPlan {
    slot: MicroBatchSlot,
    plan: Arc<dyn ExecutionPlan>,
    task_ctx: Arc<TaskContext>,
}

impl RepeatedPlan {
    pub fn new(
        slot: MicroBatchSlot,
        plan: Arc<dyn ExecutionPlan>,
        task_ctx: Arc<TaskContext>,
    ) -> Self {
        Self {
            slot,
            plan,
            task_ctx,
        }
    }

    /// Run the plan over `batches`.
    pub async fn run(
        &self,
        batches: Vec<RecordBatch>,
    ) -> datafusion::error::Result<Vec<RecordBatch>> {
        let plan = reset_plan_states(self.plan.clone())?;
        self.slot.set(batches);
        let result = collect(plan, self.task_ctx.clone()).await;
        self.slot.clear();
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{AsArray, Int64Array};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};

    /// Each run answers for its own batch only, and the plan kept across
    /// runs collects nothing (it used to keep every run's metrics).
    #[tokio::test]
    async fn runs_are_independent_and_leave_nothing_behind() {
        let ctx = crate::engine::session::streaming_session();
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        let slot = MicroBatchSlot::default();
        let table = micro_batch_table(schema.clone(), slot.clone()).unwrap();
        ctx.register_table("input", Arc::new(table)).unwrap();
        let frame = ctx
            .sql("SELECT v * 10 AS w FROM input WHERE v % 2 = 0")
            .await
            .unwrap();
        let plan = RepeatedPlan::new(
            slot,
            frame.create_physical_plan().await.unwrap(),
            ctx.task_ctx(),
        );
        for run in 0..50i64 {
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(Int64Array::from(vec![2 * run, 2 * run + 1]))],
            )
            .unwrap();
            let out = plan.run(vec![batch]).await.unwrap();
            let values: Vec<i64> = out
                .iter()
                .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
                .collect();
            assert_eq!(values, [20 * run], "run {run}");
        }
        let mut kept_metrics = 0;
        plan.plan
            .apply(|node| {
                kept_metrics += node.metrics().map_or(0, |m| m.iter().count());
                Ok(TreeNodeRecursion::Continue)
            })
            .unwrap();
        assert_eq!(kept_metrics, 0, "metrics accumulate in the reused plan");
    }
}
