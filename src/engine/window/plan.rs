//! Splitting a windowed query into the three parts the window operator runs.
//!
//! DataFusion plans the SQL as usual (the window functions are registered,
//! so names and types resolve). The plan then has exactly one `Aggregate`
//! whose GROUP BY holds a window call. Everything below it (scan, filters,
//! projections) is stateless and runs on each micro-batch: the *pre* plan.
//! The aggregate itself is what the operator computes incrementally, window
//! by window. Everything above it (projections, HAVING, joins with static
//! tables) runs on each batch of emitted windows: the *post* plan, which
//! reads a placeholder table with exactly the aggregate's output schema.

use std::sync::Arc;

use datafusion::catalog::TableProvider;
use datafusion::catalog::default_table_source::provider_as_source;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchemaRef};
use datafusion::logical_expr::{Aggregate, Expr, GroupingSet, LogicalPlan, LogicalPlanBuilder};

use super::functions::{WindowKind, is_window_call, window_kind};
use crate::engine::EngineError;
use crate::engine::error::{internal_err, plan_err};

/// Name of the placeholder table the post plan reads.
pub const WINDOWS_TABLE: &str = "__vitalflow_windows";

/// A windowed query, taken apart.
#[derive(Debug)]
pub struct WindowedQuery {
    pub kind: WindowKind,
    /// Input of the aggregate: runs per micro-batch.
    pub pre: LogicalPlan,
    /// Where the window column sits among the aggregate's GROUP BY keys.
    pub window_position: usize,
    /// The other GROUP BY keys, in order.
    pub keys: Vec<Expr>,
    /// The aggregate expressions, in order.
    pub aggregates: Vec<Expr>,
    /// The aggregate's output schema (GROUP BY keys, then aggregates).
    pub aggregate_schema: DFSchemaRef,
    /// The query above the aggregate, reading [`WINDOWS_TABLE`].
    pub post: LogicalPlan,
}

/// Find the windowed aggregate of `plan`; `Ok(None)` when there is none.
/// `placeholder` builds the table the post plan reads, given its schema.
pub fn split_windowed(
    plan: &LogicalPlan,
    placeholder: impl FnOnce(arrow::datatypes::SchemaRef) -> Result<Arc<dyn TableProvider>, EngineError>,
) -> Result<Option<WindowedQuery>, EngineError> {
    let mut aggregates: Vec<Aggregate> = Vec::new();
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::Aggregate(aggregate) = node {
            aggregates.push(aggregate.clone());
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    let windowed: Vec<&Aggregate> = aggregates
        .iter()
        .filter(|a| a.group_expr.iter().any(is_window_call))
        .collect();
    let aggregate = match (windowed.len(), aggregates.len()) {
        (0, _) => {
            if contains_window_call(plan)? {
                return plan_err!(
                    "tumble(), hop() and session() only work as a GROUP BY key of an aggregate"
                );
            }
            return Ok(None);
        }
        (1, 1) => windowed[0].clone(),
        _ => {
            return plan_err!(
                "a transform may hold one aggregate, and it must be windowed; \
                 chain transforms to aggregate twice"
            );
        }
    };

    if aggregate.group_expr.iter().any(|e| {
        matches!(
            e,
            Expr::GroupingSet(
                GroupingSet::Rollup(_) | GroupingSet::Cube(_) | GroupingSet::GroupingSets(_)
            )
        )
    }) {
        return plan_err!(
            "ROLLUP, CUBE and GROUPING SETS are not supported in windowed aggregates"
        );
    }
    let mut kind = None;
    let mut window_position = 0;
    let mut keys = Vec::new();
    for (position, expr) in aggregate.group_expr.iter().enumerate() {
        match window_kind(expr)? {
            Some(found) if kind.is_none() => {
                kind = Some(found);
                window_position = position;
            }
            Some(_) => {
                return plan_err!("GROUP BY may name only one window (tumble, hop or session)");
            }
            None => keys.push(expr.clone()),
        }
    }
    let Some(kind) = kind else {
        return internal_err!("windowed aggregate without a window");
    };
    let pre = aggregate.input.as_ref().clone();
    if contains_window_call(&pre)? {
        return plan_err!("window functions may appear only in the GROUP BY of the aggregate");
    }

    // The post plan: the same query with the aggregate replaced by a scan of
    // the emitted windows, columns renamed back to the aggregate's names.
    let schema = aggregate.schema.clone();
    let placeholder_fields: Vec<arrow::datatypes::Field> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| f.as_ref().clone().with_name(format!("c{i}")))
        .collect();
    let provider = placeholder(Arc::new(arrow::datatypes::Schema::new(placeholder_fields)))?;
    let renamed: Vec<Expr> = schema
        .iter()
        .enumerate()
        .map(|(i, (qualifier, field))| {
            Expr::Column(Column::new(Some(WINDOWS_TABLE), format!("c{i}")))
                .alias_qualified(qualifier.cloned(), field.name())
        })
        .collect();
    let replacement = LogicalPlanBuilder::scan(WINDOWS_TABLE, provider_as_source(provider), None)
        .and_then(|b| b.project(renamed))
        .and_then(|b| b.build())?;
    let post = plan
        .clone()
        .transform_up(|node| {
            Ok(match node {
                LogicalPlan::Aggregate(_) => Transformed::yes(replacement.clone()),
                other => Transformed::no(other),
            })
        })?
        .data;
    if contains_window_call(&post)? {
        return plan_err!("window functions may appear only in the GROUP BY of the aggregate");
    }

    Ok(Some(WindowedQuery {
        kind,
        pre,
        window_position,
        keys,
        aggregates: aggregate.aggr_expr.clone(),
        aggregate_schema: schema,
        post,
    }))
}

fn contains_window_call(plan: &LogicalPlan) -> Result<bool, EngineError> {
    let mut found = false;
    plan.apply_with_subqueries(|node| {
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                found |= is_window_call(e);
                Ok(if found {
                    TreeNodeRecursion::Stop
                } else {
                    TreeNodeRecursion::Continue
                })
            })
        })?;
        Ok(if found {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    })?;
    Ok(found)
}
