//! Space accounting: what each snapshot alone holds (the bytes deleting it would free once
//! collected), what the live share uses, and what is reclaimable now.
//!
//! [`usage`] reads the figures that `meta::accounting` keeps up to date as block maps commit,
//! snapshots are created and deleted and gc sweeps: it costs the number of snapshots.
//! [`full_walk`] computes the same figures from scratch by walking every snapshot (the
//! definition they must match, kept as the reference the tests compare against, and used
//! while the tables are stale).

use std::collections::{HashMap, HashSet};

use super::{GcError, walk_tree};
use crate::id::ChunkId;
use crate::snapshot::Snapshots;

/// The space figures of a store. Every byte counted is a stored frame (its length in a pack).
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Usage {
    /// Stored bytes of every chunk the live share uses.
    pub live_bytes: u64,
    /// Per snapshot name: stored bytes of the chunks no other snapshot and not the live share
    /// uses.
    pub unique_bytes: HashMap<String, u64>,
    /// Stored bytes of the chunks snapshots use and the live share does not.
    pub snapshot_bytes: u64,
    /// Stored bytes of the chunks only soft-deleted snapshots hold.
    pub deleted_snapshot_bytes: u64,
    /// Stored bytes of every chunk in the index.
    pub stored_bytes: u64,
    /// Stored bytes of chunks nothing uses (what `gc` would remove).
    pub reclaimable_bytes: u64,
}

/// The figures from the accounting tables, after a commit (so that they cover every write
/// that returned); from [`full_walk`] while the tables are stale.
pub fn usage(snapshots: &Snapshots) -> Result<Usage, GcError> {
    match kept(snapshots)? {
        Some(usage) => Ok(usage),
        None => full_walk(snapshots),
    }
}

/// The figures from the accounting tables, after a commit; `None` while the tables are stale
/// (never a walk).
pub fn kept(snapshots: &Snapshots) -> Result<Option<Usage>, GcError> {
    snapshots.live().commit_now()?;
    as_committed(snapshots)
}

/// The figures from the accounting tables as the last commit left them; `None` while the
/// tables are stale. What the space history reads right after a change of the snapshots,
/// which committed its own figures: a commit of its own (a durable one, with its sync) made
/// every snapshot taken through the control file wait up to a millisecond more.
pub fn as_committed(snapshots: &Snapshots) -> Result<Option<Usage>, GcError> {
    // Names come from the catalog in memory, numbers' figures from the tables: read until the
    // catalog is the same before and after the tables (a catalog change commits its table
    // rows before it changes the catalog in memory). The catalog lock is not taken, so a list
    // never waits behind a long gc.
    let numbers = |list: &[(String, crate::format::catalog::SnapshotRecord)]| -> Vec<u64> {
        list.iter().map(|(_, record)| record.number).collect()
    };
    let (totals, list) = loop {
        let before = snapshots.list();
        let read = crate::meta::accounting::read(&snapshots.live().database())?;
        let Some(totals) = read else {
            return Ok(None);
        };
        let after = snapshots.list();
        if numbers(&before) == numbers(&after) {
            break (totals, after);
        }
    };
    let used = totals.live + totals.snapshot + totals.deleted;
    Ok(Some(Usage {
        live_bytes: totals.live,
        unique_bytes: list
            .into_iter()
            .map(|(name, record)| {
                let unique = totals.unique.get(&record.number).copied().unwrap_or(0);
                (name, unique)
            })
            .collect(),
        snapshot_bytes: totals.snapshot,
        deleted_snapshot_bytes: totals.deleted,
        stored_bytes: totals.stored,
        reclaimable_bytes: totals.stored.saturating_sub(used),
    }))
}

/// The figures computed by walking every snapshot tree and every block map: costs the data
/// times the snapshots.
pub fn full_walk(snapshots: &Snapshots) -> Result<Usage, GcError> {
    let live = snapshots.live();
    let chunks = live.chunk_store();
    live.commit_now()?;
    let sizes: HashMap<ChunkId, u64> = chunks
        .committed_chunks()?
        .into_iter()
        .map(|(id, l)| (id, u64::from(l.frame_len)))
        .collect();
    let size = |id: &ChunkId| sizes.get(id).copied().unwrap_or(0);
    let mut live_chunks = HashSet::new();
    let mut add = |id| {
        live_chunks.insert(id);
        Ok::<_, GcError>(())
    };
    live.for_each_chunk_in_memory(&mut add)?;
    live.for_each_committed_block_chunk(&mut add)?;
    // How many snapshots use each chunk; and each snapshot's own chunks.
    let mut users: HashMap<ChunkId, u32> = HashMap::new();
    let mut per_snapshot = Vec::new();
    for (name, record) in snapshots.list() {
        let mut mine = HashSet::new();
        walk_tree(snapshots.objects(), record.root, &mut |id| mine.insert(id))?;
        for id in &mine {
            *users.entry(*id).or_default() += 1;
        }
        per_snapshot.push((name, mine));
    }
    // What soft-deleted snapshots hold beyond that.
    let mut deleted_only = HashSet::new();
    for (_, record) in snapshots.list_deleted() {
        walk_tree(snapshots.objects(), record.root, &mut |id| {
            !users.contains_key(&id) && !live_chunks.contains(&id) && deleted_only.insert(id)
        })?;
    }
    let mut usage = Usage {
        live_bytes: live_chunks.iter().map(size).sum(),
        snapshot_bytes: users
            .keys()
            .filter(|id| !live_chunks.contains(id))
            .map(size)
            .sum(),
        deleted_snapshot_bytes: deleted_only.iter().map(size).sum(),
        stored_bytes: sizes.values().sum(),
        ..Usage::default()
    };
    for (name, mine) in per_snapshot {
        let unique = mine
            .iter()
            .filter(|id| users.get(id) == Some(&1) && !live_chunks.contains(id))
            .map(size)
            .sum();
        usage.unique_bytes.insert(name, unique);
    }
    usage.reclaimable_bytes = sizes
        .iter()
        .filter(|(id, _)| {
            !users.contains_key(id) && !live_chunks.contains(id) && !deleted_only.contains(id)
        })
        .map(|(_, s)| s)
        .sum();
    Ok(usage)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::format::catalog::Origin;
    use crate::id::InodeNo;
    use crate::live::{LiveFs, SetAttr};
    use crate::snapshot::DeleteMode;
    use crate::testing::{BLOCK_SIZE, close, new_store, noise, open, snapshots_of, write_file};

    /// A small deterministic generator, so that a failing sequence can be replayed by its seed.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// File content drawn from a few block patterns, so that files and versions share chunks.
    fn content(rng: &mut Rng) -> Vec<u8> {
        let blocks = rng.below(5);
        let mut data = Vec::new();
        for _ in 0..blocks {
            data.extend(noise(BLOCK_SIZE as usize, rng.below(6)));
        }
        let tail = rng.below(BLOCK_SIZE as u64) as usize;
        data.extend(noise(tail, rng.below(3) + 100));
        data
    }

    fn check(snapshots: &Snapshots, step: &str) {
        let kept = usage(snapshots).expect("usage");
        let walked = full_walk(snapshots).expect("full walk");
        assert_eq!(kept, walked, "after {step}");
        assert!(
            crate::meta::accounting::read(&snapshots.live().database())
                .expect("read")
                .is_some(),
            "the tables stayed exact after {step}"
        );
    }

    fn file(n: u64) -> String {
        format!("f{n}")
    }

    /// One random step; returns what it did.
    fn step(rng: &mut Rng, live: &Arc<LiveFs>, snapshots: &Snapshots, created: &mut u64) -> String {
        let n = rng.below(5);
        match rng.below(16) {
            0..=3 => {
                write_file(live, &file(n), &content(rng));
                format!("write {}", file(n))
            }
            4 => {
                let Ok(attr) = crate::testing::lookup(live, &file(n)) else {
                    return "nothing".into();
                };
                let fh = live.open(attr.ino, true, false).expect("open");
                let offset = rng.below(4 * BLOCK_SIZE as u64);
                live.write(fh, offset, &content(rng)).expect("write");
                live.release(fh).expect("release");
                format!("overwrite {} at {offset}", file(n))
            }
            5 => {
                let Ok(attr) = crate::testing::lookup(live, &file(n)) else {
                    return "nothing".into();
                };
                let size = rng.below(3 * BLOCK_SIZE as u64);
                let change = SetAttr {
                    size: Some(size),
                    ..SetAttr::default()
                };
                live.setattr(attr.ino, change).expect("truncate");
                format!("truncate {} to {size}", file(n))
            }
            6 => match live.unlink(InodeNo::ROOT, file(n).as_bytes()) {
                Ok(()) => format!("unlink {}", file(n)),
                Err(_) => "nothing".into(),
            },
            7 | 8 => {
                *created += 1;
                let name = format!("s{created}");
                snapshots.create(&name, Origin::Manual).expect("create");
                format!("create {name}")
            }
            9 | 10 => {
                let list = snapshots.list();
                if list.is_empty() {
                    return "nothing".into();
                }
                let (name, _) = &list[rng.below(list.len() as u64) as usize];
                let mode = if rng.below(2) == 0 {
                    DeleteMode::Now
                } else {
                    DeleteMode::Soft { retain_secs: 3600 }
                };
                snapshots.delete(name, mode).expect("delete");
                format!("delete {name} {mode:?}")
            }
            11 => {
                let deleted = snapshots.list_deleted();
                if deleted.is_empty() {
                    return "nothing".into();
                }
                let (name, _) = &deleted[rng.below(deleted.len() as u64) as usize];
                match snapshots.undelete(name) {
                    Ok(_) => format!("undelete {name}"),
                    Err(_) => "nothing".into(),
                }
            }
            12 => {
                let deleted = snapshots.list_deleted();
                if deleted.is_empty() {
                    return "nothing".into();
                }
                let (name, _) = &deleted[rng.below(deleted.len() as u64) as usize];
                snapshots.purge(name).expect("purge");
                format!("purge {name}")
            }
            13 => {
                crate::gc::collect(snapshots, &crate::progress::Progress::new()).expect("gc");
                "gc".into()
            }
            14 => {
                let list = snapshots.list();
                if list.is_empty() {
                    return "nothing".into();
                }
                let (name, _) = &list[rng.below(list.len() as u64) as usize];
                match snapshots.restore(
                    name,
                    file(n).as_bytes(),
                    None,
                    true,
                    &crate::progress::Progress::new(),
                ) {
                    Ok(_) => format!("restore {} from {name}", file(n)),
                    Err(_) => "nothing".into(),
                }
            }
            _ => {
                // A copy of another file: the same chunks named twice.
                if crate::testing::lookup(live, &file(n)).is_err() {
                    return "nothing".into();
                }
                let data = crate::testing::read_file(live, &file(n));
                let to = (n + 1) % 5;
                write_file(live, &file(to), &data);
                format!("copy {} to {}", file(n), file(to))
            }
        }
    }

    /// Random sequences of writes, overwrites, truncates, unlinks, copies, restores, creates,
    /// deletes (now and soft), undeletes, purges, gcs and remounts: after every step, the
    /// figures kept incrementally equal those of a full walk.
    #[test]
    fn incremental_figures_match_a_full_walk_after_every_step() {
        for seed in 1..=6u64 {
            let tmp = tempfile::tempdir().expect("tempdir");
            let (store, mut live) = new_store(tmp.path(), "store");
            let mut snapshots = snapshots_of(&live);
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let mut created = 0;
            let mut history = Vec::new();
            for i in 0..120 {
                let did = if i % 40 == 39 {
                    drop(snapshots);
                    close(live);
                    live = open(&store);
                    snapshots = snapshots_of(&live);
                    "remount".to_owned()
                } else {
                    step(&mut rng, &live, &snapshots, &mut created)
                };
                if std::env::var_os("SNAPFS_TEST_TRACE").is_some() {
                    eprintln!("seed {seed} step {i}: {did}");
                }
                history.push(did);
                check(&snapshots, &format!("seed {seed}: {}", history.join(", ")));
            }
            // A rebuild from the catalog and the trees gives the same figures, and records
            // per chunk (intervals, references in the newest tree) that stay exact as the
            // steps go on.
            let kept = usage(&snapshots).expect("usage");
            rebuild(&snapshots);
            assert_eq!(
                usage(&snapshots).expect("usage"),
                kept,
                "seed {seed}: rebuilt"
            );
            for i in 0..40 {
                history.push(step(&mut rng, &live, &snapshots, &mut created));
                check(
                    &snapshots,
                    &format!("seed {seed}, {i} after a rebuild: {}", history.join(", ")),
                );
            }
            drop(snapshots);
            close(live);
        }
    }

    /// Marks the tables stale and rebuilds them; returns how many frames the rebuild read.
    fn rebuild(snapshots: &Snapshots) -> u64 {
        let db = snapshots.live().database();
        let txn = db.begin_write().expect("txn");
        crate::meta::accounting::mark_stale(&txn, "test").expect("stale");
        txn.commit().expect("commit");
        let chunks = snapshots.live().chunk_store();
        let before = chunks.frames_read();
        assert!(snapshots.ensure_accounting().expect("rebuild"));
        chunks.frames_read() - before
    }

    /// A rebuild reads the oldest tree and then what each snapshot changed: the subtrees the
    /// snapshots share are read once, not once per snapshot.
    #[test]
    fn a_rebuild_reads_what_the_snapshots_share_once() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (_store, live) = new_store(tmp.path(), "store");
        for d in 0..40 {
            crate::testing::mkdir(&live, &format!("d{d}"));
            for f in 0..4 {
                write_file(&live, &format!("d{d}/f{f}"), &noise(1000, d * 4 + f));
            }
        }
        let snapshots = snapshots_of(&live);
        snapshots.create("s0", Origin::Manual).expect("create");
        let one = rebuild(&snapshots);
        assert!(one > 200, "every object of s0 is read: {one}");
        const MORE: u64 = 30;
        for n in 1..=MORE {
            write_file(&live, "changing", &noise(100, 1000 + n));
            snapshots
                .create(&format!("s{n}"), Origin::Manual)
                .expect("create");
        }
        let kept = usage(&snapshots).expect("usage");
        // Each later snapshot differs from the one before by its root and the changed file's
        // objects, read on both sides.
        let all = rebuild(&snapshots);
        assert!(
            all <= one + MORE * 8,
            "{all} reads for {MORE} more snapshots, {one} for one"
        );
        assert_eq!(usage(&snapshots).expect("usage"), kept);
        check(&snapshots, "the rebuild");
        drop(snapshots);
        close(live);
    }

    /// A copy of the store committed under `tests/fixtures/<name>` (one pack), in a temporary
    /// directory that lives as long as the returned guard.
    fn copy_fixture(name: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name);
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = tmp.path().join("store");
        std::fs::create_dir_all(store.join("packs")).expect("mkdir");
        for file in [
            crate::format::store_config::STORE_CONFIG_FILE,
            "meta.redb",
            "packs/00000001.pack",
        ] {
            std::fs::copy(fixture.join(file), store.join(file)).expect("copy fixture");
        }
        (tmp, store)
    }

    /// `tests/fixtures/store-v2` was written by the version-2 release (before accounting): a
    /// share with files, three snapshots (s2 soft-deleted) and a change after the last one.
    /// Opening it upgrades it to the current version and builds the tables, whose figures are
    /// those the version-2 release reported for it.
    #[test]
    fn a_version_2_store_is_given_its_accounting_at_open() {
        use crate::format::store_config::{STORE_CONFIG_FILE, STORE_FORMAT_VERSION, StoreConfig};
        let (_tmp, store) = copy_fixture("store-v2");
        let live = open(&store);
        let snapshots = snapshots_of(&live);
        let config =
            StoreConfig::decode(&std::fs::read(store.join(STORE_CONFIG_FILE)).expect("read"))
                .expect("decodes");
        assert_eq!(config.format_version, STORE_FORMAT_VERSION);
        assert_eq!(
            config.share_id.as_deref(),
            Some("76094cc49ed774978a709ef92ce1fcf2"),
            "the share keeps its identity"
        );
        let kept = usage(&snapshots).expect("usage");
        // As `snapfs status --json` and `snapshot list --json` of the version-2 release said.
        let expected = Usage {
            live_bytes: 50031,
            unique_bytes: [("s1".to_owned(), 2719), ("s3".to_owned(), 1682)].into(),
            snapshot_bytes: 4727,
            deleted_snapshot_bytes: 284,
            stored_bytes: 55042,
            reclaimable_bytes: 0,
        };
        assert_eq!(kept, expected);
        assert_eq!(full_walk(&snapshots).expect("walk"), expected);
        // And they are kept from then on.
        write_file(&live, "new", &noise(3 * BLOCK_SIZE as usize, 9));
        snapshots.create("s4", Origin::Manual).expect("create");
        snapshots.undelete("s2").expect("undelete");
        check(&snapshots, "changes after the upgrade");
        drop(snapshots);
        close(live);
    }

    /// The first snapshots of a share whose files stay: no chunk needs a births row (the
    /// data is live, the tree objects open), so the next create has nothing to rescan however
    /// many files the share has; only what a change takes out of the share gets rows.
    #[test]
    fn snapshots_of_a_share_that_stays_leave_nothing_to_rescan() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (_store, live) = new_store(tmp.path(), "store");
        let snapshots = snapshots_of(&live);
        for d in 0..20 {
            crate::testing::mkdir(&live, &format!("d{d}"));
            for f in 0..10 {
                write_file(&live, &format!("d{d}/f{f}"), &noise(2000, d * 10 + f));
            }
        }
        let db = live.database();
        for name in ["s1", "s2", "s3"] {
            snapshots.create(name, Origin::Manual).expect("create");
            check(&snapshots, name);
            assert_eq!(crate::meta::accounting::births_rows(&db), 0, "after {name}");
        }
        write_file(&live, "d3/f4", &noise(2000, 999));
        snapshots.create("s4", Origin::Manual).expect("create");
        check(&snapshots, "s4");
        // The old data chunk of d3/f4, and the objects of d3/f4, d3 and the root that s3 held.
        let rows = crate::meta::accounting::births_rows(&db);
        assert!((1..=6).contains(&rows), "{rows} rows");
        drop(db);
        drop(snapshots);
        close(live);
    }

    /// `tests/fixtures/store-v4` kept version-1 accounting tables (birth rows for live chunks
    /// too, open chunks counted one by one). This build does not trust them: it rebuilds them
    /// at open, with the figures of a full walk, and keeps them exact from then on, through a
    /// delete that takes chunks out of the live share and snapshot changes that reclassify
    /// them.
    #[test]
    fn older_accounting_tables_are_rebuilt_at_open() {
        let (_tmp, store) = copy_fixture("store-v4");
        {
            let db = redb::Database::open(store.join("meta.redb")).expect("open the fixture");
            assert_eq!(
                crate::meta::accounting::read(&db).expect("read"),
                None,
                "version-1 tables are not read as current"
            );
        }
        let live = open(&store);
        let snapshots = snapshots_of(&live);
        check(&snapshots, "the upgrade");
        let (first, _) = snapshots.list()[0].clone();
        write_file(&live, "docs/new", &noise(3 * BLOCK_SIZE as usize, 9));
        snapshots.create("after", Origin::Manual).expect("create");
        check(&snapshots, "a create after the upgrade");
        let deep = crate::testing::lookup(&live, "docs/deep")
            .expect("docs/deep")
            .ino;
        for name in ["random.bin", "link"] {
            live.unlink(deep, name.as_bytes()).expect("unlink");
        }
        check(&snapshots, "unlinking a file both snapshots hold");
        snapshots.delete(&first, DeleteMode::Now).expect("delete");
        check(&snapshots, "deleting the fixture's snapshot");
        drop(snapshots);
        close(live);
    }

    /// The newest snapshot's tree is kept after its delete for the next create's diff, but
    /// a gc retires it and reclaims what only it held; the next create then starts afresh.
    #[test]
    fn gc_reclaims_a_deleted_newest_snapshot() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (_store, live) = new_store(tmp.path(), "store");
        let snapshots = snapshots_of(&live);
        write_file(&live, "a", &noise(4 * BLOCK_SIZE as usize, 1));
        snapshots.create("s1", Origin::Manual).expect("create");
        write_file(&live, "a", &noise(2 * BLOCK_SIZE as usize, 2));
        snapshots.delete("s1", DeleteMode::Now).expect("delete");
        let before = usage(&snapshots).expect("usage");
        assert!(
            before.reclaimable_bytes >= 4 * u64::from(BLOCK_SIZE),
            "{before:?}"
        );
        crate::gc::collect(&snapshots, &crate::progress::Progress::new()).expect("gc");
        let after = usage(&snapshots).expect("usage");
        assert_eq!(after.reclaimable_bytes, 0, "{after:?}");
        assert_eq!(after, full_walk(&snapshots).expect("walk"));
        write_file(&live, "b", &noise(BLOCK_SIZE as usize, 3));
        snapshots.create("s2", Origin::Manual).expect("create");
        check(&snapshots, "a create after the retirement");
        snapshots.delete("s2", DeleteMode::Now).expect("delete");
        check(&snapshots, "delete s2");
        drop(snapshots);
        close(live);
    }

    /// A store whose tables went stale (or an older store without them) is rebuilt at open,
    /// with the full walk's figures.
    #[test]
    fn stale_tables_are_rebuilt_at_open() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (store, live) = new_store(tmp.path(), "store");
        let snapshots = snapshots_of(&live);
        write_file(&live, "a", &noise(3 * BLOCK_SIZE as usize, 1));
        snapshots.create("s1", Origin::Manual).expect("create");
        write_file(&live, "a", &noise(2 * BLOCK_SIZE as usize, 2));
        snapshots.create("s2", Origin::Manual).expect("create");
        snapshots
            .delete("s1", DeleteMode::Soft { retain_secs: 60 })
            .expect("delete");
        let before = usage(&snapshots).expect("usage");
        let db = live.database();
        let txn = db.begin_write().expect("txn");
        crate::meta::accounting::mark_stale(&txn, "test").expect("stale");
        txn.commit().expect("commit");
        drop(db);
        assert_eq!(
            usage(&snapshots).expect("walk"),
            before,
            "a full walk meanwhile"
        );
        drop(snapshots);
        close(live);
        let live = open(&store);
        let snapshots = snapshots_of(&live);
        assert!(
            crate::meta::accounting::read(&live.database())
                .expect("read")
                .is_some()
        );
        assert_eq!(usage(&snapshots).expect("usage"), before);
        drop(snapshots);
        close(live);
    }
}
