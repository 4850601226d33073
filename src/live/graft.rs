//! Grafting: putting a tree read from a snapshot into the live share by reference. The new
//! inodes take the tree's attributes, extended attributes, symlink targets, device numbers and
//! block maps; the block maps name the chunks the snapshot names, so no file data is read,
//! copied or stored.
//!
//! A graft is atomic. Everything that can fail (resolving the destination, checking the tree's
//! names, numbering its inodes) happens before the namespace changes, and the whole change
//! (removing what is replaced, adding the new tree) happens in one hold of the namespace write
//! lock: readers and the group commit see the old share or the new one, never a mix. The graft
//! then commits, so it is durable when the call returns.
//!
//! The caller reads the whole tree before calling, outside the lock, and keeps its chunks from
//! being collected meanwhile (a restore pins its snapshot). Once grafted, the chunks are named
//! by in-memory block maps, then by committed ones, both of which garbage collection marks.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use super::LiveFs;
use super::content::FileContent;
use super::error::{FsError, FsResult};
use super::namespace::{Namespace, Node, check_name, split_path};
use crate::format::inode::{InodeKind, InodeRecord, Timestamp};
use crate::format::object::ObjectId;
use crate::id::{ChunkId, InodeNo};

/// One inode of a [`Subtree`].
pub struct SubtreeNode {
    /// Its attributes. `nlink` is ignored (a graft counts the names the tree gives the node) and
    /// `ctime` becomes the time of the graft, as for any inode created then: tools that look
    /// for changes by ctime (backups) see restored files.
    pub record: InodeRecord,
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    /// A regular file's block map; ignored for other kinds.
    pub blocks: BTreeMap<u64, ChunkId>,
    /// A regular file's snapshot object in this store. It encodes exactly the size and block
    /// map, so the grafted file starts frozen at it and the next snapshot does not encode the
    /// file again. `None` when the object is not in this store (a clone).
    pub object: Option<ObjectId>,
}

/// A tree to graft: its inodes, node 0 being the top, and the entries of its directories. A
/// hard link is one node named by several entries. The builder methods keep every directory
/// named once (and the top not at all), so the tree has no cycles.
pub struct Subtree {
    nodes: Vec<SubtreeNode>,
    /// The entries of each node, by index (empty for non-directories): name and node.
    entries: Vec<Vec<(Vec<u8>, usize)>>,
}

impl Subtree {
    /// A tree of only `top`; add entries to it (if it is a directory) with [`Subtree::add`].
    pub fn new(top: SubtreeNode) -> Self {
        Subtree {
            nodes: vec![top],
            entries: vec![Vec::new()],
        }
    }

    /// Adds `node` as `name` in the directory node `dir`, and returns the new node's index.
    /// Panics if `dir` is not a directory of this tree (a bug of the caller).
    pub fn add(&mut self, dir: usize, name: Vec<u8>, node: SubtreeNode) -> usize {
        assert!(self.is_dir(dir), "entries are added to directories");
        self.nodes.push(node);
        self.entries.push(Vec::new());
        let index = self.nodes.len() - 1;
        self.entries[dir].push((name, index));
        index
    }

    /// Names the existing non-directory `node` once more, as `name` in the directory `dir`: a
    /// hard link. Panics if `dir` is not a directory or `node` is one.
    pub fn link(&mut self, dir: usize, name: Vec<u8>, node: usize) {
        assert!(
            self.is_dir(dir) && !self.is_dir(node),
            "hard links name non-directories, in directories"
        );
        self.entries[dir].push((name, node));
    }

    fn is_dir(&self, node: usize) -> bool {
        self.nodes[node].record.kind == InodeKind::Directory
    }

    /// Forgets the files' snapshot objects: for a graft into another store, where they name
    /// nothing.
    pub fn forget_objects(&mut self) {
        for node in &mut self.nodes {
            node.object = None;
        }
    }

    /// Every chunk the files use, once each, file by file in block order (so that a copy keeps
    /// each file's blocks together).
    pub fn chunks(&self) -> Vec<ChunkId> {
        let mut seen = HashSet::new();
        self.nodes
            .iter()
            .flat_map(|node| node.blocks.values())
            .filter(|chunk| seen.insert(**chunk))
            .copied()
            .collect()
    }
}

/// Where a graft goes.
#[derive(Clone, Copy, Debug)]
pub enum GraftPoint<'a> {
    /// A new entry at `path`, relative to the share's root (see [`split_path`]); its parent must
    /// be a directory. An existing entry there is refused with [`FsError::Exists`], or with
    /// `overwrite` removed as `rm -r` would remove it (open files stay readable until closed).
    Path { path: &'a [u8], overwrite: bool },
    /// The whole share: every entry of the root is removed, the top's entries take their place,
    /// and the root takes the top's permissions and owner. The top must be a directory.
    Root,
}

/// Where the top of a subtree goes, once the destination is resolved.
#[derive(Clone, Copy)]
enum Top {
    /// A new inode named in this directory.
    EntryIn(InodeNo),
    /// The existing root.
    Root,
}

impl LiveFs {
    /// Grafts `subtree` at `at` in one atomic change, then commits, and has the kernel forget
    /// the entries it replaced.
    pub fn graft(&self, subtree: Subtree, at: GraftPoint<'_>) -> FsResult<()> {
        self.check_writable()?;
        let now = Timestamp::now();
        let replaced: Vec<(InodeNo, Vec<u8>)> = {
            let mut tree = self.tree.write();
            match at {
                GraftPoint::Path { path, overwrite } => {
                    let names = split_path(path)?;
                    let (name, parents) = names.split_last().ok_or(FsError::InvalidArgument)?;
                    let parent = tree.resolve_dir(parents)?;
                    let existing = tree.dir(parent)?.get(*name).copied();
                    if existing.is_some() && !overwrite {
                        return Err(FsError::Exists);
                    }
                    if let Some(old) = existing {
                        tree.list_subtree(old)?;
                    }
                    let nodes = build(&mut tree, subtree, Top::EntryIn(parent), now)?;
                    // Nothing fails from here on: the change is made whole or not at all.
                    if let Some(old) = existing {
                        self.remove_tree(&mut tree, parent, name, old, now);
                    }
                    let (top, top_is_dir) = (nodes[0].0, nodes[0].1.is_dir());
                    self.insert_grafted(&mut tree, nodes);
                    let parent_node = tree.node_mut(parent).expect("resolved above");
                    parent_node
                        .entries
                        .as_mut()
                        .expect("resolved as a directory")
                        .insert(name.to_vec(), top);
                    if top_is_dir {
                        parent_node.record.nlink += 1;
                    }
                    parent_node.record.mtime = now;
                    parent_node.record.ctime = now;
                    self.mark_inode(parent);
                    self.mark_dirent(parent, name, Some(top));
                    vec![(parent, name.to_vec())]
                }
                GraftPoint::Root => {
                    tree.list_subtree(InodeNo::ROOT)?;
                    let old: Vec<(Vec<u8>, InodeNo)> = tree
                        .dir(InodeNo::ROOT)?
                        .iter()
                        .map(|(name, child)| (name.clone(), *child))
                        .collect();
                    let mut nodes = build(&mut tree, subtree, Top::Root, now)?;
                    // Nothing fails from here on: the change is made whole or not at all.
                    for (name, child) in &old {
                        self.remove_tree(&mut tree, InodeNo::ROOT, name, *child, now);
                    }
                    let (_, top) = nodes.swap_remove(0);
                    self.insert_grafted(&mut tree, nodes);
                    let root = tree
                        .node_mut(InodeNo::ROOT)
                        .expect("the root always exists");
                    root.entries = top.entries;
                    root.record.nlink = top.record.nlink;
                    root.record.perm = top.record.perm;
                    root.record.uid = top.record.uid;
                    root.record.gid = top.record.gid;
                    root.record.mtime = now;
                    root.record.ctime = now;
                    self.mark_grafted(InodeNo::ROOT, root);
                    old.into_iter()
                        .map(|(name, _)| (InodeNo::ROOT, name))
                        .collect()
                }
            }
        };
        let committed = self.commit_now();
        self.forget_in_kernel(&replaced);
        committed
    }

    /// Adds built nodes to the namespace and records them for the commit and the next freeze.
    fn insert_grafted(&self, tree: &mut Namespace, nodes: Vec<(InodeNo, Node)>) {
        for (ino, node) in nodes {
            self.mark_grafted(ino, &node);
            tree.insert_new(ino, node);
        }
    }

    fn mark_grafted(&self, ino: InodeNo, node: &Node) {
        if node.content.is_some() {
            // Content new to the share, so the commit writes it; but not changed since the
            // freeze, which would thaw the file: it starts frozen at the snapshot's own object.
            // The directories naming it are marked, which thaws everything above it.
            self.dirt.lock().inodes.insert(ino);
            self.changed.lock().since_commit.insert(ino);
        } else {
            self.mark_inode(ino);
        }
        if !node.xattrs.is_empty() {
            self.dirt.lock().xattrs.insert(ino);
        }
        for (name, child) in node.entries.iter().flatten() {
            self.mark_dirent(ino, name, Some(*child));
        }
    }
}

/// Makes a live node of every node of `subtree`, in its order (the top first; grafted as the
/// root, it is numbered as the root). The namespace only gives out inode numbers here, so this
/// is where a graft may still fail.
fn build(
    tree: &mut Namespace,
    subtree: Subtree,
    top: Top,
    now: Timestamp,
) -> FsResult<Vec<(InodeNo, Node)>> {
    let Subtree { nodes, entries } = subtree;
    let is_dir: Vec<bool> = nodes
        .iter()
        .map(|node| node.record.kind == InodeKind::Directory)
        .collect();
    let (mut inos, mut named_in) = match top {
        Top::Root if !is_dir[0] => return Err(FsError::NotDirectory),
        Top::Root => (vec![InodeNo::ROOT], vec![Vec::new()]),
        Top::EntryIn(parent) => (Vec::new(), vec![vec![parent]]),
    };
    // If a check below fails, these numbers stay unused: harmless, as numbers are never reused.
    inos.extend(tree.allocate_inodes((nodes.len() - inos.len()) as u64)?);
    // The directories naming each node: its parent for a directory, one per link otherwise.
    named_in.resize(nodes.len(), Vec::new());
    let mut subdirs = vec![0u32; nodes.len()];
    let mut dir_entries = Vec::with_capacity(nodes.len());
    for (dir, list) in entries.into_iter().enumerate() {
        let mut map = BTreeMap::new();
        for (name, child) in list {
            check_name(&name)?;
            if map.insert(name, inos[child]).is_some() {
                return Err(FsError::InvalidArgument);
            }
            named_in[child].push(inos[dir]);
            subdirs[dir] += u32::from(is_dir[child]);
        }
        dir_entries.push(map);
    }
    let mut built = Vec::with_capacity(nodes.len());
    let parts = nodes
        .into_iter()
        .zip(dir_entries)
        .zip(named_in)
        .zip(subdirs);
    for (index, (((node, entries), named_in), subdirs)) in parts.enumerate() {
        let ino = inos[index];
        let mut record = node.record;
        record.ctime = now;
        let parent = named_in.first().copied().unwrap_or(InodeNo::ROOT);
        record.nlink = if is_dir[index] {
            2 + subdirs
        } else {
            u32::try_from(named_in.len())
                .ok()
                .filter(|links| *links <= u32::from(u16::MAX))
                .ok_or(FsError::TooManyLinks)?
        };
        let kind = record.kind;
        let (size, mtime) = (record.size, record.mtime);
        let mut live = Node::new(ino, record, parent);
        live.xattrs = node.xattrs;
        if is_dir[index] {
            live.entries = Some(entries);
        } else {
            live.links = named_in.into();
        }
        if kind == InodeKind::File {
            live.content = Some(Arc::new(FileContent::with_blocks(
                ino,
                size,
                mtime,
                now,
                node.blocks,
            )));
            live.frozen = node.object;
        }
        built.push((ino, live));
    }
    Ok(built)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::XattrReply;
    use crate::testing::{close, lookup, mkdir, new_store, open, read_file, write_file};

    fn node(record: InodeRecord) -> SubtreeNode {
        SubtreeNode {
            record,
            xattrs: BTreeMap::new(),
            blocks: BTreeMap::new(),
            object: None,
        }
    }

    fn record(kind: InodeKind, perm: u16, size: u64) -> InodeRecord {
        InodeRecord {
            kind,
            perm,
            size,
            mtime: Timestamp {
                secs: 1_000_000,
                nanos: 5,
            },
            ..InodeRecord::new_directory(0, 1000, 1000)
        }
    }

    fn file(blocks: BTreeMap<u64, ChunkId>, size: u64) -> SubtreeNode {
        SubtreeNode {
            blocks,
            ..node(record(InodeKind::File, 0o640, size))
        }
    }

    fn dir(perm: u16) -> SubtreeNode {
        node(record(InodeKind::Directory, perm, 0))
    }

    #[test]
    fn a_graft_names_the_same_chunks_and_keeps_hard_links_one_inode() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (store, live) = new_store(tmp.path(), "store");
        let chunks = live.chunk_store();
        let first = chunks.put(&[7u8; 4096]).expect("put");
        let last = chunks.put(b"tail").expect("put");
        let mut tree = Subtree::new(dir(0o750));
        let mut f = file(BTreeMap::from([(0, first), (1, last)]), 4100);
        f.xattrs.insert(b"user.colour".to_vec(), b"blue".to_vec());
        let f = tree.add(0, b"f".to_vec(), f);
        tree.link(0, b"g".to_vec(), f);
        let mut symlink = record(InodeKind::Symlink, 0o777, 1);
        symlink.symlink_target = b"f".to_vec();
        tree.add(0, b"s".to_vec(), node(symlink));
        let sub = tree.add(0, b"sub".to_vec(), dir(0o700));
        tree.link(sub, b"h".to_vec(), f);
        let mut device = record(InodeKind::CharDevice, 0o600, 0);
        device.rdev = 0x0103;
        tree.add(sub, b"null".to_vec(), node(device));
        mkdir(&live, "x");
        let packs = chunks.usage().pack_bytes;

        live.graft(
            tree,
            GraftPoint::Path {
                path: b"x/d",
                overwrite: false,
            },
        )
        .expect("graft");

        assert_eq!(chunks.usage().pack_bytes, packs, "nothing was stored");
        live.assert_consistent();
        let check = |live: &LiveFs| {
            let f = lookup(live, "x/d/f").expect("f");
            assert_eq!(f.record.nlink, 3);
            assert_eq!((f.record.perm, f.record.size), (0o640, 4100));
            assert_eq!(f.record.mtime.secs, 1_000_000);
            assert_eq!(lookup(live, "x/d/g").expect("g").ino, f.ino);
            assert_eq!(lookup(live, "x/d/sub/h").expect("h").ino, f.ino);
            let mut expected = vec![7u8; 4096];
            expected.extend_from_slice(b"tail");
            assert_eq!(read_file(live, "x/d/f"), expected);
            assert!(matches!(
                live.getxattr(f.ino, b"user.colour", 64),
                Ok(XattrReply::Data(value)) if value == b"blue"
            ));
            let s = lookup(live, "x/d/s").expect("s");
            assert_eq!(live.readlink(s.ino).expect("readlink"), b"f");
            assert_eq!(
                lookup(live, "x/d/sub/null").expect("null").record.rdev,
                0x0103
            );
            let d = lookup(live, "x/d").expect("d");
            assert_eq!((d.record.perm, d.record.nlink), (0o750, 3));
            assert_eq!(lookup(live, "x").expect("x").record.nlink, 3);
        };
        check(&live);
        drop(chunks);
        close(live);
        let live = open(&store);
        check(&live);
        live.assert_consistent();
    }

    #[test]
    fn an_existing_target_is_kept_unless_overwritten_and_its_open_files_stay_readable() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (store, live) = new_store(tmp.path(), "store");
        mkdir(&live, "t");
        mkdir(&live, "t/deep");
        write_file(&live, "t/deep/old", b"old data");
        write_file(&live, "keep", b"linked");
        let kept = lookup(&live, "keep").expect("keep").ino;
        live.link(kept, lookup(&live, "t").expect("t").ino, b"link")
            .expect("link");
        let old = lookup(&live, "t/deep/old").expect("old").ino;
        let fh = live.open(old, false, false).expect("open");
        let chunk = live.chunk_store().put(b"new").expect("put");
        let new_tree = || Subtree::new(file(BTreeMap::from([(0, chunk)]), 3));

        let refused = live.graft(
            new_tree(),
            GraftPoint::Path {
                path: b"t",
                overwrite: false,
            },
        );
        assert!(matches!(refused, Err(FsError::Exists)), "{refused:?}");
        assert_eq!(read_file(&live, "t/deep/old"), b"old data");

        live.graft(
            new_tree(),
            GraftPoint::Path {
                path: b"/t",
                overwrite: true,
            },
        )
        .expect("graft");
        assert_eq!(read_file(&live, "t"), b"new");
        assert_eq!(live.read(fh, 0, 100).expect("still readable"), b"old data");
        assert_eq!(lookup(&live, "keep").expect("keep").record.nlink, 1);
        live.assert_consistent();
        live.release(fh).expect("release");
        assert!(
            matches!(live.getattr(old), Err(FsError::NotFound)),
            "purged"
        );
        live.assert_consistent();
        close(live);
        let live = open(&store);
        assert_eq!(read_file(&live, "t"), b"new");
        assert_eq!(read_file(&live, "keep"), b"linked");
        live.assert_consistent();
    }

    #[test]
    fn a_graft_at_the_root_replaces_every_entry_and_the_roots_owner() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (store, live) = new_store(tmp.path(), "store");
        write_file(&live, "a", b"a");
        mkdir(&live, "b");
        write_file(&live, "b/c", b"c");
        let mut top = dir(0o1777);
        top.record.uid = 5;
        top.record.gid = 6;
        let mut tree = Subtree::new(top);
        tree.add(0, b"n".to_vec(), dir(0o755));

        live.graft(tree, GraftPoint::Root).expect("graft");

        let check = |live: &LiveFs| {
            let root = live.getattr(InodeNo::ROOT).expect("root");
            assert_eq!(
                (root.record.perm, root.record.uid, root.record.gid),
                (0o1777, 5, 6)
            );
            assert_eq!(root.record.nlink, 3);
            assert!(matches!(lookup(live, "a"), Err(FsError::NotFound)));
            assert!(matches!(lookup(live, "b"), Err(FsError::NotFound)));
            assert!(lookup(live, "n").expect("n").record.kind == InodeKind::Directory);
            live.assert_consistent();
        };
        check(&live);
        close(live);
        check(&open(&store));
    }

    #[test]
    fn a_refused_graft_changes_nothing() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (_store, live) = new_store(tmp.path(), "store");
        write_file(&live, "f", b"f");
        let one = || Subtree::new(dir(0o755));
        for (path, expected) in [
            ("", FsError::InvalidArgument),
            ("/", FsError::InvalidArgument),
            ("../x", FsError::InvalidArgument),
            ("missing/x", FsError::NotFound),
            ("f/x", FsError::NotDirectory),
        ] {
            let result = live.graft(
                one(),
                GraftPoint::Path {
                    path: path.as_bytes(),
                    overwrite: true,
                },
            );
            assert_eq!(
                result.map_err(|e| e.to_string()),
                Err(expected.to_string()),
                "{path:?}"
            );
        }
        let mut duplicate = one();
        duplicate.add(0, b"same".to_vec(), dir(0o755));
        duplicate.add(0, b"same".to_vec(), dir(0o755));
        assert!(live.graft(duplicate, GraftPoint::Root).is_err());
        let not_a_dir = Subtree::new(file(BTreeMap::new(), 0));
        assert!(matches!(
            live.graft(not_a_dir, GraftPoint::Root),
            Err(FsError::NotDirectory)
        ));
        assert_eq!(read_file(&live, "f"), b"f");
        live.assert_consistent();
    }
}
