//! Walking the live share by path, for tools that report on files (`verify`).

use std::collections::BTreeMap;

use super::LiveFs;
use super::error::FsResult;
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
