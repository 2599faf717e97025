//! Dataset locations: a plain path or `file://` URL today.

use std::path::{Path, PathBuf};

use url::Url;

/// A dataset root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A directory on the local file system.
    Local(PathBuf),
}

impl Location {
    /// Parse `data/vitals`, `/abs/path` or `file:///abs/path`; relative paths
    /// are resolved against `base` (the pipeline file's directory's parent
    /// project, or the working directory).
    ///
    /// ```
    /// # use vitalflow::storage::Location;
    /// # use std::path::Path;
    /// let l = Location::parse("file:///srv/vitals", Path::new(".")).unwrap();
    /// assert_eq!(l, Location::Local("/srv/vitals".into()));
    /// assert!(Location::parse("ftp://x/y", Path::new(".")).is_err());
    /// ```
    pub fn parse(raw: &str, base: &Path) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err("location is empty".into());
        }
        match Url::parse(raw) {
            // A Windows drive letter or a bare relative path is not a URL scheme we know.
            Ok(url) if url.scheme().len() > 1 => match url.scheme() {
                "file" => url
                    .to_file_path()
                    .map(Location::Local)
                    .map_err(|()| format!("`{raw}` is not a valid file:// URL")),
                "s3" | "hdfs" | "webhdfs" | "gs" | "az" => Err(format!(
                    "`{raw}`: {}:// locations are not supported by this build yet; use a local path or file:// URL",
                    url.scheme()
                )),
                other => Err(format!(
                    "`{raw}`: unknown location scheme `{other}://`; use a local path or file:// URL"
                )),
            },
            _ => {
                let path = Path::new(raw);
                Ok(Location::Local(if path.is_absolute() {
                    path.to_path_buf()
                } else {
                    base.join(path)
                }))
            }
        }
    }

    /// The local directory, for the sink and the query engine.
    pub fn local_path(&self) -> &Path {
        match self {
            Location::Local(p) => p,
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Local(p) => write!(f, "{}", p.display()),
        }
    }
}
