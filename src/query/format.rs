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
    let mut out = KeepIoError { out, error: None };
    let written = write_formatted(&mut out, schema, batches, format);
    match (written, out.error) {
        (Err(_), Some(io)) => Err(QueryError::Io(io)),
        (written, _) => written,
    }
}

/// A writer that keeps the first I/O error of the one below. Arrow's CSV
/// writer turns an I/O error into text (`Csv error: Broken pipe`), and a
/// closed pipe must stay one: `vitalflow query ... | head` is no failure.
struct KeepIoError<'a, W> {
    out: &'a mut W,
    error: Option<std::io::Error>,
}

impl<W: Write> KeepIoError<'_, W> {
    fn keep<T>(&mut self, result: std::io::Result<T>) -> std::io::Result<T> {
        if let Err(e) = &result
            && self.error.is_none()
        {
            self.error = Some(std::io::Error::new(e.kind(), e.to_string()));
        }
        result
    }
}

impl<W: Write> Write for KeepIoError<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let result = self.out.write(buf);
        self.keep(result)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let result = self.out.flush();
        self.keep(result)
    }
}

fn write_formatted(
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    /// A pipe whose reader went away after `room` bytes.
    struct ClosedAfter {
        room: usize,
    }

    impl Write for ClosedAfter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.room == 0 {
                return Err(std::io::ErrorKind::BrokenPipe.into());
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            Ok(n)
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_closed_pipe_is_reported_as_the_io_error_in_every_format() {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from_iter_values(0..100_000))],
        )
        .unwrap();
        for format in [OutputFormat::Csv, OutputFormat::Json, OutputFormat::Table] {
            let mut out = ClosedAfter { room: 100 };
            let error =
                write_batches(&mut out, &schema, std::slice::from_ref(&batch), format).unwrap_err();
            match error {
                QueryError::Io(io) => {
                    assert_eq!(io.kind(), std::io::ErrorKind::BrokenPipe, "{format:?}")
                }
                other => panic!("{format:?}: {other}"),
            }
        }
    }
}
