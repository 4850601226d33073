//! The kernel's writeback cache, seen from the daemon: how a snapshot gets the writes the kernel
//! still holds.
//!
//! With `FUSE_WRITEBACK_CACHE` a write(2) returns once its data is in the kernel's page cache.
//! The kernel hands a file's dirty pages over at close, under memory pressure, and at fsync.
//! Only fsync waits until the daemon has replied to every write it sent (`syncfs` can return
//! while a write is still on its way), so before a freeze each file open for writing is opened
//! through the daemon's own mountpoint and that descriptor fsynced. The kernel's writes, and the
//! open, flush and release of that descriptor, are served by the other FUSE threads while the
//! requesting thread waits: a mount with the writeback cache needs at least two.
//!
//! The fsync request that follows reaches the daemon too; from the daemon's own helper it
//! needs no durable commit (the snapshot commits), see [`from_this_process`].
//!
//! The descriptor is opened by a child process, never by the daemon: a process that holds a
//! file of its own mount cannot die. Closing a FUSE file sends a `FLUSH` the kernel waits for
//! without end, and at `kill -9` the dying daemon closes its files before its connection, so
//! one held by the daemon itself left it a zombie holding the mount and the store lock for
//! good (`durability::kill_9_during_snapshots_of_open_files_ends_the_daemon`). The child holds
//! nothing else: at the daemon's death the connection goes, and the child's requests fail.

use std::ffi::CString;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use crate::id::InodeNo;

/// What became of one file in the child (one byte each, through a pipe).
const HANDED_OVER: u8 = 0;
const MOVED: u8 = 1;
const CANNOT_OPEN: u8 = 2;
const CANNOT_SYNC: u8 = 3;

/// Writes back what the kernel holds of each file `(ino, path)`, `path` under `mount`, and
/// waits for it, in one child process. A file renamed or removed in between is skipped: its
/// inode is checked after the open. Failures are logged, not returned: the snapshot goes on
/// with what the share has.
pub fn hand_over(mount: &Path, files: &[(InodeNo, Vec<u8>)]) {
    if files.is_empty() {
        return;
    }
    // Everything the child needs is made before the fork: it may not allocate. (A name holds
    // no NUL byte; a path that did could not be opened anyway.)
    let paths: Vec<(CString, InodeNo)> = files
        .iter()
        .filter_map(|(ino, path)| {
            let full = mount.join(std::ffi::OsStr::from_bytes(path));
            Some((CString::new(full.into_os_string().into_vec()).ok()?, *ino))
        })
        .collect();
    let (from_child, to_parent) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
        Ok(pipe) => pipe,
        Err(err) => {
            tracing::warn!("cannot collect held writes: no pipe: {err}");
            return;
        }
    };
    // SAFETY: between fork and _exit the child makes system calls only (no allocation, no
    // lock), which is what a child of a multi-threaded process may do.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        unsafe { hand_over_in_child(&paths, to_parent.as_raw_fd()) };
    }
    drop(to_parent);
    if pid < 0 {
        tracing::warn!(
            "cannot start a process to collect held writes: {}",
            std::io::Error::last_os_error()
        );
        return;
    }
    let mut outcomes = Vec::with_capacity(paths.len());
    let _ = std::fs::File::from(from_child).read_to_end(&mut outcomes);
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
    // One byte per path, in order; a child that died early left the rest unsaid.
    for (index, (path, ino)) in paths.iter().enumerate() {
        match outcomes.get(index).copied() {
            Some(HANDED_OVER) => {}
            Some(MOVED) => {
                tracing::debug!(%ino, "moved before its held writes were collected; skipped")
            }
            Some(CANNOT_OPEN) => {
                tracing::warn!(%ino, ?path, "cannot open to collect held writes")
            }
            _ => tracing::warn!(%ino, ?path, "cannot collect held writes"),
        }
    }
}

/// The child's part: closes every descriptor it inherited but the pipe to its parent (the FUSE
/// device's among them: holding one would keep the connection alive after the daemon's
/// death), then for each file opens it, checks it is the inode wanted, fsyncs it, and writes
/// what became of it to the pipe. Never returns.
///
/// # Safety
/// Only in a child just forked: it makes system calls alone.
unsafe fn hand_over_in_child(paths: &[(CString, InodeNo)], to_parent: i32) -> ! {
    unsafe {
        let pipe = to_parent as u32;
        if pipe > 0 {
            libc::syscall(libc::SYS_close_range, 0u32, pipe - 1, 0u32);
        }
        libc::syscall(libc::SYS_close_range, pipe + 1, u32::MAX, 0u32);
        for (path, ino) in paths {
            let outcome = [one_file(path, ino.0)];
            libc::write(to_parent, outcome.as_ptr().cast(), 1);
        }
        libc::_exit(0)
    }
}

/// # Safety
/// As [`hand_over_in_child`].
unsafe fn one_file(path: &CString, ino: u64) -> u8 {
    unsafe {
        let flags = libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC;
        // A daemon run by the share's owner may not read every file; writing is then allowed.
        let mut fd = libc::open(path.as_ptr(), libc::O_RDONLY | flags);
        if fd < 0 {
            fd = libc::open(path.as_ptr(), libc::O_WRONLY | flags);
        }
        if fd < 0 {
            return CANNOT_OPEN;
        }
        let mut stat: libc::stat = std::mem::zeroed();
        let outcome = if libc::fstat(fd, &mut stat) != 0 || stat.st_ino != ino {
            MOVED
        } else if libc::fsync(fd) != 0 {
            CANNOT_SYNC
        } else {
            HANDED_OVER
        };
        libc::close(fd);
        outcome
    }
}

/// Whether a request came from this daemon: one of its threads (the kernel gives the thread
/// id, not the process id), or a child of it (the helper of [`hand_over`]).
pub fn from_this_process(pid: u32) -> bool {
    let ours = std::process::id();
    if pid == ours || Path::new(&format!("/proc/self/task/{pid}")).exists() {
        return true;
    }
    std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|status| {
        status
            .lines()
            .find_map(|line| line.strip_prefix("PPid:"))
            .is_some_and(|parent| parent.trim() == ours.to_string())
    })
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
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .expect("sleep");
        assert!(from_this_process(child.id()), "a child of this process");
        child.kill().expect("kill");
        child.wait().expect("wait");
    }
}
