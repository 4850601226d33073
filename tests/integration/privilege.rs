//! Privilege: what other users reach through the history, and what the daemon (root) does for a
//! user who is not root. A version under `.snapshots/.history` is reachable only by someone who
//! could reach its path in its snapshot; the daemon acts outside the share only for root; and no
//! clone may go into the store it comes from, whoever asks.

use std::fs;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::Path;
use std::process::{Command, Output};

use crate::harness::{Mounted, as_nobody, snapfs, snapfs_err};

const NOBODY: u32 = 65534;

/// A mount other users may use, with its directories open to them.
fn shared_mount() -> Mounted {
    let m = Mounted::new_with(&[], &["--allow-other"]);
    for dir in [m.dir.path(), m.mnt.as_path()] {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
    }
    m
}

/// Runs a request through the control file and waits for it (long ones are background jobs).
fn control(m: &Mounted, command: &str) {
    crate::harness::control_wait(m, command).unwrap_or_else(|e| panic!("{command}: {e:?}"));
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Runs `bash -c script` as uid:gid with exactly the supplementary groups given (bash, because
/// it reports a failed write with its errno, where dash says "I/O error" for any).
fn as_user(uid: u32, gid: u32, groups: &[u32], script: &str) -> Output {
    let groups: Vec<String> = groups.iter().map(u32::to_string).collect();
    let mut command = Command::new("setpriv");
    command.arg(format!("--reuid={uid}"));
    command.arg(format!("--regid={gid}"));
    if groups.is_empty() {
        command.arg("--clear-groups");
    } else {
        command.arg(format!("--groups={}", groups.join(",")));
    }
    command
        .args(["bash", "-c", script])
        .output()
        .expect("setpriv")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn history_versions_need_search_permission_on_every_directory_above() {
    let m = shared_mount();
    fs::create_dir(m.path("private")).unwrap();
    fs::write(m.path("private/f"), "data\n").unwrap();
    chmod(&m.path("private/f"), 0o644);
    chmod(&m.path("private"), 0o700);
    fs::write(m.path("public"), "open\n").unwrap();
    chmod(&m.path("public"), 0o644);
    control(&m, "create s1");
    let mnt = m.mnt.display();
    let history = format!("{mnt}/.snapshots/.history");
    // Root walks everything first, so that the kernel has every entry in its caches.
    assert_eq!(
        fs::read_to_string(m.path(".snapshots/.history/private/f/@versions/s1")).unwrap(),
        "data\n"
    );
    assert!(fs::metadata(m.path(".snapshots/.history/private/@versions/s1")).is_ok());

    assert!(!as_nobody(&format!("cat {mnt}/private/f")).status.success());
    assert!(
        !as_nobody(&format!("cat {mnt}/.snapshots/s1/private/f"))
            .status
            .success()
    );
    for attempt in [
        format!("cat {history}/private/f/*"),
        format!("cat {history}/private/f/@versions/*"),
        format!("cat {history}/private/f/@versions/s1"),
        format!("ls {history}/private/f"),
        format!("ls {history}/private/f/@versions"),
        format!("stat {history}/private/f/@versions/s1"),
    ] {
        let out = as_nobody(&attempt);
        assert!(!out.status.success(), "{attempt}: {}", stdout(&out));
        assert!(
            !stdout(&out).contains("data"),
            "{attempt}: {}",
            stdout(&out)
        );
    }
    let listed = as_nobody(&format!("ls -a {history}/private/@versions"));
    assert!(listed.status.success(), "the directory itself is reachable");
    assert!(stdout(&listed).contains("s1"), "{}", stdout(&listed));
    let inside = as_nobody(&format!("ls {history}/private/@versions/s1"));
    assert!(!inside.status.success(), "but it is 0700, as in s1");
    let public = as_nobody(&format!("cat {history}/public/@versions/s1"));
    assert!(public.status.success(), "{public:?}");
    assert_eq!(stdout(&public), "open\n");

    // Opened up in a later snapshot: that snapshot's version is nobody's to read, the
    // earlier one still is not.
    chmod(&m.path("private"), 0o755);
    control(&m, "create s2");
    let versions = as_nobody(&format!("ls {history}/private/f/@versions"));
    assert!(versions.status.success(), "{versions:?}");
    assert_eq!(stdout(&versions), "s2\n");
    let read = as_nobody(&format!("cat {history}/private/f/@versions/s2"));
    assert_eq!(stdout(&read), "data\n");
    assert!(
        !as_nobody(&format!("cat {history}/private/f/@versions/s1"))
            .status
            .success(),
        "s1 and s2 hold the same file, but nobody could reach it in s1"
    );
    assert_eq!(
        fs::read_to_string(m.path(".snapshots/.history/private/f/@versions/s1")).unwrap(),
        "data\n",
        "root still reads every version"
    );
}

#[test]
fn history_permissions_follow_the_owner_and_every_group_of_the_reader() {
    let m = shared_mount();
    fs::create_dir(m.path("team")).unwrap();
    fs::write(m.path("team/plan"), "plan\n").unwrap();
    chmod(&m.path("team/plan"), 0o644);
    chown(m.path("team"), Some(1000), Some(2000)).unwrap();
    chmod(&m.path("team"), 0o710);
    control(&m, "create s");
    let plan = format!(
        "{}/.snapshots/.history/team/plan/@versions/s",
        m.mnt.display()
    );
    let cat = format!("cat {plan}");
    assert_eq!(stdout(&as_user(1000, 1000, &[], &cat)), "plan\n", "owner");
    assert_eq!(stdout(&as_user(1001, 2000, &[], &cat)), "plan\n", "group");
    assert_eq!(
        stdout(&as_user(1001, 1001, &[5, 2000], &cat)),
        "plan\n",
        "a supplementary group"
    );
    assert!(!as_user(1001, 1001, &[5], &cat).status.success(), "others");
    assert!(!as_user(1001, 1001, &[], &cat).status.success(), "others");
}

#[test]
fn a_share_owner_who_is_not_root_cannot_make_the_daemon_clone_outside_the_share() {
    let m = shared_mount();
    chown(&m.mnt, Some(NOBODY), Some(NOBODY)).unwrap();
    fs::write(m.path("f"), "x").unwrap();
    let control_file = format!("{}/.snapshots/.control", m.mnt.display());
    let created = as_nobody(&format!("echo 'create by-owner' > {control_file}"));
    assert!(created.status.success(), "the owner may still snapshot");
    let target = m.dir.path().join("root-only/new-store");
    fs::create_dir(m.dir.path().join("root-only")).unwrap();
    chmod(&m.dir.path().join("root-only"), 0o755);
    let clone = as_user(
        NOBODY,
        NOBODY,
        &[],
        &format!(
            "echo 'clone by-owner {}' > {control_file}",
            target.display()
        ),
    );
    assert!(!clone.status.success());
    let error = String::from_utf8_lossy(&clone.stderr);
    let reason = fs::read_to_string(&control_file).unwrap();
    assert!(
        error.contains("Operation not permitted"),
        "{error}: {reason}"
    );
    assert!(!target.exists(), "nothing created");
    assert!(reason.contains("only for root"), "{reason}");
    let json = format!(
        r#"{{"command":"clone","snapshot":"by-owner","new_store":"{}"}}"#,
        target.display()
    );
    assert!(
        !as_nobody(&format!("echo '{json}' > {control_file}"))
            .status
            .success()
    );
    assert!(!target.exists(), "nor through JSON");
    control(&m, &format!("clone by-owner {}", target.display()));
    assert!(target.join("snapfs-store.json").exists(), "root may");
}

#[test]
fn a_clone_into_its_own_store_is_refused_mounted_and_not() {
    let mut m = Mounted::new();
    fs::write(m.path("f"), "x").unwrap();
    control(&m, "create s");
    let store = m.store.clone();
    let inside = [store.join("inner"), store.join("packs/x")];
    for dir in &inside {
        let line = format!("clone s {}", dir.display());
        let (errno, reason) = crate::harness::control_wait(&m, &line).expect_err("refused");
        assert_eq!(errno, libc::EINVAL, "{}", dir.display());
        assert!(reason.contains("inside the source store"), "{reason}");
        assert!(!dir.exists(), "{}", dir.display());
    }
    m.unmount();
    let store_arg = store.to_str().unwrap();
    for dir in &inside {
        let err = snapfs_err(&["clone", "s", dir.to_str().unwrap(), "--store", store_arg]);
        assert!(err.contains("inside the source store"), "{err}");
        assert!(!dir.exists(), "{}", dir.display());
    }
    let beside = m.dir.path().join("beside");
    let out = snapfs(&["clone", "s", beside.to_str().unwrap(), "--store", store_arg]);
    assert!(out.status.success(), "{out:?}");
    m.mount();
}
