//! Restore, rollback and clone through `snapfs` against a running daemon (and one restore on
//! an unmounted store), checked with ordinary file tools, as users will see them.

use std::fs;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use crate::harness::{Mounted, noise, pack_bytes, snapfs_err, snapfs_ok, xattr_get, xattr_set};

/// Runs a request through the control file and waits for it (long ones are background jobs).
fn control(m: &Mounted, command: &str) {
    crate::harness::control_wait(m, command).unwrap_or_else(|e| panic!("{command}: {e:?}"));
}

/// Whether two trees hold the same names and bytes (`diff -r`, symlinks compared as links).
fn same_tree(a: &Path, b: &Path) -> bool {
    let out = Command::new("diff")
        .args(["-r", "--no-dereference"])
        .arg(a)
        .arg(b)
        .output()
        .unwrap();
    assert!(
        out.status.code() != Some(2),
        "diff failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.status.success()
}

#[test]
fn a_restore_brings_back_bytes_modes_times_xattrs_links_and_holes() {
    let mut m = Mounted::new();
    fs::create_dir_all(m.path("proj/empty")).unwrap();
    let data = noise(3 << 20, 1);
    fs::write(m.path("proj/data"), &data).unwrap();
    fs::set_permissions(m.path("proj/data"), fs::Permissions::from_mode(0o4640)).unwrap();
    xattr_set(&m.path("proj/data"), "user.origin", b"lab");
    fs::hard_link(m.path("proj/data"), m.path("proj/hard")).unwrap();
    std::os::unix::fs::symlink("data", m.path("proj/link")).unwrap();
    let sparse = fs::File::create(m.path("proj/sparse")).unwrap();
    sparse.set_len(1 << 30).unwrap();
    sparse.write_all_at(b"tail", (1 << 30) - 4).unwrap();
    drop(sparse);
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        &m.path("proj/data"),
        &nix::sys::time::TimeSpec::new(1_000_000, 7),
        &nix::sys::time::TimeSpec::new(1_234_567, 89),
        nix::sys::stat::UtimensatFlags::FollowSymlink,
    )
    .unwrap();
    control(&m, "create s");
    fs::remove_dir_all(m.path("proj")).unwrap();

    let mnt = m.mnt.to_str().unwrap().to_owned();
    let out = snapfs_ok(&["restore", "s", "proj", "--mount", &mnt]);

    assert!(out.contains("2 files, 2 directories, 1 others"), "{out}");
    assert!(out.contains("stored 0 B"), "{out}");
    assert!(same_tree(&m.path(".snapshots/s/proj"), &m.path("proj")));
    let restored = fs::metadata(m.path("proj/data")).unwrap();
    assert_eq!(restored.mode() & 0o7777, 0o4640);
    assert_eq!((restored.mtime(), restored.mtime_nsec()), (1_234_567, 89));
    assert_eq!((restored.atime(), restored.atime_nsec()), (1_000_000, 7));
    assert_eq!(restored.nlink(), 2);
    assert_eq!(
        fs::metadata(m.path("proj/hard")).unwrap().ino(),
        restored.ino()
    );
    assert_eq!(
        xattr_get(&m.path("proj/data"), "user.origin"),
        Some(b"lab".to_vec())
    );
    assert_eq!(
        fs::read_link(m.path("proj/link")).unwrap().to_str(),
        Some("data")
    );
    assert_eq!(fs::read_dir(m.path("proj/empty")).unwrap().count(), 0);
    assert_eq!(fs::metadata(m.path("proj/sparse")).unwrap().len(), 1 << 30);
    let sparse = fs::File::open(m.path("proj/sparse")).unwrap();
    let mut tail = [0u8; 4];
    sparse.read_exact_at(&mut tail, (1 << 30) - 4).unwrap();
    assert_eq!(&tail, b"tail");
    let mut hole = [1u8; 4096];
    sparse.read_exact_at(&mut hole, 1 << 29).unwrap();
    assert!(hole.iter().all(|b| *b == 0));
    drop(sparse);
    m.remount();
    assert_eq!(fs::read(m.path("proj/data")).unwrap(), data);
}

#[test]
fn restoring_a_32_mib_file_stores_nothing() {
    let mut m = Mounted::new();
    let data = noise(32 << 20, 2);
    fs::write(m.path("big"), &data).unwrap();
    control(&m, "create s");
    fs::remove_file(m.path("big")).unwrap();
    let mnt = m.mnt.to_str().unwrap().to_owned();
    let store = m.store.to_str().unwrap().to_owned();
    control(&m, "gc");
    let before = pack_bytes(&m.store);

    // While mounted, through the daemon; the share stays in use.
    let out = snapfs_ok(&["restore", "s", "big", "--to", "big again", "--mount", &mnt]);

    assert!(out.contains("32.0 MiB (stored 0 B)"), "{out}");
    assert_eq!(fs::read(m.path("big again")).unwrap(), data);
    assert!(!m.path("big").exists());
    assert_eq!(pack_bytes(&m.store), before);
    // And on the unmounted store.
    m.unmount();
    snapfs_ok(&["restore", "s", "/big", "--store", &store]);
    assert_eq!(pack_bytes(&m.store), before);
    m.mount();
    assert_eq!(fs::read(m.path("big")).unwrap(), data);
}

#[test]
fn an_existing_destination_is_refused_without_overwrite_and_replaced_with_it() {
    let mut m = Mounted::new();
    fs::create_dir(m.path("conf")).unwrap();
    fs::write(m.path("conf/app"), "version 1\n").unwrap();
    control(&m, "create s");
    fs::write(m.path("conf/app"), "version 2\n").unwrap();
    fs::write(m.path("conf/extra"), "extra\n").unwrap();
    let mnt = m.mnt.to_str().unwrap().to_owned();
    // A file open in the tree being replaced stays readable.
    let open = fs::File::open(m.path("conf/app")).unwrap();

    let err = snapfs_err(&["restore", "s", "conf", "--mount", &mnt]);
    assert!(
        err.contains("\"conf\" exists") && err.contains("overwrite"),
        "{err}"
    );
    // Through the control file, the restore's job fails with the same errno and reason.
    let (errno, reason) = crate::harness::control_wait(&m, "restore s conf").expect_err("refused");
    assert_eq!(errno, libc::EEXIST, "{reason}");
    assert!(reason.contains("overwrite"), "{reason}");
    assert_eq!(
        fs::read_to_string(m.path("conf/app")).unwrap(),
        "version 2\n"
    );

    snapfs_ok(&["restore", "s", "conf", "--overwrite", "--mount", &mnt]);
    // At once, through the kernel's caches, which knew the replaced entries.
    assert_eq!(
        fs::read_to_string(m.path("conf/app")).unwrap(),
        "version 1\n"
    );
    assert!(!m.path("conf/extra").exists());
    let mut old = String::new();
    std::io::Read::read_to_string(&mut &open, &mut old).unwrap();
    assert_eq!(old, "version 2\n");
    drop(open);
    m.remount();
    assert_eq!(
        fs::read_to_string(m.path("conf/app")).unwrap(),
        "version 1\n"
    );
    assert!(!m.path("conf/extra").exists());
}

#[test]
fn a_rollback_makes_the_share_the_snapshot_and_keeps_the_state_before() {
    let mut m = Mounted::new();
    fs::create_dir_all(m.path("a/b")).unwrap();
    fs::write(m.path("a/b/f"), noise(300_000, 3)).unwrap();
    fs::write(m.path("top"), "top\n").unwrap();
    fs::set_permissions(&m.mnt, fs::Permissions::from_mode(0o750)).unwrap();
    control(&m, "create good");
    fs::write(m.path("a/b/f"), "damaged\n").unwrap();
    fs::remove_file(m.path("top")).unwrap();
    fs::create_dir(m.path("new")).unwrap();
    fs::write(m.path("new/file"), "new\n").unwrap();
    fs::set_permissions(&m.mnt, fs::Permissions::from_mode(0o777)).unwrap();
    let mnt = m.mnt.to_str().unwrap().to_owned();

    let out = snapfs_ok(&["rollback", "good", "--mount", &mnt]);

    let safety = out.trim().rsplit(' ').next().unwrap().to_owned();
    assert!(safety.starts_with("before-rollback-"), "{out}");
    assert!(same_tree(&m.path(".snapshots/good"), &m.mnt));
    assert_eq!(fs::metadata(&m.mnt).unwrap().mode() & 0o7777, 0o750);
    m.remount();
    assert!(same_tree(&m.path(".snapshots/good"), &m.mnt));
    let before = m.path(&format!(".snapshots/{safety}"));
    assert_eq!(
        fs::read_to_string(before.join("a/b/f")).unwrap(),
        "damaged\n"
    );
    assert_eq!(
        fs::read_to_string(before.join("new/file")).unwrap(),
        "new\n"
    );
    assert!(!before.join("top").exists());
    assert_eq!(fs::metadata(&before).unwrap().mode() & 0o7777, 0o777);
}

#[test]
fn a_clone_mounts_as_the_snapshot_and_outlives_it() {
    let m = Mounted::new();
    fs::create_dir(m.path("docs")).unwrap();
    let data = noise(2 << 20, 4);
    fs::write(m.path("docs/one"), &data).unwrap();
    fs::write(m.path("docs/same"), &data).unwrap();
    std::os::unix::fs::symlink("one", m.path("docs/link")).unwrap();
    control(&m, "create s");
    fs::write(m.path("docs/later"), "not in the snapshot\n").unwrap();
    // A clone goes where the harness keeps a second store, which it then mounts.
    let mut clone = Mounted::new();
    clone.unmount();
    fs::remove_dir_all(&clone.store).unwrap();
    let mnt = m.mnt.to_str().unwrap().to_owned();

    let out = snapfs_ok(&["clone", "s", clone.store.to_str().unwrap(), "--mount", &mnt]);

    assert!(out.contains("2 files"), "{out}");
    // Equal files are copied once: 16 chunks of 128 KiB.
    assert!(out.contains(", 16 chunks copied"), "{out}");
    assert!(
        snapfs_err(&["clone", "s", clone.store.to_str().unwrap(), "--mount", &mnt])
            .contains("already a snapfs store")
    );
    let inside = m.path("clone-here");
    assert!(
        snapfs_err(&["clone", "s", inside.to_str().unwrap(), "--mount", &mnt])
            .contains("inside the share")
    );
    clone.mount();
    assert!(same_tree(&m.path(".snapshots/s"), &clone.mnt));
    // Nothing of the source holds the data any more after this.
    fs::remove_dir_all(m.path("docs")).unwrap();
    control(&m, "delete s");
    control(&m, "gc");
    clone.remount();
    assert_eq!(fs::read(clone.path("docs/one")).unwrap(), data);
    assert_eq!(fs::read(clone.path("docs/same")).unwrap(), data);
    assert!(!clone.path("docs/later").exists());
}
