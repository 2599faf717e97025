//! Result output: an aligned table for people, CSV and JSON for programs.

use std::io::Write;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use super::QueryError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Aligned text table.
    Table,
    /// CSV with a header row.
    Csv,
    /// A JSON array of objects.
    Json,
}

/// Write `batches` to `out` in `format`; a failed write is
/// [`QueryError::Io`] with the writer's own error.
pub fn write_batches(
    out: &mut impl Write,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    format: OutputFormat,
) -> Result<(), QueryError> {
    match format {
        OutputFormat::Table => {
            let empty;
            let shown: &[RecordBatch] = if batches.iter().all(|b| b.num_rows() == 0) {
                empty = [RecordBatch::new_empty(schema.clone())];
                &empty
            } else {
                batches
            };
            let table = arrow::util::pretty::pretty_format_batches(shown)
                .map_err(|e| QueryError::Arrow(e).context("formatting the result table"))?;
            writeln!(out, "{table}")?;
        }
        OutputFormat::Csv => {
            let mut writer = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut *out);
            if batches.is_empty() {
                writer.write(&RecordBatch::new_empty(schema.clone()))?;
            }
            for batch in batches {
                writer.write(batch)?;
            }
        }
        OutputFormat::Json => {
            let mut writer = arrow::json::ArrayWriter::new(&mut *out);
            for batch in batches {
                writer.write(batch)?;
            }
            writer.finish()?;
            drop(writer);
            if batches.iter().all(|b| b.num_rows() == 0) {
                write!(out, "[]")?;
            }
            writeln!(out)?;
        }
    }
    Ok(())
}
