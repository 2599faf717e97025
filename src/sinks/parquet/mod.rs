//! Parquet sink: rolling files, Hive-style date partitions, atomic publish.

pub mod compact;
mod config;
mod events;
mod naming;
mod sink;
mod sort;
mod writer;

pub use config::{
    CompactConfig, Compression, ParquetSinkConfig, RollPolicy, SpoolConfig, default_spool_dir,
};
pub use naming::{DATA_FILE_SUFFIX, IN_PROGRESS_SUFFIX, is_in_progress_file};
pub use sink::ParquetSink;
