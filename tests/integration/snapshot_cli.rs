//! `snapfs snapshot ...` and `snapfs gc` against a mounted store (through the daemon) and an
//! unmounted one, and garbage collection freeing exactly what only deleted snapshots held.

use std::fs;
use std::io::Write;

use crate::harness::{Mounted, noise, pack_bytes, snapfs, snapfs_ok as ok};

#[test]
fn snapshot_commands_work_mounted_and_unmounted() {
    let mut m = Mounted::new();
    let mnt = m.mnt.to_str().unwrap().to_owned();
    let store = m.store.to_str().unwrap().to_owned();
    fs::write(m.path("f"), "one").unwrap();
    ok(&["snapshot", "create", "via-mount", "--mount", &mnt]);
    fs::write(m.path("f"), "two").unwrap();
    // --store of a mounted store goes through the daemon.
    ok(&["snapshot", "create", "via-store", "--store", &store]);
    assert_eq!(
        fs::read_to_string(m.path(".snapshots/via-mount/f")).unwrap(),
        "one"
    );
    assert_eq!(
        fs::read_to_string(m.path(".snapshots/via-store/f")).unwrap(),
        "two"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(&["snapshot", "list", "--mount", &mnt, "--json"])).unwrap();
    let names: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["via-mount", "via-store"]);
    assert!(ok(&["snapshot", "show", "via-mount", "--mount", &mnt]).contains("manual"));
    let refused = snapfs(&["snapshot", "create", "via-mount", "--mount", &mnt]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("already exists"));
    ok(&["snapshot", "delete", "via-mount", "--mount", &mnt]);
    m.unmount();
    ok(&["snapshot", "create", "offline", "--store", &store]);
    let listed = ok(&["snapshot", "list", "--store", &store]);
    assert!(
        listed.contains("offline") && listed.contains("via-store") && !listed.contains("via-mount")
    );
    m.mount();
    assert_eq!(
        fs::read_to_string(m.path(".snapshots/offline/f")).unwrap(),
        "two"
    );
}

#[test]
fn deleting_a_snapshot_and_collecting_frees_exactly_its_unique_bytes() {
    let m = Mounted::new();
    let mnt = m.mnt.to_str().unwrap().to_owned();
    let shared = noise(8 << 20, 1);
    let unique = noise(12 << 20, 2);
    fs::write(m.path("shared"), &shared).unwrap();
    fs::write(m.path("only-in-snapshot"), &unique).unwrap();
    ok(&["snapshot", "create", "old", "--mount", &mnt]);
    fs::remove_file(m.path("only-in-snapshot")).unwrap();
    ok(&["snapshot", "create", "new", "--mount", &mnt]);
    let json: serde_json::Value =
        serde_json::from_str(&ok(&["snapshot", "list", "--mount", &mnt, "--json"])).unwrap();
    let unique_of = |name: &str| {
        json.as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap()["unique_bytes"]
            .as_u64()
            .unwrap()
    };
    let held = unique_of("old");
    assert!(
        ((12 << 20)..(12 << 20) + (64 << 10)).contains(&held),
        "old holds {held}"
    );
    assert!(unique_of("new") < 64 << 10);
    // Collecting while snapshots still hold everything frees nothing they need.
    ok(&["gc", "--mount", &mnt]);
    assert_eq!(
        fs::read(m.path(".snapshots/old/only-in-snapshot")).unwrap(),
        unique
    );
    let before = pack_bytes(&m.store);
    ok(&["snapshot", "delete", "old", "--mount", &mnt]);
    let report = ok(&["gc", "--mount", &mnt]);
    let freed = before - pack_bytes(&m.store);
    assert!(
        freed >= held - held / 50 && freed <= held + (1 << 20),
        "held {held}, freed {freed}: {report}"
    );
    assert_eq!(fs::read(m.path("shared")).unwrap(), shared);
    assert_eq!(fs::read(m.path(".snapshots/new/shared")).unwrap(), shared);
}

#[test]
fn gc_is_safe_while_writes_go_on() {
    let mut m = Mounted::new();
    let mnt = m.mnt.to_str().unwrap().to_owned();
    for i in 0..20 {
        fs::write(m.path(&format!("old{i}")), noise(1 << 20, i)).unwrap();
    }
    ok(&["snapshot", "create", "s", "--mount", &mnt]);
    for i in 0..20 {
        fs::remove_file(m.path(&format!("old{i}"))).unwrap();
    }
    ok(&["snapshot", "delete", "s", "--mount", &mnt]);
    let writer = {
        let dir = m.mnt.clone();
        std::thread::spawn(move || {
            for i in 0..40u64 {
                // Some of these blocks equal blocks of the deleted files: reuse during gc.
                let data = noise(1 << 20, i % 25);
                let mut f = fs::File::create(dir.join(format!("new{i}"))).unwrap();
                f.write_all(&data).unwrap();
            }
        })
    };
    for _ in 0..3 {
        ok(&["gc", "--mount", &mnt]);
    }
    writer.join().unwrap();
    ok(&["gc", "--mount", &mnt]);
    m.remount();
    for i in 0..40u64 {
        assert!(
            fs::read(m.path(&format!("new{i}"))).unwrap() == noise(1 << 20, i % 25),
            "new{i}"
        );
    }
}

#[test]
fn a_snapshot_after_gc_does_not_reuse_collected_objects() {
    let m = Mounted::new();
    let mnt = m.mnt.to_str().unwrap().to_owned();
    fs::create_dir(m.path("dir")).unwrap();
    fs::write(m.path("dir/file"), noise(500_000, 9)).unwrap();
    ok(&["snapshot", "create", "first", "--mount", &mnt]);
    ok(&["snapshot", "delete", "first", "--mount", &mnt]);
    // Collects the objects only the deleted snapshot used: the live tree froze to them.
    ok(&["gc", "--mount", &mnt]);
    ok(&["snapshot", "create", "second", "--mount", &mnt]);
    assert!(fs::read(m.path(".snapshots/second/dir/file")).unwrap() == noise(500_000, 9));
    let verify = snapfs(&["verify", "--mount", &mnt]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}
