//! [`CheckpointFiles`]: where manifests and state files are kept, a local
//! directory or a prefix in an object store (S3, HDFS), so that an instance
//! on another machine can take partitions over.
//!
//! Objects are named `<writer>/<file>` under the root. Every write is
//! atomic: locally a temporary file, fsync and rename; in an object store
//! one PUT (HDFS's client writes a hidden file and renames it), so a reader
//! never sees half a manifest. Names never collide (a writer id is unique
//! and its epochs only grow), so no conditional write is needed.
//!
//! The checkpoint protocol is synchronous (it runs between batches, and
//! from Kafka's rebalance callback on the consumer thread), while
//! `object_store` is async: remote calls block on the runtime the store was
//! opened in, which must be Tokio's multi-thread runtime.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt};

use super::super::error::CheckpointError;
use crate::storage::Location;
use crate::storage::publish::write_atomically;

/// The lock file writers on one machine publish under (one level above the
/// writers' directories, so listings never see it).
const PUBLISH_LOCK: &str = ".publish.lock";

/// Held while a checkpoint is checked and recorded
/// ([`CheckpointFiles::lock_for_publishing`]); the lock ends with it.
#[derive(Debug)]
pub struct PublishLock {
    _file: Option<std::fs::File>,
}

/// The root of a pipeline's checkpoints.
#[derive(Debug, Clone)]
pub enum CheckpointFiles {
    Local(PathBuf),
    Remote(RemoteFiles),
}

/// A prefix in an object store.
#[derive(Debug, Clone)]
pub struct RemoteFiles {
    store: Arc<dyn ObjectStore>,
    prefix: object_store::path::Path,
    /// `s3://bucket/prefix`, for messages.
    url: String,
    runtime: tokio::runtime::Handle,
}

impl CheckpointFiles {
    /// Open the checkpoints at `location` (`settings`: the `store:` keys of
    /// a remote one). A remote store must be opened inside Tokio's
    /// multi-thread runtime, which its calls then block on.
    pub fn open(
        location: &Location,
        settings: &BTreeMap<String, String>,
    ) -> Result<Self, CheckpointError> {
        match location {
            Location::Local(dir) => Ok(Self::Local(dir.clone())),
            Location::Remote(remote) => {
                let runtime = tokio::runtime::Handle::try_current()
                    .ok()
                    .filter(|h| {
                        h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
                    })
                    .ok_or_else(|| CheckpointError::Remote {
                        context: format!(
                            "opening checkpoints at {}: remote checkpoints need Tokio's multi-thread runtime",
                            remote.directory_url()
                        ),
                        source: None,
                    })?;
                let store = crate::storage::store::open_store(remote, settings).map_err(|e| {
                    CheckpointError::Write {
                        context: format!("opening checkpoints at {}", remote.directory_url()),
                        source: e,
                    }
                })?;
                Ok(Self::Remote(RemoteFiles {
                    store,
                    prefix: remote.prefix(),
                    url: remote.directory_url().trim_end_matches('/').to_string(),
                    runtime,
                }))
            }
        }
    }

    /// Where `key` (`writer/file`) is, for messages and logs.
    pub fn describe(&self, key: &str) -> String {
        match self {
            Self::Local(dir) => dir.join(key).display().to_string(),
            Self::Remote(r) => format!("{}/{key}", r.url),
        }
    }

    /// The root, for messages.
    pub fn root(&self) -> String {
        match self {
            Self::Local(dir) => dir.display().to_string(),
            Self::Remote(r) => r.url.clone(),
        }
    }

    /// Make room for a new writer's files.
    pub fn create_writer(&self, writer: &str) -> Result<(), CheckpointError> {
        match self {
            Self::Local(dir) => {
                std::fs::create_dir_all(dir.join(writer)).map_err(|source| CheckpointError::Io {
                    context: format!("creating checkpoint directory {}", dir.display()),
                    source,
                })
            }
            // Object stores have no directories.
            Self::Remote(_) => Ok(()),
        }
    }

    /// Hold every other writer on this machine off publishing until the
    /// returned guard is dropped (a lock on `<dir>/.publish.lock`), so that
    /// a checkpoint's ownership check and its manifest are one step. An
    /// object store has no such lock: the guard holds nothing there.
    pub fn lock_for_publishing(&self) -> Result<PublishLock, CheckpointError> {
        match self {
            Self::Local(dir) => {
                let path = dir.join(PUBLISH_LOCK);
                let io = |source| CheckpointError::Io {
                    context: format!("locking {} to publish a checkpoint", path.display()),
                    source,
                };
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&path)
                    .map_err(io)?;
                file.lock().map_err(io)?;
                Ok(PublishLock { _file: Some(file) })
            }
            Self::Remote(_) => Ok(PublishLock { _file: None }),
        }
    }

    /// Write `bytes` as `key`, atomically and durably; `context` says what
    /// is written where, for the error.
    pub fn write(&self, key: &str, bytes: Vec<u8>, context: String) -> Result<(), CheckpointError> {
        match self {
            Self::Local(dir) => write_atomically(&dir.join(key), &bytes)
                .map_err(|source| CheckpointError::Write { context, source }),
            Self::Remote(r) => r
                .block_on(r.store.put(&r.path(key), bytes.into()))
                .map(|_| ())
                .map_err(|e| r.error(context, e)),
        }
    }

    /// The bytes of `key`, or `None` if it does not exist (its writer
    /// removed it meanwhile).
    pub fn read(&self, key: &str) -> Result<Option<Vec<u8>>, CheckpointError> {
        match self {
            Self::Local(dir) => {
                let path = dir.join(key);
                match std::fs::read(&path) {
                    Ok(bytes) => Ok(Some(bytes)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(source) => Err(CheckpointError::Io {
                        context: format!("reading checkpoint file {}", path.display()),
                        source,
                    }),
                }
            }
            Self::Remote(r) => {
                let path = r.path(key);
                let read = r.block_on(async {
                    match r.store.get(&path).await {
                        Ok(result) => result.bytes().await.map(Some),
                        Err(object_store::Error::NotFound { .. }) => Ok(None),
                        Err(e) => Err(e),
                    }
                });
                read.map(|b| b.map(|b| b.to_vec()))
                    .map_err(|e| r.error(format!("reading {}/{key}", r.url), e))
            }
        }
    }

    /// Remove `key`; one already gone is no error.
    pub fn delete(&self, key: &str) -> Result<(), CheckpointError> {
        match self {
            Self::Local(dir) => match std::fs::remove_file(dir.join(key)) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(source) => Err(CheckpointError::Io {
                    context: format!("removing {}", dir.join(key).display()),
                    source,
                }),
            },
            Self::Remote(r) => match r.block_on(r.store.delete(&r.path(key))) {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(r.error(format!("removing {}/{key}", r.url), e)),
            },
        }
    }

    /// Every `writer/file` key under the root, sorted. A root that does not
    /// exist yet has none.
    pub fn list(&self) -> Result<Vec<String>, CheckpointError> {
        let mut keys = match self {
            Self::Local(dir) => list_local(dir)?,
            Self::Remote(r) => {
                let listed: Vec<object_store::ObjectMeta> = r
                    .block_on(r.store.list(Some(&r.prefix)).try_collect())
                    .map_err(|e| r.error(format!("listing checkpoints in {}", r.url), e))?;
                listed
                    .into_iter()
                    .filter_map(|meta| {
                        let parts: Vec<String> = meta
                            .location
                            .prefix_match(&r.prefix)?
                            .map(|p| p.as_ref().to_string())
                            .collect();
                        (parts.len() == 2).then(|| parts.join("/"))
                    })
                    .collect()
            }
        };
        keys.sort();
        Ok(keys)
    }
}

/// `writer/file` keys two levels under `dir` (an unreadable writer
/// directory is skipped; an unreadable `dir` is an error).
fn list_local(dir: &Path) -> Result<Vec<String>, CheckpointError> {
    let mut keys = Vec::new();
    for entry in walkdir::WalkDir::new(dir).min_depth(2).max_depth(2) {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) if e.depth() == 0 => {
                let Some(io) = e.into_io_error() else {
                    continue;
                };
                if io.kind() == std::io::ErrorKind::NotFound {
                    return Ok(keys);
                }
                return Err(CheckpointError::Io {
                    context: format!("listing checkpoints in {}", dir.display()),
                    source: io,
                });
            }
            Err(_) => continue,
        };
        if let Ok(relative) = entry.path().strip_prefix(dir) {
            let parts: Vec<String> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            keys.push(parts.join("/"));
        }
    }
    Ok(keys)
}

impl RemoteFiles {
    fn path(&self, key: &str) -> object_store::path::Path {
        key.split('/')
            .fold(self.prefix.clone(), |path, part| path.join(part))
    }

    /// Run `future` to completion from synchronous code: on a worker of
    /// the multi-thread runtime (moving its other tasks away meanwhile), or
    /// from a thread outside it (the Kafka consumer's).
    fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        match tokio::runtime::Handle::try_current() {
            Ok(_) => tokio::task::block_in_place(|| self.runtime.block_on(future)),
            Err(_) => self.runtime.block_on(future),
        }
    }

    fn error(&self, context: String, source: object_store::Error) -> CheckpointError {
        CheckpointError::Remote {
            context,
            source: Some(source),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_files_are_listed_two_levels_deep_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let files = CheckpointFiles::Local(dir.path().join("checkpoints"));
        assert!(
            files.list().unwrap().is_empty(),
            "a missing root has no files"
        );
        files.create_writer("w1").unwrap();
        files
            .write("w1/checkpoint-1.json", b"{}".to_vec(), "a manifest".into())
            .unwrap();
        files
            .write("w1/state-1-x.arrow", b"s".to_vec(), "state".into())
            .unwrap();
        assert_eq!(
            files.list().unwrap(),
            ["w1/checkpoint-1.json", "w1/state-1-x.arrow"]
        );
        assert_eq!(files.read("w1/state-1-x.arrow").unwrap().unwrap(), b"s");
        files.delete("w1/state-1-x.arrow").unwrap();
        files.delete("w1/state-1-x.arrow").unwrap();
        assert_eq!(files.read("w1/state-1-x.arrow").unwrap(), None);
    }
}
