//! Partial aggregation below a join: pre-aggregating the probe side.
//!
//! `SELECT band(p.age), count(*), avg(v.news2_score) FROM vitals v JOIN
//! patients p ON v.patient_id = p.patient_id GROUP BY 1` joins every
//! reading with its patient (a day: 2.9M probes), then evaluates the band
//! and hashes it once per reading. The aggregate's arguments come from the
//! readings only, and a patient's readings all meet the same patient rows,
//! so they can be folded per patient first: a partial aggregate grouped by
//! the join key (and the probe-side columns the grouping reads) below the
//! join, ~1,000 rows through the join instead of 2.9M, then the original
//! partial aggregate merges those states (`PartialReduce`) instead of
//! reading raw rows. The final aggregate above is unchanged.
//!
//! Exact for an inner join, whatever the multiplicity on either side: each
//! pre-aggregated state stands for its readings and meets exactly the rows
//! each of them would have met, and merging a state once per match is what
//! updating with each reading once per match would have done. Applied only
//! where that needs no further thought: a hash join, inner, equi-keys that
//! are plain columns, no join filter, no limit, no dynamic filter; a partial
//! aggregate with one grouping set, no FILTER, no DISTINCT, no ORDER BY in
//! any aggregate, only `count`, `sum`, `avg`, `min` and `max`, whose
//! arguments read the probe (right) side only. When the probe side's keys
//! barely repeat, DataFusion's partial aggregate stops grouping after its
//! probe rows (`skip_partial_aggregation_probe_*`) and passes states on.
//! Trino's `PushPartialAggregationThroughJoin` is the same idea.

use std::sync::Arc;

use datafusion::common::JoinType;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::config::ConfigOptions;
use datafusion::error::Result;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::aggregate::{AggregateExprBuilder, AggregateFunctionExpr};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::utils::collect_columns;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode, PhysicalGroupBy};
use datafusion::physical_plan::joins::HashJoinExec;
use datafusion::physical_plan::projection::ProjectionExec;

/// The aggregates whose states merge to the same answer however the rows
/// were split.
const MERGEABLE: [&str; 5] = ["count", "sum", "avg", "min", "max"];

#[derive(Debug, Default)]
pub(super) struct AggregateBelowJoin;

impl PhysicalOptimizerRule for AggregateBelowJoin {
    fn name(&self) -> &str {
        "aggregate_below_join"
    }

    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        super::rules::replace_bottom_up(plan, pushed_below)
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// `node` (a partial aggregate over a hash join) with a partial aggregate
/// pushed below the join's probe side, if it can be.
fn pushed_below(node: &Arc<dyn ExecutionPlan>) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    let Some(aggregate) =
        super::rules::plain_partial_aggregate(node, |a| MERGEABLE.contains(&a.fun().name()))
    else {
        return Ok(None);
    };
    let Some(join) = aggregate.input().downcast_ref::<HashJoinExec>() else {
        return Ok(None);
    };
    if *join.join_type() != JoinType::Inner
        || join.filter().is_some()
        || join.fetch().is_some()
        // A join-to-scan dynamic filter is built from the join's probe keys,
        // which would now index the aggregate below, not the scan.
        || !join.dynamic_expressions_produced().is_empty()
    {
        return Ok(None);
    }
    let left_len = join.left().schema().fields().len();
    let right = join.right();
    let right_schema = right.schema();
    // The join's output column i is column `full[i]` of left ++ right.
    let full: Vec<usize> = match &join.projection {
        Some(projection) => projection.iter().copied().collect(),
        None => (0..join.join_schema().fields().len()).collect(),
    };
    // Probe-side columns the partial aggregate below groups by: the join
    // keys, then those the grouping expressions read.
    let mut right_keys: Vec<usize> = Vec::new();
    for (left_key, right_key) in join.on() {
        let (Some(_), Some(right_key)) = (
            left_key.downcast_ref::<Column>(),
            right_key.downcast_ref::<Column>(),
        ) else {
            return Ok(None);
        };
        if !right_keys.contains(&right_key.index()) {
            right_keys.push(right_key.index());
        }
    }
    for (expr, _) in aggregate.group_expr().expr() {
        for column in collect_columns(expr) {
            let index = full[column.index()];
            if index >= left_len && !right_keys.contains(&(index - left_len)) {
                right_keys.push(index - left_len);
            }
        }
    }
    // Every aggregate argument must read the probe side only.
    let to_right = |expr: &Arc<dyn PhysicalExpr>| -> Result<Option<Arc<dyn PhysicalExpr>>> {
        if collect_columns(expr)
            .iter()
            .any(|c| full[c.index()] < left_len)
        {
            return Ok(None);
        }
        let remapped = Arc::clone(expr).transform(|e| {
            Ok(match e.downcast_ref::<Column>() {
                Some(c) => {
                    let index = full[c.index()] - left_len;
                    Transformed::yes(
                        Arc::new(Column::new(right_schema.field(index).name(), index)) as _,
                    )
                }
                None => Transformed::no(e),
            })
        })?;
        Ok(Some(remapped.data))
    };
    let mut below: Vec<Arc<AggregateFunctionExpr>> = Vec::new();
    for function in aggregate.aggr_expr() {
        let mut args = Vec::new();
        for arg in function.expressions() {
            match to_right(&arg)? {
                Some(arg) => args.push(arg),
                None => return Ok(None),
            }
        }
        // Built anew over the probe side's schema, under the same name (the
        // state columns are named after it), so that everything derived
        // from the argument types is derived from the side it now reads.
        let rebuilt = AggregateExprBuilder::new(Arc::new(function.fun().clone()), args)
            .schema(Arc::clone(&right_schema))
            .alias(function.name())
            .with_ignore_nulls(function.ignore_nulls())
            .build()?;
        if rebuilt.field().data_type() != function.field().data_type()
            || rebuilt.state_fields()? != function.state_fields()?
        {
            return Ok(None);
        }
        below.push(Arc::new(rebuilt));
    }

    let group_below = PhysicalGroupBy::new_single(
        right_keys
            .iter()
            .map(|&i| {
                let name = right_schema.field(i).name().to_string();
                (
                    Arc::new(Column::new(&name, i)) as Arc<dyn PhysicalExpr>,
                    name,
                )
            })
            .collect(),
    );
    let partial_below = Arc::new(AggregateExec::try_new(
        AggregateMode::Partial,
        group_below,
        below,
        vec![None; aggregate.aggr_expr().len()],
        Arc::clone(right),
        Arc::clone(&right_schema),
    )?);
    let position = |right_index: usize| {
        right_keys
            .iter()
            .position(|&k| k == right_index)
            .expect("every probe-side column read is grouped below")
    };
    let on = join
        .on()
        .iter()
        .map(|(left_key, right_key)| {
            let index = right_key
                .downcast_ref::<Column>()
                .expect("checked above")
                .index();
            let column = Arc::new(Column::new(
                right_schema.field(index).name(),
                position(index),
            )) as Arc<dyn PhysicalExpr>;
            (Arc::clone(left_key), column)
        })
        .collect();
    let new_join = join
        .builder()
        .with_new_children(vec![
            Arc::clone(join.left()),
            Arc::clone(&partial_below) as _,
        ])?
        .with_on(on)
        .with_projection(None)
        .reset_state()
        .build_exec()?;
    let joined = new_join.schema();

    // Lay the joined rows out as a partial aggregate's output: the grouping
    // values first, then every state column.
    let mut layout: Vec<(Arc<dyn PhysicalExpr>, String)> = Vec::new();
    for (expr, name) in aggregate.group_expr().expr() {
        let remapped = Arc::clone(expr).transform(|e| {
            Ok(match e.downcast_ref::<Column>() {
                Some(c) => {
                    let index = match full[c.index()] {
                        i if i < left_len => i,
                        i => left_len + position(i - left_len),
                    };
                    Transformed::yes(Arc::new(Column::new(joined.field(index).name(), index)) as _)
                }
                None => Transformed::no(e),
            })
        })?;
        layout.push((remapped.data, name.clone()));
    }
    let states = partial_below.schema().fields().len() - right_keys.len();
    for s in 0..states {
        let index = left_len + right_keys.len() + s;
        let name = joined.field(index).name().to_string();
        layout.push((Arc::new(Column::new(&name, index)) as _, name));
    }
    let laid_out = Arc::new(ProjectionExec::try_new(layout, new_join)?);
    let group_after = PhysicalGroupBy::new_single(
        aggregate
            .group_expr()
            .expr()
            .iter()
            .enumerate()
            .map(|(i, (_, name))| (Arc::new(Column::new(name, i)) as _, name.clone()))
            .collect(),
    );
    let reduce = Arc::new(AggregateExec::try_new(
        AggregateMode::PartialReduce,
        group_after,
        aggregate.aggr_expr().to_vec(),
        vec![None; aggregate.aggr_expr().len()],
        laid_out,
        aggregate.input_schema(),
    )?);
    // The states must be those the final aggregate above expects.
    let same = reduce.schema().fields().len() == aggregate.schema().fields().len()
        && reduce
            .schema()
            .fields()
            .iter()
            .zip(aggregate.schema().fields())
            .all(|(a, b)| a.name() == b.name() && a.data_type() == b.data_type());
    Ok(same.then_some(reduce as _))
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::util::pretty::pretty_format_batches;
    use datafusion::datasource::MemTable;
    use datafusion::execution::session_state::SessionStateBuilder;
    use datafusion::physical_plan::displayable;
    use datafusion::prelude::{SessionConfig, SessionContext};

    use super::*;

    /// Readings (some keys and values null) in two partitions, and patients
    /// with one id listed twice, one never read and one null; in a query
    /// session as the server makes them (`rule`), or in a plain DataFusion
    /// session with the same join settings.
    fn context(rule: bool) -> SessionContext {
        let ctx = if rule {
            crate::query::session(&crate::query::QueryLimits {
                memory: Some(64 << 20),
                threads: 2,
            })
            .unwrap()
        } else {
            let mut config = SessionConfig::new().with_target_partitions(2);
            config
                .options_mut()
                .optimizer
                .enable_join_dynamic_filter_pushdown = false;
            SessionContext::new_with_state(
                SessionStateBuilder::new()
                    .with_config(config)
                    .with_default_features()
                    .build(),
            )
        };
        let readings = Arc::new(Schema::new(vec![
            Field::new("patient_id", DataType::Utf8, true),
            Field::new("heart_rate", DataType::Int64, true),
            Field::new("ward", DataType::Utf8, false),
        ]));
        let partition = |offset: i64| {
            let rows = 400;
            RecordBatch::try_new(
                readings.clone(),
                vec![
                    Arc::new(StringArray::from_iter((0..rows).map(|i| {
                        (i % 37 != 5).then(|| format!("P{}", (i * 7 + offset) % 9))
                    }))),
                    Arc::new(Int64Array::from_iter(
                        (0..rows).map(|i| (i % 11 != 3).then_some(60 + (i * 13 + offset) % 50)),
                    )),
                    Arc::new(StringArray::from_iter_values(
                        (0..rows).map(|i| if i % 3 == 0 { "A" } else { "B" }),
                    )),
                ],
            )
            .unwrap()
        };
        let table = MemTable::try_new(
            readings.clone(),
            vec![vec![partition(0)], vec![partition(4)]],
        )
        .unwrap();
        ctx.register_table("readings", Arc::new(table)).unwrap();
        let patients = Arc::new(Schema::new(vec![
            Field::new("patient_id", DataType::Utf8, true),
            Field::new("age", DataType::Int64, false),
        ]));
        let ids = ["P0", "P1", "P2", "P3", "P3", "P5", "P6", "P7", "P8", "P42"];
        let batch = RecordBatch::try_new(
            patients.clone(),
            vec![
                Arc::new(StringArray::from_iter(
                    ids.iter().map(|s| Some(*s)).chain([None]),
                )),
                Arc::new(Int64Array::from_iter_values(
                    (0..ids.len() as i64 + 1).map(|i| 20 + i * 9),
                )),
            ],
        )
        .unwrap();
        let table = MemTable::try_new(patients, vec![vec![batch]]).unwrap();
        ctx.register_table("patients", Arc::new(table)).unwrap();
        ctx
    }

    /// The answer as a table, and the physical plan.
    async fn run(ctx: &SessionContext, sql: &str) -> (String, String) {
        let frame = ctx.sql(sql).await.unwrap();
        let plan = frame.clone().create_physical_plan().await.unwrap();
        let batches = frame.collect().await.unwrap();
        (
            pretty_format_batches(&batches).unwrap().to_string(),
            displayable(plan.as_ref()).indent(true).to_string(),
        )
    }

    const PUSHED: [&str; 6] = [
        // The benchmark's shape: a build-side expression as the group.
        "SELECT CASE WHEN p.age < 40 THEN 'young' WHEN p.age < 70 THEN 'middle' ELSE 'old' END AS band, \
         count(*), count(r.heart_rate), sum(r.heart_rate), avg(r.heart_rate), min(r.heart_rate), max(r.heart_rate) \
         FROM readings r JOIN patients p ON r.patient_id = p.patient_id GROUP BY 1 ORDER BY 1",
        // Grouped by a probe-side column that is not the key.
        "SELECT r.ward, count(*), sum(r.heart_rate) FROM readings r JOIN patients p \
         ON r.patient_id = p.patient_id GROUP BY r.ward ORDER BY 1",
        // Both sides in the grouping; the key itself.
        "SELECT r.patient_id, r.ward, p.age, count(*), avg(r.heart_rate) FROM readings r JOIN patients p \
         ON r.patient_id = p.patient_id GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        // An expression of a probe-side column as an argument.
        "SELECT p.age > 50 AS older, sum(r.heart_rate * 2 + 1), max(r.heart_rate - 60) FROM readings r \
         JOIN patients p ON r.patient_id = p.patient_id GROUP BY 1 ORDER BY 1",
        // No grouping at all.
        "SELECT count(*), sum(r.heart_rate), avg(r.heart_rate) FROM readings r JOIN patients p \
         ON r.patient_id = p.patient_id",
        // No row joins.
        "SELECT p.age, count(*), sum(r.heart_rate) FROM readings r JOIN patients p \
         ON r.patient_id = p.patient_id WHERE p.patient_id = 'P42' GROUP BY 1 ORDER BY 1",
    ];

    #[tokio::test]
    async fn pushed_aggregates_answer_as_the_join_would() {
        let (with, without) = (context(true), context(false));
        for sql in PUSHED {
            let (expected, plain) = run(&without, sql).await;
            let (answer, plan) = run(&with, sql).await;
            assert!(!plain.contains("PartialReduce"), "{plain}");
            assert!(
                plan.contains("mode=PartialReduce"),
                "not pushed: {sql}\n{plan}"
            );
            assert_eq!(answer, expected, "{sql}\n{plan}");
        }
    }

    #[tokio::test]
    async fn aggregates_that_read_the_build_side_or_are_not_mergeable_stay_above() {
        let ctx = context(true);
        for sql in [
            "SELECT r.ward, sum(p.age) FROM readings r JOIN patients p ON r.patient_id = p.patient_id GROUP BY 1 ORDER BY 1",
            "SELECT r.ward, count(DISTINCT r.heart_rate) FROM readings r JOIN patients p \
             ON r.patient_id = p.patient_id GROUP BY 1 ORDER BY 1",
            "SELECT r.ward, count(*) FILTER (WHERE p.age > 40) FROM readings r JOIN patients p \
             ON r.patient_id = p.patient_id GROUP BY 1 ORDER BY 1",
            "SELECT r.ward, count(*) FROM readings r LEFT JOIN patients p \
             ON r.patient_id = p.patient_id GROUP BY 1 ORDER BY 1",
            "SELECT r.ward, count(*) FROM readings r JOIN patients p \
             ON r.patient_id = p.patient_id AND r.heart_rate > p.age GROUP BY 1 ORDER BY 1",
        ] {
            let (_, plan) = run(&ctx, sql).await;
            assert!(!plan.contains("PartialReduce"), "{sql}\n{plan}");
            let (expected, _) = run(&context(false), sql).await;
            assert_eq!(run(&ctx, sql).await.0, expected, "{sql}");
        }
    }
}
