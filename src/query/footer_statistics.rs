//! Table statistics from the Parquet footer alone.
//!
//! When a query over a table is planned, DataFusion reads every file's
//! metadata for its statistics (`collect_statistics`), and, since a
//! file-metadata cache always exists, it decodes each file's page index
//! (column and offset indexes) as well, expecting a scan to use it.
//! Statistics come from the footer alone, and a query answered from the
//! footers (`count_from_footers.rs`) scans nothing: for a count per day over
//! the stored week (45 files), decoding page indexes was ~11% of `vitalflow
//! query`'s CPU (`perf record --call-graph dwarf`). This is DataFusion's
//! Parquet format with that one step changed: the statistics pass decodes
//! and caches the footer only; a scan that prunes by pages then loads the
//! page index of each file it opens (DataFusion's Parquet opener does,
//! without caching it). Used by one-shot `vitalflow query` sessions only:
//! the server's long-lived sessions keep page indexes cached across
//! queries. Tables read with decryption keep DataFusion's own path, and a
//! table whose schema is inferred from its files (`--table`) still has
//! their page indexes read with the schema, by DataFusion.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::common::{Result, Statistics};
use datafusion::datasource::file_format::file_compression_type::FileCompressionType;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::file_format::{FileFormat, FileMeta};
use datafusion::datasource::physical_plan::parquet::metadata::{
    DFParquetMetadata, ordering_from_parquet_metadata,
};
use datafusion::datasource::physical_plan::{FileScanConfig, FileSinkConfig, FileSource};
use datafusion::datasource::table_schema::TableSchema;
use datafusion::physical_expr::LexOrdering;
use datafusion::physical_expr_common::sort_expr::LexRequirement;
use datafusion::physical_plan::ExecutionPlan;
use object_store::{ObjectMeta, ObjectStore};
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData};

#[derive(Debug)]
pub(super) struct FooterStatistics {
    parquet: ParquetFormat,
}

impl FooterStatistics {
    pub(super) fn new(parquet: ParquetFormat) -> Self {
        Self { parquet }
    }

    /// Decryption needs DataFusion's own metadata path (it alone resolves
    /// the keys).
    fn decrypts(&self) -> bool {
        let crypto = &self.parquet.options().crypto;
        crypto.file_decryption.is_some() || crypto.factory_id.is_some()
    }

    async fn footer(
        &self,
        state: &dyn Session,
        store: &Arc<dyn ObjectStore>,
        object: &ObjectMeta,
    ) -> Result<Arc<ParquetMetaData>> {
        DFParquetMetadata::new(store.as_ref(), object)
            .with_metadata_size_hint(self.parquet.metadata_size_hint())
            .with_file_metadata_cache(Some(
                state.runtime_env().cache_manager.get_file_metadata_cache(),
            ))
            .with_page_index_policy(Some(PageIndexPolicy::Skip))
            .fetch_metadata()
            .await
    }
}

#[async_trait::async_trait]
impl FileFormat for FooterStatistics {
    fn get_ext(&self) -> String {
        self.parquet.get_ext()
    }

    fn get_ext_with_compression(&self, compression: &FileCompressionType) -> Result<String> {
        self.parquet.get_ext_with_compression(compression)
    }

    fn compression_type(&self) -> Option<FileCompressionType> {
        self.parquet.compression_type()
    }

    async fn infer_schema(
        &self,
        state: &dyn Session,
        store: &Arc<dyn ObjectStore>,
        objects: &[ObjectMeta],
    ) -> Result<SchemaRef> {
        self.parquet.infer_schema(state, store, objects).await
    }

    async fn infer_stats(
        &self,
        state: &dyn Session,
        store: &Arc<dyn ObjectStore>,
        table_schema: SchemaRef,
        object: &ObjectMeta,
    ) -> Result<Statistics> {
        Ok(self
            .infer_stats_and_ordering(state, store, table_schema, object)
            .await?
            .statistics)
    }

    async fn infer_ordering(
        &self,
        state: &dyn Session,
        store: &Arc<dyn ObjectStore>,
        table_schema: SchemaRef,
        object: &ObjectMeta,
    ) -> Result<Option<LexOrdering>> {
        Ok(self
            .infer_stats_and_ordering(state, store, table_schema, object)
            .await?
            .ordering)
    }

    async fn infer_stats_and_ordering(
        &self,
        state: &dyn Session,
        store: &Arc<dyn ObjectStore>,
        table_schema: SchemaRef,
        object: &ObjectMeta,
    ) -> Result<FileMeta> {
        if self.decrypts() {
            return self
                .parquet
                .infer_stats_and_ordering(state, store, table_schema, object)
                .await;
        }
        let footer = self.footer(state, store, object).await?;
        let statistics =
            DFParquetMetadata::statistics_from_parquet_metadata(&footer, &table_schema)?;
        let ordering = ordering_from_parquet_metadata(&footer, &table_schema)?;
        Ok(FileMeta::new(statistics).with_ordering(ordering))
    }

    async fn create_physical_plan(
        &self,
        state: &dyn Session,
        conf: FileScanConfig,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.parquet.create_physical_plan(state, conf).await
    }

    async fn create_writer_physical_plan(
        &self,
        input: Arc<dyn ExecutionPlan>,
        state: &dyn Session,
        conf: FileSinkConfig,
        order_requirements: Option<LexRequirement>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.parquet
            .create_writer_physical_plan(input, state, conf, order_requirements)
            .await
    }

    fn file_source(&self, table_schema: TableSchema) -> Arc<dyn FileSource> {
        self.parquet.file_source(table_schema)
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use parquet::file::properties::WriterProperties;

    use crate::query::{Dataset, query_context, run_sql};
    use crate::storage::Location;

    /// Whether the session's metadata cache holds `file`'s page index.
    fn cached_page_index(
        ctx: &datafusion::prelude::SessionContext,
        file: &std::path::Path,
    ) -> Option<String> {
        let path = object_store::path::Path::from_filesystem_path(file).unwrap();
        let cache = ctx.runtime_env().cache_manager.get_file_metadata_cache();
        cache
            .get(&path)
            .map(|entry| entry.file_metadata.extra_info()["page_index"].clone())
    }

    #[tokio::test]
    async fn statistics_read_the_footer_only_and_a_filtered_scan_still_prunes_pages() {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join("a.parquet");
        let schema = std::sync::Arc::new(Schema::new(vec![
            Field::new("patient_id", DataType::Utf8, false),
            Field::new("heart_rate", DataType::Int64, false),
        ]));
        // 10 pages of 1,000 rows, patients in order: one patient's rows
        // are in one page.
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                std::sync::Arc::new(StringArray::from_iter_values(
                    (0..10_000).map(|i| format!("P{:02}", i / 1_000)),
                )),
                std::sync::Arc::new(Int64Array::from_iter_values(0..10_000)),
            ],
        )
        .unwrap();
        let properties = WriterProperties::builder()
            .set_data_page_row_count_limit(1_000)
            .set_write_batch_size(1_000)
            .build();
        let mut writer = parquet::arrow::ArrowWriter::try_new(
            std::fs::File::create(&file).unwrap(),
            schema.clone(),
            Some(properties),
        )
        .unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();

        // Declared, as a pipeline's datasets are (a schema inferred from the
        // files is read with DataFusion's own metadata path).
        let mut dataset = Dataset::at("t", Location::Local(root.path().to_path_buf()));
        dataset.schema = Some(schema);
        let ctx = query_context(&[dataset]).await.unwrap();
        let (_, rows) = run_sql(&ctx, "SELECT count(*) FROM t").await.unwrap();
        assert_eq!(
            arrow::util::pretty::pretty_format_batches(&rows)
                .unwrap()
                .to_string()
                .lines()
                .nth(3),
            Some("| 10000    |")
        );
        assert_eq!(
            cached_page_index(&ctx, &file).as_deref(),
            Some("false"),
            "the statistics pass decoded the footer only"
        );

        let plan = crate::query::table_text(
            &ctx,
            "EXPLAIN ANALYZE SELECT sum(heart_rate) FROM t WHERE patient_id = 'P03'",
        )
        .await;
        assert!(
            plan.contains("page_index_pages_pruned=10 total → 1 matched"),
            "{plan}"
        );
        let (_, rows) = run_sql(
            &ctx,
            "SELECT sum(heart_rate) FROM t WHERE patient_id = 'P03'",
        )
        .await
        .unwrap();
        let sum: i64 = (3_000..4_000).sum();
        assert!(
            arrow::util::pretty::pretty_format_batches(&rows)
                .unwrap()
                .to_string()
                .contains(&format!("| {sum}")),
            "{rows:?}"
        );
    }

    #[tokio::test]
    async fn server_sessions_keep_datafusions_cached_page_indexes() {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join("a.parquet");
        let schema = std::sync::Arc::new(Schema::new(vec![Field::new(
            "heart_rate",
            DataType::Int64,
            false,
        )]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![std::sync::Arc::new(Int64Array::from_iter_values(0..100))],
        )
        .unwrap();
        let mut writer = parquet::arrow::ArrowWriter::try_new(
            std::fs::File::create(&file).unwrap(),
            schema.clone(),
            None,
        )
        .unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        let mut dataset = Dataset::at("t", Location::Local(root.path().to_path_buf()));
        dataset.schema = Some(schema);
        let session = crate::query::QuerySession::with_limits(
            &[dataset],
            crate::query::QueryLimits {
                memory: Some(64 << 20),
                threads: 2,
            },
        )
        .await
        .unwrap();
        run_sql(&session.ctx, "SELECT count(*) FROM t")
            .await
            .unwrap();
        assert_eq!(
            cached_page_index(&session.ctx, &file).as_deref(),
            Some("true")
        );
    }
}
