//! Running the mount daemon in the background (`snapfs mount --daemon`, and the `mount(8)`
//! helper) and telling whoever started it when the share serves: the waiting parent through a
//! pipe, systemd through `NOTIFY_SOCKET` (`READY=1`, then `STOPPING=1`).
//!
//! The daemon forks before it starts a single thread: a fork copies only the calling thread, so
//! a runtime, pool or FUSE thread started before it would be missing in the child while its
//! locks stayed held. The parent returns only once the child reports the mount ready (exit 0)
//! or failed (exit 1, with the child's reason), as `mount(8)` and boot scripts expect.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::{Arc, Mutex};

use nix::fcntl::OFlag;
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, chdir, dup2_stderr, dup2_stdin, dup2_stdout, fork, pipe2, setsid};

/// Why the daemon could not be started in the background.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot go into the background: {0} threads are already running")]
    Threaded(usize),
    #[error("cannot open the log file {path}: {source}")]
    LogFile {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot go into the background: {0}")]
    Sys(#[from] nix::Error),
    #[error("cannot go into the background: {0}")]
    Io(#[from] std::io::Error),
}

/// The report of a daemon's readiness, shared by the thread that starts the mount, the thread
/// that probes it and the signal thread. Cheap to clone; every report after the first of
/// `ready`/`failed` goes to systemd only.
#[derive(Clone, Default)]
pub struct Readiness {
    /// The write end of the pipe the waiting parent reads (`--daemon` only); taken by the first
    /// report, so the parent sees exactly one.
    parent: Arc<Mutex<Option<File>>>,
}

/// What the child writes into the pipe once the mount serves; anything else is an error text.
const READY_WORD: &str = "ready";

impl Readiness {
    /// For a daemon that stays in the foreground: reports go to systemd only (if it listens).
    pub fn foreground() -> Self {
        Self::default()
    }

    /// The share serves: tell systemd (`READY=1`) and the waiting parent.
    pub fn ready(&self, status: &str) {
        // Without NOTIFY_SOCKET this does nothing; a failure to reach systemd is only logged,
        // since the share serves either way (systemd then times the unit out, as it should).
        if let Err(err) = sd_notify::notify(&[
            sd_notify::NotifyState::Ready,
            sd_notify::NotifyState::Status(status),
        ]) {
            tracing::warn!("cannot notify systemd of readiness: {err}");
        }
        self.tell_parent(READY_WORD);
    }

    /// The mount failed before it was ready: the waiting parent prints `reason` and fails.
    /// The pipe stays open until this process exits, so that the parent returns only once
    /// nothing of the failed daemon is left running.
    pub fn failed(&self, reason: &str) {
        if let Ok(pipe) = self.parent.lock().as_mut()
            && let Some(pipe) = pipe.as_mut()
        {
            let _ = pipe.write_all(reason.as_bytes());
        }
    }

    /// The daemon is unmounting: `STOPPING=1`, so that systemd shows the unit as deactivating.
    pub fn stopping(&self) {
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    }

    /// Writes `text` and closes the pipe: the parent returns at once.
    fn tell_parent(&self, text: &str) {
        let taken = self.parent.lock().map(|mut pipe| pipe.take());
        if let Ok(Some(mut pipe)) = taken {
            // The parent may have died (killed while waiting): nothing is left to tell.
            let _ = pipe.write_all(text.as_bytes());
        }
    }
}

/// Goes into the background and returns in the daemon only, with the [`Readiness`] through
/// which it reports to the process that started it; that process waits for the report and
/// exits 0 once the mount serves, 1 with the reason when it failed.
///
/// The daemon is the grandchild (fork, `setsid`, fork): it leads no session, so it can never
/// acquire a controlling terminal, and it belongs to no shell's job. Its standard input and
/// output are `/dev/null`, its standard error (where logs go unless they go to the journal) is
/// `log_file`, or `/dev/null` without one; its working directory is `/`, so that it keeps no
/// directory of the caller's busy. Paths given to it must therefore be absolute.
pub fn daemonize(log_file: Option<&Path>) -> Result<Readiness, DaemonError> {
    let threads = thread_count();
    if threads > 1 {
        return Err(DaemonError::Threaded(threads));
    }
    // Opened before forking, so that a bad path is reported by the caller itself.
    let log = match log_file {
        Some(path) => std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| DaemonError::LogFile {
                path: path.to_owned(),
                source,
            })?,
        None => File::options().write(true).open("/dev/null")?,
    };
    // Close-on-exec: a hook the daemon runs must not hold the parent waiting.
    let (read_end, write_end) = pipe2(OFlag::O_CLOEXEC)?;
    // SAFETY: the process has one thread (checked above), so the child is a complete copy of
    // it: no lock can be held by a thread that does not exist in the child.
    match unsafe { fork() }? {
        ForkResult::Parent { child } => {
            drop(write_end);
            // The intermediate child exits as soon as it has forked the daemon; reaping it
            // leaves no zombie behind (the daemon itself is adopted by init).
            let _ = waitpid(child, None);
            std::process::exit(wait_for_report(read_end));
        }
        ForkResult::Child => {}
    }
    drop(read_end);
    setsid()?;
    // SAFETY: still one thread, as above.
    if let ForkResult::Parent { .. } = unsafe { fork() }? {
        // The intermediate child: its exit makes the daemon an orphan that no session leads.
        // `_exit`: nothing of the parent's (buffers, atexit handlers) may run twice.
        // SAFETY: `_exit` only ends the process.
        unsafe { libc::_exit(0) };
    }
    chdir("/")?;
    let null = File::options().read(true).write(true).open("/dev/null")?;
    dup2_stdin(&null)?;
    dup2_stdout(&null)?;
    dup2_stderr(&log)?;
    Ok(Readiness {
        parent: Arc::new(Mutex::new(Some(File::from(write_end)))),
    })
}

/// Waits for the daemon's one report; returns the exit status for the waiting process.
fn wait_for_report(read_end: OwnedFd) -> i32 {
    let mut report = String::new();
    let mut pipe = File::from(read_end);
    // Read to the end: the daemon closes the pipe after its report, or dies without one.
    let read = pipe.read_to_string(&mut report);
    match (read, report.as_str()) {
        (Ok(_), READY_WORD) => 0,
        (Ok(_), "") | (Err(_), _) => {
            eprintln!("snapfs: the daemon ended before the mount was ready (see its log)");
            1
        }
        (Ok(_), reason) => {
            eprintln!("snapfs: {reason}");
            1
        }
    }
}

/// The number of threads of this process, from `/proc/self/status` (1 if it cannot be read:
/// the check is a guard against a future change of `main`, not a feature).
fn thread_count() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                line.strip_prefix("Threads:")
                    .and_then(|n| n.trim().parse().ok())
            })
        })
        .unwrap_or(1)
}
