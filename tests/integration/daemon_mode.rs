//! `snapfs mount --daemon`: the command returns only once the share serves (exit 0), or once
//! the mount has failed (non-zero, with the reason, and nothing left running); the daemon then
//! logs to its file and stops cleanly on unmount.

use std::path::Path;
use std::process::{Command, Output};

use crate::background::{BackgroundDaemon, assert_nothing_left, become_subreaper};
use crate::harness::{SNAPFS, is_mounted, snapfs_ok};

fn mount_daemon(store: &Path, mnt: &Path, extra: &[&str]) -> Output {
    Command::new(SNAPFS)
        .arg("mount")
        .arg("--daemon")
        .arg(store)
        .arg(mnt)
        .args(extra)
        .output()
        .expect("running snapfs mount --daemon")
}

fn new_store(dir: &Path) -> std::path::PathBuf {
    let store = dir.join("store");
    snapfs_ok(&["init", store.to_str().expect("utf-8")]);
    store
}

#[test]
fn daemon_returns_once_the_share_serves_and_stops_cleanly() {
    become_subreaper();
    let dir = tempfile::tempdir_in("/var/tmp").expect("tempdir");
    let store = new_store(dir.path());
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).expect("mountpoint");
    let log = dir.path().join("daemon.log");
    let out = mount_daemon(&store, &mnt, &["--log-file", log.to_str().expect("utf-8")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut daemon = BackgroundDaemon::find(&mnt);
    // No wait of any kind: the share serves the moment the command has returned.
    assert!(is_mounted(&mnt), "mounted when --daemon returned");
    std::fs::write(mnt.join("hello"), b"served").expect("write right after the return");
    assert_eq!(std::fs::read(mnt.join("hello")).expect("read"), b"served");
    // A daemon: in a session of its own (not the caller's), and not its leader, so it can
    // never take a terminal.
    let pid = nix::unistd::Pid::from_raw(daemon.pid());
    let sid = nix::unistd::getsid(Some(pid)).expect("getsid");
    assert_ne!(sid, nix::unistd::getsid(None).expect("own sid"));
    assert_ne!(sid, pid, "the daemon leads no session");
    snapfs_ok(&["umount", mnt.to_str().expect("utf-8")]);
    daemon.assert_exits_cleanly();
    let logged = std::fs::read_to_string(&log).expect("the log file");
    assert!(
        logged.contains("mounted") && logged.contains("unmounted; store closed"),
        "{logged}"
    );
    assert!(
        !logged.contains('\u{1b}'),
        "no terminal colours in a log file"
    );
    // The data was committed by the clean stop.
    let out = mount_daemon(&store, &mnt, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut again = BackgroundDaemon::find(&mnt);
    assert_eq!(std::fs::read(mnt.join("hello")).expect("read"), b"served");
    snapfs_ok(&["umount", mnt.to_str().expect("utf-8")]);
    again.assert_exits_cleanly();
}

#[test]
fn daemon_fails_with_the_reason_and_leaves_nothing_running() {
    become_subreaper();
    let dir = tempfile::tempdir_in("/var/tmp").expect("tempdir");
    let store = new_store(dir.path());
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).expect("mountpoint");
    let fails = |store: &Path, mnt: &Path, expected: &str| {
        let out = mount_daemon(store, mnt, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "should fail: {stderr}");
        assert!(
            stderr.contains(expected),
            "expected {expected:?} in {stderr:?}"
        );
        assert!(!is_mounted(mnt));
        assert_nothing_left(mnt);
    };
    let not_a_store = dir.path().join("not-a-store");
    std::fs::create_dir(&not_a_store).expect("dir");
    fails(&not_a_store, &mnt, "is not a snapfs store");
    fails(
        &store,
        &dir.path().join("missing"),
        "No such file or directory",
    );
    let full = dir.path().join("full");
    std::fs::create_dir(&full).expect("dir");
    std::fs::write(full.join("file"), b"x").expect("file");
    fails(&store, &full, "is not empty");
    // The same store, already served elsewhere.
    let out = mount_daemon(&store, &mnt, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut first = BackgroundDaemon::find(&mnt);
    let other = dir.path().join("other");
    std::fs::create_dir(&other).expect("dir");
    fails(&store, &other, "already in use by process");
    let out = Command::new(SNAPFS)
        .args(["mount", "--daemon", "--log-file", "/nonexistent-dir/log"])
        .arg(&store)
        .arg(&other)
        .output()
        .expect("snapfs");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot open the log file"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    snapfs_ok(&["umount", mnt.to_str().expect("utf-8")]);
    first.assert_exits_cleanly();
}
