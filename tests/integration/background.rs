//! Daemons that run in the background (`snapfs mount --daemon`, the `mount(8)` helper): found
//! by their mountpoint, stopped on every path by a guard, and reaped by the test process, which
//! makes itself their subreaper so that their exit status can be checked.

use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::{Duration, Instant};

use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::harness::{SNAPFS, is_mounted};

/// Makes this test process the subreaper of the processes its children leave behind: a
/// daemon (a grandchild, after its double fork) is then reparented to it, not to PID 1, and
/// its exit status can be collected. Reaping is by pid only, so no other test's child is
/// touched.
pub fn become_subreaper() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes one integer and touches no memory.
        let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        assert_eq!(rc, 0, "prctl: {}", std::io::Error::last_os_error());
    });
}

/// Live (not zombie) processes whose command line holds `word` as one of its arguments.
pub fn processes_with_arg(word: &Path) -> Vec<i32> {
    let word = word.as_os_str().as_encoded_bytes();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if cmdline.split(|b| *b == 0).any(|arg| arg == word) && !is_zombie(pid) {
            found.push(pid);
        }
    }
    found
}

fn is_zombie(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_none_or(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => true,
    }
}

/// Waits until no live process has `mnt` among its arguments: a failed start leaves nothing.
pub fn assert_nothing_left(mnt: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = processes_with_arg(mnt);
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "processes left behind for {}: {left:?}",
            mnt.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A daemon serving `mnt` in the background. Dropping it unmounts and ends the daemon, so a
/// failing test leaves nothing behind.
pub struct BackgroundDaemon {
    pub mnt: PathBuf,
    pid: Option<i32>,
}

impl BackgroundDaemon {
    /// The one daemon serving `mnt` (started by a command that has returned).
    pub fn find(mnt: &Path) -> Self {
        let pids = processes_with_arg(mnt);
        // The guard exists before the check, so that even a failed check stops the daemon.
        let daemon = BackgroundDaemon {
            mnt: mnt.to_owned(),
            pid: pids.first().copied(),
        };
        assert_eq!(pids.len(), 1, "one daemon for {}: {pids:?}", mnt.display());
        daemon
    }

    pub fn pid(&self) -> i32 {
        self.pid.expect("running")
    }

    /// Waits for the daemon to exit (after an unmount) and checks it exited with status 0.
    pub fn assert_exits_cleanly(&mut self) {
        let pid = self.pid.take().expect("running");
        let status = waitpid(Pid::from_raw(pid), None).expect("waitpid (are we its subreaper?)");
        assert_eq!(status, WaitStatus::Exited(Pid::from_raw(pid), 0));
        assert!(
            !is_mounted(&self.mnt),
            "still mounted after the daemon exited"
        );
    }
}

impl Drop for BackgroundDaemon {
    fn drop(&mut self) {
        let Some(pid) = self.pid.take() else {
            return;
        };
        let _ = std::process::Command::new(SNAPFS)
            .arg("umount")
            .arg(&self.mnt)
            .args(["--timeout", "10"])
            .output();
        if is_mounted(&self.mnt) {
            let _ = nix::mount::umount2(&self.mnt, nix::mount::MntFlags::MNT_DETACH);
        }
        let pid = Pid::from_raw(pid);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = waitpid(pid, None);
    }
}
