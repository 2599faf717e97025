//! Spec -> planned pipeline: every SQL transform planned against the schemas
//! of the tables it reads, in dependency order, and every sink checked
//! against the schema of its input. `vitalflow validate` is exactly this.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use indexmap::IndexMap;

use super::operator::TransformPlan;
use super::session::{streaming_session, streaming_session_config};
use super::transform::StaticTable;
use super::transform::{TransformInput, plan_transform};
use crate::sources::{dead_letter_table, late_events_table};
use crate::spec::{PipelineSpec, SpecError, TransformSpec};
use crate::udf::LoadedUdf;

/// A pipeline ready to run: schemas known, SQL planned. It holds no run
/// state: every run starts its own operators from it.
pub struct PlannedPipeline {
    pub spec: PipelineSpec,
    /// Every table (sources, then transforms in dependency order) and its schema.
    pub tables: IndexMap<String, SchemaRef>,
    /// Transforms in dependency order.
    pub transforms: Vec<PlannedTransform>,
}

/// One planned transform and where its state lives.
pub struct PlannedTransform {
    pub plan: Arc<dyn TransformPlan>,
    pub scope: StateScope,
    /// The index in `spec.sources` of the source whose event time the
    /// transform's input carries: its watermark drives the windows.
    pub event_time_source: Option<usize>,
    /// The source its input comes from.
    pub source: usize,
}

impl PlannedTransform {
    pub fn name(&self) -> &str {
        self.plan.name()
    }

    pub fn input(&self) -> &str {
        self.plan.input()
    }
}

/// Where a transform keeps its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateScope {
    /// It keeps none.
    Stateless,
    /// One state per partition of its source: the state is keyed by the
    /// column the source's messages are keyed by (the source's `key:`), so
    /// every key lives in one partition, and the state moves with the
    /// partition when another instance takes it over.
    Partition,
    /// One state for the whole run: the state spans partitions (e.g. a
    /// ward-wide window), so it stays with the instance.
    Instance,
}

impl PlannedPipeline {
    pub fn schema_of(&self, table: &str) -> Option<&SchemaRef> {
        self.tables.get(table)
    }

    /// Whether any transform keeps state per source partition: the engine
    /// then runs each source batch partition by partition.
    pub fn has_partition_state(&self) -> bool {
        self.transforms
            .iter()
            .any(|t| t.scope == StateScope::Partition)
    }

    /// The planned transform called `name`.
    pub fn transform(&self, name: &str) -> Option<&PlannedTransform> {
        self.transforms.iter().find(|t| t.name() == name)
    }
}

/// How far a pipeline is planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Everything a run needs.
    Run,
    /// Every table's schema, for readers of what the pipeline stores
    /// (`vitalflow query`, the server's `/api/query`): stateless SQL transforms get no physical plan
    /// (DataFusion's optimizer and physical planner were ~15% of a
    /// one-shot query's CPU, `perf record`), so they cannot start. Every
    /// check of the spec still runs; the schemas are those of [`Depth::Run`]
    /// (test: `schemas_only_planning_gives_the_schemas_of_a_full_plan`).
    Schemas,
}

/// Plan `spec`. Fails with a [`SpecError`] naming the transform or sink.
pub async fn plan(spec: PipelineSpec) -> Result<PlannedPipeline, SpecError> {
    plan_to(spec, Depth::Run).await
}

/// Plan `spec` to `depth`.
pub async fn plan_to(spec: PipelineSpec, depth: Depth) -> Result<PlannedPipeline, SpecError> {
    let mut tables: IndexMap<String, SchemaRef> = IndexMap::new();
    // Per table: the source it comes from, and whether it carries that
    // source's event time (dead-letter and late tables do not).
    let mut source_of: HashMap<String, (usize, bool)> = HashMap::new();
    // Tables whose rows, processed per source partition, stay within one
    // partition: the source itself (when keyed) and what is derived from
    // it by stateless or per-partition transforms.
    let mut per_partition: HashSet<String> = HashSet::new();
    for (index, source) in spec.sources.iter().enumerate() {
        tables.insert(source.name.clone(), source.config.schema());
        let timed = source.config.event_time().is_some();
        source_of.insert(source.name.clone(), (index, timed));
        if source.config.partition_key().is_some() {
            per_partition.insert(source.name.clone());
        }
        if let Some(schema) = source.config.dead_letter_schema() {
            tables.insert(dead_letter_table(&source.name), schema);
            source_of.insert(dead_letter_table(&source.name), (index, false));
        }
        if timed {
            tables.insert(late_events_table(&source.name), source.config.schema());
            source_of.insert(late_events_table(&source.name), (index, false));
        }
    }

    let mut udfs = load_udfs(&spec).await?;
    udfs.extend(load_models(&spec, &udfs)?);
    let static_tables = load_static_tables(&spec).await?;
    let ordered = dependency_order(&spec)?;
    let mut transforms: Vec<PlannedTransform> = Vec::new();
    for (transform, input) in ordered {
        let input_schema = tables.get(&input).cloned().ok_or_else(|| {
            sql_error(
                &spec,
                transform,
                format!("internal: table `{input}` planned out of order"),
            )
        })?;
        let (source_index, timed) = source_of.get(&input).copied().ok_or_else(|| {
            sql_error(
                &spec,
                transform,
                format!("internal: table `{input}` has no source"),
            )
        })?;
        let source = &spec.sources[source_index];
        // An alert's output carries no event time (its rows are alerts).
        let (plan, timed): (Arc<dyn TransformPlan>, bool) = match &transform.alert {
            Some(alert) => {
                let plan = crate::engine::alert::AlertPlan::try_new(
                    &spec.name,
                    &transform.name,
                    alert.clone(),
                    input_schema,
                    &udfs,
                )
                .map_err(|message| sql_error(&spec, transform, message.to_string()))?;
                (Arc::new(plan), false)
            }
            None => {
                let plan = plan_transform(TransformInput {
                    pipeline: &spec.name,
                    name: &transform.name,
                    sql: &transform.sql,
                    input: &input,
                    input_schema,
                    event_time: source
                        .config
                        .event_time()
                        .filter(|_| timed)
                        .map(|e| e.column.as_str()),
                    source: &source.name,
                    udfs: &udfs,
                    static_tables: &static_tables,
                    depth,
                })
                .await
                .map_err(|message| sql_error(&spec, transform, message.to_string()))?;
                (plan, timed)
            }
        };
        source_of.insert(transform.name.clone(), (source_index, timed));
        tables.insert(transform.name.clone(), plan.output_schema());
        let scope = state_scope(&spec, source_index, &input, &per_partition, plan.as_ref());
        if scope != StateScope::Instance && per_partition.contains(&input) {
            per_partition.insert(transform.name.clone());
        }
        transforms.push(PlannedTransform {
            plan,
            scope,
            event_time_source: timed.then_some(source_index),
            source: source_index,
        });
    }

    for sink in &spec.sinks {
        let schema = tables.get(&sink.input).ok_or_else(|| {
            SpecError::invalid(
                &spec.path,
                format!("sinks.{}.input", sink.name),
                sink.line,
                format!("table `{}` does not exist", sink.input),
            )
        })?;
        sink.config.check_schema(schema).map_err(|message| {
            SpecError::invalid(
                &spec.path,
                format!("sinks.{}", sink.name),
                sink.line,
                message,
            )
        })?;
    }

    check_dead_letters_are_kept(&spec, &transforms)?;

    Ok(PlannedPipeline {
        spec,
        tables,
        transforms,
    })
}

/// Where `plan`'s state lives: per partition when its input stays within
/// one partition of a keyed source and its state is keyed by that key
/// column; per instance otherwise (logged, as it does not move with the
/// partitions).
fn state_scope(
    spec: &PipelineSpec,
    source_index: usize,
    input: &str,
    per_partition: &HashSet<String>,
    plan: &dyn TransformPlan,
) -> StateScope {
    let Some(keys) = plan.state_key_columns() else {
        return StateScope::Stateless;
    };
    let source = &spec.sources[source_index];
    let Some(partition_key) = source.config.partition_key() else {
        return StateScope::Instance;
    };
    if per_partition.contains(input) && keys.iter().any(|k| k == partition_key) {
        return StateScope::Partition;
    }
    tracing::warn!(
        pipeline = %spec.name,
        transform = %plan.name(),
        source = %source.name,
        key = %partition_key,
        "the state of this transform is not keyed by its source's `key:` column, so it is kept per \
         instance: it does not move with the partitions when instances share the group"
    );
    StateScope::Instance
}

/// Load every model the spec declares as a SQL function.
fn load_models(spec: &PipelineSpec, udfs: &[LoadedUdf]) -> Result<Vec<LoadedUdf>, SpecError> {
    let mut loaded = Vec::new();
    for model in &spec.models {
        let key = format!("models.{}", model.name);
        let risk = match &model.sidecar {
            Some(sidecar) => crate::models::RiskModel::load_with_sidecar(&model.path, sidecar),
            None => crate::models::RiskModel::load(&model.path),
        }
        .map_err(|e| SpecError::invalid(&spec.path, &key, model.line, e.to_string()))?;
        if udfs.iter().any(|u| u.name() == model.name) {
            return Err(SpecError::invalid(
                &spec.path,
                &key,
                model.line,
                format!("a UDF named `{}` is already loaded", model.name),
            ));
        }
        let function =
            crate::models::ModelFunction::new(&model.name, Arc::new(risk), model.runtime);
        loaded.push(LoadedUdf::Scalar(Arc::new(
            datafusion::logical_expr::ScalarUDF::new_from_impl(function),
        )));
    }
    Ok(loaded)
}

/// Read every static table once, into memory: a join with it then costs
/// no I/O per micro-batch or per emitted window.
async fn load_static_tables(spec: &PipelineSpec) -> Result<Vec<StaticTable>, SpecError> {
    if spec.tables.is_empty() {
        // No session to build (~1 ms of a `vitalflow query`'s start-up).
        return Ok(Vec::new());
    }
    let ctx = streaming_session();
    let mut loaded = Vec::new();
    for table in &spec.tables {
        let key = format!("tables.{}", table.name);
        let fail = |message: String| SpecError::invalid(&spec.path, &key, table.line, message);
        let path = table.path.display().to_string();
        let frame = if path.ends_with(".csv") {
            ctx.read_csv(&path, datafusion::prelude::CsvReadOptions::new())
                .await
        } else if path.ends_with(".parquet") || table.path.is_dir() {
            ctx.read_parquet(&path, datafusion::prelude::ParquetReadOptions::default())
                .await
        } else {
            return Err(fail(format!(
                "{path}: a static table is a .csv file or a .parquet file or directory"
            )));
        }
        .map_err(|e| fail(format!("reading {path}: {e}")))?;
        let schema = Arc::new(frame.schema().as_arrow().clone());
        let batches = frame
            .collect()
            .await
            .map_err(|e| fail(format!("reading {path}: {e}")))?;
        let memory = datafusion::datasource::MemTable::try_new(schema, vec![batches])
            .map_err(|e| fail(e.to_string()))?;
        loaded.push(StaticTable {
            name: table.name.clone(),
            table: Arc::new(memory),
        });
    }
    Ok(loaded)
}

/// Build (if stale) and load every UDF plugin the spec lists.
async fn load_udfs(spec: &PipelineSpec) -> Result<Vec<LoadedUdf>, SpecError> {
    let mut loaded: Vec<LoadedUdf> = Vec::new();
    for (index, udf) in spec.udfs.iter().enumerate() {
        let dir = udf.dir.clone();
        let result = tokio::task::spawn_blocking(move || crate::udf::load_plugin(&dir))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
        let plugin = result.map_err(|message| {
            SpecError::invalid(&spec.path, format!("udfs[{index}]"), udf.line, message)
        })?;
        if loaded.iter().any(|l| l.name() == plugin.name()) {
            return Err(SpecError::invalid(
                &spec.path,
                format!("udfs[{index}]"),
                udf.line,
                format!("a UDF named `{}` is already loaded", plugin.name()),
            ));
        }
        loaded.push(plugin);
    }
    Ok(loaded)
}

/// Rejected records must go somewhere: a source's dead-letter table has to
/// be read by a sink or a transform, or records would vanish silently.
fn check_dead_letters_are_kept(
    spec: &PipelineSpec,
    operators: &[PlannedTransform],
) -> Result<(), SpecError> {
    for source in &spec.sources {
        let read = |table: &str| {
            spec.sinks.iter().any(|s| s.input == table)
                || operators.iter().any(|o| o.input() == table)
        };
        if source.config.dead_letter_schema().is_some() {
            let table = dead_letter_table(&source.name);
            if !read(&table) {
                return Err(SpecError::invalid(
                    &spec.path,
                    format!("sources.{}", source.name),
                    source.line,
                    format!(
                        "records this source rejects go to table `{table}`, but nothing reads it: \
                         add a sink with `input: {table}` (Parquet or Kafka) so that no record is dropped silently"
                    ),
                ));
            }
        }
        if source.config.event_time().is_some() {
            let table = late_events_table(&source.name);
            if !read(&table) {
                return Err(SpecError::invalid(
                    &spec.path,
                    format!("sources.{}.event_time", source.name),
                    source.line,
                    format!(
                        "rows arriving behind the watermark go to table `{table}`, but nothing reads it: \
                         add a sink with `input: {table}` so that late readings are kept, not dropped"
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn sql_error(spec: &PipelineSpec, transform: &TransformSpec, message: String) -> SpecError {
    SpecError::Sql {
        path: spec.path.clone(),
        transform: transform.name.clone(),
        origin: transform.origin.clone(),
        message,
    }
}

/// Order transforms so each comes after the table it reads, and find that
/// one streaming input. Table references come from DataFusion's own SQL
/// parser, so quoting and CTEs are handled as the planner will see them.
fn dependency_order(spec: &PipelineSpec) -> Result<Vec<(&TransformSpec, String)>, SpecError> {
    // Parsing and resolving table names need the session's SQL options
    // only, not a context with every function registered.
    let parser = datafusion::execution::session_state::SessionStateBuilder::new()
        .with_config(streaming_session_config())
        .build();
    let source_tables: Vec<String> = spec
        .sources
        .iter()
        .flat_map(|s| {
            let dead_letters = s
                .config
                .dead_letter_schema()
                .map(|_| dead_letter_table(&s.name));
            let late = s.config.event_time().map(|_| late_events_table(&s.name));
            std::iter::once(s.name.clone())
                .chain(dead_letters)
                .chain(late)
        })
        .collect();
    let sources: HashSet<&str> = source_tables.iter().map(String::as_str).collect();
    let statics: HashSet<&str> = spec.tables.iter().map(|t| t.name.as_str()).collect();
    let transforms: HashSet<&str> = spec.transforms.iter().map(|t| t.name.as_str()).collect();

    let mut input_of: HashMap<&str, String> = HashMap::new();
    for transform in &spec.transforms {
        if let Some(alert) = &transform.alert {
            if !sources.contains(alert.input.as_str()) && !transforms.contains(alert.input.as_str())
            {
                return Err(sql_error(
                    spec,
                    transform,
                    format!(
                        "`alert.input`: table `{}` is neither a source nor a transform",
                        alert.input
                    ),
                ));
            }
            input_of.insert(&transform.name, alert.input.clone());
            continue;
        }
        let statement = parser
            .sql_to_statement(&transform.sql, &datafusion::config::Dialect::Generic)
            .map_err(|e| sql_error(spec, transform, e.to_string()))?;
        if !is_query(&statement) {
            return Err(sql_error(
                spec,
                transform,
                "a transform must be a single SELECT query (no DDL, DML or SET)".into(),
            ));
        }
        let references = parser
            .resolve_table_references(&statement)
            .map_err(|e| sql_error(spec, transform, e.to_string()))?;
        let mut streams: Vec<String> = Vec::new();
        for reference in references {
            let table = reference.table().to_string();
            if statics.contains(table.as_str()) {
                continue;
            }
            if !sources.contains(table.as_str()) && !transforms.contains(table.as_str()) {
                let mut known: Vec<&str> = sources
                    .iter()
                    .chain(transforms.iter())
                    .chain(statics.iter())
                    .copied()
                    .collect();
                known.sort_unstable();
                return Err(sql_error(
                    spec,
                    transform,
                    format!(
                        "reads table `{table}`, which is neither a source nor a transform (tables: {})",
                        known.join(", ")
                    ),
                ));
            }
            if table == transform.name {
                return Err(sql_error(
                    spec,
                    transform,
                    "a transform cannot read its own output".into(),
                ));
            }
            if !streams.contains(&table) {
                streams.push(table);
            }
        }
        match streams.len() {
            0 => {
                return Err(sql_error(
                    spec,
                    transform,
                    "reads no source or transform; a transform needs exactly one streaming input"
                        .into(),
                ));
            }
            1 => {}
            _ => {
                return Err(sql_error(
                    spec,
                    transform,
                    format!(
                        "reads several streams ({}); joining two streams is not supported, each transform reads exactly one",
                        streams.join(", ")
                    ),
                ));
            }
        }
        input_of.insert(&transform.name, streams.remove(0));
    }

    // Kahn's algorithm, keeping YAML order among ready transforms.
    let mut done: HashSet<String> = sources.iter().map(|s| s.to_string()).collect();
    let mut ordered = Vec::new();
    let mut pending: Vec<&TransformSpec> = spec.transforms.iter().collect();
    while !pending.is_empty() {
        let before = pending.len();
        pending.retain(|t| {
            let input = &input_of[t.name.as_str()];
            if done.contains(input) {
                ordered.push((*t, input.clone()));
                done.insert(t.name.clone());
                false
            } else {
                true
            }
        });
        if pending.len() == before {
            let names: Vec<&str> = pending.iter().map(|t| t.name.as_str()).collect();
            return Err(sql_error(
                spec,
                pending[0],
                format!(
                    "transforms read each other in a cycle: {}",
                    names.join(" -> ")
                ),
            ));
        }
    }
    Ok(ordered)
}

fn is_query(statement: &datafusion::sql::parser::Statement) -> bool {
    use datafusion::sql::parser::Statement as DfStatement;
    use datafusion::sql::sqlparser::ast::Statement;
    matches!(statement, DfStatement::Statement(s) if matches!(**s, Statement::Query(_)))
}
