//! A real snapfs mount for tests: a fresh store in a temporary directory, served by the
//! `snapfs` binary as a child process. Dropping a [`Mounted`] always unmounts (lazily if it must)
//! and reaps the daemon, so a failing test never leaves a mount behind.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SNAPFS: &str = env!("CARGO_BIN_EXE_snapfs");

pub struct Mounted {
    /// Holds the store and the mountpoint; removed last.
    pub dir: tempfile::TempDir,
    pub store: PathBuf,
    pub mnt: PathBuf,
    /// Added to `snapfs mount` (change it before [`Mounted::mount`] to remount differently).
    pub extra_args: Vec<String>,
    /// Added to the daemon's environment (S3 settings for scheduled backups).
    pub extra_env: Vec<(String, String)>,
    daemon: Option<Child>,
}

pub fn is_mounted(mnt: &Path) -> bool {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else {
        return false;
    };
    let wanted = mnt.to_string_lossy().replace(' ', "\\040");
    mounts
        .lines()
        .any(|line| line.split(' ').nth(1) == Some(wanted.as_str()))
}

/// Aborts the FUSE connection of the mount at `mnt`, as an administrator ends a daemon that
/// cannot end (`/sys/fs/fuse/connections/N/abort`, N the mount's device minor, read from
/// mountinfo: a `stat` of a dead mount would hang).
pub fn abort_connection(mnt: &Path) {
    let connections = Path::new("/sys/fs/fuse/connections");
    if std::fs::read_dir(connections).is_ok_and(|mut dir| dir.next().is_none()) {
        let _ = Command::new("mount")
            .args(["-t", "fusectl", "none"])
            .arg(connections)
            .status();
    }
    let wanted = mnt.to_string_lossy().replace(' ', "\\040");
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        if fields.get(4) == Some(&wanted.as_str())
            && let Some((_, minor)) = fields.get(2).and_then(|dev| dev.split_once(':'))
        {
            let _ = std::fs::write(connections.join(minor).join("abort"), "1");
        }
    }
}

/// Reproducible incompressible bytes (xorshift), distinct for each seed.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Bytes in the store's pack files: what the store takes on disk for data.
pub fn pack_bytes(store: &Path) -> u64 {
    std::fs::read_dir(store.join("packs"))
        .expect("packs directory")
        .map(|e| e.expect("entry").metadata().expect("metadata").len())
        .sum()
}

/// Runs `sh -c script` as nobody:nogroup; returns its output.
pub fn as_nobody(script: &str) -> std::process::Output {
    Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "sh",
            "-c",
            script,
        ])
        .output()
        .expect("setpriv")
}

/// `path` for a libc call.
pub fn c_path(path: &std::path::Path) -> std::ffi::CString {
    std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap()
}

/// Sets an extended attribute, which must succeed.
pub fn xattr_set(path: &std::path::Path, name: &str, value: &[u8]) {
    let name = std::ffi::CString::new(name).unwrap();
    // SAFETY: valid C strings and a buffer of the given length.
    let rc = unsafe {
        libc::setxattr(
            c_path(path).as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    assert_eq!(rc, 0, "setxattr: {}", std::io::Error::last_os_error());
}

/// An extended attribute's value (at most 4 KiB), or the error `getxattr(2)` gave.
pub fn get_xattr(path: &std::path::Path, name: &str) -> std::io::Result<Vec<u8>> {
    let name = std::ffi::CString::new(name).unwrap();
    let mut buf = vec![0u8; 4096];
    // SAFETY: valid C strings and a writable buffer of the given length.
    let n = unsafe {
        libc::getxattr(
            c_path(path).as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

/// An extended attribute's value, or `None` if it is absent.
pub fn xattr_get(path: &std::path::Path, name: &str) -> Option<Vec<u8>> {
    match get_xattr(path, name) {
        Ok(value) => Some(value),
        Err(err) => {
            assert_eq!(err.raw_os_error(), Some(libc::ENODATA));
            None
        }
    }
}

pub fn snapfs(args: &[&str]) -> std::process::Output {
    Command::new(SNAPFS)
        .args(args)
        .output()
        .expect("running snapfs")
}

/// Polls `done` until it holds, failing the test with `what` after `secs` seconds: for what a
/// daemon does in its own time (a scheduled snapshot, a hook, a kernel notice).
pub fn wait_for(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `snapfs` and returns its standard output, failing the test if it fails.
pub fn snapfs_ok(args: &[&str]) -> String {
    let out = snapfs(args);
    assert!(
        out.status.success(),
        "snapfs {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `snapfs`, expecting it to fail; returns its standard error.
pub fn snapfs_err(args: &[&str]) -> String {
    let out = snapfs(args);
    assert!(
        !out.status.success(),
        "snapfs {args:?} should have failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

impl Mounted {
    /// A new store, mounted with `extra_args` added to `snapfs mount`.
    pub fn new_with(init_args: &[&str], extra_args: &[&str]) -> Self {
        Self::new_in(&test_root(), init_args, extra_args)
    }

    /// The same, with the store and mountpoint in a new directory under `root` (e.g. on a
    /// small file system of the test's own).
    pub fn new_in(root: &Path, init_args: &[&str], extra_args: &[&str]) -> Self {
        Self::new_full(root, init_args, extra_args, &[])
    }

    /// A new store, mounted with `extra_args` and a daemon environment with `env` added.
    pub fn new_with_env(init_args: &[&str], extra_args: &[&str], env: &[(&str, String)]) -> Self {
        Self::new_full(&test_root(), init_args, extra_args, env)
    }

    fn new_full(
        root: &Path,
        init_args: &[&str],
        extra_args: &[&str],
        env: &[(&str, String)],
    ) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("snapfs-test-")
            .tempdir_in(root)
            .expect("tempdir");
        let store = dir.path().join("store");
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).expect("mountpoint");
        let mut args = vec!["init", store.to_str().expect("utf-8 path")];
        args.extend_from_slice(init_args);
        let out = Command::new(SNAPFS)
            .args(&args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("running snapfs init");
        assert!(
            out.status.success(),
            "init failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut mounted = Mounted {
            dir,
            store,
            mnt,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            extra_env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            daemon: None,
        };
        mounted.mount();
        mounted
    }

    pub fn new() -> Self {
        Self::new_with(&[], &[])
    }

    /// Mounts an existing store (a restored one, say) on a mountpoint of its own.
    pub fn open(store: PathBuf) -> Self {
        Self::open_with_env(store, &[])
    }

    /// The same, with `env` added to the daemon's environment.
    pub fn open_with_env(store: PathBuf, env: &[(&str, String)]) -> Self {
        let mut mounted = Self::unmounted(store, env);
        mounted.mount();
        mounted
    }

    /// `store` (or a follower's location), not mounted yet, on a mountpoint in a new directory
    /// of its own.
    fn unmounted(store: PathBuf, env: &[(&str, String)]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("snapfs-test-")
            .tempdir_in(test_root())
            .expect("tempdir");
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).expect("mountpoint");
        Mounted {
            dir,
            store,
            mnt,
            extra_args: Vec::new(),
            extra_env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            daemon: None,
        }
    }

    /// A follower of the tiered share at `location` (`snapfs mount --follow`), with its cache
    /// in the test's directory (`cache`), looking for new checkpoints twice a second.
    pub fn follow(location: &str, env: &[(&str, String)], extra_args: &[&str]) -> Self {
        let mut mounted = Self::unmounted(PathBuf::from(location), env);
        let cache = mounted.dir.path().join("cache");
        mounted.extra_args = [
            "--follow",
            "--cache-dir",
            cache.to_str().expect("utf-8"),
            "--refresh-interval",
            "0.5",
        ]
        .iter()
        .chain(extra_args)
        .map(|s| s.to_string())
        .collect();
        mounted.mount();
        mounted
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.mnt.join(relative)
    }

    pub fn mount(&mut self) {
        assert!(self.daemon.is_none(), "already mounted");
        let log = std::fs::File::create(self.dir.path().join("daemon.log")).expect("log file");
        let mut child = Command::new(SNAPFS)
            .arg("mount")
            .arg(&self.store)
            .arg(&self.mnt)
            .args(&self.extra_args)
            .envs(self.extra_env.iter().map(|(k, v)| (k, v)))
            .env("SNAPFS_LOG", "snapfs=info,fuser=error")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawning snapfs mount");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !is_mounted(&self.mnt) {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("snapfs mount exited with {status}: {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "mount did not appear: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        self.daemon = Some(child);
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    /// A clean unmount through `snapfs umount`, which waits for the daemon's last commit.
    pub fn unmount(&mut self) {
        let mut out = snapfs(&["umount", self.mnt.to_str().expect("utf-8 path")]);
        // A process another test thread is starting holds copies of this process's files
        // until its exec closes them: rarely, one of them is open in this mount for that
        // moment. Busy for longer than a few seconds is a real failure.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !out.status.success()
            && String::from_utf8_lossy(&out.stderr).contains("it is busy")
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(100));
            out = snapfs(&["umount", self.mnt.to_str().expect("utf-8 path")]);
        }
        assert!(
            out.status.success(),
            "umount failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let status = self.daemon.take().expect("mounted").wait().expect("wait");
        assert!(status.success(), "daemon failed: {}", self.log());
    }

    /// Unmounts with another tool (`fusermount3 -u`, `umount`, or a signal to the daemon) and
    /// checks that the daemon still finishes cleanly.
    pub fn unmount_with(&mut self, how: &mut Command) {
        let out = how.output().expect("running the unmount tool");
        assert!(
            out.status.success(),
            "{how:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let status = self.daemon.take().expect("mounted").wait().expect("wait");
        assert!(status.success(), "daemon failed: {}", self.log());
        assert!(!is_mounted(&self.mnt));
    }

    pub fn daemon_pid(&self) -> u32 {
        self.daemon.as_ref().expect("mounted").id()
    }

    pub fn remount(&mut self) {
        self.unmount();
        self.mount();
    }

    /// Kills the daemon with SIGKILL: no flush, no commit, as in a crash.
    pub fn kill9(&mut self) {
        let mut child = self.daemon.take().expect("mounted");
        // It may already be dead (killed from another thread); SIGKILL then changes nothing.
        let _ = child.kill();
        // A daemon waiting on a request to its own mount never ends (the answer could only
        // come from itself): a defect, which must fail the test, not hang the suite.
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let stuck = matches!(child.try_wait(), Ok(None));
        if stuck {
            abort_connection(&self.mnt);
        }
        child.wait().expect("wait");
        // The kernel keeps the dead mount until it is detached.
        let _ = nix::mount::umount2(&self.mnt, nix::mount::MntFlags::MNT_DETACH);
        let deadline = Instant::now() + Duration::from_secs(10);
        while is_mounted(&self.mnt) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!stuck, "the daemon did not end within 10 s of SIGKILL");
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            let _ = Command::new(SNAPFS)
                .arg("umount")
                .arg(&self.mnt)
                .arg("--timeout")
                .arg("10")
                .output();
            if is_mounted(&self.mnt) {
                let _ = nix::mount::umount2(&self.mnt, nix::mount::MntFlags::MNT_DETACH);
            }
            if !matches!(child.try_wait(), Ok(Some(_))) {
                std::thread::sleep(Duration::from_millis(200));
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}

/// Tests run on the disk, not in tmpfs, unless SNAPFS_TEST_DIR says otherwise.
fn test_root() -> PathBuf {
    let root = std::env::var_os("SNAPFS_TEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp"));
    std::fs::create_dir_all(&root).expect("test root");
    root
}

/// Writes one request line to a share's control file and returns the daemon's immediate reply
/// (for a long request, its job number), or the errno and reason of a refusal.
pub fn control_reply(m: &Mounted, line: &str) -> Result<serde_json::Value, (i32, String)> {
    let control = m.path(".snapshots/.control");
    let written = std::fs::write(&control, format!("{line}\n"));
    let status = std::fs::read_to_string(&control).expect("read the control file");
    let first = status.lines().next().unwrap_or_default().to_owned();
    match written {
        Ok(()) => {
            let reply = first
                .strip_prefix("last: ok: ")
                .unwrap_or_else(|| panic!("{first}"));
            Ok(serde_json::from_str(reply).expect("a JSON reply"))
        }
        Err(err) => Err((err.raw_os_error().unwrap_or(0), first)),
    }
}

/// Runs one request through a share's control file and returns the reply, or the errno and
/// reason of a failure. A long request (gc, verify, restore, clone, backup) runs as a background
/// job whose number is the first reply: this then waits for the job and returns its outcome.
pub fn control_wait(m: &Mounted, line: &str) -> Result<serde_json::Value, (i32, String)> {
    let reply = control_reply(m, line)?;
    let Some(job) = reply.get("job").and_then(|j| j.as_u64()) else {
        return Ok(reply);
    };
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let state = control_reply(m, &format!("job {job}"))?;
        match state["state"].as_str() {
            Some("done") => return Ok(state["result"].clone()),
            Some("failed") => {
                let errno = state["errno"].as_i64().unwrap_or(0) as i32;
                return Err((
                    errno,
                    state["error"].as_str().unwrap_or_default().to_owned(),
                ));
            }
            _ => {
                assert!(
                    Instant::now() < deadline,
                    "job {job} of {line:?} did not end"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}
