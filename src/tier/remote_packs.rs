//! The chunk store's view of the object store: byte ranges of uploaded packs, found under the
//! epoch each was uploaded with.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use super::layout;
use super::uploaded::Uploaded;
use crate::blob::BlobBackend;
use crate::chunk_store::RemotePacks;
use crate::id::PackId;

pub struct BlobPacks {
    backend: Arc<dyn BlobBackend>,
    uploaded: Arc<Mutex<HashMap<PackId, Uploaded>>>,
    fetched: AtomicU64,
}

impl BlobPacks {
    pub fn new(
        backend: Arc<dyn BlobBackend>,
        uploaded: Arc<Mutex<HashMap<PackId, Uploaded>>>,
    ) -> Self {
        BlobPacks {
            backend,
            uploaded,
            fetched: AtomicU64::new(0),
        }
    }

    pub fn fetched_bytes(&self) -> u64 {
        self.fetched.load(Ordering::Relaxed)
    }
}

impl RemotePacks for BlobPacks {
    fn read(&self, pack: PackId, range: Range<u64>) -> Result<Vec<u8>, String> {
        let Some(up) = self.uploaded.lock().get(&pack).copied() else {
            return Err("the pack was never uploaded, and its local copy is damaged".into());
        };
        let range = range.start..range.end.min(up.len);
        let bytes = self
            .backend
            .get_range(&layout::pack_key(up.epoch, pack), range)
            .map_err(|err| err.to_string())?;
        self.fetched
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(bytes)
    }
}
