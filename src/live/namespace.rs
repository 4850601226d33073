//! The namespace of the live share as far as it is in memory: the inodes used since the mount,
//! with their attributes and, for the directories listed (before a change, or for a freeze),
//! their entries; and what changed since the last commit. The rest is in the metadata database
//! and is loaded on demand (see `load`): mounting loads the root alone, whatever the size of
//! the share.
//!
//! Invariants (kept by every operation, checked by the unit tests of the operations):
//! - A directory in memory is *listed* (`entries` is `Some`) or not; a listed directory's
//!   entries are all of its entries, and every one names an inode in `nodes`. A directory not
//!   listed has not changed its entries since the mount: the database holds them.
//! - An inode in memory has in memory every directory holding an entry for it (its `parent`, or
//!   every directory of `links`), and so, step by step, every directory above it up to the
//!   root: the parent chains that `thaw`, `path_of` and `is_ancestor` walk are all in memory.
//! - A directory has exactly one entry naming it (its `parent` holds it), the root none.
//! - `nlink` of a non-directory is the number of entries naming it; of a directory, 2 plus its
//!   number of subdirectories.
//! - An inode with `nlink == 0` stays only while it is open; it is purged on its last release
//!   (or, after a crash, at the next mount: the database's `orphans` table).
//! - Nothing leaves memory but purged inodes and inodes the database holds exactly (see
//!   `evict`); the kernel may still know an evicted inode, which is then loaded by number.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use rustc_hash::FxHashMap;

use super::content::FileContent;
use super::error::{FsError, FsResult};
use crate::format::inode::{InodeKind, InodeRecord};
use crate::format::object::ObjectId;
use crate::id::InodeNo;
use crate::meta::MetaStore;

/// Live inode numbers stay below this.
const MAX_LIVE_INODE: u64 = 1 << 40;

/// Longest name of a directory entry, as on ext4.
pub const NAME_MAX: usize = 255;

/// The directories holding a file, one per name: a single one, inline, for almost every file,
/// so that walks over every inode in memory (eviction counts the holders of each) read the
/// node alone, not a separate allocation per file: counting the holders of 65,536 inodes took
/// 14-22 ms with a list allocated per file, 5-10 ms with the holder inline, and 2.5-3 ms with
/// `FxHash` as well.
pub type Links = smallvec::SmallVec<[InodeNo; 1]>;

pub struct Node {
    /// For regular files, `size`, `mtime` and `ctime` here are stale: `content` holds them.
    pub record: InodeRecord,
    /// The entries of a listed directory, sorted by name (readdir order); `None` for a
    /// directory not listed yet, and for every other kind.
    pub entries: Option<BTreeMap<Vec<u8>, InodeNo>>,
    /// For a directory: the directory that holds it (the root: itself).
    pub parent: InodeNo,
    /// For any other inode: the directories holding an entry for it, one per entry (a hard
    /// link in the same directory twice appears twice).
    pub links: Links,
    /// The snapshot object this inode froze to last time, while nothing in it has changed since
    /// (invariant: when it is `None`, so is every ancestor's).
    pub frozen: Option<ObjectId>,
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    pub content: Option<Arc<FileContent>>,
    pub open_handles: AtomicU32,
    /// When a directory was last looked up in, opened or listed (the namespace's `clock`):
    /// eviction unlists the least recently used first.
    pub used: AtomicU64,
}

impl Node {
    /// A new inode (a directory is listed: it has no entries yet).
    pub fn new(ino: InodeNo, record: InodeRecord, parent: InodeNo) -> Self {
        let entries = (record.kind == InodeKind::Directory).then(BTreeMap::new);
        let content = (record.kind == InodeKind::File).then(|| {
            Arc::new(FileContent::new(
                ino,
                record.size,
                record.mtime,
                record.ctime,
            ))
        });
        Node {
            record,
            entries,
            parent,
            links: Links::new(),
            frozen: None,
            xattrs: BTreeMap::new(),
            content,
            open_handles: AtomicU32::new(0),
            used: AtomicU64::new(0),
        }
    }

    /// An inode read from the database: a directory is not listed yet.
    pub fn stored(
        ino: InodeNo,
        record: InodeRecord,
        parent: InodeNo,
        xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
        frozen: Option<ObjectId>,
    ) -> Self {
        let mut node = Node::new(ino, record, parent);
        node.entries = None;
        node.xattrs = xattrs;
        node.frozen = frozen.filter(|_| has_object(&node));
        node
    }

    pub fn is_dir(&self) -> bool {
        self.record.kind == InodeKind::Directory
    }

    /// The record as it should be reported or persisted now.
    pub fn current_record(&self) -> InodeRecord {
        let mut record = self.record.clone();
        if let Some(content) = &self.content {
            let state = content.lock();
            record.size = state.size;
            record.mtime = state.mtime;
            record.ctime = state.ctime;
        }
        record
    }
}

/// What changed since the last commit, recorded by every mutation while it holds the
/// namespace's write lock, and taken by the committer while it holds the read lock, so a commit
/// always sees a state between two operations.
#[derive(Default)]
pub struct Dirt {
    pub inodes: HashSet<InodeNo>,
    pub removed: HashSet<InodeNo>,
    pub dirents: HashMap<(InodeNo, Vec<u8>), Option<InodeNo>>,
    pub xattrs: HashSet<InodeNo>,
}

pub struct Namespace {
    /// The inodes in memory (see the invariants above). Inodes are added through
    /// [`Namespace::insert_new`] and the loading methods, and removed by [`Namespace::forget`].
    /// Hashed with `FxHash`: every request looks an inode up here, often several times, and
    /// the numbers are ours (a counter), not chosen by anyone who could aim at collisions.
    pub nodes: FxHashMap<InodeNo, Node>,
    pub next_inode: u64,
    /// Where the inodes not in memory are.
    pub(super) meta: MetaStore,
    /// How many inodes the share has, in memory or not.
    pub(super) inode_count: u64,
    /// The most inodes memory should hold (`--metadata-cache`, see `evict`).
    pub(super) max_inodes: usize,
    /// Above this many inodes in memory, the next load tries to evict: the budget, or more
    /// after an eviction that could not get below it (what it left was pinned), so that a
    /// share full of pinned inodes does not pay a scan per request.
    pub(super) evict_above: usize,
    /// Ticks once per use of a directory (`Node::used`).
    pub(super) clock: AtomicU64,
    /// Ticks once per inode loaded from the database: a freeze's record learns from it
    /// whether any inode it encoded from the database came into memory since its capture.
    pub(super) loads: u64,
    /// Inodes named by a directory an eviction round unlisted that the round had no room to
    /// drop: where the next rounds start (see `evict`). Only a hint; each is checked again.
    pub(super) unlisted_leftovers: Vec<InodeNo>,
}

impl Namespace {
    /// Adds an inode created since the mount (the caller links it into listed directories).
    pub fn insert_new(&mut self, ino: InodeNo, node: Node) {
        if self.nodes.insert(ino, node).is_none() {
            self.inode_count += 1;
        }
    }

    /// Removes an inode from the share (in memory or not), returning it if it was loaded.
    pub fn forget(&mut self, ino: InodeNo) -> Option<Node> {
        self.inode_count = self.inode_count.saturating_sub(1);
        self.nodes.remove(&ino)
    }

    /// How many inodes the share has.
    pub fn inode_count(&self) -> u64 {
        self.inode_count
    }

    /// Records a use of `ino` (for the least-recently-used order of eviction).
    pub fn touch(&self, ino: InodeNo) {
        if let Some(node) = self.nodes.get(&ino) {
            let now = self.clock.fetch_add(1, Ordering::Relaxed);
            node.used.store(now, Ordering::Relaxed);
        }
    }

    /// Whether memory holds more inodes than the next eviction is to leave.
    pub fn over_budget(&self) -> bool {
        self.nodes.len() > self.evict_above
    }

    pub fn node(&self, ino: InodeNo) -> FsResult<&Node> {
        self.nodes.get(&ino).ok_or(FsError::NotFound)
    }

    pub fn node_mut(&mut self, ino: InodeNo) -> FsResult<&mut Node> {
        self.nodes.get_mut(&ino).ok_or(FsError::NotFound)
    }

    /// The entries of a listed directory (see [`Namespace::list`]).
    pub fn dir(&self, ino: InodeNo) -> FsResult<&BTreeMap<Vec<u8>, InodeNo>> {
        let node = self.node(ino)?;
        match &node.entries {
            Some(entries) => Ok(entries),
            None if node.is_dir() => Err(not_listed(ino)),
            None => Err(FsError::NotDirectory),
        }
    }

    pub fn dir_mut(&mut self, ino: InodeNo) -> FsResult<&mut BTreeMap<Vec<u8>, InodeNo>> {
        let node = self.node_mut(ino)?;
        let is_dir = node.is_dir();
        match &mut node.entries {
            Some(entries) => Ok(entries),
            None if is_dir => Err(not_listed(ino)),
            None => Err(FsError::NotDirectory),
        }
    }

    /// A path of `ino` from the root (bytes, no leading slash; empty for the root), through its
    /// first link if it has several; `None` once it has no entry. A loop walking up the parents
    /// (listing them if need be), each step a search of one directory's entries: meant for the
    /// few open files a snapshot asks the kernel about, not for hot paths.
    pub fn path_of(&mut self, ino: InodeNo) -> Option<Vec<u8>> {
        let mut names: Vec<Vec<u8>> = Vec::new();
        let mut at = ino;
        while at != InodeNo::ROOT {
            let node = self.nodes.get(&at)?;
            let parent = if node.is_dir() {
                node.parent
            } else {
                *node.links.first()?
            };
            self.list(parent).ok()?;
            let (name, _) = self.dir(parent).ok()?.iter().find(|(_, i)| **i == at)?;
            names.push(name.clone());
            at = parent;
        }
        names.reverse();
        Some(names.join(&b'/'))
    }

    pub fn lookup(&self, parent: InodeNo, name: &[u8]) -> FsResult<InodeNo> {
        check_name(name)?;
        self.dir(parent)?
            .get(name)
            .copied()
            .ok_or(FsError::NotFound)
    }

    /// A new inode number. Live numbers stay below 2^40: the numbers above are the snapshot
    /// side's (see `snapshot::view`).
    pub fn allocate_inode(&mut self) -> FsResult<InodeNo> {
        let mut one = self.allocate_inodes(1)?;
        Ok(one.next().expect("one number was allocated"))
    }

    /// `count` new inode numbers, all or none.
    pub fn allocate_inodes(&mut self, count: u64) -> FsResult<impl Iterator<Item = InodeNo>> {
        let end = self
            .next_inode
            .checked_add(count)
            .filter(|end| *end <= MAX_LIVE_INODE)
            .ok_or(FsError::NoSpace)?;
        let first = std::mem::replace(&mut self.next_inode, end);
        Ok((first..end).map(InodeNo))
    }

    /// The directory at `path` (components from the root, as [`split_path`] gives them),
    /// listed, as is every directory on the way.
    pub fn resolve_dir(&mut self, path: &[&[u8]]) -> FsResult<InodeNo> {
        let mut dir = InodeNo::ROOT;
        self.list(dir)?;
        for name in path {
            dir = self.lookup(dir, name)?;
            self.list(dir)?;
        }
        Ok(dir)
    }

    /// The directories whose frozen objects embed `ino`'s: its parent, or every directory
    /// linking to it.
    pub fn containing_dirs(&self, ino: InodeNo) -> Vec<InodeNo> {
        match self.nodes.get(&ino) {
            Some(node) if node.is_dir() => {
                if node.parent == ino {
                    Vec::new()
                } else {
                    vec![node.parent]
                }
            }
            Some(node) => node.links.to_vec(),
            None => Vec::new(),
        }
    }

    /// Forgets the frozen object of `ino` and of every directory above it. A directory that is
    /// already thawed has thawed ancestors (the invariant), so the walk stops there.
    pub fn thaw(&mut self, ino: InodeNo) {
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.frozen = None;
        }
        let mut pending = self.containing_dirs(ino);
        while let Some(dir) = pending.pop() {
            let Some(node) = self.nodes.get_mut(&dir) else {
                continue;
            };
            if node.frozen.take().is_some() {
                pending.extend(self.containing_dirs(dir));
            }
        }
    }

    /// Whether `ancestor` is `ino` or one of the directories above it.
    pub fn is_ancestor(&self, ancestor: InodeNo, mut ino: InodeNo) -> bool {
        loop {
            if ino == ancestor {
                return true;
            }
            match self.nodes.get(&ino) {
                Some(node) if node.parent != ino => ino = node.parent,
                _ => return false,
            }
        }
    }
}

/// The names of a '/'-separated path relative to the share's root. A leading '/' and repeated
/// or trailing separators are allowed; `.` and `..` are not (a path names one place, without
/// depending on where links lead).
pub fn split_path<P: AsRef<[u8]> + ?Sized>(path: &P) -> FsResult<Vec<&[u8]>> {
    let names: Vec<&[u8]> = path
        .as_ref()
        .split(|&byte| byte == b'/')
        .filter(|name| !name.is_empty())
        .collect();
    for name in &names {
        if *name == b"." || *name == b".." {
            return Err(FsError::InvalidArgument);
        }
        check_name(name)?;
    }
    Ok(names)
}

pub fn check_name(name: &[u8]) -> FsResult<()> {
    if name.len() > NAME_MAX {
        return Err(FsError::NameTooLong);
    }
    if name.is_empty() || name.contains(&b'/') || name.contains(&0) {
        return Err(FsError::InvalidArgument);
    }
    Ok(())
}

/// A directory used as listed when it is not: a bug in the caller, reported as an error.
fn not_listed(ino: InodeNo) -> FsError {
    tracing::error!(%ino, "a directory was used before it was listed");
    FsError::Io(std::io::Error::other(format!(
        "directory {ino} is not loaded"
    )))
}

#[cfg(test)]
impl Namespace {
    /// Panics unless the invariants at the top of this module hold, as far as memory shows
    /// them (an entry in a directory not listed is checked once it is).
    pub fn assert_consistent(&self) {
        let mut named_by: HashMap<InodeNo, Vec<InodeNo>> = HashMap::new();
        for (ino, node) in &self.nodes {
            for child in node.entries.iter().flat_map(|entries| entries.values()) {
                assert!(
                    self.nodes.contains_key(child),
                    "{ino} names missing {child}"
                );
                named_by.entry(*child).or_default().push(*ino);
            }
        }
        let listed = |dir: &InodeNo| self.nodes.get(dir).is_some_and(|d| d.entries.is_some());
        for (ino, node) in &self.nodes {
            let mut dirs = named_by.remove(ino).unwrap_or_default();
            dirs.sort();
            if node.is_dir() {
                let expected = if *ino == InodeNo::ROOT {
                    Vec::new()
                } else {
                    assert!(self.nodes.contains_key(&node.parent), "parent of {ino}");
                    vec![node.parent]
                };
                let expected: Vec<InodeNo> = expected.into_iter().filter(listed).collect();
                assert_eq!(dirs, expected, "directory {ino} is named by {dirs:?}");
                if let Some(entries) = &node.entries {
                    let subdirs = entries.values().filter(|c| self.nodes[c].is_dir()).count();
                    assert_eq!(node.record.nlink as usize, 2 + subdirs, "nlink of {ino}");
                }
            } else {
                let mut links = node.links.clone();
                links.sort();
                for dir in &links {
                    assert!(self.nodes.contains_key(dir), "link {dir} of {ino}");
                }
                let in_listed: Vec<InodeNo> = links.iter().copied().filter(listed).collect();
                assert_eq!(dirs, in_listed, "links of {ino}");
                assert_eq!(node.record.nlink as usize, links.len(), "nlink of {ino}");
            }
        }
    }
}

/// Whether an inode freezes to an object of its own (files and directories); other kinds live
/// entirely in their directory's entry.
pub fn has_object(node: &Node) -> bool {
    matches!(node.record.kind, InodeKind::File | InodeKind::Directory)
}
