//! What the query session's own physical optimizer rules share: each
//! replaces one pattern rooted at a partial aggregate
//! (`count_from_footers.rs`, `aggregate_below_join.rs`).

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::Result;
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};

/// `plan` with each node for which `replacement` returns one replaced,
/// bottom up.
pub(super) fn replace_bottom_up(
    plan: Arc<dyn ExecutionPlan>,
    replacement: impl Fn(&Arc<dyn ExecutionPlan>) -> Result<Option<Arc<dyn ExecutionPlan>>>,
) -> Result<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| match replacement(&node)? {
        Some(replaced) => Ok(Transformed::yes(replaced)),
        None => Ok(Transformed::no(node)),
    })
    .map(|t| t.data)
}

/// `node` if it is a partial aggregate with one grouping set and at least
/// one aggregate, none with FILTER, DISTINCT or ORDER BY, each accepted by
/// `accept`.
pub(super) fn plain_partial_aggregate(
    node: &Arc<dyn ExecutionPlan>,
    accept: impl Fn(&AggregateFunctionExpr) -> bool,
) -> Option<&AggregateExec> {
    let aggregate = node.downcast_ref::<AggregateExec>()?;
    let plain = *aggregate.mode() == AggregateMode::Partial
        && aggregate.group_expr().is_single()
        && aggregate.filter_expr().iter().all(Option::is_none)
        && !aggregate.aggr_expr().is_empty()
        && aggregate
            .aggr_expr()
            .iter()
            .all(|a| !a.is_distinct() && a.order_bys().is_empty() && accept(a));
    plain.then_some(aggregate)
}
