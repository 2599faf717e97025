//! [`WindowPlan`] and [`WindowOperator`]: a windowed GROUP BY evaluated
//! incrementally.
//!
//! Per micro-batch: the pre plan (filters, projections) runs, then every row
//! is folded into the partial aggregates of the windows it belongs to. When
//! the watermark passes a window's end, its groups are evaluated once and
//! the post plan (the SELECT list, HAVING, joins with static tables) turns
//! them into output rows. Nothing of a window is emitted before it is
//! complete, and nothing after.

use std::sync::Arc;

use arrow::array::{ArrayRef, StructArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, SchemaRef};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use arrow::row::RowConverter;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::physical_expr::aggregate::LoweredAggregateBuilder;
use datafusion::physical_expr::create_physical_exprs;
use datafusion::physical_expr::expressions::Literal;
use datafusion::prelude::SessionContext;

use super::aggregates::{AggregateSpec, WindowAggregate};
use super::fixed::FixedWindows;
use super::functions::{WindowKind, window_fields};
use super::plan::WindowedQuery;
use super::session::SessionWindows;
use super::state::{ClosedGroups, SavedGroups, saved_schema};
use crate::engine::EngineError;
use crate::engine::error::{OperatorError, plan_err};
use crate::engine::events::{WindowsClosed, WindowsOpen};
use crate::engine::micro_batch::RepeatedPlan;
use crate::engine::operator::{Operator, TransformPlan};

enum Windows {
    Fixed(FixedWindows),
    Session(SessionWindows),
}

struct WindowState {
    converter: RowConverter,
    windows: Windows,
    /// The watermark the windows were last closed at.
    closed_at: i64,
}

/// A planned windowed aggregate: its plans, expressions and schemas,
/// shared by every operator started from it.
pub struct WindowPlan(Arc<Planned>);

struct Planned {
    pipeline: String,
    name: String,
    input: String,
    kind: WindowKind,
    /// Filters and projections below the aggregate, per micro-batch.
    pre_plan: RepeatedPlan,
    /// The query above the aggregate, per batch of closed windows.
    post_plan: RepeatedPlan,
    spec: AggregateSpec,
    /// GROUP BY had only the window: keys are one constant column.
    constant_key: bool,
    window_position: usize,
    /// The schema of the placeholder table the post plan reads.
    aggregate_schema: SchemaRef,
    saved_schema: SchemaRef,
    output_schema: SchemaRef,
    /// The GROUP BY columns besides the window, by name (plain columns only).
    key_columns: Vec<String>,
}

/// A running windowed aggregate: the plan and one set of open windows.
pub struct WindowOperator {
    plan: Arc<Planned>,
    state: WindowState,
}

/// What the window planner hands over.
pub struct WindowParts {
    pub pipeline: String,
    pub name: String,
    pub input: String,
    pub event_time: String,
    pub query: WindowedQuery,
    pub aggregate_schema: SchemaRef,
}

impl WindowPlan {
    pub async fn try_new(ctx: &SessionContext, parts: WindowParts) -> Result<Self, EngineError> {
        let WindowParts {
            pipeline,
            name,
            input,
            event_time,
            query,
            aggregate_schema,
        } = parts;
        let state = ctx.state();
        let pre_plan = state.create_physical_plan(&query.pre).await?;
        let post_plan = state.create_physical_plan(&query.post).await?;
        let output_schema = Arc::new(query.post.schema().as_arrow().clone());

        let pre_schema = query.pre.schema();
        let event_time_index = pre_schema
            .fields()
            .iter()
            .position(|f| f.name() == &event_time)
            .ok_or_else(|| {
                EngineError::Plan(format!(
                    "the windowed aggregate's input has no event-time column `{event_time}`: \
                     keep it in the SELECT list of any subquery that feeds the GROUP BY"
                ))
            })?;
        if !matches!(
            pre_schema.field(event_time_index).data_type(),
            DataType::Timestamp(..)
        ) {
            return plan_err!("the event-time column `{event_time}` is not a timestamp here");
        }

        let props = state.execution_props();
        let planning = PhysicalPlanningContext::default();
        let mut keys = create_physical_exprs(&query.keys, pre_schema, props, &planning)?;
        let group_count = query.keys.len() + 1;
        let mut key_fields: Vec<_> = (0..group_count)
            .filter(|&i| i != query.window_position)
            .map(|i| aggregate_schema.fields()[i].clone())
            .collect();
        let constant_key = keys.is_empty();
        if constant_key {
            keys.push(Arc::new(Literal::new(ScalarValue::Boolean(Some(true)))));
            key_fields.push(Arc::new(Field::new("__all", DataType::Boolean, false)));
        }
        let mut aggregates = Vec::with_capacity(query.aggregates.len());
        for expr in &query.aggregates {
            let lowered = LoweredAggregateBuilder::new(
                expr,
                pre_schema,
                pre_schema.as_arrow(),
                props,
                &planning,
            )
            .build()?;
            if !lowered.order_bys.is_empty() {
                return plan_err!(
                    "{expr}: ORDER BY inside an aggregate is not supported in windows"
                );
            }
            aggregates.push(WindowAggregate {
                function: lowered.aggregate,
                filter: lowered.filter,
            });
        }
        let spec = AggregateSpec {
            event_time: event_time_index,
            keys,
            aggregates,
            key_fields,
        };
        // Checked here so that starting an operator cannot fail on it.
        spec.row_converter()?;
        let saved_schema = saved_schema(&spec.key_fields, &spec.state_fields()?);
        let key_columns = query
            .keys
            .iter()
            .filter_map(|key| match key {
                datafusion::logical_expr::Expr::Column(column) => Some(column.name.clone()),
                _ => None,
            })
            .collect();
        Ok(Self(Arc::new(Planned {
            pipeline,
            name,
            input,
            kind: query.kind,
            pre_plan: RepeatedPlan::new(pre_plan, ctx.task_ctx()),
            post_plan: RepeatedPlan::new(post_plan, ctx.task_ctx()),
            spec,
            constant_key,
            window_position: query.window_position,
            aggregate_schema,
            saved_schema,
            output_schema,
            key_columns,
        })))
    }

    pub fn kind(&self) -> WindowKind {
        self.0.kind
    }
}

impl TransformPlan for WindowPlan {
    fn name(&self) -> &str {
        &self.0.name
    }

    fn input(&self) -> &str {
        &self.0.input
    }

    fn output_schema(&self) -> SchemaRef {
        self.0.output_schema.clone()
    }

    fn state_key_columns(&self) -> Option<Vec<String>> {
        Some(self.0.key_columns.clone())
    }

    fn start(&self) -> Result<Box<dyn Operator>, OperatorError> {
        let windows = match self.0.kind {
            WindowKind::Tumble { width } => Windows::Fixed(FixedWindows::new(width, width)),
            WindowKind::Hop { slide, width } => Windows::Fixed(FixedWindows::new(width, slide)),
            WindowKind::Session { gap } => Windows::Session(SessionWindows::new(gap)),
        };
        let converter = self.0.spec.row_converter()?;
        Ok(Box::new(WindowOperator {
            plan: self.0.clone(),
            state: WindowState {
                converter,
                windows,
                closed_at: i64::MIN,
            },
        }))
    }
}

impl Planned {
    /// The aggregate's output rows for closed groups, in the placeholder
    /// table's schema.
    fn aggregate_batch(&self, closed: ClosedGroups) -> Result<RecordBatch, OperatorError> {
        let window = {
            let [start, end] = [closed.starts, closed.ends].map(|v| {
                Arc::new(TimestampMillisecondArray::from(v).with_timezone("UTC")) as ArrayRef
            });
            Arc::new(StructArray::try_new(
                window_fields(),
                vec![start, end],
                None,
            )?) as ArrayRef
        };
        let mut keys = closed.keys.into_iter();
        let mut columns = Vec::with_capacity(self.aggregate_schema.fields().len());
        let group_count = if self.constant_key { 1 } else { keys.len() + 1 };
        for position in 0..group_count {
            if position == self.window_position {
                columns.push(window.clone());
            } else {
                columns.push(keys.next().ok_or(OperatorError::UnexpectedType {
                    what: "missing key column",
                })?);
            }
        }
        columns.extend(closed.results);
        RecordBatch::try_new_with_options(
            self.aggregate_schema.clone(),
            columns,
            &RecordBatchOptions::new().with_match_field_names(false),
        )
        .map_err(|source| OperatorError::Assemble {
            transform: self.name.clone(),
            source,
        })
    }

    async fn emit(&self, closed: Vec<ClosedGroups>) -> Result<Vec<RecordBatch>, OperatorError> {
        if closed.is_empty() {
            return Ok(Vec::new());
        }
        let windows = closed.len();
        let batches = closed
            .into_iter()
            .map(|c| self.aggregate_batch(c))
            .collect::<Result<Vec<_>, _>>()?;
        let groups: usize = batches.iter().map(RecordBatch::num_rows).sum();
        WindowsClosed {
            pipeline: &self.pipeline,
            transform: &self.name,
            windows,
            groups,
        }
        .emit();
        Ok(self.post_plan.run(batches).await?)
    }

    fn report_open(&self, state: &WindowState) {
        let open = match &state.windows {
            Windows::Fixed(w) => w.open_windows(),
            Windows::Session(w) => w.open_windows(),
        };
        WindowsOpen {
            pipeline: &self.pipeline,
            transform: &self.name,
            open,
        }
        .emit();
    }
}

impl WindowOperator {
    async fn close_until(&mut self, watermark: i64) -> Result<Vec<RecordBatch>, OperatorError> {
        let state = &mut self.state;
        if watermark <= state.closed_at {
            return Ok(Vec::new());
        }
        state.closed_at = watermark;
        let WindowState {
            converter, windows, ..
        } = state;
        let closed = match windows {
            Windows::Fixed(w) => w.close_until(watermark, converter)?,
            Windows::Session(w) => w.close_until(watermark, converter)?,
        };
        self.plan.report_open(&self.state);
        self.plan.emit(closed).await
    }
}

#[async_trait::async_trait]
impl Operator for WindowOperator {
    async fn process(&mut self, input: RecordBatch) -> Result<Vec<RecordBatch>, OperatorError> {
        let plan = &self.plan;
        let prepared = plan.pre_plan.run(vec![input]).await?;
        let WindowState {
            converter, windows, ..
        } = &mut self.state;
        for batch in prepared {
            if batch.num_rows() == 0 {
                continue;
            }
            let evaluated = plan.spec.evaluate(&batch, converter)?;
            match windows {
                Windows::Fixed(w) => w.update(&plan.spec, converter, &evaluated)?,
                Windows::Session(w) => w.update(&plan.spec, converter, &evaluated)?,
            }
        }
        plan.report_open(&self.state);
        Ok(Vec::new())
    }

    async fn advance(&mut self, watermark: i64) -> Result<Vec<RecordBatch>, OperatorError> {
        self.close_until(watermark).await
    }

    async fn close(&mut self) -> Result<Vec<RecordBatch>, OperatorError> {
        self.close_until(i64::MAX).await
    }

    async fn checkpoint(&mut self) -> Result<Option<RecordBatch>, OperatorError> {
        let plan = &self.plan;
        let WindowState {
            converter, windows, ..
        } = &mut self.state;
        let saved = match windows {
            Windows::Fixed(w) => w.snapshot(&plan.spec, converter)?,
            Windows::Session(w) => w.snapshot(&plan.spec, converter)?,
        };
        SavedGroups::to_batch(saved, plan.saved_schema.clone()).map(Some)
    }

    async fn restore(&mut self, saved: RecordBatch) -> Result<(), OperatorError> {
        let plan = &self.plan;
        let matches = saved.schema().fields().len() == plan.saved_schema.fields().len()
            && saved
                .schema()
                .fields()
                .iter()
                .zip(plan.saved_schema.fields())
                .all(|(a, b)| a.data_type() == b.data_type());
        if !matches {
            return Err(OperatorError::StateMismatch {
                transform: plan.name.clone(),
            });
        }
        let saved = SavedGroups::from_batch(&saved, plan.spec.key_fields.len())?;
        let WindowState {
            converter, windows, ..
        } = &mut self.state;
        match windows {
            Windows::Fixed(w) => w.restore(&plan.spec, converter, &saved)?,
            Windows::Session(w) => w.restore(&plan.spec, converter, &saved)?,
        }
        plan.report_open(&self.state);
        Ok(())
    }
}
