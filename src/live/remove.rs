//! unlink and rmdir, and removing a whole subtree (what a restore replaces).

use std::sync::atomic::Ordering;

use super::LiveFs;
use super::error::{FsError, FsResult};
use super::namespace::Namespace;
use crate::format::inode::Timestamp;
use crate::id::InodeNo;

impl LiveFs {
    pub fn unlink(&self, parent: InodeNo, name: &[u8]) -> FsResult<()> {
        self.check_writable()?;
        let mut tree = self.write_listed(&[parent])?;
        tree.list(parent)?;
        let ino = tree.lookup(parent, name)?;
        if tree.node(ino)?.is_dir() {
            return Err(FsError::IsDirectory);
        }
        self.remove_entry(&mut tree, parent, name, ino, Timestamp::now());
        Ok(())
    }

    pub fn rmdir(&self, parent: InodeNo, name: &[u8]) -> FsResult<()> {
        self.check_writable()?;
        if name == b"." {
            return Err(FsError::InvalidArgument);
        }
        let mut tree = self.write_listed(&[parent])?;
        tree.list(parent)?;
        let ino = tree.lookup(parent, name)?;
        tree.list(ino)?;
        let entries = tree.dir(ino)?;
        if !entries.is_empty() {
            return Err(FsError::NotEmpty);
        }
        self.remove_entry(&mut tree, parent, name, ino, Timestamp::now());
        Ok(())
    }

    /// Removes the entry `parent/name` naming `ino` and, if it is a directory, everything below
    /// it, as `rm -r` would: entry by entry with [`LiveFs::remove_entry`], each directory's
    /// entries before the directory itself. The caller lists the whole subtree first
    /// ([`Namespace::list_subtree`]), where a failure can still be returned.
    pub(super) fn remove_tree(
        &self,
        tree: &mut Namespace,
        parent: InodeNo,
        name: &[u8],
        ino: InodeNo,
        now: Timestamp,
    ) {
        // Breadth first, so every entry comes after the entry of its directory; removed in
        // reverse, so every directory is empty when its turn comes.
        let mut order = vec![(parent, name.to_vec(), ino)];
        let mut next = 0;
        while let Some((_, _, dir)) = order.get(next) {
            let dir = *dir;
            next += 1;
            let node = tree.nodes.get(&dir);
            if node.is_some_and(|node| node.is_dir() && node.entries.is_none()) {
                tracing::error!(%dir, "removing a directory that is not listed");
            }
            if let Some(entries) = node.and_then(|node| node.entries.as_ref()) {
                order.extend(
                    entries
                        .iter()
                        .map(|(name, child)| (dir, name.clone(), *child)),
                );
            }
        }
        for (parent, name, ino) in order.into_iter().rev() {
            self.remove_entry(tree, parent, &name, ino, now);
        }
    }

    /// Removes the entry `parent/name` naming `ino` and drops one link of `ino` (a directory
    /// loses both of its own), purging it if that was the last link and nobody has it open.
    /// The caller checked that the entry exists and may go.
    pub(super) fn remove_entry(
        &self,
        tree: &mut Namespace,
        parent: InodeNo,
        name: &[u8],
        ino: InodeNo,
        now: Timestamp,
    ) {
        let Ok(parent_node) = tree.node_mut(parent) else {
            return;
        };
        if let Some(entries) = parent_node.entries.as_mut() {
            entries.remove(name);
        }
        parent_node.record.mtime = now;
        parent_node.record.ctime = now;
        self.mark_inode(parent);
        self.mark_dirent(parent, name, None);
        let Ok(node) = tree.node_mut(ino) else { return };
        let was_dir = node.is_dir();
        if let Some(at) = node.links.iter().position(|p| *p == parent) {
            node.links.swap_remove(at);
        }
        node.record.nlink = if was_dir {
            0
        } else {
            node.record.nlink.saturating_sub(1)
        };
        match &node.content {
            Some(content) => content.lock().set_times(None, now),
            None => node.record.ctime = now,
        }
        let gone = node.record.nlink == 0 && node.open_handles.load(Ordering::Acquire) == 0;
        if was_dir && let Ok(parent_node) = tree.node_mut(parent) {
            parent_node.record.nlink -= 1;
        }
        if gone {
            self.purge(tree, ino);
        } else {
            self.mark_inode(ino);
            self.mark_file_data(ino);
        }
    }
}
