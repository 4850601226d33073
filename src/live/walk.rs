//! Walking the live share by path, for tools that report on files (`verify`) or act on a tree's
//! data (`tier recall`, `tier pin`).

use super::LiveFs;
use super::error::{FsError, FsResult};
use crate::format::inode::InodeKind;
use crate::id::{ChunkId, InodeNo};
use crate::path_tree::{PathId, PathTree};

impl LiveFs {
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
        self.walk_files(top, (), |_, _| (), |_, _, ino, chunks| each(ino, chunks))
    }

    /// [`Self::each_file_chunks`] from the root, with where each file is: the path of its
    /// directory, recorded in `paths` below `root` (directories only, so that the walk costs
    /// the number of directories however deep they are), and its name in it. A hard-linked
    /// file comes once per link.
    pub(crate) fn each_named_file_chunks<E: From<FsError>>(
        &self,
        paths: &mut PathTree,
        root: PathId,
        mut each: impl FnMut(PathId, &[u8], InodeNo, Vec<ChunkId>) -> Result<(), E>,
    ) -> Result<(), E> {
        self.walk_files(
            InodeNo::ROOT,
            root,
            |dir, name| paths.child(*dir, name),
            |dir, name, ino, chunks| each(*dir, name, ino, chunks),
        )
    }

    /// The walk of both of the above: `label` gives a directory's label from its parent's and
    /// its name; `each` gets a file's directory's label and its name (empty for `top` itself).
    fn walk_files<L, E: From<FsError>>(
        &self,
        top: InodeNo,
        top_label: L,
        mut label: impl FnMut(&L, &[u8]) -> L,
        mut each: impl FnMut(&L, &[u8], InodeNo, Vec<ChunkId>) -> Result<(), E>,
    ) -> Result<(), E> {
        match self.getattr(top)?.record.kind {
            InodeKind::Directory => {}
            InodeKind::File => return each(&top_label, b"", top, self.file_chunks(top)?),
            _ => return Ok(()),
        }
        let mut pending = vec![(top, top_label)];
        while let Some((dir, dir_label)) = pending.pop() {
            let fh = match self.opendir(dir) {
                Ok(fh) => fh,
                Err(FsError::NotFound) => continue,
                Err(err) => return Err(err.into()),
            };
            let listing = self.handles.dir(fh);
            self.releasedir(fh);
            // `.` and `..` first.
            for entry in listing?.iter().skip(2) {
                match entry.kind {
                    InodeKind::Directory => {
                        pending.push((entry.ino, label(&dir_label, &entry.name)));
                    }
                    InodeKind::File => match self.file_chunks(entry.ino) {
                        Ok(chunks) => each(&dir_label, &entry.name, entry.ino, chunks)?,
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
        let state = content.lock();
        state.block_chunks(ino, &self.data_context())
    }
}
