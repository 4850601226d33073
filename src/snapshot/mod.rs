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

pub mod accounting;
pub mod catalog;
mod clone;
pub mod gmt;
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
use crate::meta::accounting::SnapshotState;
use crate::schedule::clock::Clock;
use crate::tree_objects::TreeObjects;
pub use catalog::CatalogError;
use catalog::Change;
pub use clone::{CloneReport, clone_snapshot};
pub(crate) use clone::{graft_stored_tree, new_store_with};
pub use restore::{RestoreError, RestoreReport, TreeCounts, restore_paths};
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
    #[error(
        "this store has used all {} snapshot numbers its inode numbers have room for",
        view::SNAPSHOT_NUMBER_LIMIT
    )]
    NumbersExhausted,
    #[error("cannot freeze the share: {0}")]
    Freeze(#[from] FsError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("cannot rebuild the space accounting: {0}")]
    Accounting(#[from] accounting::RebuildError),
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

/// A snapshot that encoded this many inodes (the first of a large share) allocated in
/// proportion to the share: its capture and encode, the commit of its objects, the accounting
/// diff. What they freed goes back to the system once the snapshot is made (see `heap`): at
/// 200,000 files the first snapshot grew the daemon's RSS by 74 MiB, against 133 MiB when the
/// freeze gave memory back before the commit and the diff.
const GIVE_BACK_AFTER: usize = 10_000;

/// The snapshots of one store.
pub struct Snapshots {
    live: Arc<LiveFs>,
    objects: Arc<TreeObjects>,
    clock: Arc<dyn Clock>,
    catalog: RwLock<Catalog>,
    /// Serialises catalog changes; also guards the next number.
    changing: Mutex<u64>,
    /// Counts catalog changes (what the tier watches to checkpoint after each snapshot).
    generation: std::sync::atomic::AtomicU64,
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
    /// Opens the catalog. A store whose space accounting is missing (made by an older
    /// version) or stale is given it here, by one walk of every snapshot.
    pub fn open(live: Arc<LiveFs>, clock: Arc<dyn Clock>) -> Result<Self, SnapshotError> {
        let loaded = catalog::load(&live.database())?;
        let snapshots = Snapshots {
            objects: Arc::new(TreeObjects::new(live.chunk_store())),
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
            generation: std::sync::atomic::AtomicU64::new(0),
            pins: Mutex::new(HashMap::new()),
        };
        snapshots.ensure_accounting()?;
        Ok(snapshots)
    }

    /// Rebuilds the space accounting if it is missing or stale; returns whether it did.
    pub fn ensure_accounting(&self) -> Result<bool, SnapshotError> {
        let _changing = self.changing.lock();
        let db = self.live.database();
        let txn = db.begin_write().map_err(CatalogError::from)?;
        let current = crate::meta::accounting::is_current_in(&txn)
            .map_err(|e| SnapshotError::Accounting(e.into()))?;
        if current {
            return Ok(false);
        }
        let started = std::time::Instant::now();
        accounting::rebuild(&txn, &self.objects, &self.list(), &self.list_deleted())?;
        txn.commit().map_err(CatalogError::from)?;
        tracing::info!(
            snapshots = self.list().len() + self.list_deleted().len(),
            secs = started.elapsed().as_secs_f64(),
            "space accounting rebuilt"
        );
        Ok(true)
    }

    /// How many times the catalog changed since it was opened.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Changes the catalog in the database (see [`catalog::apply`]) and counts the change.
    fn apply_catalog(
        &self,
        db: &redb::Database,
        changes: &[Change<'_>],
        next_number: u64,
        account: impl FnOnce(
            &mut crate::meta::accounting::Ledger<'_>,
        ) -> Result<(), crate::meta::accounting::AccountingError>,
    ) -> Result<(), catalog::CatalogError> {
        catalog::apply(db, changes, next_number, account)?;
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Ok(())
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

    pub fn objects(&self) -> &Arc<TreeObjects> {
        &self.objects
    }

    /// Called by gc with the catalog held (`_held`): if the newest created snapshot was deleted
    /// for good, its tree stops being kept for the next create's diff. Its chunks leave the
    /// newest tree (their open intervals close after its number), so the next create starts
    /// from no tree, and this collection can reclaim what only it held. Costs that tree.
    pub fn retire_deleted_newest(&self, _held: &MutexGuard<'_, u64>) -> Result<(), SnapshotError> {
        let db = self.live.database();
        let accounting_err = |e: crate::meta::accounting::AccountingError| {
            SnapshotError::Accounting(accounting::RebuildError::Accounting(e))
        };
        let Some((number, root)) = crate::meta::accounting::newest(&db).map_err(accounting_err)?
        else {
            return Ok(());
        };
        {
            let catalog = self.catalog.read();
            let mut roots = catalog
                .active
                .values()
                .chain(catalog.deleted.values().map(|(_, r)| r));
            if roots.any(|r| r.number == number) {
                return Ok(());
            }
        }
        let deltas = accounting::reference_deltas(&self.objects, Some(root), None)
            .map_err(|e| SnapshotError::Accounting(e.into()))?;
        let txn = db.begin_write().map_err(CatalogError::from)?;
        if let Some(mut ledger) =
            crate::meta::accounting::Ledger::open(&txn).map_err(accounting_err)?
        {
            ledger.retired(number, &deltas).map_err(accounting_err)?;
            ledger.finish().map_err(accounting_err)?;
        }
        txn.commit().map_err(CatalogError::from)?;
        tracing::info!(
            snapshot = number,
            "the deleted newest snapshot's tree is no longer kept"
        );
        Ok(())
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

    /// The root of every tree whose data must be kept: existing and soft-deleted snapshots,
    /// and the newest created one even if deleted (the next create diffs against it for the
    /// space accounting), until gc retires it (`retire_deleted_newest`).
    pub fn roots_in_use(&self) -> Vec<ObjectId> {
        let catalog = self.catalog.read();
        let active = catalog.active.values();
        let mut roots: Vec<ObjectId> = active
            .chain(catalog.deleted.values().map(|(_, r)| r))
            .map(|r| r.root)
            .collect();
        match crate::meta::accounting::newest(&self.live.database()) {
            Ok(Some((_, root))) if !roots.contains(&root) => roots.push(root),
            Ok(_) => {}
            Err(err) => tracing::warn!("cannot read the newest snapshot's root: {err}"),
        }
        roots
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
        let mut phases = crate::phases::Phases::start();
        // Before anything is locked: the kernel's writes go through the share's write path.
        self.live.collect_kernel_writes();
        phases.lap("kernel writes");
        let mut next = self.changing.lock();
        if self.catalog.read().active.contains_key(name) {
            return Err(SnapshotError::Exists(name.to_owned()));
        }
        // A larger number would reach the bit that marks GMT aliases (see `view`).
        if *next >= view::SNAPSHOT_NUMBER_LIMIT {
            return Err(SnapshotError::NumbersExhausted);
        }
        let frozen = self.live.freeze(&self.objects)?;
        phases.lap("freeze");
        // The objects are chunks like file data: a live commit names them before the catalog
        // does. The catalog's durable commit makes both durable (the packs are synced first),
        // so a snapshot costs one sync of the database.
        self.live.commit_before_durable()?;
        phases.lap("commit");
        // What the new tree names more or less often than the newest before it: read outside
        // the catalog's transaction (objects are immutable), applied inside it.
        let deltas = crate::meta::accounting::newest(&self.live.database())
            .map_err(|e| e.to_string())
            .and_then(|newest| {
                accounting::reference_deltas(
                    &self.objects,
                    newest.map(|(_, r)| r),
                    Some(frozen.root),
                )
                .map_err(|e| e.to_string())
            });
        phases.lap("accounting diff");
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
        self.apply_catalog(
            &self.live.database(),
            &[Change::Put(name, &record)],
            *next + 1,
            |ledger| match &deltas {
                Ok(deltas) => ledger.created(record.number, &record.root, deltas),
                Err(err) => {
                    ledger.mark_broken(format!("cannot diff the snapshot trees: {err}"));
                    Ok(())
                }
            },
        )?;
        phases.lap("catalog");
        *next += 1;
        self.catalog.write().insert(name, record.clone());
        drop(next);
        if frozen.encoded >= GIVE_BACK_AFTER {
            // Outside every lock: see the constant.
            crate::heap::give_back_freed();
        }
        tracing::info!(
            snapshot = name,
            root = %record.root,
            encoded = frozen.encoded,
            "snapshot created"
        );
        tracing::debug!(phases = %phases, "where the snapshot's time went");
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
        let created = record.created.secs;
        let db = self.live.database();
        match mode {
            DeleteMode::Now => {
                self.apply_catalog(&db, &[Change::Remove(name)], *next, |ledger| {
                    ledger.state_changed(record.number, None)
                })?
            }
            DeleteMode::Soft { retain_secs } => {
                let now = self.clock.now();
                record.hold = Hold::None;
                record.deleted = Some(Deletion {
                    deleted_at: now,
                    purge_at: now.saturating_add_unsigned(retain_secs),
                });
                self.apply_catalog(
                    &db,
                    &[Change::Remove(name), Change::PutDeleted(name, &record)],
                    *next,
                    |ledger| ledger.state_changed(record.number, Some(SnapshotState::Deleted)),
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
        self.forget_alias_later(created);
        tracing::info!(snapshot = name, ?mode, "snapshot deleted");
        Ok(())
    }

    /// Has the kernel forget the GMT alias of the second `created` (`.snapshots/.gmt/@GMT-...`),
    /// which may now name another snapshot or none. Harmless when the mount has no aliases.
    fn forget_alias_later(&self, created: i64) {
        if let Some(alias) = gmt::alias_name(created) {
            self.live
                .forget_entry_later(view::GMT_DIR, alias.as_bytes());
        }
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
        self.apply_catalog(
            &self.live.database(),
            &[Change::RemoveDeleted(number), Change::Put(name, &record)],
            *next,
            |ledger| ledger.state_changed(number, Some(SnapshotState::Listed)),
        )?;
        let mut catalog = self.catalog.write();
        catalog.deleted.remove(&number);
        catalog.insert(name, record.clone());
        drop(catalog);
        // It may take back its second's alias from a later snapshot of that second.
        self.forget_alias_later(record.created.secs);
        tracing::info!(snapshot = name, "snapshot undeleted");
        Ok(record)
    }

    /// Forgets deleted snapshots for good (every one named `name`): their unique data becomes
    /// reclaimable. Returns how many were purged.
    pub fn purge(&self, name: &str) -> Result<usize, SnapshotError> {
        let purged = self.purge_where(|deleted_name, _| deleted_name == name)?;
        if purged.is_empty() {
            return Err(SnapshotError::NotDeleted(name.to_owned()));
        }
        Ok(purged.len())
    }

    /// Purges the deleted snapshots whose recovery period is over; returns their names.
    pub fn purge_expired(&self) -> Result<Vec<String>, SnapshotError> {
        let now = self.clock.now();
        self.purge_where(|_, record| record.deleted.is_some_and(|d| d.purge_at <= now))
    }

    /// Purges the deleted snapshots `pick` chooses, chosen under the catalog lock (so none is
    /// undeleted meanwhile); returns their names.
    fn purge_where(
        &self,
        pick: impl Fn(&str, &SnapshotRecord) -> bool,
    ) -> Result<Vec<String>, SnapshotError> {
        let next = self.changing.lock();
        let picked: Vec<(u64, String)> = self
            .catalog
            .read()
            .deleted
            .iter()
            .filter(|(_, (name, record))| pick(name, record))
            .map(|(number, (name, _))| (*number, name.clone()))
            .collect();
        if picked.is_empty() {
            return Ok(Vec::new());
        }
        let changes: Vec<Change<'_>> = picked
            .iter()
            .map(|(number, _)| Change::RemoveDeleted(*number))
            .collect();
        self.apply_catalog(&self.live.database(), &changes, *next, |ledger| {
            for (number, _) in &picked {
                ledger.state_changed(*number, None)?;
            }
            Ok(())
        })?;
        let mut catalog = self.catalog.write();
        for (number, _) in &picked {
            catalog.deleted.remove(number);
        }
        tracing::info!(count = picked.len(), "deleted snapshots purged");
        Ok(picked.into_iter().map(|(_, name)| name).collect())
    }

    /// Sets (or with `Hold::None`, releases) the hold on `name`.
    pub fn set_hold(&self, name: &str, hold: Hold) -> Result<SnapshotRecord, SnapshotError> {
        let next = self.changing.lock();
        let mut record = self
            .get(name)
            .ok_or_else(|| SnapshotError::NotFound(name.to_owned()))?;
        record.hold = hold;
        self.apply_catalog(
            &self.live.database(),
            &[Change::Put(name, &record)],
            *next,
            |_| Ok(()),
        )?;
        self.catalog.write().insert(name, record.clone());
        tracing::info!(snapshot = name, ?hold, "snapshot hold changed");
        Ok(record)
    }
}

/// "until 2026-12-31T00:00:00Z" or "indefinitely".
fn describe_hold(hold: Hold) -> String {
    match hold {
        Hold::None => "not held".into(),
        Hold::Until(until) => format!("until {}", crate::schedule::calendar::format_rfc3339(until)),
        Hold::Indefinite => "indefinitely".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::ManualClock;
    use crate::testing::{close, new_store, open, snapshots_of};

    const DAY: i64 = 86_400;

    fn with_clock(live: &Arc<LiveFs>, clock: &Arc<ManualClock>) -> Snapshots {
        Snapshots::open(live.clone(), clock.clone()).expect("snapshots")
    }

    /// A snapshot's freeze lets the share go after its capture, but `create` keeps the
    /// catalog until the snapshot is in it, and a gc takes the catalog first: so a gc started
    /// while the freeze encodes waits, and never sweeps the chunks the capture holds that the
    /// share dropped meanwhile (here, a whole file truncated and committed), nor the objects
    /// being encoded. The snapshot reads back whole after the gc.
    #[test]
    fn a_gc_waits_for_a_snapshot_whose_freeze_is_encoding() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (_store, live) = new_store(tmp.path(), "store");
        let snapshots = snapshots_of(&live);
        let data = crate::testing::noise(5 * live.block_size() as usize + 100, 7);
        crate::testing::write_file(&live, "f", &data);
        live.commit_now().expect("commit");
        let (captured, go) = live.pause_next_freeze();
        std::thread::scope(|scope| {
            let create = scope.spawn(|| snapshots.create("s", Origin::Manual));
            captured.recv().expect("the freeze captured");
            // The share drops every chunk of f, durably: only the capture names them.
            crate::testing::write_file(&live, "f", b"");
            live.commit_now().expect("commit");
            assert!(
                snapshots.changing.try_lock().is_none(),
                "the catalog is held while the freeze encodes"
            );
            let gc =
                scope.spawn(|| crate::gc::collect(&snapshots, &crate::progress::Progress::new()));
            go.send(()).expect("resume");
            create.join().expect("create thread").expect("create");
            gc.join().expect("gc thread").expect("gc");
        });
        let record = snapshots.get("s").expect("s");
        let root = crate::testing::tree_dir(&live, snapshots.objects(), record.root, &[]);
        assert!(
            root.get("f") == Some(&Some(data)),
            "the snapshot holds f whole"
        );
        let report =
            crate::gc::collect(&snapshots, &crate::progress::Progress::new()).expect("gc again");
        assert_eq!(report.chunks_removed, 0, "{report:?}");
        drop(snapshots);
        close(live);
    }

    #[test]
    fn holds_refuse_deletion_until_released_or_expired() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (_store, live) = new_store(tmp.path(), "store");
        let clock = Arc::new(ManualClock::new(1_000 * DAY));
        let snapshots = with_clock(&live, &clock);
        snapshots.create("s", Origin::Manual).expect("create");
        snapshots.set_hold("s", Hold::Indefinite).expect("hold");
        for mode in [DeleteMode::Now, DeleteMode::Soft { retain_secs: 60 }] {
            assert!(matches!(
                snapshots.delete("s", mode),
                Err(SnapshotError::Held { .. })
            ));
        }
        snapshots
            .set_hold("s", Hold::Until(1_001 * DAY))
            .expect("hold until");
        assert!(snapshots.delete("s", DeleteMode::Now).is_err());
        clock.set(1_001 * DAY);
        snapshots
            .delete("s", DeleteMode::Now)
            .expect("the hold is over");
        assert!(snapshots.list().is_empty() && snapshots.list_deleted().is_empty());
    }

    #[test]
    fn soft_deleted_snapshots_come_back_until_purged_and_survive_reopening() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (store, live) = new_store(tmp.path(), "store");
        let clock = Arc::new(ManualClock::new(1_000 * DAY));
        let snapshots = with_clock(&live, &clock);
        let soft = DeleteMode::Soft {
            retain_secs: 14 * DAY as u64,
        };
        let first = snapshots.create("s", Origin::Manual).expect("create");
        snapshots.delete("s", soft).expect("delete");
        assert!(snapshots.get("s").is_none());
        assert_eq!(snapshots.roots_in_use(), vec![first.root]);
        // The name is free again, and may be deleted a second time.
        snapshots
            .create("s", Origin::Automatic)
            .expect("create again");
        assert!(matches!(
            snapshots.undelete("s"),
            Err(SnapshotError::Exists(_))
        ));
        snapshots.delete("s", soft).expect("delete again");
        assert_eq!(snapshots.list_deleted().len(), 2);
        drop(snapshots);
        close(live);

        let live = open(&store);
        let snapshots = with_clock(&live, &clock);
        assert_eq!(snapshots.list_deleted().len(), 2);
        // The newest deletion comes back first.
        let back = snapshots.undelete("s").expect("undelete");
        assert_eq!(back.origin, Origin::Automatic);
        assert_eq!(back.deleted, None);
        snapshots
            .delete("s", DeleteMode::Now)
            .expect("delete for good");
        clock.set(1_013 * DAY);
        assert!(snapshots.purge_expired().expect("purge").is_empty());
        clock.set(1_014 * DAY);
        assert_eq!(snapshots.purge_expired().expect("purge"), ["s"]);
        assert_eq!(
            snapshots.roots_in_use(),
            vec![back.root],
            "only the newest created tree, which the next create diffs against"
        );
        assert!(matches!(
            snapshots.purge("s"),
            Err(SnapshotError::NotDeleted(_))
        ));
        drop(snapshots);
        close(live);
    }

    #[test]
    fn a_snapshot_named_live_by_an_older_version_stays_listable_and_deletable() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (store, live) = new_store(tmp.path(), "store");
        let snapshots = snapshots_of(&live);
        assert!(matches!(
            snapshots.create("live", Origin::Manual),
            Err(SnapshotError::InvalidName { .. })
        ));
        let record = snapshots.create("s", Origin::Manual).expect("create");
        // What an older snapfs, which did not reserve the name, could have stored.
        let old = SnapshotRecord {
            number: record.number + 1,
            ..record.clone()
        };
        catalog::apply(
            &live.database(),
            &[Change::Put("live", &old)],
            old.number + 1,
            |ledger| {
                ledger.mark_broken("an older snapfs wrote the catalog".into());
                Ok(())
            },
        )
        .expect("catalog");
        drop(snapshots);
        close(live);

        let live = open(&store);
        let snapshots = snapshots_of(&live);
        let names: Vec<String> = snapshots.list().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["live", "s"]);
        assert_eq!(snapshots.get("live").map(|r| r.root), Some(record.root));
        snapshots
            .delete("live", DeleteMode::Now)
            .expect("delete by its name");
        assert!(snapshots.get("live").is_none());
        drop(snapshots);
        close(live);
    }
}
