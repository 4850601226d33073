//! Keeping the namespace in memory within its budget (`--metadata-cache`), as the kernel keeps
//! its inode and dentry caches: when more inodes are loaded than the budget allows, directories
//! used least recently are unlisted and the inodes they named dropped, a sixteenth of the
//! budget at a time (a round runs under the namespace write lock, so rounds are kept small: at
//! 65,536 inodes, a round that freed a quarter kept writers waiting 35-40 ms; one that frees a
//! sixteenth, 7-8 ms). If that is not enough, inodes that no listed directory names go too
//! (loaded by number, as the kernel asks for what it still knows after its directory was
//! unlisted). What is dropped is loaded again from the database when next needed (`load`),
//! with the same answers, because only what the database holds exactly is dropped.
//!
//! An inode may leave memory only when all of these hold:
//! - nothing of it waits for a commit (not in `Dirt`, nor in `since_commit`), no commit is
//!   between taking its batch and writing it (the committing lock is held throughout), and its
//!   file content holds no buffered data;
//! - its frozen object in memory is the one persisted (none is queued in `newly_frozen`, and a
//!   thaw since the last freeze has reached the database: in `since_freeze` only if also in
//!   `thaw_persisted`), checked against the `frozen` table;
//! - no freeze is between its capture and its record: the capture thawed what it encodes
//!   (in memory and, for an inode never frozen, in the database alike), and an inode gone
//!   by the record could not be recorded, so its directories would be encoded again after
//!   the next remount (the first snapshot of a new share would leave most of it unrecorded);
//! - it is not open, not the root, and not the inode the current request is about;
//! - no inode in memory names it as a holder (its parent, or a directory of its `links`), and
//!   it is not a listed directory with entries: so every inode in memory keeps its holders;
//! - no listed directory other than the one being unlisted holds it (a listed directory has
//!   all of its entries in memory).
//!
//! A directory may be unlisted unless its entries have uncommitted changes; the inodes it
//! names that cannot leave (above) stay, which the namespace invariant allows.

use std::sync::atomic::Ordering;

use rustc_hash::{FxHashMap, FxHashSet};

use super::LiveFs;
use super::namespace::{Namespace, has_object};
use crate::id::InodeNo;
use crate::meta::namespace::NamespaceReader;

/// Estimated bytes of memory one loaded inode takes, everything counted: its node (record,
/// maps, content state), its entry in its directory's map and in `nodes`, and the allocator's
/// overhead. Measured with `scripts/bench-scale.sh` (RSS after `find` over the share, less
/// RSS after the mount, per file). Used to turn `--metadata-cache` bytes into a count.
pub const BYTES_PER_INODE: u64 = 1024;

/// A round of eviction frees this part of the budget.
const ROUND: usize = 16;

/// Fewest inodes a round drops for the heap to be trimmed after it (see
/// `DataWorkers::free_and_trim`): a round of the default budget drops 4,096.
const TRIM_AFTER: usize = 1024;

/// Fewest inodes the namespace may hold however small the budget: a few directories' worth,
/// so that an operation never finds what it just loaded gone.
const MIN_INODES: usize = 64;

/// The most inodes a budget of `bytes` allows.
pub fn max_inodes(bytes: u64) -> usize {
    usize::try_from(bytes / BYTES_PER_INODE)
        .unwrap_or(usize::MAX)
        .max(MIN_INODES)
}

impl LiveFs {
    /// Evicts if the namespace holds more inodes than its budget, keeping `keep` (the inode of
    /// the request being served). Called under the namespace write lock, at the end of a load,
    /// where the caller needs nothing else in memory. Does nothing while a commit is under way
    /// (the next load tries again).
    pub(super) fn evict_if_needed(&self, tree: &mut Namespace, keep: InodeNo) {
        if !tree.over_budget() {
            return;
        }
        let Some(_no_commit) = self.commits.idle() else {
            return;
        };
        if self.freeze_in_flight.load(Ordering::Acquire) {
            return;
        }
        let reader = match self.meta.read_namespace() {
            Ok(reader) => reader,
            Err(err) => {
                tracing::warn!("metadata cache: cannot read the database, nothing evicted: {err}");
                return;
            }
        };
        let mut phases = crate::phases::Phases::start();
        let before = tree.nodes.len();
        let target = tree.max_inodes - tree.max_inodes / ROUND;
        let pins = self.pins(keep);
        phases.lap("pins");
        let mut holding = holders_in_memory(tree);
        phases.lap("holders");
        let mut listed: Vec<(u64, InodeNo)> = tree
            .nodes
            .iter()
            .filter(|(ino, node)| {
                node.entries.is_some() && **ino != keep && !pins.dirty_dirs.contains(ino)
            })
            .map(|(ino, node)| (node.used.load(Ordering::Relaxed), *ino))
            .collect();
        listed.sort_unstable();
        phases.lap("listed");
        let mut dropped = Vec::new();
        for (_, dir) in listed {
            if tree.nodes.len() <= target {
                break;
            }
            unlist(tree, dir, &pins, &reader, &mut holding, &mut dropped);
        }
        phases.lap("unlist");
        if tree.nodes.len() > target {
            drop_strays(tree, target, &pins, &reader, &mut holding, &mut dropped);
            phases.lap("strays");
        }
        if dropped.len() >= TRIM_AFTER {
            self.workers.free_and_trim(dropped);
        } else {
            self.workers.free_later(dropped);
        }
        // What is left is pinned (or recent): try again once a round's worth more has been
        // loaded.
        tree.evict_above = tree
            .max_inodes
            .max(tree.nodes.len().saturating_add(tree.max_inodes / ROUND));
        tracing::debug!(
            before,
            after = tree.nodes.len(),
            budget = tree.max_inodes,
            %phases,
            "metadata cache: evicted"
        );
    }

    /// After a commit, which unpins what it wrote: evicts if memory holds more than the
    /// budget, even if nothing was loaded since the last try (a share just written, say).
    pub(super) fn evict_after_commit(&self) {
        {
            let tree = self.tree.read();
            if tree.nodes.len() <= tree.max_inodes {
                return;
            }
        }
        let mut tree = self.tree.write();
        tree.evict_above = tree.max_inodes;
        self.evict_if_needed(&mut tree, InodeNo::ROOT);
    }

    /// What may not leave memory now, whatever the holders say.
    fn pins(&self, keep: InodeNo) -> Pins {
        let dirt = self.dirt.lock();
        let changed = self.changed.lock();
        let mut inodes: FxHashSet<InodeNo> = [InodeNo::ROOT, keep].into_iter().collect();
        inodes.extend(dirt.inodes.iter().copied());
        inodes.extend(dirt.xattrs.iter().copied());
        inodes.extend(changed.since_commit.iter().copied());
        inodes.extend(changed.thaws_to_persist());
        inodes.extend(changed.newly_frozen.iter().map(|(ino, _)| *ino));
        let dirty_dirs = dirt.dirents.keys().map(|(dir, _)| *dir).collect();
        Pins { inodes, dirty_dirs }
    }
}

struct Pins {
    inodes: FxHashSet<InodeNo>,
    /// Directories whose entries changed since the last commit: never unlisted.
    dirty_dirs: FxHashSet<InodeNo>,
}

/// How many inodes in memory name each inode as a holder.
fn holders_in_memory(tree: &Namespace) -> FxHashMap<InodeNo, u32> {
    let mut holding = FxHashMap::default();
    for (ino, node) in &tree.nodes {
        if node.is_dir() {
            if *ino != InodeNo::ROOT {
                *holding.entry(node.parent).or_default() += 1;
            }
        } else {
            for dir in &node.links {
                *holding.entry(*dir).or_default() += 1;
            }
        }
    }
    holding
}

/// Unlists `dir`, dropping every inode it names that may leave memory (see the module's
/// rules); the others stay.
fn unlist(
    tree: &mut Namespace,
    dir: InodeNo,
    pins: &Pins,
    reader: &NamespaceReader,
    holding: &mut FxHashMap<InodeNo, u32>,
    dropped: &mut Vec<super::namespace::Node>,
) {
    let Some(children) = tree
        .nodes
        .get(&dir)
        .and_then(|node| node.entries.as_ref())
        .map(|entries| entries.values().copied().collect::<Vec<_>>())
    else {
        return;
    };
    for child in children {
        if may_leave(tree, Some(dir), child, pins, reader, holding) {
            drop_node(tree, child, holding, dropped);
        }
    }
    if let Some(node) = tree.nodes.get_mut(&dir) {
        node.entries = None;
    }
}

/// Drops inodes no listed directory names (each of their holders is unlisted), until memory
/// holds `target`: those the kernel asked for by number after their directory was unlisted,
/// or that a hard link brought in. Unlisting directories never reaches them, so without this
/// they stayed until the next unmount.
fn drop_strays(
    tree: &mut Namespace,
    target: usize,
    pins: &Pins,
    reader: &NamespaceReader,
    holding: &mut FxHashMap<InodeNo, u32>,
    dropped: &mut Vec<super::namespace::Node>,
) {
    let unlisted = |tree: &Namespace, holder: &InodeNo| {
        tree.nodes
            .get(holder)
            .is_some_and(|holder| holder.entries.is_none())
    };
    let strays: Vec<InodeNo> = tree
        .nodes
        .iter()
        .filter(|(ino, node)| {
            **ino != InodeNo::ROOT
                && if node.is_dir() {
                    unlisted(tree, &node.parent)
                } else {
                    node.links.iter().all(|holder| unlisted(tree, holder))
                }
        })
        .map(|(ino, _)| *ino)
        .collect();
    for stray in strays {
        if tree.nodes.len() <= target {
            break;
        }
        if may_leave(tree, None, stray, pins, reader, holding) {
            drop_node(tree, stray, holding, dropped);
        }
    }
}

/// Takes `ino` out of memory (into `dropped`, to be freed off the lock), and counts it out of
/// its holders' `holding`.
fn drop_node(
    tree: &mut Namespace,
    ino: InodeNo,
    holding: &mut FxHashMap<InodeNo, u32>,
    dropped: &mut Vec<super::namespace::Node>,
) {
    let Some(node) = tree.nodes.remove(&ino) else {
        return;
    };
    let holders = if node.is_dir() {
        std::slice::from_ref(&node.parent)
    } else {
        &node.links[..]
    };
    for holder in holders {
        if let Some(count) = holding.get_mut(holder) {
            *count = count.saturating_sub(1);
        }
    }
    dropped.push(node);
}

/// Whether `child` may leave memory, `dir` (if any) being the directory unlisted for it.
fn may_leave(
    tree: &Namespace,
    dir: Option<InodeNo>,
    child: InodeNo,
    pins: &Pins,
    reader: &NamespaceReader,
    holding: &FxHashMap<InodeNo, u32>,
) -> bool {
    let Some(node) = tree.nodes.get(&child) else {
        return false;
    };
    if pins.inodes.contains(&child)
        || pins.dirty_dirs.contains(&child)
        || holding.get(&child).is_some_and(|count| *count > 0)
        || node
            .entries
            .as_ref()
            .is_some_and(|entries| !entries.is_empty())
        || node.open_handles.load(Ordering::Acquire) > 0
    {
        return false;
    }
    // Another listed directory holding a hard link needs it in memory.
    let held_elsewhere = node.links.iter().any(|holder| {
        Some(*holder) != dir
            && tree
                .nodes
                .get(holder)
                .is_some_and(|holder| holder.entries.is_some())
    });
    if held_elsewhere {
        return false;
    }
    if let Some(content) = &node.content {
        let state = content.lock();
        if state.has_buffers() || state.is_dirty() {
            return false;
        }
    }
    if has_object(node) {
        match reader.frozen(child) {
            Ok(persisted) if persisted == node.frozen => {}
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use crate::format::inode::InodeKind;
    use crate::id::InodeNo;
    use crate::live::load::tests::{describe, populate};
    use crate::live::{LiveFs, LiveOptions, RenameMode};
    use crate::testing::{close, lookup, mkdir, new_store, open, open_with, read_file, write_file};
    use crate::tree_objects::TreeObjects;

    /// The smallest budget: `MIN_INODES`.
    fn tiny(path: &std::path::Path) -> std::sync::Arc<LiveFs> {
        open_with(
            path,
            LiveOptions {
                metadata: crate::metadata_budget::MetadataBudget::new(1),
                ..LiveOptions::default()
            },
        )
    }

    fn loaded(live: &LiveFs) -> usize {
        live.tree.read().nodes.len()
    }

    /// Inodes asked for by number, whose directories are not listed, leave memory as those of
    /// listed directories do, and answer the same when asked for again.
    #[test]
    fn inodes_loaded_by_number_leave_memory_too() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (path, live) = new_store(tmp.path(), "store");
        populate(&live, 30);
        let files: Vec<(InodeNo, crate::format::inode::InodeRecord)> = (0..30)
            .flat_map(|d| (0..10).map(move |f| format!("d{d}/f{f}")))
            .map(|path| {
                let ino = lookup(&live, &path).expect("file").ino;
                (ino, live.getattr(ino).expect("attr").record)
            })
            .collect();
        close(live);
        let live = tiny(&path);
        for (ino, record) in files.iter().chain(&files) {
            let attr = live.getattr(*ino).expect("by number");
            assert_eq!(attr.record, *record);
            assert!(loaded(&live) <= 2 * 64, "{} loaded", loaded(&live));
        }
        close(live);
    }

    /// A directory of many times the budget, never changed, is listed and looked up in from the
    /// database: it stays unlisted, and memory holds the budget, not the directory.
    #[test]
    fn a_directory_bigger_than_the_budget_is_browsed_within_it() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (path, live) = new_store(tmp.path(), "store");
        let big = mkdir(&live, "big");
        mkdir(&live, "big/sub");
        let names: Vec<String> = (0..1000).map(|n| format!("f{n:04}")).collect();
        for name in &names {
            write_file(&live, &format!("big/{name}"), name.as_bytes());
        }
        close(live);

        let live = tiny(&path);
        let budget = live.tree.read().max_inodes;
        for _ in 0..2 {
            let fh = live.opendir(big).expect("opendir");
            let listing = live.handles.dir(fh).expect("listing");
            live.releasedir(fh);
            let listed: Vec<(&[u8], InodeKind)> = listing
                .iter()
                .map(|entry| (&entry.name[..], entry.kind))
                .collect();
            let mut expected = vec![
                (&b"."[..], InodeKind::Directory),
                (b"..", InodeKind::Directory),
            ];
            expected.extend(names.iter().map(|name| (name.as_bytes(), InodeKind::File)));
            expected.push((b"sub", InodeKind::Directory));
            assert_eq!(listed, expected);
            for entry in &listing[2..] {
                let attr = live.lookup(big, &entry.name).expect("lookup");
                assert_eq!(attr.ino, entry.ino);
                assert!(loaded(&live) <= budget + 2, "{} loaded", loaded(&live));
            }
            assert_eq!(read_file(&live, "big/f0123"), b"f0123");
            assert!(!live.tree.read().is_listed(big).expect("dir"));
            live.assert_consistent();
        }
        assert!(matches!(
            live.lookup(big, b"missing"),
            Err(crate::live::FsError::NotFound)
        ));
        let file = live.lookup(big, b"f0001").expect("file").ino;
        assert!(matches!(
            live.lookup(file, b"x"),
            Err(crate::live::FsError::NotDirectory)
        ));
        close(live);
    }

    /// A walk over a share ten times the budget stays within it (give or take the directory
    /// being listed), and answers as a walk with everything loaded does.
    #[test]
    fn a_walk_bigger_than_the_budget_stays_within_it_and_gives_the_same_answers() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (path, live) = new_store(tmp.path(), "store");
        populate(&live, 60);
        let everything = describe(&live);
        close(live);

        let live = tiny(&path);
        let budget = live.tree.read().max_inodes;
        assert_eq!(describe(&live), everything);
        live.assert_consistent();
        assert!(
            loaded(&live) <= budget + 12,
            "{} inodes loaded, budget {budget}",
            loaded(&live)
        );
        // Twice: what was evicted is loaded again with the same answers.
        assert_eq!(describe(&live), everything);
        live.assert_consistent();
        close(live);
    }

    /// Renames, links and unlinks across directories evicted and loaded again, a freeze, and a
    /// remount with the whole share in memory: the same share, and the same snapshot.
    #[test]
    fn changes_across_evicted_directories_are_kept() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (path, live) = new_store(tmp.path(), "store");
        populate(&live, 40);
        let objects = TreeObjects::new(live.chunk_store());
        live.freeze(&objects).expect("freeze");
        live.commit_now().expect("commit");
        drop(objects);
        close(live);

        let live = tiny(&path);
        let budget = live.tree.read().max_inodes;
        let ino = |p: &str| lookup(&live, p).expect(p).ino;
        // A hard link between two directories, then a walk that evicts both.
        live.link(ino("d1/f1"), ino("d30/sub"), b"link")
            .expect("link");
        live.commit_now().expect("commit");
        describe(&live);
        assert!(loaded(&live) <= budget + 12);
        live.unlink(ino("d1"), b"f1").expect("unlink one name");
        describe(&live);
        live.rename(ino("d2"), b"sub", ino("d35"), b"moved", RenameMode::Replace)
            .expect("rename a directory across");
        live.rename(ino("d3"), b"f3", ino("d36/sub"), b"f3", RenameMode::Replace)
            .expect("rename a file across");
        write_file(&live, "d37/f7", b"rewritten");
        live.rmdir(ino("d38"), b"sub").expect("rmdir");
        live.commit_now().expect("commit");
        describe(&live);
        live.assert_consistent();
        assert!(read_file(&live, "d30/sub/link") == b"1/1");
        assert_eq!(lookup(&live, "d30/sub/link").expect("link").record.nlink, 1);
        let after = describe(&live);
        let objects = TreeObjects::new(live.chunk_store());
        let evicted = live.freeze(&objects).expect("freeze");
        assert!(
            evicted.encoded < 20,
            "only what changed: {}",
            evicted.encoded
        );
        live.commit_now().expect("commit");
        drop(objects);
        close(live);

        let live = open(&path);
        assert_eq!(describe(&live), after);
        let objects = TreeObjects::new(live.chunk_store());
        let again = live.freeze(&objects).expect("freeze");
        assert_eq!((again.encoded, again.root), (0, evicted.root));
        // With everything in memory, the freeze from scratch gives the same tree.
        drop(objects);
        close(live);
    }

    /// What waits for a commit, is open, or holds an inode in memory stays, whatever the
    /// budget.
    #[test]
    fn pinned_inodes_are_never_evicted() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (path, live) = new_store(tmp.path(), "store");
        populate(&live, 30);
        close(live);

        let live = tiny(&path);
        let open_file = lookup(&live, "d0/f0").expect("f0").ino;
        let fh = live.open(open_file, true, false).expect("open");
        live.write(fh, 0, b"uncommitted").expect("write");
        let dirty = lookup(&live, "d1/f1").expect("f1").ino;
        live.setxattr(dirty, b"user.new", b"x", crate::live::XattrFlags::Any)
            .expect("setxattr");
        describe(&live);
        {
            let tree = live.tree.read();
            assert!(tree.nodes.contains_key(&open_file), "open");
            assert!(tree.nodes.contains_key(&dirty), "not committed");
            for ino in [open_file, dirty] {
                for dir in tree.containing_dirs(ino) {
                    assert!(tree.nodes.contains_key(&dir), "their holders");
                }
            }
        }
        live.assert_consistent();
        live.release(fh).expect("release");
        close(live);
        let live = open(&path);
        assert!(read_file(&live, "d0/f0").starts_with(b"uncommitted"));
        assert!(live.getattr(InodeNo::ROOT).is_ok());
        close(live);
    }
}
