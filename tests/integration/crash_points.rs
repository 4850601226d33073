//! `kill -9` at chosen points of the longer store operations: while a snapshot of many changed
//! directories is being encoded, while a snapshot delete and a gc update the space accounting
//! tables, and while a large file is punched under concurrent writes. The kills are timed: the
//! operation is first measured once on the same data, then the daemon is killed at fractions
//! of that time, so each kill lands inside the operation (there are no failpoints in the
//! daemon; the kill moments are printed so a failure can be replayed).
//!
//! After every remount:
//! - `snapfs verify` is clean;
//! - every byte fsync'd before the kill is there;
//! - every snapshot listed before the kill is there and reads back exactly;
//! - `snapshot list` and `status` figures equal those of a full walk (`--full-walk`).

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::accounting::assert_figures_match;
use crate::harness::{Mounted, noise, snapfs, snapfs_ok};

fn mnt(m: &Mounted) -> &str {
    m.mnt.to_str().expect("utf-8 path")
}

/// Every file under `dir` (relative path to content), walked with an explicit stack.
fn contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(at) = stack.pop() {
        for entry in fs::read_dir(&at).unwrap_or_else(|e| panic!("{}: {e}", at.display())) {
            let entry = entry.expect("entry");
            let path = entry.path();
            if entry.file_type().expect("type").is_dir() {
                stack.push(path);
            } else {
                let name = path.strip_prefix(dir).expect("below").display().to_string();
                out.insert(name, fs::read(&path).expect("read"));
            }
        }
    }
    out
}

/// The snapshots `snapshot list` shows now.
fn listed(m: &Mounted) -> Vec<String> {
    let out: serde_json::Value = serde_json::from_str(&snapfs_ok(&[
        "snapshot",
        "list",
        "--json",
        "--mount",
        mnt(m),
    ]))
    .expect("json");
    out.as_array()
        .expect("a list")
        .iter()
        .map(|s| s["name"].as_str().expect("name").to_owned())
        .collect()
}

/// What every listed snapshot holds, to compare after the crash.
fn snapshot_contents(m: &Mounted) -> BTreeMap<String, BTreeMap<String, Vec<u8>>> {
    listed(m)
        .into_iter()
        .map(|name| {
            let files = contents(&m.path(&format!(".snapshots/{name}")));
            (name, files)
        })
        .collect()
}

/// Sends SIGKILL to the daemon after `after`, from another thread.
fn kill_later(m: &Mounted, after: Duration) -> std::thread::JoinHandle<()> {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(m.daemon_pid()).expect("pid"));
    std::thread::spawn(move || {
        std::thread::sleep(after);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    })
}

/// The promises after a crash and remount: verify clean, the fsync'd files exact, the
/// snapshots listed before the kill intact, the figures equal to a full walk.
fn check(
    m: &Mounted,
    what: &str,
    synced: &BTreeMap<String, Vec<u8>>,
    snapshots: &BTreeMap<String, BTreeMap<String, Vec<u8>>>,
) {
    let verify = snapfs(&["verify", "--mount", mnt(m)]);
    assert!(
        verify.status.success(),
        "{what}: verify: {}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    for (name, data) in synced {
        let found = fs::read(m.path(name)).unwrap_or_else(|e| panic!("{what}: {name}: {e}"));
        assert!(found == *data, "{what}: {name}: fsync'd content differs");
    }
    let now = listed(m);
    for (name, files) in snapshots {
        assert!(now.contains(name), "{what}: snapshot {name} lost");
        let found = contents(&m.path(&format!(".snapshots/{name}")));
        assert!(found == *files, "{what}: snapshot {name} differs");
    }
    assert_figures_match(m, what);
}

/// SIGKILL while a snapshot of a share with thousands of changed directories is encoded: the
/// snapshot in flight is there whole or not at all, and everything before it is intact.
#[test]
fn kill_9_while_a_snapshot_of_many_changed_directories_is_encoded() {
    const DIRS: usize = 3000;
    let mut m = Mounted::new();
    let change_all = |m: &Mounted, round: usize| {
        for d in 0..DIRS {
            fs::write(m.path(&format!("d{d}/f")), format!("{round} {d}")).expect("write");
        }
    };
    for d in 0..DIRS {
        fs::create_dir(m.path(&format!("d{d}"))).expect("mkdir");
    }
    change_all(&m, 0);
    snapfs_ok(&["snapshot", "create", "base", "--mount", mnt(&m)]);
    // How long a snapshot of every directory changed takes here.
    change_all(&m, 1);
    let started = Instant::now();
    snapfs_ok(&["snapshot", "create", "measured", "--mount", mnt(&m)]);
    let took = started.elapsed();
    eprintln!("a snapshot of {DIRS} changed directories takes {took:?}");
    for round in 0..3usize {
        change_all(&m, round + 2);
        // fsync'd: must survive whatever happens to the snapshot.
        let synced_data = noise(100_000, round as u64);
        let mut f = fs::File::create(m.path(&format!("synced{round}"))).expect("create");
        f.write_all(&synced_data).expect("write");
        f.sync_all().expect("fsync");
        fs::File::open(&m.mnt)
            .expect("root")
            .sync_all()
            .expect("fsync dir");
        let synced = BTreeMap::from([(format!("synced{round}"), synced_data)]);
        let before = snapshot_contents(&m);
        let share = contents(&m.mnt);
        let at = took * (round as u32 + 1) / 4;
        let killer = kill_later(&m, at);
        let name = format!("inflight{round}");
        let returned = snapfs(&["snapshot", "create", &name, "--mount", mnt(&m)])
            .status
            .success();
        killer.join().expect("killer");
        eprintln!("round {round}: killed {at:?} into the create (it returned: {returned})");
        m.kill9();
        m.mount();
        let what = format!("kill -9 {at:?} into encoding a snapshot (round {round})");
        check(&m, &what, &synced, &before);
        if listed(&m).contains(&name) {
            // Taken whole: exactly the share as it was when the create began.
            let found = contents(&m.path(&format!(".snapshots/{name}")));
            assert!(found == share, "{what}: the snapshot in flight is partial");
        } else {
            assert!(
                !returned,
                "{what}: a snapshot whose create returned is lost"
            );
        }
    }
}

/// SIGKILL while snapshot deletes and gcs update the accounting tables (snapshots with many
/// unique chunks each, so the updates are large): the figures stay equal to a full walk, and
/// the snapshots not deleted are intact.
#[test]
fn kill_9_while_deletes_and_gc_update_the_accounting() {
    const FILES: usize = 1500;
    let mut m = Mounted::new_with(&["--block-size", "4096"], &[]);
    let generation = |m: &Mounted, g: u64| {
        for i in 0..FILES {
            let data = noise(16_384 + (i * 61) % 8192, g * 100_000 + i as u64);
            fs::write(m.path(&format!("f{i}")), data).expect("write");
        }
        snapfs_ok(&["snapshot", "create", &format!("g{g}"), "--mount", mnt(m)]);
    };
    for g in 0..3 {
        generation(&m, g);
    }
    // How long deleting one such snapshot and collecting it takes here.
    let started = Instant::now();
    snapfs_ok(&["snapshot", "delete", "g0", "--mount", mnt(&m)]);
    crate::harness::control_wait(&m, "gc").expect("gc");
    let took = started.elapsed();
    eprintln!("a delete and a gc of {FILES} unique files take {took:?}");
    for round in 0..3u64 {
        generation(&m, 10 + round);
        let before = snapshot_contents(&m);
        let doomed = format!("g{}", if round == 0 { 1 } else { 9 + round });
        let at = took * (round as u32 + 1) / 4;
        let killer = kill_later(&m, at);
        let deleted = snapfs(&["snapshot", "delete", &doomed, "--mount", mnt(&m)])
            .status
            .success();
        let _ = snapfs(&["gc", "--mount", mnt(&m)]);
        killer.join().expect("killer");
        eprintln!(
            "round {round}: killed {at:?} into delete {doomed} + gc (delete returned: {deleted})"
        );
        m.kill9();
        m.mount();
        let what = format!("kill -9 {at:?} into a delete and gc (round {round})");
        let mut kept = before.clone();
        kept.remove(&doomed);
        check(&m, &what, &BTreeMap::new(), &kept);
        let still = listed(&m).contains(&doomed);
        assert!(
            !(deleted && still),
            "{what}: a delete that returned came back"
        );
        if still {
            let found = contents(&m.path(&format!(".snapshots/{doomed}")));
            assert!(found == before[&doomed], "{what}: {doomed} half deleted");
        }
        assert!(
            !m.log().contains("space accounting"),
            "{what}: the tables needed a rebuild: {}",
            m.log()
        );
    }
}

/// SIGKILL while a large fsync'd file is punched (`fallocate(PUNCH_HOLE)`) range by range as
/// other files are written and fsync'd: every block of the big file is its data or zeros (a
/// punch not synced may be lost, never half-applied within a block), the other fsync'd files
/// are exact, and a snapshot taken before the punching still holds the whole file.
#[test]
fn kill_9_while_a_large_file_is_punched_under_writes() {
    const BLOCK: usize = 4096;
    const SIZE: usize = 64 << 20;
    let mut m = Mounted::new_with(&["--block-size", "4096"], &[]);
    let big = noise(SIZE, 7);
    {
        let mut f = fs::File::create(m.path("big")).expect("create");
        f.write_all(&big).expect("write");
        f.sync_all().expect("fsync");
    }
    fs::File::open(&m.mnt)
        .expect("root")
        .sync_all()
        .expect("fsync dir");
    snapfs_ok(&["snapshot", "create", "before-punch", "--mount", mnt(&m)]);
    let before = snapshot_contents(&m);
    let punch = |path: &Path| -> std::io::Result<()> {
        let f = fs::OpenOptions::new().write(true).open(path)?;
        let flags = nix::fcntl::FallocateFlags::FALLOC_FL_PUNCH_HOLE
            | nix::fcntl::FallocateFlags::FALLOC_FL_KEEP_SIZE;
        // One block of every two: thousands of punches, each freeing a block, so that the
        // kill lands inside one.
        for at in (0..SIZE).step_by(2 * BLOCK) {
            nix::fcntl::fallocate(&f, flags, at as i64, BLOCK as i64)
                .map_err(std::io::Error::from)?;
        }
        Ok(())
    };
    // How long punching the whole file takes here (on a copy, so the real one stays whole).
    fs::copy(m.path("big"), m.path("measure")).expect("copy");
    let started = Instant::now();
    punch(&m.path("measure")).expect("punch");
    let took = started.elapsed();
    fs::remove_file(m.path("measure")).expect("remove");
    eprintln!("punching {} MiB block by block takes {took:?}", SIZE >> 20);

    let mut synced: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for round in 0..3u32 {
        let at = took * (round + 1) / 4;
        // A writer that fsyncs small files meanwhile; what it synced must survive.
        let dir = m.mnt.clone();
        let writer = std::thread::spawn(move || {
            let mut done = Vec::new();
            for i in 0..10_000u64 {
                let name = format!("w{round}-{i}");
                let data = noise(3000 + (i as usize * 13) % 5000, u64::from(round) << 32 | i);
                let ok = (|| {
                    let mut f = fs::File::create(dir.join(&name))?;
                    f.write_all(&data)?;
                    f.sync_all()?;
                    fs::File::open(&dir)?.sync_all()
                })();
                if ok.is_err() {
                    break;
                }
                done.push((name, data));
            }
            done
        });
        // The writer is under way before the punching starts.
        std::thread::sleep(Duration::from_millis(50));
        let killer = kill_later(&m, at);
        let _ = punch(&m.path("big"));
        killer.join().expect("killer");
        m.kill9();
        synced.extend(writer.join().expect("writer"));
        m.mount();
        let what = format!("kill -9 {at:?} into punching (round {round})");
        eprintln!("{what}: {} files synced by the writer", synced.len());
        check(&m, &what, &synced, &before);
        let found = fs::read(m.path("big")).expect("read big");
        assert_eq!(found.len(), SIZE, "{what}: the punch kept the size");
        for (i, (got, had)) in found.chunks(BLOCK).zip(big.chunks(BLOCK)).enumerate() {
            assert!(
                got == had || got.iter().all(|b| *b == 0),
                "{what}: block {i} is neither its data nor a hole"
            );
            // Only punched blocks may be holes.
            assert!(
                got == had || i % 2 == 0,
                "{what}: block {i} lost outside a punch"
            );
        }
        // Put the big file back for the next round, synced.
        let f = fs::OpenOptions::new()
            .write(true)
            .open(m.path("big"))
            .expect("open");
        f.write_all_at(&big, 0).expect("rewrite");
        f.sync_all().expect("fsync");
    }
}
