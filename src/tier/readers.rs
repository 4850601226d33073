//! Readers' leases: what keeps the writer's gc from deleting packs under a follower.
//!
//! A follower (`snapfs mount --follow`) serves one checkpoint at a time (briefly two, while
//! files opened on the older one are still open) and reads the packs it names for as long as it
//! does. It rewrites `readers/R.json` every quarter of its timeout, naming the oldest checkpoint
//! it still serves. The writer deletes a pack gc dropped only once the pack is named by no
//! checkpoint it keeps *and* by no checkpoint a live reader serves (`Tier::retire_dropped`):
//! checkpoint sequence numbers grow across leases, so "the oldest sequence a reader serves" is
//! all the writer needs.
//!
//! Ages are measured by the server's clock alone, as for the writer's lease: the writer rewrites
//! `readers/clock` and compares modification times in one listing. A reader whose lease expired
//! (a follower that died, or lost the object store for longer than its timeout) no longer holds
//! anything back: its lease is deleted, and a follower that comes back refreshes to the newest
//! checkpoint before it reads on.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::TierError;
use super::layout;
use crate::blob::{BlobBackend, BlobError};

/// The content of `readers/R.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReaderLease {
    pub host: String,
    pub pid: u32,
    /// The mountpoint, for whoever lists the bucket.
    pub mountpoint: String,
    /// The sequence number of the oldest checkpoint the follower serves.
    pub checkpoint: u64,
    /// Without a renewal for this long, the lease holds nothing back.
    pub timeout_secs: u64,
}

/// Writes (or renews) follower `reader`'s lease.
pub fn renew(backend: &dyn BlobBackend, reader: u64, lease: &ReaderLease) -> Result<(), TierError> {
    let bytes = serde_json::to_vec_pretty(lease).expect("a plain struct serialises");
    backend.put(&layout::reader_key(reader), &bytes)?;
    Ok(())
}

/// Removes follower `reader`'s lease (a clean unmount).
pub fn remove(backend: &dyn BlobBackend, reader: u64) -> Result<(), TierError> {
    backend.delete(&layout::reader_key(reader))?;
    Ok(())
}

/// The oldest checkpoint sequence any live reader serves (`None`: no reader is live). Leases
/// that expired are deleted on the way; one that cannot be read counts as serving everything
/// (sequence 0), so that damage holds deletions back rather than letting them through.
pub fn oldest_served(backend: &dyn BlobBackend) -> Result<Option<u64>, TierError> {
    let clock = layout::readers_clock_key();
    backend.put(&clock, b"")?;
    let listing = backend.list(layout::READERS)?;
    let now = listing
        .iter()
        .find(|meta| meta.key == clock)
        .map_or_else(SystemTime::now, |meta| meta.modified);
    let mut oldest: Option<u64> = None;
    for meta in &listing {
        let Some(reader) = layout::parse_reader_key(meta.key.as_str()) else {
            continue;
        };
        let age = now.duration_since(meta.modified).unwrap_or_default();
        let lease: Option<ReaderLease> = match backend.get(&meta.key) {
            Ok(bytes) => serde_json::from_slice(&bytes).ok(),
            // Removed between the listing and now: the follower unmounted.
            Err(BlobError::NotFound(_)) => continue,
            Err(err) => return Err(err.into()),
        };
        let served = match lease {
            Some(lease) if age >= Duration::from_secs(lease.timeout_secs) => {
                tracing::info!(
                    reader = format!("{reader:016x}"),
                    host = lease.host,
                    "a follower's lease expired; its checkpoint is no longer kept for it"
                );
                backend.delete(&meta.key)?;
                continue;
            }
            Some(lease) => lease.checkpoint,
            None => {
                tracing::warn!(key = meta.key.as_str(), "a follower's lease is damaged");
                0
            }
        };
        oldest = Some(oldest.map_or(served, |o| o.min(served)));
    }
    Ok(oldest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::LocalDir;

    fn lease(checkpoint: u64, timeout_secs: u64) -> ReaderLease {
        ReaderLease {
            host: "h".into(),
            pid: 1,
            mountpoint: "/mnt".into(),
            checkpoint,
            timeout_secs,
        }
    }

    #[test]
    fn the_oldest_checkpoint_of_live_readers_is_kept_and_expired_leases_go() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let backend = LocalDir::open(tmp.path()).expect("backend");
        assert_eq!(oldest_served(&backend).expect("none"), None);
        renew(&backend, 1, &lease(7, 600)).expect("renew");
        renew(&backend, 2, &lease(4, 600)).expect("renew");
        assert_eq!(oldest_served(&backend).expect("two"), Some(4));
        // A lease with no time left counts for nothing, and is deleted.
        renew(&backend, 3, &lease(1, 0)).expect("renew");
        assert_eq!(oldest_served(&backend).expect("expired"), Some(4));
        assert!(matches!(
            backend.get(&layout::reader_key(3)),
            Err(BlobError::NotFound(_))
        ));
        remove(&backend, 2).expect("remove");
        assert_eq!(oldest_served(&backend).expect("one"), Some(7));
        // Damage holds everything back.
        backend
            .put(&layout::reader_key(9), b"not json")
            .expect("put");
        assert_eq!(oldest_served(&backend).expect("damaged"), Some(0));
    }
}
