//! The chunk store seen through the mount: deduplication, compression and verified reads.

use std::fs;
use std::io::Write;

use crate::harness::{Mounted, pack_bytes};

fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    // xorshift: incompressible enough for zstd, reproducible, and fast.
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

#[test]
fn identical_data_is_stored_once() {
    let mut m = Mounted::new();
    let data = random_bytes(256 << 20, 42);
    let write_synced = |name: &str| {
        let mut f = fs::File::create(m.path(name)).unwrap();
        f.write_all(&data).unwrap();
        f.sync_all().unwrap();
    };
    write_synced("one");
    let after_first = pack_bytes(&m.store);
    write_synced("two");
    let growth = pack_bytes(&m.store) - after_first;
    assert!(
        growth < after_first / 100,
        "second copy grew the store by {growth} bytes (first: {after_first})"
    );
    m.remount();
    assert!(fs::read(m.path("two")).unwrap() == data);
}

#[test]
fn compressible_data_is_compressed() {
    let m = Mounted::new();
    let text: Vec<u8> = b"snapfs stores every block once, compressed. "
        .iter()
        .copied()
        .cycle()
        .take(32 << 20)
        .collect();
    let mut f = fs::File::create(m.path("text")).unwrap();
    f.write_all(&text).unwrap();
    f.sync_all().unwrap();
    assert!(pack_bytes(&m.store) < (32 << 20) / 4);
}

#[test]
fn a_corrupted_chunk_reads_as_eio_never_wrong_bytes() {
    let mut m = Mounted::new();
    let victim = random_bytes(1 << 20, 7);
    let bystander = random_bytes(1 << 20, 8);
    fs::write(m.path("victim"), &victim).unwrap();
    fs::write(m.path("bystander"), &bystander).unwrap();
    m.unmount();
    // Flip one byte inside the victim's data: its content is unique, so find it in the pack.
    let pack = fs::read_dir(m.store.join("packs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = fs::read(&pack).unwrap();
    let needle = &victim[300_000..300_064];
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("raw chunk data in the pack");
    bytes[at + 10] ^= 0xff;
    fs::write(&pack, &bytes).unwrap();
    m.mount();
    let err = fs::read(m.path("victim")).expect_err("damaged data must not be returned");
    assert_eq!(err.raw_os_error(), Some(libc::EIO));
    assert_eq!(fs::read(m.path("bystander")).unwrap(), bystander);
    assert!(
        m.log().contains("reading /victim failed"),
        "the damage is logged: {}",
        m.log()
    );
}

#[test]
fn a_missing_pack_gives_eio_for_its_files_only() {
    let mut m = Mounted::new();
    fs::write(m.path("early"), random_bytes(300_000, 1)).unwrap();
    m.remount();
    // A new mount writes a new pack: `late` lives in the second one.
    let late = random_bytes(300_000, 2);
    fs::write(m.path("late"), &late).unwrap();
    m.unmount();
    let mut packs: Vec<_> = fs::read_dir(m.store.join("packs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    packs.sort();
    assert_eq!(packs.len(), 2);
    fs::remove_file(&packs[0]).unwrap();
    m.mount();
    let err = fs::read(m.path("early")).expect_err("data of a lost pack");
    assert_eq!(err.raw_os_error(), Some(libc::EIO));
    assert_eq!(fs::read(m.path("late")).unwrap(), late);
    assert!(m.log().contains("pack file is missing"), "{}", m.log());
    let verify = crate::harness::snapfs(&["verify", "--mount", m.mnt.to_str().unwrap(), "--quick"]);
    let report = String::from_utf8_lossy(&verify.stdout);
    assert!(
        !verify.status.success()
            && report.contains("live:/early")
            && !report.contains("live:/late"),
        "{report}"
    );
}

#[test]
fn a_damaged_metadata_database_is_refused_with_a_clear_message() {
    let mut m = Mounted::new();
    fs::write(m.path("f"), b"data").unwrap();
    m.unmount();
    let meta = m.store.join("meta.redb");
    let mut bytes = fs::read(&meta).unwrap();
    let len = bytes.len();
    for b in &mut bytes[..len.min(4096)] {
        *b ^= 0x5a;
    }
    fs::write(&meta, &bytes).unwrap();
    let out =
        crate::harness::snapfs(&["mount", m.store.to_str().unwrap(), m.mnt.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("metadata"), "{err}");
}
