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
//! A round drops a sixteenth of the budget at most, however far above it memory is: a
//! directory bigger than the budget (listed for a change) is unlisted by the round that
//! reaches it, and the inodes it named that the round does not drop stay, to be dropped first
//! by the next rounds (`unlisted_leftovers`). The committer runs rounds one after another,
//! releasing the lock between them, until memory is within the budget. Unlisting a directory
//! of 200,000 files in one round kept writers waiting 180-370 ms.
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

/// How many leftovers of unlisted directories a round looks at, per inode it may drop.
const LEFTOVERS_LOOKED_AT: usize = 2;

/// The committer's pause between two rounds, with the lock released.
const BETWEEN_ROUNDS: std::time::Duration = std::time::Duration::from_millis(1);

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
    /// the request being served): one round, which drops a sixteenth of the budget at most, so
    /// that a request pays for one round at most (the next loads, and the committer, run the
    /// next rounds: see [`LiveFs::evict_after_commit`]). Called under the namespace write
    /// lock, at the end of a load, where the caller needs nothing else in memory.
    pub(super) fn evict_if_needed(&self, tree: &mut Namespace, keep: InodeNo) {
        let mut dropped = Dropped::default();
        self.evict_round(tree, keep, &mut dropped);
        self.free_dropped(dropped);
    }

    /// After a commit, which unpins what it wrote: evicts if memory holds more than the
    /// budget, even if nothing was loaded since the last try (a share just written, say), round
    /// after round until it is within the budget or what is left may not leave, releasing the
    /// lock between rounds so that requests wait for one round at most.
    pub(super) fn evict_after_commit(&self) {
        let mut dropped = Dropped::default();
        loop {
            {
                let tree = self.tree.read();
                if tree.nodes.len() <= tree.max_inodes {
                    break;
                }
            }
            let mut tree = self.tree.write();
            tree.evict_above = tree.max_inodes;
            if !self.evict_round(&mut tree, InodeNo::ROOT, &mut dropped) {
                break;
            }
            drop(tree);
            // Requests that queued behind the round go first.
            std::thread::sleep(BETWEEN_ROUNDS);
        }
        self.free_dropped(dropped);
    }

    /// Frees what rounds dropped on a worker, and gives the heap back after a large drop: once
    /// for all the rounds in a row, because `malloc_trim` walks the whole heap holding the
    /// allocator's lock (trimming after each of 34 rounds in a row took most of two cores, and
    /// every thread that allocated waited).
    fn free_dropped(&self, dropped: Dropped) {
        if dropped.nodes.len() >= TRIM_AFTER {
            self.workers.free_and_trim(dropped);
        } else if !dropped.nodes.is_empty() || !dropped.listings.is_empty() {
            self.workers.free_later(dropped);
        }
    }

    /// One round of eviction if the namespace holds more inodes than its budget, keeping
    /// `keep`, the inodes dropped added to `dropped`. Does nothing while a commit is under way
    /// (the next load tries again). Returns whether the round stopped at its limit above the
    /// budget, with more that might leave.
    fn evict_round(&self, tree: &mut Namespace, keep: InodeNo, dropped: &mut Dropped) -> bool {
        if !tree.over_budget() {
            return false;
        }
        let Some(_no_commit) = self.commits.idle() else {
            return false;
        };
        if self.freeze_in_flight.load(Ordering::Acquire)
            || self.listing_in_flight.load(Ordering::Acquire) > 0
        {
            return false;
        }
        let reader = match self.meta.read_namespace() {
            Ok(reader) => reader,
            Err(err) => {
                tracing::warn!("metadata cache: cannot read the database, nothing evicted: {err}");
                return false;
            }
        };
        let mut phases = crate::phases::Phases::start();
        let before = tree.nodes.len();
        let round = (tree.max_inodes / ROUND).max(1);
        let target = tree.max_inodes - round;
        let mut limit = Limit {
            target,
            left: round,
        };
        let dropped_before = dropped.nodes.len();
        let pins = self.pins(keep);
        phases.lap("pins");
        if !tree.unlisted_leftovers.is_empty() {
            drop_leftovers(tree, &pins, &reader, &mut limit, dropped);
            phases.lap("leftovers");
        }
        if limit.reached(tree) {
            return self.round_done(tree, before, dropped.nodes.len() - dropped_before, phases);
        }
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
        for (_, dir) in listed {
            if limit.reached(tree) {
                break;
            }
            unlist(tree, dir, &pins, &reader, &mut holding, &mut limit, dropped);
        }
        phases.lap("unlist");
        if !limit.reached(tree) {
            drop_strays(tree, &pins, &reader, &mut holding, &mut limit, dropped);
            phases.lap("strays");
        }
        self.round_done(tree, before, dropped.nodes.len() - dropped_before, phases)
    }

    /// The end of a round that dropped `dropped` of the `before` inodes in memory: returns
    /// whether it stopped at its limit above the budget.
    fn round_done(
        &self,
        tree: &mut Namespace,
        before: usize,
        dropped: usize,
        phases: crate::phases::Phases,
    ) -> bool {
        let round = (tree.max_inodes / ROUND).max(1);
        let more = dropped >= round && tree.nodes.len() > tree.max_inodes - round;
        // Stopped at its limit: the next load runs the next round. Otherwise what is left is
        // pinned (or recent): try again once a round's worth more has been loaded.
        tree.evict_above = if more {
            tree.max_inodes
        } else {
            tree.max_inodes.max(tree.nodes.len().saturating_add(round))
        };
        tracing::debug!(
            before,
            after = tree.nodes.len(),
            budget = tree.max_inodes,
            dropped,
            %phases,
            "metadata cache: evicted"
        );
        more
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

/// What rounds took out of the namespace, freed on a worker once the lock is released: the
/// inodes, and the entries of the directories unlisted (freeing the 200,000 names of a huge
/// directory took 20 ms).
#[derive(Default)]
struct Dropped {
    nodes: Vec<super::namespace::Node>,
    listings: Vec<std::collections::BTreeMap<Vec<u8>, InodeNo>>,
}

/// How far a round may still go: down to `target` inodes in memory, dropping `left` more.
struct Limit {
    target: usize,
    left: usize,
}

impl Limit {
    fn reached(&self, tree: &Namespace) -> bool {
        self.left == 0 || tree.nodes.len() <= self.target
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

/// Unlists `dir`, dropping the inodes it names that may leave memory (see the module's rules)
/// until the round's `limit`; the others stay, strays if they may leave.
fn unlist(
    tree: &mut Namespace,
    dir: InodeNo,
    pins: &Pins,
    reader: &NamespaceReader,
    holding: &mut FxHashMap<InodeNo, u32>,
    limit: &mut Limit,
    dropped: &mut Dropped,
) {
    let Some(entries) = tree
        .nodes
        .get_mut(&dir)
        .and_then(|node| node.entries.take())
    else {
        return;
    };
    let mut children = entries.values();
    for child in children.by_ref() {
        if limit.reached(tree) {
            tree.unlisted_leftovers.push(*child);
            break;
        }
        if may_leave(tree, *child, pins, reader, holding) {
            drop_node(tree, *child, holding, limit, dropped);
        }
    }
    tree.unlisted_leftovers.extend(children);
    dropped.listings.push(entries);
}

/// Drops what earlier rounds left of the directories they unlisted ([`unlist`]), until the
/// round's `limit`: with no scan of memory, so that a round after the unlisting of a huge
/// directory costs what it drops (counting holders and finding strays in 200,000 inodes took
/// 10-15 ms a round). Directories are left to [`drop_strays`], which counts what they hold.
fn drop_leftovers(
    tree: &mut Namespace,
    pins: &Pins,
    reader: &NamespaceReader,
    limit: &mut Limit,
    dropped: &mut Dropped,
) {
    // A file holds nothing: no holder counts are needed.
    let mut no_holders = FxHashMap::default();
    // Those listed again since stay: a round looks at a few rounds' worth at most, so that
    // 190,000 of them, all listed again, cost nothing like the 65 ms they took in one round.
    for _ in 0..LEFTOVERS_LOOKED_AT * limit.left {
        if limit.reached(tree) {
            break;
        }
        let Some(ino) = tree.unlisted_leftovers.pop() else {
            break;
        };
        if tree.nodes.get(&ino).is_some_and(|node| !node.is_dir())
            && may_leave(tree, ino, pins, reader, &no_holders)
        {
            drop_node(tree, ino, &mut no_holders, limit, dropped);
        }
    }
    if tree.unlisted_leftovers.is_empty() {
        tree.unlisted_leftovers = Vec::new();
    }
}

/// Drops inodes no listed directory names (each of their holders is unlisted), until the
/// round's `limit`: those the kernel asked for by number after their directory was unlisted,
/// that a hard link brought in, or that an earlier round unlisting their directory left.
/// Unlisting directories never reaches them, so without this they stayed until the next
/// unmount.
fn drop_strays(
    tree: &mut Namespace,
    pins: &Pins,
    reader: &NamespaceReader,
    holding: &mut FxHashMap<InodeNo, u32>,
    limit: &mut Limit,
    dropped: &mut Dropped,
) {
    let unlisted = |tree: &Namespace, holder: &InodeNo| {
        tree.nodes
            .get(holder)
            .is_some_and(|holder| holder.entries.is_none())
    };
    // The scan stops at the round's worth: tens of thousands of strays (a huge directory
    // unlisted) were all collected by each round, 20-30 ms of it for a round's 4,096. Dropping
    // one only lowers the holder counts of others, so what may leave stays so until dropped.
    let wanted = limit
        .left
        .min(tree.nodes.len().saturating_sub(limit.target));
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
        .filter(|ino| may_leave(tree, *ino, pins, reader, holding))
        .take(wanted)
        .collect();
    for stray in strays {
        drop_node(tree, stray, holding, limit, dropped);
    }
}

/// Takes `ino` out of memory (into `dropped`, to be freed off the lock), counts it out of its
/// holders' `holding` and into the round's `limit`.
fn drop_node(
    tree: &mut Namespace,
    ino: InodeNo,
    holding: &mut FxHashMap<InodeNo, u32>,
    limit: &mut Limit,
    dropped: &mut Dropped,
) {
    let Some(node) = tree.nodes.remove(&ino) else {
        return;
    };
    limit.left = limit.left.saturating_sub(1);
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
    dropped.nodes.push(node);
}

/// Whether `child` may leave memory.
fn may_leave(
    tree: &Namespace,
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
    // A listed directory holding a hard link needs it in memory.
    let held_by_listed = node.links.iter().any(|holder| {
        tree.nodes
            .get(holder)
            .is_some_and(|holder| holder.entries.is_some())
    });
    if held_by_listed {
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

    /// A directory many times the budget, listed by a change, is unlisted a round at a time: a
    /// round drops a sixteenth of the budget at most, the next rounds start from what the
    /// unlisting left, and the committer's rounds bring memory back within the budget.
    #[test]
    fn a_huge_directory_is_unlisted_a_round_at_a_time() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (path, live) = new_store(tmp.path(), "store");
        let big = mkdir(&live, "big");
        for i in 0..1000 {
            crate::testing::write_in(&live, big, format!("f{i:04}").as_bytes(), b"x");
        }
        close(live);

        // No commit but those asked for: a round does nothing while one is under way.
        let live = open_with(
            &path,
            LiveOptions {
                metadata: crate::metadata_budget::MetadataBudget::new(1),
                commit_interval: std::time::Duration::from_secs(3600),
                ..LiveOptions::default()
            },
        );
        let budget = live.tree.read().max_inodes;
        let round = budget / super::ROUND;
        // A change lists the directory: every entry comes into memory.
        write_file(&live, "big/new", b"new");
        assert!(loaded(&live) > 1000);
        live.commit_now().expect("commit");
        // What the committer runs after a commit (here on this thread, to wait for it).
        live.evict_after_commit();
        assert!(
            loaded(&live) <= budget,
            "{} loaded, budget {budget}",
            loaded(&live)
        );
        assert!(!live.tree.read().is_listed(big).expect("dir"));
        live.assert_consistent();

        // Listed again, then one round, as a request runs it: no more than its share leaves.
        write_file(&live, "big/newer", b"newer");
        live.commit_now().expect("commit");
        let mut tree = live.tree.write();
        // The committer already brought it down: list it again by hand for one round.
        tree.list(big).expect("list");
        let before = tree.nodes.len();
        tree.evict_above = tree.max_inodes;
        live.evict_if_needed(&mut tree, InodeNo::ROOT);
        let after = tree.nodes.len();
        assert!(
            before - after <= round && before - after > 0,
            "{before} -> {after}"
        );
        assert!(!tree.is_listed(big).expect("dir"));
        assert!(!tree.unlisted_leftovers.is_empty());
        // The next round starts from the leftovers.
        live.evict_if_needed(&mut tree, InodeNo::ROOT);
        assert!(after - tree.nodes.len() > 0);
        drop(tree);
        live.assert_consistent();
        assert_eq!(read_file(&live, "big/f0999"), b"x");
        assert_eq!(read_file(&live, "big/newer"), b"newer");
        close(live);
    }
}
