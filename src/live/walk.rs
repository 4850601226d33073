//! Walking the live share by path, for tools that report on files (`verify`).

use std::collections::BTreeMap;

use super::LiveFs;
use super::error::FsResult;
use crate::id::{ChunkId, InodeNo};

impl LiveFs {
    /// Every regular file's paths (a hard-linked file has several), by inode.
    pub fn file_paths(&self) -> BTreeMap<InodeNo, Vec<String>> {
        let tree = self.tree.read();
        let mut out: BTreeMap<InodeNo, Vec<String>> = BTreeMap::new();
        let mut pending = vec![(InodeNo::ROOT, String::new())];
        while let Some((dir, path)) = pending.pop() {
            let Ok(entries) = tree.dir(dir) else { continue };
            for (name, child) in entries {
                let child_path = format!("{path}/{}", String::from_utf8_lossy(name));
                match tree.nodes.get(child) {
                    Some(node) if node.is_dir() => pending.push((*child, child_path)),
                    Some(node) if node.content.is_some() => {
                        out.entry(*child).or_default().push(child_path)
                    }
                    _ => {}
                }
            }
        }
        out
    }

    /// The chunks a file's content uses now, block by block (holes have none).
    pub fn file_chunks(&self, ino: InodeNo) -> FsResult<Vec<ChunkId>> {
        let content = self.tree.read().node(ino)?.content.clone();
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
