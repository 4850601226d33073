//! `vault gc VAULT [--dry-run]`: frees the space of objects no backup reaches, as a plan
//! computed first ([`plan`], all reads) and carried out second ([`execute`]), so a dry run is
//! the plan printed.
//!
//! **Plan.** Mark every object reachable from every backup record (an explicit-stack walk of
//! each tree, each shared subtree once). Then each pack the index lists is one of:
//! - *deleted*: none of its objects is live;
//! - *rewritten*: less than half of its bytes are live; its live objects move to new packs;
//! - *kept*: its index loses the entries of dead objects (and of live ones kept elsewhere).
//!
//! Packs without an index (an interrupted backup's) and leftovers of an interrupted gc are
//! deleted too; holds of backups that are gone are removed.
//!
//! **Execution order**, each step complete before the next starts:
//! 1. live objects of rewritten packs are copied into new packs, each stored before its index
//!    (the vault now holds them twice);
//! 2. one retirement list `gc/<id>` ([`Retirement`]) takes, in one atomic put, every retired
//!    pack and every dropped entry out of the index that readers see;
//! 3. kept packs' index files are rewritten without their dropped entries;
//! 4. retired packs' index files are deleted, **then** the retired packs;
//! 5. the retirement lists (this one and any earlier, interrupted one) are deleted.
//!
//! A crash before 2 leaves duplicates only; from 2 on, every reader sees exactly the live
//! objects (each listed tree's whole subtree listed, so a later backup may skip it), and what
//! is left to delete is hidden; the next gc finishes it. Every listed backup restores at every
//! point. gc holds the vault's exclusive lock throughout ([`super::lock`]): no backup may be
//! relying on an object it deletes, and it checks the lock is still its own before steps 2 and
//! 4.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use super::index::Scan;
use super::lock::{LockKind, VaultLock};
use super::pack_writer::{self, PackWriter};
use super::tree::{Child, read_node};
use super::verify::check_entry;
use super::{HOLDS, PACKS, Vault, VaultError, gc_key, index_key, listed_id, listed_pack, pack_key};
use crate::blob::BlobKey;
use crate::format::vault_gc::Retirement;
use crate::format::vault_index::{PackIndex, PackKind, PackSlice};
use crate::id::{BackupId, ChunkId, GcPlanId, VaultPackId};

/// What gc will do (or, after [`execute`], did).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GcReport {
    pub dry_run: bool,
    pub backups: u64,
    /// Distinct objects the backups reach.
    pub live_objects: u64,
    /// Packs removed whole (nothing live in them, or no index).
    pub packs_deleted: u64,
    /// Packs whose live objects are moved to new packs before they are removed.
    pub packs_rewritten: u64,
    pub objects_moved: u64,
    pub bytes_moved: u64,
    /// Index entries of dead (or duplicate) objects in packs that stay.
    pub entries_dropped: u64,
    pub pack_bytes_before: u64,
    /// After gc (estimated by a dry run: the moved objects' bytes, not the new packs').
    pub pack_bytes_after: u64,
}

/// The plan: everything gc would change, computed from reads alone.
pub struct GcPlan {
    pub report: GcReport,
    /// Live objects to move, by the retired pack they are in.
    moves: BTreeMap<VaultPackId, Vec<(ChunkId, PackSlice)>>,
    /// Kept packs' index files, rewritten with the entries that stay.
    rewrites: Vec<PackIndex>,
    /// Packs removed (index file first, if any, then the pack).
    retired: Vec<VaultPackId>,
    /// Which of them still have a pack file and an index file.
    pack_files: HashSet<VaultPackId>,
    index_files: HashSet<VaultPackId>,
    retirement: Retirement,
    /// Retirement lists of earlier, interrupted gcs, deleted at the end.
    earlier: Vec<BlobKey>,
    /// Holds of backups that are gone.
    orphan_holds: Vec<BlobKey>,
}

impl GcPlan {
    /// Whether executing the plan would change anything.
    pub fn is_empty(&self) -> bool {
        self.retired.is_empty()
            && self.rewrites.is_empty()
            && self.earlier.is_empty()
            && self.orphan_holds.is_empty()
    }
}

/// Every object reachable from the backups: explicit stack, each object once. A missing or
/// damaged object stops gc: on a damaged vault it could not tell what is live.
fn mark(vault: &Vault) -> Result<(u64, HashSet<ChunkId>), VaultError> {
    let records = vault.records()?;
    let mut live: HashSet<ChunkId> = HashSet::new();
    for (_, record) in &records {
        let unsafe_ = |err: VaultError| VaultError::Unsafe {
            vault: vault.describe(),
            problem: format!("backup {}: {err}", record.name),
        };
        let mut stack = vec![(record.root, true)];
        while let Some((id, tree)) = stack.pop() {
            if !live.insert(id) {
                continue;
            }
            if !vault.contains(&id) {
                return Err(unsafe_(VaultError::Missing(id)));
            }
            if !tree {
                continue;
            }
            let node = read_node(vault, &id).map_err(unsafe_)?;
            live.extend(node.parts.iter().map(|(part, _)| *part));
            for child in super::tree::children(&node.object) {
                stack.push(match child {
                    Child::Tree(id, _) | Child::Segment(id) => (id, true),
                    Child::Data(id) => (id, false),
                });
            }
        }
    }
    Ok((records.len() as u64, live))
}

fn bytes_of(entries: &[(ChunkId, PackSlice)]) -> u64 {
    entries.iter().map(|(_, slice)| u64::from(slice.len)).sum()
}

/// Computes what gc would do. The caller holds a lock (exclusive to execute the plan).
pub fn plan(vault: &mut Vault) -> Result<GcPlan, VaultError> {
    let visible = Scan::read(vault)?.strict()?;
    vault.use_visible(&visible);
    let mut pack_sizes: BTreeMap<VaultPackId, u64> = BTreeMap::new();
    for meta in vault.backend.list(PACKS)? {
        if let Some(pack) = listed_pack(&meta.key) {
            pack_sizes.insert(pack, meta.size);
        }
    }
    if let Some(pack) = visible.packs.keys().find(|p| !pack_sizes.contains_key(p)) {
        return Err(VaultError::Unsafe {
            vault: vault.describe(),
            problem: format!("index/{pack} names pack {pack}, which is missing"),
        });
    }
    let (backups, live) = mark(vault)?;

    // Classify the packs the index lists, by the bytes of live objects they hold.
    let mut kept = Vec::new();
    let mut rewritten = Vec::new();
    let mut retired = Vec::new();
    for (pack, entries) in &visible.packs {
        let live_entries: Vec<_> = entries.iter().filter(|(id, _)| live.contains(id)).collect();
        let live_bytes: u64 = live_entries.iter().map(|(_, s)| u64::from(s.len)).sum();
        // A pack of copied frames also holds frames no index entry names (what the backup
        // that copied it did not need): its whole size counts.
        let size = if visible.frame_packs.contains(pack) {
            pack_sizes[pack]
        } else {
            bytes_of(entries)
        };
        if live_entries.is_empty() {
            retired.push(*pack);
        } else if live_bytes * 2 < size {
            rewritten.push(*pack);
        } else {
            kept.push(*pack);
        }
    }
    // Each live object counts in one place: a kept pack if one holds it, else the first
    // rewritten one (from which it moves).
    let mut home: HashMap<ChunkId, VaultPackId> = HashMap::new();
    for pack in kept.iter().chain(&rewritten) {
        for (id, _) in &visible.packs[pack] {
            if live.contains(id) {
                home.entry(*id).or_insert(*pack);
            }
        }
    }
    let mut rewrites = Vec::new();
    let mut dropped = Vec::new();
    let mut entries_dropped = 0u64;
    for pack in kept {
        // The index file as stored: an earlier gc's dropped entries go too.
        let file = visible.files.get(&pack).map_or(&[][..], Vec::as_slice);
        let stays: Vec<_> = file
            .iter()
            .filter(|(id, _)| home.get(id) == Some(&pack))
            .copied()
            .collect();
        if stays.is_empty() {
            retired.push(pack);
            continue;
        }
        if stays.len() < file.len() {
            let gone: Vec<ChunkId> = file
                .iter()
                .filter(|(id, _)| home.get(id) != Some(&pack))
                .map(|(id, _)| *id)
                .collect();
            entries_dropped += gone.len() as u64;
            dropped.push((pack, gone));
            rewrites.push(PackIndex {
                pack,
                kind: if visible.frame_packs.contains(&pack) {
                    PackKind::Frames
                } else {
                    PackKind::Sealed
                },
                entries: stays,
            });
        }
    }
    let mut moves = BTreeMap::new();
    let mut bytes_moved = 0u64;
    let mut objects_moved = 0u64;
    for pack in &rewritten {
        let moving: Vec<_> = visible.packs[pack]
            .iter()
            .filter(|(id, _)| home.get(id) == Some(pack))
            .copied()
            .collect();
        bytes_moved += bytes_of(&moving);
        objects_moved += moving.len() as u64;
        moves.insert(*pack, moving);
    }
    retired.extend(&rewritten);
    // Packs or index files no index that counts names: an interrupted backup's pack, or what
    // an interrupted gc retired.
    let counted: HashSet<VaultPackId> = visible.packs.keys().copied().collect();
    for pack in pack_sizes.keys().chain(visible.files.keys()) {
        if !counted.contains(pack) && !retired.contains(pack) {
            retired.push(*pack);
        }
    }
    retired.sort();
    let pack_files: HashSet<_> = retired
        .iter()
        .filter(|p| pack_sizes.contains_key(p))
        .copied()
        .collect();
    let index_files: HashSet<_> = retired
        .iter()
        .filter(|p| visible.files.contains_key(p))
        .copied()
        .collect();

    let records: HashSet<BackupId> = vault.records()?.into_iter().map(|(id, _)| id).collect();
    let orphan_holds = vault
        .backend
        .list(HOLDS)?
        .into_iter()
        .filter(|meta| {
            listed_id(&meta.key, HOLDS, BackupId::from_hex).is_some_and(|id| !records.contains(&id))
        })
        .map(|meta| meta.key)
        .collect();

    let pack_bytes_before: u64 = pack_sizes.values().sum();
    let freed: u64 = pack_files.iter().map(|p| pack_sizes[p]).sum();
    let report = GcReport {
        dry_run: true,
        backups,
        live_objects: live.len() as u64,
        packs_deleted: (retired.len() - rewritten.len()) as u64,
        packs_rewritten: rewritten.len() as u64,
        objects_moved,
        bytes_moved,
        entries_dropped,
        pack_bytes_before,
        pack_bytes_after: pack_bytes_before - freed + bytes_moved,
    };
    Ok(GcPlan {
        report,
        moves,
        rewrites,
        retirement: Retirement {
            retired: retired.clone(),
            dropped,
        },
        retired,
        pack_files,
        index_files,
        earlier: visible.plans.into_iter().map(|(key, _)| key).collect(),
        orphan_holds,
    })
}

/// Carries out a plan, in the order the module documentation gives.
pub fn execute(vault: &mut Vault, plan: GcPlan, lock: &VaultLock) -> Result<GcReport, VaultError> {
    let mut report = plan.report;
    report.dry_run = false;
    let describe = vault.describe();
    // 1. Move live objects out of the packs to rewrite, checked on the way.
    let mut writer = PackWriter::new()?;
    for (pack, entries) in &plan.moves {
        let bytes = vault.backend.get(&pack_key(*pack))?;
        for (id, slice) in entries {
            let start = slice.offset as usize;
            let sealed = bytes
                .get(start..start + slice.len as usize)
                .ok_or_else(|| VaultError::Unsafe {
                    vault: describe.clone(),
                    problem: format!("pack {pack} is shorter than its index says"),
                })?;
            let damaged = |reason: String| VaultError::Unsafe {
                vault: describe.clone(),
                problem: format!("pack {pack}: object {id}: {reason}"),
            };
            let entry = if vault.frame_packs.contains(pack) {
                // A frame moves as an entry like any other, sealed as a backup seals one.
                let sealer = &vault.sealer;
                let resealed = vault
                    .with_verified_entry(id, *pack, sealed, |chunk, _| {
                        pack_writer::seal_stored(sealer, *id, chunk.stored())
                    })
                    .map_err(|err| damaged(err.to_string()))??;
                Cow::Owned(resealed)
            } else {
                check_entry(vault, id, *pack, sealed).map_err(damaged)?;
                Cow::Borrowed(sealed)
            };
            writer.add_sealed(vault, *id, &entry)?;
        }
    }
    writer.flush(vault)?;

    // 2. One atomic put takes everything retired or dropped out of the index.
    let plan_key = if plan.retired.is_empty() && plan.rewrites.is_empty() {
        None
    } else {
        lock.check()?;
        let id = GcPlanId::random().map_err(|err| VaultError::Io(err.to_string()))?;
        let sealed = vault.seal(&plan.retirement.encode(), &|| {
            "sealing a gc retirement list".into()
        })?;
        vault.backend.put(&gc_key(id), &sealed)?;
        Some(gc_key(id))
    };

    // 3. Kept packs' index files without their dropped entries.
    for index in plan.rewrites {
        let pack = index.pack;
        let sealed = vault.seal(&index.encode(), &|| format!("sealing the index of {pack}"))?;
        vault.backend.put(&index_key(pack), &sealed)?;
    }

    // 4. Index files, then packs.
    lock.check()?;
    for pack in &plan.retired {
        if plan.index_files.contains(pack) {
            vault.backend.delete(&index_key(*pack))?;
        }
    }
    for pack in &plan.retired {
        if plan.pack_files.contains(pack) {
            vault.backend.delete(&pack_key(*pack))?;
        }
    }

    // 5. The retirement lists, now that nothing they hide is left.
    for key in plan.earlier.iter().chain(&plan_key) {
        vault.backend.delete(key)?;
    }
    for key in &plan.orphan_holds {
        vault.backend.delete(key)?;
    }
    vault.reload_index()?;
    report.pack_bytes_after = vault
        .backend
        .list(PACKS)?
        .iter()
        .filter(|meta| listed_pack(&meta.key).is_some())
        .map(|meta| meta.size)
        .sum();
    tracing::info!(vault = describe, ?report, "gc done");
    Ok(report)
}

/// `vault gc`: plans under the exclusive lock and, unless `dry_run`, executes the plan.
pub fn gc(vault: &mut Vault, dry_run: bool) -> Result<GcReport, VaultError> {
    if dry_run {
        let _lock = VaultLock::acquire(vault, LockKind::Shared, "gc --dry-run")?;
        return Ok(plan(vault)?.report);
    }
    let lock = VaultLock::acquire(vault, LockKind::Exclusive, "gc")?;
    let plan = plan(vault)?;
    execute(vault, plan, &lock)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::blob::BlobBackend;
    use crate::blob::RemoteStore;
    use crate::vault::retention;
    use crate::vault::tests::{Crashing, Fixture, Shared, clone_backend};
    use crate::vault::verify::verify;
    use crate::vault::{GC, LOCKS, Secret};

    #[test]
    fn gc_frees_a_deleted_backup_and_the_other_still_restores() {
        let fixture = Fixture::in_memory();
        let mut vault = fixture.vault();
        let before = fixture.pack_bytes();
        let idle = gc(&mut vault, false).expect("gc with nothing to free");
        assert_eq!(idle.packs_deleted + idle.packs_rewritten, 0, "{idle:?}");
        assert_eq!(fixture.pack_bytes(), before);

        retention::delete(&vault, &["old".to_owned()]).expect("delete");
        let dry = gc(&mut vault, true).expect("dry run");
        assert!(dry.dry_run);
        assert_eq!(fixture.pack_bytes(), before, "a dry run changes nothing");
        assert_eq!(
            dry.packs_rewritten, 1,
            "old's pack is mostly garbage: {dry:?}"
        );

        let done = gc(&mut vault, false).expect("gc");
        assert_eq!(done.backups, 1);
        assert!(done.objects_moved > 0, "common objects move: {done:?}");
        let after = fixture.pack_bytes();
        assert!(
            after < before - 1_500_000,
            "old's 2 MB go: {before} -> {after}"
        );
        assert_eq!(done.pack_bytes_after, after);
        assert!(fixture.backend().list(GC).expect("list").is_empty());
        assert!(fixture.backend().list(LOCKS).expect("list").is_empty());

        let mut vault = fixture.vault();
        fixture.check_restores(&vault, "new");
        let report = verify(&mut vault, true, &crate::progress::Progress::new()).expect("verify");
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert!(report.notes.is_empty(), "{:?}", report.notes);
        let again = gc(&mut vault, false).expect("gc again");
        assert_eq!(again.packs_deleted + again.packs_rewritten, 0, "{again:?}");
        assert_eq!(again.entries_dropped, 0, "{again:?}");

        // What gc freed is sent again by a backup that needs it, and restores.
        fixture.backup("old").expect("backup old again");
        fixture.check_restores(&fixture.vault(), "old");
    }

    /// Kills gc after every number of changes in turn: each time, every listed backup
    /// restores, verify finds nothing wrong, a backup relying on the index afterwards
    /// restores, and the next gc finishes the work. Once where the deleted backup's pack is
    /// rewritten, once where it is kept and loses index entries.
    #[test]
    fn a_gc_killed_at_any_step_leaves_every_backup_restorable() {
        for (common_len, rewritten) in [(300_000, true), (3_000_000, false)] {
            let fixture = Fixture::with_common(
                Shared(Arc::new(RemoteStore::in_memory())),
                Secret::None,
                common_len,
            );
            retention::delete(&fixture.vault(), &["old".to_owned()]).expect("delete");
            let plan = gc(&mut fixture.vault(), true).expect("dry run");
            assert_eq!(plan.packs_rewritten == 1, rewritten, "{plan:?}");
            assert_eq!(plan.entries_dropped > 0, !rewritten, "{plan:?}");
            let original = fixture.backend();
            let mut finished = None;
            for allowed in 0..60 {
                let copy = clone_backend(&original);
                let crashing = Crashing {
                    inner: copy.clone(),
                    allowed: AtomicUsize::new(allowed),
                    counts: "",
                };
                let mut vault =
                    Vault::open_backend(Box::new(crashing), &Secret::None).expect("open");
                if gc(&mut vault, false).is_ok() {
                    finished = Some(allowed);
                    break;
                }
                drop(vault);
                // The killed gc's lock goes stale in time; the test does not wait for it.
                for meta in copy.list(LOCKS).expect("list") {
                    copy.delete(&meta.key).expect("delete lock");
                }
                fixture.set_backend(copy.clone());
                let mut vault = fixture.vault();
                fixture.check_restores(&vault, "new");
                let report =
                    verify(&mut vault, true, &crate::progress::Progress::new()).expect("verify");
                assert!(
                    report.problems.is_empty(),
                    "after {allowed}: {:?}",
                    report.problems
                );
                // A backup of `old` now skips whatever the index lists: it must all be there.
                fixture.backup("old").expect("backup after a killed gc");
                fixture.check_restores(&fixture.vault(), "old");
                let mut vault = fixture.vault();
                gc(&mut vault, false).expect("the next gc");
                assert!(copy.list(GC).expect("list").is_empty());
                let report =
                    verify(&mut vault, true, &crate::progress::Progress::new()).expect("verify");
                assert!(
                    report.problems.is_empty(),
                    "after {allowed}: {:?}",
                    report.problems
                );
                assert!(
                    report.notes.is_empty(),
                    "after {allowed}: {:?}",
                    report.notes
                );
                fixture.check_restores(&vault, "new");
                fixture.check_restores(&vault, "old");
            }
            // At least: the lock, the retirement list, an index file (rewritten or deleted),
            // the list again (the lock's delete may fail: it goes stale).
            let steps = finished.expect("gc finishes once it may change enough");
            assert!(steps >= 4, "killed at each of {steps} steps");
        }
    }

    #[test]
    fn gc_refuses_while_a_backup_runs_and_a_backup_refuses_during_gc() {
        let fixture = Fixture::in_memory();
        let mut vault = fixture.vault();
        let backup_lock =
            VaultLock::acquire(&vault, LockKind::Shared, "backup").expect("shared lock");
        let err = gc(&mut vault, false).expect_err("gc refuses");
        assert!(matches!(err, VaultError::Locked { .. }), "{err}");
        assert!(
            err.to_string().contains("backup holds a shared lock"),
            "{err}"
        );
        assert_eq!(
            fixture.backend().list(LOCKS).expect("list").len(),
            1,
            "gc took its lock back"
        );
        gc(&mut vault, true).expect("a dry run goes along with a backup");
        drop(backup_lock);

        let gc_lock = VaultLock::acquire(&vault, LockKind::Exclusive, "gc").expect("lock");
        let err = fixture.backup("new").expect_err("backup refuses");
        assert!(
            err.to_string().contains("gc holds an exclusive lock"),
            "{err}"
        );
        drop(gc_lock);
        fixture.backup("new").expect("backup once gc is done");
        assert!(fixture.backend().list(LOCKS).expect("list").is_empty());
    }

    #[test]
    fn a_stale_lock_counts_for_nothing_and_gc_removes_it() {
        let fixture = Fixture::in_memory();
        let mut vault = fixture.vault();
        let stale = crate::format::vault_lock::LockRecord {
            kind: LockKind::Shared,
            time: crate::vault::unix_now() - 2 * crate::vault::lock::LOCK_TIMEOUT.as_secs() as i64,
            pid: 1,
            host: "gone".into(),
            op: "backup".into(),
        };
        let key = crate::vault::key("locks/00112233445566778899aabbccddeeff");
        fixture.backend().put(&key, &stale.encode()).expect("put");
        gc(&mut vault, false).expect("gc");
        assert!(fixture.backend().list(LOCKS).expect("list").is_empty());
    }
}
