//! Snapshots: named, immutable, point-in-time trees of the live share, kept in a catalog and
//! browsable read-only (see [`view`]), also path by path across snapshots (see
//! [`history_view`]). Creating one freezes the live share (`live::freeze`), makes the objects
//! durable with a live commit, and then records the name: once `create` returns, the snapshot
//! survives a crash.
//!
//! Protection: a held snapshot cannot be deleted by anyone until its hold is released or
//! expires; a pinned one (in use by a running restore or clone) not until the pin is dropped.
//! With soft delete, a deleted snapshot moves to the deleted list, keeps its data, and can be
//! undeleted until it is purged (by hand, or once its retention period is over).
//!
//! A snapshot's trees go back into the live share by reference (`restore`, `rollback`: new
//! inodes naming the snapshot's chunks, grafted atomically) or into a new store by copy
//! (`clone`).

mod catalog;
mod clone;
pub mod history_view;
mod restore;
mod rollback;
mod subtree;
pub mod view;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard, RwLock};

use crate::format::catalog::{Deletion, Hold, Origin, SnapshotRecord, check_snapshot_name};
use crate::format::inode::Timestamp;
use crate::format::object::ObjectId;
use crate::live::{FsError, LiveFs};
use crate::object_store::ObjectStore;
use crate::schedule::clock::Clock;
pub use catalog::CatalogError;
use catalog::Change;
pub use clone::{CloneReport, clone_snapshot};
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
    #[error("no deleted snapshot named {0:?}")]
    NotDeleted(String),
    #[error("snapshot {name:?} is held {until}: release it first")]
    Held { name: String, until: String },
    #[error("snapshot {0:?} is in use by a running restore or clone")]
    Busy(String),
    #[error("cannot freeze the share: {0}")]
    Freeze(#[from] FsError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

/// How a delete treats the snapshot's data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteMode {
    /// Forget it now: its unique data is reclaimable by the next gc.
    Now,
    /// Keep it recoverable for this many seconds.
    Soft { retain_secs: u64 },
}

struct Catalog {
    active: BTreeMap<String, SnapshotRecord>,
    /// The names of `active` by snapshot number (the snapshot view asks by number).
    numbers: HashMap<u64, String>,
    deleted: BTreeMap<u64, (String, SnapshotRecord)>,
}

impl Catalog {
    fn insert(&mut self, name: &str, record: SnapshotRecord) {
        self.numbers.insert(record.number, name.to_owned());
        self.active.insert(name.to_owned(), record);
    }

    fn remove(&mut self, name: &str) {
        if let Some(record) = self.active.remove(name) {
            self.numbers.remove(&record.number);
        }
    }
}

/// The snapshots of one store.
pub struct Snapshots {
    live: Arc<LiveFs>,
    objects: Arc<ObjectStore>,
    clock: Arc<dyn Clock>,
    catalog: RwLock<Catalog>,
    /// Serialises catalog changes; also guards the next number.
    changing: Mutex<u64>,
    /// Snapshots in use by long readers, with their count of users.
    pins: Mutex<HashMap<String, usize>>,
}

/// Keeps a snapshot from being deleted while it lives.
pub struct Pin<'a> {
    snapshots: &'a Snapshots,
    pub name: String,
    pub record: SnapshotRecord,
}

impl Drop for Pin<'_> {
    fn drop(&mut self) {
        let mut pins = self.snapshots.pins.lock();
        if let Some(count) = pins.get_mut(&self.name) {
            *count -= 1;
            if *count == 0 {
                pins.remove(&self.name);
            }
        }
    }
}

impl Snapshots {
    pub fn open(live: Arc<LiveFs>, clock: Arc<dyn Clock>) -> Result<Self, SnapshotError> {
        let loaded = catalog::load(&live.database())?;
        Ok(Snapshots {
            objects: Arc::new(ObjectStore::new(live.chunk_store())),
            live,
            clock,
            catalog: RwLock::new(Catalog {
                numbers: loaded
                    .active
                    .iter()
                    .map(|(name, record)| (record.number, name.clone()))
                    .collect(),
                active: loaded.active,
                deleted: loaded.deleted,
            }),
            changing: Mutex::new(loaded.next_number),
            pins: Mutex::new(HashMap::new()),
        })
    }

    pub fn live(&self) -> &Arc<LiveFs> {
        &self.live
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Keeps the catalog from changing (no create, delete, purge) while the guard lives.
    pub fn hold_catalog(&self) -> MutexGuard<'_, u64> {
        self.changing.lock()
    }

    pub fn objects(&self) -> &Arc<ObjectStore> {
        &self.objects
    }

    /// The snapshots that exist, by name.
    pub fn list(&self) -> Vec<(String, SnapshotRecord)> {
        self.catalog
            .read()
            .active
            .iter()
            .map(|(name, record)| (name.clone(), record.clone()))
            .collect()
    }

    /// The soft-deleted snapshots, oldest first.
    pub fn list_deleted(&self) -> Vec<(String, SnapshotRecord)> {
        self.catalog.read().deleted.values().cloned().collect()
    }

    /// The root of every tree whose data must be kept: existing and soft-deleted snapshots.
    pub fn roots_in_use(&self) -> Vec<ObjectId> {
        let catalog = self.catalog.read();
        let active = catalog.active.values();
        active
            .chain(catalog.deleted.values().map(|(_, r)| r))
            .map(|r| r.root)
            .collect()
    }

    pub fn get(&self, name: &str) -> Option<SnapshotRecord> {
        self.catalog.read().active.get(name).cloned()
    }

    pub fn by_number(&self, number: u64) -> Option<(String, SnapshotRecord)> {
        let catalog = self.catalog.read();
        let name = catalog.numbers.get(&number)?;
        Some((name.clone(), catalog.active[name].clone()))
    }

    /// Keeps `name` from being deleted until the pin is dropped.
    pub fn pin(&self, name: &str) -> Result<Pin<'_>, SnapshotError> {
        let _changing = self.changing.lock();
        let record = self
            .get(name)
            .ok_or_else(|| SnapshotError::NotFound(name.to_owned()))?;
        *self.pins.lock().entry(name.to_owned()).or_default() += 1;
        Ok(Pin {
            snapshots: self,
            name: name.to_owned(),
            record,
        })
    }

    pub fn create(&self, name: &str, origin: Origin) -> Result<SnapshotRecord, SnapshotError> {
        check_snapshot_name(name).map_err(|reason| SnapshotError::InvalidName {
            name: name.to_owned(),
            reason,
        })?;
        let mut next = self.changing.lock();
        if self.catalog.read().active.contains_key(name) {
            return Err(SnapshotError::Exists(name.to_owned()));
        }
        let frozen = self.live.freeze(&self.objects)?;
        // The objects are chunks like file data: a live commit makes them durable before the
        // catalog names them.
        self.live.commit_now()?;
        let record = SnapshotRecord {
            number: *next,
            root: frozen.root,
            created: Timestamp {
                secs: self.clock.now(),
                nanos: 0,
            },
            origin,
            root_perm: frozen.root_record.perm,
            root_uid: frozen.root_record.uid,
            root_gid: frozen.root_record.gid,
            hold: Hold::None,
            deleted: None,
        };
        catalog::apply(
            &self.live.database(),
            &[Change::Put(name, &record)],
            *next + 1,
        )?;
        *next += 1;
        self.catalog.write().insert(name, record.clone());
        tracing::info!(snapshot = name, root = %record.root, "snapshot created");
        Ok(record)
    }

    /// The record of `name`, if it may be deleted now.
    fn deletable(&self, name: &str) -> Result<SnapshotRecord, SnapshotError> {
        let record = self
            .get(name)
            .ok_or_else(|| SnapshotError::NotFound(name.to_owned()))?;
        if record.hold.protects_at(self.clock.now()) {
            return Err(SnapshotError::Held {
                name: name.to_owned(),
                until: describe_hold(record.hold),
            });
        }
        if self.pins.lock().contains_key(name) {
            return Err(SnapshotError::Busy(name.to_owned()));
        }
        Ok(record)
    }

    pub fn delete(&self, name: &str, mode: DeleteMode) -> Result<(), SnapshotError> {
        let next = self.changing.lock();
        let mut record = self.deletable(name)?;
        let db = self.live.database();
        match mode {
            DeleteMode::Now => catalog::apply(&db, &[Change::Remove(name)], *next)?,
            DeleteMode::Soft { retain_secs } => {
                let now = self.clock.now();
                record.hold = Hold::None;
                record.deleted = Some(Deletion {
                    deleted_at: now,
                    purge_at: now.saturating_add_unsigned(retain_secs),
                });
                catalog::apply(
                    &db,
                    &[Change::Remove(name), Change::PutDeleted(name, &record)],
                    *next,
                )?;
            }
        }
        let mut catalog = self.catalog.write();
        catalog.remove(name);
        if record.deleted.is_some() {
            catalog
                .deleted
                .insert(record.number, (name.to_owned(), record));
        }
        drop(catalog);
        self.live
            .forget_entry_later(view::SNAPSHOTS_DIR, name.as_bytes());
        tracing::info!(snapshot = name, ?mode, "snapshot deleted");
        Ok(())
    }

    /// The number of the most recently deleted snapshot named `name`.
    fn latest_deleted(&self, name: &str) -> Result<u64, SnapshotError> {
        self.catalog
            .read()
            .deleted
            .iter()
            .rev()
            .find(|(_, (n, _))| n == name)
            .map(|(number, _)| *number)
            .ok_or_else(|| SnapshotError::NotDeleted(name.to_owned()))
    }

    /// Brings back the most recently deleted snapshot named `name`.
    pub fn undelete(&self, name: &str) -> Result<SnapshotRecord, SnapshotError> {
        let next = self.changing.lock();
        let number = self.latest_deleted(name)?;
        if self.get(name).is_some() {
            return Err(SnapshotError::Exists(name.to_owned()));
        }
        let mut record = self.catalog.read().deleted[&number].1.clone();
        record.deleted = None;
        catalog::apply(
            &self.live.database(),
            &[Change::RemoveDeleted(number), Change::Put(name, &record)],
            *next,
        )?;
        let mut catalog = self.catalog.write();
        catalog.deleted.remove(&number);
        catalog.insert(name, record.clone());
        tracing::info!(snapshot = name, "snapshot undeleted");
        Ok(record)
    }

    /// Forgets deleted snapshots for good (every one named `name`): their unique data becomes
    /// reclaimable. Returns how many were purged.
    pub fn purge(&self, name: &str) -> Result<usize, SnapshotError> {
        let numbers: Vec<u64> = self
            .catalog
            .read()
            .deleted
            .iter()
            .filter(|(_, (n, _))| n == name)
            .map(|(number, _)| *number)
            .collect();
        if numbers.is_empty() {
            return Err(SnapshotError::NotDeleted(name.to_owned()));
        }
        self.purge_numbers(&numbers)?;
        Ok(numbers.len())
    }

    /// Purges the deleted snapshots whose recovery period is over; returns their names.
    pub fn purge_expired(&self) -> Result<Vec<String>, SnapshotError> {
        let now = self.clock.now();
        let expired: Vec<(u64, String)> = self
            .catalog
            .read()
            .deleted
            .iter()
            .filter(|(_, (_, r))| r.deleted.is_some_and(|d| d.purge_at <= now))
            .map(|(number, (name, _))| (*number, name.clone()))
            .collect();
        let numbers: Vec<u64> = expired.iter().map(|(n, _)| *n).collect();
        if !numbers.is_empty() {
            self.purge_numbers(&numbers)?;
        }
        Ok(expired.into_iter().map(|(_, name)| name).collect())
    }

    fn purge_numbers(&self, numbers: &[u64]) -> Result<(), SnapshotError> {
        let next = self.changing.lock();
        let changes: Vec<Change<'_>> = numbers.iter().map(|n| Change::RemoveDeleted(*n)).collect();
        catalog::apply(&self.live.database(), &changes, *next)?;
        let mut catalog = self.catalog.write();
        for number in numbers {
            catalog.deleted.remove(number);
        }
        tracing::info!(count = numbers.len(), "deleted snapshots purged");
        Ok(())
    }

    /// Sets (or with `Hold::None`, releases) the hold on `name`.
    pub fn set_hold(&self, name: &str, hold: Hold) -> Result<SnapshotRecord, SnapshotError> {
        let next = self.changing.lock();
        let mut record = self
            .get(name)
            .ok_or_else(|| SnapshotError::NotFound(name.to_owned()))?;
        record.hold = hold;
        catalog::apply(&self.live.database(), &[Change::Put(name, &record)], *next)?;
        self.catalog.write().insert(name, record.clone());
        tracing::info!(snapshot = name, ?hold, "snapshot hold changed");
        Ok(record)
    }
}

/// "until 2026-12-31T00:00:00Z" or "indefinitely".
pub fn describe_hold(hold: Hold) -> String {
    match hold {
        Hold::None => "not held".into(),
        Hold::Until(until) => format!("until {}", crate::schedule::calendar::format_rfc3339(until)),
        Hold::Indefinite => "indefinitely".into(),
    }
}
