//! Where datasets live, named by a location URL: a local directory, an S3
//! bucket prefix or an HDFS path.
//!
//! - [`publish`]: the staged-then-published file protocol every durable sink follows.
//! - [`store`]: opening the `object_store` behind a remote location.
//! - [`spool`]: the local directory where a remote dataset's completed files wait.
//! - [`forward`]: the task that uploads them, in order, exactly once.
//! - [`overlay`]: the read view (store plus spool) that queries use.
//! - [`compaction`]: the record of what a compacted date partition absorbed, and its atomic swap.
//! - [`status`]: per target, degraded or not and how much waits, for `/health`.

pub mod compaction;
mod error;
mod events;
pub mod forward;
mod location;
pub mod overlay;
pub mod publish;
pub mod spool;
pub mod status;
pub mod store;

pub use error::{ConfigError, IoContext, StorageError};
pub use location::{Location, RemoteLocation, StoreKind};
pub use publish::{Published, StagedFile};
