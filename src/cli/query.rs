//! `vitalflow query "SELECT ..."`

use std::path::Path;

use anyhow::Context;

use super::args::QueryArgs;
use crate::query::{Dataset, QueryError, QuerySession, datasets_of, run_sql, write_batches};
use crate::storage::Location;
use crate::{engine, spec};

pub async fn query(args: QueryArgs) -> anyhow::Result<()> {
    let mut datasets = Vec::new();
    if args.pipeline.exists() || args.tables.is_empty() {
        let spec = spec::load(&args.pipeline)?;
        // Only the sinks' schemas are needed: no transform is run.
        let planned = engine::plan_to(spec, engine::Depth::Schemas).await?;
        datasets = datasets_of(&planned)?;
    }
    for (name, raw) in &args.tables {
        let location = Location::parse(raw, Path::new("."))
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("--table {name}"))?;
        datasets.retain(|d| &d.name != name);
        datasets.push(Dataset::at(name, location));
    }
    let session = QuerySession::new(&datasets).await?;
    let (schema, batches) = run_sql(&session.ctx, &args.sql)
        .await
        .context("query failed")?;
    for warning in session.take_warnings() {
        eprintln!("warning: {warning}");
    }
    let mut out = std::io::stdout().lock();
    write_batches(&mut out, &schema, &batches, args.format).map_err(|e| match e {
        // The I/O error itself, so that main sees a closed pipe.
        QueryError::Io(io) => anyhow::Error::new(io),
        other => other.into(),
    })?;
    std::io::Write::flush(&mut out)?;
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    tracing::debug!(rows, "query finished");
    // The process ends next (`cli::ends_at_output`): the session's caches
    // and the result are not freed one allocation at a time first.
    std::mem::forget((session, batches));
    Ok(())
}
