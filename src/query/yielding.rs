//! Cancellable execution: every operator of a bounded query's plan yields
//! to the runtime after its share of batches.
//!
//! DataFusion makes its leaves and exchanges cooperative, but an operator
//! that makes many batches from data it already holds (a cross join pairs
//! every buffered row with each incoming batch) runs for seconds without
//! returning to tokio. Until it does, an aborted query keeps its threads
//! busy and the queries after it wait. Wrapped in `CooperativeExec`, each
//! operator spends tokio's task budget per batch, so the task yields every
//! few batches, and a cancelled query stops there.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::config::ConfigOptions;
use datafusion::error::Result;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::execution_plan::SchedulingType;

#[derive(Debug, Default)]
pub(super) struct YieldEveryOperator;

impl PhysicalOptimizerRule for YieldEveryOperator {
    fn name(&self) -> &str {
        "yield_every_operator"
    }

    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            if node.properties().scheduling_type == SchedulingType::Cooperative {
                return Ok(Transformed::no(node));
            }
            Ok(Transformed::yes(
                Arc::new(CooperativeExec::new(node)) as Arc<dyn ExecutionPlan>
            ))
        })
        .map(|t| t.data)
    }

    fn schema_check(&self) -> bool {
        true
    }
}
