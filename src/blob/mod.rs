//! The blob layer: a small, synchronous key → bytes interface over where a vault's objects live
//! (a local directory, or an S3-compatible object store), so that the vault knows nothing of
//! either. Keys are relative, `/`-separated names made of `[A-Za-z0-9._-]` ([`BlobKey`]).
//!
//! Invariants every backend keeps:
//! - `put` is atomic: a reader sees the old object, or the whole new one, never part of it.
//! - `put_if_absent` never replaces an object; whether the backend can *enforce* it across
//!   writers is reported by [`BlobBackend::enforces_create_only`], and whether the server
//!   really does is asked of it by [`probe::enforces_create_only`].
//! - errors are typed ([`BlobError`]): callers can tell "not there" from "try again later".

mod key;
mod local;
mod location;
pub mod probe;
mod remote;

use std::ops::Range;
use std::path::PathBuf;

pub use key::BlobKey;
pub use local::LocalDir;
pub use location::{BlobLocation, LocationError};
pub use remote::{
    DEFAULT_RETRY_TIMEOUT, RETRY_TIMEOUT_ENV, RemoteStore, S3Settings, retry_timeout_from_env,
};

/// Why a blob operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("{0}: no such object")]
    NotFound(String),
    #[error("{0}: already exists")]
    AlreadyExists(String),
    /// Transient: the network, the server or a timeout (after the backend's own retries).
    #[error("{key}: storage unreachable: {message}")]
    Unreachable { key: String, message: String },
    #[error("{key}: {message}")]
    Other { key: String, message: String },
}

/// An object in a listing: its key (relative to the backend's root), size in bytes, and when
/// it was last written by the server's clock (what a lease's age is measured against, so that
/// hosts whose clocks disagree still agree on it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobMeta {
    pub key: BlobKey,
    pub size: u64,
    pub modified: std::time::SystemTime,
}

/// Where an object lies, in terms another backend can use to have it copied without its bytes
/// passing through this process ([`BlobBackend::copy_in`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ObjectAddress {
    /// A file of this host's file systems.
    File(PathBuf),
    /// An object in a bucket: `server` names the endpoint and the bucket (backends with the
    /// same one can copy between each other), `path` the object's full name in the bucket.
    Bucket { server: String, path: String },
}

/// Where a vault's bytes are kept. Synchronous: each call returns when the operation is done
/// (for `put`, durable as far as the backend can promise).
pub trait BlobBackend: Send + Sync {
    /// Stores `data` under `key`, replacing what was there, atomically.
    fn put(&self, key: &BlobKey, data: &[u8]) -> Result<(), BlobError>;
    /// Stores `data` under `key` unless something is there already ([`BlobError::AlreadyExists`]).
    fn put_if_absent(&self, key: &BlobKey, data: &[u8]) -> Result<(), BlobError>;
    /// Whether `put_if_absent` is atomic against other writers (a local directory's `link(2)`,
    /// S3's `If-None-Match`) rather than a check and a write.
    fn enforces_create_only(&self) -> bool;
    fn get(&self, key: &BlobKey) -> Result<Vec<u8>, BlobError>;
    /// The bytes `range` of the object; an error if the object is shorter.
    fn get_range(&self, key: &BlobKey, range: Range<u64>) -> Result<Vec<u8>, BlobError>;
    /// The size of the object, or `None` if there is none.
    fn head(&self, key: &BlobKey) -> Result<Option<u64>, BlobError>;
    /// Every object whose key starts with the directory `prefix` (`""` for all), sorted by key.
    fn list(&self, prefix: &str) -> Result<Vec<BlobMeta>, BlobError>;
    /// Removes the object; removing an absent object is not an error.
    fn delete(&self, key: &BlobKey) -> Result<(), BlobError>;
    /// Where this is, for messages (`s3://bucket/prefix`, a path).
    fn describe(&self) -> String;
    /// Where the object `key` lies, for another backend's [`BlobBackend::copy_in`]; `None`
    /// where the backend has no address others could use.
    fn address(&self, _key: &BlobKey) -> Option<ObjectAddress> {
        None
    }
    /// Whether [`BlobBackend::copy_in`] can copy from `source`: an object of the same bucket
    /// of the same endpoint, or a file.
    fn reaches(&self, _source: &ObjectAddress) -> bool {
        false
    }
    /// Stores under `key` a copy of the object at `source`, made where the bytes lie (a copy
    /// inside the bucket, `copy_file_range(2)` between files), atomically as a `put` is.
    /// `Ok(false)`, with nothing stored, when this backend does not reach `source`.
    fn copy_in(&self, _source: &ObjectAddress, _key: &BlobKey) -> Result<bool, BlobError> {
        Ok(false)
    }
}

/// Opens the backend a location names. For S3 the settings come from the standard environment
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`).
pub fn open(location: &BlobLocation) -> Result<Box<dyn BlobBackend>, BlobError> {
    open_with(location, None)
}

/// Opens the backend a location names, with explicit S3 settings if given.
pub fn open_with(
    location: &BlobLocation,
    s3: Option<&S3Settings>,
) -> Result<Box<dyn BlobBackend>, BlobError> {
    match location {
        BlobLocation::Local(path) => Ok(Box::new(local::LocalDir::open(path)?)),
        BlobLocation::S3 { bucket, prefix } => {
            Ok(Box::new(remote::RemoteStore::s3(bucket, prefix, s3)?))
        }
    }
}

/// The behaviour every backend must show; public so the integration tests run it against a
/// real S3 server too.
#[doc(hidden)]
pub mod conformance {
    use super::*;

    fn key(s: &str) -> BlobKey {
        BlobKey::new(s).expect("valid key")
    }

    pub fn check(backend: &dyn BlobBackend) {
        let a = key("data/aa/one");
        assert!(matches!(backend.get(&a), Err(BlobError::NotFound(_))));
        assert_eq!(backend.head(&a).expect("head"), None);
        backend.put(&a, b"first").expect("put");
        assert_eq!(backend.get(&a).expect("get"), b"first");
        backend.put(&a, b"second!").expect("replace");
        assert_eq!(backend.get(&a).expect("get"), b"second!");
        assert_eq!(backend.head(&a).expect("head"), Some(7));
        assert_eq!(backend.get_range(&a, 2..5).expect("range"), b"con");
        assert!(
            backend.get_range(&a, 5..20).is_err(),
            "a range past the end"
        );

        let b = key("data/bb/two");
        backend.put_if_absent(&b, b"new").expect("create");
        assert!(matches!(
            backend.put_if_absent(&b, b"other"),
            Err(BlobError::AlreadyExists(_))
        ));
        assert_eq!(backend.get(&b).expect("get"), b"new");

        backend.put(&key("index/x"), b"").expect("empty object");
        assert_eq!(backend.get(&key("index/x")).expect("get"), b"");
        let listed: Vec<(String, u64)> = backend
            .list("data")
            .expect("list")
            .into_iter()
            .map(|meta| (meta.key.as_str().to_owned(), meta.size))
            .collect();
        assert_eq!(
            listed,
            vec![("data/aa/one".to_owned(), 7), ("data/bb/two".to_owned(), 3)]
        );
        assert_eq!(backend.list("").expect("list all").len(), 3);
        assert!(backend.list("nothing").expect("list").is_empty());

        if let Some(address) = backend.address(&b) {
            assert!(
                backend.reaches(&address),
                "a backend reaches its own objects"
            );
            let copy = key("data/cc/copy");
            assert!(backend.copy_in(&address, &copy).expect("copy"), "copied");
            assert_eq!(backend.get(&copy).expect("get"), b"new");
            backend.delete(&copy).expect("delete");
        }

        backend.delete(&a).expect("delete");
        backend.delete(&a).expect("deleting twice is fine");
        assert!(matches!(backend.get(&a), Err(BlobError::NotFound(_))));
        assert_eq!(backend.list("data").expect("list").len(), 1);
    }
}
