//! A directory tree as deep as any user can make one survives everything done to a store:
//! snapshot, diff, log, restore, rollback, clone, verify and gc, through the mounted daemon and
//! offline with `--store`. A 3,000-level chain used to abort the daemon with a stack overflow
//! at the next snapshot.
//!
//! The chain is 20,000 levels of `dir`: its paths are 80 KB, far past `PATH_MAX`, so the test
//! works level by level with `mkdirat`/`openat` on directory descriptors, as a user's script
//! with `mkdir`/`chdir` would, and deletes a chain bottom-up through `..`.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::Instant;

use nix::fcntl::{OFlag, openat};
use nix::sys::stat::{Mode, mkdirat};
use nix::unistd::{UnlinkatFlags, unlinkat};

use crate::harness::{Mounted, snapfs_ok};

const DEPTH: usize = 20_000;
const NAME: &str = "dir";
const LEAF: &str = "leaf";

fn open_dir(path: &Path) -> OwnedFd {
    File::open(path)
        .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
        .into()
}

/// Descriptors are close-on-exec: other tests of this binary start processes meanwhile (their
/// daemons among them), and one that inherited a descriptor into this mount would keep it busy.
const CLOEXEC: OFlag = OFlag::O_CLOEXEC;

fn open_at(dir: &OwnedFd, name: &str) -> OwnedFd {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | CLOEXEC;
    openat(dir, name, flags, Mode::empty()).unwrap_or_else(|err| panic!("openat {name}: {err}"))
}

/// Makes a chain of [`DEPTH`] directories named [`NAME`] in the directory `top`, and returns
/// the deepest, open.
fn make_chain(top: &Path) -> OwnedFd {
    (0..DEPTH).fold(open_dir(top), |dir, level| {
        mkdirat(&dir, NAME, Mode::from_bits_truncate(0o755))
            .unwrap_or_else(|err| panic!("mkdir at level {level}: {err}"));
        open_at(&dir, NAME)
    })
}

/// The deepest directory of the chain in the directory `top`, open; one `openat` per level.
fn chain_bottom(top: &Path) -> OwnedFd {
    (0..DEPTH).fold(open_dir(top), |dir, _| open_at(&dir, NAME))
}

/// Removes the chain in the directory `top` and the file [`LEAF`] at its bottom, bottom-up:
/// each level is left through `..` (resolved by the kernel) and removed from its parent.
/// Returns what the leaf held.
fn remove_chain(top: &Path) -> Vec<u8> {
    let bottom = chain_bottom(top);
    let leaf = read_at(&bottom, LEAF);
    unlinkat(&bottom, LEAF, UnlinkatFlags::NoRemoveDir).expect("unlink the leaf");
    (0..DEPTH).fold(bottom, |dir, level| {
        let parent = open_at(&dir, "..");
        drop(dir);
        unlinkat(&parent, NAME, UnlinkatFlags::RemoveDir)
            .unwrap_or_else(|err| panic!("rmdir at level {level}: {err}"));
        parent
    });
    leaf
}

fn read_at(dir: &OwnedFd, name: &str) -> Vec<u8> {
    let mut file = File::from(
        openat(dir, name, OFlag::O_RDONLY | CLOEXEC, Mode::empty())
            .unwrap_or_else(|err| panic!("open {name}: {err}")),
    );
    let mut data = Vec::new();
    file.read_to_end(&mut data).expect("read");
    data
}

fn write_at(dir: &OwnedFd, name: &str, data: &[u8]) {
    let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_TRUNC | CLOEXEC;
    let fd = openat(dir, name, flags, Mode::from_bits_truncate(0o644))
        .unwrap_or_else(|err| panic!("create {name}: {err}"));
    File::from(fd).write_all(data).expect("write");
}

/// What the leaf at the bottom of the chain in `top` holds.
fn leaf_in(top: &Path) -> Vec<u8> {
    read_at(&chain_bottom(top), LEAF)
}

fn control(m: &Mounted, command: &str) {
    std::fs::write(m.path(".snapshots/.control"), format!("{command}\n"))
        .unwrap_or_else(|err| panic!("{command}: {err}\n{}", m.log()));
}

/// The chain's path from the share's root (share-relative, without a leading `/`).
fn deep_path(below: &str) -> String {
    format!("{}{below}", format!("{NAME}/").repeat(DEPTH))
}

/// Checks the lines of a report; on a mismatch, shows them with the chain's path shortened (it
/// is 80 KB).
fn assert_lines(text: &str, expected: &[String]) {
    let lines: Vec<&str> = text.lines().collect();
    if lines != expected {
        let short = |line: &str| line.replace(&deep_path(""), "<chain>/");
        let lines: Vec<String> = lines.iter().map(|line| short(line)).collect();
        let expected: Vec<String> = expected.iter().map(|line| short(line)).collect();
        panic!("got {lines:#?}\nexpected {expected:#?}");
    }
}

/// Runs one step, printing how long it took (shown with `--nocapture`).
fn timed<T>(what: &str, step: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = step();
    eprintln!("{what}: {:.2} s", start.elapsed().as_secs_f64());
    out
}

#[test]
fn deep_tree_survives_every_operation() {
    let mut m = Mounted::new();
    let mnt = m.mnt.to_str().unwrap().to_owned();
    let store = m.store.to_str().unwrap().to_owned();
    let clone = m.dir.path().join("clone");
    let clone = clone.to_str().unwrap().to_owned();
    let leaf_path = format!("/{}", deep_path(LEAF));
    let changed = [
        format!("M  {leaf_path}  (content, mtime)"),
        format!("+  /{}", deep_path("new")),
    ];

    {
        let bottom = timed("make the chain", || make_chain(&m.mnt));
        write_at(&bottom, LEAF, b"first");
        timed("first snapshot", || control(&m, "create deep1"));
        write_at(&bottom, LEAF, b"second");
        write_at(&bottom, "new", b"");
        timed("second snapshot", || control(&m, "create deep2"));
    }
    assert_eq!(leaf_in(&m.path(".snapshots/deep1")), b"first");

    let diff = timed("diff", || {
        snapfs_ok(&["diff", "deep1", "deep2", "--mount", &mnt])
    });
    assert_lines(&diff, &changed);
    let diff = snapfs_ok(&["diff", "deep1", "live", "--mount", &mnt]);
    assert_lines(&diff, &changed);
    let log = timed("log", || {
        snapfs_ok(&["log", &leaf_path, "--mount", &mnt, "--json"])
    });
    let versions: Vec<serde_json::Value> = serde_json::from_str(&log).unwrap();
    assert_eq!(versions.len(), 2, "{log}");

    std::fs::create_dir(m.path("copy")).unwrap();
    let restored = timed("restore", || {
        snapfs_ok(&[
            "restore", "deep1", NAME, "--to", "copy/dir", "--mount", &mnt,
        ])
    });
    assert!(
        restored.contains(&format!("1 files, {DEPTH} directories")),
        "{restored}"
    );
    timed("verify", || snapfs_ok(&["verify", "--mount", &mnt]));
    timed("clone", || {
        snapfs_ok(&["clone", "deep2", &clone, "--mount", &mnt])
    });
    let copied = timed("remove a chain", || remove_chain(&m.path("copy")));
    assert_eq!(copied, b"first");
    timed("third snapshot", || control(&m, "create deep3"));
    timed("gc", || snapfs_ok(&["gc", "--mount", &mnt]));
    timed("rollback", || {
        snapfs_ok(&["rollback", "deep1", "--mount", &mnt])
    });
    assert_eq!(leaf_in(&m.mnt), b"first");
    assert!(!m.path("copy").exists());
    std::fs::create_dir(m.path("tmp")).unwrap();
    // A snapshot of a grafted tree: its files start frozen, its directories are encoded anew.
    control(&m, "create after-rollback");
    m.unmount();

    // Offline: the first snapshot after opening the store encodes the whole tree.
    timed("offline snapshot", || {
        snapfs_ok(&["snapshot", "create", "offline", "--store", &store])
    });
    let diff = snapfs_ok(&["diff", "deep2", "offline", "--store", &store]);
    let expected = [
        changed[0].clone(),
        format!("-  /{}", deep_path("new")),
        String::from("+  /tmp"),
    ];
    assert_lines(&diff, &expected);
    timed("offline restore", || {
        snapfs_ok(&[
            "restore", "deep2", NAME, "--to", "tmp/dir", "--store", &store,
        ])
    });
    timed("offline verify", || {
        snapfs_ok(&["verify", "--store", &store])
    });
    timed("offline gc", || snapfs_ok(&["gc", "--store", &store]));
    let offline_clone = m.dir.path().join("offline-clone");
    timed("offline clone", || {
        snapfs_ok(&[
            "clone",
            "offline",
            offline_clone.to_str().unwrap(),
            "--store",
            &store,
        ])
    });
    // The clones: a whole-tree freeze of a grafted deep tree, and its history.
    for (dir, leaf) in [
        (clone.as_str(), "second"),
        (offline_clone.to_str().unwrap(), "first"),
    ] {
        snapfs_ok(&["snapshot", "create", "first", "--store", dir]);
        let log = snapfs_ok(&["log", &leaf_path, "--store", dir, "--json"]);
        let versions: Vec<serde_json::Value> = serde_json::from_str(&log).unwrap();
        assert_eq!(versions.len(), 1, "{log}");
        assert_eq!(versions[0]["size"], leaf.len(), "{log}");
    }

    // Mounted again: the namespace loads the deep tree, and it still snapshots.
    m.mount();
    assert_eq!(leaf_in(&m.path("tmp")), b"second");
    assert_eq!(leaf_in(&m.mnt), b"first");
    timed("snapshot after remount", || control(&m, "create remounted"));
    m.unmount();
}
