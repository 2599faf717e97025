//! Counting rows per partition from the files' footers.
//!
//! `SELECT date, count(*) FROM vitals GROUP BY date` reads no column of
//! any file, yet DataFusion materialises the partition value once per row
//! and hashes it (20M rows: ~240 ms in the partial aggregate). Every
//! Parquet footer holds its exact row count, and the partition values are
//! in the path, so the partial aggregate's answer is known before any file
//! is opened. This rule replaces it with those rows, one per file, when
//! the answer is exactly the same: the aggregates are all `count` of a
//! non-null literal (`count(*)`), with no filter, no DISTINCT and no
//! ordering; the group keys are plain columns; the scan below is a Parquet
//! scan with no filter and no limit that produces partition columns only;
//! and every file's row count is known exactly.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch};
use datafusion::common::ScalarValue;
use datafusion::common::stats::Precision;
use datafusion::config::ConfigOptions;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result;
use datafusion::physical_expr::expressions::{Column, Literal};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;

#[derive(Debug, Default)]
pub(super) struct CountFromFooters;

impl PhysicalOptimizerRule for CountFromFooters {
    fn name(&self) -> &str {
        "count_from_footers"
    }

    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        super::rules::replace_bottom_up(plan, counted)
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// The partial aggregate `node` computed from footers, if it can be.
fn counted(node: &Arc<dyn ExecutionPlan>) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    let Some(aggregate) = super::rules::plain_partial_aggregate(node, |a| {
        a.fun().name() == "count"
            && a.expressions().iter().all(|e| {
                e.downcast_ref::<Literal>()
                    .is_some_and(|l| !l.value().is_null())
            })
    }) else {
        return Ok(None);
    };
    let Some(scan) = aggregate
        .input()
        .downcast_ref::<DataSourceExec>()
        .and_then(|d| d.data_source().downcast_ref::<FileScanConfig>())
    else {
        return Ok(None);
    };
    if scan.file_source.file_type() != "parquet"
        || scan.file_source.filter().is_some()
        || scan.limit.is_some()
    {
        return Ok(None);
    }
    // What the scan produces: indices into (file columns, partition columns).
    let file_columns = scan.file_schema().fields().len();
    let Some(projection) = scan.file_source.projection() else {
        return Ok(None);
    };
    let mut produced = Vec::new();
    for p in projection.iter() {
        match p.expr.downcast_ref::<Column>() {
            Some(c) if c.index() >= file_columns => produced.push(c.index() - file_columns),
            _ => return Ok(None),
        }
    }
    // The group keys: which produced column each is.
    let mut keys = Vec::new();
    for (expr, _) in aggregate.group_expr().expr() {
        match expr.downcast_ref::<Column>() {
            Some(c) if c.index() < produced.len() => keys.push(produced[c.index()]),
            _ => return Ok(None),
        }
    }
    // One row per file (a file split into byte ranges is counted once).
    let mut files: BTreeMap<String, (Vec<ScalarValue>, i64)> = BTreeMap::new();
    for file in scan.file_groups.iter().flat_map(|g| g.files()) {
        let rows = match file.statistics.as_ref().map(|s| &s.num_rows) {
            Some(Precision::Exact(rows)) => *rows as i64,
            _ => return Ok(None),
        };
        let mut values = Vec::with_capacity(keys.len());
        for &key in &keys {
            match file.partition_values.get(key) {
                Some(value) => values.push(value.clone()),
                None => return Ok(None),
            }
        }
        files.insert(file.object_meta.location.to_string(), (values, rows));
    }
    let schema = aggregate.schema();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (k, field) in schema.fields().iter().take(keys.len()).enumerate() {
        let values = files.values().map(|(v, _)| v[k].clone());
        let array = if files.is_empty() {
            arrow::array::new_empty_array(field.data_type())
        } else {
            ScalarValue::iter_to_array(values)?
        };
        if array.data_type() != field.data_type() {
            return Ok(None);
        }
        columns.push(array);
    }
    // Each count's state is one Int64 column: the rows of the file.
    let counts: ArrayRef = Arc::new(Int64Array::from_iter_values(
        files.values().map(|(_, rows)| *rows),
    ));
    for field in schema.fields().iter().skip(keys.len()) {
        if field.data_type() != counts.data_type() {
            return Ok(None);
        }
        columns.push(counts.clone());
    }
    if columns.len() != schema.fields().len() {
        return Ok(None);
    }
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    Ok(Some(MemorySourceConfig::try_new_exec(
        &[vec![batch]],
        schema,
        None,
    )?))
}

#[cfg(test)]
mod tests {
    use arrow::array::{AsArray, Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};

    use super::*;
    use crate::query::{Dataset, query_context, run_sql};
    use crate::storage::Location;

    /// Three files over two days; one reading without a heart rate.
    fn dataset(root: &std::path::Path) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("patient_id", DataType::Utf8, false),
            Field::new("heart_rate", DataType::Int64, true),
        ]));
        for (day, name, rows) in [
            ("2026-03-01", "a.parquet", 3),
            ("2026-03-01", "b.parquet", 4),
            ("2026-03-02", "c.parquet", 5),
        ] {
            let dir = root.join(format!("date={day}"));
            std::fs::create_dir_all(&dir).unwrap();
            let heart: Vec<Option<i64>> = (0..rows)
                .map(|i| (name != "b.parquet" || i > 0).then_some(70 + i))
                .collect();
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(StringArray::from_iter_values(
                        (0..rows).map(|i| format!("P{i}")),
                    )),
                    Arc::new(Int64Array::from(heart)),
                ],
            )
            .unwrap();
            let file = std::fs::File::create(dir.join(name)).unwrap();
            let mut writer =
                parquet::arrow::ArrowWriter::try_new(file, schema.clone(), None).unwrap();
            writer.write(&batch).unwrap();
            writer.close().unwrap();
        }
    }

    async fn counts(ctx: &datafusion::prelude::SessionContext, sql: &str) -> Vec<(String, i64)> {
        let (_, batches) = run_sql(ctx, sql).await.unwrap();
        let mut out = Vec::new();
        for batch in batches {
            let dates = arrow::compute::cast(batch.column(0), &DataType::Utf8).unwrap();
            let n = arrow::compute::cast(batch.column(1), &DataType::Int64).unwrap();
            for i in 0..batch.num_rows() {
                out.push((
                    dates.as_string::<i32>().value(i).to_string(),
                    n.as_primitive::<Int64Type>().value(i),
                ));
            }
        }
        out.sort();
        out
    }

    #[tokio::test]
    async fn counts_per_partition_come_from_footers_and_equal_a_scan() {
        let root = tempfile::tempdir().unwrap();
        dataset(root.path());
        let ctx = query_context(&[Dataset::at("t", Location::Local(root.path().to_path_buf()))])
            .await
            .unwrap();
        let expected = vec![("2026-03-01".to_string(), 7), ("2026-03-02".to_string(), 5)];
        let from_footers = "SELECT date, count(*) FROM t GROUP BY date";
        assert_eq!(counts(&ctx, from_footers).await, expected);
        let plan = crate::query::table_text(&ctx, &format!("EXPLAIN {from_footers}")).await;
        assert!(
            !plan.contains("file_type=parquet"),
            "no file is scanned:\n{plan}"
        );
        // A filter, or a count of a column that can be null, scans the files.
        let scanned = "SELECT date, count(*) FROM t WHERE patient_id <> '' GROUP BY date";
        assert_eq!(counts(&ctx, scanned).await, expected);
        let plan = crate::query::table_text(&ctx, &format!("EXPLAIN {scanned}")).await;
        assert!(plan.contains("file_type=parquet"), "{plan}");
        assert_eq!(
            counts(&ctx, "SELECT date, count(heart_rate) FROM t GROUP BY date").await,
            vec![("2026-03-01".to_string(), 6), ("2026-03-02".to_string(), 5)]
        );
        assert_eq!(
            counts(
                &ctx,
                "SELECT date, count(*) FROM t WHERE date = '2026-03-02' GROUP BY date"
            )
            .await,
            vec![("2026-03-02".to_string(), 5)]
        );
        // Without GROUP BY: DataFusion's own statistics rule answers it.
        let (_, total) = run_sql(&ctx, "SELECT count(*) FROM t").await.unwrap();
        assert_eq!(total[0].column(0).as_primitive::<Int64Type>().value(0), 12);
    }
}
