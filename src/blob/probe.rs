//! Does the server really enforce create-only puts? Some S3-compatible servers (Garage,
//! `rclone serve s3`) accept `If-None-Match: *` on PUT and ignore it, silently replacing the
//! object; what relies on a create-only put being refused must find out before it relies on
//! it. [`enforces_create_only`] asks the server itself, once: it puts a fresh probe object
//! create-only twice; the second put must be refused. The probe is deleted afterwards.

use super::{BlobBackend, BlobError, BlobKey};

/// Where probes are put: a directory no vault object lives in.
const PROBE_DIR: &str = "probe";

/// Whether `backend` refuses a create-only put of an object that exists, asked of the server
/// (not of the backend's claim): `Ok(false)` when the second put succeeded, or when the backend
/// does not even claim to enforce it.
pub fn enforces_create_only(backend: &dyn BlobBackend) -> Result<bool, BlobError> {
    if !backend.enforces_create_only() {
        return Ok(false);
    }
    let mut id = [0u8; 16];
    getrandom::getrandom(&mut id).map_err(|err| BlobError::Other {
        key: PROBE_DIR.into(),
        message: format!("no random bytes for a probe name: {err}"),
    })?;
    let key = BlobKey::new(&format!("{PROBE_DIR}/{}", crate::id::hex(&id)))
        .unwrap_or_else(|| unreachable!("a fixed word and hex digits make a valid key"));
    backend.put_if_absent(&key, b"first")?;
    let second = backend.put_if_absent(&key, b"second");
    // Cleaned up whatever the answer; a probe left by a crash is a few bytes, never read.
    let cleaned = backend.delete(&key);
    let enforced = match second {
        Err(BlobError::AlreadyExists(_)) => true,
        Ok(()) => false,
        Err(err) => return Err(err),
    };
    cleaned?;
    Ok(enforced)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::ops::Range;

    use super::*;
    use crate::blob::{BlobMeta, LocalDir, RemoteStore};

    /// A backend that claims to enforce create-only puts but, like the servers that accept
    /// `If-None-Match` and ignore it, replaces the object anyway.
    pub(crate) struct IgnoresCondition<B>(pub(crate) B);

    impl<B: BlobBackend> BlobBackend for IgnoresCondition<B> {
        fn put(&self, key: &BlobKey, data: &[u8]) -> Result<(), BlobError> {
            self.0.put(key, data)
        }
        fn put_if_absent(&self, key: &BlobKey, data: &[u8]) -> Result<(), BlobError> {
            self.0.put(key, data)
        }
        fn enforces_create_only(&self) -> bool {
            true
        }
        fn get(&self, key: &BlobKey) -> Result<Vec<u8>, BlobError> {
            self.0.get(key)
        }
        fn get_range(&self, key: &BlobKey, range: Range<u64>) -> Result<Vec<u8>, BlobError> {
            self.0.get_range(key, range)
        }
        fn head(&self, key: &BlobKey) -> Result<Option<u64>, BlobError> {
            self.0.head(key)
        }
        fn list(&self, prefix: &str) -> Result<Vec<BlobMeta>, BlobError> {
            self.0.list(prefix)
        }
        fn delete(&self, key: &BlobKey) -> Result<(), BlobError> {
            self.0.delete(key)
        }
        fn describe(&self) -> String {
            self.0.describe()
        }
    }

    #[test]
    fn the_probe_tells_enforcing_backends_from_ignoring_ones_and_cleans_up() {
        let memory = RemoteStore::in_memory();
        assert!(enforces_create_only(&memory).expect("probe"));
        assert!(memory.list("").expect("list").is_empty(), "probe removed");
        let dir = tempfile::tempdir().expect("tempdir");
        let local = LocalDir::open(dir.path()).expect("open");
        assert!(enforces_create_only(&local).expect("probe"));
        assert!(local.list("").expect("list").is_empty(), "probe removed");

        let ignoring = IgnoresCondition(RemoteStore::in_memory());
        assert!(!enforces_create_only(&ignoring).expect("probe"));
        assert!(ignoring.list("").expect("list").is_empty(), "probe removed");
    }
}
