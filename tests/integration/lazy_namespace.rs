//! The namespace loaded on demand, through a real mount: after a remount the daemon holds only
//! the root, and renames, links and unlinks across directories it has not listed yet, a
//! snapshot, another remount and a full walk give exactly what the same operations give on the
//! host's own file system (a mirror tree built beside the store); the same again with a
//! metadata cache far smaller than the share, so that directories are evicted and loaded again
//! throughout.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::harness::{Mounted, snapfs_ok, xattr_get, xattr_set};

/// Everything a walk shows, by path: kind, mode, link count, size, content or target, and
/// which hard-link group the inode is in (the first path of the group), without recursion.
fn describe(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut first_path: BTreeMap<u64, String> = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    let mut all = Vec::new();
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir") {
            let path = entry.expect("entry").path();
            let meta = std::fs::symlink_metadata(&path).expect("lstat");
            if meta.is_dir() {
                pending.push(path.clone());
            }
            all.push((path, meta));
        }
    }
    all.sort_by(|a, b| a.0.cmp(&b.0));
    for (path, meta) in all {
        let rel = path
            .strip_prefix(root)
            .expect("below the root")
            .to_string_lossy()
            .into_owned();
        let group = first_path.entry(meta.ino()).or_insert_with(|| rel.clone());
        let body = if meta.is_file() {
            format!("{:?}", std::fs::read(&path).expect("read"))
        } else if meta.file_type().is_symlink() {
            format!("-> {:?}", std::fs::read_link(&path).expect("readlink"))
        } else {
            String::new()
        };
        let size = if meta.is_dir() { 0 } else { meta.len() };
        out.insert(
            rel,
            format!(
                "mode {:o} nlink {} size {size} group {group} {body}",
                meta.mode(),
                meta.nlink()
            ),
        );
    }
    out
}

/// Runs `op` on the mount and on the mirror.
fn both(mnt: &Path, mirror: &Path, op: impl Fn(&Path)) {
    op(mnt);
    op(mirror);
}

#[test]
fn changes_across_directories_not_yet_loaded_match_a_plain_file_system() {
    changes_match_a_plain_file_system(&[]);
}

/// The same with a metadata cache of 64 inodes, far smaller than the share (about 1,000):
/// every walk evicts, and every change reaches directories evicted and loaded again.
#[test]
fn changes_across_evicted_directories_match_a_plain_file_system() {
    changes_match_a_plain_file_system(&["--metadata-cache", "64K"]);
}

fn changes_match_a_plain_file_system(mount_args: &[&str]) {
    let mut m = Mounted::new_with(&[], mount_args);
    let mirror_dir = tempfile::tempdir().expect("mirror");
    let mirror = mirror_dir.path();
    let mnt = m.mnt.clone();
    both(&mnt, mirror, |root| {
        for d in 0..30 {
            let dir = root.join(format!("d{d:02}"));
            std::fs::create_dir_all(dir.join("sub/deeper")).expect("mkdir");
            for f in 0..20 {
                std::fs::write(dir.join(format!("f{f:02}")), format!("{d}/{f}")).expect("write");
            }
            std::fs::write(dir.join("sub/deeper/leaf"), format!("leaf {d}")).expect("write");
            std::os::unix::fs::symlink("../f00", dir.join("sub/up")).expect("symlink");
        }
        // A file with links in three directories.
        std::fs::hard_link(root.join("d00/f00"), root.join("d10/sub/link")).expect("link");
        std::fs::hard_link(root.join("d00/f00"), root.join("d20/sub/deeper/link")).expect("link");
    });
    xattr_set(&m.path("d05/f05"), "user.kept", b"value");
    snapfs_ok(&[
        "snapshot",
        "create",
        "s1",
        "--mount",
        mnt.to_str().expect("utf-8"),
    ]);
    let at_s1 = describe(&mnt);
    assert_eq!(at_s1, describe(mirror), "the same tree before any remount");

    // A clean unmount closes the metadata database cleanly: redb does not walk all of it at
    // the next mount (which would make mounting cost the size of the share).
    m.remount();
    assert!(
        !m.log().contains("not closed cleanly"),
        "the database was left open: {}",
        m.log()
    );
    // After a remount, the daemon has loaded nothing but the root: each operation below is
    // the first to reach its directories, some of which hold a hard link listed elsewhere.
    m.remount();
    both(&mnt, mirror, |root| {
        std::fs::rename(root.join("d03/sub/deeper"), root.join("d07/sub/moved"))
            .expect("rename a directory across");
        std::fs::rename(root.join("d04/f01"), root.join("d08/sub/f01-moved")).expect("rename");
        std::fs::hard_link(root.join("d10/sub/link"), root.join("d11/another")).expect("link");
        std::fs::remove_file(root.join("d00/f00")).expect("unlink a linked file");
        std::fs::remove_file(root.join("d12/f02")).expect("unlink");
        std::fs::write(root.join("d20/sub/deeper/link"), "rewritten through a link")
            .expect("write");
        std::fs::remove_dir_all(root.join("d13")).expect("rm -r");
        std::fs::rename(root.join("d14/f03"), root.join("d15/f04")).expect("rename over");
    });
    snapfs_ok(&[
        "snapshot",
        "create",
        "s2",
        "--mount",
        mnt.to_str().expect("utf-8"),
    ]);
    let at_s2 = describe(mirror);
    assert_eq!(describe(&mnt), at_s2, "after the changes");

    m.remount();
    assert_eq!(describe(&mnt), at_s2, "after another remount");
    assert_eq!(
        describe(&m.path(".snapshots/s2")),
        at_s2,
        "the snapshot taken after the remount"
    );
    assert_eq!(
        describe(&m.path(".snapshots/s1")),
        at_s1,
        "the snapshot taken before it"
    );
    assert_eq!(
        xattr_get(&m.path("d05/f05"), "user.kept").as_deref(),
        Some(&b"value"[..])
    );
    // One more snapshot after a remount, with one change deep in a directory not loaded.
    m.remount();
    both(&mnt, mirror, |root| {
        std::fs::write(root.join("d29/sub/deeper/leaf"), "last change").expect("write");
    });
    snapfs_ok(&[
        "snapshot",
        "create",
        "s3",
        "--mount",
        mnt.to_str().expect("utf-8"),
    ]);
    m.remount();
    let at_s3 = describe(mirror);
    assert_eq!(describe(&m.path(".snapshots/s3")), at_s3);
    assert_eq!(describe(&mnt), at_s3);
    m.unmount();
}
