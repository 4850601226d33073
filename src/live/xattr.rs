//! Extended attributes: get, set, list and remove.

use super::LiveFs;
use super::error::{FsError, FsResult};
use crate::format::inode::Timestamp;
use crate::id::InodeNo;

/// Longest value accepted, as Linux's XATTR_SIZE_MAX.
const MAX_VALUE_LEN: usize = 64 * 1024;
/// Longest name accepted, as Linux's XATTR_NAME_MAX.
const MAX_NAME_LEN: usize = 255;

/// setxattr(2) flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XattrFlags {
    /// Create or replace.
    Any,
    /// Fail with EEXIST if present (XATTR_CREATE).
    Create,
    /// Fail with ENODATA if absent (XATTR_REPLACE).
    Replace,
}

/// The reply to a get or list: the value, or only its size when the caller asked with size 0.
pub enum XattrReply {
    Size(u32),
    Data(Vec<u8>),
}

fn reply(value: Vec<u8>, size: u32) -> FsResult<XattrReply> {
    if size == 0 {
        Ok(XattrReply::Size(value.len() as u32))
    } else if value.len() > size as usize {
        Err(FsError::Range)
    } else {
        Ok(XattrReply::Data(value))
    }
}

fn check_name(name: &[u8]) -> FsResult<()> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(FsError::Range);
    }
    // POSIX ACLs are not implemented: refusing them makes tools fall back to mode bits.
    if name.starts_with(b"system.") {
        return Err(FsError::NotSupported);
    }
    Ok(())
}

impl LiveFs {
    pub fn setxattr(
        &self,
        ino: InodeNo,
        name: &[u8],
        value: &[u8],
        flags: XattrFlags,
    ) -> FsResult<()> {
        self.check_writable()?;
        check_name(name)?;
        if value.len() > MAX_VALUE_LEN {
            return Err(FsError::TooBig);
        }
        let mut tree = self.tree.write();
        let node = tree.node_mut(ino)?;
        let exists = node.xattrs.contains_key(name);
        match flags {
            XattrFlags::Create if exists => return Err(FsError::Exists),
            XattrFlags::Replace if !exists => return Err(FsError::NoAttribute),
            _ => {}
        }
        node.xattrs.insert(name.to_vec(), value.to_vec());
        self.touch_ctime(node, ino);
        Ok(())
    }

    pub fn getxattr(&self, ino: InodeNo, name: &[u8], size: u32) -> FsResult<XattrReply> {
        check_name(name)?;
        let tree = self.tree.read();
        let value = tree
            .node(ino)?
            .xattrs
            .get(name)
            .ok_or(FsError::NoAttribute)?;
        reply(value.clone(), size)
    }

    pub fn listxattr(&self, ino: InodeNo, size: u32) -> FsResult<XattrReply> {
        let tree = self.tree.read();
        let mut names = Vec::new();
        for name in tree.node(ino)?.xattrs.keys() {
            names.extend_from_slice(name);
            names.push(0);
        }
        reply(names, size)
    }

    pub fn removexattr(&self, ino: InodeNo, name: &[u8]) -> FsResult<()> {
        self.check_writable()?;
        check_name(name)?;
        let mut tree = self.tree.write();
        let node = tree.node_mut(ino)?;
        if node.xattrs.remove(name).is_none() {
            return Err(FsError::NoAttribute);
        }
        self.touch_ctime(node, ino);
        Ok(())
    }

    fn touch_ctime(&self, node: &mut super::namespace::Node, ino: InodeNo) {
        let now = Timestamp::now();
        match &node.content {
            Some(content) => {
                content.lock().set_times(None, now);
                self.mark_file_data(ino);
            }
            None => node.record.ctime = now,
        }
        self.mark_inode(ino);
        self.dirt.lock().xattrs.insert(ino);
    }
}
