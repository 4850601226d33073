//! Freezing the live share into a snapshot: an immutable Merkle tree of objects in the chunk
//! store. Each inode remembers the object it froze to until it changes, and a change thaws the
//! inode and every directory above it, so a freeze re-encodes only the changed paths: its cost
//! follows what changed since the previous freeze, not the size of the share. What is not in
//! memory has not changed since the mount: a directory not listed stands for its subtree by the
//! frozen object persisted for it, or, if it has none, is listed and encoded.

use super::LiveFs;
use super::error::{FsError, FsResult};
use super::namespace::{Namespace, Node, has_object};
use crate::format::inode::InodeRecord;
use crate::format::object::{
    DirEntryObject, DirectoryObject, FileObject, ObjectId, SEGMENT_BLOCKS, Segment,
};
use crate::id::InodeNo;
use crate::tree_objects::TreeObjects;

/// What a freeze produced: the root directory's object and attributes.
pub struct Frozen {
    pub root: ObjectId,
    pub root_record: InodeRecord,
    /// How many files and directories it encoded: what changed since the previous freeze (or
    /// everything, the first time).
    pub encoded: usize,
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
        let changed = {
            let mut changed = self.changed.lock();
            changed.thaw_persisted.clear();
            std::mem::take(&mut changed.since_freeze)
        };
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
        let mut encoded = Vec::new();
        let root = self.freeze_node(&mut tree, InodeNo::ROOT, objects, &mut encoded)?;
        let root_record = tree.node(InodeNo::ROOT)?.current_record();
        let count = encoded.len();
        // The next commit persists them (the `frozen` table), so they outlive a remount.
        self.changed.lock().newly_frozen.extend(encoded);
        Ok(Frozen {
            root,
            root_record,
            encoded: count,
        })
    }

    /// Encodes `top` and every thawed inode below it, children before their directory, and
    /// returns `top`'s object; each inode it encodes is added to `encoded`. Depth first without
    /// recursion: users choose how deep the share is, so the walk keeps its own stack (one
    /// [`Frame`] per pending inode) on the heap.
    fn freeze_node(
        &self,
        tree: &mut Namespace,
        top: InodeNo,
        objects: &TreeObjects,
        encoded: &mut Vec<(InodeNo, ObjectId)>,
    ) -> FsResult<ObjectId> {
        let mut stack = vec![Frame::Enter(top)];
        while let Some(frame) = stack.pop() {
            match frame {
                Frame::Enter(ino) => {
                    let node = tree.node(ino)?;
                    if node.frozen.is_some() {
                        // Unchanged since the last freeze, or reached before by another link.
                        // A directory not listed is trusted by its own frozen object: every
                        // change below it removed that (`meta`'s `frozen` table).
                        continue;
                    }
                    if node.is_dir() {
                        // Never frozen, or thawed since: its entries are needed to encode it.
                        tree.list(ino)?;
                    }
                    let node = tree.node(ino)?;
                    match &node.entries {
                        Some(entries) => {
                            stack.push(Frame::Exit(ino));
                            for child in entries.values() {
                                let child_node = tree.node(*child)?;
                                if child_node.frozen.is_none() && has_object(child_node) {
                                    stack.push(Frame::Enter(*child));
                                }
                            }
                        }
                        None => {
                            let id = self.freeze_file(node, ino, objects)?;
                            tree.node_mut(ino)?.frozen = Some(id);
                            encoded.push((ino, id));
                        }
                    }
                }
                Frame::Exit(dir) => {
                    let id = objects.put(&encode_directory(tree, dir)?.encode())?;
                    tree.node_mut(dir)?.frozen = Some(id);
                    encoded.push((dir, id));
                }
            }
        }
        tree.node(top)?
            .frozen
            .ok_or_else(|| unfrozen(top, "the top of a freeze"))
    }

    /// Stores a regular file's segments and returns the id of its file object.
    fn freeze_file(&self, node: &Node, ino: InodeNo, objects: &TreeObjects) -> FsResult<ObjectId> {
        let Some(content) = &node.content else {
            return Err(unfrozen(ino, "an inode frozen as a file has no content"));
        };
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
        Ok(objects.put(&FileObject { size, segments }.encode())?)
    }
}

/// One step of the freeze walk.
enum Frame {
    /// Freeze this inode: a file at once; a directory after everything below it.
    Enter(InodeNo),
    /// Every thawed inode below this directory is frozen: encode the directory itself.
    Exit(InodeNo),
}

/// The directory object of `dir`, whose files and subdirectories are all frozen.
fn encode_directory(tree: &Namespace, dir: InodeNo) -> FsResult<DirectoryObject> {
    let mut entries = Vec::new();
    for (name, child) in tree.dir(dir)? {
        let node = tree.node(*child)?;
        let object = if has_object(node) {
            let id = node
                .frozen
                .ok_or_else(|| unfrozen(*child, "below a directory"))?;
            Some(id)
        } else {
            None
        };
        entries.push(DirEntryObject {
            name: name.clone(),
            link_id: child.0,
            record: node.current_record(),
            object,
            xattrs: node
                .xattrs
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        });
    }
    Ok(DirectoryObject { entries })
}

/// A freeze found an inode not frozen where the walk order guarantees it is: a bug, reported
/// as an error rather than a snapshot that silently lacks part of the share.
fn unfrozen(ino: InodeNo, context: &str) -> FsError {
    tracing::error!(%ino, "freeze: {context}: not frozen");
    FsError::Io(std::io::Error::other(format!(
        "freeze: inode {ino} is not frozen ({context})"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::inode::InodeKind;
    use crate::format::object::Object;
    use crate::testing::{
        DEEP, chain, close, mkdir, new_store, on_small_stack, open, write_file, write_in,
    };

    /// Follows a chain of directories down from `root` to the first one holding a file: how
    /// many levels it passed, and that file's size.
    fn chain_depth(objects: &TreeObjects, root: ObjectId) -> (usize, u64) {
        let mut dir = root;
        let mut depth = 0;
        loop {
            let Ok(Object::Directory(directory)) = objects.get(&dir) else {
                panic!("a directory object at depth {depth}");
            };
            let [entry] = &directory.entries[..] else {
                panic!("one entry at depth {depth}");
            };
            let object = entry.object.expect("an object");
            if entry.record.kind == InodeKind::File {
                let Ok(Object::File(file)) = objects.get(&object) else {
                    panic!("a file object");
                };
                return (depth, file.size);
            }
            dir = object;
            depth += 1;
        }
    }

    #[test]
    fn a_deep_chain_freezes_without_recursion() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (_store, live) = new_store(tmp.path(), "store");
        let objects = TreeObjects::new(live.chunk_store());
        let bottom = chain(&live, InodeNo::ROOT, b"d", DEEP);
        write_in(&live, bottom, b"leaf", b"first");

        let first = on_small_stack(|| live.freeze(&objects)).expect("freeze");
        assert_eq!(chain_depth(&objects, first.root), (DEEP, 5));

        write_in(&live, bottom, b"leaf", b"second");
        let second = on_small_stack(|| live.freeze(&objects)).expect("freeze again");
        assert_ne!(second.root, first.root, "the change thawed the whole chain");
        assert_eq!(chain_depth(&objects, second.root), (DEEP, 6));
        let unchanged = on_small_stack(|| live.freeze(&objects)).expect("freeze unchanged");
        assert_eq!(unchanged.root, second.root);
    }

    /// What each inode froze to outlives a remount: the first freeze after it encodes what
    /// changed, not the share; a change committed before the remount (and one made to a symbolic
    /// link, which has no object of its own) is not lost to a stale object.
    #[test]
    fn frozen_objects_survive_a_remount_and_changes_before_it_thaw_them() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (path, live) = new_store(tmp.path(), "store");
        for d in 0..10 {
            mkdir(&live, &format!("d{d}"));
            for f in 0..10 {
                write_file(&live, &format!("d{d}/f{f}"), format!("{d}/{f}").as_bytes());
            }
        }
        let objects = TreeObjects::new(live.chunk_store());
        let first = live.freeze(&objects).expect("freeze");
        assert_eq!(first.encoded, 111, "everything, the first time");
        live.commit_now().expect("commit");
        drop(objects);
        close(live);

        let live = open(&path);
        let objects = TreeObjects::new(live.chunk_store());
        let again = live.freeze(&objects).expect("freeze after remount");
        assert_eq!(
            (again.encoded, again.root),
            (0, first.root),
            "nothing changed"
        );
        // Changes, committed, then a remount before any freeze: a file's data, and the owner
        // of a symbolic link (which lives in its directory's entry only).
        write_file(&live, "d3/f4", b"changed");
        let link = live
            .make(
                crate::testing::lookup(&live, "d5").expect("d5").ino,
                b"link",
                super::super::create::NewInode::Symlink(b"f0"),
                0o777,
                super::super::Caller { uid: 0, gid: 0 },
            )
            .expect("symlink")
            .ino;
        live.commit_now().expect("commit");
        drop(objects);
        close(live);
        let live = open(&path);
        let objects = TreeObjects::new(live.chunk_store());
        let with_link = live.freeze(&objects).expect("freeze");
        assert_eq!(with_link.encoded, 4, "f4, d3, d5 and the root");
        live.commit_now().expect("commit");
        let change = super::super::attr::SetAttr {
            mode: None,
            uid: Some(1234),
            gid: None,
            size: None,
            atime: None,
            mtime: None,
        };
        live.setattr(link, change).expect("chown the link");
        drop(objects);
        close(live);

        let live = open(&path);
        let objects = TreeObjects::new(live.chunk_store());
        let after = live.freeze(&objects).expect("freeze after the chown");
        assert_eq!(after.encoded, 2, "the link's directory and the root");
        let d5 = crate::testing::lookup(&live, "d5").expect("d5").ino;
        let Some(d5_object) = live.tree.read().node(d5).expect("d5").frozen else {
            panic!("d5 frozen");
        };
        let Ok(Object::Directory(dir)) = objects.get(&d5_object) else {
            panic!("a directory");
        };
        let entry = dir
            .entries
            .iter()
            .find(|e| e.name == b"link")
            .expect("the link");
        assert_eq!(entry.record.uid, 1234, "the new owner is in the snapshot");
        live.commit_now().expect("commit");
        drop(objects);
        close(live);
        let live = open(&path);
        let objects = TreeObjects::new(live.chunk_store());
        assert_eq!(live.freeze(&objects).expect("freeze").encoded, 0);
        drop(objects);
        close(live);
    }
}
