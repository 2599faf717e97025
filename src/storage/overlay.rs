//! The read view of a remote dataset: the store, with the files still
//! waiting in the local spool laid over it.
//!
//! Queries register this as the object store of `s3://bucket` (or the
//! namenode), so DataFusion's listing, partition pruning and ranged Parquet
//! reads work unchanged, and a file is visible from the moment it is
//! published, whether or not it has been uploaded yet.
//!
//! A file moves from the spool to the store while a query may be listing:
//! the spool is listed *before* the store, and a name found in both is
//! listed once, so no file is missed or counted twice. Reads try the spool
//! first and fall back to the store when the file has just moved.
//!
//! When the store cannot be listed (it is down), the overlay lists the
//! spooled files alone and records why: inside [`collect_warnings`] for the
//! query running there (the server runs each query so, and answers it with
//! its own warnings), elsewhere in [`Overlay::take_warnings`], which
//! `vitalflow query` prints. Recent data stays readable during an outage,
//! and nobody mistakes it for the whole lake.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

tokio::task_local! {
    /// The warnings of the query running in this task (see [`collect_warnings`]).
    static QUERY_WARNINGS: Arc<Mutex<Vec<String>>>;
}

/// Run `query` and return the warnings recorded while it ran, by this task
/// alone: concurrent queries each get their own. Listing happens while a
/// query is planned, in the task that plans it.
pub async fn collect_warnings<F: Future>(query: F) -> (F::Output, Vec<String>) {
    let mine = Arc::new(Mutex::new(Vec::new()));
    let output = QUERY_WARNINGS.scope(mine.clone(), query).await;
    let mut warnings = std::mem::take(&mut *mine.lock().unwrap_or_else(|e| e.into_inner()));
    warnings.dedup();
    (output, warnings)
}

/// A spool directory and the dataset prefix its files belong under.
struct SpoolMount {
    prefix: Path,
    dir: PathBuf,
}

impl SpoolMount {
    /// The spool as a store, once it exists (a sink creates it when it
    /// starts, which may be after a server opened this view).
    fn local(&self) -> Option<LocalFileSystem> {
        LocalFileSystem::new_with_prefix(&self.dir).ok()
    }
}

/// The store plus its spools, read-only.
#[derive(Clone)]
pub struct Overlay {
    inner: Arc<OverlayInner>,
}

struct OverlayInner {
    name: String,
    store: Arc<dyn ObjectStore>,
    mounts: Vec<SpoolMount>,
    warnings: Mutex<Vec<String>>,
}

impl Overlay {
    /// `spools`: (dataset prefix in the store, local spool directory).
    pub fn new(name: String, store: Arc<dyn ObjectStore>, spools: Vec<(Path, PathBuf)>) -> Self {
        let mounts = spools
            .into_iter()
            .map(|(prefix, dir)| SpoolMount { prefix, dir })
            .collect();
        Self {
            inner: Arc::new(OverlayInner {
                name,
                store,
                mounts,
                warnings: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Why results may be partial (the store could not be listed), since
    /// the last call; empty when everything was read.
    pub fn take_warnings(&self) -> Vec<String> {
        let mut warnings = self
            .inner
            .warnings
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mut taken = std::mem::take(&mut *warnings);
        taken.dedup();
        taken
    }

    /// `detail` (the store's error) goes to the log only: clients see
    /// `message`, never an upstream response.
    fn warn(&self, message: String, detail: &object_store::Error) {
        tracing::warn!(store = %self.inner.name, error = %detail, "{message}");
        let scoped = QUERY_WARNINGS.try_with(|mine| {
            mine.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(message.clone())
        });
        if scoped.is_err() {
            self.inner
                .warnings
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(message);
        }
    }

    /// The spool holding `location` and the path inside it, if any.
    fn spooled(&self, location: &Path) -> Option<(LocalFileSystem, Path)> {
        self.inner.mounts.iter().find_map(|m| {
            let parts = location.prefix_match(&m.prefix)?;
            Some((m.local()?, Path::from_iter(parts)))
        })
    }

    /// The spools that can hold objects below `prefix`, and the prefix to
    /// list inside each.
    fn spools_under(&self, prefix: Option<&Path>) -> Vec<(&SpoolMount, Option<Path>)> {
        let wanted = prefix.cloned().unwrap_or_default();
        self.inner
            .mounts
            .iter()
            .filter_map(|m| {
                if let Some(inside) = wanted.prefix_match(&m.prefix) {
                    let inside = Path::from_iter(inside);
                    Some((m, (!inside.as_ref().is_empty()).then_some(inside)))
                } else if m.prefix.prefix_matches(&wanted) {
                    // The whole spool lies below the listed prefix.
                    Some((m, None))
                } else {
                    None
                }
            })
            .collect()
    }

    async fn list_all(&self, prefix: Option<Path>) -> Result<Vec<ObjectMeta>> {
        let mut found: BTreeMap<Path, ObjectMeta> = BTreeMap::new();
        // The spool first: a file uploaded meanwhile is then in the store.
        for (mount, inside) in self.spools_under(prefix.as_ref()) {
            let Some(local) = mount.local() else { continue };
            let mut spooled = local.list(inside.as_ref());
            while let Some(meta) = spooled.try_next().await? {
                let location = join(&mount.prefix, &meta.location);
                found.insert(location.clone(), ObjectMeta { location, ..meta });
            }
        }
        let listed: Result<Vec<ObjectMeta>> =
            self.inner.store.list(prefix.as_ref()).try_collect().await;
        match listed {
            Ok(stored) => {
                for meta in stored {
                    found.entry(meta.location.clone()).or_insert(meta);
                }
            }
            Err(error) if self.inner.mounts.is_empty() => return Err(error),
            Err(error) => self.warn(
                format!(
                    "{} could not be listed; results include only the {} files waiting in the \
                     local spool",
                    self.inner.name,
                    found.len()
                ),
                &error,
            ),
        }
        Ok(found.into_values().collect())
    }
}

fn join(prefix: &Path, inside: &Path) -> Path {
    prefix.parts().chain(inside.parts()).collect()
}

impl std::fmt::Debug for Overlay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Overlay({})", self.inner.name)
    }
}

impl std::fmt::Display for Overlay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} with its local spool", self.inner.name)
    }
}

fn read_only() -> object_store::Error {
    object_store::Error::NotSupported {
        source: "the query view of a dataset is read-only".into(),
    }
}

#[async_trait]
impl ObjectStore for Overlay {
    async fn put_opts(&self, _: &Path, _: PutPayload, _: PutOptions) -> Result<PutResult> {
        Err(read_only())
    }

    async fn put_multipart_opts(
        &self,
        _: &Path,
        _: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        Err(read_only())
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        if let Some((local, inside)) = self.spooled(location) {
            match local.get_opts(&inside, options.clone()).await {
                Ok(mut result) => {
                    result.meta.location = location.clone();
                    return Ok(result);
                }
                // Uploaded and deleted since it was listed: read the store.
                Err(object_store::Error::NotFound { .. }) => {}
                Err(error) => return Err(error),
            }
        }
        self.inner.store.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        if let Some((local, inside)) = self.spooled(location) {
            match local.get_ranges(&inside, ranges).await {
                Ok(bytes) => return Ok(bytes),
                Err(object_store::Error::NotFound { .. }) => {}
                Err(error) => return Err(error),
            }
        }
        self.inner.store.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        locations.map(|_| Err(read_only())).boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let this = self.clone();
        let prefix = prefix.cloned();
        futures::stream::once(async move { this.list_all(prefix).await })
            .map_ok(|all| futures::stream::iter(all.into_iter().map(Ok)))
            .try_flatten()
            .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let mut objects: BTreeMap<Path, ObjectMeta> = BTreeMap::new();
        let mut common: std::collections::BTreeSet<Path> = Default::default();
        for (mount, inside) in self.spools_under(prefix) {
            if inside.is_none() && prefix.is_some_and(|p| mount.prefix != *p) {
                // The spool is deeper than the listed level: it shows up as
                // the directory on the way to it.
                let wanted = prefix.cloned().unwrap_or_default();
                if let Some(next) = mount
                    .prefix
                    .prefix_match(&wanted)
                    .and_then(|mut p| p.next())
                {
                    common.insert(wanted.parts().chain(std::iter::once(next)).collect());
                }
                continue;
            }
            let Some(local) = mount.local() else { continue };
            let listed = local.list_with_delimiter(inside.as_ref()).await?;
            for dir in listed.common_prefixes {
                common.insert(join(&mount.prefix, &dir));
            }
            for meta in listed.objects {
                let location = join(&mount.prefix, &meta.location);
                objects.insert(location.clone(), ObjectMeta { location, ..meta });
            }
        }
        match self.inner.store.list_with_delimiter(prefix).await {
            Ok(stored) => {
                common.extend(stored.common_prefixes);
                for meta in stored.objects {
                    objects.entry(meta.location.clone()).or_insert(meta);
                }
            }
            Err(error) if self.inner.mounts.is_empty() => return Err(error),
            Err(error) => self.warn(
                format!(
                    "{} could not be listed; results include only the files waiting in the local \
                     spool",
                    self.inner.name
                ),
                &error,
            ),
        }
        Ok(ListResult {
            common_prefixes: common.into_iter().collect(),
            objects: objects.into_values().collect(),
        })
    }

    async fn copy_opts(&self, _: &Path, _: &Path, _: CopyOptions) -> Result<()> {
        Err(read_only())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;
    use object_store::memory::InMemory;

    async fn names(store: &Overlay, prefix: &str) -> Vec<String> {
        let prefix = Path::from(prefix);
        let mut names: Vec<String> = store
            .list(Some(&prefix))
            .map_ok(|m| m.location.to_string())
            .try_collect()
            .await
            .unwrap();
        names.sort();
        names
    }

    #[tokio::test]
    async fn spooled_and_stored_files_are_listed_once_and_readable() {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool");
        std::fs::create_dir_all(spool.join("date=2026-11-26")).unwrap();
        std::fs::write(spool.join("date=2026-11-26/b.parquet"), b"spooled").unwrap();
        std::fs::write(spool.join("date=2026-11-26/both.parquet"), b"same").unwrap();
        let store = Arc::new(InMemory::new());
        store
            .put(
                &Path::from("lake/v/date=2026-11-26/a.parquet"),
                PutPayload::from_static(b"stored"),
            )
            .await
            .unwrap();
        store
            .put(
                &Path::from("lake/v/date=2026-11-26/both.parquet"),
                PutPayload::from_static(b"same"),
            )
            .await
            .unwrap();
        let overlay = Overlay::new("s3://b".into(), store, vec![(Path::from("lake/v"), spool)]);
        assert_eq!(
            names(&overlay, "lake/v").await,
            [
                "lake/v/date=2026-11-26/a.parquet",
                "lake/v/date=2026-11-26/b.parquet",
                "lake/v/date=2026-11-26/both.parquet"
            ]
        );
        assert_eq!(
            names(&overlay, "lake").await.len(),
            3,
            "listing above the prefix"
        );
        let partitions = overlay
            .list_with_delimiter(Some(&Path::from("lake/v")))
            .await
            .unwrap();
        assert_eq!(
            partitions.common_prefixes,
            [Path::from("lake/v/date=2026-11-26")]
        );
        let upper = overlay
            .list_with_delimiter(Some(&Path::from("lake")))
            .await
            .unwrap();
        assert_eq!(upper.common_prefixes, [Path::from("lake/v")]);
        let spooled = overlay
            .get(&Path::from("lake/v/date=2026-11-26/b.parquet"))
            .await
            .unwrap();
        assert_eq!(
            spooled.meta.location.as_ref(),
            "lake/v/date=2026-11-26/b.parquet"
        );
        assert_eq!(&spooled.bytes().await.unwrap()[..], b"spooled");
        let stored = overlay
            .get_range(&Path::from("lake/v/date=2026-11-26/a.parquet"), 0..3)
            .await
            .unwrap();
        assert_eq!(&stored[..], b"sto");
        assert!(overlay.take_warnings().is_empty());
    }

    /// A store on a loopback port nobody listens on: listing fails at once.
    fn unreachable_store() -> Arc<dyn ObjectStore> {
        let port = vitalflow_bench::net::free_port();
        let store = object_store::aws::AmazonS3Builder::new()
            .with_endpoint(format!("http://127.0.0.1:{port}"))
            .with_allow_http(true)
            .with_bucket_name("down")
            .with_region("us-east-1")
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .with_retry(object_store::RetryConfig {
                max_retries: 0,
                ..Default::default()
            })
            .build()
            .unwrap();
        Arc::new(store)
    }

    #[tokio::test]
    async fn warnings_belong_to_the_query_that_saw_them() {
        let dir = tempfile::tempdir().unwrap();
        let down = Overlay::new(
            "s3://down".into(),
            unreachable_store(),
            vec![(Path::from("lake/v"), dir.path().to_path_buf())],
        );
        let up = Overlay::new(
            "s3://up".into(),
            Arc::new(InMemory::new()),
            vec![(Path::from("lake/v"), dir.path().to_path_buf())],
        );
        // Two queries at once: only the one that listed the unreachable
        // store is told its result is partial.
        let ((_, failed), (_, fine)) = tokio::join!(
            collect_warnings(names(&down, "lake/v")),
            collect_warnings(names(&up, "lake/v")),
        );
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert!(
            failed[0].contains("s3://down could not be listed"),
            "{failed:?}"
        );
        assert!(
            !failed[0].contains("127.0.0.1"),
            "no upstream detail: {failed:?}"
        );
        assert!(fine.is_empty(), "{fine:?}");
        // Nothing leaked into the session-wide list either.
        assert!(down.take_warnings().is_empty());
        // Outside a query scope, warnings go to the overlay (`vitalflow query`).
        names(&down, "lake/v").await;
        assert_eq!(down.take_warnings().len(), 1);
    }
}
