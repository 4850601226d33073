//! The kernel's writeback cache, seen from the daemon: how a snapshot gets the writes the kernel
//! still holds.
//!
//! With `FUSE_WRITEBACK_CACHE` a write(2) returns once its data is in the kernel's page cache.
//! The kernel hands a file's dirty pages over at close, under memory pressure, and at fsync.
//! Only fsync waits until the daemon has replied to every write it sent (`syncfs` can return
//! while a write is still on its way), so before a freeze the daemon opens each file open for
//! writing through its own mountpoint and fsyncs that descriptor. The kernel's writes, and the
//! open, flush and release of that descriptor, are served by the other FUSE threads while the
//! requesting thread waits: a mount with the writeback cache needs at least two.
//!
//! The fsync request that follows reaches the daemon too; from one of its own threads it needs
//! no durable commit (the snapshot commits), see [`from_this_process`].

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use crate::id::InodeNo;

/// Writes back what the kernel holds of the file `ino`, found at `path` under `mount`, and
/// waits for it. A file renamed or removed in between is skipped: its inode is checked after
/// the open. Failures are logged, not returned: the snapshot goes on with what the share has.
pub fn hand_over(mount: &Path, ino: InodeNo, path: &[u8]) {
    let full = mount.join(OsStr::from_bytes(path));
    let open = |write: bool| {
        std::fs::OpenOptions::new()
            .read(!write)
            .write(write)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&full)
    };
    // A daemon run by the share's owner may not read every file; writing is then allowed.
    let file = match open(false).or_else(|_| open(true)) {
        Ok(file) => file,
        Err(err) => {
            tracing::warn!(%ino, path = %full.display(), "cannot open to collect held writes: {err}");
            return;
        }
    };
    match file.metadata() {
        Ok(meta) if meta.ino() == ino.0 => {}
        _ => {
            tracing::debug!(%ino, "moved before its held writes were collected; skipped");
            return;
        }
    }
    if let Err(err) = file.sync_all() {
        tracing::warn!(%ino, path = %full.display(), "cannot collect held writes: {err}");
    }
}

/// Whether a request came from one of this daemon's own threads (the kernel gives the thread
/// id, not the process id).
pub fn from_this_process(pid: u32) -> bool {
    pid == std::process::id() || Path::new(&format!("/proc/self/task/{pid}")).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_of_this_process_is_recognised_and_another_process_is_not() {
        let here = nix::unistd::gettid().as_raw() as u32;
        let other = std::thread::spawn(|| nix::unistd::gettid().as_raw() as u32);
        assert!(from_this_process(here));
        assert!(from_this_process(std::process::id()));
        assert!(!from_this_process(1), "init is not this process");
        other.join().expect("thread");
    }
}
