//! Opening the object store behind a remote location.
//!
//! The stores are `object_store`'s (the layer DataFusion reads through), so
//! the sink's uploads and every query share one implementation: S3 with
//! `AmazonS3Builder` (AWS or any S3-compatible server; path-style requests
//! unless `virtual_hosted_style_request` is set), HDFS with
//! `hdfs-native-object-store` (native RPC, no JVM; its writes go to a hidden
//! temporary file that is renamed when complete).
//!
//! Settings come, lowest precedence first, from the usual environment
//! variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
//! `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`, ...) and from the sink's `store:`
//! map, whose keys are `object_store`'s (`endpoint`, `region`,
//! `access_key_id`, `allow_http`, ...) for S3 and Hadoop's (`dfs.*`) for HDFS.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::{BackoffConfig, ClientConfigKey, ObjectStore, RetryConfig};

use super::error::{ConfigError, StorageError};
use super::location::{RemoteLocation, StoreKind};

/// Retries are kept short: a store that does not answer within seconds is
/// treated as down, and completed files wait in the spool instead of
/// stalling the pipeline for the minutes `object_store`'s defaults allow.
fn retry_config() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            base: 2.0,
        },
        max_retries: 3,
        retry_timeout: Duration::from_secs(15),
    }
}

/// Check `store:` keys without connecting (validation time).
pub fn check_settings(
    kind: StoreKind,
    settings: &BTreeMap<String, String>,
) -> Result<(), ConfigError> {
    match kind {
        StoreKind::S3 => {
            for key in settings.keys() {
                key.to_ascii_lowercase()
                    .parse::<AmazonS3ConfigKey>()
                    .map_err(|_| ConfigError::UnknownSetting { key: key.clone() })?;
            }
            Ok(())
        }
        // Hadoop settings are free-form (`dfs.ha.namenodes.<ns>`, ...).
        StoreKind::Hdfs => Ok(()),
    }
}

/// Build the store for `location` (no request is made yet).
pub fn open_store(
    location: &RemoteLocation,
    settings: &BTreeMap<String, String>,
) -> Result<Arc<dyn ObjectStore>, StorageError> {
    check_settings(location.kind, settings)?;
    match location.kind {
        StoreKind::S3 => open_s3(location, settings),
        StoreKind::Hdfs => {
            let store = hdfs_native_object_store::HdfsObjectStoreBuilder::new()
                .with_url(location.store_url().as_str())
                .with_config(settings.clone())
                .build()
                .map_err(|e| StorageError::OpenStore {
                    what: format!("HDFS at {}", location.store_url()),
                    message: e.to_string(),
                })?;
            Ok(Arc::new(store))
        }
    }
}

fn open_s3(
    location: &RemoteLocation,
    settings: &BTreeMap<String, String>,
) -> Result<Arc<dyn ObjectStore>, StorageError> {
    let mut builder = AmazonS3Builder::from_env().with_url(location.store_url().as_str());
    for (key, value) in settings {
        // Checked by `check_settings` above.
        if let Ok(key) = key.to_ascii_lowercase().parse::<AmazonS3ConfigKey>() {
            builder = builder.with_config(key, value);
        }
    }
    // Set by the user (in `store:` or as AWS_* variables), or left to us.
    let user_set = |key: &AmazonS3ConfigKey| {
        settings
            .keys()
            .filter_map(|k| k.to_ascii_lowercase().parse::<AmazonS3ConfigKey>().ok())
            .chain(std::env::vars().filter_map(|(k, _)| {
                k.starts_with("AWS_")
                    .then(|| k.to_ascii_lowercase().parse::<AmazonS3ConfigKey>().ok())
                    .flatten()
            }))
            .any(|k| &k == key)
    };
    let endpoint = builder.get_config_value(&AmazonS3ConfigKey::Endpoint);
    let allow_http = AmazonS3ConfigKey::Client(ClientConfigKey::AllowHttp);
    if !user_set(&allow_http)
        && endpoint
            .as_deref()
            .is_some_and(|e| e.starts_with("http://"))
    {
        // An http:// endpoint says what it wants; object_store refuses it otherwise.
        builder = builder.with_config(allow_http, "true");
    }
    let connect_timeout = AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout);
    if !user_set(&connect_timeout) {
        builder = builder.with_config(connect_timeout, "5s");
    }
    let store =
        builder
            .with_retry(retry_config())
            .build()
            .map_err(|e| StorageError::OpenStore {
                what: format!("S3 bucket {}", location.store_url()),
                message: e.to_string(),
            })?;
    Ok(Arc::new(store))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Location;
    use object_store::ObjectStoreExt;

    fn remote(raw: &str) -> RemoteLocation {
        Location::parse(raw, std::path::Path::new("."))
            .unwrap()
            .as_remote()
            .unwrap()
            .clone()
    }

    #[test]
    fn unknown_s3_settings_are_named() {
        let settings = BTreeMap::from([("endpiont".to_string(), "http://x".to_string())]);
        let message = check_settings(StoreKind::S3, &settings)
            .unwrap_err()
            .to_string();
        assert!(message.contains("`store.endpiont`"), "{message}");
        let good = BTreeMap::from([
            ("endpoint".to_string(), "http://127.0.0.1:9".to_string()),
            ("region".to_string(), "eu-west-1".to_string()),
            ("allow_http".to_string(), "true".to_string()),
        ]);
        check_settings(StoreKind::S3, &good).unwrap();
    }

    #[test]
    fn an_s3_store_opens_without_a_request() {
        let settings = BTreeMap::from([
            ("endpoint".to_string(), "http://127.0.0.1:9".to_string()),
            ("access_key_id".to_string(), "k".to_string()),
            ("secret_access_key".to_string(), "s".to_string()),
            ("region".to_string(), "us-east-1".to_string()),
        ]);
        let store = open_store(&remote("s3://lake/vitals"), &settings).unwrap();
        assert!(store.to_string().contains("lake"), "{store}");
    }

    #[tokio::test]
    async fn an_unreachable_namenode_is_an_error_not_a_hang() {
        // Port 9 (discard) on loopback: nothing listens there.
        let location = remote("hdfs://127.0.0.1:9/lake");
        let started = std::time::Instant::now();
        let result = match open_store(&location, &BTreeMap::new()) {
            Err(e) => Err(e.to_string()),
            Ok(store) => store
                .put(
                    &"lake/x".into(),
                    object_store::PutPayload::from_static(b"x"),
                )
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
        };
        assert!(result.is_err(), "a write to a dead namenode succeeded");
        assert!(started.elapsed() < Duration::from_secs(60));
    }
}
