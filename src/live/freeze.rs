//! Freezing the live share into a snapshot: an immutable Merkle tree of objects in the chunk
//! store. Each inode remembers the object it froze to until it changes, and a change thaws the
//! inode and every directory above it, so a freeze re-encodes only the changed paths: its cost
//! follows what changed since the previous freeze, not the size of the share.

use super::LiveFs;
use super::error::FsResult;
use super::namespace::Namespace;
use crate::format::inode::{InodeKind, InodeRecord};
use crate::format::object::{
    DirEntryObject, DirectoryObject, FileObject, ObjectId, SEGMENT_BLOCKS, Segment,
};
use crate::id::InodeNo;
use crate::tree_objects::TreeObjects;

/// What a freeze produced: the root directory's object and attributes.
pub struct Frozen {
    pub root: ObjectId,
    pub root_record: InodeRecord,
}

impl LiveFs {
    /// Freezes the share as it is now. Every write that returned before this call is in the
    /// result and none that starts during it: data writes wait on the write gate, and every
    /// other change on the namespace lock, both held exclusively throughout. Data still in
    /// block buffers is stored first.
    pub fn freeze(&self, objects: &TreeObjects) -> FsResult<Frozen> {
        self.check_writable()?;
        let _gate = self.write_gate.write();
        let mut tree = self.tree.write();
        let changed = std::mem::take(&mut self.changed.lock().since_freeze);
        let ctx = self.data_context();
        for ino in changed {
            if let Some(content) = tree.nodes.get(&ino).and_then(|n| n.content.clone()) {
                let mut state = content.lock();
                if state.has_buffers() {
                    state.seal_all(ino, &ctx)?;
                    drop(state);
                    self.changed.lock().since_commit.insert(ino);
                }
            }
            tree.thaw(ino);
        }
        let root = self.freeze_node(&mut tree, InodeNo::ROOT, objects)?;
        let root_record = tree.node(InodeNo::ROOT)?.current_record();
        Ok(Frozen { root, root_record })
    }

    fn freeze_node(
        &self,
        tree: &mut Namespace,
        ino: InodeNo,
        objects: &TreeObjects,
    ) -> FsResult<ObjectId> {
        let node = tree.node(ino)?;
        if let Some(id) = node.frozen {
            return Ok(id);
        }
        let encoded = match (&node.entries, &node.content) {
            (Some(entries), _) => {
                let entries: Vec<(Vec<u8>, InodeNo)> = entries
                    .iter()
                    .map(|(name, child)| (name.clone(), *child))
                    .collect();
                let mut out = Vec::with_capacity(entries.len());
                for (name, child) in entries {
                    let kind = tree.node(child)?.record.kind;
                    let object = match kind {
                        InodeKind::File | InodeKind::Directory => {
                            Some(self.freeze_node(tree, child, objects)?)
                        }
                        _ => None,
                    };
                    let child_node = tree.node(child)?;
                    out.push(DirEntryObject {
                        name,
                        link_id: child.0,
                        record: child_node.current_record(),
                        object,
                        xattrs: child_node
                            .xattrs
                            .iter()
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect(),
                    });
                }
                DirectoryObject { entries: out }.encode()
            }
            (None, Some(content)) => {
                let mut state = content.lock();
                let size = state.size;
                let map = state.block_map(ino, &self.data_context())?;
                let mut segments = Vec::new();
                let mut current: Option<(u64, Segment)> = None;
                for (&index, &chunk) in map {
                    let number = index / SEGMENT_BLOCKS;
                    if current.as_ref().is_some_and(|(n, _)| *n != number)
                        && let Some((n, segment)) = current.take()
                    {
                        segments.push((n, objects.put(&segment.encode())?));
                    }
                    let (_, segment) = current.get_or_insert_with(|| (number, Segment::default()));
                    segment
                        .blocks
                        .push(((index % SEGMENT_BLOCKS) as u16, chunk));
                }
                if let Some((n, segment)) = current {
                    segments.push((n, objects.put(&segment.encode())?));
                }
                FileObject { size, segments }.encode()
            }
            (None, None) => unreachable!("only files and directories are frozen to objects"),
        };
        let id = objects.put(&encoded)?;
        tree.node_mut(ino)?.frozen = Some(id);
        Ok(id)
    }
}
