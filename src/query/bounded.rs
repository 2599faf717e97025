//! Queries that cannot take the process down: each runs on the session's
//! own small tokio runtime (the pipeline's workers keep their latency),
//! inside a memory pool that spills where DataFusion can and fails the
//! query where it cannot, and under a deadline that cancels the work.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::error::DataFusionError;
use datafusion::execution::context::SQLOptions;
use datafusion::logical_expr::LogicalPlan;
use futures::StreamExt;

use super::QuerySession;
use crate::storage::overlay::collect_warnings;

/// Resources of a query session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryLimits {
    /// Memory all running queries of the session may hold together
    /// (`None`: unbounded, for `vitalflow query`, which owns its process).
    pub memory: Option<usize>,
    /// Threads of the session's own runtime; also DataFusion's partitions.
    pub threads: usize,
}

impl Default for QueryLimits {
    /// Unbounded memory, one thread per core.
    fn default() -> Self {
        Self {
            memory: None,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

/// Why a query session could not be set up, a query did not run to the
/// end, or its result could not be written. Grouped by kind: the query or
/// a limit (the client's to fix, the first six, which the server maps to
/// HTTP answers), the datasets' settings and stores, DataFusion, Arrow and
/// I/O, each with [`QueryError::Context`] saying what was being done.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The SQL does not parse or plan, is not a read-only query, or failed
    /// on the data (DataFusion's message).
    #[error("{0}")]
    Invalid(String),
    /// The query needed more memory than the session's pool has.
    #[error("the query needs more memory than the {limit} the server gives queries")]
    MemoryLimit {
        limit: String,
        /// DataFusion's account of who held what (for the log).
        detail: String,
    },
    /// Reading the stored files failed; the detail (paths, store
    /// responses) is for the server log, not for clients.
    #[error("reading the stored data failed")]
    Storage(String),
    /// The deadline passed; the query was cancelled.
    #[error("the query did not finish within {} and was cancelled", humantime::format_duration(*.0))]
    Timeout(Duration),
    /// The query reads a table the caller may not read.
    #[error("table `{0}` is not readable with this credential")]
    Forbidden(String),
    /// The query task panicked or its runtime is gone (a bug).
    #[error("query task failed: {0}")]
    Internal(String),

    /// A `DATAFUSION_*` environment variable names a setting its value
    /// does not fit.
    #[error("environment variable {variable}={value:?}: {reason}")]
    Setting {
        variable: String,
        value: String,
        reason: String,
    },

    /// A sink's location cannot name a dataset. Kept inline, not as the
    /// `source()`: its message already repeats its own cause.
    #[error("{0}")]
    Location(crate::storage::ConfigError),

    /// A remote dataset's store cannot be opened.
    #[error(transparent)]
    Store(#[from] crate::storage::StorageError),

    /// A local dataset with no declared schema has no directory to read
    /// one from.
    #[error("{} does not exist", .0.display())]
    NotFound(std::path::PathBuf),

    /// A local directory that has no `file://` URL.
    #[error("{} cannot be expressed as a file URL", .0.display())]
    NotFileUrl(std::path::PathBuf),

    /// DataFusion refused to build the session or register a table.
    #[error(transparent)]
    DataFusion(DataFusionError),

    /// Arrow could not format or write the result.
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),

    /// Resolving a path, starting the query threads or writing the result.
    #[error(transparent)]
    Io(#[from] std::io::Error),

    /// What was being done when `source` happened.
    #[error("{context}")]
    Context {
        context: String,
        #[source]
        source: Box<QueryError>,
    },
}

impl QueryError {
    /// `self`, with what was being done when it happened.
    pub fn context(self, context: impl Into<String>) -> Self {
        QueryError::Context {
            context: context.into(),
            source: Box::new(self),
        }
    }
}

/// Takes a query's result batches as they come, on the query runtime.
pub trait Collector: Send + 'static {
    /// `Break` when no more rows are wanted: the rest is never computed.
    fn take(&mut self, batch: RecordBatch) -> ControlFlow<()>;
}

/// What a finished query returns: its schema, the collector that took its
/// batches, and why its result may be partial.
pub struct Finished<C> {
    pub schema: SchemaRef,
    pub collector: C,
    pub warnings: Vec<String>,
}

/// The runtime queries run on, started at the first bounded query (a
/// session used only through its `ctx`, as `vitalflow query` does, starts
/// no threads of its own); shut down without blocking when the session goes
/// (a `Runtime` dropped inside async code would panic).
pub(super) struct QueryRuntime {
    threads: usize,
    runtime: std::sync::OnceLock<tokio::runtime::Runtime>,
}

impl QueryRuntime {
    pub(super) fn new(threads: usize) -> Self {
        Self {
            threads: threads.max(1),
            runtime: std::sync::OnceLock::new(),
        }
    }

    fn handle(&self) -> std::io::Result<&tokio::runtime::Handle> {
        if let Some(runtime) = self.runtime.get() {
            return Ok(runtime.handle());
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(self.threads)
            .thread_name("vitalflow-query")
            // Analysts' queries are background work beside the pipeline and
            // the model API.
            .on_thread_start(crate::common::priority::lower_thread_priority)
            .enable_all()
            .build()?;
        // Two first queries at once: the loser's runtime is shut down here.
        if let Err(spare) = self.runtime.set(runtime) {
            spare.shutdown_background();
        }
        Ok(self.runtime.get().expect("set above").handle())
    }
}

impl Drop for QueryRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Aborts the query task when the caller stops waiting (deadline, client
/// gone): dropping DataFusion's streams cancels their work.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl QuerySession {
    /// Plan and run `sql` on the session's runtime, handing each result
    /// batch to `collector` until it breaks (enough rows or bytes: the rest
    /// is not computed); `fetch` caps the rows the plan produces.
    /// Everything, planning included, is bounded by `timeout`.
    pub async fn run<C: Collector>(
        &self,
        sql: &str,
        options: SQLOptions,
        denied: &'static [&'static str],
        fetch: Option<usize>,
        timeout: Duration,
        collector: C,
    ) -> Result<Finished<C>, QueryError> {
        self.run_with_params(sql, Vec::new(), options, denied, fetch, timeout, collector)
            .await
    }

    /// [`QuerySession::run`] with values for the statement's `$1`, `$2`, ...
    /// placeholders (values never become SQL text).
    #[allow(clippy::too_many_arguments)]
    pub async fn run_with_params<C: Collector>(
        &self,
        sql: &str,
        params: Vec<datafusion::scalar::ScalarValue>,
        options: SQLOptions,
        denied: &'static [&'static str],
        fetch: Option<usize>,
        timeout: Duration,
        mut collector: C,
    ) -> Result<Finished<C>, QueryError> {
        let ctx = self.ctx.clone();
        let sql = sql.to_string();
        let memory = self.limits.memory;
        let work = async move {
            // A file listed by the plan can vanish before it is opened: a
            // compaction swapped its day for the merged file. The query is
            // planned again once, if it has returned no rows yet.
            let mut attempt = 0;
            loop {
                let mut taken = false;
                let result = async {
                    let mut frame = ctx.sql_with_options(&sql, options).await?;
                    if !params.is_empty() {
                        frame = frame.with_param_values(params.clone())?;
                    }
                    if let Some(table) = reads_one_of(frame.logical_plan(), denied)? {
                        return Ok(Err(table));
                    }
                    let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
                    // EXPLAIN [ANALYZE] must stay the root of its plan.
                    let explains = matches!(
                        frame.logical_plan(),
                        LogicalPlan::Explain(_) | LogicalPlan::Analyze(_)
                    );
                    if fetch.is_some() && !explains {
                        frame = frame.limit(0, fetch)?;
                    }
                    let mut stream = frame.execute_stream().await?;
                    while let Some(batch) = stream.next().await {
                        // A file opened at execution time fails here, as
                        // the first item: nothing taken yet, so retried.
                        let batch = batch?;
                        taken = true;
                        if collector.take(batch).is_break() {
                            break;
                        }
                    }
                    Ok::<_, DataFusionError>(Ok(schema))
                }
                .await;
                match result {
                    Err(e) if attempt == 0 && !taken && is_vanished_file(&e) => attempt += 1,
                    Err(e) => return Err(e),
                    Ok(Err(table)) => return Ok(Err(table)),
                    Ok(Ok(schema)) => return Ok(Ok((schema, collector))),
                }
            }
        };
        let handle = self
            .runtime
            .handle()
            .map_err(|e| QueryError::Io(e).context("starting the query runtime"))?;
        let task = handle.spawn(collect_warnings(work));
        let _abort = AbortOnDrop(task.abort_handle());
        let joined = tokio::time::timeout(timeout, task)
            .await
            .map_err(|_| QueryError::Timeout(timeout))?;
        let (outcome, warnings) = joined.map_err(|e| QueryError::Internal(e.to_string()))?;
        let (schema, collector) = outcome
            .map_err(|e| classify(e, memory))?
            .map_err(QueryError::Forbidden)?;
        Ok(Finished {
            schema,
            collector,
            warnings,
        })
    }
}

/// Whether `e` says a file was not found (a listed file that was gone
/// when it was opened).
pub(crate) fn is_vanished_file(e: &DataFusionError) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(error) = cause {
        let not_found = error
            .downcast_ref::<object_store::Error>()
            .is_some_and(|e| matches!(e, object_store::Error::NotFound { .. }))
            || error
                .downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::NotFound)
            || error
                .downcast_ref::<DataFusionError>()
                .is_some_and(|e| matches!(e, DataFusionError::ObjectStore(o) if matches!(**o, object_store::Error::NotFound { .. })));
        if not_found {
            return true;
        }
        cause = error.source();
    }
    false
}

/// The first of `denied` that `plan` scans, subqueries included.
fn reads_one_of(plan: &LogicalPlan, denied: &[&str]) -> Result<Option<String>, DataFusionError> {
    use datafusion::common::tree_node::TreeNodeRecursion;
    let mut found = None;
    if denied.is_empty() {
        return Ok(None);
    }
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && denied.contains(&scan.table_name.table())
        {
            found = Some(scan.table_name.table().to_string());
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(found)
}

fn classify(error: DataFusionError, memory: Option<usize>) -> QueryError {
    match error.find_root() {
        DataFusionError::ResourcesExhausted(detail) => QueryError::MemoryLimit {
            limit: memory
                .map(|m| bytesize::ByteSize::b(m as u64).to_string())
                .unwrap_or_else(|| "memory".into()),
            detail: detail.clone(),
        },
        DataFusionError::ObjectStore(_)
        | DataFusionError::IoError(_)
        | DataFusionError::ParquetError(_) => QueryError::Storage(error.to_string()),
        _ => QueryError::Invalid(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runtime_starts_at_the_first_bounded_query_only() {
        let runtime = QueryRuntime::new(2);
        assert!(runtime.runtime.get().is_none(), "no threads before a query");
        let first = runtime.handle().unwrap().id();
        assert_eq!(runtime.handle().unwrap().id(), first, "started once");
        assert_eq!(runtime.runtime.get().unwrap().metrics().num_workers(), 2);
    }
}
