//! `snapfs diff` and `snapfs log` through a running daemon and on an unmounted store.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use crate::harness::{Mounted, snapfs_err, snapfs_ok};

fn snapshot(m: &Mounted, name: &str) {
    fs::write(m.path(".snapshots/.control"), format!("create {name}\n")).unwrap();
}

#[test]
fn diff_reports_every_kind_of_change_between_snapshots_and_live() {
    let mut m = Mounted::new();
    let mnt = m.mnt.to_str().unwrap().to_owned();
    let store = m.store.to_str().unwrap().to_owned();
    fs::create_dir_all(m.path("docs/deep")).unwrap();
    fs::write(m.path("docs/report.txt"), "v1").unwrap();
    fs::write(m.path("docs/deep/keep"), "same").unwrap();
    fs::write(m.path("gone"), "x").unwrap();
    fs::write(m.path("kind"), "file").unwrap();
    fs::write(m.path("mode"), "m").unwrap();
    snapshot(&m, "a");
    // The kernel stamps times from a clock that moves a tick (4 ms here) at a time: a rewrite
    // in the same tick as the first write would keep its mtime.
    std::thread::sleep(std::time::Duration::from_millis(20));
    fs::write(m.path("docs/report.txt"), "v2").unwrap();
    fs::write(m.path("docs/new.txt"), "n").unwrap();
    fs::remove_file(m.path("gone")).unwrap();
    fs::remove_file(m.path("kind")).unwrap();
    fs::create_dir(m.path("kind")).unwrap();
    fs::set_permissions(m.path("mode"), fs::Permissions::from_mode(0o600)).unwrap();
    snapshot(&m, "b");

    let out = snapfs_ok(&["diff", "a", "b", "--mount", &mnt]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "+  /docs/new.txt",
            "M  /docs/report.txt  (content, mtime)",
            "-  /gone",
            "R  /kind  (file -> directory)",
            "M  /mode  (mode)",
        ],
        "{out}"
    );
    // JSON for scripts, limited to a path.
    let json: serde_json::Value = serde_json::from_str(&snapfs_ok(&[
        "diff", "a", "b", "docs", "--mount", &mnt, "--json",
    ]))
    .unwrap();
    let changes: Vec<(&str, &str)> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["change"].as_str().unwrap(), c["path"].as_str().unwrap()))
        .collect();
    assert_eq!(
        changes,
        [("added", "/docs/new.txt"), ("modified", "/docs/report.txt")]
    );
    // `live` is a side too: what changed since b.
    fs::write(m.path("docs/deep/keep"), "changed").unwrap();
    let since = snapfs_ok(&["diff", "b", "live", "--mount", &mnt]);
    assert_eq!(since.trim(), "M  /docs/deep/keep  (content, mtime)");
    assert_eq!(snapfs_ok(&["diff", "b", "b", "--mount", &mnt]), "");
    assert!(snapfs_err(&["diff", "a", "nope", "--mount", &mnt]).contains("no snapshot named"));
    // The same on the unmounted store.
    m.unmount();
    let offline = snapfs_ok(&["diff", "a", "b", "--store", &store]);
    assert_eq!(offline, out);
}

#[test]
fn log_lists_distinct_versions_even_of_deleted_paths() {
    let m = Mounted::new();
    let mnt = m.mnt.to_str().unwrap().to_owned();
    fs::write(m.path("f"), "one").unwrap();
    snapshot(&m, "s1");
    snapshot(&m, "s2");
    fs::write(m.path("f"), "two!").unwrap();
    snapshot(&m, "s3");
    fs::remove_file(m.path("f")).unwrap();
    snapshot(&m, "s4");
    fs::write(m.path("f"), "three").unwrap();
    snapshot(&m, "s5");
    fs::remove_file(m.path("f")).unwrap();

    let json: serde_json::Value =
        serde_json::from_str(&snapfs_ok(&["log", "f", "--mount", &mnt, "--json"])).unwrap();
    let versions: Vec<(&str, &str, u64)> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["snapshot"].as_str().unwrap(),
                v["last_snapshot"].as_str().unwrap(),
                v["size"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        versions,
        [("s1", "s2", 3), ("s3", "s3", 4), ("s5", "s5", 5)]
    );
    let hashes: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["hash"].as_str().unwrap())
        .collect();
    assert_eq!(hashes.len(), 3);
    assert!(hashes[0] != hashes[1] && hashes[1] != hashes[2]);
    let text = snapfs_ok(&["log", "/f", "--mount", &mnt]);
    assert_eq!(text.lines().count(), 4, "{text}");
    assert!(text.lines().nth(1).unwrap().starts_with("s1 "), "{text}");
    let none = snapfs_err(&["log", "never", "--mount", &mnt, "--json"]);
    assert!(none.contains("no such path in any snapshot"), "{none}");
}
