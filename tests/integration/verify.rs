//! `snapfs verify` finds exactly the damaged chunks and names every file they affect, in the
//! live share and in snapshots; a clean store verifies clean, mounted or not.

use std::fs;

use crate::harness::{Mounted, noise, snapfs};

fn only_pack(m: &Mounted) -> std::path::PathBuf {
    let packs: Vec<_> = fs::read_dir(m.store.join("packs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(packs.len(), 1);
    packs[0].clone()
}

#[test]
fn verify_names_the_files_a_damaged_chunk_affects() {
    let mut m = Mounted::new();
    let store = m.store.to_str().unwrap().to_owned();
    let mnt = m.mnt.to_str().unwrap().to_owned();
    let victim = noise(300_000, 1);
    fs::create_dir(m.path("dir")).unwrap();
    fs::write(m.path("dir/victim"), &victim).unwrap();
    fs::hard_link(m.path("dir/victim"), m.path("alias")).unwrap();
    fs::write(m.path("bystander"), noise(300_000, 2)).unwrap();
    fs::write(m.path(".snapshots/.control"), "create before\n").unwrap();
    let clean = snapfs(&["verify", "--mount", &mnt]);
    assert!(
        clean.status.success(),
        "{}",
        String::from_utf8_lossy(&clean.stdout)
    );
    m.unmount();
    let clean = snapfs(&["verify", "--store", &store]);
    assert!(clean.status.success());
    let pack = only_pack(&m);
    let mut bytes = fs::read(&pack).unwrap();
    let needle = &victim[140_000..140_064];
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("victim data");
    bytes[at] ^= 1;
    fs::write(&pack, &bytes).unwrap();
    for args in [
        vec!["verify", "--store", &store],
        vec!["verify", "--store", &store, "--snapshot", "before"],
    ] {
        let out = snapfs(&args);
        assert!(!out.status.success(), "damage must fail {args:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(text.matches("damaged chunk").count(), 1, "{text}");
        assert!(
            text.contains("snapshot before:/dir/victim") && text.contains("snapshot before:/alias"),
            "{text}"
        );
        assert!(!text.contains("bystander"), "{text}");
        if args.len() == 3 {
            assert!(
                text.contains("live:/dir/victim") && text.contains("live:/alias"),
                "{text}"
            );
        }
    }
    // --quick checks the index only: this damage is inside a chunk, so it passes.
    assert!(
        snapfs(&["verify", "--store", &store, "--quick"])
            .status
            .success()
    );
    m.mount();
    let out = snapfs(&["verify", "--mount", &mnt]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("live:/dir/victim"));
}

#[test]
fn verify_reports_chunks_of_a_truncated_pack() {
    let mut m = Mounted::new();
    let store = m.store.to_str().unwrap().to_owned();
    fs::write(m.path("early"), noise(200_000, 3)).unwrap();
    fs::write(m.path("late"), noise(200_000, 4)).unwrap();
    m.unmount();
    let pack = only_pack(&m);
    let len = fs::metadata(&pack).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&pack)
        .unwrap()
        .set_len(len - 100_000)
        .unwrap();
    for quick in [false, true] {
        let mut args = vec!["verify", "--store", &store];
        if quick {
            args.push("--quick");
        }
        let out = snapfs(&args);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "quick: {quick}");
        assert!(
            text.contains("live:/late") && !text.contains("live:/early"),
            "{text}"
        );
    }
}
