//! getattr, setattr and readlink.

use super::LiveFs;
use super::error::{FsError, FsResult};
use super::namespace::Node;
use crate::format::inode::{InodeKind, InodeRecord, Timestamp};
use crate::id::InodeNo;

/// What `stat` reports: the inode's record and the storage it takes.
#[derive(Clone, Debug)]
pub struct Attr {
    pub ino: InodeNo,
    pub record: InodeRecord,
    /// Allocated 512-byte sectors.
    pub sectors: u64,
}

/// The changes a `setattr` asks for; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<Timestamp>,
    pub mtime: Option<Timestamp>,
}

impl LiveFs {
    pub(super) fn attr_of(&self, ino: InodeNo, node: &Node) -> Attr {
        let record = node.current_record();
        let sectors = match &node.content {
            Some(content) => content.lock().sectors(ino, &self.data_context()),
            None if record.kind == InodeKind::Directory => 8,
            None => 0,
        };
        Attr {
            ino,
            record,
            sectors,
        }
    }

    pub fn getattr(&self, ino: InodeNo) -> FsResult<Attr> {
        let tree = self.read_loaded(ino)?;
        Ok(self.attr_of(ino, tree.node(ino)?))
    }

    pub fn readlink(&self, ino: InodeNo) -> FsResult<Vec<u8>> {
        let tree = self.read_loaded(ino)?;
        let node = tree.node(ino)?;
        if node.record.kind != InodeKind::Symlink {
            return Err(FsError::InvalidArgument);
        }
        Ok(node.record.symlink_target.clone())
    }

    /// Applies a change. Permission checks are the kernel's (`default_permissions`); what a
    /// truncate or chown takes from a privileged file is taken first, by
    /// [`LiveFs::revoke_privileges`], which the FUSE layer calls with the caller's credentials.
    pub fn setattr(&self, ino: InodeNo, change: SetAttr) -> FsResult<Attr> {
        self.check_writable()?;
        let now = Timestamp::now();
        let mut tree = self.write_loaded(ino)?;
        let node = tree.node_mut(ino)?;
        if let Some(size) = change.size {
            let content = node.content.clone().ok_or(match node.record.kind {
                InodeKind::Directory => FsError::IsDirectory,
                _ => FsError::InvalidArgument,
            })?;
            let mut state = content.lock();
            if size != state.size {
                state.truncate(ino, &self.data_context(), size)?;
            } else {
                state.set_times(Some(now), now);
            }
            drop(state);
            self.mark_file_data(ino);
        }
        let record = &mut node.record;
        if let Some(mode) = change.mode {
            record.perm = (mode & 0o7777) as u16;
        }
        if let Some(uid) = change.uid {
            record.uid = uid;
        }
        if let Some(gid) = change.gid {
            record.gid = gid;
        }
        if let Some(atime) = change.atime {
            record.atime = atime;
        }
        match &node.content {
            Some(content) => {
                content.lock().set_times(change.mtime, now);
                self.mark_file_data(ino);
            }
            None => {
                if let Some(mtime) = change.mtime {
                    record.mtime = mtime;
                }
                record.ctime = now;
            }
        }
        self.mark_inode(ino);
        Ok(self.attr_of(ino, node))
    }
}
