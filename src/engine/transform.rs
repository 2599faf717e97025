//! One SQL transform -> one operator: stateless per micro-batch, or an
//! incremental window when its GROUP BY names tumble, hop or session.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use datafusion::execution::context::SQLOptions;

use super::EngineError;
use super::micro_batch::micro_batch_table;
use super::operator::TransformPlan;
use super::plan::Depth;
use super::session::streaming_session;
use super::sql_operator::{SqlPlan, reject_unbounded_state};
use super::window::{WindowParts, WindowPlan, split_windowed};
use crate::udf::LoadedUdf;

/// What a transform is planned against.
pub struct TransformInput<'a> {
    pub pipeline: &'a str,
    pub name: &'a str,
    pub sql: &'a str,
    /// The one streaming table it reads, and its schema.
    pub input: &'a str,
    pub input_schema: SchemaRef,
    /// The event-time column of the source upstream, if it declares one.
    pub event_time: Option<&'a str>,
    /// The source upstream, for error messages.
    pub source: &'a str,
    /// UDF plugins and models the SQL may call.
    pub udfs: &'a [LoadedUdf],
    /// Static tables the SQL may join.
    pub static_tables: &'a [StaticTable],
    /// How far to plan it.
    pub depth: Depth,
}

/// A static lookup table, in memory.
#[derive(Debug, Clone)]
pub struct StaticTable {
    pub name: String,
    pub table: Arc<datafusion::datasource::MemTable>,
}

/// Plan a transform. Errors are DataFusion's own messages (unknown column,
/// type mismatch) or a statement of what streaming SQL cannot do.
pub async fn plan_transform(t: TransformInput<'_>) -> Result<Arc<dyn TransformPlan>, EngineError> {
    let ctx = streaming_session();
    for udf in t.udfs {
        udf.register(&ctx);
    }
    for table in t.static_tables {
        ctx.register_table(table.name.as_str(), table.table.clone())?;
    }
    let table = micro_batch_table(t.input_schema)?;
    ctx.register_table(t.input, Arc::new(table))?;
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let frame = ctx.sql_with_options(t.sql, options).await?;
    let state = ctx.state();
    // Type coercion, so the aggregate's expressions are what will run.
    let analyzed = state.analyzer().execute_and_check(
        frame.logical_plan().clone(),
        state.config_options(),
        |_, _| {},
    )?;

    let mut aggregate_schema = None;
    let windowed = split_windowed(&analyzed, |schema| {
        aggregate_schema = Some(schema.clone());
        micro_batch_table(schema)
            .map(|table| Arc::new(table) as Arc<dyn datafusion::catalog::TableProvider>)
            .map_err(EngineError::from)
    })?;
    let Some(query) = windowed else {
        let plan = SqlPlan::from_plan(t.name, t.input, &ctx, &analyzed, t.depth).await?;
        return Ok(Arc::new(plan));
    };
    let Some(event_time) = t.event_time else {
        return Err(EngineError::Plan(format!(
            "windows need event time: declare `event_time: {{ column: ..., max_delay: ... }}` \
             on source `{}` (windows close when its watermark passes their end)",
            t.source
        )));
    };
    reject_unbounded_state(&query.pre)?;
    reject_unbounded_state(&query.post)?;
    let aggregate_schema = aggregate_schema.ok_or_else(|| {
        EngineError::Internal("windowed query without its placeholder".to_string())
    })?;
    let plan = WindowPlan::try_new(
        &ctx,
        WindowParts {
            pipeline: t.pipeline.to_string(),
            name: t.name.to_string(),
            input: t.input.to_string(),
            event_time: event_time.to_string(),
            query,
            aggregate_schema,
        },
    )
    .await?;
    Ok(Arc::new(plan))
}
