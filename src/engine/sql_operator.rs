//! A stateless SQL transform, planned once and executed per micro-batch.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::execution::TaskContext;
use datafusion::execution::context::SQLOptions;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::{ExecutionPlan, collect};

use super::micro_batch::{MicroBatchSlot, micro_batch_table};
use super::operator::Operator;
use super::session::streaming_session;

pub struct SqlOperator {
    name: String,
    input: String,
    slot: MicroBatchSlot,
    plan: Arc<dyn ExecutionPlan>,
    task_ctx: Arc<TaskContext>,
    output_schema: SchemaRef,
    /// One execution at a time: the slot is shared by the plan's scan.
    running: tokio::sync::Mutex<()>,
}

impl SqlOperator {
    /// Plan `sql`, which reads the streaming table `input` of `input_schema`.
    /// Errors are DataFusion's own messages (unknown column, type mismatch)
    /// or a statement of what a stateless transform cannot do.
    pub async fn try_new(
        name: &str,
        sql: &str,
        input: &str,
        input_schema: SchemaRef,
    ) -> Result<Self, String> {
        let ctx = streaming_session();
        let slot = MicroBatchSlot::default();
        let table = micro_batch_table(input_schema, slot.clone()).map_err(|e| e.to_string())?;
        ctx.register_table(input, Arc::new(table))
            .map_err(|e| e.to_string())?;

        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let frame = ctx
            .sql_with_options(sql, options)
            .await
            .map_err(|e| e.to_string())?;
        reject_unbounded_state(frame.logical_plan())?;
        let output_schema = Arc::new(frame.schema().as_arrow().clone());
        let plan = frame
            .create_physical_plan()
            .await
            .map_err(|e| e.to_string())?;
        Ok(Self {
            name: name.to_string(),
            input: input.to_string(),
            slot,
            plan,
            task_ctx: ctx.task_ctx(),
            output_schema,
            running: tokio::sync::Mutex::new(()),
        })
    }
}

/// Per-batch aggregation, LIMIT or DISTINCT would silently mean "per
/// micro-batch", which is never what a pipeline author wants on a stream.
fn reject_unbounded_state(plan: &LogicalPlan) -> Result<(), String> {
    let mut problem = None;
    plan.apply(|node| {
        problem = match node {
            LogicalPlan::Aggregate(_) => Some(
                "GROUP BY / aggregate functions need a window on a stream (tumble, hop or session); \
                 a stateless transform would aggregate each micro-batch separately",
            ),
            LogicalPlan::Window(_) => Some("window functions (OVER) are not supported on a stream"),
            LogicalPlan::Limit(_) => Some("LIMIT is not supported on a stream: it would apply to each micro-batch"),
            LogicalPlan::Distinct(_) => Some("DISTINCT is not supported on a stream: it would apply to each micro-batch"),
            _ => None,
        };
        Ok(if problem.is_some() { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
    })
    .map_err(|e| e.to_string())?;
    problem.map_or(Ok(()), |p| Err(p.to_string()))
}

#[async_trait::async_trait]
impl Operator for SqlOperator {
    fn name(&self) -> &str {
        &self.name
    }

    fn input(&self) -> &str {
        &self.input
    }

    fn output_schema(&self) -> SchemaRef {
        self.output_schema.clone()
    }

    async fn process(&self, input: RecordBatch) -> anyhow::Result<Vec<RecordBatch>> {
        let _guard = self.running.lock().await;
        self.slot.set(vec![input]);
        let result = collect(self.plan.clone(), self.task_ctx.clone()).await;
        self.slot.clear();
        Ok(result?)
    }
}
