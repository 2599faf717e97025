//! SQL over stored datasets (`vitalflow query`).
//!
//! Each Parquet sink of the pipeline is registered as a table under its own
//! name, with the schema the pipeline plans for it (so a query works before
//! the first file exists) and its `date=` directories as a partition column.
//! The session enables filter pushdown into the Parquet scan, so time-range
//! and patient filters skip files, row groups and pages by their statistics
//! instead of reading everything.

mod format;

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::context::SessionConfig;
use datafusion::prelude::SessionContext;

pub use format::{OutputFormat, write_batches};

use crate::engine::PlannedPipeline;
use crate::sinks::SinkConfig;
use crate::storage::Location;

/// A stored dataset to expose as a table.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub name: String,
    pub location: Location,
    pub schema: Option<SchemaRef>,
    pub date_partitioned: bool,
}

/// The datasets a pipeline writes: every Parquet sink by its name, plus
/// `vitals` for the first one if no sink is called that.
pub fn datasets_of(planned: &PlannedPipeline) -> anyhow::Result<Vec<Dataset>> {
    let mut datasets = Vec::new();
    for sink in &planned.spec.sinks {
        let SinkConfig::Parquet(config) = &sink.config else {
            continue;
        };
        datasets.push(Dataset {
            name: sink.name.clone(),
            location: config
                .location()
                .map_err(anyhow::Error::msg)
                .with_context(|| format!("sink `{}`", sink.name))?,
            schema: planned.schema_of(&sink.input).cloned(),
            date_partitioned: config.partition_by_date.is_some(),
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
pub async fn query_context(datasets: &[Dataset]) -> anyhow::Result<SessionContext> {
    let mut config = SessionConfig::new().with_information_schema(true);
    let options = config.options_mut();
    options.execution.collect_statistics = true;
    options.execution.parquet.pushdown_filters = true;
    options.execution.parquet.reorder_filters = true;
    options.execution.parquet.enable_page_index = true;
    options.execution.parquet.bloom_filter_on_read = true;
    let ctx = SessionContext::new_with_config(config);
    for dataset in datasets {
        register(&ctx, dataset).await.with_context(|| {
            format!(
                "registering table `{}` at {}",
                dataset.name, dataset.location
            )
        })?;
    }
    Ok(ctx)
}

async fn register(ctx: &SessionContext, dataset: &Dataset) -> anyhow::Result<()> {
    let dir = dataset.location.local_path();
    let partition_cols = if dataset.date_partitioned {
        vec![("date".to_string(), DataType::Utf8)]
    } else {
        vec![]
    };
    if !dir.exists() {
        // Nothing stored yet: an empty table with the planned schema, so
        // queries still plan and return no rows.
        let Some(schema) = &dataset.schema else {
            anyhow::bail!("{} does not exist", dir.display());
        };
        let mut fields: Vec<_> = schema.fields().iter().cloned().collect();
        for (name, dtype) in &partition_cols {
            fields.push(Arc::new(arrow::datatypes::Field::new(
                name,
                dtype.clone(),
                false,
            )));
        }
        let schema = Arc::new(arrow::datatypes::Schema::new(fields));
        ctx.register_table(
            &dataset.name,
            Arc::new(MemTable::try_new(schema, vec![vec![]])?),
        )?;
        return Ok(());
    }
    let url = directory_url(dir)?;
    let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
        .with_file_extension(".parquet")
        .with_table_partition_cols(partition_cols);
    let mut config = ListingTableConfig::new(url).with_listing_options(options);
    config = match &dataset.schema {
        Some(schema) => config.with_schema(schema.clone()),
        None => config.infer_schema(&ctx.state()).await?,
    };
    ctx.register_table(&dataset.name, Arc::new(ListingTable::try_new(config)?))?;
    Ok(())
}

fn directory_url(dir: &Path) -> anyhow::Result<ListingTableUrl> {
    let absolute =
        std::fs::canonicalize(dir).with_context(|| format!("resolving {}", dir.display()))?;
    let url = url::Url::from_directory_path(&absolute).map_err(|()| {
        anyhow::anyhow!("{} cannot be expressed as a file URL", absolute.display())
    })?;
    Ok(ListingTableUrl::parse(url.as_str())?)
}

/// Run one SQL statement; returns its schema and rows.
pub async fn run_sql(
    ctx: &SessionContext,
    sql: &str,
) -> datafusion::error::Result<(SchemaRef, Vec<RecordBatch>)> {
    let frame = ctx.sql(sql).await?;
    let schema = Arc::new(frame.schema().as_arrow().clone());
    let batches = frame.collect().await?;
    Ok((schema, batches))
}
