//! Encoding a subtree straight from the metadata database, for a freeze.
//!
//! A directory that was not in memory when a freeze's capture listed its parent has nothing
//! below it in memory either (the namespace's invariant: an inode in memory has every directory
//! above it in memory), so nothing below it has changed since it was committed: the database,
//! read in a transaction begun during the capture, holds that subtree exactly as the snapshot
//! must. So does it for a directory in memory with nothing uncommitted below it, when no
//! commit is under way (see `LiveFs::capture`). Such a subtree with no frozen object (the
//! first snapshot of a share, or of a store upgraded from format 3) is encoded from there,
//! after the locks are released, instead of being loaded into the namespace or copied under
//! them: the capture stays bounded by what is uncommitted or in memory, and the namespace by
//! its budget, whatever the size of the share.
//!
//! Memory here is the stack of directories being encoded (one level per depth, each with its
//! entries) and a batch of what the walk made: the object of each inode it encoded, handed to
//! the freeze to record (and commit) once the batch is full.

use std::collections::{HashMap, HashSet};

use super::error::{FsError, FsResult};
use super::freeze::encode_file;
use crate::format::inode::InodeKind;
use crate::format::object::{DirEntryObject, DirectoryObject, ObjectId};
use crate::id::InodeNo;
use crate::meta::{MetaError, namespace::CommittedTree};
use crate::tree_objects::TreeObjects;

/// A batch of the inodes the walks encoded, each with its object and the directory it was
/// found in: the record drops an object if its inode changed since the capture, or if it is no
/// longer in memory and that directory changed (an entry removed from it may have been the
/// inode's last name). The walks hand it over to be recorded each time it holds
/// [`EncodedBelow::BATCH`] inodes, so what a first freeze of a large share made is not held
/// until its end.
#[derive(Debug, Default)]
pub struct EncodedBelow(Vec<(InodeNo, ObjectId, InodeNo)>);

impl EncodedBelow {
    /// How many inodes a batch holds: 2.5 MiB of this list, and as many rows for a commit.
    /// Small in unit tests, so that they cross batches.
    const BATCH: usize = if cfg!(test) { 4 } else { 65_536 };

    /// Adds `ino`, found in `holder`; returns whether the batch is full.
    fn push(&mut self, ino: InodeNo, object: ObjectId, holder: InodeNo) -> bool {
        self.0.push((ino, object, holder));
        self.0.len() >= Self::BATCH
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Each inode with its object and the directory it was found in.
    pub fn into_inner(self) -> Vec<(InodeNo, ObjectId, InodeNo)> {
        self.0
    }
}

/// One directory being encoded: the entries done so far, and those still to read.
struct Level {
    ino: InodeNo,
    done: Vec<DirEntryObject>,
    to_read: std::vec::IntoIter<(Vec<u8>, InodeNo)>,
}

/// Encodes directory `top` and everything below it as `tree` holds them, children before
/// their directory, without recursion (users choose how deep the share is). An inode with a
/// persisted frozen object keeps it; every other file and directory below `top` is encoded
/// and added to `below`, which is handed to `record_batch` whenever it is full. `links`
/// carries the objects of files with several links across the walks of one freeze, so each is
/// encoded once. Returns the object of `top`.
pub(super) fn encode_committed(
    tree: &CommittedTree,
    objects: &TreeObjects,
    top: InodeNo,
    below: &mut EncodedBelow,
    record_batch: &mut dyn FnMut(EncodedBelow) -> FsResult<()>,
    links: &mut HashMap<InodeNo, ObjectId>,
) -> FsResult<ObjectId> {
    let reader = &tree.namespace;
    // Directories met so far: damage that made one appear twice (a loop) is an error, not a
    // walk that never ends.
    let mut seen = HashSet::from([top]);
    let mut stack = vec![open_level(tree, top)?];
    loop {
        let Some(level) = stack.last_mut() else {
            return Err(damaged(top, "an empty walk"));
        };
        let Some((name, child)) = level.to_read.next() else {
            let Some(done) = stack.pop() else {
                return Err(damaged(top, "an empty walk"));
            };
            let id = objects.put(&DirectoryObject { entries: done.done }.encode())?;
            let Some(parent) = stack.last_mut() else {
                return Ok(id);
            };
            // The directory's entry was pushed, without its object, when the walk went down.
            if let Some(entry) = parent.done.last_mut() {
                entry.object = Some(id);
            }
            if below.push(done.ino, id, parent.ino) {
                record_batch(std::mem::take(below))?;
            }
            continue;
        };
        let holder = level.ino;
        let Some(record) = reader.inode(child)? else {
            tracing::error!(dir = %holder, %child, "directory entry names a missing inode; skipped");
            continue;
        };
        let kind = record.kind;
        let persisted = match kind {
            InodeKind::File | InodeKind::Directory => reader.frozen(child)?,
            _ => None,
        };
        let object = match (kind, persisted) {
            (_, Some(id)) => Some(id),
            (InodeKind::File, None) => match links.get(&child) {
                Some(id) => Some(*id),
                None => {
                    let id = encode_file(objects, record.size, tree.blocks(child)?)?;
                    if record.nlink > 1 {
                        links.insert(child, id);
                    }
                    // Kept by its first directory alone: removing any other of its names
                    // changes the file itself (its link count).
                    if below.push(child, id, holder) {
                        record_batch(std::mem::take(below))?;
                    }
                    Some(id)
                }
            },
            _ => None,
        };
        let descend = kind == InodeKind::Directory && object.is_none();
        level.done.push(DirEntryObject {
            name,
            link_id: child.0,
            record,
            object,
            xattrs: reader.xattrs(child)?.into_iter().collect(),
        });
        if descend {
            if !seen.insert(child) {
                return Err(damaged(child, "a directory is reached twice"));
            }
            stack.push(open_level(tree, child)?);
        }
    }
}

fn open_level(tree: &CommittedTree, ino: InodeNo) -> FsResult<Level> {
    Ok(Level {
        ino,
        done: Vec::new(),
        to_read: tree.namespace.entries(ino)?.into_iter(),
    })
}

fn damaged(ino: InodeNo, what: &'static str) -> FsError {
    MetaError::Inconsistent { ino, what }.into()
}
