//! Wrong paths and misuse get a clear message and a non-zero exit, and lose nothing.

use std::fs;

use crate::harness::{Mounted, snapfs};

fn stderr_of(args: &[&str]) -> String {
    let out = snapfs(args);
    assert!(!out.status.success(), "{args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn mounting_a_directory_that_is_not_a_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let err = stderr_of(&["mount", dir.path().to_str().unwrap(), mnt.to_str().unwrap()]);
    assert!(err.contains("is not a snapfs store"), "{err}");
}

#[test]
fn a_missing_mountpoint_is_refused() {
    let m = Mounted::new();
    let err = stderr_of(&[
        "mount",
        m.store.to_str().unwrap(),
        "/nonexistent/snapfs-mnt",
    ]);
    assert!(err.contains("/nonexistent/snapfs-mnt"), "{err}");
}

#[test]
fn a_store_already_mounted_is_refused() {
    let m = Mounted::new();
    fs::write(m.path("keep"), b"data").unwrap();
    let other = m.dir.path().join("other");
    fs::create_dir(&other).unwrap();
    let err = stderr_of(&["mount", m.store.to_str().unwrap(), other.to_str().unwrap()]);
    assert!(err.contains("already in use"), "{err}");
    assert_eq!(fs::read(m.path("keep")).unwrap(), b"data");
}

#[test]
fn init_refuses_a_non_empty_directory_and_an_existing_store() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("precious"), b"x").unwrap();
    let err = stderr_of(&["init", dir.path().to_str().unwrap()]);
    assert!(err.contains("not empty"), "{err}");
    assert_eq!(fs::read(dir.path().join("precious")).unwrap(), b"x");
    let m = Mounted::new();
    let err = stderr_of(&["init", m.store.to_str().unwrap()]);
    assert!(err.contains("already a snapfs store"), "{err}");
}

#[test]
fn a_store_of_an_unknown_format_version_is_refused() {
    let mut m = Mounted::new();
    m.unmount();
    let config = m.store.join("snapfs-store.json");
    let mut json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&config).unwrap()).unwrap();
    json["format_version"] = 9.into();
    fs::write(&config, json.to_string()).unwrap();
    let err = stderr_of(&["mount", m.store.to_str().unwrap(), m.mnt.to_str().unwrap()]);
    assert!(err.contains("format version 9 is not supported"), "{err}");
}

#[test]
fn umount_of_something_that_is_not_snapfs_is_refused() {
    let err = stderr_of(&["umount", "/tmp"]);
    assert!(err.contains("is not a snapfs mount"), "{err}");
}
