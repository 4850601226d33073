//! `.snapshots/.history`: the versions of every path, browsable with standard tools;
//! independent of FUSE, like [`view`](super::view).
//!
//! Layout:
//! - `.snapshots/.history/` is the history directory of the share root, and
//!   `.snapshots/.history/P/` that of the path `P`. A history directory lists one entry,
//!   [`VERSIONS_NAME`] (`@versions`); its children's history directories are reached by name
//!   (`P/C` for a name `C` that some snapshot holds below `P`) but not listed.
//! - `.snapshots/.history/P/@versions/` lists one entry per version of `P`, exactly the versions
//!   `history::log` finds, each named by the first snapshot that holds it. Every snapshot of a
//!   run names its version, though the listing shows only the first.
//! - A version is what that snapshot holds at the path (a file, a directory, a symlink, ...),
//!   read-only, with its own inode number and the snapshot's creation time as its mtime. Reads
//!   and listings are the snapshot view's: the entries of a version directory are the
//!   snapshot's own inodes, so everything below it works as under `.snapshots/NAME/`.
//!
//! Why a path and a version can never be confused: names of the share and snapshot names never
//! share a directory. A history directory holds names of the share (and `@versions`), a versions
//! directory snapshot names only. The one name a user could also give a file is `@versions`
//! itself, so in a history directory the names made of one or more `@` followed by `versions`
//! are escaped: a child named `@versions` is looked up as `@@versions`, a child `@@versions` as
//! `@@@versions`, and so on (see [`HistoryName`]). Every name in a history directory therefore
//! means exactly one thing, and every child of the share has a reachable history directory.
//!
//! Who sees what: the kernel checks only the attributes of the inodes it walks through, which
//! here are synthetic history directories, so this view checks the rest itself. A requester sees
//! the history of `P` in exactly the snapshots in which it could reach `P`: search permission on
//! the snapshot's root (its catalog record) and on every directory above `P` there
//! ([`Requester::may_search`]; root may always). A snapshot where it could not counts as one
//! without `P`. So a history directory exists for a requester only if it can reach some version
//! of its path, a versions directory lists only such versions, and a version is looked up,
//! listed, stat'ed and opened only if its requester could reach it in the snapshot it mirrors.
//! The kernel must not cache what one requester was shown for another: the FUSE adapter gives
//! every history inode a cache time of zero, so every path walk comes back here with its own
//! requester. (Reads through an open file are not checked again, as in POSIX.)
//!
//! Inode numbers (see [`view`](super::view) for the whole scheme): [`HISTORY_DIR`] is the root's
//! history directory; every other history directory, versions directory and version takes the
//! next number of a counter when first found and keeps it while mounted (a directory by its
//! parent and name, a versions directory by its history directory, a version by its versions
//! directory and first snapshot), so repeated lookups give the same inode. Nothing is forgotten
//! while mounted but the versions of a deleted snapshot, since the kernel may ask again for any
//! number it was given: memory grows with the inodes looked up here, each costing its name (not
//! its path, which under a deep tree is long), not with the share. Finding the versions of a
//! path costs one lookup per path component per snapshot, through a cache of decoded
//! directories, and reads no file data.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::Mutex;

use super::Snapshots;
use super::view::{
    Entries, GMT_DIR, HISTORY_DIR, SNAPSHOTS_DIR, SnapInode, SnapshotView, ViewError,
};
use crate::access::Requester;
use crate::format::catalog::SnapshotRecord;
use crate::format::inode::{InodeKind, Timestamp};
use crate::history::log::{Run, runs_where};
use crate::history::path::{canonical, components, join};
use crate::history::tree::{DirCache, Tree, resolve_where};
use crate::id::InodeNo;

/// The entry of every history directory that holds the versions of its path.
pub(crate) const VERSIONS_NAME: &[u8] = b"@versions";

/// What a name in a history directory stands for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HistoryName<'a> {
    /// [`VERSIONS_NAME`]: the versions of the directory's path.
    Versions,
    /// The history directory of the child with this name.
    Child(&'a [u8]),
}

impl<'a> HistoryName<'a> {
    /// Reads a name of a history directory. Names of the form `@…@versions` (one `@` or more)
    /// are the escaped ones: with one `@` it is [`VERSIONS_NAME`], with more it is the child
    /// named with one `@` less. Every other name is the child of that name.
    pub(crate) fn parse(name: &'a [u8]) -> HistoryName<'a> {
        let ats = name.iter().take_while(|&&b| b == b'@').count();
        match name.get(ats..) {
            Some(b"versions") if ats == 1 => HistoryName::Versions,
            Some(b"versions") if ats > 1 => HistoryName::Child(&name[1..]),
            _ => HistoryName::Child(name),
        }
    }
}

/// What an inode of the history area shows.
#[derive(Clone, Debug)]
pub enum HistoryInode {
    /// A history or versions directory; like `.snapshots` itself, it has no attributes of its
    /// own.
    Dir(InodeNo),
    /// A version (with its own inode number and mtime), or an inode inside a version directory.
    Snapshot(SnapInode),
}

/// What a history inode number stands for.
#[derive(Clone)]
enum Node {
    /// The history directory of the path of `parent` followed by `name` (the root's:
    /// [`HISTORY_DIR`], in [`SNAPSHOTS_DIR`], with no name). A node keeps its name, not its
    /// path: the paths of a walk down a deep tree would cost the square of its depth (a
    /// 20,000-level chain, 1.6 GB). [`Nodes::path`] rebuilds a path when it is needed.
    Dir { parent: InodeNo, name: Vec<u8> },
    /// The versions directory of the path of the history directory `dir`.
    Versions { dir: InodeNo },
    /// A version found in the versions directory `dir` (of its path): the inode of snapshot
    /// `number` (the first of the run) that it mirrors, shown with `mtime`, the snapshot's
    /// creation time.
    Version {
        number: u64,
        dir: InodeNo,
        mirrors: SnapInode,
        mtime: Timestamp,
    },
}

struct Nodes {
    by_ino: HashMap<InodeNo, Node>,
    /// (history directory, name) → the history directory of that child.
    dirs: HashMap<(InodeNo, Vec<u8>), InodeNo>,
    /// History directory → its versions directory.
    versions_dirs: HashMap<InodeNo, InodeNo>,
    /// (versions directory, first snapshot) → version.
    versions: HashMap<(InodeNo, u64), InodeNo>,
    /// The next free number. Counting up from 2^62 + 4 (after `.snapshots/.gmt`) cannot reach
    /// the snapshot inodes at 2^63 within the life of a mount.
    next: u64,
}

impl Nodes {
    fn allocate(&mut self, node: Node) -> InodeNo {
        let ino = InodeNo(self.next);
        self.next += 1;
        self.by_ino.insert(ino, node);
        ino
    }

    /// The canonical path (`/`, `/a/b`) of the history directory `dir`, from the names of the
    /// directories above it. Every directory's parent was numbered before it and directories
    /// are never forgotten, so the walk up ends at [`HISTORY_DIR`]; `None` if `dir` is not a
    /// history directory.
    fn path(&self, dir: InodeNo) -> Option<Vec<u8>> {
        let mut names = Vec::new();
        let mut at = dir;
        while at != HISTORY_DIR {
            let Some(Node::Dir { parent, name }) = self.by_ino.get(&at) else {
                return None;
            };
            names.push(name.as_slice());
            at = *parent;
        }
        Some(canonical(&names.into_iter().rev().collect::<Vec<_>>()))
    }
}

/// The history view of every path.
pub struct HistoryView {
    /// Replaced by a follower as checkpoints arrive (`switch_to`).
    snapshots: ArcSwap<Snapshots>,
    directories: DirCache,
    nodes: Mutex<Nodes>,
}

impl HistoryView {
    pub fn new(snapshots: Arc<Snapshots>) -> Self {
        let root = Node::Dir {
            parent: SNAPSHOTS_DIR,
            name: Vec::new(),
        };
        HistoryView {
            snapshots: ArcSwap::new(snapshots),
            directories: DirCache::default(),
            nodes: Mutex::new(Nodes {
                by_ino: HashMap::from([(HISTORY_DIR, root)]),
                dirs: HashMap::new(),
                versions_dirs: HashMap::new(),
                versions: HashMap::new(),
                next: GMT_DIR.0 + 1,
            }),
        }
    }

    /// Shows a newer state of the same share's snapshots from now on (a follower's next
    /// checkpoint). The numbers handed out stay: a path's history is the same path's, and a
    /// version of a snapshot that is gone reads as `ENOENT`.
    pub fn switch_to(&self, snapshots: Arc<Snapshots>) {
        self.snapshots.store(snapshots);
    }

    /// The node `ino` stands for.
    fn node(&self, ino: InodeNo) -> Result<Node, ViewError> {
        let node = self
            .nodes
            .lock()
            .by_ino
            .get(&ino)
            .cloned()
            .ok_or(ViewError::NotFound)?;
        // Snapshots are deleted by commands and by retention alike: a version first found in a
        // deleted one is forgotten when it is next asked for.
        if let Node::Version { number, .. } = node
            && self.snapshots.load().by_number(number).is_none()
        {
            self.forget_snapshot(number);
            return Err(ViewError::NotFound);
        }
        Ok(node)
    }

    /// The node `ino` stands for, if `who` may reach it: a version only if `who` could reach
    /// its path in the snapshot it mirrors (history and versions directories are checked when
    /// they are looked up, and show nothing themselves).
    fn node_for(&self, ino: InodeNo, who: &Requester) -> Result<Node, ViewError> {
        let node = self.node(ino)?;
        if let Node::Version { number, dir, .. } = &node {
            let (_, record) = self
                .snapshots
                .load()
                .by_number(*number)
                .ok_or(ViewError::NotFound)?;
            let Node::Versions { dir } = self.node(*dir)? else {
                return Err(ViewError::NotFound);
            };
            if !self.reachable(who, &record, &self.path(dir)?)? {
                return Err(ViewError::NotFound);
            }
        }
        Ok(node)
    }

    /// Whether `who` could reach `path` in the snapshot `record`.
    fn reachable(
        &self,
        who: &Requester,
        record: &SnapshotRecord,
        path: &[u8],
    ) -> Result<bool, ViewError> {
        let names = components(path)?;
        let tree = Tree::of_snapshot(record);
        let snapshots = self.snapshots.load();
        let objects = snapshots.objects();
        let may_search = |dir: &_| who.may_search(dir);
        Ok(resolve_where(objects, &self.directories, &tree, &names, &may_search)?.is_some())
    }

    pub fn inode(&self, ino: InodeNo, who: &Requester) -> Result<HistoryInode, ViewError> {
        Ok(match self.node_for(ino, who)? {
            Node::Dir { .. } | Node::Versions { .. } => HistoryInode::Dir(ino),
            Node::Version {
                dir,
                mirrors,
                mtime,
                ..
            } => HistoryInode::Snapshot(shown(ino, dir, mirrors, mtime)),
        })
    }

    /// Looks `name` up in a history directory, a versions directory (by the rules in the module
    /// documentation) or a version directory.
    pub fn lookup(
        &self,
        view: &SnapshotView,
        parent: InodeNo,
        name: &[u8],
        who: &Requester,
    ) -> Result<HistoryInode, ViewError> {
        match self.node_for(parent, who)? {
            Node::Version { mirrors, .. } => {
                Ok(HistoryInode::Snapshot(view.lookup(mirrors.ino, name)?))
            }
            Node::Versions { dir } => {
                let path = self.path(dir)?;
                let snapshots = self.snapshots.load().list();
                let number = snapshots
                    .iter()
                    .find(|(snapshot, _)| snapshot.as_bytes() == name)
                    .map(|(_, record)| record.number)
                    .ok_or(ViewError::NotFound)?;
                let run = self
                    .runs(&snapshots, &path, who)?
                    .into_iter()
                    .find(|run| (run.first.number..=run.last).contains(&number))
                    .ok_or(ViewError::NotFound)?;
                Ok(HistoryInode::Snapshot(self.version(view, parent, run)))
            }
            Node::Dir { .. } => match HistoryName::parse(name) {
                HistoryName::Versions => Ok(HistoryInode::Dir(self.versions_dir(parent))),
                HistoryName::Child(child) => {
                    let path = join(&self.path(parent)?, child);
                    if self
                        .runs(&self.snapshots.load().list(), &path, who)?
                        .is_empty()
                    {
                        return Err(ViewError::NotFound);
                    }
                    Ok(HistoryInode::Dir(self.history_dir(parent, child)))
                }
            },
        }
    }

    /// The entries of a history directory (its versions directory), of a versions directory
    /// (the versions `who` may reach) or of a version directory (the snapshot's), with the
    /// directory's parent for `..`.
    pub fn list(
        &self,
        view: &SnapshotView,
        ino: InodeNo,
        who: &Requester,
    ) -> Result<(InodeNo, Entries), ViewError> {
        match self.node_for(ino, who)? {
            Node::Dir { parent, .. } => {
                let versions = self.versions_dir(ino);
                let entry = (VERSIONS_NAME.to_vec(), versions, InodeKind::Directory);
                Ok((parent, vec![entry]))
            }
            Node::Versions { dir } => {
                let path = self.path(dir)?;
                let snapshots = self.snapshots.load().list();
                let entries = self
                    .runs(&snapshots, &path, who)?
                    .into_iter()
                    .map(|run| {
                        let name = run.version.snapshot.clone().into_bytes();
                        let version = self.version(view, ino, run);
                        (name, version.ino, version.record.kind)
                    })
                    .collect();
                Ok((dir, entries))
            }
            Node::Version { dir, mirrors, .. } => Ok((dir, view.list(mirrors.ino)?)),
        }
    }

    /// Reads a version's data through the snapshot view. Not checked against a requester:
    /// whoever opened the version was (as POSIX checks permissions at open, not at read).
    pub fn read(
        &self,
        view: &SnapshotView,
        ino: InodeNo,
        offset: u64,
        len: u32,
        block_size: u32,
    ) -> Result<Vec<u8>, ViewError> {
        match self.node(ino)? {
            Node::Version { mirrors, .. } => view.read(mirrors.ino, offset, len, block_size),
            Node::Dir { .. } | Node::Versions { .. } => Err(ViewError::NotFound),
        }
    }

    /// Forgets the versions first found in a deleted snapshot (the next listing names them by
    /// the next snapshot of their run, if any is left).
    fn forget_snapshot(&self, number: u64) {
        let mut nodes = self.nodes.lock();
        nodes
            .by_ino
            .retain(|_, node| !matches!(node, Node::Version { number: n, .. } if *n == number));
        nodes.versions.retain(|(_, first), _| *first != number);
    }

    /// The versions of `path` in `snapshots` as `who` sees them.
    fn runs(
        &self,
        snapshots: &[(String, SnapshotRecord)],
        path: &[u8],
        who: &Requester,
    ) -> Result<Vec<Run>, ViewError> {
        let names = components(path)?;
        let current = self.snapshots.load();
        let objects = current.objects();
        let may_search = |dir: &_| who.may_search(dir);
        Ok(runs_where(
            objects,
            &self.directories,
            snapshots,
            &names,
            &may_search,
        )?)
    }

    /// The path of the history directory `dir`.
    fn path(&self, dir: InodeNo) -> Result<Vec<u8>, ViewError> {
        self.nodes.lock().path(dir).ok_or(ViewError::NotFound)
    }

    /// The history directory of the child `name` of the history directory `parent`, numbered
    /// on first sight.
    fn history_dir(&self, parent: InodeNo, name: &[u8]) -> InodeNo {
        let mut nodes = self.nodes.lock();
        let key = (parent, name.to_vec());
        if let Some(ino) = nodes.dirs.get(&key) {
            return *ino;
        }
        let ino = nodes.allocate(Node::Dir {
            parent,
            name: key.1.clone(),
        });
        nodes.dirs.insert(key, ino);
        ino
    }

    /// The versions directory of the history directory `dir`, numbered on first sight.
    fn versions_dir(&self, dir: InodeNo) -> InodeNo {
        let mut nodes = self.nodes.lock();
        if let Some(ino) = nodes.versions_dirs.get(&dir) {
            return *ino;
        }
        let ino = nodes.allocate(Node::Versions { dir });
        nodes.versions_dirs.insert(dir, ino);
        ino
    }

    /// The version inode of `run` in the versions directory `dir`, numbered on first sight.
    fn version(&self, view: &SnapshotView, dir: InodeNo, run: Run) -> SnapInode {
        let number = run.first.number;
        let mirrors = view.adopt(number, dir, &run.entry);
        let mtime = run.first.created;
        let mut nodes = self.nodes.lock();
        let ino = match nodes.versions.get(&(dir, number)) {
            Some(ino) => *ino,
            None => {
                let ino = nodes.allocate(Node::Version {
                    number,
                    dir,
                    mirrors: mirrors.clone(),
                    mtime,
                });
                nodes.versions.insert((dir, number), ino);
                ino
            }
        };
        shown(ino, dir, mirrors, mtime)
    }
}

/// A snapshot inode as a version shows it: its own number, its versions directory as parent,
/// and the snapshot's creation time as mtime.
fn shown(ino: InodeNo, dir: InodeNo, mirrors: SnapInode, mtime: Timestamp) -> SnapInode {
    let mut inode = mirrors;
    inode.ino = ino;
    inode.parent = dir;
    inode.record.mtime = mtime;
    inode
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::inode::InodeKind;
    use crate::history::fixture::Fixture;
    use crate::snapshot::DeleteMode;
    use crate::snapshot::view::{Area, area};

    const NOBODY: Requester = Requester {
        uid: 65534,
        gid: 65534,
        groups: Vec::new(),
        cap_fsetid: false,
    };

    struct Views {
        f: Fixture,
        view: SnapshotView,
        history: HistoryView,
    }

    impl Views {
        fn new(f: Fixture) -> Self {
            Views {
                view: SnapshotView::new(f.snapshots.clone()),
                history: HistoryView::new(f.snapshots.clone()),
                f,
            }
        }

        fn lookup_as(
            &self,
            who: &Requester,
            parent: InodeNo,
            name: &str,
        ) -> Result<HistoryInode, ViewError> {
            self.history
                .lookup(&self.view, parent, name.as_bytes(), who)
        }

        fn lookup(&self, parent: InodeNo, name: &str) -> Result<HistoryInode, ViewError> {
            self.lookup_as(&Requester::ROOT, parent, name)
        }

        /// The history directory of `path`, looked up name by name as `who`.
        fn dir_as(&self, who: &Requester, path: &str) -> Result<InodeNo, ViewError> {
            let mut dir = HISTORY_DIR;
            for name in path.split('/').filter(|n| !n.is_empty()) {
                dir = match self.lookup_as(who, dir, name)? {
                    HistoryInode::Dir(ino) => ino,
                    other => panic!("{path}: {other:?}"),
                };
            }
            Ok(dir)
        }

        fn dir(&self, path: &str) -> InodeNo {
            self.dir_as(&Requester::ROOT, path).expect(path)
        }

        /// The versions directory of `path`.
        fn versions(&self, path: &str) -> InodeNo {
            match self.lookup(self.dir(path), "@versions") {
                Ok(HistoryInode::Dir(ino)) => ino,
                other => panic!("{path}/@versions: {other:?}"),
            }
        }

        fn version(&self, dir: InodeNo, snapshot: &str) -> SnapInode {
            match self.lookup(dir, snapshot) {
                Ok(HistoryInode::Snapshot(inode)) => inode,
                other => panic!("{snapshot}: {other:?}"),
            }
        }

        fn names_as(&self, who: &Requester, dir: InodeNo) -> Vec<String> {
            let (_, entries) = self.history.list(&self.view, dir, who).unwrap();
            entries
                .into_iter()
                .map(|(name, _, _)| String::from_utf8(name).unwrap())
                .collect()
        }

        fn names(&self, dir: InodeNo) -> Vec<String> {
            self.names_as(&Requester::ROOT, dir)
        }

        fn read(&self, ino: InodeNo) -> Vec<u8> {
            self.history
                .read(&self.view, ino, 0, 1 << 20, 4096)
                .unwrap()
        }
    }

    /// `/docs/report.txt`: v1 in s1 and s2, v2 in s3, absent in s4, v3 in s5.
    fn report_history() -> Views {
        let f = Fixture::new();
        f.mkdir("/docs");
        f.write("/docs/report.txt", b"v1");
        f.snapshot("s1");
        f.write("/elsewhere", b"x");
        f.snapshot("s2");
        f.write("/docs/report.txt", b"v2");
        f.snapshot("s3");
        f.unlink("/docs/report.txt");
        f.snapshot("s4");
        f.write("/docs/report.txt", b"v3");
        f.snapshot("s5");
        Views::new(f)
    }

    #[test]
    fn a_versions_directory_lists_each_version_once() {
        let v = report_history();
        let report = v.versions("/docs/report.txt");
        assert_eq!(v.names(v.dir("/docs/report.txt")), ["@versions"]);
        assert_eq!(v.names(report), ["s1", "s3", "s5"]);
        let (parent, entries) = v.history.list(&v.view, report, &Requester::ROOT).unwrap();
        assert_eq!(parent, v.dir("/docs/report.txt"));
        for (name, ino, kind) in entries {
            let name = String::from_utf8(name).unwrap();
            let version = v.version(report, &name);
            assert_eq!(version.ino, ino, "listing and lookup agree");
            assert_eq!(kind, InodeKind::File);
            assert_eq!(area(ino), Area::History);
            let created = v.f.snapshots.get(&name).unwrap().created;
            assert_eq!(version.record.mtime, created);
        }
        assert_eq!(v.read(v.version(report, "s1").ino), b"v1");
        assert_eq!(v.read(v.version(report, "s3").ino), b"v2");
        assert_eq!(v.read(v.version(report, "s5").ino), b"v3");
        assert_eq!(
            v.version(report, "s2").ino,
            v.version(report, "s1").ino,
            "a later snapshot of a run names the same version"
        );
        assert!(matches!(v.lookup(report, "s4"), Err(ViewError::NotFound)));
        assert!(matches!(
            v.lookup(report, "nothing"),
            Err(ViewError::NotFound)
        ));
        assert_eq!(
            v.versions("/docs/report.txt"),
            report,
            "stable inode numbers"
        );
    }

    #[test]
    fn version_directories_show_the_snapshot() {
        let v = report_history();
        let docs = v.versions("/docs");
        assert_eq!(v.names(docs), ["s1", "s3", "s4", "s5"]);
        let s4 = v.version(docs, "s4");
        assert_eq!(s4.record.kind, InodeKind::Directory);
        let (parent, entries) = v.history.list(&v.view, s4.ino, &Requester::ROOT).unwrap();
        assert_eq!(parent, docs);
        assert!(entries.is_empty(), "the report was deleted in s4");
        let s3 = v.version(docs, "s3");
        let (_, entries) = v.history.list(&v.view, s3.ino, &Requester::ROOT).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(area(entries[0].1), Area::Snapshot { number: 3 });
        let Ok(HistoryInode::Snapshot(report)) = v.lookup(s3.ino, "report.txt") else {
            panic!("report.txt in the s3 version of /docs");
        };
        assert_eq!(report.ino, entries[0].1, "the snapshot's own inode");
        assert_eq!(v.view.read(report.ino, 0, 100, 4096).unwrap(), b"v2");
    }

    #[test]
    fn the_root_history_lists_every_state_of_the_share() {
        let v = report_history();
        assert_eq!(v.names(HISTORY_DIR), ["@versions"]);
        let (parent, _) = v
            .history
            .list(&v.view, HISTORY_DIR, &Requester::ROOT)
            .unwrap();
        assert_eq!(parent, SNAPSHOTS_DIR);
        let root = v.versions("/");
        assert_eq!(v.names(root), ["s1", "s2", "s3", "s4", "s5"]);
        let s1 = v.version(root, "s1");
        let (_, entries) = v.history.list(&v.view, s1.ino, &Requester::ROOT).unwrap();
        assert_eq!(entries[0].0, b"docs");
    }

    #[test]
    fn a_path_named_like_a_snapshot_is_never_a_version() {
        let f = Fixture::new();
        f.write("/s1", b"a file named like a snapshot");
        f.mkdir("/docs");
        f.write("/docs/s1", b"another");
        f.snapshot("s1");
        let v = Views::new(f);
        let file = v.dir("/s1");
        assert_ne!(file, HISTORY_DIR);
        let versions = v.versions("/s1");
        assert_eq!(v.names(versions), ["s1"]);
        let version = v.version(versions, "s1");
        assert_eq!(
            version.record.kind,
            InodeKind::File,
            "the file, not the root"
        );
        assert_eq!(v.read(version.ino), b"a file named like a snapshot");
        assert_eq!(
            v.version(v.versions("/"), "s1").record.kind,
            InodeKind::Directory
        );
        assert_eq!(
            v.read(v.version(v.versions("/docs/s1"), "s1").ino),
            b"another"
        );
    }

    #[test]
    fn a_child_named_like_the_versions_directory_is_escaped() {
        assert_eq!(HistoryName::parse(b"@versions"), HistoryName::Versions);
        assert_eq!(
            HistoryName::parse(b"@@versions"),
            HistoryName::Child(b"@versions")
        );
        assert_eq!(
            HistoryName::parse(b"@@@versions"),
            HistoryName::Child(b"@@versions")
        );
        for plain in [
            &b"versions"[..],
            b"@",
            b"@@",
            b"@version",
            b"@versionsx",
            b"x@versions",
        ] {
            assert_eq!(HistoryName::parse(plain), HistoryName::Child(plain));
        }

        let f = Fixture::new();
        f.write("/@versions", b"a file named like the versions directory");
        f.mkdir("/@@versions");
        f.snapshot("s1");
        let v = Views::new(f);
        let file = v.version(v.versions("/@@versions"), "s1");
        assert_eq!(
            v.read(file.ino),
            b"a file named like the versions directory"
        );
        let dir = v.version(v.versions("/@@@versions"), "s1");
        assert_eq!(dir.record.kind, InodeKind::Directory);
        assert_eq!(
            v.version(v.versions("/"), "s1").record.kind,
            InodeKind::Directory,
            "@versions of the root is still the root's versions"
        );
    }

    #[test]
    fn versions_are_reachable_only_through_searchable_directories() {
        let f = Fixture::new();
        f.mkdir("/private");
        f.write("/private/f", b"secret");
        f.chmod("/private", 0o700);
        f.mkdir("/open");
        f.write("/open/g", b"public");
        f.snapshot("s1");
        f.chmod("/private", 0o755);
        f.snapshot("s2");
        f.chmod("/private", 0o700);
        f.chmod("/", 0o700);
        f.snapshot("s3");
        let v = Views::new(f);

        // Root sees everything: /private/f is one version held by s1, s2 and s3.
        let versions = v.versions("/private/f");
        assert_eq!(v.names(versions), ["s1"]);

        // Nobody could reach /private/f in s2 only (s1: /private is 0700; s3: the root is).
        let dir = v.dir_as(&NOBODY, "/private/f").expect("reachable in s2");
        let Ok(HistoryInode::Dir(versions)) = v.lookup_as(&NOBODY, dir, "@versions") else {
            panic!("a versions directory");
        };
        assert_eq!(v.names_as(&NOBODY, versions), ["s2"]);
        assert!(matches!(
            v.lookup_as(&NOBODY, versions, "s1"),
            Err(ViewError::NotFound)
        ));
        let Ok(HistoryInode::Snapshot(s2)) = v.lookup_as(&NOBODY, versions, "s2") else {
            panic!("the s2 version");
        };
        assert_eq!(v.read(s2.ino), b"secret");

        // The version root found (first in s1) is not nobody's to reach, by any operation.
        let s1 = v.version(v.versions("/private/f"), "s1");
        assert!(matches!(
            v.history.inode(s1.ino, &NOBODY),
            Err(ViewError::NotFound)
        ));
        assert!(v.history.inode(s1.ino, &Requester::ROOT).is_ok());
        let private = v.version(v.versions("/private"), "s1");
        assert!(
            v.history.inode(private.ino, &NOBODY).is_ok(),
            "the root was 0755 in s1"
        );
        let private_in_s3 = v.version(v.versions("/private"), "s3");
        assert_ne!(
            private_in_s3.ino, private.ino,
            "another mode, another version"
        );
        assert!(matches!(
            v.history.list(&v.view, private_in_s3.ino, &NOBODY),
            Err(ViewError::NotFound)
        ));
        assert!(matches!(
            v.lookup_as(&NOBODY, private_in_s3.ino, "f"),
            Err(ViewError::NotFound)
        ));

        // The owner may search its own directory; a group member or another user may not.
        let owner_only = Fixture::new();
        owner_only.mkdir("/home");
        owner_only.mkdir("/home/alice");
        owner_only.write("/home/alice/notes", b"mine");
        owner_only.chown("/home/alice", 1000, 100);
        owner_only.chmod("/home/alice", 0o710);
        owner_only.snapshot("s");
        let v = Views::new(owner_only);
        let user = |uid, gid, groups: &[u32]| Requester {
            uid,
            gid,
            groups: groups.to_vec(),
            cap_fsetid: false,
        };
        assert!(
            v.dir_as(&user(1000, 1000, &[]), "/home/alice/notes")
                .is_ok()
        );
        assert!(
            v.dir_as(&user(1001, 7, &[100]), "/home/alice/notes")
                .is_ok()
        );
        assert!(matches!(
            v.dir_as(&user(1001, 7, &[]), "/home/alice/notes"),
            Err(ViewError::NotFound)
        ));
        assert!(v.dir_as(&user(1001, 7, &[]), "/home/alice").is_ok());
    }

    #[test]
    fn deleting_a_snapshot_moves_its_versions_on() {
        let v = report_history();
        let report = v.versions("/docs/report.txt");
        let old = v.version(report, "s1").ino;
        v.f.snapshots.delete("s1", DeleteMode::Now).unwrap();
        assert!(matches!(
            v.history.inode(old, &Requester::ROOT),
            Err(ViewError::NotFound)
        ));
        assert_eq!(v.names(report), ["s2", "s3", "s5"]);
        let s2 = v.version(report, "s2");
        assert_ne!(s2.ino, old);
        assert_eq!(v.read(s2.ino), b"v1");
    }

    #[test]
    fn a_walk_down_a_deep_tree_keeps_names_not_paths() {
        use crate::testing::{chain, write_in};
        // Deep enough to show how memory grows; each lookup resolves its path from the root
        // in every snapshot, so a deeper walk only takes longer.
        const DEPTH: usize = 2_000;
        let f = Fixture::new();
        let bottom = chain(&f.live, InodeNo::ROOT, b"dir", DEPTH);
        write_in(&f.live, bottom, b"leaf", b"deep");
        f.snapshot("s");
        let v = Views::new(f);

        let deepest = (0..DEPTH).fold(HISTORY_DIR, |dir, level| match v.lookup(dir, "dir") {
            Ok(HistoryInode::Dir(ino)) => ino,
            other => panic!("level {level}: {other:?}"),
        });
        let leaf = match v.lookup(deepest, "leaf") {
            Ok(HistoryInode::Dir(ino)) => ino,
            other => panic!("leaf: {other:?}"),
        };
        let versions = match v.lookup(leaf, "@versions") {
            Ok(HistoryInode::Dir(ino)) => ino,
            other => panic!("@versions: {other:?}"),
        };
        assert_eq!(v.read(v.version(versions, "s").ino), b"deep");

        let nodes = v.history.nodes.lock();
        assert_eq!(nodes.path(deepest), Some("/dir".repeat(DEPTH).into_bytes()));
        let stored: usize = nodes
            .by_ino
            .values()
            .map(|node| match node {
                Node::Dir { name, .. } => name.len(),
                _ => 0,
            })
            .chain(nodes.dirs.keys().map(|(_, name)| name.len()))
            .sum();
        assert_eq!(
            stored,
            2 * (3 * DEPTH + 4),
            "each directory keeps its name twice, never its path"
        );
    }
}
