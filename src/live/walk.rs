//! Walking the live share by path, for tools that report on files (`verify`) or act on a tree's
//! data (`tier recall`, `tier pin`).

use std::collections::BTreeMap;

use super::LiveFs;
use super::error::{FsError, FsResult};
use crate::format::inode::InodeKind;
use crate::id::{ChunkId, InodeNo};
use crate::path_tree::{PathId, PathTree};

impl LiveFs {
    /// Every regular file's paths (a hard-linked file has several), by inode, recorded in
    /// `paths` below `root`. Depth first without recursion, and each path recorded as a link
    /// to its directory's, so that the walk costs the size of the share however deep it is.
    /// Lists every directory on the way (under the write lock, which the walk holds).
    pub(crate) fn file_paths(
        &self,
        paths: &mut PathTree,
        root: PathId,
    ) -> FsResult<BTreeMap<InodeNo, Vec<PathId>>> {
        let mut tree = self.tree.write();
        let mut out: BTreeMap<InodeNo, Vec<PathId>> = BTreeMap::new();
        let mut pending = vec![(InodeNo::ROOT, root)];
        while let Some((dir, dir_path)) = pending.pop() {
            tree.list(dir)?;
            let Ok(entries) = tree.dir(dir) else { continue };
            for (name, child) in entries {
                match tree.nodes.get(child) {
                    Some(node) if node.is_dir() => {
                        pending.push((*child, paths.child(dir_path, name)));
                    }
                    Some(node) if node.content.is_some() => {
                        out.entry(*child)
                            .or_default()
                            .push(paths.child(dir_path, name));
                    }
                    _ => {}
                }
            }
        }
        Ok(out)
    }

    /// The inode at `path` (relative to the share's root, `/`-separated; empty for the root).
    pub fn resolve(&self, path: &[u8]) -> FsResult<InodeNo> {
        let mut ino = InodeNo::ROOT;
        for name in path.split(|&b| b == b'/').filter(|name| !name.is_empty()) {
            if name == b"." || name == b".." {
                return Err(FsError::InvalidArgument);
            }
            ino = self.lookup(ino, name)?.ino;
        }
        Ok(ino)
    }

    /// Hands `each` the chunks of every regular file at or under `top`, file by file. One
    /// directory is listed at a time and the share is held only while it is (as a `readdir`
    /// would), so the walk never holds the share for the size of the tree; a file or directory
    /// removed meanwhile is skipped. Depth first without recursion.
    pub fn each_file_chunks<E: From<FsError>>(
        &self,
        top: InodeNo,
        mut each: impl FnMut(InodeNo, Vec<ChunkId>) -> Result<(), E>,
    ) -> Result<(), E> {
        match self.getattr(top)?.record.kind {
            InodeKind::Directory => {}
            InodeKind::File => return each(top, self.file_chunks(top)?),
            _ => return Ok(()),
        }
        let mut pending = vec![top];
        while let Some(dir) = pending.pop() {
            let fh = match self.opendir(dir) {
                Ok(fh) => fh,
                Err(FsError::NotFound) => continue,
                Err(err) => return Err(err.into()),
            };
            let entries = self.readdir(fh, 2);
            self.releasedir(fh);
            for (_, entry) in entries? {
                match entry.kind {
                    InodeKind::Directory => pending.push(entry.ino),
                    InodeKind::File => match self.file_chunks(entry.ino) {
                        Ok(chunks) => each(entry.ino, chunks)?,
                        Err(FsError::NotFound) => {}
                        Err(err) => return Err(err.into()),
                    },
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// The chunks a file's content uses now, block by block (holes have none).
    pub fn file_chunks(&self, ino: InodeNo) -> FsResult<Vec<ChunkId>> {
        let content = self.read_loaded(ino)?.node(ino)?.content.clone();
        let Some(content) = content else {
            return Ok(Vec::new());
        };
        let mut state = content.lock();
        Ok(state
            .block_map(ino, &self.data_context())?
            .values()
            .copied()
            .collect())
    }
}
