//! Operations that add a name: create, mknod, mkdir, symlink and link.

use std::sync::atomic::Ordering;

use super::error::{FsError, FsResult};
use super::handles::OpenFile;
use super::namespace::{Namespace, Node, check_name};
use super::{Attr, Caller, LiveFs};
use crate::format::inode::{InodeKind, InodeRecord, MAX_SYMLINK_TARGET, Timestamp};
use crate::id::InodeNo;

/// What kind of inode to make, with what only that kind carries.
pub enum NewInode<'a> {
    File,
    Directory,
    Symlink(&'a [u8]),
    Special { kind: InodeKind, rdev: u32 },
}

impl LiveFs {
    /// Makes a new inode named `name` in `parent`. `perm` has had the umask applied.
    pub fn make(
        &self,
        parent: InodeNo,
        name: &[u8],
        new: NewInode<'_>,
        perm: u32,
        caller: Caller,
    ) -> FsResult<Attr> {
        self.check_writable()?;
        let mut tree = self.write_listed(&[parent])?;
        let ino = self.make_locked(&mut tree, parent, name, new, perm, caller)?;
        Ok(self.attr_of(ino, tree.node(ino)?))
    }

    /// Creates and opens a regular file (`O_EXCL` is implied: the kernel only sends create for a
    /// name it found absent, and a name that appeared since is reported as existing).
    pub fn create(
        &self,
        parent: InodeNo,
        name: &[u8],
        perm: u32,
        caller: Caller,
    ) -> FsResult<(Attr, u64)> {
        self.check_writable()?;
        let mut tree = self.write_listed(&[parent])?;
        let ino = self.make_locked(&mut tree, parent, name, NewInode::File, perm, caller)?;
        let node = tree.node(ino)?;
        node.open_handles.fetch_add(1, Ordering::AcqRel);
        let fh = self.handles.open_file(OpenFile {
            ino,
            content: node.content.clone().expect("a new file has content"),
            writable: true,
        });
        Ok((self.attr_of(ino, node), fh))
    }

    fn make_locked(
        &self,
        tree: &mut Namespace,
        parent: InodeNo,
        name: &[u8],
        new: NewInode<'_>,
        perm: u32,
        caller: Caller,
    ) -> FsResult<InodeNo> {
        check_name(name)?;
        tree.list(parent)?;
        let parent_node = tree.node(parent)?;
        let entries = parent_node.entries.as_ref().ok_or(FsError::NotDirectory)?;
        if entries.contains_key(name) {
            return Err(FsError::Exists);
        }
        if parent_node.record.nlink == 0 {
            // The directory was removed while someone was inside it.
            return Err(FsError::NotFound);
        }
        let mut perm = (perm & 0o7777) as u16;
        // BSD group semantics in a setgid directory, as on ext4: new inodes take the
        // directory's group, and new directories stay setgid.
        let gid = if parent_node.record.perm & 0o2000 != 0 {
            if matches!(new, NewInode::Directory) {
                perm |= 0o2000;
            }
            parent_node.record.gid
        } else {
            caller.gid
        };
        let (kind, rdev, target, nlink) = match new {
            NewInode::File => (InodeKind::File, 0, Vec::new(), 1),
            NewInode::Directory => (InodeKind::Directory, 0, Vec::new(), 2),
            NewInode::Symlink(target) => {
                if target.len() > MAX_SYMLINK_TARGET {
                    return Err(FsError::NameTooLong);
                }
                (InodeKind::Symlink, 0, target.to_vec(), 1)
            }
            NewInode::Special { kind, rdev } => (kind, rdev, Vec::new(), 1),
        };
        if kind == InodeKind::Symlink {
            perm = 0o777;
        }
        let now = Timestamp::now();
        let record = InodeRecord {
            kind,
            perm,
            uid: caller.uid,
            gid,
            nlink,
            rdev,
            size: target.len() as u64,
            atime: now,
            mtime: now,
            ctime: now,
            symlink_target: target,
        };
        let ino = tree.allocate_inode()?;
        let mut node = Node::new(ino, record, parent);
        if !node.is_dir() {
            node.links.push(parent);
        }
        tree.insert_new(ino, node);
        let parent_node = tree.node_mut(parent)?;
        parent_node
            .entries
            .as_mut()
            .expect("checked above")
            .insert(name.to_vec(), ino);
        if kind == InodeKind::Directory {
            parent_node.record.nlink += 1;
        }
        parent_node.record.mtime = now;
        parent_node.record.ctime = now;
        self.mark_inode(ino);
        self.mark_inode(parent);
        self.mark_dirent(parent, name, Some(ino));
        Ok(ino)
    }

    /// Adds a hard link to a non-directory.
    pub fn link(&self, ino: InodeNo, new_parent: InodeNo, new_name: &[u8]) -> FsResult<Attr> {
        self.check_writable()?;
        check_name(new_name)?;
        let mut tree = self.write_listed(&[new_parent])?;
        tree.load(ino)?;
        tree.list(new_parent)?;
        if tree.dir(new_parent)?.contains_key(new_name) {
            return Err(FsError::Exists);
        }
        let node = tree.node_mut(ino)?;
        if node.is_dir() {
            return Err(FsError::NotPermitted);
        }
        if node.record.nlink >= u32::from(u16::MAX) {
            return Err(FsError::TooManyLinks);
        }
        if node.record.nlink == 0 {
            // linkat of an O_TMPFILE-less unlinked file: refused as on ext4.
            return Err(FsError::NotFound);
        }
        let now = Timestamp::now();
        node.record.nlink += 1;
        node.links.push(new_parent);
        match &node.content {
            Some(content) => content.lock().set_times(None, now),
            None => node.record.ctime = now,
        }
        let parent = tree.node_mut(new_parent)?;
        parent
            .entries
            .as_mut()
            .expect("checked above")
            .insert(new_name.to_vec(), ino);
        parent.record.mtime = now;
        parent.record.ctime = now;
        self.mark_inode(ino);
        self.mark_file_data(ino);
        self.mark_inode(new_parent);
        self.mark_dirent(new_parent, new_name, Some(ino));
        Ok(self.attr_of(ino, tree.node(ino)?))
    }
}
