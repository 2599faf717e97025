//! File and directory names of a Parquet dataset.
//!
//! `part-<UTC creation time>-<writer id>-<sequence>.parquet`: the creation
//! time makes names sort in write order, the random writer id keeps two
//! writers (or a restarted one) from ever choosing the same name. A file
//! being written is `.staging/.<final name>.inprogress` below the dataset's
//! root (the same file system, so the rename that publishes it is atomic),
//! and readers, which list `*.parquet` outside hidden directories, never
//! see it.

use chrono::{DateTime, NaiveDate, Utc};

pub const DATA_FILE_SUFFIX: &str = ".parquet";
pub const IN_PROGRESS_SUFFIX: &str = ".inprogress";
/// Where files are written before they are published, below the root.
pub const STAGING_DIR: &str = ".staging";
/// Hive's name for rows whose partition value is null.
pub const NULL_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

pub fn data_file_name(created: DateTime<Utc>, writer_id: &str, sequence: u64) -> String {
    format!(
        "part-{}-{writer_id}-{sequence:06}{DATA_FILE_SUFFIX}",
        created.format("%Y%m%dT%H%M%S%3fZ")
    )
}

pub fn in_progress_name(final_name: &str) -> String {
    format!(".{final_name}{IN_PROGRESS_SUFFIX}")
}

pub fn is_in_progress_file(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(IN_PROGRESS_SUFFIX)
}

/// `date=YYYY-MM-DD` for a day number (days since 1970-01-01).
pub fn date_partition(days_since_epoch: Option<i32>) -> String {
    let value = days_since_epoch
        .and_then(|d| NaiveDate::from_num_days_from_ce_opt(d + 719_163))
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| NULL_PARTITION.to_string());
    format!("date={value}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_in_creation_order() {
        let t1 = DateTime::from_timestamp_millis(1_700_000_000_000).unwrap();
        let t2 = DateTime::from_timestamp_millis(1_700_000_000_001).unwrap();
        assert!(data_file_name(t1, "ffff", 9) < data_file_name(t2, "0000", 0));
        assert_eq!(
            data_file_name(t1, "ab12", 3),
            "part-20231114T221320000Z-ab12-000003.parquet"
        );
    }

    #[test]
    fn partitions() {
        assert_eq!(date_partition(Some(0)), "date=1970-01-01");
        assert_eq!(date_partition(Some(20_418)), "date=2025-11-26");
        assert_eq!(date_partition(None), "date=__HIVE_DEFAULT_PARTITION__");
        assert!(is_in_progress_file(&in_progress_name("part-x.parquet")));
        assert!(!is_in_progress_file("part-x.parquet"));
    }
}
