//! The table a planned SQL transform reads: the micro-batch handed to the
//! execution that reads it.
//!
//! This is how a transform is planned once and executed many times:
//! DataFusion plans the SQL against a [`StreamingTable`] over a
//! [`MicroBatchPartition`]; each execution gets its own [`TaskContext`]
//! carrying its input ([`MicroBatchInput`]), and the scan streams exactly
//! those batches. The plan itself holds no input and no run state, so one
//! plan serves every run and every partition's operator at once.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::execution_plan::reset_plan_states;
use datafusion::physical_plan::memory::MemoryStream;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::physical_plan::{ExecutionPlan, collect};

/// The batches one execution reads, carried in its task context.
#[derive(Debug, Default)]
pub struct MicroBatchInput(Vec<RecordBatch>);

#[derive(Debug)]
pub struct MicroBatchPartition {
    schema: SchemaRef,
}

impl PartitionStream for MicroBatchPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let batches = ctx
            .session_config()
            .get_extension::<MicroBatchInput>()
            .map(|input| input.0.clone())
            .unwrap_or_default();
        // try_new only fails on a schema mismatch, which the engine rules out
        // by construction (the input has the planned schema).
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

/// A table provider whose scan reads each execution's [`MicroBatchInput`],
/// to register under the upstream's name.
pub fn micro_batch_table(schema: SchemaRef) -> datafusion::error::Result<StreamingTable> {
    let partition = Arc::new(MicroBatchPartition {
        schema: schema.clone(),
    });
    StreamingTable::try_new(schema, vec![partition])
}

/// A physical plan planned once and executed on many inputs, concurrently
/// if need be: each run hands its batches to the plan's scan through its
/// own task context.
///
/// Every run executes a fresh copy of the plan's nodes (`reset_plan_states`:
/// the same expressions and properties, new per-node state). DataFusion's
/// operators register new metrics on each `execute` and keep them for the
/// life of the node, so reusing one instance grew memory by ~30 KB per
/// micro-batch (100 MB over the 50M-event benchmark); and a hash or cross
/// join loads its build side once per instance, a wrong answer when the
/// build side is the micro-batch or the emitted windows. Copying the few
/// nodes costs microseconds per batch. Dynamic filters, the other cross-run
/// state, are off in the streaming session.
#[derive(Debug)]
pub struct RepeatedPlan {
    plan: Arc<dyn ExecutionPlan>,
    task_ctx: Arc<TaskContext>,
}

impl RepeatedPlan {
    pub fn new(plan: Arc<dyn ExecutionPlan>, task_ctx: Arc<TaskContext>) -> Self {
        Self { plan, task_ctx }
    }

    /// Run the plan over `batches`.
    pub async fn run(
        &self,
        batches: Vec<RecordBatch>,
    ) -> datafusion::error::Result<Vec<RecordBatch>> {
        let plan = reset_plan_states(self.plan.clone())?;
        let base = &self.task_ctx;
        // The physical plan holds its functions already; the task context
        // only needs the configuration (with this run's input) and the
        // runtime (memory pool, disk manager).
        let ctx = TaskContext::new(
            base.task_id(),
            base.session_id(),
            base.session_config()
                .clone()
                .with_extension(Arc::new(MicroBatchInput(batches))),
            HashMap::new(),
            HashMap::new(),
            HashMap::new(),
            HashMap::new(),
            base.runtime_env(),
        );
        collect(plan, Arc::new(ctx)).await
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
        let table = micro_batch_table(schema.clone()).unwrap();
        ctx.register_table("input", Arc::new(table)).unwrap();
        let frame = ctx
            .sql("SELECT v * 10 AS w FROM input WHERE v % 2 = 0")
            .await
            .unwrap();
        let plan = RepeatedPlan::new(frame.create_physical_plan().await.unwrap(), ctx.task_ctx());
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

    /// Executions of one plan running at once each read their own input:
    /// the plan is shared by every partition's operator.
    #[tokio::test]
    async fn concurrent_runs_read_their_own_input() {
        let ctx = crate::engine::session::streaming_session();
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        ctx.register_table(
            "input",
            Arc::new(micro_batch_table(schema.clone()).unwrap()),
        )
        .unwrap();
        let frame = ctx.sql("SELECT sum(v) AS s FROM input").await.unwrap();
        let plan = Arc::new(RepeatedPlan::new(
            frame.create_physical_plan().await.unwrap(),
            ctx.task_ctx(),
        ));
        let runs = (1..=8i64).map(|n| {
            let plan = plan.clone();
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(Int64Array::from_iter_values(0..n * 1000))],
            )
            .unwrap();
            tokio::spawn(async move { (n, plan.run(vec![batch]).await.unwrap()) })
        });
        for run in runs {
            let (n, out) = run.await.unwrap();
            let sum = out[0].column(0).as_primitive::<Int64Type>().value(0);
            assert_eq!(sum, (0..n * 1000).sum::<i64>(), "run {n}");
        }
    }
}
