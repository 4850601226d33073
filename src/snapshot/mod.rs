//! Snapshots: named, immutable, point-in-time trees of the live share, kept in a catalog and
//! browsable read-only (see [`view`]). Creating one freezes the live share (`live::freeze`),
//! makes the objects durable with a live commit, and then records the name: once `create`
//! returns, the snapshot survives a crash.
//!
//! A snapshot's trees go back into the live share by reference (`restore`, `rollback`: new
//! inodes naming the snapshot's chunks, grafted atomically) or into a new store by copy
//! (`clone`). A snapshot being read for that is pinned (`pin`): it cannot be deleted meanwhile.

mod catalog;
mod clone;
pub mod control;
mod pin;
mod restore;
mod rollback;
mod subtree;
pub mod view;

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::format::catalog::{Origin, SnapshotRecord, check_snapshot_name};
use crate::format::inode::Timestamp;
use crate::live::{FsError, LiveFs};
use crate::object_store::ObjectStore;
pub use catalog::CatalogError;
pub use clone::{CloneReport, clone_snapshot};
pub use pin::SnapshotPin;
pub use restore::{RestoreError, RestoreReport, TreeCounts};
pub use rollback::RollbackReport;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("invalid snapshot name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("a snapshot named {0:?} already exists")]
    Exists(String),
    #[error("no snapshot named {0:?}")]
    NotFound(String),
    #[error("cannot freeze the share: {0}")]
    Freeze(#[from] FsError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

/// The snapshots of one store.
pub struct Snapshots {
    live: Arc<LiveFs>,
    objects: Arc<ObjectStore>,
    catalog: RwLock<BTreeMap<String, SnapshotRecord>>,
    /// Serialises creates and deletes; also guards the next number.
    changing: Mutex<u64>,
    /// Snapshots being read, which a delete waits for.
    pins: pin::Pins,
}

impl Snapshots {
    pub fn open(live: Arc<LiveFs>) -> Result<Self, SnapshotError> {
        let (catalog, next) = catalog::load(&live.database())?;
        Ok(Snapshots {
            objects: Arc::new(ObjectStore::new(live.chunk_store())),
            live,
            catalog: RwLock::new(catalog),
            changing: Mutex::new(next),
            pins: pin::Pins::default(),
        })
    }

    pub fn live(&self) -> &Arc<LiveFs> {
        &self.live
    }

    /// Keeps the catalog from changing (no create, no delete) while the guard lives.
    pub fn hold_catalog(&self) -> parking_lot::MutexGuard<'_, u64> {
        self.changing.lock()
    }

    pub fn objects(&self) -> &Arc<ObjectStore> {
        &self.objects
    }

    pub fn list(&self) -> Vec<(String, SnapshotRecord)> {
        self.catalog
            .read()
            .iter()
            .map(|(name, record)| (name.clone(), record.clone()))
            .collect()
    }

    pub fn get(&self, name: &str) -> Option<SnapshotRecord> {
        self.catalog.read().get(name).cloned()
    }

    pub fn by_number(&self, number: u64) -> Option<(String, SnapshotRecord)> {
        self.catalog
            .read()
            .iter()
            .find(|(_, record)| record.number == number)
            .map(|(name, record)| (name.clone(), record.clone()))
    }

    pub fn create(&self, name: &str, origin: Origin) -> Result<SnapshotRecord, SnapshotError> {
        check_snapshot_name(name).map_err(|reason| SnapshotError::InvalidName {
            name: name.to_owned(),
            reason,
        })?;
        let mut next = self.changing.lock();
        if self.catalog.read().contains_key(name) {
            return Err(SnapshotError::Exists(name.to_owned()));
        }
        let frozen = self.live.freeze(&self.objects)?;
        // The objects are chunks like file data: a live commit makes them durable before the
        // catalog names them.
        self.live.commit_now()?;
        let record = SnapshotRecord {
            number: *next,
            root: frozen.root,
            created: Timestamp::now(),
            origin,
            root_perm: frozen.root_record.perm,
            root_uid: frozen.root_record.uid,
            root_gid: frozen.root_record.gid,
        };
        catalog::store(&self.live.database(), name, Some(&record), *next + 1)?;
        *next += 1;
        self.catalog.write().insert(name.to_owned(), record.clone());
        tracing::info!(snapshot = name, root = %record.root, "snapshot created");
        Ok(record)
    }

    pub fn delete(&self, name: &str) -> Result<(), SnapshotError> {
        let next = self.changing.lock();
        let Some(number) = self.catalog.read().get(name).map(|record| record.number) else {
            return Err(SnapshotError::NotFound(name.to_owned()));
        };
        self.pins.wait_unpinned(number);
        catalog::store(&self.live.database(), name, None, *next)?;
        self.catalog.write().remove(name);
        tracing::info!(snapshot = name, "snapshot deleted");
        Ok(())
    }
}
