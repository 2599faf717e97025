//! A stateless SQL transform, planned once and executed per micro-batch.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;

use super::EngineError;
use super::error::OperatorError;
use super::micro_batch::RepeatedPlan;
use super::operator::{Operator, TransformPlan};
use super::plan::Depth;

/// A stateless SQL transform, planned.
pub struct SqlPlan {
    name: String,
    input: String,
    /// `None` when planned for its output schema only
    /// ([`Depth::Schemas`]): readers of the stored tables never run it.
    plan: Option<Arc<RepeatedPlan>>,
    output_schema: SchemaRef,
}

impl SqlPlan {
    /// Build from a planned query over the streaming table `input`, to
    /// `depth`. Errors state what a stateless transform cannot do.
    pub async fn from_plan(
        name: &str,
        input: &str,
        ctx: &SessionContext,
        logical: &LogicalPlan,
        depth: Depth,
    ) -> Result<Self, EngineError> {
        reject_unbounded_state(logical)?;
        let plan = match depth {
            Depth::Run => {
                let plan = ctx.state().create_physical_plan(logical).await?;
                Some(Arc::new(RepeatedPlan::new(plan, ctx.task_ctx())))
            }
            Depth::Schemas => None,
        };
        Ok(Self {
            name: name.to_string(),
            input: input.to_string(),
            plan,
            output_schema: Arc::new(logical.schema().as_arrow().clone()),
        })
    }
}

/// Per-batch aggregation, LIMIT or DISTINCT would silently mean "per
/// micro-batch", which is never what a pipeline author wants on a stream.
pub(crate) fn reject_unbounded_state(plan: &LogicalPlan) -> Result<(), EngineError> {
    let mut problem = None;
    plan.apply(|node| {
        problem = match node {
            LogicalPlan::Aggregate(_) => Some(
                "GROUP BY / aggregate functions need a window on a stream \
                 (GROUP BY ..., tumble(interval '1 minute') or hop(...) or session(...)); \
                 without one they would aggregate each micro-batch separately",
            ),
            LogicalPlan::Window(_) => Some("window functions (OVER) are not supported on a stream"),
            LogicalPlan::Limit(_) => {
                Some("LIMIT is not supported on a stream: it would apply to each micro-batch")
            }
            LogicalPlan::Distinct(_) => {
                Some("DISTINCT is not supported on a stream: it would apply to each micro-batch")
            }
            _ => None,
        };
        Ok(if problem.is_some() {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    })?;
    problem.map_or(Ok(()), |p| Err(EngineError::Plan(p.to_string())))
}

impl TransformPlan for SqlPlan {
    fn name(&self) -> &str {
        &self.name
    }

    fn input(&self) -> &str {
        &self.input
    }

    fn output_schema(&self) -> SchemaRef {
        self.output_schema.clone()
    }

    fn start(&self) -> Result<Box<dyn Operator>, OperatorError> {
        let plan = self.plan.clone().ok_or_else(|| OperatorError::SchemaOnly {
            transform: self.name.clone(),
        })?;
        Ok(Box::new(SqlOperator(plan)))
    }
}

/// A running stateless SQL transform: the shared plan, run per batch.
pub struct SqlOperator(Arc<RepeatedPlan>);

#[async_trait::async_trait]
impl Operator for SqlOperator {
    async fn process(&mut self, input: RecordBatch) -> Result<Vec<RecordBatch>, OperatorError> {
        Ok(self.0.run(vec![input]).await?)
    }
}
