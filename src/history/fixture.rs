//! A real store in a temporary directory for unit tests of the history code: the live share is
//! changed through `LiveFs`, and snapshots are taken as the control file takes them.

use std::sync::Arc;

use crate::format::catalog::{Origin, SnapshotRecord};
use crate::format::inode::Timestamp;
use crate::id::InodeNo;
use crate::live::{Caller, LiveFs, LiveOptions, NewInode, SetAttr, XattrFlags};
use crate::snapshot::Snapshots;
use crate::store::Store;
use crate::tree_objects::TreeObjects;

const CALLER: Caller = Caller { uid: 0, gid: 0 };

pub(crate) struct Fixture {
    pub snapshots: Arc<Snapshots>,
    pub live: Arc<LiveFs>,
    _dir: tempfile::TempDir,
}

fn split(path: &str) -> (&str, &str) {
    path.rsplit_once('/').expect("an absolute path")
}

impl Fixture {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let store_dir = dir.path().join("store");
        Store::init(&store_dir, 4096, 0, 0).expect("init");
        let live = LiveFs::serve(
            Store::open(&store_dir).expect("open"),
            LiveOptions::default(),
        )
        .expect("serve");
        let snapshots = Arc::new(
            Snapshots::open(live.clone(), Arc::new(crate::schedule::SystemClock))
                .expect("snapshots"),
        );
        Fixture {
            snapshots,
            live,
            _dir: dir,
        }
    }

    pub fn objects(&self) -> &TreeObjects {
        self.snapshots.objects()
    }

    /// The live inode at an absolute path.
    pub fn ino(&self, path: &str) -> InodeNo {
        path.split('/')
            .filter(|name| !name.is_empty())
            .fold(InodeNo::ROOT, |dir, name| {
                self.live.lookup(dir, name.as_bytes()).expect(path).ino
            })
    }

    fn make(&self, path: &str, new: NewInode<'_>, perm: u32) {
        let (parent, name) = split(path);
        self.live
            .make(self.ino(parent), name.as_bytes(), new, perm, CALLER)
            .expect(path);
    }

    pub fn mkdir(&self, path: &str) {
        self.make(path, NewInode::Directory, 0o755);
    }

    pub fn symlink(&self, path: &str, target: &str) {
        self.make(path, NewInode::Symlink(target.as_bytes()), 0o777);
    }

    /// Creates or replaces a file's content.
    pub fn write(&self, path: &str, data: &[u8]) {
        let (parent, name) = split(path);
        let fh = match self.live.lookup(self.ino(parent), name.as_bytes()) {
            Ok(attr) => self.live.open(attr.ino, true, true).expect(path),
            Err(_) => {
                self.live
                    .create(self.ino(parent), name.as_bytes(), 0o644, CALLER)
                    .expect(path)
                    .1
            }
        };
        self.live.write(fh, 0, data).expect(path);
        self.live.release(fh).expect(path);
    }

    fn setattr(&self, path: &str, change: SetAttr) {
        self.live.setattr(self.ino(path), change).expect(path);
    }

    pub fn chmod(&self, path: &str, mode: u32) {
        let mode = Some(mode);
        self.setattr(
            path,
            SetAttr {
                mode,
                ..SetAttr::default()
            },
        );
    }

    pub fn chown(&self, path: &str, uid: u32, gid: u32) {
        let (uid, gid) = (Some(uid), Some(gid));
        self.setattr(
            path,
            SetAttr {
                uid,
                gid,
                ..SetAttr::default()
            },
        );
    }

    pub fn set_mtime(&self, path: &str, secs: i64) {
        let mtime = Some(Timestamp { secs, nanos: 0 });
        self.setattr(
            path,
            SetAttr {
                mtime,
                ..SetAttr::default()
            },
        );
    }

    pub fn setxattr(&self, path: &str, name: &str, value: &[u8]) {
        self.live
            .setxattr(self.ino(path), name.as_bytes(), value, XattrFlags::Any)
            .expect(path);
    }

    pub fn unlink(&self, path: &str) {
        let (parent, name) = split(path);
        self.live
            .unlink(self.ino(parent), name.as_bytes())
            .expect(path);
    }

    pub fn rmdir(&self, path: &str) {
        let (parent, name) = split(path);
        self.live
            .rmdir(self.ino(parent), name.as_bytes())
            .expect(path);
    }

    pub fn snapshot(&self, name: &str) -> SnapshotRecord {
        self.snapshots.create(name, Origin::Manual).expect(name)
    }
}
