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

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::Snapshots;
use crate::blocks::{BlockSpan, spans};
use crate::chunk_store::ChunkStoreError;
use crate::format::catalog::SnapshotRecord;
use crate::format::inode::{InodeKind, InodeRecord};
use crate::format::object::{
    DirEntryObject, DirectoryObject, FileObject, Object, ObjectId, SEGMENT_BLOCKS, Segment, Xattrs,
};
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
/// Decoded objects kept in memory: enough for the directories and files being browsed.
const CACHED_OBJECTS: usize = 1024;

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

/// The read-only view of every snapshot.
pub struct SnapshotView {
    snapshots: Arc<Snapshots>,
    inodes: RwLock<HashMap<InodeNo, SnapInode>>,
    objects: Mutex<HashMap<ObjectId, Arc<Object>>>,
}

impl SnapshotView {
    pub fn new(snapshots: Arc<Snapshots>) -> Self {
        SnapshotView {
            snapshots,
            inodes: RwLock::new(HashMap::new()),
            objects: Mutex::new(HashMap::new()),
        }
    }

    pub fn snapshots(&self) -> &Arc<Snapshots> {
        &self.snapshots
    }

    /// The root directory of a snapshot, as `.snapshots/NAME` shows it: its mtime and ctime are
    /// the snapshot's creation time.
    pub fn root_inode(&self, record: &SnapshotRecord) -> SnapInode {
        let ino = snapshot_ino(record.number, InodeNo::ROOT.0);
        let inode = SnapInode {
            ino,
            parent: SNAPSHOTS_DIR,
            record: record.root_record(),
            object: Some(record.root),
            xattrs: Vec::new(),
        };
        self.inodes.write().insert(ino, inode.clone());
        inode
    }

    fn object(&self, id: &ObjectId) -> Result<Arc<Object>, ViewError> {
        if let Some(object) = self.objects.lock().get(id) {
            return Ok(object.clone());
        }
        let object = Arc::new(self.snapshots.objects().get(id)?);
        let mut cache = self.objects.lock();
        if cache.len() >= CACHED_OBJECTS {
            // Objects are immutable, so any may go; a simple reset keeps the bound.
            cache.clear();
        }
        cache.insert(*id, object.clone());
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
        if let Some(inode) = self.inodes.read().get(&ino) {
            return Ok(inode.clone());
        }
        // A snapshot root the kernel remembers across a restart of this view.
        if snapshot_ino(number, InodeNo::ROOT.0) == ino {
            Ok(self.root_inode(&record))
        } else {
            Err(ViewError::NotFound)
        }
    }

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
        let inode = entry_inode(number, parent, &entries[at]);
        self.inodes.write().insert(inode.ino, inode.clone());
        Ok(inode)
    }

    /// The inode of an entry of snapshot `number` found by a path walk outside this view (the
    /// history view), so that reads, listings and lookups work on it as on one looked up here.
    /// An inode already known keeps the parent it was found under (`parent` only serves `..`
    /// of a listing).
    pub fn adopt(&self, number: u64, parent: InodeNo, entry: &DirEntryObject) -> SnapInode {
        let inode = entry_inode(number, parent, entry);
        self.inodes
            .write()
            .entry(inode.ino)
            .or_insert(inode)
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
            .retain(|ino, _| area(*ino) != Area::Snapshot { number });
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
}
