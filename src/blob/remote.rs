//! A vault in an object store through the `object_store` crate: S3 and S3-compatible servers
//! (SeaweedFS, MinIO, Ceph RGW...), and its in-memory store for unit tests. The crate is async;
//! this backend owns one small current-thread tokio runtime and blocks on it, so the rest of
//! snapfs stays synchronous. Transient failures are retried by the crate with exponential
//! backoff ([`RetryConfig`]) before an error reaches the caller as [`BlobError::Unreachable`].

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{BackoffConfig, ObjectStore, PutMode, PutOptions, PutPayload, RetryConfig};

use super::{BlobBackend, BlobError, BlobKey, BlobMeta, ObjectAddress};

/// How long transient failures are retried before an operation gives up: long enough to ride
/// out a server restart, short enough that a backup to a vanished server fails in minutes.
pub const DEFAULT_RETRY_TIMEOUT: Duration = Duration::from_secs(60);
/// The environment variable that overrides [`DEFAULT_RETRY_TIMEOUT`], in whole seconds: an
/// admin who would rather see a backup fail fast than wait out an outage sets it low.
pub const RETRY_TIMEOUT_ENV: &str = "SNAPFS_S3_RETRY_TIMEOUT";

/// The retry timeout this process's environment asks for: [`RETRY_TIMEOUT_ENV`] when it holds
/// a whole number of seconds, else [`DEFAULT_RETRY_TIMEOUT`].
pub fn retry_timeout_from_env() -> Duration {
    std::env::var(RETRY_TIMEOUT_ENV)
        .ok()
        .and_then(|secs| secs.trim().parse().ok())
        .map_or(DEFAULT_RETRY_TIMEOUT, Duration::from_secs)
}
const MAX_RETRIES: usize = 6;

/// Explicit S3 settings, for callers that must not read the process environment (tests that
/// run several servers at once).
#[derive(Clone, Debug)]
pub struct S3Settings {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub region: String,
    pub endpoint: Option<String>,
    /// How long transient failures are retried.
    pub retry_timeout: Duration,
}

/// Objects under a prefix of an [`ObjectStore`].
pub struct RemoteStore {
    store: Arc<dyn ObjectStore>,
    /// Prepended to every key (no leading or trailing `/`; may be empty).
    prefix: String,
    runtime: tokio::runtime::Runtime,
    describe: String,
    create_only: bool,
    /// The endpoint and bucket ([`ObjectAddress::Bucket`]): stores with the same one copy
    /// objects between each other inside the bucket.
    server: String,
}

fn map_error(key: &str, err: object_store::Error) -> BlobError {
    match err {
        object_store::Error::NotFound { .. } => BlobError::NotFound(key.to_owned()),
        object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. } => {
            BlobError::AlreadyExists(key.to_owned())
        }
        // The crate reports HTTP and network failures (after its retries) as generic errors.
        object_store::Error::Generic { source, .. } => BlobError::Unreachable {
            key: key.to_owned(),
            message: source.to_string(),
        },
        other => BlobError::Other {
            key: key.to_owned(),
            message: other.to_string(),
        },
    }
}

/// Whether an endpoint URL points at this machine, where plain http is acceptable.
fn is_loopback(endpoint: &str) -> bool {
    let Some(rest) = endpoint.strip_prefix("http://") else {
        return false;
    };
    ["127.", "localhost:", "localhost/", "[::1]"]
        .iter()
        .any(|host| rest.starts_with(host))
        || rest == "localhost"
}

impl RemoteStore {
    fn new(
        store: Arc<dyn ObjectStore>,
        prefix: &str,
        describe: String,
        create_only: bool,
        server: String,
    ) -> Result<Self, BlobError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|err| BlobError::Other {
                key: describe.clone(),
                message: format!("cannot start the I/O runtime: {err}"),
            })?;
        Ok(RemoteStore {
            store,
            prefix: prefix.trim_matches('/').to_owned(),
            runtime,
            describe,
            create_only,
            server,
        })
    }

    /// A bucket of an S3-compatible store. Without explicit `settings`, everything comes from
    /// the standard environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
    /// `AWS_ENDPOINT_URL`, and the other `AWS_*` variables the crate knows).
    pub fn s3(
        bucket: &str,
        prefix: &str,
        settings: Option<&S3Settings>,
    ) -> Result<Self, BlobError> {
        let describe = if prefix.is_empty() {
            format!("s3://{bucket}")
        } else {
            format!("s3://{bucket}/{prefix}")
        };
        let (mut builder, endpoint, retry_timeout) = match settings {
            None => (
                AmazonS3Builder::from_env(),
                std::env::var("AWS_ENDPOINT_URL")
                    .or_else(|_| std::env::var("AWS_ENDPOINT"))
                    .ok(),
                retry_timeout_from_env(),
            ),
            Some(settings) => (
                AmazonS3Builder::new()
                    .with_access_key_id(&settings.access_key_id)
                    .with_secret_access_key(&settings.secret_access_key)
                    .with_region(&settings.region),
                settings.endpoint.clone(),
                settings.retry_timeout,
            ),
        };
        builder = builder.with_bucket_name(bucket).with_retry(RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: MAX_RETRIES,
            retry_timeout,
        });
        if let Some(endpoint) = &endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(is_loopback(endpoint));
        }
        let store = builder.build().map_err(|err| BlobError::Other {
            key: describe.clone(),
            message: err.to_string(),
        })?;
        // AWS bucket names are global; elsewhere the endpoint tells servers apart.
        let server = format!("s3 {} {bucket}", endpoint.as_deref().unwrap_or("aws"));
        // S3 enforces `If-None-Match: *`; some compatible servers accept and ignore it, so
        // whatever relies on it must check the server at open (`vault` does).
        Self::new(Arc::new(store), prefix, describe, true, server)
    }

    /// The crate's in-memory store, for unit tests of the layers above.
    #[cfg(test)]
    pub fn in_memory() -> Self {
        static STORES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = STORES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self::new(
            Arc::new(object_store::memory::InMemory::new()),
            "test/prefix",
            "memory".into(),
            true,
            format!("memory {n}"),
        )
        .expect("a runtime starts")
    }

    fn path(&self, key: &str) -> Result<ObjectPath, BlobError> {
        let full = if self.prefix.is_empty() {
            key.to_owned()
        } else if key.is_empty() {
            self.prefix.clone()
        } else {
            format!("{}/{key}", self.prefix)
        };
        ObjectPath::parse(&full).map_err(|err| BlobError::Other {
            key: key.to_owned(),
            message: err.to_string(),
        })
    }

    fn put_with(&self, key: &BlobKey, data: &[u8], mode: PutMode) -> Result<(), BlobError> {
        let path = self.path(key.as_str())?;
        let payload = PutPayload::from(data.to_vec());
        let options = PutOptions {
            mode,
            ..PutOptions::default()
        };
        self.runtime
            .block_on(self.store.put_opts(&path, payload, options))
            .map(|_| ())
            .map_err(|err| map_error(key.as_str(), err))
    }
}

impl BlobBackend for RemoteStore {
    fn put(&self, key: &BlobKey, data: &[u8]) -> Result<(), BlobError> {
        self.put_with(key, data, PutMode::Overwrite)
    }

    fn put_if_absent(&self, key: &BlobKey, data: &[u8]) -> Result<(), BlobError> {
        self.put_with(key, data, PutMode::Create)
    }

    fn enforces_create_only(&self) -> bool {
        self.create_only
    }

    fn get(&self, key: &BlobKey) -> Result<Vec<u8>, BlobError> {
        let path = self.path(key.as_str())?;
        self.runtime
            .block_on(async { self.store.get(&path).await?.bytes().await })
            .map(Vec::from)
            .map_err(|err| map_error(key.as_str(), err))
    }

    fn get_range(&self, key: &BlobKey, range: Range<u64>) -> Result<Vec<u8>, BlobError> {
        let path = self.path(key.as_str())?;
        let want = range.end.saturating_sub(range.start);
        let bytes = match self
            .runtime
            .block_on(self.store.get_range(&path, range.clone()))
        {
            Ok(bytes) => bytes,
            // HTTP lets a server answer a range request with the whole object (200), which
            // some S3-compatible servers do (`rclone serve s3`, for a range that covers the
            // whole object); the crate refuses such an answer. The whole object then, cut here.
            Err(err) if err.to_string().contains("non-partial response") => {
                let whole = self.get(key)?;
                let cut = usize::try_from(range.start)
                    .ok()
                    .zip(usize::try_from(range.end).ok())
                    .and_then(|(start, end)| whole.get(start..end));
                return cut.map(<[u8]>::to_vec).ok_or_else(|| BlobError::Other {
                    key: key.to_string(),
                    message: format!("range {range:?} past the end of the object"),
                });
            }
            Err(err) => return Err(map_error(key.as_str(), err)),
        };
        if bytes.len() as u64 != want {
            return Err(BlobError::Other {
                key: key.to_string(),
                message: format!("range {range:?} past the end of the object"),
            });
        }
        // Without a copy when the response was collected into one buffer.
        Ok(Vec::from(bytes))
    }

    fn head(&self, key: &BlobKey) -> Result<Option<u64>, BlobError> {
        let path = self.path(key.as_str())?;
        match self.runtime.block_on(self.store.head(&path)) {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(err) => Err(map_error(key.as_str(), err)),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<BlobMeta>, BlobError> {
        let path = self.path(prefix.trim_matches('/'))?;
        let root = if self.prefix.is_empty() && prefix.is_empty() {
            None
        } else {
            Some(&path)
        };
        let metas: Vec<object_store::ObjectMeta> = self
            .runtime
            .block_on(self.store.list(root).try_collect())
            .map_err(|err| map_error(prefix, err))?;
        let mut out: Vec<BlobMeta> = metas
            .into_iter()
            .filter_map(|meta| {
                let full = meta.location.as_ref();
                let relative = if self.prefix.is_empty() {
                    full
                } else {
                    full.strip_prefix(self.prefix.as_str())?.strip_prefix('/')?
                };
                Some(BlobMeta {
                    key: BlobKey::new(relative)?,
                    size: meta.size,
                    modified: meta.last_modified.into(),
                })
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn delete(&self, key: &BlobKey) -> Result<(), BlobError> {
        let path = self.path(key.as_str())?;
        match self.runtime.block_on(self.store.delete(&path)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(err) => Err(map_error(key.as_str(), err)),
        }
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn address(&self, key: &BlobKey) -> Option<ObjectAddress> {
        Some(ObjectAddress::Bucket {
            server: self.server.clone(),
            path: self.path(key.as_str()).ok()?.to_string(),
        })
    }

    fn reaches(&self, source: &ObjectAddress) -> bool {
        matches!(source, ObjectAddress::Bucket { server, .. } if *server == self.server)
    }

    /// S3's `CopyObject` when `source` is in the same bucket of the same endpoint.
    fn copy_in(&self, source: &ObjectAddress, key: &BlobKey) -> Result<bool, BlobError> {
        let ObjectAddress::Bucket { path, .. } = source else {
            return Ok(false);
        };
        if !self.reaches(source) {
            return Ok(false);
        }
        let from = ObjectPath::parse(path).map_err(|err| BlobError::Other {
            key: path.clone(),
            message: err.to_string(),
        })?;
        let to = self.path(key.as_str())?;
        self.runtime
            .block_on(self.store.copy(&from, &to))
            .map_err(|err| map_error(key.as_str(), err))?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_in_memory_object_store_behaves_as_a_blob_backend() {
        super::super::conformance::check(&RemoteStore::in_memory());
    }

    #[test]
    fn plain_http_only_to_this_machine() {
        assert!(is_loopback("http://127.0.0.1:8333"));
        assert!(is_loopback("http://localhost:9000"));
        assert!(is_loopback("http://[::1]:9000"));
        assert!(!is_loopback("http://example.com"));
        assert!(!is_loopback("http://localhost.example.com"));
        assert!(!is_loopback("https://127.0.0.1:8333"));
    }
}
