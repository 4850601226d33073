//! rename, with RENAME_NOREPLACE and RENAME_EXCHANGE.

use super::LiveFs;
use super::error::{FsError, FsResult};
use super::namespace::{Namespace, check_name};
use crate::format::inode::Timestamp;
use crate::id::InodeNo;

/// The rename(2) flags snapfs understands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RenameMode {
    /// Replace the target if it exists (plain rename).
    #[default]
    Replace,
    /// Fail with `EEXIST` if the target exists.
    NoReplace,
    /// Swap source and target atomically; both must exist.
    Exchange,
}

impl LiveFs {
    pub fn rename(
        &self,
        parent: InodeNo,
        name: &[u8],
        new_parent: InodeNo,
        new_name: &[u8],
        mode: RenameMode,
    ) -> FsResult<()> {
        self.check_writable()?;
        check_name(new_name)?;
        let mut tree = self.write_listed(&[parent, new_parent])?;
        tree.list(parent)?;
        let source = tree.lookup(parent, name)?;
        tree.list(new_parent)?;
        let target = tree.dir(new_parent)?.get(new_name).copied();
        let source_is_dir = tree.node(source)?.is_dir();
        // A directory may not move below itself.
        if source_is_dir && tree.is_ancestor(source, new_parent) {
            return Err(FsError::InvalidArgument);
        }
        let now = Timestamp::now();
        match (mode, target) {
            (RenameMode::Exchange, None) => Err(FsError::NotFound),
            (RenameMode::Exchange, Some(target)) => {
                let target_is_dir = tree.node(target)?.is_dir();
                if target_is_dir && tree.is_ancestor(target, parent) {
                    return Err(FsError::InvalidArgument);
                }
                self.exchange(
                    &mut tree,
                    (parent, name, source),
                    (new_parent, new_name, target),
                    now,
                )
            }
            (RenameMode::NoReplace, Some(_)) => Err(FsError::Exists),
            (_, Some(target)) if target == source => Ok(()),
            (_, Some(target)) => {
                if tree.node(target)?.is_dir() {
                    tree.list(target)?;
                }
                let target_node = tree.node(target)?;
                match (source_is_dir, target_node.entries.as_ref()) {
                    (true, None) => return Err(FsError::NotDirectory),
                    (false, Some(_)) => return Err(FsError::IsDirectory),
                    (true, Some(entries)) if !entries.is_empty() => return Err(FsError::NotEmpty),
                    _ => {}
                }
                self.remove_entry(&mut tree, new_parent, new_name, target, now);
                self.move_entry(
                    &mut tree,
                    (parent, name),
                    (new_parent, new_name),
                    source,
                    now,
                )
            }
            (_, None) => self.move_entry(
                &mut tree,
                (parent, name),
                (new_parent, new_name),
                source,
                now,
            ),
        }
    }

    fn move_entry(
        &self,
        tree: &mut Namespace,
        (parent, name): (InodeNo, &[u8]),
        (new_parent, new_name): (InodeNo, &[u8]),
        ino: InodeNo,
        now: Timestamp,
    ) -> FsResult<()> {
        tree.dir_mut(parent)?.remove(name);
        tree.dir_mut(new_parent)?.insert(new_name.to_vec(), ino);
        self.mark_dirent(parent, name, None);
        self.mark_dirent(new_parent, new_name, Some(ino));
        let is_dir = self.reparent(tree, ino, parent, new_parent, now)?;
        if is_dir && parent != new_parent {
            tree.node_mut(parent)?.record.nlink -= 1;
            tree.node_mut(new_parent)?.record.nlink += 1;
        }
        self.touch_dirs(tree, [parent, new_parent], now)
    }

    fn exchange(
        &self,
        tree: &mut Namespace,
        (parent, name, source): (InodeNo, &[u8], InodeNo),
        (new_parent, new_name, target): (InodeNo, &[u8], InodeNo),
        now: Timestamp,
    ) -> FsResult<()> {
        if source == target {
            return Ok(());
        }
        tree.dir_mut(parent)?.insert(name.to_vec(), target);
        tree.dir_mut(new_parent)?.insert(new_name.to_vec(), source);
        self.mark_dirent(parent, name, Some(target));
        self.mark_dirent(new_parent, new_name, Some(source));
        let source_is_dir = self.reparent(tree, source, parent, new_parent, now)?;
        let target_is_dir = self.reparent(tree, target, new_parent, parent, now)?;
        if parent != new_parent && source_is_dir != target_is_dir {
            let (gains, loses) = if source_is_dir {
                (new_parent, parent)
            } else {
                (parent, new_parent)
            };
            tree.node_mut(gains)?.record.nlink += 1;
            tree.node_mut(loses)?.record.nlink -= 1;
        }
        self.touch_dirs(tree, [parent, new_parent], now)
    }

    /// Sets mtime and ctime of directories whose entries changed.
    fn touch_dirs(&self, tree: &mut Namespace, dirs: [InodeNo; 2], now: Timestamp) -> FsResult<()> {
        for dir in dirs {
            let node = tree.node_mut(dir)?;
            node.record.mtime = now;
            node.record.ctime = now;
            self.mark_inode(dir);
        }
        Ok(())
    }

    /// Records that `ino` moved from `old_parent` to `parent` and touches its ctime; returns
    /// whether it is a directory.
    fn reparent(
        &self,
        tree: &mut Namespace,
        ino: InodeNo,
        old_parent: InodeNo,
        parent: InodeNo,
        now: Timestamp,
    ) -> FsResult<bool> {
        let node = tree.node_mut(ino)?;
        let is_dir = node.is_dir();
        if is_dir {
            node.parent = parent;
        } else if let Some(link) = node.links.iter_mut().find(|p| **p == old_parent) {
            *link = parent;
        }
        match &node.content {
            Some(content) => content.lock().set_times(None, now),
            None => node.record.ctime = now,
        }
        self.mark_inode(ino);
        self.mark_file_data(ino);
        Ok(is_dir)
    }
}
