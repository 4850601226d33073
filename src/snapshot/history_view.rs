//! `.snapshots/.history`: the versions of every path, browsable with standard tools;
//! independent of FUSE, like [`view`](super::view).
//!
//! - `.snapshots/.history/` is the history directory of the share root, and
//!   `.snapshots/.history/P/` that of the path `P`. A history directory lists one entry per
//!   version of its path, exactly the versions `history::log` finds, each named by the first
//!   snapshot that holds it.
//! - A version is what that snapshot holds at the path (a file, a directory, a symlink, ...),
//!   read-only, with its own inode number and the snapshot's creation time as its mtime. Reads
//!   and listings are the snapshot view's: the entries of a version directory are the
//!   snapshot's own inodes, so everything below it works as under `.snapshots/NAME/`.
//!
//! Lookup rule: in the history directory of `P`, the name `N` is
//! 1. the version of `P` held by the snapshot named `N`, if there is one and it holds `P`
//!    (every snapshot of a run names its version, though the listing shows only the first);
//! 2. otherwise the history directory of `P/N`, if any snapshot holds `P/N`;
//! 3. otherwise absent.
//!
//! So a child of `P` whose name is the name of a snapshot holding `P` has no reachable history
//! directory; snapshot names cannot start with `.`, which keeps dot files clear of this.
//!
//! Inode numbers (see [`view`](super::view) for the whole scheme): [`HISTORY_DIR`] is the root's
//! history directory; every other history directory and version takes the next number of a
//! counter when first found and keeps it while mounted (a directory by path, a version by its
//! history directory and first snapshot), so repeated lookups give the same inode. Nothing is
//! forgotten while mounted but the versions of a deleted snapshot, since the kernel may ask again
//! for any number it was given: memory grows with the paths looked up here, not with the share.
//! Finding the versions of a path costs one lookup per path component per snapshot, through a
//! cache of decoded directories, and reads no file data.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use super::Snapshots;
use super::view::{Entries, HISTORY_DIR, SNAPSHOTS_DIR, SnapInode, SnapshotView, ViewError};
use crate::format::catalog::SnapshotRecord;
use crate::format::inode::Timestamp;
use crate::history::log::{Run, runs};
use crate::history::path::{components, join};
use crate::history::tree::DirCache;
use crate::id::InodeNo;

/// What an inode of the history area shows.
#[derive(Clone, Debug)]
pub enum HistoryInode {
    /// A history directory; like `.snapshots` itself, it has no attributes of its own.
    Dir(InodeNo),
    /// A version (with its own inode number and mtime), or an inode inside a version directory.
    Snapshot(SnapInode),
}

/// What a history inode number stands for.
#[derive(Clone)]
enum Node {
    /// The history directory of `path` (canonical: `/`, `/a/b`), found in `parent`.
    Dir { path: Vec<u8>, parent: InodeNo },
    /// A version found in the history directory `dir`: the inode of snapshot `number` (the
    /// first of the run) that it mirrors, shown with `mtime`, the snapshot's creation time.
    Version {
        number: u64,
        dir: InodeNo,
        mirrors: SnapInode,
        mtime: Timestamp,
    },
}

struct Nodes {
    by_ino: HashMap<InodeNo, Node>,
    dirs: HashMap<Vec<u8>, InodeNo>,
    /// (history directory, first snapshot) → version.
    versions: HashMap<(InodeNo, u64), InodeNo>,
    /// The next free number. Counting up from 2^62 + 3 cannot reach the snapshot inodes at
    /// 2^63 within the life of a mount.
    next: u64,
}

impl Nodes {
    fn allocate(&mut self, node: Node) -> InodeNo {
        let ino = InodeNo(self.next);
        self.next += 1;
        self.by_ino.insert(ino, node);
        ino
    }
}

/// The history view of every path.
pub struct HistoryView {
    snapshots: Arc<Snapshots>,
    directories: DirCache,
    nodes: Mutex<Nodes>,
}

impl HistoryView {
    pub fn new(snapshots: Arc<Snapshots>) -> Self {
        let root = Node::Dir {
            path: b"/".to_vec(),
            parent: SNAPSHOTS_DIR,
        };
        HistoryView {
            snapshots,
            directories: DirCache::default(),
            nodes: Mutex::new(Nodes {
                by_ino: HashMap::from([(HISTORY_DIR, root)]),
                dirs: HashMap::from([(b"/".to_vec(), HISTORY_DIR)]),
                versions: HashMap::new(),
                next: HISTORY_DIR.0 + 1,
            }),
        }
    }

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
            && self.snapshots.by_number(number).is_none()
        {
            self.forget_snapshot(number);
            return Err(ViewError::NotFound);
        }
        Ok(node)
    }

    pub fn inode(&self, ino: InodeNo) -> Result<HistoryInode, ViewError> {
        Ok(match self.node(ino)? {
            Node::Dir { .. } => HistoryInode::Dir(ino),
            Node::Version {
                dir,
                mirrors,
                mtime,
                ..
            } => HistoryInode::Snapshot(shown(ino, dir, mirrors, mtime)),
        })
    }

    /// Looks `name` up in a history directory (by the rule in the module documentation) or in
    /// a version directory.
    pub fn lookup(
        &self,
        view: &SnapshotView,
        parent: InodeNo,
        name: &[u8],
    ) -> Result<HistoryInode, ViewError> {
        let path = match self.node(parent)? {
            Node::Version { mirrors, .. } => {
                return Ok(HistoryInode::Snapshot(view.lookup(mirrors.ino, name)?));
            }
            Node::Dir { path, .. } => path,
        };
        let snapshots = self.snapshots.list();
        let named = snapshots
            .iter()
            .find(|(snapshot, _)| snapshot.as_bytes() == name)
            .map(|(_, record)| record.number);
        if let Some(number) = named {
            let holding = self
                .runs(&snapshots, &path)?
                .into_iter()
                .find(|run| (run.first.number..=run.last).contains(&number));
            if let Some(run) = holding {
                return Ok(HistoryInode::Snapshot(self.version(view, parent, run)));
            }
        }
        let child = join(&path, name);
        if self.runs(&snapshots, &child)?.is_empty() {
            return Err(ViewError::NotFound);
        }
        let mut nodes = self.nodes.lock();
        let ino = match nodes.dirs.get(&child) {
            Some(ino) => *ino,
            None => {
                let ino = nodes.allocate(Node::Dir {
                    path: child.clone(),
                    parent,
                });
                nodes.dirs.insert(child, ino);
                ino
            }
        };
        Ok(HistoryInode::Dir(ino))
    }

    /// The entries of a history directory (its versions) or of a version directory (the
    /// snapshot's), with the directory's parent for `..`.
    pub fn list(&self, view: &SnapshotView, ino: InodeNo) -> Result<(InodeNo, Entries), ViewError> {
        match self.node(ino)? {
            Node::Dir { path, parent } => {
                let snapshots = self.snapshots.list();
                let entries = self
                    .runs(&snapshots, &path)?
                    .into_iter()
                    .map(|run| {
                        let name = run.version.snapshot.clone().into_bytes();
                        let version = self.version(view, ino, run);
                        (name, version.ino, version.record.kind)
                    })
                    .collect();
                Ok((parent, entries))
            }
            Node::Version { dir, mirrors, .. } => Ok((dir, view.list(mirrors.ino)?)),
        }
    }

    /// Reads a version's data through the snapshot view.
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
            Node::Dir { .. } => Err(ViewError::NotFound),
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

    fn runs(
        &self,
        snapshots: &[(String, SnapshotRecord)],
        path: &[u8],
    ) -> Result<Vec<Run>, ViewError> {
        let names = components(path)?;
        Ok(runs(
            self.snapshots.objects(),
            &self.directories,
            snapshots,
            &names,
        )?)
    }

    /// The version inode of `run` in the history directory `dir`, numbered on first sight.
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

/// A snapshot inode as a version shows it: its own number, its history directory as parent,
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

        fn lookup(&self, parent: InodeNo, name: &str) -> Result<HistoryInode, ViewError> {
            self.history.lookup(&self.view, parent, name.as_bytes())
        }

        fn dir(&self, path: &str) -> InodeNo {
            path.split('/')
                .filter(|n| !n.is_empty())
                .fold(HISTORY_DIR, |dir, name| match self.lookup(dir, name) {
                    Ok(HistoryInode::Dir(ino)) => ino,
                    other => panic!("{path}: {other:?}"),
                })
        }

        fn version(&self, dir: InodeNo, snapshot: &str) -> SnapInode {
            match self.lookup(dir, snapshot) {
                Ok(HistoryInode::Snapshot(inode)) => inode,
                other => panic!("{snapshot}: {other:?}"),
            }
        }

        fn names(&self, dir: InodeNo) -> Vec<String> {
            let (_, entries) = self.history.list(&self.view, dir).unwrap();
            entries
                .into_iter()
                .map(|(name, _, _)| String::from_utf8(name).unwrap())
                .collect()
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
    fn a_history_directory_lists_each_version_once() {
        let v = report_history();
        let report = v.dir("/docs/report.txt");
        assert_eq!(v.names(report), ["s1", "s3", "s5"]);
        let (parent, entries) = v.history.list(&v.view, report).unwrap();
        assert_eq!(parent, v.dir("/docs"));
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
        assert_eq!(v.dir("/docs/report.txt"), report, "stable inode numbers");
    }

    #[test]
    fn version_directories_show_the_snapshot() {
        let v = report_history();
        let docs = v.dir("/docs");
        assert_eq!(v.names(docs), ["s1", "s3", "s4", "s5"]);
        let s4 = v.version(docs, "s4");
        assert_eq!(s4.record.kind, InodeKind::Directory);
        let (parent, entries) = v.history.list(&v.view, s4.ino).unwrap();
        assert_eq!(parent, docs);
        assert!(entries.is_empty(), "the report was deleted in s4");
        let s3 = v.version(docs, "s3");
        let (_, entries) = v.history.list(&v.view, s3.ino).unwrap();
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
        assert_eq!(v.names(HISTORY_DIR), ["s1", "s2", "s3", "s4", "s5"]);
        let (parent, _) = v.history.list(&v.view, HISTORY_DIR).unwrap();
        assert_eq!(parent, SNAPSHOTS_DIR);
        let s1 = v.version(HISTORY_DIR, "s1");
        let (_, entries) = v.history.list(&v.view, s1.ino).unwrap();
        assert_eq!(entries[0].0, b"docs");
    }

    #[test]
    fn snapshot_names_come_before_children() {
        let f = Fixture::new();
        f.snapshot("early");
        f.mkdir("/docs");
        f.write("/docs/early", b"a file named like a snapshot");
        f.write("/docs/late", b"another");
        f.snapshot("late");
        let v = Views::new(f);
        let docs = v.dir("/docs");
        assert!(matches!(
            v.lookup(docs, "late"),
            Ok(HistoryInode::Snapshot(_))
        ));
        assert!(
            matches!(v.lookup(docs, "early"), Ok(HistoryInode::Dir(_))),
            "'early' does not hold /docs, so it names the child"
        );
        assert_eq!(v.names(v.dir("/docs/early")), ["late"]);
    }

    #[test]
    fn deleting_a_snapshot_moves_its_versions_on() {
        let v = report_history();
        let report = v.dir("/docs/report.txt");
        let old = v.version(report, "s1").ino;
        v.f.snapshots.delete("s1", DeleteMode::Now).unwrap();
        assert!(matches!(v.history.inode(old), Err(ViewError::NotFound)));
        assert_eq!(v.names(report), ["s2", "s3", "s5"]);
        let s2 = v.version(report, "s2");
        assert_ne!(s2.ino, old);
        assert_eq!(v.read(s2.ino), b"v1");
    }
}
