//! Extended attributes: get, set, list and remove.
//!
//! Invariant: the names of one inode fit in one listing ([`MAX_LIST_LEN`]), so that everything
//! set can be listed, in the live share and in every snapshot taken of it.

use super::LiveFs;
use super::error::{FsError, FsResult};
use crate::format::inode::Timestamp;
use crate::id::InodeNo;

/// Longest value accepted, as Linux's XATTR_SIZE_MAX.
const MAX_VALUE_LEN: usize = 64 * 1024;
/// Longest name accepted, as Linux's XATTR_NAME_MAX.
const MAX_NAME_LEN: usize = 255;
/// Most bytes the names of one inode take in a listing (each name and its NUL), as Linux's
/// XATTR_LIST_MAX: the kernel refuses a longer listing with `E2BIG`, so a new name that would
/// make it longer is refused with `ENOSPC`, as ext4 refuses one that does not fit.
const MAX_LIST_LEN: usize = 64 * 1024;

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

/// The length of a listing of `names`.
fn list_len<'a>(names: impl Iterator<Item = &'a Vec<u8>>) -> usize {
    names.map(|name| name.len() + 1).sum()
}

/// Whether xattr `name` is refused as not supported, here and in every snapshot and backup
/// of the share: `system.` names are POSIX ACLs, which snapfs does not implement, and
/// refusing them (rather than calling them absent) makes tools fall back to mode bits and stop
/// asking.
pub fn refused_xattr(name: &[u8]) -> bool {
    name.starts_with(b"system.")
}

fn check_name(name: &[u8]) -> FsResult<()> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(FsError::Range);
    }
    if refused_xattr(name) {
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
        let mut tree = self.write_loaded(ino)?;
        let node = tree.node_mut(ino)?;
        let exists = node.xattrs.contains_key(name);
        match flags {
            XattrFlags::Create if exists => return Err(FsError::Exists),
            XattrFlags::Replace if !exists => return Err(FsError::NoAttribute),
            _ => {}
        }
        if !exists && list_len(node.xattrs.keys()) + name.len() + 1 > MAX_LIST_LEN {
            return Err(FsError::NoSpace);
        }
        node.xattrs.insert(name.to_vec(), value.to_vec());
        self.touch_ctime(node, ino);
        Ok(())
    }

    pub fn getxattr(&self, ino: InodeNo, name: &[u8], size: u32) -> FsResult<XattrReply> {
        check_name(name)?;
        let tree = self.read_loaded(ino)?;
        let value = tree
            .node(ino)?
            .xattrs
            .get(name)
            .ok_or(FsError::NoAttribute)?;
        reply(value.clone(), size)
    }

    pub fn listxattr(&self, ino: InodeNo, size: u32) -> FsResult<XattrReply> {
        let tree = self.read_loaded(ino)?;
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
        let mut tree = self.write_loaded(ino)?;
        let node = tree.node_mut(ino)?;
        if node.xattrs.remove(name).is_none() {
            return Err(FsError::NoAttribute);
        }
        self.touch_ctime(node, ino);
        Ok(())
    }

    pub(super) fn touch_ctime(&self, node: &mut super::namespace::Node, ino: InodeNo) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{new_store, write_file};

    fn listing_len(live: &LiveFs, ino: InodeNo) -> usize {
        match live.listxattr(ino, 0).expect("listxattr") {
            XattrReply::Size(size) => size as usize,
            XattrReply::Data(_) => unreachable!("size 0 asks for the size"),
        }
    }

    #[test]
    fn names_are_capped_so_that_everything_set_can_be_listed() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (_store, live) = new_store(tmp.path(), "store");
        let ino = write_file(&live, "f", b"x");
        // 255-byte names take 256 bytes of a listing each: 256 of them fill it exactly.
        let name = |i: usize| format!("user.{i:05}{}", "n".repeat(245)).into_bytes();
        for i in 0..256 {
            live.setxattr(ino, &name(i), b"v", XattrFlags::Any)
                .expect("fits");
        }
        assert_eq!(listing_len(&live, ino), MAX_LIST_LEN);
        let refused = live.setxattr(ino, b"user.x", b"v", XattrFlags::Any);
        assert!(matches!(refused, Err(FsError::NoSpace)), "{refused:?}");
        // A new value for a name already there takes no more room in a listing.
        live.setxattr(ino, &name(7), b"longer value", XattrFlags::Replace)
            .expect("replace");
        live.removexattr(ino, &name(0)).expect("remove");
        live.setxattr(ino, b"user.x", b"v", XattrFlags::Create)
            .expect("room again");
        assert!(listing_len(&live, ino) <= MAX_LIST_LEN);
        let XattrReply::Data(names) = live.listxattr(ino, 65_536).expect("list") else {
            unreachable!("a size was given");
        };
        assert_eq!(
            names.split(|b| *b == 0).filter(|n| !n.is_empty()).count(),
            256
        );
    }
}
