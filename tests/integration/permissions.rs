//! Permissions as another user sees them: POSIX modes hold in the live share and inside
//! snapshots, only `--allow-other` lets other users in at all, the store's own files are
//! private to its owner, and a change to a setuid, setgid or capable file takes what ext4 takes.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use crate::harness::{Mounted, as_nobody};

fn runs_as_nobody(script: &str) -> bool {
    as_nobody(script).status.success()
}

fn open_up(m: &Mounted) {
    for dir in [m.dir.path(), m.mnt.as_path()] {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
    }
}

#[test]
fn modes_hold_for_other_users_in_the_share_and_in_snapshots() {
    let m = Mounted::new_with(&[], &["--allow-other"]);
    open_up(&m);
    fs::write(m.path("secret"), "root only").unwrap();
    fs::set_permissions(m.path("secret"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(m.path("public"), "anyone").unwrap();
    fs::set_permissions(m.path("public"), fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(m.path(".snapshots/.control"), "create s\n").unwrap();
    let mnt = m.mnt.display();
    assert!(runs_as_nobody(&format!("cat {mnt}/public >/dev/null")));
    assert!(!runs_as_nobody(&format!("cat {mnt}/secret")));
    assert!(runs_as_nobody(&format!(
        "cat {mnt}/.snapshots/s/public >/dev/null"
    )));
    assert!(!runs_as_nobody(&format!("cat {mnt}/.snapshots/s/secret")));
    assert!(
        !runs_as_nobody(&format!("echo x >> {mnt}/public")),
        "no write without permission"
    );
    assert!(
        !runs_as_nobody(&format!("touch {mnt}/new")),
        "root directory is 0755"
    );
}

#[test]
fn other_users_see_nothing_without_allow_other() {
    let m = Mounted::new();
    open_up(&m);
    fs::write(m.path("public"), "x").unwrap();
    fs::set_permissions(m.path("public"), fs::Permissions::from_mode(0o644)).unwrap();
    assert!(!runs_as_nobody(&format!("ls {}", m.mnt.display())));
}

#[test]
fn store_files_are_private() {
    let mut m = Mounted::new();
    fs::write(m.path("f"), "data").unwrap();
    m.unmount();
    let mode = |p: &std::path::Path| fs::metadata(p).unwrap().mode() & 0o777;
    assert_eq!(mode(&m.store), 0o700);
    assert_eq!(mode(&m.store.join("packs")), 0o700);
    for file in ["snapfs-store.json", "meta.redb", "lock"] {
        assert_eq!(mode(&m.store.join(file)), 0o600, "{file}");
    }
    for pack in fs::read_dir(m.store.join("packs")).unwrap() {
        assert_eq!(mode(&pack.unwrap().path()), 0o600);
    }
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().mode() & 0o7777
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn has_capabilities(path: &Path) -> bool {
    let out = Command::new("getcap").arg(path).output().expect("getcap");
    !String::from_utf8_lossy(&out.stdout).trim().is_empty()
}

fn set_capabilities(path: &Path) {
    let out = Command::new("setcap")
        .args(["cap_net_raw+ep"])
        .arg(path)
        .output()
        .expect("setcap");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(has_capabilities(path));
}

fn append_as_root(path: &Path) {
    let mut file = fs::OpenOptions::new().append(true).open(path).unwrap();
    std::io::Write::write_all(&mut file, b"root\n").unwrap();
}

/// Runs `sh -c script` as root without `CAP_FSETID` (dropped from the bounding set, so the
/// shell's effective set lacks it).
fn as_root_without_fsetid(script: &str) -> bool {
    Command::new("setpriv")
        .args(["--bounding-set=-fsetid", "sh", "-c", script])
        .status()
        .expect("setpriv")
        .success()
}

/// The share takes setuid, setgid and file capabilities away where Linux's VFS does (it
/// negotiates FUSE_HANDLE_KILLPRIV_V2, which leaves that to it), with the writeback cache and
/// without: a write or truncate by a user without CAP_FSETID takes the bits, root's keeps them,
/// chown takes setuid from root too, and any write takes capabilities. Each mode is read back
/// at once, so the kernel's cached attributes must agree.
#[test]
fn changes_take_setid_bits_and_capabilities_as_ext4_does() {
    for writeback in ["on", "off"] {
        let m = Mounted::new_with(&[], &["--allow-other", "--writeback-cache", writeback]);
        open_up(&m);
        chmod(&m.mnt, 0o777);
        let f = m.path("f");
        let path = f.display();
        fs::write(&f, "data\n").unwrap();

        chmod(&f, 0o6777);
        assert!(runs_as_nobody(&format!("echo more >> {path}")));
        assert_eq!(mode(&f), 0o777, "writeback {writeback}: a user's write");

        chmod(&f, 0o6777);
        append_as_root(&f);
        assert_eq!(mode(&f), 0o6777, "writeback {writeback}: root's write");

        assert!(runs_as_nobody(&format!("truncate -s 2 {path}")));
        assert_eq!(mode(&f), 0o777, "writeback {writeback}: a user's truncate");

        chmod(&f, 0o6777);
        assert!(as_root_without_fsetid(&format!("echo x >> {path}")));
        assert_eq!(
            mode(&f),
            0o777,
            "writeback {writeback}: root without CAP_FSETID"
        );

        chmod(&f, 0o6777);
        assert!(runs_as_nobody(&format!("fallocate -l 1M {path}")));
        assert_eq!(mode(&f), 0o777, "writeback {writeback}: a user's fallocate");

        chmod(&f, 0o6777);
        fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_len(1)
            .unwrap();
        assert_eq!(mode(&f), 0o6777, "writeback {writeback}: root's truncate");
        std::os::unix::fs::chown(&f, Some(65534), None).unwrap();
        assert_eq!(
            mode(&f),
            0o777,
            "writeback {writeback}: chown, even by root"
        );
        chmod(&f, 0o6767);
        std::os::unix::fs::chown(&f, Some(0), None).unwrap();
        assert_eq!(
            mode(&f),
            0o2767,
            "writeback {writeback}: root keeps setgid on a file not group-executable"
        );

        let capable = m.path("capable");
        fs::write(&capable, "x").unwrap();
        set_capabilities(&capable);
        chmod(&capable, 0o666);
        assert!(runs_as_nobody(&format!("echo y >> {}", capable.display())));
        assert!(
            !has_capabilities(&capable),
            "writeback {writeback}: a user's write"
        );
        set_capabilities(&capable);
        append_as_root(&capable);
        assert!(
            !has_capabilities(&capable),
            "writeback {writeback}: root's write"
        );

        let dir = m.path("dir");
        fs::create_dir(&dir).unwrap();
        chmod(&dir, 0o2775);
        std::os::unix::fs::chown(&dir, Some(65534), None).unwrap();
        assert_eq!(mode(&dir), 0o2775, "a directory keeps its setgid");
    }
}
