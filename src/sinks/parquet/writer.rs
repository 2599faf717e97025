//! One Parquet file being written: buffered row groups, optional sorting,
//! and the staging step (footer, fsync). Publishing (the atomic rename) is
//! the engine's, after the checkpoint that lists the file is durable.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use arrow::compute::{concat_batches, take_record_batch};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

use super::naming::in_progress_name;
use super::sort::sort_indices;
use crate::storage::StagedFile;

pub struct RollingFile {
    writer: ArrowWriter<File>,
    schema: SchemaRef,
    in_progress: PathBuf,
    final_path: PathBuf,
    opened_at: Instant,
    rows: u64,
    /// Rows waiting to be sorted into the next row group (only with `sort_by`).
    pending: Vec<RecordBatch>,
    pending_rows: usize,
    row_group_rows: usize,
    sort_by: Arc<[usize]>,
}

impl RollingFile {
    pub fn create(
        dir: &Path,
        final_name: &str,
        schema: SchemaRef,
        properties: WriterProperties,
        row_group_rows: usize,
        sort_by: Arc<[usize]>,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating directory {}", dir.display()))?;
        let in_progress = dir.join(in_progress_name(final_name));
        let file = File::create(&in_progress)
            .with_context(|| format!("creating {}", in_progress.display()))?;
        let writer = ArrowWriter::try_new(file, schema.clone(), Some(properties))
            .with_context(|| format!("starting Parquet writer for {}", in_progress.display()))?;
        Ok(Self {
            writer,
            schema,
            in_progress,
            final_path: dir.join(final_name),
            opened_at: Instant::now(),
            rows: 0,
            pending: Vec::new(),
            pending_rows: 0,
            row_group_rows,
            sort_by,
        })
    }

    pub fn write(&mut self, batch: RecordBatch) -> anyhow::Result<()> {
        self.rows += batch.num_rows() as u64;
        if self.sort_by.is_empty() {
            return self.writer.write(&batch).context("writing Parquet rows");
        }
        self.pending_rows += batch.num_rows();
        self.pending.push(batch);
        if self.pending_rows >= self.row_group_rows {
            self.write_sorted_row_groups(false)?;
        }
        Ok(())
    }

    /// Write pending rows as row groups of `row_group_rows` (the remainder
    /// too if `all`), each sorted on its own. Rows keep arrival order across
    /// row groups, so a row group still covers a short span of event time
    /// (time filters prune it) while being sorted by patient inside (patient
    /// filters prune its pages).
    fn write_sorted_row_groups(&mut self, all: bool) -> anyhow::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch =
            concat_batches(&self.schema, &self.pending).context("concatenating a row group")?;
        self.pending.clear();
        let mut offset = 0;
        while batch.num_rows() - offset >= self.row_group_rows || (all && offset < batch.num_rows())
        {
            let len = self.row_group_rows.min(batch.num_rows() - offset);
            let sorted = self.sorted(&batch.slice(offset, len))?;
            self.writer.write(&sorted).context("writing Parquet rows")?;
            self.writer.flush().context("closing a row group")?;
            offset += len;
        }
        self.pending_rows = batch.num_rows() - offset;
        if self.pending_rows > 0 {
            self.pending.push(batch.slice(offset, self.pending_rows));
        }
        Ok(())
    }

    fn sorted(&self, chunk: &RecordBatch) -> anyhow::Result<RecordBatch> {
        let columns: Vec<_> = self
            .sort_by
            .iter()
            .map(|&i| chunk.column(i).clone())
            .collect();
        let indices = sort_indices(&columns)?;
        take_record_batch(chunk, &indices).context("reordering a row group")
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
    pub fn stage(mut self, sink: &str) -> anyhow::Result<StagedFile> {
        self.write_sorted_row_groups(true)?;
        let file = self.writer.into_inner().with_context(|| {
            format!(
                "writing the Parquet footer of {}",
                self.in_progress.display()
            )
        })?;
        file.sync_all()
            .with_context(|| format!("fsync {}", self.in_progress.display()))?;
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
