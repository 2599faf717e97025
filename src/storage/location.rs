//! Dataset locations: a local path or `file://` URL, an S3 (or
//! S3-compatible) `s3://bucket/prefix`, or an HDFS `hdfs://namenode:port/path`.

use std::path::{Path, PathBuf};

use url::Url;

use super::error::ConfigError;

/// A dataset root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A directory on the local file system.
    Local(PathBuf),
    /// A prefix in an object store.
    Remote(RemoteLocation),
}

/// The object stores vitalflow writes to and reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// Amazon S3 or any S3-compatible server (MinIO, Ceph, s3s-fs, ...).
    S3,
    /// HDFS over its native RPC protocol (`hdfs://`, `viewfs://`).
    Hdfs,
}

/// `s3://bucket/prefix` or `hdfs://namenode:port/path`, normalised to end
/// without a slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteLocation {
    pub kind: StoreKind,
    url: Url,
}

impl RemoteLocation {
    /// `s3://bucket` or `hdfs://namenode:port`: what an object store is
    /// registered under.
    pub fn store_url(&self) -> Url {
        let mut url = self.url.clone();
        url.set_path("");
        url
    }

    /// The dataset's prefix inside the store (no leading or trailing slash).
    pub fn prefix(&self) -> object_store::path::Path {
        object_store::path::Path::from(self.url.path().trim_matches('/'))
    }

    /// The whole location as a URL ending in `/` (a directory, for listing).
    pub fn directory_url(&self) -> String {
        format!("{}/", self.url.as_str().trim_end_matches('/'))
    }

    pub fn url(&self) -> &Url {
        &self.url
    }
}

impl Location {
    /// Parse `data/vitals`, `/abs/path`, `file:///abs/path`,
    /// `s3://bucket/prefix` or `hdfs://namenode:8020/path`; relative paths
    /// are resolved against `base`.
    ///
    /// ```
    /// # use vitalflow::storage::Location;
    /// # use std::path::Path;
    /// let l = Location::parse("file:///srv/vitals", Path::new(".")).unwrap();
    /// assert_eq!(l, Location::Local("/srv/vitals".into()));
    /// let s3 = Location::parse("s3://lake/vitals/", Path::new(".")).unwrap();
    /// assert_eq!(s3.to_string(), "s3://lake/vitals");
    /// assert!(Location::parse("ftp://x/y", Path::new(".")).is_err());
    /// ```
    pub fn parse(raw: &str, base: &Path) -> Result<Self, ConfigError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(ConfigError::Empty);
        }
        match Url::parse(raw) {
            // Credentials in a URL end up in logs, error messages and
            // `ps`; refused before anything quotes the URL back.
            Ok(url) if !url.username().is_empty() || url.password().is_some() => {
                Err(ConfigError::Credentials {
                    scheme: url.scheme().to_string(),
                })
            }
            // A Windows drive letter or a bare relative path is not a URL scheme we know.
            Ok(url) if url.scheme().len() > 1 => match url.scheme() {
                "file" => {
                    url.to_file_path()
                        .map(Location::Local)
                        .map_err(|()| ConfigError::FileUrl {
                            raw: raw.to_string(),
                        })
                }
                "s3" | "s3a" => remote(raw, url, StoreKind::S3),
                "hdfs" | "viewfs" => remote(raw, url, StoreKind::Hdfs),
                "webhdfs" | "swebhdfs" => Err(ConfigError::Scheme {
                    raw: raw.to_string(),
                    reason: format!(
                        "WebHDFS (HTTP) is not supported; vitalflow speaks HDFS's native RPC: \
                         use hdfs://<namenode>:<rpc port, usually 8020>{}",
                        url.path()
                    ),
                }),
                other => Err(ConfigError::Scheme {
                    raw: raw.to_string(),
                    reason: format!(
                        "unknown location scheme `{other}://`; use a local path, file://, \
                         s3://bucket/prefix or hdfs://namenode:port/path"
                    ),
                }),
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

    /// The local directory, if this is one.
    pub fn as_local(&self) -> Option<&Path> {
        match self {
            Location::Local(p) => Some(p),
            Location::Remote(_) => None,
        }
    }

    pub fn as_remote(&self) -> Option<&RemoteLocation> {
        match self {
            Location::Local(_) => None,
            Location::Remote(r) => Some(r),
        }
    }
}

fn remote(raw: &str, mut url: Url, kind: StoreKind) -> Result<Location, ConfigError> {
    let host = url.host_str().unwrap_or_default();
    if host.is_empty() {
        let what = match kind {
            StoreKind::S3 => "bucket (s3://bucket/prefix)",
            StoreKind::Hdfs => "namenode (hdfs://namenode:8020/path)",
        };
        return Err(ConfigError::NoHost {
            raw: raw.to_string(),
            what,
        });
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::Url {
            raw: raw.to_string(),
            reason:
                "a location takes no `?query` or `#fragment`; put store settings under `store:`"
                    .to_string(),
        });
    }
    if kind == StoreKind::S3 && url.port().is_some() {
        return Err(ConfigError::Url {
            raw: raw.to_string(),
            reason: "the part after s3:// is a bucket name, not a server; \
                     set the server with `store: {endpoint: http://host:port}` or AWS_ENDPOINT_URL"
                .to_string(),
        });
    }
    if kind == StoreKind::S3 && url.scheme() == "s3a" {
        // Hadoop's spelling of the same thing.
        url = Url::parse(&raw.replacen("s3a://", "s3://", 1))?;
    }
    let path = url.path().trim_end_matches('/').to_string();
    url.set_path(&path);
    Ok(Location::Remote(RemoteLocation { kind, url }))
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Local(p) => write!(f, "{}", p.display()),
            Location::Remote(r) => r.fmt(f),
        }
    }
}

impl std::fmt::Display for RemoteLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.url.as_str().trim_end_matches('/'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<Location, ConfigError> {
        Location::parse(raw, Path::new("/base"))
    }

    #[test]
    fn credentials_in_a_location_are_refused_without_echoing_them() {
        for raw in [
            "s3://AKIAEXAMPLE:hunter2-secret@lake/vitals",
            "s3://AKIAEXAMPLE@lake/vitals",
            "hdfs://svc:hunter2-secret@namenode:8020/v",
            "webhdfs://svc:hunter2-secret@namenode:9870/v",
        ] {
            let err = parse(raw).unwrap_err().to_string();
            assert!(err.contains("must not carry credentials"), "{err}");
            assert!(
                !err.contains("hunter2") && !err.contains("AKIAEXAMPLE"),
                "{err}"
            );
        }
    }

    #[test]
    fn local_paths_and_file_urls() {
        assert_eq!(
            parse("data/v").unwrap(),
            Location::Local("/base/data/v".into())
        );
        assert_eq!(parse("/srv/v").unwrap(), Location::Local("/srv/v".into()));
        assert_eq!(
            parse("file:///srv/v").unwrap(),
            Location::Local("/srv/v".into())
        );
    }

    #[test]
    fn s3_locations() {
        let Location::Remote(r) = parse("s3://lake/raw/vitals/").unwrap() else {
            panic!("remote expected")
        };
        assert_eq!(r.kind, StoreKind::S3);
        assert_eq!(r.store_url().as_str(), "s3://lake");
        assert_eq!(r.prefix().as_ref(), "raw/vitals");
        assert_eq!(r.directory_url(), "s3://lake/raw/vitals/");
        let bucket_only = parse("s3://lake").unwrap();
        assert_eq!(bucket_only.as_remote().unwrap().prefix().as_ref(), "");
        assert_eq!(
            parse("s3a://lake/x").unwrap().to_string(),
            "s3://lake/x",
            "Hadoop's s3a:// is the same store"
        );
    }

    #[test]
    fn hdfs_locations() {
        let Location::Remote(r) = parse("hdfs://namenode:8020/lake/vitals").unwrap() else {
            panic!("remote expected")
        };
        assert_eq!(r.kind, StoreKind::Hdfs);
        assert_eq!(r.store_url().as_str(), "hdfs://namenode:8020");
        assert_eq!(r.prefix().as_ref(), "lake/vitals");
        assert!(parse("viewfs://cluster/lake").is_ok());
    }

    #[test]
    fn bad_locations_say_why() {
        let cases = [
            ("s3:///prefix", "names no bucket"),
            ("s3://127.0.0.1:9000/bucket", "not a server"),
            ("s3://lake/x?region=eu", "takes no `?query`"),
            ("hdfs:///lake", "names no namenode"),
            ("webhdfs://nn:9870/lake", "native RPC"),
            ("gs://b/x", "unknown location scheme `gs://`"),
            ("  ", "empty"),
        ];
        for (raw, expected) in cases {
            let message = parse(raw).unwrap_err().to_string();
            assert!(message.contains(expected), "{raw}: {message}");
        }
    }
}
