//! lookup and directory listing.

use super::error::FsResult;
use super::{Attr, LiveFs};
use crate::format::inode::InodeKind;
use crate::id::InodeNo;

/// One entry of a directory listing.
#[derive(Clone, Debug)]
pub struct DirEntry {
    pub name: Vec<u8>,
    pub ino: InodeNo,
    pub kind: InodeKind,
}

impl LiveFs {
    pub fn lookup(&self, parent: InodeNo, name: &[u8]) -> FsResult<Attr> {
        let tree = self.read_listed(parent)?;
        let ino = tree.lookup(parent, name)?;
        Ok(self.attr_of(ino, tree.node(ino)?))
    }

    /// Opens a directory: its listing, with `.` and `..`, is taken now.
    pub fn opendir(&self, ino: InodeNo) -> FsResult<u64> {
        let tree = self.read_listed(ino)?;
        let node = tree.node(ino)?;
        let entries = tree.dir(ino)?;
        let mut listing = Vec::with_capacity(entries.len() + 2);
        listing.push(DirEntry {
            name: b".".to_vec(),
            ino,
            kind: InodeKind::Directory,
        });
        listing.push(DirEntry {
            name: b"..".to_vec(),
            ino: node.parent,
            kind: InodeKind::Directory,
        });
        for (name, child) in entries {
            if let Some(child_node) = tree.nodes.get(child) {
                listing.push(DirEntry {
                    name: name.clone(),
                    ino: *child,
                    kind: child_node.record.kind,
                });
            }
        }
        drop(tree);
        Ok(self.handles.open_dir(listing))
    }

    /// The entries of an open directory from position `offset` on.
    pub fn readdir(&self, fh: u64, offset: u64) -> FsResult<impl Iterator<Item = (u64, DirEntry)>> {
        let listing = self.handles.dir(fh)?;
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let items: Vec<(u64, DirEntry)> = listing
            .iter()
            .enumerate()
            .skip(start)
            .map(|(i, entry)| (i as u64 + 1, entry.clone()))
            .collect();
        Ok(items.into_iter())
    }

    pub fn releasedir(&self, fh: u64) {
        self.handles.close_dir(fh);
    }
}
