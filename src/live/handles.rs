//! Open file and directory handles. Reads and writes find their file here, under a read lock
//! that only `open` and `release` take for writing.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};

use super::content::FileContent;
use super::dir::DirEntry;
use super::error::{FsError, FsResult};
use crate::id::InodeNo;

/// An open regular file.
#[derive(Clone)]
pub struct OpenFile {
    pub ino: InodeNo,
    pub content: Arc<FileContent>,
    pub writable: bool,
}

#[derive(Default)]
pub struct Handles {
    next: AtomicU64,
    files: RwLock<HashMap<u64, OpenFile>>,
    /// A directory listing is taken at opendir, so that readdir offsets stay stable while the
    /// directory changes (POSIX allows a listing that misses concurrent changes).
    dirs: Mutex<HashMap<u64, Arc<Vec<DirEntry>>>>,
}

impl Handles {
    fn allocate(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub fn open_file(&self, file: OpenFile) -> u64 {
        let fh = self.allocate();
        self.files.write().insert(fh, file);
        fh
    }

    pub fn file(&self, fh: u64) -> FsResult<OpenFile> {
        self.files
            .read()
            .get(&fh)
            .cloned()
            .ok_or(FsError::BadHandle)
    }

    pub fn close_file(&self, fh: u64) -> FsResult<OpenFile> {
        self.files.write().remove(&fh).ok_or(FsError::BadHandle)
    }

    /// Every inode with a handle open for writing, each once.
    pub fn writable_inodes(&self) -> Vec<InodeNo> {
        let mut inodes: Vec<InodeNo> = self
            .files
            .read()
            .values()
            .filter(|file| file.writable)
            .map(|file| file.ino)
            .collect();
        inodes.sort_unstable();
        inodes.dedup();
        inodes
    }

    pub fn open_dir(&self, entries: Vec<DirEntry>) -> u64 {
        let fh = self.allocate();
        self.dirs.lock().insert(fh, Arc::new(entries));
        fh
    }

    pub fn dir(&self, fh: u64) -> FsResult<Arc<Vec<DirEntry>>> {
        self.dirs.lock().get(&fh).cloned().ok_or(FsError::BadHandle)
    }

    /// Closes a directory handle, returning its listing.
    pub fn close_dir(&self, fh: u64) -> Option<Arc<Vec<DirEntry>>> {
        self.dirs.lock().remove(&fh)
    }

    /// How many files and directories are open.
    pub fn count(&self) -> usize {
        self.files.read().len() + self.dirs.lock().len()
    }
}
