//! Permissions as another user sees them: POSIX modes hold in the live share and inside
//! snapshots, only `--allow-other` lets other users in at all, and the store's own files are
//! private to its owner.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

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
