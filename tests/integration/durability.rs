//! What fsync promised survives `kill -9` of the daemon; a crash never leaves a half-applied
//! operation behind.

use std::fs;
use std::io::Write;

use crate::harness::Mounted;

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn fsynced_data_survives_kill_9() {
    let mut m = Mounted::new();
    let synced = pattern(1, 3 << 20);
    let mut f = fs::File::create(m.path("synced")).unwrap();
    f.write_all(&synced).unwrap();
    f.sync_all().unwrap();
    drop(f);
    fs::create_dir(m.path("dir")).unwrap();
    fs::rename(m.path("synced"), m.path("dir/renamed")).unwrap();
    fs::File::open(m.path("dir")).unwrap().sync_all().unwrap();
    // Written after the last fsync: may be lost, must not corrupt anything.
    fs::write(m.path("unsynced"), pattern(2, 1 << 20)).unwrap();
    m.kill9();
    m.mount();
    assert_eq!(fs::read(m.path("dir/renamed")).unwrap(), synced);
    assert!(!m.path("synced").exists(), "a synced rename is not undone");
    if let Ok(data) = fs::read(m.path("unsynced")) {
        // Either absent, or complete up to some prefix state: never foreign bytes.
        let expected = pattern(2, 1 << 20);
        assert!(data.len() <= expected.len() && data[..] == expected[..data.len()]);
    }
}

#[test]
fn rename_is_atomic_across_crashes() {
    let mut m = Mounted::new();
    for round in 0..5u8 {
        let new = pattern(round, 200_000);
        fs::write(m.path("config.tmp"), &new).unwrap();
        fs::File::open(m.path("config.tmp"))
            .unwrap()
            .sync_all()
            .unwrap();
        fs::rename(m.path("config.tmp"), m.path("config")).unwrap();
        m.kill9();
        m.mount();
        // The replace-by-rename idiom: after a crash the file holds the old or the new
        // content, whole.
        let now = fs::read(m.path("config")).unwrap_or_default();
        let old = if round == 0 {
            Vec::new()
        } else {
            pattern(round - 1, 200_000)
        };
        assert!(
            now == new || now == old,
            "round {round}: torn content after crash"
        );
        if now == old {
            fs::write(m.path("config"), &new).unwrap();
            fs::File::open(m.path("config"))
                .unwrap()
                .sync_all()
                .unwrap();
        }
    }
}

#[test]
fn clean_unmount_makes_everything_durable() {
    let mut m = Mounted::new();
    for i in 0..200 {
        fs::write(m.path(&format!("f{i}")), pattern(i as u8, 1000 + i)).unwrap();
    }
    m.unmount();
    m.mount();
    for i in 0..200 {
        assert_eq!(
            fs::read(m.path(&format!("f{i}"))).unwrap(),
            pattern(i as u8, 1000 + i)
        );
    }
}

#[test]
fn fusermount_umount_and_sigterm_unmount_cleanly_and_keep_data() {
    let mut m = Mounted::new();
    let ways: [fn(&Mounted) -> std::process::Command; 3] = [
        |m| {
            let mut c = std::process::Command::new("fusermount3");
            c.arg("-u").arg(&m.mnt);
            c
        },
        |m| {
            let mut c = std::process::Command::new("umount");
            c.arg(&m.mnt);
            c
        },
        |m| {
            let mut c = std::process::Command::new("kill");
            c.arg("-TERM").arg(m.daemon_pid().to_string());
            c
        },
    ];
    for (i, way) in ways.iter().enumerate() {
        let name = format!("file{i}");
        fs::write(m.path(&name), pattern(i as u8, 500_000)).unwrap();
        let mut command = way(&m);
        m.unmount_with(&mut command);
        m.mount();
        for j in 0..=i {
            assert_eq!(
                fs::read(m.path(&format!("file{j}"))).unwrap(),
                pattern(j as u8, 500_000)
            );
        }
    }
}

/// A snapshot whose create returned is complete after `kill -9`, and so is the share it was
/// taken of, though nothing was fsynced and no periodic commit ran: the create commits both.
#[test]
fn a_snapshot_whose_create_returned_survives_kill_9_with_what_it_holds() {
    let mut m = Mounted::new_with(&[], &["--commit-interval", "3600"]);
    for i in 0..20u8 {
        fs::write(
            m.path(&format!("f{i}")),
            pattern(i, 70_000 + usize::from(i)),
        )
        .unwrap();
    }
    fs::write(m.path(".snapshots/.control"), "create before-crash\n").unwrap();
    m.kill9();
    m.mount();
    for i in 0..20u8 {
        let expected = pattern(i, 70_000 + usize::from(i));
        let name = format!("f{i}");
        assert_eq!(
            fs::read(m.path(&format!(".snapshots/before-crash/{name}"))).unwrap(),
            expected
        );
        assert_eq!(fs::read(m.path(&name)).unwrap(), expected, "the share too");
    }
}

/// `kill -9` while snapshots collect what the kernel holds of files open for writing (the
/// writeback cache's hand-over, which opens each such file through the mount) ends the
/// daemon, and the store mounts again. When the daemon opened those files itself, a kill in
/// that moment left it a zombie for good: a request it sent to its own mount waited for an
/// answer only it could give (the harness's `kill9` fails after 10 s, and aborts the
/// connection). The writes and snapshots run on a thread of their own: a request of this test
/// to a daemon that cannot end would hang the test otherwise.
#[test]
fn kill_9_during_snapshots_of_open_files_ends_the_daemon() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let mut m = Mounted::new();
    for round in 0..10u64 {
        let mut files: Vec<fs::File> = (0..100)
            .map(|i| fs::File::create(m.path(&format!("open-{i}"))).unwrap())
            .collect();
        let control = m.path(".snapshots/.control");
        let stop = Arc::new(AtomicBool::new(false));
        let load = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Acquire) {
                    for file in &mut files {
                        let _ = file.write_all(b"more");
                    }
                    let _ = fs::write(&control, format!("create r{round}-{n}\n"));
                    n += 1;
                }
                n
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(100 + 37 * round));
        m.kill9();
        stop.store(true, Ordering::Release);
        let snapshots = load.join().expect("load");
        assert!(snapshots > 0, "round {round}: no snapshot was asked for");
        m.mount();
    }
    fs::write(m.path("after"), b"the share works").unwrap();
    assert_eq!(fs::read(m.path("after")).unwrap(), b"the share works");
}
