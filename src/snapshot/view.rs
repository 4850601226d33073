//! Browsing snapshots read-only, independent of FUSE: `.snapshots/` lists every snapshot, and
//! each is a directory tree decoded lazily from its objects.
//!
//! Inode numbers are unique across the mount and stable while it is mounted:
//! - live share: below 2^40 (allocated from a counter);
//! - `.snapshots` and its control file: [`SNAPSHOTS_DIR`], [`CONTROL_FILE`];
//! - `.snapshots/.history` ([`HISTORY_DIR`]) and every inode below it that is not a snapshot
//!   inode: from [`HISTORY_DIR`] up to 2^63, allocated by `history_view` as they are found
//!   (but [`GMT_DIR`], `.snapshots/.gmt`);
//! - inside snapshot number `n`: `2^63 | n << 40 | link_id`, where `link_id` is the live inode
//!   number the entry had when frozen, so hard links inside one snapshot share an inode;
//! - the same inode reached through a GMT alias (`.snapshots/.gmt/@GMT-...`, see `gmt`): the
//!   same number with [`ALIAS_BIT`] (2^62) set. The kernel allows a directory one name (dentry)
//!   at a time: had the alias the snapshot's own numbers, each lookup through the other path
//!   would move the directory's dentry there, or fail with `ESTALE` when it cannot. The two
//!   numbers are one inode of this view (one held entry, one cache), told apart only at its
//!   edge: an alias inode is unaliased on the way in and aliased on the way out. Snapshot
//!   numbers stay below [`SNAPSHOT_NUMBER_LIMIT`] (2^22) so that they never reach that bit.
//!
//! Numbers are derived, not allocated, so nothing need be remembered to keep them stable; what
//! the view remembers is where an inode's entry lies (its directory object, its place there,
//! and the parent it was found under), which cannot be found again from the number alone; the
//! inode is decoded from the directory again when asked for ([`HeldEntry`]). Memory stays
//! bounded however large the snapshots browsed:
//! - an inode inside a snapshot is remembered while the kernel holds it: each reply that hands
//!   it to the kernel (lookup, readdirplus entry) counts one reference, `forget` gives them back,
//!   and at zero it goes ([`HeldInodes`]); a snapshot root is never stored (it is rebuilt from
//!   the catalog), and an inode the history view mirrors is pinned while mounted, as the history
//!   view keeps its own numbers (see `history_view`);
//! - decoded objects sit in a least-recently-used cache bounded in bytes ([`OBJECT_CACHE_BYTES`]),
//!   and beside them the last object larger than that (a directory of over 100,000 entries).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;
use parking_lot::{Mutex, RwLock};

use super::Snapshots;
use crate::blocks::{BlockSpan, spans};
use crate::cache::LruCache;
use crate::chunk_store::ChunkStoreError;
use crate::format::catalog::SnapshotRecord;
use crate::format::inode::{InodeKind, InodeRecord};
use crate::format::object::{
    DirEntryObject, DirectoryObject, FileObject, Object, ObjectId, SEGMENT_BLOCKS, Segment, Xattrs,
};
use crate::held_inodes::HeldInodes;
use crate::history::HistoryError;
use crate::id::{ChunkId, InodeNo};

pub const SNAPSHOTS_DIR: InodeNo = InodeNo(1 << 62);
pub const CONTROL_FILE: InodeNo = InodeNo((1 << 62) + 1);
/// `.snapshots/.history`, the first of the history inodes (which end below [`SNAPSHOT_BIT`]).
pub const HISTORY_DIR: InodeNo = InodeNo((1 << 62) + 2);
/// `.snapshots/.gmt`, the directory of GMT aliases (see `gmt`), with `--gmt-names`.
pub const GMT_DIR: InodeNo = InodeNo((1 << 62) + 3);
pub const GMT_DIR_NAME: &[u8] = b".gmt";
pub const SNAPSHOTS_DIR_NAME: &[u8] = b".snapshots";
pub const CONTROL_FILE_NAME: &[u8] = b".control";
pub const HISTORY_DIR_NAME: &[u8] = b".history";
const SNAPSHOT_BIT: u64 = 1 << 63;
/// Set, with [`SNAPSHOT_BIT`], in an inode reached through a GMT alias.
const ALIAS_BIT: u64 = 1 << 62;
const LINK_BITS: u32 = 40;
/// Snapshot numbers are below this: above `LINK_BITS`, the bits left under [`ALIAS_BIT`].
/// 4,194,304 snapshots in a store's life: one a minute for eight years.
pub const SNAPSHOT_NUMBER_LIMIT: u64 = ALIAS_BIT >> LINK_BITS;
/// The most memory decoded objects may take (as [`resident_bytes`] estimates it). A `find`
/// needs the directories on its path and their siblings being read; a sequential read needs one
/// segment map at a time (about 35 KiB for 1024 blocks). 16 MiB holds a directory of about
/// 100,000 entries or hundreds of segment maps, so browsing rarely decodes an object twice,
/// while a daemon serving a share of any size keeps a small, fixed footprint. The mount has no
/// memory option this could come from (`--cache-ttl` is the kernel's); a constant is enough
/// until one is wanted.
pub const OBJECT_CACHE_BYTES: u64 = 16 << 20;

/// Which part of the mount an inode number belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Area {
    Live,
    SnapshotsDir,
    ControlFile,
    History,
    /// `.snapshots/.gmt`.
    GmtDir,
    /// Inside snapshot `number`, through its name or its GMT alias.
    Snapshot {
        number: u64,
    },
}

pub fn area(ino: InodeNo) -> Area {
    if ino == SNAPSHOTS_DIR {
        Area::SnapshotsDir
    } else if ino == CONTROL_FILE {
        Area::ControlFile
    } else if ino == GMT_DIR {
        Area::GmtDir
    } else if ino.0 & SNAPSHOT_BIT != 0 {
        Area::Snapshot {
            number: (ino.0 & !(SNAPSHOT_BIT | ALIAS_BIT)) >> LINK_BITS,
        }
    } else if ino >= HISTORY_DIR {
        Area::History
    } else {
        Area::Live
    }
}

pub fn snapshot_ino(number: u64, link_id: u64) -> InodeNo {
    InodeNo(SNAPSHOT_BIT | (number << LINK_BITS) | (link_id & ((1 << LINK_BITS) - 1)))
}

/// Whether `ino` is a snapshot inode reached through a GMT alias.
pub fn is_alias(ino: InodeNo) -> bool {
    ino.0 & SNAPSHOT_BIT != 0 && ino.0 & ALIAS_BIT != 0
}

/// The snapshot's own number of an inode reached through a GMT alias.
fn unaliased(ino: InodeNo) -> InodeNo {
    if is_alias(ino) {
        InodeNo(ino.0 & !ALIAS_BIT)
    } else {
        ino
    }
}

/// A snapshot inode as seen through its snapshot's GMT alias: a snapshot root's parent is the
/// alias directory.
fn aliased(mut inode: SnapInode) -> SnapInode {
    inode.ino = InodeNo(inode.ino.0 | ALIAS_BIT);
    inode.parent = if inode.parent.0 & SNAPSHOT_BIT != 0 {
        InodeNo(inode.parent.0 | ALIAS_BIT)
    } else {
        GMT_DIR
    };
    inode
}

/// The entries of a directory: name, inode, kind.
pub type Entries = Vec<(Vec<u8>, InodeNo, InodeKind)>;

/// An inode inside a snapshot, as last looked up.
#[derive(Clone, Debug)]
pub struct SnapInode {
    pub ino: InodeNo,
    pub parent: InodeNo,
    pub record: InodeRecord,
    pub object: Option<ObjectId>,
    pub xattrs: Xattrs,
}

#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("no such entry")]
    NotFound,
    #[error("not a directory")]
    NotDirectory,
    #[error("snapshot data: {0}")]
    Damaged(#[from] ChunkStoreError),
    #[error("snapshot history: {0}")]
    History(#[from] HistoryError),
}

/// What the view remembers of an inode the kernel holds: where its entry lies, from which the
/// inode is decoded again when asked for (its directory is in the object cache while it is
/// browsed). 48 bytes, where the inode itself (record, object id, extended attributes) takes
/// about 200: a walk over a large snapshot leaves the kernel holding as many inodes as the
/// view's budget allows.
#[derive(Clone, Debug)]
enum HeldEntry {
    /// Entry `index` of the directory object `dir`, looked up under `parent`.
    InDirectory {
        parent: InodeNo,
        dir: ObjectId,
        index: u32,
    },
    /// An inode the history view found by a walk of its own (pinned, and few).
    Adopted(Box<SnapInode>),
}

fn entry_inode(number: u64, parent: InodeNo, entry: &DirEntryObject) -> SnapInode {
    SnapInode {
        ino: snapshot_ino(number, entry.link_id),
        parent,
        record: entry.record.clone(),
        object: entry.object,
        xattrs: entry.xattrs.clone(),
    }
}

/// How much memory a decoded object takes, roughly: its vectors and what they own. An
/// estimate that grows with the object is all the cache bound needs.
fn resident_bytes(object: &Object) -> u64 {
    use std::mem::size_of;
    let bytes = match object {
        Object::Segment(Segment { blocks }) => blocks.len() * size_of::<(u16, ChunkId)>(),
        Object::File(FileObject { segments, .. }) => segments.len() * size_of::<(u64, ObjectId)>(),
        Object::Directory(DirectoryObject { entries }) => entries
            .iter()
            .map(|entry| {
                size_of::<DirEntryObject>()
                    + entry.name.len()
                    + entry.record.symlink_target.len()
                    + entry
                        .xattrs
                        .iter()
                        .map(|(name, value)| {
                            size_of::<(Vec<u8>, Vec<u8>)>() + name.len() + value.len()
                        })
                        .sum::<usize>()
            })
            .sum(),
        Object::Multipart(multipart) => multipart.parts.len() * size_of::<ChunkId>(),
    };
    (size_of::<Object>() + bytes) as u64
}

/// What the view holds now, for `snapfs status`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ViewUsage {
    /// Inodes inside snapshots remembered (held by the kernel, or pinned by the history view).
    pub inodes: usize,
    /// Estimated bytes of the decoded objects cached.
    pub cached_object_bytes: u64,
}

/// What turns the view's part of `--metadata-cache` into the most inodes it holds. A
/// `HeldEntry` and its table slot take 80 bytes, but the table doubles past 7/8 full and a
/// shrink copies it: at 1,000,000 files, with 524,288 allowed (128 bytes each), the table
/// peaked at 81 MiB plus 40 MiB while it shrank, about 240 bytes an inode. At 256, the view's
/// quarter of the default 128 MiB allows 131,072 inodes, about 30 MiB at the peak.
const HELD_INODE_BYTES: u64 = 256;
/// The fewest inodes the view holds however small the budget.
const MIN_HELD_INODES: usize = 1024;

/// The read-only view of every snapshot.
pub struct SnapshotView {
    /// Replaced by a follower as checkpoints arrive (`switch_to`).
    snapshots: ArcSwap<Snapshots>,
    /// Shared with the thread that trims it ([`Self::let_go`]).
    inodes: Arc<RwLock<HeldInodes<HeldEntry>>>,
    objects: Mutex<LruCache<ObjectId, Object>>,
    /// The most inodes held before the kernel is asked to let go of some ([`Self::let_go`]).
    max_held: usize,
    /// Set while a thread sends the kernel the names to let go of.
    letting_go: Arc<AtomicBool>,
}

impl SnapshotView {
    pub fn new(snapshots: Arc<Snapshots>) -> Self {
        Self::with_cache(snapshots, OBJECT_CACHE_BYTES)
    }

    /// A view whose decoded objects take at most `cache_bytes`, and whose held inodes take
    /// about its part of the share's `--metadata-cache`.
    pub fn with_cache(snapshots: Arc<Snapshots>, cache_bytes: u64) -> Self {
        let max_held =
            usize::try_from(snapshots.live().metadata_budget().snapshot_view() / HELD_INODE_BYTES)
                .unwrap_or(usize::MAX)
                .max(MIN_HELD_INODES);
        SnapshotView {
            snapshots: ArcSwap::new(snapshots),
            inodes: Arc::new(RwLock::new(HeldInodes::default())),
            objects: Mutex::new(LruCache::new(cache_bytes)),
            max_held,
            letting_go: Arc::new(AtomicBool::new(false)),
        }
    }

    /// What the view holds now.
    pub fn usage(&self) -> ViewUsage {
        ViewUsage {
            inodes: self.inodes.read().len(),
            cached_object_bytes: self.objects.lock().weight(),
        }
    }

    pub fn snapshots(&self) -> Arc<Snapshots> {
        self.snapshots.load_full()
    }

    /// Shows a newer state of the same share's snapshots from now on (a follower's next
    /// checkpoint). The inodes the kernel holds stay: their records and objects are the same
    /// in every state that has their snapshot.
    pub fn switch_to(&self, snapshots: Arc<Snapshots>) {
        self.snapshots.store(snapshots);
    }

    /// The root directory of a snapshot, as `.snapshots/NAME` shows it: its mtime and ctime are
    /// the snapshot's creation time. Built from the catalog record each time, so never stored.
    pub fn root_inode(&self, record: &SnapshotRecord) -> SnapInode {
        SnapInode {
            ino: snapshot_ino(record.number, InodeNo::ROOT.0),
            parent: SNAPSHOTS_DIR,
            record: record.root_record(),
            object: Some(record.root),
            xattrs: Vec::new(),
        }
    }

    /// The root of a snapshot as its GMT alias (`.snapshots/.gmt/@GMT-...`) shows it: the same
    /// directory under its alias number.
    pub fn alias_root_inode(&self, record: &SnapshotRecord) -> SnapInode {
        aliased(self.root_inode(record))
    }

    fn object(&self, id: &ObjectId) -> Result<Arc<Object>, ViewError> {
        if let Some(object) = self.objects.lock().get(id) {
            return Ok(object);
        }
        // Read and decoded outside the lock: other reads go on meanwhile (two may decode one
        // object; objects are immutable, so either copy is right).
        let object = Arc::new(self.snapshots.load().objects().get(id)?);
        let weight = resident_bytes(&object);
        self.objects.lock().insert(*id, object.clone(), weight);
        Ok(object)
    }

    fn directory(&self, inode: &SnapInode) -> Result<Arc<Object>, ViewError> {
        let id = inode.object.ok_or(ViewError::NotDirectory)?;
        let object = self.object(&id)?;
        match &*object {
            Object::Directory(_) => Ok(object),
            _ => Err(ViewError::NotDirectory),
        }
    }

    pub fn inode(&self, ino: InodeNo) -> Result<SnapInode, ViewError> {
        if is_alias(ino) {
            return self.own_inode(unaliased(ino)).map(aliased);
        }
        self.own_inode(ino)
    }

    /// [`Self::inode`] of an inode under its snapshot's own number.
    fn own_inode(&self, ino: InodeNo) -> Result<SnapInode, ViewError> {
        let Area::Snapshot { number } = area(ino) else {
            return Err(ViewError::NotFound);
        };
        // Snapshots are deleted by commands and by retention alike: what was looked up in a
        // deleted one is forgotten when it is next asked for.
        let Some((_, record)) = self.snapshots.load().by_number(number) else {
            self.forget_snapshot(number);
            return Err(ViewError::NotFound);
        };
        let held = self.inodes.read().get(ino).cloned();
        if let Some(held) = held {
            return self.resolve(number, held);
        }
        if snapshot_ino(number, InodeNo::ROOT.0) == ino {
            Ok(self.root_inode(&record))
        } else {
            Err(ViewError::NotFound)
        }
    }

    /// Looks `name` up in the snapshot directory `parent`: one reference the kernel now holds,
    /// until [`Self::forget`] gives it back.
    pub fn lookup(&self, parent: InodeNo, name: &[u8]) -> Result<SnapInode, ViewError> {
        if is_alias(parent) {
            return self.own_lookup(unaliased(parent), name).map(aliased);
        }
        self.own_lookup(parent, name)
    }

    fn own_lookup(&self, parent: InodeNo, name: &[u8]) -> Result<SnapInode, ViewError> {
        let dir = self.own_inode(parent)?;
        let object = self.directory(&dir)?;
        let Object::Directory(DirectoryObject { entries }) = &*object else {
            return Err(ViewError::NotDirectory);
        };
        let at = entries
            .binary_search_by(|entry| entry.name.as_slice().cmp(name))
            .map_err(|_| ViewError::NotFound)?;
        let Area::Snapshot { number } = area(parent) else {
            return Err(ViewError::NotFound);
        };
        let entry = &entries[at];
        let ino = snapshot_ino(number, entry.link_id);
        let found = HeldEntry::InDirectory {
            parent,
            dir: dir.object.ok_or(ViewError::NotDirectory)?,
            index: u32::try_from(at).map_err(|_| ViewError::NotFound)?,
        };
        let held = {
            let mut inodes = self.inodes.write();
            let held = inodes.look_up(ino, || found.clone()).clone();
            if inodes.len() > self.max_held {
                self.let_go(&mut inodes);
            }
            held
        };
        match (&held, &found) {
            // This entry is what the inode stands for (the usual case): no second decode.
            (
                HeldEntry::InDirectory { dir, index, .. },
                HeldEntry::InDirectory {
                    dir: here,
                    index: at,
                    ..
                },
            ) if dir == here && index == at => Ok(entry_inode(number, parent, entry)),
            // A hard link held under another name keeps what it stood for.
            _ => self.resolve(number, held),
        }
    }

    /// More inodes are held than the budget allows: asks the kernel to forget the names of the
    /// least recently used, down to three quarters of it, as the kernel trims its own caches
    /// under memory pressure. The kernel drops what it can (not an open file, nor a working
    /// directory) and sends `forget` for each inode it drops, which is what takes it out of
    /// the table. The names are found and sent by a thread of their own (their directories
    /// may have to be decoded again), never by the request being served.
    ///
    /// One round at a time: a round ends when the kernel has been told of all its names and
    /// has given back what it would (a walk that outran the notifier had rounds queue the same
    /// names again and again: 770 MiB of RSS once, after a `find` over a snapshot of 1,000,000
    /// files). The thread goes on with another round while more are held than the budget and
    /// the kernel let go of some of the last round's (not of an open file, say), since lookups
    /// during a round start none; it ends under the table's lock, so the next lookup over the
    /// budget starts a thread again. Each round hands the heap's free pages back to the system.
    fn let_go(&self, inodes: &mut HeldInodes<HeldEntry>) {
        if self.letting_go.swap(true, Ordering::AcqRel) {
            return;
        }
        let max_held = self.max_held;
        let mut victims = inodes.least_recent(inodes.len() - max_held / 4 * 3);
        let snapshots = self.snapshots.load_full();
        let held = self.inodes.clone();
        let letting_go = self.letting_go.clone();
        let started = std::thread::Builder::new()
            .name("snapfs-view-trim".into())
            .spawn(move || {
                loop {
                    let chosen: Vec<InodeNo> = victims.iter().map(|(ino, _)| *ino).collect();
                    forget_in_kernel(&snapshots, victims);
                    let some_gone = || {
                        let inodes = held.read();
                        chosen.iter().any(|ino| inodes.get(*ino).is_none())
                    };
                    // The kernel sends its forgets soon after, in its own time.
                    for _ in 0..100 {
                        if some_gone() {
                            break;
                        }
                        std::thread::sleep(std::time::Duration::from_millis(10));
                    }
                    let progress = some_gone();
                    // What the forgotten inodes took is scattered between those still held:
                    // without this, glibc kept up to 60 MiB of it after a `find` over a
                    // snapshot of 1,000,000 files.
                    crate::heap::give_back_freed();
                    let mut inodes = held.write();
                    if inodes.len() <= max_held || !progress {
                        letting_go.store(false, Ordering::Release);
                        return;
                    }
                    let over = inodes.len() - max_held / 4 * 3;
                    victims = inodes.least_recent(over);
                }
            });
        if let Err(err) = started {
            tracing::warn!("cannot start the thread trimming the snapshot view: {err}");
            self.letting_go.store(false, Ordering::Release);
        }
    }

    /// The inode a held entry of snapshot `number` stands for.
    fn resolve(&self, number: u64, held: HeldEntry) -> Result<SnapInode, ViewError> {
        match held {
            HeldEntry::Adopted(inode) => Ok(*inode),
            HeldEntry::InDirectory { parent, dir, index } => {
                let object = self.object(&dir)?;
                let Object::Directory(DirectoryObject { entries }) = &*object else {
                    return Err(ViewError::NotDirectory);
                };
                let entry = entries.get(index as usize).ok_or(ViewError::NotFound)?;
                Ok(entry_inode(number, parent, entry))
            }
        }
    }

    /// The kernel gives back `count` references to `ino` (FUSE `forget`); with none left, what
    /// it stood for is forgotten. Inodes outside snapshots are not this view's and are ignored.
    pub fn forget(&self, ino: InodeNo, count: u64) {
        if let Area::Snapshot { .. } = area(ino) {
            self.inodes.write().forget(unaliased(ino), count);
        }
    }

    /// The inode of an entry of snapshot `number` found by a path walk outside this view (the
    /// history view), so that reads, listings and lookups work on it as on one looked up here.
    /// An inode already known keeps the parent it was found under (`parent` only serves `..`
    /// of a listing). Pinned: the history view keeps the number for as long as it is mounted,
    /// and the kernel never holds it under this number, so no `forget` would ever come for it.
    pub fn adopt(&self, number: u64, parent: InodeNo, entry: &DirEntryObject) -> SnapInode {
        let ino = snapshot_ino(number, entry.link_id);
        let held = self
            .inodes
            .write()
            .pin(ino, || {
                HeldEntry::Adopted(Box::new(entry_inode(number, parent, entry)))
            })
            .clone();
        // Known before (looked up in the snapshot itself): the same inode either way.
        self.resolve(number, held)
            .unwrap_or_else(|_| entry_inode(number, parent, entry))
    }

    /// The entries of a snapshot directory.
    pub fn list(&self, ino: InodeNo) -> Result<Entries, ViewError> {
        let alias = if is_alias(ino) { ALIAS_BIT } else { 0 };
        let ino = unaliased(ino);
        let dir = self.own_inode(ino)?;
        let object = self.directory(&dir)?;
        let Object::Directory(DirectoryObject { entries }) = &*object else {
            return Err(ViewError::NotDirectory);
        };
        let Area::Snapshot { number } = area(ino) else {
            return Err(ViewError::NotFound);
        };
        Ok(entries
            .iter()
            .map(|e| {
                (
                    e.name.clone(),
                    InodeNo(snapshot_ino(number, e.link_id).0 | alias),
                    e.record.kind,
                )
            })
            .collect())
    }

    /// Reads up to `len` bytes at `offset` of a snapshot file, every chunk verified.
    pub fn read(
        &self,
        ino: InodeNo,
        offset: u64,
        len: u32,
        block_size: u32,
    ) -> Result<Vec<u8>, ViewError> {
        let inode = self.inode(unaliased(ino))?;
        let id = inode.object.ok_or(ViewError::NotFound)?;
        let object = self.object(&id)?;
        let Object::File(file) = &*object else {
            return Err(ViewError::NotFound);
        };
        let snapshots = self.snapshots.load();
        let chunks = snapshots.objects().chunks();
        read_file(
            file,
            offset,
            len,
            block_size,
            |segment| self.object(segment),
            |_| ViewError::NotFound,
            |chunk, in_block, out| match chunks.read_into(chunk, in_block, out) {
                Ok(_) => Ok(()),
                Err(err) => {
                    tracing::error!(ino = %ino, %chunk, "snapshot read failed: {err}");
                    Err(ViewError::from(err))
                }
            },
        )
    }

    /// Forgets what was looked up in a deleted snapshot.
    fn forget_snapshot(&self, number: u64) {
        self.inodes
            .write()
            .retain(|ino| area(ino) != Area::Snapshot { number });
    }
}

/// Asks the kernel to forget the names of `victims` (held inodes of the view), each directory
/// decoded once for all of its entries among them. A name is sent under both numbers its
/// directory may have in the kernel (its own, and its GMT alias's); a name the kernel does not
/// have is nothing to it.
fn forget_in_kernel(snapshots: &Snapshots, victims: Vec<(InodeNo, HeldEntry)>) {
    let mut by_dir: std::collections::HashMap<ObjectId, Vec<(InodeNo, u32)>> =
        std::collections::HashMap::new();
    for (_, held) in victims {
        if let HeldEntry::InDirectory { parent, dir, index } = held {
            by_dir.entry(dir).or_default().push((parent, index));
        }
    }
    let live = snapshots.live();
    for (dir, entries) in by_dir {
        let Ok(Object::Directory(DirectoryObject { entries: names })) =
            snapshots.objects().get(&dir)
        else {
            continue; // unreadable now: the kernel keeps those names until it trims them
        };
        for (parent, index) in entries {
            if let Some(entry) = names.get(index as usize) {
                live.forget_entry_later(parent, &entry.name);
                live.forget_entry_later(InodeNo(parent.0 | ALIAS_BIT), &entry.name);
            }
        }
    }
    // The next round chooses among what is held then: only once the kernel has been told of
    // these can it have let go of them.
    live.wait_for_forgets();
}

/// Reads up to `len` bytes at `offset` of the file `file`, block by block: a block in no
/// segment, or absent from its segment, is a hole and reads as zeros. Where the objects come
/// from is the caller's: `blocks` gives a segment object's block list, `chunk` copies part of
/// a chunk (checked against its id) into the buffer it is given. Shared by the snapshot view
/// and the vault mount, so both read files the same way.
pub fn read_file<E>(
    file: &FileObject,
    offset: u64,
    len: u32,
    block_size: u32,
    mut segment: impl FnMut(&ObjectId) -> Result<Arc<Object>, E>,
    not_segment: impl Fn(&ObjectId) -> E,
    mut chunk: impl FnMut(&ChunkId, usize, &mut [u8]) -> Result<(), E>,
) -> Result<Vec<u8>, E> {
    let FileObject { size, segments } = file;
    if offset >= *size {
        return Ok(Vec::new());
    }
    let end = (*size).min(offset.saturating_add(u64::from(len)));
    let mut out = vec![0u8; (end - offset) as usize];
    // The segment last read: a read of consecutive blocks decodes each segment once.
    let mut current: Option<(u64, Arc<Object>)> = None;
    for BlockSpan {
        index,
        in_block,
        len: n,
        at,
    } in spans(offset, end, block_size)
    {
        let number = index / SEGMENT_BLOCKS;
        let Ok(found) = segments.binary_search_by_key(&number, |(n, _)| *n) else {
            continue;
        };
        if current.as_ref().is_none_or(|(n, _)| *n != number) {
            current = Some((number, segment(&segments[found].1)?));
        }
        let Some((_, object)) = &current else {
            continue;
        };
        let Object::Segment(Segment { blocks: list }) = &**object else {
            return Err(not_segment(&segments[found].1));
        };
        let key = (index % SEGMENT_BLOCKS) as u16;
        if let Ok(i) = list.binary_search_by_key(&key, |(k, _)| *k) {
            chunk(&list[i].1, in_block, &mut out[at..at + n])?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inode_areas() {
        assert_eq!(area(InodeNo(5)), Area::Live);
        assert_eq!(area(SNAPSHOTS_DIR), Area::SnapshotsDir);
        assert_eq!(area(CONTROL_FILE), Area::ControlFile);
        assert_eq!(area(HISTORY_DIR), Area::History);
        assert_eq!(area(InodeNo(SNAPSHOT_BIT - 1)), Area::History);
        assert_eq!(area(snapshot_ino(7, 123)), Area::Snapshot { number: 7 });
        assert_ne!(snapshot_ino(7, 123), snapshot_ino(8, 123));
    }

    /// A snapshot seen through its GMT alias is the same view under numbers of its own: the
    /// same entries, attributes and bytes, numbers that differ from the snapshot's own and from
    /// the live share's, parents that lead back to `.snapshots/.gmt`, and one held inode per
    /// entry whichever way the kernel holds it.
    #[test]
    fn an_alias_is_the_same_view_under_numbers_of_its_own() {
        use crate::history::fixture::Fixture;

        let f = Fixture::new();
        f.mkdir("/d");
        f.write("/d/f", b"old");
        let record = f.snapshot("s1");
        let view = SnapshotView::new(f.snapshots.clone());

        let own_root = view.root_inode(&record);
        let alias_root = view.alias_root_inode(&record);
        assert_ne!(own_root.ino, alias_root.ino);
        assert_eq!(alias_root.parent, GMT_DIR);
        assert!(is_alias(alias_root.ino) && !is_alias(own_root.ino));
        assert_eq!(area(alias_root.ino), area(own_root.ino));
        assert_eq!(
            view.inode(alias_root.ino).expect("alias root").ino,
            alias_root.ino
        );

        let own_d = view.lookup(own_root.ino, b"d").expect("d");
        let alias_d = view.lookup(alias_root.ino, b"d").expect("alias d");
        assert_eq!(alias_d.ino, InodeNo(own_d.ino.0 | ALIAS_BIT));
        assert_eq!(alias_d.parent, alias_root.ino);
        assert_eq!(alias_d.record.kind, own_d.record.kind);
        let own_list = view.list(own_d.ino).expect("list");
        let alias_list = view.list(alias_d.ino).expect("alias list");
        assert_eq!(alias_list.len(), own_list.len());
        for ((name, ino, kind), (alias_name, alias_ino, alias_kind)) in
            own_list.iter().zip(&alias_list)
        {
            assert_eq!((name, kind), (alias_name, alias_kind));
            assert_eq!(*alias_ino, InodeNo(ino.0 | ALIAS_BIT));
            assert!(area(*alias_ino) != Area::Live && *alias_ino != *ino);
        }
        let alias_f = view.lookup(alias_d.ino, b"f").expect("alias f");
        assert_eq!(alias_list[0].1, alias_f.ino, "a listing and a lookup agree");
        assert_eq!(view.read(alias_f.ino, 0, 100, 4096).expect("read"), b"old");
        assert_eq!(view.inode(alias_f.ino).expect("held").parent, alias_d.ino);

        // d and alias d are one held inode with two references; f one with one.
        assert_eq!(view.usage().inodes, 2);
        view.forget(alias_d.ino, 1);
        assert_eq!(view.inode(own_d.ino).expect("still held").ino, own_d.ino);
        view.forget(own_d.ino, 1);
        view.forget(alias_f.ino, 1);
        assert_eq!(view.usage().inodes, 0);
        assert!(matches!(view.inode(alias_f.ino), Err(ViewError::NotFound)));
    }

    /// Browses a snapshot of many directories and files as `find` and `cat` would (every
    /// entry looked up, every directory listed, every file read), then gives back every
    /// reference the way the kernel's `forget` does: nothing is left remembered, and the
    /// decoded objects never exceeded their budget.
    #[test]
    fn a_browsed_snapshot_is_forgotten_with_the_kernel_and_its_cache_stays_bounded() {
        use crate::history::fixture::Fixture;
        use std::collections::HashMap;

        let f = Fixture::new();
        for d in 0..20 {
            f.mkdir(&format!("/d{d}"));
            for s in 0..5 {
                f.mkdir(&format!("/d{d}/s{s}"));
                for i in 0..10 {
                    let data = format!("{d}/{s}/{i}").repeat(200);
                    f.write(&format!("/d{d}/s{s}/f{i}"), data.as_bytes());
                }
            }
        }
        // A hard link across directories: one inode number under both names.
        let target = f.ino("/d0/s0/f0");
        f.live.link(target, f.ino("/d1"), b"link").expect("link");
        let record = f.snapshot("s1");

        const BUDGET: u64 = 64 << 10;
        let view = SnapshotView::with_cache(f.snapshots.clone(), BUDGET);
        let root = view.root_inode(&record).ino;
        // What the kernel would hold: references per inode.
        let mut held: HashMap<InodeNo, u64> = HashMap::new();
        let mut files = 0;
        let mut to_list = vec![root];
        // A loop over an explicit stack, not recursion.
        while let Some(dir) = to_list.pop() {
            for (name, ino, kind) in view.list(dir).expect("list") {
                let inode = view.lookup(dir, &name).expect("lookup");
                assert_eq!(inode.ino, ino, "a listing and a lookup agree");
                *held.entry(ino).or_default() += 1;
                match kind {
                    InodeKind::Directory => to_list.push(ino),
                    InodeKind::File => {
                        let data = view.read(ino, 0, 1 << 20, 4096).expect("read");
                        assert_eq!(data.len() as u64, inode.record.size);
                        files += 1;
                    }
                    _ => {}
                }
                assert!(view.usage().cached_object_bytes <= BUDGET);
            }
        }
        assert_eq!(files, 20 * 5 * 10 + 1);
        // Each lookup is one more reference the kernel would hold.
        let mut look = |dir: InodeNo, name: &[u8]| {
            let inode = view.lookup(dir, name).expect("lookup");
            *held.entry(inode.ino).or_default() += 1;
            inode.ino
        };
        let d1 = look(root, b"d1");
        let linked = look(d1, b"link");
        let d0 = look(root, b"d0");
        let s0 = look(d0, b"s0");
        let original = look(s0, b"f0");
        assert_eq!(linked, original, "hard links share an inode");
        assert_eq!(view.usage().inodes, held.len());

        // Given back in part, an inode stays, with the same number and meaning.
        let (some, count) = (original, held[&original]);
        assert!(count > 1);
        view.forget(some, count - 1);
        assert_eq!(view.inode(some).expect("still held").ino, some);
        view.forget(some, 1);
        assert!(matches!(view.inode(some), Err(ViewError::NotFound)));
        held.remove(&some);
        for (ino, count) in held {
            view.forget(ino, count);
        }
        let usage = view.usage();
        assert_eq!(usage.inodes, 0, "every inode forgotten");
        assert!(usage.cached_object_bytes > 0 && usage.cached_object_bytes <= BUDGET);
        // The root is rebuilt from the catalog, never remembered.
        assert_eq!(view.inode(root).expect("root").ino, root);
    }
}
