//! Reading a tree out of a snapshot into a [`Subtree`] the live share can graft. Every object of
//! the tree is read, decoded and checked here, before the share is touched: a damaged snapshot
//! fails a restore without changing anything, and the share stays usable while a large tree is
//! read.

use std::collections::{BTreeMap, HashMap};

use super::restore::{RestoreError, TreeCounts};
use crate::chunk_store::ChunkStoreError;
use crate::format::catalog::SnapshotRecord;
use crate::format::inode::{InodeKind, InodeRecord};
use crate::format::object::{DirEntryObject, DirectoryObject, Object, ObjectId, SEGMENT_BLOCKS};
use crate::id::ChunkId;
use crate::live::{MAX_FILE_SIZE, NAME_MAX, Subtree, SubtreeNode};
use crate::progress::{Progress, Unit};
use crate::tree_objects::TreeObjects;

/// A tree read from a snapshot, and what it holds (its top counts unless it is the root).
pub(super) struct ReadTree {
    pub subtree: Subtree,
    pub counts: TreeCounts,
}

/// Reads trees of one store's snapshots, counting the entries read into `progress`.
pub(super) struct TreeReader<'a> {
    objects: &'a TreeObjects,
    block_size: u32,
    progress: &'a Progress,
}

fn damaged(id: ObjectId, reason: &str) -> RestoreError {
    RestoreError::Chunks(ChunkStoreError::Corrupt {
        id,
        reason: reason.to_owned(),
    })
}

/// The object a file or directory entry of the directory object `dir` names.
fn object_of(entry: &DirEntryObject, dir: ObjectId) -> Result<ObjectId, RestoreError> {
    entry
        .object
        .ok_or_else(|| damaged(dir, "an entry without its object"))
}

impl<'a> TreeReader<'a> {
    /// A reader that starts a stage of `progress` for each tree it reads.
    pub fn new(objects: &'a TreeObjects, block_size: u32, progress: &'a Progress) -> Self {
        TreeReader {
            objects,
            block_size,
            progress,
        }
    }

    /// The entry at `names` (from the snapshot's root) and everything under it. `snapshot` and
    /// `path` name it in errors.
    pub fn entry(
        &self,
        record: &SnapshotRecord,
        names: &[&[u8]],
        snapshot: &str,
        path: &str,
    ) -> Result<ReadTree, RestoreError> {
        let not_found = || RestoreError::NotInSnapshot {
            snapshot: snapshot.to_owned(),
            path: path.to_owned(),
        };
        let (last, parents) = names.split_last().ok_or_else(not_found)?;
        let mut dir = record.root;
        for name in parents {
            let entry = self.lookup(dir, name)?.ok_or_else(not_found)?;
            if entry.record.kind != InodeKind::Directory {
                return Err(RestoreError::NotDirectory(path.to_owned()));
            }
            dir = object_of(&entry, dir)?;
        }
        let top = self.lookup(dir, last)?.ok_or_else(not_found)?;
        let mut counts = TreeCounts::default();
        let mut subtree = Subtree::new(self.node(&top, dir, &mut counts)?);
        if top.record.kind == InodeKind::Directory {
            self.fill(&mut subtree, object_of(&top, dir)?, &mut counts)?;
        }
        Ok(ReadTree { subtree, counts })
    }

    /// The whole tree: a root directory with the catalog's attributes, and everything under it.
    pub fn root(&self, record: &SnapshotRecord) -> Result<ReadTree, RestoreError> {
        let mut subtree = Subtree::new(SubtreeNode {
            record: InodeRecord::new_directory(record.root_perm, record.root_uid, record.root_gid),
            xattrs: BTreeMap::new(),
            blocks: BTreeMap::new(),
            object: None,
        });
        let mut counts = TreeCounts::default();
        self.fill(&mut subtree, record.root, &mut counts)?;
        Ok(ReadTree { subtree, counts })
    }

    /// The entry `name` of the directory object `dir`.
    fn lookup(&self, dir: ObjectId, name: &[u8]) -> Result<Option<DirEntryObject>, RestoreError> {
        let mut entries = self.directory(&dir)?.entries;
        Ok(entries
            .binary_search_by(|entry| entry.name.as_slice().cmp(name))
            .ok()
            .map(|at| entries.swap_remove(at)))
    }

    /// Adds everything in the directory object `id` below node 0 of `subtree`, depth first
    /// without recursion (a tree read from disk may be arbitrarily deep).
    fn fill(
        &self,
        subtree: &mut Subtree,
        id: ObjectId,
        counts: &mut TreeCounts,
    ) -> Result<(), RestoreError> {
        // Hard links inside one snapshot share a link id: the first entry makes the node, the
        // others link to it.
        let mut linked: HashMap<u64, usize> = HashMap::new();
        let mut pending = vec![(0, id)];
        self.progress.stage("reading the tree", Unit::Items, None);
        while let Some((dir, id)) = pending.pop() {
            for entry in self.directory(&id)?.entries {
                self.progress.add(1);
                if entry.name.len() > NAME_MAX {
                    return Err(damaged(id, "an entry name longer than NAME_MAX"));
                }
                let is_dir = entry.record.kind == InodeKind::Directory;
                if !is_dir && let Some(node) = linked.get(&entry.link_id) {
                    subtree.link(dir, entry.name, *node);
                    continue;
                }
                let node = self.node(&entry, id, counts)?;
                let below = if is_dir {
                    Some(object_of(&entry, id)?)
                } else {
                    None
                };
                let index = subtree.add(dir, entry.name, node);
                match below {
                    Some(below) => pending.push((index, below)),
                    None => {
                        linked.insert(entry.link_id, index);
                    }
                }
            }
        }
        Ok(())
    }

    /// The node of one entry of the directory object `dir`, with a file's block map read.
    fn node(
        &self,
        entry: &DirEntryObject,
        dir: ObjectId,
        counts: &mut TreeCounts,
    ) -> Result<SubtreeNode, RestoreError> {
        let mut node = SubtreeNode {
            record: entry.record.clone(),
            xattrs: entry.xattrs.iter().cloned().collect(),
            blocks: BTreeMap::new(),
            object: None,
        };
        match entry.record.kind {
            InodeKind::File => {
                let id = object_of(entry, dir)?;
                let (size, blocks) = self.file(&id)?;
                node.record.size = size;
                node.blocks = blocks;
                node.object = Some(id);
                counts.files += 1;
                counts.bytes += size;
            }
            InodeKind::Directory => counts.dirs += 1,
            _ => counts.others += 1,
        }
        Ok(node)
    }

    fn directory(&self, id: &ObjectId) -> Result<DirectoryObject, RestoreError> {
        match self.objects.get(id)? {
            Object::Directory(dir) => Ok(dir),
            _ => Err(damaged(*id, "not a directory object")),
        }
    }

    /// A file object's size and block map.
    fn file(&self, id: &ObjectId) -> Result<(u64, BTreeMap<u64, ChunkId>), RestoreError> {
        let Object::File(file) = self.objects.get(id)? else {
            return Err(damaged(*id, "not a file object"));
        };
        if file.size > MAX_FILE_SIZE {
            return Err(damaged(*id, "file size beyond the largest accepted"));
        }
        let blocks_in_file = file.size.div_ceil(u64::from(self.block_size));
        let mut blocks = BTreeMap::new();
        for (number, segment_id) in file.segments {
            let Object::Segment(segment) = self.objects.get(&segment_id)? else {
                return Err(damaged(segment_id, "not a segment object"));
            };
            for (at, chunk) in segment.blocks {
                // A block past the end of the file would expose its old bytes if the file grew
                // again: the live share never has one, so a snapshot cannot either.
                let index = number
                    .checked_mul(SEGMENT_BLOCKS)
                    .and_then(|first| first.checked_add(u64::from(at)))
                    .filter(|index| *index < blocks_in_file)
                    .ok_or_else(|| damaged(*id, "a block past the end of the file"))?;
                blocks.insert(index, chunk);
            }
        }
        Ok((file.size, blocks))
    }
}
