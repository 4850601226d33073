//! Browsing snapshots read-only, independent of FUSE: `.snapshots/` lists every snapshot, and
//! each is a directory tree decoded lazily from its objects.
//!
//! Inode numbers are unique across the mount and stable while it is mounted:
//! - live share: below 2^40 (allocated from a counter);
//! - `.snapshots` and its control file: [`SNAPSHOTS_DIR`], [`CONTROL_FILE`];
//! - `.snapshots/.history` ([`HISTORY_DIR`]) and every inode below it that is not a snapshot
//!   inode: from [`HISTORY_DIR`] up to 2^63, allocated by `history_view` as they are found;
//! - inside snapshot number `n`: `2^63 | n << 40 | link_id`, where `link_id` is the live inode
//!   number the entry had when frozen, so hard links inside one snapshot share an inode.
//!
//! Numbers are derived, not allocated, so nothing need be remembered to keep them stable; what
//! the view remembers is what an inode stands for (its record, object, parent), which cannot be
//! found again from the number alone. Memory stays bounded however large the snapshots browsed:
//! - an inode inside a snapshot is remembered while the kernel holds it: each reply that hands
//!   it to the kernel (lookup, readdirplus entry) counts one reference, `forget` gives them back,
//!   and at zero it goes ([`HeldInodes`]); a snapshot root is never stored (it is rebuilt from
//!   the catalog), and an inode the history view mirrors is pinned while mounted, as the history
//!   view keeps its own numbers (see `history_view`);
//! - decoded objects sit in a least-recently-used cache bounded in bytes ([`OBJECT_CACHE_BYTES`]).

use std::sync::Arc;

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
pub const SNAPSHOTS_DIR_NAME: &[u8] = b".snapshots";
pub const CONTROL_FILE_NAME: &[u8] = b".control";
pub const HISTORY_DIR_NAME: &[u8] = b".history";
const SNAPSHOT_BIT: u64 = 1 << 63;
const LINK_BITS: u32 = 40;
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
    Snapshot { number: u64 },
}

pub fn area(ino: InodeNo) -> Area {
    if ino == SNAPSHOTS_DIR {
        Area::SnapshotsDir
    } else if ino == CONTROL_FILE {
        Area::ControlFile
    } else if ino.0 & SNAPSHOT_BIT != 0 {
        Area::Snapshot {
            number: (ino.0 & !SNAPSHOT_BIT) >> LINK_BITS,
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

/// The read-only view of every snapshot.
pub struct SnapshotView {
    snapshots: Arc<Snapshots>,
    inodes: RwLock<HeldInodes<SnapInode>>,
    objects: Mutex<LruCache<ObjectId, Object>>,
}

impl SnapshotView {
    pub fn new(snapshots: Arc<Snapshots>) -> Self {
        Self::with_cache(snapshots, OBJECT_CACHE_BYTES)
    }

    /// A view whose decoded objects take at most `cache_bytes`.
    pub fn with_cache(snapshots: Arc<Snapshots>, cache_bytes: u64) -> Self {
        SnapshotView {
            snapshots,
            inodes: RwLock::new(HeldInodes::default()),
            objects: Mutex::new(LruCache::new(cache_bytes)),
        }
    }

    /// What the view holds now.
    pub fn usage(&self) -> ViewUsage {
        ViewUsage {
            inodes: self.inodes.read().len(),
            cached_object_bytes: self.objects.lock().weight(),
        }
    }

    pub fn snapshots(&self) -> &Arc<Snapshots> {
        &self.snapshots
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

    fn object(&self, id: &ObjectId) -> Result<Arc<Object>, ViewError> {
        if let Some(object) = self.objects.lock().get(id) {
            return Ok(object);
        }
        // Read and decoded outside the lock: other reads go on meanwhile (two may decode one
        // object; objects are immutable, so either copy is right).
        let object = Arc::new(self.snapshots.objects().get(id)?);
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
        let Area::Snapshot { number } = area(ino) else {
            return Err(ViewError::NotFound);
        };
        // Snapshots are deleted by commands and by retention alike: what was looked up in a
        // deleted one is forgotten when it is next asked for.
        let Some((_, record)) = self.snapshots.by_number(number) else {
            self.forget_snapshot(number);
            return Err(ViewError::NotFound);
        };
        if let Some(inode) = self.inodes.read().get(ino) {
            return Ok(inode.clone());
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
        let dir = self.inode(parent)?;
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
        let mut inodes = self.inodes.write();
        Ok(inodes
            .look_up(ino, || entry_inode(number, parent, entry))
            .clone())
    }

    /// The kernel gives back `count` references to `ino` (FUSE `forget`); with none left, what
    /// it stood for is forgotten. Inodes outside snapshots are not this view's and are ignored.
    pub fn forget(&self, ino: InodeNo, count: u64) {
        if let Area::Snapshot { .. } = area(ino) {
            self.inodes.write().forget(ino, count);
        }
    }

    /// The inode of an entry of snapshot `number` found by a path walk outside this view (the
    /// history view), so that reads, listings and lookups work on it as on one looked up here.
    /// An inode already known keeps the parent it was found under (`parent` only serves `..`
    /// of a listing). Pinned: the history view keeps the number for as long as it is mounted,
    /// and the kernel never holds it under this number, so no `forget` would ever come for it.
    pub fn adopt(&self, number: u64, parent: InodeNo, entry: &DirEntryObject) -> SnapInode {
        let ino = snapshot_ino(number, entry.link_id);
        self.inodes
            .write()
            .pin(ino, || entry_inode(number, parent, entry))
            .clone()
    }

    /// The entries of a snapshot directory.
    pub fn list(&self, ino: InodeNo) -> Result<Entries, ViewError> {
        let dir = self.inode(ino)?;
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
                    snapshot_ino(number, e.link_id),
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
        let inode = self.inode(ino)?;
        let id = inode.object.ok_or(ViewError::NotFound)?;
        let object = self.object(&id)?;
        let Object::File(file) = &*object else {
            return Err(ViewError::NotFound);
        };
        let chunks = self.snapshots.objects().chunks();
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
