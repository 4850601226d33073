//! The store lock: an exclusive `flock` on `STORE/lock`, held for as long as a process has the
//! store open for writing. A second mount of the same store is refused instead of corrupting it.
//! The kernel drops the lock when the holder dies, so a crashed daemon leaves nothing to clean.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

pub const LOCK_FILE: &str = "lock";

/// Held while the store is open; the lock is released when this is dropped.
pub struct StoreLock {
    _file: File,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("the store is already in use by process {holder} (is it mounted?)")]
    Busy { holder: String },
    #[error("cannot lock the store: {0}")]
    Io(io::Error),
}

impl From<io::Error> for LockError {
    fn from(err: io::Error) -> Self {
        LockError::Io(err)
    }
}

impl StoreLock {
    pub fn acquire(store_dir: &Path) -> Result<Self, LockError> {
        let path = store_dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                let holder = holder.trim();
                return Err(LockError::Busy {
                    holder: if holder.is_empty() { "unknown" } else { holder }.to_owned(),
                });
            }
            Err(TryLockError::Error(err)) => return Err(err.into()),
        }
        file.set_len(0)?;
        file.rewind()?;
        writeln!(file, "{}", std::process::id())?;
        Ok(StoreLock { _file: file })
    }
}

/// The pid recorded by the process that holds the lock, if the store is locked right now.
pub fn holder(store_dir: &Path) -> Option<u32> {
    let path = store_dir.join(LOCK_FILE);
    let file = File::open(&path).ok()?;
    match file.try_lock_shared() {
        Ok(()) => None,
        Err(_) => std::fs::read_to_string(&path).ok()?.trim().parse().ok(),
    }
}
