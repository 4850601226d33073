//! Loading the namespace from the metadata database on demand: the root at mount, an inode by
//! number (with the directories holding it, and those above them, up to the root) when a
//! lookup names it or the kernel asks for it, and a directory's entries with the inodes they
//! name when it is listed, before a change. Lookups and listings of a directory not listed
//! read the database without listing it (`LiveFs::lookup`, `LiveFs::opendir`).
//! Every walk here is a loop: users choose how deep the share is.
//!
//! What is loaded is what was last committed. That is what the share holds for it, because
//! nothing changes without being loaded first (an operation lists the directories it changes),
//! and nothing leaves memory but purged inodes and what the database holds exactly (`evict`):
//! a directory not listed has the entries the database has, and an inode not in memory the
//! record.

use std::collections::{BTreeMap, HashSet};

use super::error::{FsError, FsResult};
use super::namespace::{Namespace, Node, has_object};
use crate::format::inode::InodeKind;
use crate::id::InodeNo;
use crate::meta::namespace::NamespaceReader;
use crate::meta::{MetaError, MetaStore};

impl Namespace {
    /// The namespace of a mount: the root alone, plus the inodes to purge (committed with no
    /// name left: a crash while they were open but unlinked). Reads a few records, whatever the
    /// size of the share.
    /// `max_inodes` is the memory budget (see `evict`).
    pub fn open(meta: MetaStore, max_inodes: usize) -> FsResult<(Self, Vec<InodeNo>)> {
        let state = meta.mount_state()?;
        let reader = meta.read_namespace()?;
        let root = InodeNo::ROOT;
        let record = reader.inode(root)?.ok_or(inconsistent(root, "no root"))?;
        if record.kind != InodeKind::Directory {
            return Err(inconsistent(root, "the root is not a directory").into());
        }
        let node = Node::stored(
            root,
            record,
            root,
            reader.xattrs(root)?,
            reader.frozen(root)?,
        );
        let mut namespace = Namespace {
            nodes: std::iter::once((root, node)).collect(),
            next_inode: state.next_inode,
            meta,
            inode_count: state.inode_count,
            max_inodes,
            evict_above: max_inodes,
            clock: std::sync::atomic::AtomicU64::new(1),
            loads: 0,
            unlisted_leftovers: Vec::new(),
        };
        namespace.inode_count = namespace.inode_count.max(1);
        Ok((namespace, state.orphans))
    }

    /// Whether `dir` is listed (its entries are in memory); an error if it is not a directory.
    pub fn is_listed(&self, dir: InodeNo) -> FsResult<bool> {
        let node = self.node(dir)?;
        if !node.is_dir() {
            return Err(FsError::NotDirectory);
        }
        Ok(node.entries.is_some())
    }

    /// Makes `dir` listed: reads its entries and loads every inode they name that is not in
    /// memory yet (and first `dir` itself, by number, if need be). Nothing happens for a listed
    /// directory.
    pub fn list(&mut self, dir: InodeNo) -> FsResult<()> {
        self.list_loading(dir).map(drop)
    }

    /// [`Namespace::list`], returning the entries' inodes this listing brought into memory (in
    /// no particular order): before it, nothing below any of them was in memory either (the
    /// namespace's invariant), so the database holds each of their subtrees exactly.
    pub fn list_loading(&mut self, dir: InodeNo) -> FsResult<Vec<InodeNo>> {
        self.load(dir)?;
        if self.is_listed(dir)? {
            return Ok(Vec::new());
        }
        let reader = self.meta.read_namespace()?;
        let mut entries = BTreeMap::new();
        let mut loaded = Vec::new();
        for (name, child) in reader.entries(dir)? {
            if !self.nodes.contains_key(&child) {
                let stored = StoredInode::read(&reader, child)?;
                if !self.load_child(&reader, dir, child, stored)? {
                    continue;
                }
                loaded.push(child);
            }
            entries.insert(name, child);
        }
        self.node_mut(dir)?.entries = Some(entries);
        Ok(loaded)
    }

    /// [`Namespace::list`] from `listing`, read with no lock held: what the database held when no
    /// commit has changed it since (the caller's check), so it is what a listing now would
    /// read. An entry whose inode is in memory keeps that inode, as a listing does; a file with
    /// several links is loaded with the directories holding it, read now. Lists as usual if
    /// `dir` is not in memory or listed meanwhile. All the rest was done before the lock: the
    /// nodes are made and the names sorted, so that this costs a map insertion per inode (a
    /// directory of 200,000 files listed by a change kept every other request waiting 0.56 s
    /// when it was read and built here).
    pub fn list_read(&mut self, listing: StoredListing) -> FsResult<()> {
        let StoredListing { dir, names, inodes } = listing;
        if !self.nodes.contains_key(&dir) || self.is_listed(dir)? {
            return self.list(dir);
        }
        self.insert_children(dir, inodes)?;
        self.node_mut(dir)?.entries = Some(names);
        Ok(())
    }

    /// Puts up to `most` more of the inodes of `listing` in memory, its directory staying
    /// unlisted (as [`Namespace::load_entries`] leaves it): the part of
    /// [`Namespace::list_read`] that grows with the directory, for the caller to do a round at
    /// a time with the lock released between rounds. Nothing is put in memory once the
    /// directory is out of memory or listed meanwhile: the listing may be stale then. Returns
    /// whether the caller should go on (inodes are left, and nothing stopped it).
    pub fn list_read_round(&mut self, listing: &mut StoredListing, most: usize) -> FsResult<bool> {
        let dir = listing.dir;
        if !self.nodes.contains_key(&dir) || self.is_listed(dir)? {
            return Ok(false);
        }
        let round = listing
            .inodes
            .split_off(listing.inodes.len().saturating_sub(most));
        self.insert_children(dir, round)?;
        Ok(!listing.inodes.is_empty())
    }

    /// Puts in memory the inodes of a listing of `dir` that are not there yet.
    fn insert_children(
        &mut self,
        dir: InodeNo,
        inodes: Vec<(InodeNo, StoredChild)>,
    ) -> FsResult<()> {
        self.nodes.reserve(inodes.len());
        let mut reader = None;
        for (child, stored) in inodes {
            if self.nodes.contains_key(&child) {
                continue;
            }
            match stored {
                StoredChild::Ready(node) => self.insert_loaded(child, node),
                StoredChild::HardLink(stored) => {
                    // Reads more: the directories holding it.
                    let reader = match &reader {
                        Some(reader) => reader,
                        None => reader.insert(self.meta.read_namespace()?),
                    };
                    self.load_child(reader, dir, child, Some(stored))?;
                }
            }
        }
        Ok(())
    }

    /// Puts in memory the inodes `stored` names, entries of `dir` (in memory, not listed) read
    /// with `reader` or before it with no commit between, that are not in memory yet; `dir`
    /// stays unlisted. As a listing loads its entries, without the entries it does not need.
    pub fn load_entries(
        &mut self,
        reader: &NamespaceReader,
        dir: InodeNo,
        stored: Vec<(InodeNo, StoredInode)>,
    ) -> FsResult<()> {
        for (child, stored) in stored {
            if !self.nodes.contains_key(&child) {
                self.load_child(reader, dir, child, Some(stored))?;
            }
        }
        Ok(())
    }

    /// Brings `ino` into memory by number if it is not there (with the directories holding it
    /// and those above them): for an inode the kernel still knows from before it was loaded
    /// here. `NotFound` if the share has no such inode, or only one no entry names.
    pub fn load(&mut self, ino: InodeNo) -> FsResult<()> {
        if self.nodes.contains_key(&ino) {
            return Ok(());
        }
        let reader = self.meta.read_namespace()?;
        let record = reader.inode(ino)?.ok_or(FsError::NotFound)?;
        if record.kind == InodeKind::Directory {
            return self.load_dir_chain(&reader, ino);
        }
        let names = reader.names_of(ino)?;
        if names.is_empty() {
            return Err(FsError::NotFound);
        }
        for (holder, _) in &names {
            self.load_dir_chain(&reader, *holder)?;
        }
        let mut node = Node::stored(
            ino,
            record,
            InodeNo::ROOT,
            reader.xattrs(ino)?,
            reader.frozen(ino)?,
        );
        node.links = names.into_iter().map(|(holder, _)| holder).collect();
        self.insert_loaded(ino, node);
        Ok(())
    }

    /// The directories a freeze's capture will list: those in memory, not listed and thawed
    /// (never frozen, or changed below since), that the capture reaches from the root through
    /// listed thawed directories. Bounded by what is in memory.
    pub fn unlisted_thawed_dirs(&self) -> Vec<InodeNo> {
        let mut unlisted = Vec::new();
        let mut pending = vec![InodeNo::ROOT];
        while let Some(ino) = pending.pop() {
            let Some(node) = self.nodes.get(&ino) else {
                continue;
            };
            if node.frozen.is_some() || !node.is_dir() {
                continue;
            }
            match &node.entries {
                None => unlisted.push(ino),
                Some(entries) => pending.extend(entries.values().filter(|child| {
                    self.nodes
                        .get(child)
                        .is_some_and(|child| child.is_dir() && child.frozen.is_none())
                })),
            }
        }
        unlisted
    }

    /// Lists `top` and every directory below it (before a change that removes them all).
    pub fn list_subtree(&mut self, top: InodeNo) -> FsResult<()> {
        if !self.node(top)?.is_dir() {
            return Ok(());
        }
        let mut pending = vec![top];
        while let Some(dir) = pending.pop() {
            self.list(dir)?;
            for child in self.dir(dir)?.values() {
                if self.node(*child)?.is_dir() {
                    pending.push(*child);
                }
            }
        }
        Ok(())
    }

    /// Puts `child`, named in `dir` (in memory), in memory as the database holds it (`stored`,
    /// read with `reader` or before it with no commit between): false if the entry names no
    /// inode (damage, logged; the entry is left out, as a scan at mount used to).
    fn load_child(
        &mut self,
        reader: &NamespaceReader,
        dir: InodeNo,
        child: InodeNo,
        stored: Option<StoredInode>,
    ) -> FsResult<bool> {
        let Some(stored) = stored else {
            tracing::error!(%dir, %child, "directory entry names a missing inode; skipped");
            return Ok(false);
        };
        let node = match stored.into_child_of(child, dir) {
            StoredChild::Ready(node) => node,
            StoredChild::HardLink(stored) => {
                // A hard link: every directory holding it comes into memory, with its parents.
                let names = reader.names_of(child)?;
                for (holder, _) in &names {
                    self.load_dir_chain(reader, *holder)?;
                }
                let StoredInode {
                    record,
                    xattrs,
                    frozen,
                } = stored;
                let mut node = Node::stored(child, record, InodeNo::ROOT, xattrs, frozen);
                node.links = names.into_iter().map(|(holder, _)| holder).collect();
                node
            }
        };
        self.insert_loaded(child, node);
        Ok(true)
    }

    /// Loads directory `dir` by number if it is not in memory, and first every directory above
    /// it that is not (found through the `names` table), so that the invariant holds.
    fn load_dir_chain(&mut self, reader: &NamespaceReader, dir: InodeNo) -> FsResult<()> {
        let mut chain = Vec::new();
        let mut seen = HashSet::new();
        let mut at = dir;
        while !self.nodes.contains_key(&at) {
            if !seen.insert(at) {
                return Err(inconsistent(at, "the parents of a directory loop").into());
            }
            let record = reader
                .inode(at)?
                .ok_or(inconsistent(at, "a directory holding an entry is missing"))?;
            if record.kind != InodeKind::Directory {
                return Err(inconsistent(at, "an entry is held by a non-directory").into());
            }
            let parent = match reader.names_of(at)?.as_slice() {
                [(parent, _)] => *parent,
                _ => return Err(inconsistent(at, "a directory is not named once").into()),
            };
            chain.push((at, record, parent));
            at = parent;
        }
        for (ino, record, parent) in chain.into_iter().rev() {
            let node = Node::stored(
                ino,
                record,
                parent,
                reader.xattrs(ino)?,
                reader.frozen(ino)?,
            );
            self.insert_loaded(ino, node);
        }
        Ok(())
    }

    /// Adds a loaded inode. One without a frozen object thaws the directories above it, as it
    /// did when it changed (a store upgraded from format 3 has no frozen objects at all); the
    /// walk stops at once at a thawed directory, so this costs nothing in the usual case.
    fn insert_loaded(&mut self, ino: InodeNo, node: Node) {
        let thaw = has_object(&node) && node.frozen.is_none();
        self.nodes.insert(ino, node);
        self.loads += 1;
        if thaw {
            self.thaw(ino);
        }
    }
}

/// An inode as the database holds it: what loading it into memory reads.
pub struct StoredInode {
    record: crate::format::inode::InodeRecord,
    xattrs: crate::meta::XattrMap,
    frozen: Option<crate::format::object::ObjectId>,
}

impl StoredInode {
    /// Inode `ino` as an entry of `dir` loads it: its node when that entry is all it takes (a
    /// directory, or a file with one link); a file with several links as it was read, since
    /// the directories holding it must be read to load it.
    fn into_child_of(self, ino: InodeNo, dir: InodeNo) -> StoredChild {
        let is_dir = self.record.kind == InodeKind::Directory;
        if !is_dir && self.record.nlink != 1 {
            return StoredChild::HardLink(self);
        }
        let StoredInode {
            record,
            xattrs,
            frozen,
        } = self;
        let parent = if is_dir { dir } else { InodeNo::ROOT };
        let mut node = Node::stored(ino, record, parent, xattrs, frozen);
        if !is_dir {
            node.links = smallvec::smallvec![dir];
        }
        StoredChild::Ready(node)
    }

    pub(super) fn read(reader: &NamespaceReader, ino: InodeNo) -> Result<Option<Self>, MetaError> {
        let Some(record) = reader.inode(ino)? else {
            return Ok(None);
        };
        Ok(Some(StoredInode {
            record,
            xattrs: reader.xattrs(ino)?,
            frozen: reader.frozen(ino)?,
        }))
    }
}

/// A directory's entries as the database holds them, with the inodes they name made ready to
/// be put in memory, read and built with no lock of the share held: see
/// [`Namespace::list_read`]. An entry naming a missing inode is left out (damage, logged), as
/// a listing under the lock leaves it.
pub struct StoredListing {
    dir: InodeNo,
    /// The entries, by name.
    names: BTreeMap<Vec<u8>, InodeNo>,
    /// The inode each entry names, once.
    inodes: Vec<(InodeNo, StoredChild)>,
}

/// An inode named by a [`StoredListing`].
enum StoredChild {
    /// A directory, or a file with one link: its node, as a load would make it.
    Ready(Node),
    /// A file with several links, loaded with the other directories holding it.
    HardLink(StoredInode),
}

impl StoredListing {
    /// How many of the inodes it names are still to be put in memory.
    pub fn inodes_left(&self) -> usize {
        self.inodes.len()
    }

    pub fn read(reader: &NamespaceReader, dir: InodeNo) -> Result<Self, MetaError> {
        let mut names = Vec::new();
        let mut inodes = Vec::new();
        for (name, child) in reader.entries(dir)? {
            let Some(stored) = StoredInode::read(reader, child)? else {
                tracing::error!(%dir, %child, "directory entry names a missing inode; skipped");
                continue;
            };
            names.push((name, child));
            inodes.push((child, stored.into_child_of(child, dir)));
        }
        // The database gives the entries in name order: the map is built in one pass.
        Ok(StoredListing {
            dir,
            names: names.into_iter().collect(),
            inodes,
        })
    }
}

fn inconsistent(ino: InodeNo, what: &'static str) -> MetaError {
    MetaError::Inconsistent { ino, what }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use crate::id::InodeNo;
    use crate::live::xattr::{XattrFlags, XattrReply};
    use crate::live::{LiveFs, RenameMode};
    use crate::testing::{
        DEEP, chain, close, lookup, mkdir, new_store, on_small_stack, open, read_file, write_file,
    };
    use crate::tree_objects::TreeObjects;

    /// Everything the share shows through its operations, by path: inode number, record,
    /// extended attributes and, for files, content. Walked without recursion.
    pub(crate) fn describe(live: &LiveFs) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let mut pending = vec![(InodeNo::ROOT, String::new())];
        while let Some((dir, path)) = pending.pop() {
            let fh = live.opendir(dir).expect("opendir");
            let listing = live.handles.dir(fh).expect("listing");
            live.releasedir(fh);
            for entry in listing.iter() {
                if entry.name == b"." || entry.name == b".." {
                    continue;
                }
                let name = String::from_utf8(entry.name.clone()).expect("utf-8 names");
                let child_path = format!("{path}/{name}");
                let attr = live.lookup(dir, &entry.name).expect("lookup");
                assert_eq!(attr.ino, entry.ino, "readdir and lookup agree");
                let mut record = attr.record.clone();
                record.atime = Default::default();
                let xattrs = match live.listxattr(attr.ino, 1 << 16).expect("listxattr") {
                    XattrReply::Data(names) => names,
                    XattrReply::Size(_) => panic!("asked for the data"),
                };
                let content = if attr.record.kind == crate::format::inode::InodeKind::File {
                    read_file(live, &child_path)
                } else {
                    Vec::new()
                };
                out.insert(
                    child_path.clone(),
                    format!("{} {record:?} {xattrs:?} {content:?}", attr.ino),
                );
                if attr.record.kind == crate::format::inode::InodeKind::Directory {
                    pending.push((attr.ino, child_path));
                }
            }
        }
        out
    }

    fn loaded(live: &LiveFs) -> usize {
        live.tree.read().nodes.len()
    }

    /// A share of `dirs` directories of 10 files, each file with an extended attribute.
    pub(crate) fn populate(live: &LiveFs, dirs: usize) {
        for d in 0..dirs {
            mkdir(live, &format!("d{d}"));
            mkdir(live, &format!("d{d}/sub"));
            for f in 0..10 {
                let ino = write_file(live, &format!("d{d}/f{f}"), format!("{d}/{f}").as_bytes());
                live.setxattr(ino, b"user.n", &[f as u8], XattrFlags::Any)
                    .expect("setxattr");
            }
        }
    }

    /// A mount loads the root alone; each lookup loads what it passes, and what is loaded
    /// answers as the whole share did before the remount.
    #[test]
    fn a_mount_loads_the_root_alone_and_loading_gives_the_same_answers() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (path, live) = new_store(tmp.path(), "store");
        populate(&live, 20);
        let before = describe(&live);
        let inodes = live.tree.read().inode_count();
        assert_eq!(
            inodes,
            1 + 20 * 12,
            "the root, and each directory's sub and 10 files"
        );
        close(live);

        let live = open(&path);
        assert_eq!(loaded(&live), 1, "the root alone");
        assert_eq!(live.tree.read().inode_count(), inodes);
        assert!(read_file(&live, "d7/f3") == b"7/3");
        // The lookups read one entry each, and loaded d7 and f3 alone.
        assert_eq!(loaded(&live), 3);
        let listed = |live: &LiveFs| {
            live.tree
                .read()
                .nodes
                .values()
                .filter(|n| n.entries.is_some())
                .count()
        };
        assert_eq!(listed(&live), 0);
        live.assert_consistent();
        // Listings are read from the database too: every directory stays unlisted.
        assert_eq!(describe(&live), before);
        assert_eq!(listed(&live), 0);
        assert_eq!(loaded(&live), 1 + 20 * 12);
        live.assert_consistent();
        // A change lists the directory it changes, keeping what its lookups loaded.
        write_file(&live, "d7/new", b"new");
        assert_eq!(listed(&live), 1);
        live.assert_consistent();
        assert_eq!(read_file(&live, "d7/f3"), b"7/3");
        close(live);
    }

    /// A change to a directory bigger than a round puts its listing's inodes in memory a round
    /// at a time, and lists it as a listing under the lock would: every entry, with the inode
    /// it names. Rounds put nothing more in memory once the directory is listed by another.
    #[test]
    fn a_big_directory_is_listed_a_round_at_a_time() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (path, live) = new_store(tmp.path(), "store");
        let big = mkdir(&live, "big");
        let files = crate::live::LISTING_ROUND + 100;
        for i in 0..files {
            crate::testing::write_in(&live, big, format!("f{i}").as_bytes(), b"x");
        }
        let under_big = |live: &LiveFs| {
            let mut all = describe(live);
            all.retain(|path, _| path.starts_with("/big/"));
            all
        };
        let before = under_big(&live);
        close(live);

        let live = open(&path);
        lookup(&live, "big").expect("big");
        let reader = live.meta.read_namespace().expect("reader");
        let mut listing = super::StoredListing::read(&reader, big).expect("listing");
        assert!(
            live.tree
                .write()
                .list_read_round(&mut listing, 100)
                .expect("round")
        );
        assert_eq!(listing.inodes_left(), files - 100);
        assert!(
            !live.tree.read().is_listed(big).expect("dir"),
            "not listed yet"
        );
        live.tree.write().list(big).expect("listed by another");
        let loaded = live.tree.read().nodes.len();
        assert!(
            !live
                .tree
                .write()
                .list_read_round(&mut listing, 100)
                .expect("round")
        );
        assert_eq!(listing.inodes_left(), files - 100, "nothing taken");
        assert_eq!(live.tree.read().nodes.len(), loaded);
        close(live);

        let live = open(&path);
        write_file(&live, "big/new", b"new");
        let mut after = under_big(&live);
        assert!(after.remove("/big/new").is_some());
        assert_eq!(after, before);
        close(live);
    }

    /// A listing read before the write lock is taken is used only if no commit changed the
    /// database since: one read before a commit is read again. (The listing here is made stale
    /// by hand, an entry dropped, so that using it would show.)
    #[test]
    fn a_listing_read_before_a_commit_is_read_again() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (path, live) = new_store(tmp.path(), "store");
        populate(&live, 2);
        close(live);
        let live = open(&path);
        // Both directories in memory (entries of the root), neither listed.
        lookup(&live, "d0").expect("d0");
        let without_f3 = |dir: &str| {
            let dir = lookup(&live, dir).expect("dir").ino;
            let reader = live.meta.read_namespace().expect("reader");
            let mut listing = super::StoredListing::read(&reader, dir).expect("listing");
            let f3 = listing.names.remove(&b"f3"[..]);
            listing.inodes.retain(|(ino, _)| Some(*ino) != f3);
            (dir, live.changing_commits(), listing)
        };

        // With no commit between, what was read is what is listed: here, without f3.
        let (_, commits, listing) = without_f3("d1");
        live.list_locked(&mut live.tree.write(), commits, vec![listing])
            .expect("list");
        assert!(
            lookup(&live, "d1/f3").is_err(),
            "the listing given was used"
        );

        let (d0, commits, stale) = without_f3("d0");
        write_file(&live, "d1/new", b"a change elsewhere");
        live.commit_now().expect("commit");
        live.list_locked(&mut live.tree.write(), commits, vec![stale])
            .expect("list");
        live.tree.write().list(d0).expect("list");
        assert_eq!(read_file(&live, "d0/f3"), b"0/3", "read again, f3 is there");
        close(live);
    }

    /// An inode asked for by number before any lookup (the kernel may remember one) is loaded
    /// with the directories above it, and the namespace stays whole.
    #[test]
    fn an_inode_asked_for_by_number_is_loaded_with_its_parents() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (path, live) = new_store(tmp.path(), "store");
        let bottom = chain(&live, InodeNo::ROOT, b"c", DEEP);
        let leaf = crate::testing::write_in(&live, bottom, b"leaf", b"deep");
        close(live);

        let live = open(&path);
        let attr = on_small_stack(|| live.getattr(leaf)).expect("getattr by number");
        assert_eq!(attr.record.size, 4);
        assert_eq!(loaded(&live), DEEP + 2, "the chain, the leaf and the root");
        live.assert_consistent();
        assert!(matches!(
            live.getattr(InodeNo(1 << 30)),
            Err(crate::live::FsError::NotFound)
        ));
        close(live);
    }

    /// A hard link loads every directory holding it: links, nlink and the names in every
    /// directory stay right through unlinks and renames made before those directories are
    /// listed, and after the next remount.
    #[test]
    fn hard_links_across_directories_not_loaded_keep_their_bookkeeping() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (path, live) = new_store(tmp.path(), "store");
        populate(&live, 3);
        let f = lookup(&live, "d0/f0").expect("f0").ino;
        let d1 = lookup(&live, "d1/sub").expect("d1/sub").ino;
        let d2 = lookup(&live, "d2").expect("d2").ino;
        live.link(f, d1, b"link1").expect("link");
        live.link(f, d2, b"link2").expect("link");
        close(live);

        let live = open(&path);
        assert_eq!(lookup(&live, "d0/f0").expect("f0").record.nlink, 3);
        {
            let tree = live.tree.read();
            let mut links = tree.node(f).expect("f").links.to_vec();
            links.sort();
            let mut expected = vec![lookup(&live, "d0").expect("d0").ino, d2, d1];
            expected.sort();
            assert_eq!(links, expected, "every holder, listed or not");
            assert!(tree.nodes.contains_key(&d1), "d1/sub is in memory");
        }
        live.assert_consistent();
        // Unlink through d0 and rename d1/sub while neither d1 nor d1/sub was listed.
        live.unlink(lookup(&live, "d0").expect("d0").ino, b"f0")
            .expect("unlink");
        live.assert_consistent();
        let d1_dir = lookup(&live, "d1").expect("d1").ino;
        live.rename(d1_dir, b"sub", d2, b"moved", RenameMode::Replace)
            .expect("rename");
        live.assert_consistent();
        assert_eq!(lookup(&live, "d2/moved/link1").expect("link1").ino, f);
        assert_eq!(lookup(&live, "d2/link2").expect("link2").record.nlink, 2);
        let before = describe(&live);
        live.assert_consistent();
        close(live);

        let live = open(&path);
        assert_eq!(describe(&live), before);
        live.assert_consistent();
        live.unlink(d2, b"link2").expect("unlink");
        let moved = lookup(&live, "d2/moved").expect("moved").ino;
        live.unlink(moved, b"link1").expect("unlink the last");
        live.assert_consistent();
        close(live);
        let live = open(&path);
        assert!(lookup(&live, "d2/moved/link1").is_err());
        assert!(lookup(&live, "d2/link2").is_err());
        assert!(live.getattr(f).is_err(), "the inode is gone");
        close(live);
    }

    /// A file unlinked while open and committed so (then a crash: the handle is never
    /// released) is listed as an orphan, and purged at the next mount with its data.
    #[test]
    fn a_file_deleted_while_open_before_a_crash_is_purged_at_mount() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (path, live) = new_store(tmp.path(), "store");
        let ino = write_file(&live, "doomed", &[7; 3 * 4096]);
        write_file(&live, "kept", b"kept");
        let _never_released = live.open(ino, false, false).expect("open");
        live.unlink(InodeNo::ROOT, b"doomed").expect("unlink");
        live.commit_now().expect("commit");
        assert_eq!(live.meta.mount_state().expect("state").orphans, vec![ino]);
        let files = live.tree.read().inode_count();
        close(live);

        let live = open(&path);
        let state = live.meta.mount_state().expect("state");
        assert!(state.orphans.is_empty(), "purged and committed");
        let reader = live.meta.read_namespace().expect("reader");
        assert!(
            reader.inode(ino).expect("read").is_none(),
            "the record is gone"
        );
        assert_eq!(
            live.meta.count_blocks(ino).expect("blocks"),
            0,
            "and its data"
        );
        assert_eq!(live.tree.read().inode_count(), files - 1);
        assert!(read_file(&live, "kept") == b"kept");
        close(live);
    }

    /// A change committed deep in the share, then a remount before any freeze: the directories
    /// above it lost their persisted frozen objects in that commit, so the freeze encodes the
    /// whole path (a directory not listed is trusted by its own object) and nothing else.
    #[test]
    fn a_change_before_a_remount_thaws_every_directory_above_it() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (path, live) = new_store(tmp.path(), "store");
        populate(&live, 10);
        write_file(&live, "d3/sub/deep", b"first");
        let objects = TreeObjects::new(live.chunk_store());
        let first = live.freeze(&objects).expect("freeze");
        live.commit_now().expect("commit");
        drop(objects);
        close(live);

        let live = open(&path);
        write_file(&live, "d3/sub/deep", b"second");
        live.commit_now().expect("commit");
        close(live);

        let live = open(&path);
        let objects = TreeObjects::new(live.chunk_store());
        let second = live.freeze(&objects).expect("freeze");
        assert_eq!(second.encoded, 4, "deep, sub, d3 and the root");
        assert_ne!(second.root, first.root);
        assert!(
            loaded(&live) < 40,
            "the freeze loaded the changed path, not the share ({})",
            loaded(&live)
        );
        let tree_of = |frozen: &crate::live::Frozen| crate::history::tree::Tree {
            root: frozen.root,
            record: frozen.root_record.clone(),
        };
        let changes = crate::history::diff(&objects, &tree_of(&first), &tree_of(&second), None)
            .expect("diff");
        assert_eq!(changes.len(), 1, "only deep changed: {changes:?}");
        live.commit_now().expect("commit");
        drop(objects);
        close(live);
    }
}
