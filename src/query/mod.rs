//! SQL over stored datasets (`vitalflow query`).
//!
//! Each Parquet sink of the pipeline is registered as a table under its own
//! name, with the schema the pipeline plans for it (so a query works before
//! the first file exists) and its `date=` directories as a partition column.
//! The session enables filter pushdown into the Parquet scan, so time-range
//! and patient filters skip files, row groups and pages by their statistics
//! instead of reading everything.

mod aggregate_below_join;
mod bounded;
mod count_from_footers;
mod footer_statistics;
mod format;
mod rules;
mod settings;
mod yielding;

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::physical_plan::parquet::transform_schema_to_view;
use datafusion::execution::cache::cache_manager::CacheManagerConfig;
use datafusion::execution::context::SessionConfig;
use datafusion::execution::disk_manager::DiskManagerBuilder;
use datafusion::execution::memory_pool::{FairSpillPool, TrackConsumersPool};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;

pub use bounded::{Collector, Finished, QueryError, QueryLimits};
pub use format::{OutputFormat, write_batches};

use crate::engine::PlannedPipeline;
use crate::sinks::SinkConfig;
use crate::sinks::parquet::default_spool_dir;
use crate::storage::Location;
use crate::storage::overlay::Overlay;
use crate::storage::store::open_store;

/// A stored dataset to expose as a table.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub name: String,
    pub location: Location,
    pub schema: Option<SchemaRef>,
    pub date_partitioned: bool,
    /// Settings of a remote store (the sink's `store:`).
    pub store: BTreeMap<String, String>,
    /// Where a remote dataset's files wait for upload (read too).
    pub spool: Option<PathBuf>,
}

impl Dataset {
    /// A dataset named on the command line: default spool, settings from
    /// the environment, schema read from the files.
    pub fn at(name: &str, location: Location) -> Self {
        let spool = location.as_remote().map(default_spool_dir);
        // A local directory without `date=` subdirectories (a static table
        // such as patients) is read as plain files; a remote one is
        // assumed partitioned, as the sinks write it.
        let date_partitioned = match &location {
            Location::Local(dir) => is_date_partitioned(dir),
            Location::Remote(_) => true,
        };
        Self {
            name: name.to_string(),
            location,
            schema: None,
            date_partitioned,
            store: BTreeMap::new(),
            spool,
        }
    }
}

/// Whether `dir` holds `date=…` directories (or does not exist yet: a
/// dataset a sink will write).
fn is_date_partitioned(dir: &Path) -> bool {
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            let names: Vec<String> = entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.iter().any(|n| n.starts_with("date="))
                || !names.iter().any(|n| n.ends_with(".parquet"))
        }
        Err(_) => true,
    }
}

/// The datasets a pipeline writes: every Parquet sink by its name, plus
/// `vitals` for the first one if no sink is called that.
pub fn datasets_of(planned: &PlannedPipeline) -> Result<Vec<Dataset>, QueryError> {
    let mut datasets = Vec::new();
    for sink in &planned.spec.sinks {
        let SinkConfig::Parquet(config) = &sink.config else {
            continue;
        };
        let location = config
            .location()
            .map_err(|e| QueryError::Location(e).context(format!("sink `{}`", sink.name)))?;
        datasets.push(Dataset {
            name: sink.name.clone(),
            spool: location.as_remote().map(|r| config.spool_dir(r)),
            location,
            schema: planned.schema_of(&sink.input).cloned(),
            date_partitioned: config.partition_by_date.is_some(),
            store: config.store_settings(),
        });
    }
    if !datasets.iter().any(|d| d.name == "vitals")
        && let Some(first) = datasets.first().cloned()
    {
        datasets.push(Dataset {
            name: "vitals".into(),
            ..first
        });
    }
    Ok(datasets)
}

/// A session for analysts' queries with every dataset registered.
pub async fn query_context(datasets: &[Dataset]) -> Result<SessionContext, QueryError> {
    Ok(QuerySession::new(datasets).await?.ctx)
}

/// A query session, the read views of its remote datasets, and the runtime
/// its bounded queries ([`QuerySession::run`]) execute on.
pub struct QuerySession {
    pub ctx: SessionContext,
    overlays: Vec<Overlay>,
    limits: QueryLimits,
    runtime: bounded::QueryRuntime,
}

impl QuerySession {
    /// A session with unbounded memory (`vitalflow query`).
    pub async fn new(datasets: &[Dataset]) -> Result<Self, QueryError> {
        Self::with_limits(datasets, QueryLimits::default()).await
    }

    /// A session whose queries share `limits` (the server's).
    pub async fn with_limits(
        datasets: &[Dataset],
        limits: QueryLimits,
    ) -> Result<Self, QueryError> {
        let ctx = session(&limits)?;
        let overlays = register_stores(&ctx, datasets)?;
        // A session without a memory bound is a one-shot `vitalflow query`
        // process: page indexes cached for later queries would serve none
        // (`footer_statistics.rs`). The server's sessions keep them.
        let footers_only = limits.memory.is_none();
        for dataset in datasets {
            register(&ctx, dataset, footers_only).await.map_err(|e| {
                e.context(format!(
                    "registering table `{}` at {}",
                    dataset.name, dataset.location
                ))
            })?;
        }
        let runtime = bounded::QueryRuntime::new(limits.threads);
        Ok(Self {
            ctx,
            overlays,
            limits,
            runtime,
        })
    }

    pub fn limits(&self) -> QueryLimits {
        self.limits
    }

    /// Why the last queries' results may be partial (a store that could not
    /// be listed and whose spooled files alone were read), for queries run
    /// on `ctx` directly; [`QuerySession::run`] returns each query's own.
    pub fn take_warnings(&self) -> Vec<String> {
        self.overlays
            .iter()
            .flat_map(Overlay::take_warnings)
            .collect()
    }
}

/// One read view per remote store (bucket or namenode), holding the spools
/// of every dataset in it.
fn register_stores(ctx: &SessionContext, datasets: &[Dataset]) -> Result<Vec<Overlay>, QueryError> {
    let mut by_store: BTreeMap<String, Vec<&Dataset>> = BTreeMap::new();
    for dataset in datasets {
        if let Some(remote) = dataset.location.as_remote() {
            by_store
                .entry(remote.store_url().to_string())
                .or_default()
                .push(dataset);
        }
    }
    let mut overlays = Vec::new();
    for (store_url, datasets) in by_store {
        let first = datasets[0];
        let remote = first.location.as_remote().expect("grouped remote datasets");
        let store = open_store(remote, &first.store)
            .map_err(|e| QueryError::Store(e).context(format!("table `{}`", first.name)))?;
        let spools = datasets
            .iter()
            .filter_map(|d| {
                let prefix = d.location.as_remote()?.prefix();
                Some((prefix, d.spool.clone()?))
            })
            .collect();
        let overlay = Overlay::new(store_url.clone(), store, spools);
        ctx.register_object_store(&remote.store_url(), Arc::new(overlay.clone()));
        overlays.push(overlay);
    }
    Ok(overlays)
}

/// Table functions that generate rows from nothing, as many as asked:
/// `generate_series(1, 1e12)` needs no data to exhaust the process.
const UNBOUNDED_TABLE_FUNCTIONS: [&str; 2] = ["generate_series", "range"];

fn session(limits: &QueryLimits) -> Result<SessionContext, QueryError> {
    // Files are read through the registered tables only: the dynamic file
    // catalog (`SELECT * FROM '/etc/passwd'`, `SessionContext::enable_url_table`)
    // stays off.
    let mut config = SessionConfig::new()
        .with_information_schema(true)
        .with_target_partitions(limits.threads.max(1));
    let options = config.options_mut();
    options.execution.collect_statistics = true;
    options.execution.parquet.pushdown_filters = true;
    options.execution.parquet.reorder_filters = true;
    options.execution.parquet.enable_page_index = true;
    options.execution.parquet.bloom_filter_on_read = true;
    options.execution.parquet.metadata_size_hint = Some(LOCAL_METADATA_SIZE_HINT);
    // A join's build side is not pushed into the probe side's scan as a
    // row filter: evaluated on every row while decoding, it cost more than
    // it saved on the stored vitals (`vitalflow bench --query`, a day joined
    // with all 1,000 patients: 112 ms with it, 88 ms without; with the 13
    // patients of one age: 59 ms against 36 ms; over the whole week 226 ms
    // against 129 ms). `DATAFUSION_OPTIMIZER_ENABLE_JOIN_DYNAMIC_FILTER_PUSHDOWN=true`
    // turns it back on.
    options.optimizer.enable_join_dynamic_filter_pushdown = false;
    if let Some(memory) = limits.memory {
        // Each sorting partition sets aside this much to merge its spilled
        // runs (DataFusion's default, 10 MiB, would take a small pool whole
        // before any row is sorted).
        options.execution.sort_spill_reservation_bytes =
            (memory / (4 * limits.threads.max(1))).min(10 << 20);
    }
    for (variable, value) in settings::apply_env(options, |name| std::env::var(name).ok())? {
        tracing::info!(%variable, %value, "DataFusion setting from the environment");
    }
    // DataFusion caches file listings forever by default: a long-lived
    // session (the server) would never see a file published after its first
    // query. Datasets grow while they are read, so list every time.
    let mut runtime = RuntimeEnvBuilder::new()
        .with_cache_manager(CacheManagerConfig::default().with_list_files_cache_limit(0));
    if let Some(memory) = limits.memory {
        // Fair shares between the running queries; sorts, aggregations and
        // joins that can spill write to the OS temp directory (at most 8x
        // the pool), the others fail with ResourcesExhausted.
        let pool = TrackConsumersPool::new(
            FairSpillPool::new(memory),
            NonZeroUsize::new(5).expect("non-zero"),
        );
        runtime = runtime
            .with_memory_pool(Arc::new(pool))
            .with_disk_manager_builder(DiskManagerBuilder::default())
            .with_max_temp_directory_size(memory as u64 * 8);
    }
    let mut state = SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime.build_arc().map_err(QueryError::DataFusion)?)
        .with_default_features();
    // Row counts per partition come from the footers (`count_from_footers.rs`).
    state = state.with_physical_optimizer_rule(Arc::new(count_from_footers::CountFromFooters));
    // Aggregates of the probe side folded per join key before the join
    // (`aggregate_below_join.rs`).
    state = state.with_physical_optimizer_rule(Arc::new(aggregate_below_join::AggregateBelowJoin));
    if limits.memory.is_some() {
        // Bounded (server) queries must stop when cancelled.
        state = state.with_physical_optimizer_rule(Arc::new(yielding::YieldEveryOperator));
    }
    let ctx = SessionContext::new_with_state(state.build());
    for name in UNBOUNDED_TABLE_FUNCTIONS {
        ctx.deregister_udtf(name);
    }
    Ok(ctx)
}

async fn register(
    ctx: &SessionContext,
    dataset: &Dataset,
    footers_only: bool,
) -> Result<(), QueryError> {
    let partition_cols = if dataset.date_partitioned {
        vec![("date".to_string(), DataType::Utf8)]
    } else {
        vec![]
    };
    let url = match &dataset.location {
        Location::Remote(remote) => {
            ListingTableUrl::parse(remote.directory_url()).map_err(QueryError::DataFusion)?
        }
        Location::Local(dir) if !dir.exists() && dataset.schema.is_none() => {
            return Err(QueryError::NotFound(dir.clone()));
        }
        // Listed at query time: a dataset that does not exist yet reads as
        // empty until its first file is published (the server starts first).
        Location::Local(dir) => directory_url(dir)?,
    };
    // The table's format carries its own Parquet options (DataFusion's
    // defaults unless given): the session's, so that its settings apply.
    let mut parquet = ctx.state().default_table_options().parquet;
    let view_types = parquet.global.schema_force_view_types;
    if dataset.location.as_remote().is_some() {
        parquet.global.metadata_size_hint = parquet
            .global
            .metadata_size_hint
            .max(Some(REMOTE_METADATA_SIZE_HINT));
    }
    let parquet = ParquetFormat::default().with_options(parquet);
    let format: Arc<dyn FileFormat> = if footers_only {
        // Statistics from the footer, without the page index
        // (`footer_statistics.rs`).
        Arc::new(footer_statistics::FooterStatistics::new(parquet))
    } else {
        Arc::new(parquet)
    };
    let options = ListingOptions::new(format)
        .with_file_extension(".parquet")
        .with_table_partition_cols(partition_cols);
    let mut config = ListingTableConfig::new(url).with_listing_options(options);
    config = match &dataset.schema {
        // Strings as views, as DataFusion reads them when it infers a
        // schema itself: read from dictionary pages without copying every
        // value, and no cast of every row where a column meets an inferred
        // one (a join with a static table cast 2.88M patient ids a day).
        Some(schema) if view_types => {
            config.with_schema(Arc::new(transform_schema_to_view(schema)))
        }
        Some(schema) => config.with_schema(schema.clone()),
        None => config
            .infer_schema(&ctx.state())
            .await
            .map_err(QueryError::DataFusion)?,
    };
    let table = ListingTable::try_new(config).map_err(QueryError::DataFusion)?;
    ctx.register_table(&dataset.name, Arc::new(table))
        .map_err(QueryError::DataFusion)?;
    Ok(())
}

/// How many bytes at the end of a file are read in one go for its footer
/// (`datafusion.execution.parquet.metadata_size_hint`).
///
/// DataFusion's default, 512 KiB, saves a request per file on an object
/// store, where a round trip costs more than the bytes, and remote tables
/// keep at least that. Read from a local disk, it copies (and first zeroes)
/// half a megabyte per file for a footer of ~4 KB: 24 MB for a week of the
/// sink's files, and a count over them took 36 MB of private memory and
/// twice the time of DuckDB's (`vitalflow bench --query`).
const LOCAL_METADATA_SIZE_HINT: usize = 64 << 10;
const REMOTE_METADATA_SIZE_HINT: usize = 512 << 10;

fn directory_url(dir: &Path) -> Result<ListingTableUrl, QueryError> {
    let absolute = std::path::absolute(dir)
        .map_err(|e| QueryError::Io(e).context(format!("resolving {}", dir.display())))?;
    let url = url::Url::from_directory_path(&absolute)
        .map_err(|()| QueryError::NotFileUrl(absolute.clone()))?;
    ListingTableUrl::parse(url.as_str()).map_err(QueryError::DataFusion)
}

/// What `sql` returns, as a printed table (for tests: plans and answers).
#[cfg(test)]
pub(crate) async fn table_text(ctx: &SessionContext, sql: &str) -> String {
    let (_, batches) = run_sql(ctx, sql).await.expect("the query runs");
    arrow::util::pretty::pretty_format_batches(&batches)
        .expect("printable")
        .to_string()
}

/// Run one SQL statement; returns its schema and rows.
///
/// A query whose listed file vanished before it was read (a compaction
/// swapped its day for the merged file) is planned and run again, once:
/// nothing was returned yet, rows come back all at once. Statements that
/// write (`INSERT`, `COPY`, DDL) are never run twice.
pub async fn run_sql(
    ctx: &SessionContext,
    sql: &str,
) -> datafusion::error::Result<(SchemaRef, Vec<RecordBatch>)> {
    let mut retried = false;
    loop {
        let frame = ctx.sql(sql).await;
        let writes = frame.as_ref().is_ok_and(|f| {
            matches!(
                f.logical_plan(),
                LogicalPlan::Dml(_) | LogicalPlan::Copy(_) | LogicalPlan::Ddl(_)
            )
        });
        let result = async {
            let frame = frame?;
            let schema = Arc::new(frame.schema().as_arrow().clone());
            let batches = frame.collect().await?;
            Ok((schema, batches))
        }
        .await;
        match result {
            Err(e) if !retried && !writes && bounded::is_vanished_file(&e) => retried = true,
            other => return other,
        }
    }
}
