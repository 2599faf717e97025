//! One Parquet file being written: buffered row groups, optional sorting,
//! and the staging step (footer, fsync). Publishing (the atomic rename) is
//! the engine's, after the checkpoint that lists the file is durable.

use std::collections::VecDeque;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Array, ArrayRef};
use arrow::compute::{concat, take};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

use super::naming::in_progress_name;
use super::sort::sort_indices;
use crate::sinks::{SinkError, SinkResultExt};
use crate::storage::StagedFile;

pub struct RollingFile {
    writer: ArrowWriter<File>,
    in_progress: PathBuf,
    final_path: PathBuf,
    opened_at: Instant,
    rows: u64,
    /// Rows waiting to be sorted into the next row group (only with `sort_by`).
    pending: VecDeque<RecordBatch>,
    pending_rows: usize,
    sort_rows: usize,
    sort_by: Arc<[usize]>,
}

impl RollingFile {
    /// A file to be published as `dir/final_name`, written meanwhile under
    /// a hidden name in `staging` (the dataset's `.staging/`, outside every
    /// date partition, so that compacting a partition never moves a file a
    /// writer still has open).
    pub fn create(
        staging: &Path,
        dir: &Path,
        final_name: &str,
        schema: SchemaRef,
        properties: WriterProperties,
        sort_rows: usize,
        sort_by: Arc<[usize]>,
    ) -> Result<Self, SinkError> {
        for dir in [staging, dir] {
            std::fs::create_dir_all(dir)
                .map_err(|e| SinkError::io(format!("creating directory {}", dir.display()), e))?;
        }
        let in_progress = staging.join(in_progress_name(final_name));
        let file = File::create(&in_progress)
            .map_err(|e| SinkError::io(format!("creating {}", in_progress.display()), e))?;
        let writer = ArrowWriter::try_new(file, schema, Some(properties))
            .with_context(|| format!("starting Parquet writer for {}", in_progress.display()))?;
        Ok(Self {
            writer,
            in_progress,
            final_path: dir.join(final_name),
            opened_at: Instant::now(),
            rows: 0,
            pending: VecDeque::new(),
            pending_rows: 0,
            sort_rows,
            sort_by,
        })
    }

    pub fn write(&mut self, batch: RecordBatch) -> Result<(), SinkError> {
        self.rows += batch.num_rows() as u64;
        if self.sort_by.is_empty() {
            return self.writer.write(&batch).context("writing Parquet rows");
        }
        self.pending_rows += batch.num_rows();
        self.pending.push_back(batch);
        if self.pending_rows >= self.sort_rows {
            self.write_sorted_row_groups(false)?;
        }
        Ok(())
    }

    /// Write pending rows as runs of `sort_rows` (the remainder too if
    /// `all`), each sorted on its own. Runs keep arrival order, so a run
    /// covers a short span of event time while being sorted by patient
    /// inside: its pages are narrow in both, and page-index filters on
    /// either skip most of them. The Parquet writer closes a row group when
    /// it holds `row_group_rows` (several runs), so a reader opens few
    /// column chunks.
    fn write_sorted_row_groups(&mut self, all: bool) -> Result<(), SinkError> {
        while self.pending_rows >= self.sort_rows || (all && self.pending_rows > 0) {
            let group = self.take_pending(self.sort_rows.min(self.pending_rows));
            self.write_sorted(group)?;
        }
        Ok(())
    }

    /// The oldest `rows` pending rows, splitting a batch (zero-copy) at the
    /// boundary.
    fn take_pending(&mut self, rows: usize) -> Vec<RecordBatch> {
        let mut group = Vec::new();
        let mut needed = rows;
        while needed > 0 {
            let Some(batch) = self.pending.pop_front() else {
                break;
            };
            if batch.num_rows() <= needed {
                needed -= batch.num_rows();
                group.push(batch);
            } else {
                group.push(batch.slice(0, needed));
                self.pending
                    .push_front(batch.slice(needed, batch.num_rows() - needed));
                needed = 0;
            }
        }
        self.pending_rows -= rows - needed;
        group
    }

    /// Write `group` in `sort_by` order, holding little more than one copy
    /// of it: the group is taken apart into columns, and each column is
    /// concatenated, reordered and released in turn, so the sorted copy grows
    /// as the buffered one shrinks. (Concatenating the whole group, then
    /// reordering it, held three copies at once: the sink's largest share of
    /// memory. Gathering rows straight from the batches with `interleave`
    /// held one, but its per-row indirection made the sink ~15% slower.)
    fn write_sorted(&mut self, group: Vec<RecordBatch>) -> Result<(), SinkError> {
        let Some(schema) = group.first().map(RecordBatch::schema) else {
            return Ok(());
        };
        let mut columns: Vec<Vec<ArrayRef>> =
            vec![Vec::with_capacity(group.len()); schema.fields().len()];
        for batch in group {
            for (pieces, column) in columns.iter_mut().zip(batch.columns()) {
                pieces.push(column.clone());
            }
        }
        let mut whole: Vec<Option<ArrayRef>> = vec![None; columns.len()];
        for &column in self.sort_by.iter() {
            // A column may be named twice in `sort_by`: concatenate it once.
            if whole[column].is_none() {
                whole[column] = Some(concat_column(std::mem::take(&mut columns[column]))?);
            }
        }
        let keys: Vec<ArrayRef> = self
            .sort_by
            .iter()
            .filter_map(|&c| whole[c].clone())
            .collect();
        let order = sort_indices(&keys)?;
        drop(keys);
        let mut sorted = Vec::with_capacity(columns.len());
        for (pieces, whole) in columns.into_iter().zip(whole) {
            let whole = match whole {
                Some(array) => array,
                None => concat_column(pieces)?,
            };
            sorted.push(take(&whole, &order, None).context("reordering a row group")?);
        }
        let batch = RecordBatch::try_new(schema, sorted).context("reordering a row group")?;
        self.writer.write(&batch).context("writing Parquet rows")
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Bytes written plus the encoded size of the open row group (an
    /// estimate: pending unsorted rows are counted by their Arrow size).
    pub fn approximate_bytes(&self) -> u64 {
        let pending: usize = self
            .pending
            .iter()
            .map(RecordBatch::get_array_memory_size)
            .sum();
        (self.writer.bytes_written() + self.writer.in_progress_size() + pending) as u64
    }

    pub fn age(&self) -> std::time::Duration {
        self.opened_at.elapsed()
    }

    /// Finish the file: footer written and fsynced under its hidden name.
    /// Readers never list it; the engine publishes it after a checkpoint.
    pub fn stage(mut self, sink: &str) -> Result<StagedFile, SinkError> {
        self.write_sorted_row_groups(true)?;
        let file = self.writer.into_inner().with_context(|| {
            format!(
                "writing the Parquet footer of {}",
                self.in_progress.display()
            )
        })?;
        file.sync_all()
            .map_err(|e| SinkError::io(format!("fsync {}", self.in_progress.display()), e))?;
        let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(StagedFile {
            sink: sink.to_string(),
            staged: self.in_progress,
            published: self.final_path,
            rows: self.rows,
            bytes,
            spooled: false,
        })
    }

    /// Give up the file (it was never checkpointed): remove it.
    pub fn discard(self) {
        let path = self.in_progress.clone();
        drop(self);
        let _ = std::fs::remove_file(path);
    }
}

/// One column of a row group as a single array; the pieces are released.
fn concat_column(pieces: Vec<ArrayRef>) -> Result<ArrayRef, SinkError> {
    let pieces = match <[ArrayRef; 1]>::try_from(pieces) {
        Ok([only]) => return Ok(only),
        Err(pieces) => pieces,
    };
    let parts: Vec<&dyn Array> = pieces.iter().map(|p| p.as_ref()).collect();
    concat(&parts).context("collecting a column of a row group")
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{AsArray, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    /// Rows arrive as (key, seq) in batches of 7; sorted runs of 10 must
    /// each hold the next 10 rows in arrival order, sorted by key then seq,
    /// and row groups of 20 hold two runs each.
    #[test]
    fn sorted_runs_take_rows_in_arrival_order_and_fill_row_groups() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("key", DataType::Utf8, false),
            Field::new("seq", DataType::Int64, false),
        ]));
        let keys = ["c", "a", "b"];
        let rows: Vec<(String, i64)> = (0..33)
            .map(|i| (keys[i % 3].to_string(), i as i64))
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let mut file = RollingFile::create(
            &dir.path().join(".staging"),
            dir.path(),
            "part.parquet",
            schema.clone(),
            WriterProperties::builder()
                .set_max_row_group_row_count(Some(20))
                .build(),
            10,
            // A repeated column changes nothing.
            Arc::from(vec![0, 1, 0]),
        )
        .unwrap();
        for chunk in rows.chunks(7) {
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(StringArray::from_iter_values(
                        chunk.iter().map(|r| r.0.as_str()),
                    )),
                    Arc::new(Int64Array::from_iter_values(chunk.iter().map(|r| r.1))),
                ],
            )
            .unwrap();
            file.write(batch).unwrap();
        }
        let staged = file.stage("test").unwrap();
        assert_eq!(staged.rows, 33);

        let reader =
            ParquetRecordBatchReaderBuilder::try_new(File::open(&staged.staged).unwrap()).unwrap();
        let sizes: Vec<i64> = reader
            .metadata()
            .row_groups()
            .iter()
            .map(|g| g.num_rows())
            .collect();
        assert_eq!(sizes, [20, 13]);
        let mut stored = Vec::new();
        for batch in reader.build().unwrap() {
            let batch = batch.unwrap();
            let k = batch.column(0).as_string::<i32>();
            let v = batch.column(1).as_primitive::<Int64Type>();
            stored.extend((0..batch.num_rows()).map(|i| (k.value(i).to_string(), v.value(i))));
        }
        let mut expected = Vec::new();
        for group in rows.chunks(10) {
            let mut group = group.to_vec();
            group.sort();
            expected.extend(group);
        }
        assert_eq!(stored, expected);
    }
}
