//! open, read, write, flush, fsync, release, fallocate and statfs.

use std::sync::atomic::Ordering;

use super::LiveFs;
use super::content::{self, ContentState};
use super::error::{FsError, FsResult};
use super::handles::OpenFile;
use crate::format::inode::InodeKind;
use crate::id::InodeNo;

/// Numbers for statfs(2).
#[derive(Clone, Copy, Debug)]
pub struct FsStats {
    pub block_size: u32,
    pub blocks: u64,
    pub blocks_free: u64,
    pub blocks_available: u64,
    pub files: u64,
    pub files_free: u64,
}

impl LiveFs {
    pub fn open(&self, ino: InodeNo, writable: bool, truncate: bool) -> FsResult<u64> {
        if writable || truncate {
            self.check_writable()?;
        }
        let tree = self.tree.read();
        let node = tree.node(ino)?;
        let content = match (&node.content, node.record.kind) {
            (Some(content), _) => content.clone(),
            (None, InodeKind::Directory) => return Err(FsError::IsDirectory),
            // FIFOs and device nodes are opened by the kernel itself; nothing to do here.
            (None, _) => return Err(FsError::NotSupported),
        };
        node.open_handles.fetch_add(1, Ordering::AcqRel);
        drop(tree);
        if truncate {
            let mut state = content.lock();
            if state.size != 0 {
                state.truncate(ino, &self.data_context(), 0)?;
                drop(state);
                self.mark_file_data(ino);
            }
        }
        Ok(self.handles.open_file(OpenFile {
            ino,
            content,
            writable,
        }))
    }

    pub fn read(&self, fh: u64, offset: u64, len: u32) -> FsResult<Vec<u8>> {
        let file = self.handles.file(fh)?;
        let guard = file.content.lock();
        ContentState::read(guard, file.ino, &self.data_context(), offset, len)
    }

    pub fn write(&self, fh: u64, offset: u64, data: &[u8]) -> FsResult<usize> {
        self.check_writable()?;
        let file = self.handles.file(fh)?;
        if !file.writable {
            return Err(FsError::BadHandle);
        }
        let _gate = self.write_gate.read();
        let ctx = self.data_context();
        let stored = content::store_whole_blocks(&self.store, self.block_size, offset, data)?;
        file.content
            .lock()
            .write(file.ino, &ctx, offset, data, &stored)?;
        self.mark_file_data(file.ino);
        Ok(data.len())
    }

    /// Called at every close(2) of a descriptor: the file's buffered blocks go to the chunk
    /// store, so that an un-fsynced but closed file is in the next periodic commit.
    pub fn flush(&self, fh: u64) -> FsResult<()> {
        let file = self.handles.file(fh)?;
        self.seal_file(&file)
    }

    fn seal_file(&self, file: &OpenFile) -> FsResult<()> {
        let mut state = file.content.lock();
        if state.is_dirty() {
            state.seal_all(file.ino, &self.data_context())?;
            drop(state);
            self.mark_file_data(file.ino);
        }
        Ok(())
    }

    /// Makes the file's data and all metadata changed so far durable.
    pub fn fsync(&self, fh: u64) -> FsResult<()> {
        let file = self.handles.file(fh)?;
        self.seal_file(&file)?;
        self.commit_now()
    }

    /// Makes everything changed so far durable (fsyncdir, syncfs).
    pub fn sync_all(&self) -> FsResult<()> {
        self.commit_now()
    }

    pub fn release(&self, fh: u64) -> FsResult<()> {
        let file = self.handles.close_file(fh)?;
        let sealed = self.seal_file(&file);
        let tree = self.tree.read();
        let Some(node) = tree.nodes.get(&file.ino) else {
            return sealed;
        };
        let last = node.open_handles.fetch_sub(1, Ordering::AcqRel) == 1;
        if last && node.record.nlink == 0 {
            drop(tree);
            let mut tree = self.tree.write();
            let still_unused = tree.nodes.get(&file.ino).is_some_and(|n| {
                n.record.nlink == 0 && n.open_handles.load(Ordering::Acquire) == 0
            });
            if still_unused {
                self.purge(&mut tree, file.ino);
            }
        } else if last && let Some(_no_commit) = self.commits.idle() {
            // Not while a commit holds changes taken from the file and not yet written: the
            // block map loaded again from the database would be the old one.
            file.content.lock().evict();
        }
        sealed
    }

    /// fallocate: mode 0 (allocate, growing the file) and KEEP_SIZE. Space is not reserved:
    /// blocks are allocated when written, so the call only changes the size.
    pub fn fallocate(&self, fh: u64, offset: u64, len: u64, mode: i32) -> FsResult<()> {
        self.check_writable()?;
        let file = self.handles.file(fh)?;
        if len == 0 {
            return Err(FsError::InvalidArgument);
        }
        let end = offset.checked_add(len).ok_or(FsError::FileTooLarge)?;
        let _gate = self.write_gate.read();
        match mode {
            0 => {
                let mut state = file.content.lock();
                if end > state.size {
                    state.truncate(file.ino, &self.data_context(), end)?;
                    drop(state);
                    self.mark_file_data(file.ino);
                }
                Ok(())
            }
            libc::FALLOC_FL_KEEP_SIZE => Ok(()),
            _ => Err(FsError::NotSupported),
        }
    }

    pub fn statfs(&self) -> FsResult<FsStats> {
        // The share can hold what the file system under the store can hold.
        let host = nix::sys::statvfs::statvfs(&self.store_dir).map_err(std::io::Error::from)?;
        let files = self.tree.read().nodes.len() as u64;
        let block_size = 4096u32;
        let scale = |n: u64| n * host.fragment_size() / u64::from(block_size);
        Ok(FsStats {
            block_size,
            blocks: scale(host.blocks()),
            blocks_free: scale(host.blocks_free()),
            blocks_available: scale(host.blocks_available()),
            files: files + host.files_free(),
            files_free: host.files_free(),
        })
    }
}
