//! [`AlertOperator`]: the `alert:` transform. Rows in, each level's SQL
//! condition evaluated with DataFusion, escalation alerts out; the
//! hysteresis itself is [`crate::alert::AlertStates`], shared with the live sink.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Int64Array, StringArray, TimestampMillisecondArray, UInt32Array,
    UInt64Array,
};
use arrow::compute::{cast, take};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use datafusion::common::DFSchema;
use datafusion::physical_expr::PhysicalExpr;

use crate::alert::{AlertConfig, AlertStates, KeyState};
use crate::common::event_times_ms;
use crate::engine::EngineError;
use crate::engine::error::OperatorError;
use crate::engine::error::plan_err;
use crate::engine::events::AlertRaised;
use crate::engine::operator::{Operator, TransformPlan};
use crate::engine::session::streaming_session;
use crate::udf::LoadedUdf;

/// A planned `alert:` transform: its conditions and schemas, shared by
/// every operator started from it.
pub struct AlertPlan(Arc<Planned>);

struct Planned {
    pipeline: String,
    name: String,
    config: AlertConfig,
    conditions: Vec<Arc<dyn PhysicalExpr>>,
    key_index: usize,
    score_index: usize,
    output_schema: SchemaRef,
}

/// A running `alert:` transform: the plan and the alert level of every key.
pub struct AlertOperator {
    plan: Arc<Planned>,
    states: AlertStates,
}

impl AlertPlan {
    pub fn try_new(
        pipeline: &str,
        name: &str,
        config: AlertConfig,
        input_schema: SchemaRef,
        udfs: &[LoadedUdf],
    ) -> Result<Self, EngineError> {
        config
            .validate()
            .map_err(|e| EngineError::Plan(e.to_string()))?;
        let column = |what: &str, column: &str| {
            input_schema.index_of(column).map_err(|_| {
                let names: Vec<&str> = input_schema
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect();
                EngineError::Plan(format!(
                    "`{what}`: table `{}` has no column `{column}` (columns: {})",
                    config.input,
                    names.join(", ")
                ))
            })
        };
        let key_index = column("key", &config.key)?;
        let time_index = column("time", &config.time)?;
        let score_index = column("score", &config.score)?;
        if !matches!(
            input_schema.field(time_index).data_type(),
            DataType::Timestamp(..)
        ) {
            return plan_err!("`time`: column `{}` is not a timestamp", config.time);
        }

        let ctx = streaming_session();
        for udf in udfs {
            udf.register(&ctx);
        }
        let df_schema = DFSchema::try_from(input_schema.as_ref().clone())?;
        let mut conditions = Vec::new();
        for level in &config.levels {
            let fail = |e: &dyn std::fmt::Display| {
                EngineError::Plan(format!(
                    "level `{}`: `when: {}`: {e}",
                    level.name, level.when
                ))
            };
            let expr = ctx
                .parse_sql_expr(&level.when, &df_schema)
                .map_err(|e| fail(&e))?;
            let physical = ctx
                .create_physical_expr(expr, &df_schema)
                .map_err(|e| fail(&e))?;
            let data_type = physical.data_type(&input_schema).map_err(|e| fail(&e))?;
            if data_type != DataType::Boolean {
                return Err(fail(&format!("is {data_type}, not a condition")));
            }
            conditions.push(physical);
        }

        let key_field = input_schema.field(key_index);
        let score_field = input_schema.field(score_index);
        let output_schema = Arc::new(Schema::new(vec![
            Field::new(key_field.name(), key_field.data_type().clone(), true),
            Field::new(
                "alert_time",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                false,
            ),
            Field::new("level", DataType::Utf8, false),
            Field::new("previous_level", DataType::Utf8, false),
            Field::new(score_field.name(), score_field.data_type().clone(), true),
            Field::new("reason", DataType::Utf8, false),
        ]));
        Ok(Self(Arc::new(Planned {
            pipeline: pipeline.to_string(),
            name: name.to_string(),
            config,
            conditions,
            key_index,
            score_index,
            output_schema,
        })))
    }
}

impl Planned {
    fn level_name(&self, level: usize) -> &str {
        match level {
            0 => "none",
            n => &self.config.levels[n - 1].name,
        }
    }

    fn state_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("key", DataType::Utf8, false),
            Field::new("armed", DataType::UInt64, false),
            Field::new("below_since", DataType::Int64, true),
        ]))
    }
}

impl TransformPlan for AlertPlan {
    fn name(&self) -> &str {
        &self.0.name
    }

    fn input(&self) -> &str {
        &self.0.config.input
    }

    fn output_schema(&self) -> SchemaRef {
        self.0.output_schema.clone()
    }

    fn state_key_columns(&self) -> Option<Vec<String>> {
        Some(vec![self.0.config.key.clone()])
    }

    fn start(&self) -> Result<Box<dyn Operator>, OperatorError> {
        Ok(Box::new(AlertOperator {
            plan: self.0.clone(),
            states: AlertStates::default(),
        }))
    }
}

#[async_trait::async_trait]
impl Operator for AlertOperator {
    async fn process(&mut self, input: RecordBatch) -> Result<Vec<RecordBatch>, OperatorError> {
        let rows = input.num_rows();
        let keys = cast(input.column(self.plan.key_index), &DataType::Utf8)?;
        let keys =
            keys.as_any()
                .downcast_ref::<StringArray>()
                .ok_or(OperatorError::UnexpectedType {
                    what: "key as text",
                })?;
        let times = event_times_ms(&input, &self.plan.config.time)?;
        let matches = self
            .plan
            .conditions
            .iter()
            .map(|c| {
                let value = c.evaluate(&input)?.into_array(rows)?;
                Ok(value
                    .as_any()
                    .downcast_ref::<BooleanArray>()
                    .ok_or(OperatorError::UnexpectedType {
                        what: "condition is not boolean",
                    })?
                    .clone())
            })
            .collect::<Result<Vec<_>, OperatorError>>()?;
        // Each key's rows in event-time order (stable for equal times).
        let mut order: Vec<usize> = (0..rows)
            .filter(|&r| times.is_valid(r) && keys.is_valid(r))
            .collect();
        order.sort_by_key(|&r| times.value(r));

        let rearm = self.plan.config.rearm_after_ms();
        let mut escalations = Vec::new();
        {
            let states = &mut self.states;
            for row in order {
                let level = matches
                    .iter()
                    .rposition(|m| m.is_valid(row) && m.value(row))
                    .map_or(0, |i| i + 1);
                if let Some(e) =
                    states.observe(keys.value(row), row, times.value(row), level, rearm)
                {
                    escalations.push(e);
                }
            }
        }
        if escalations.is_empty() {
            return Ok(Vec::new());
        }
        for e in &escalations {
            AlertRaised {
                pipeline: &self.plan.pipeline,
                transform: &self.plan.name,
                level: self.plan.level_name(e.level),
            }
            .emit();
        }
        let indices = UInt32Array::from_iter_values(escalations.iter().map(|e| e.row as u32));
        let alert_time = TimestampMillisecondArray::from_iter_values(
            escalations.iter().map(|e| times.value(e.row)),
        )
        .with_timezone("UTC");
        let columns: Vec<ArrayRef> = vec![
            take(input.column(self.plan.key_index), &indices, None)?,
            Arc::new(alert_time),
            Arc::new(StringArray::from_iter_values(
                escalations.iter().map(|e| self.plan.level_name(e.level)),
            )),
            Arc::new(StringArray::from_iter_values(
                escalations.iter().map(|e| self.plan.level_name(e.previous)),
            )),
            take(input.column(self.plan.score_index), &indices, None)?,
            Arc::new(StringArray::from_iter_values(
                escalations
                    .iter()
                    .map(|e| self.plan.config.levels[e.level - 1].reason.as_str()),
            )),
        ];
        Ok(vec![RecordBatch::try_new(
            self.plan.output_schema.clone(),
            columns,
        )?])
    }

    async fn checkpoint(&mut self) -> Result<Option<RecordBatch>, OperatorError> {
        let states = &self.states;
        let mut keys = Vec::with_capacity(states.keys.len());
        let mut armed = Vec::with_capacity(states.keys.len());
        let mut since = Vec::with_capacity(states.keys.len());
        for (key, state) in &states.keys {
            keys.push(key.as_str());
            armed.push(state.armed as u64);
            since.push(state.below_since);
        }
        Ok(Some(RecordBatch::try_new(
            Planned::state_schema(),
            vec![
                Arc::new(StringArray::from(keys)),
                Arc::new(UInt64Array::from(armed)),
                Arc::new(Int64Array::from(since)),
            ],
        )?))
    }

    async fn restore(&mut self, saved: RecordBatch) -> Result<(), OperatorError> {
        if saved.schema() != Planned::state_schema() {
            return Err(OperatorError::AlertStateShape);
        }
        let keys = saved
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or(OperatorError::UnexpectedType { what: "keys" })?;
        let armed = saved
            .column(1)
            .as_any()
            .downcast_ref::<UInt64Array>()
            .ok_or(OperatorError::UnexpectedType { what: "levels" })?;
        let since = saved
            .column(2)
            .as_any()
            .downcast_ref::<Int64Array>()
            .ok_or(OperatorError::UnexpectedType { what: "times" })?;
        let states = &mut self.states;
        for row in 0..saved.num_rows() {
            let level = (armed.value(row) as usize).min(self.plan.config.levels.len());
            states.keys.insert(
                keys.value(row).to_string(),
                KeyState {
                    armed: level,
                    below_since: since.is_valid(row).then(|| since.value(row)),
                },
            );
        }
        Ok(())
    }
}
