//! The kernel's writeback cache (on by default) keeps the point-in-time promise: a snapshot
//! holds every write that returned before it was requested, even while the file is still open
//! and its data is only in the kernel's page cache.

use std::fs;
use std::io::Write;
use std::os::unix::fs::FileExt;

use crate::harness::{Mounted, noise};

const TRIALS: u64 = 30;

fn create(m: &Mounted, name: &str) {
    fs::write(m.path(".snapshots/.control"), format!("create {name}\n")).expect("create");
}

/// A 4 MiB write that returned, the file still open, a snapshot at once: the snapshot has
/// every byte, in every trial. (Without collecting the kernel's writes first, none of 30 did.)
#[test]
fn a_snapshot_holds_writes_still_in_the_kernels_page_cache() {
    let m = Mounted::new();
    for trial in 0..TRIALS {
        let name = format!("f{trial}");
        let data = noise(4 << 20, trial);
        let mut file = fs::File::create(m.path(&name)).expect("create file");
        file.write_all(&data).expect("write");
        create(&m, &format!("s{trial}"));
        let found = fs::read(m.path(&format!(".snapshots/s{trial}/{name}"))).expect("read");
        assert_eq!(found.len(), data.len(), "trial {trial}: size");
        assert!(
            found == data,
            "trial {trial}: the snapshot's content differs"
        );
        drop(file);
    }
}

/// Several open files, each rewritten in place at scattered offsets after an earlier snapshot,
/// some through a hard link or a renamed path: each snapshot holds exactly the writes that
/// returned before it.
#[test]
fn open_files_rewritten_in_place_are_point_in_time_in_every_snapshot() {
    let m = Mounted::new();
    fs::create_dir(m.path("d")).expect("mkdir");
    let mut files = Vec::new();
    let mut models = Vec::new();
    for i in 0..4u64 {
        let path = m.path(&format!("d/file{i}"));
        let model = noise(1 << 20, 100 + i);
        fs::write(&path, &model).expect("write");
        files.push(
            fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .expect("open"),
        );
        models.push(model);
    }
    fs::hard_link(m.path("d/file1"), m.path("link1")).expect("link");
    fs::rename(m.path("d/file2"), m.path("d/renamed2")).expect("rename");
    let paths = ["d/file0", "link1", "d/renamed2", "d/file3"];
    for trial in 0..TRIALS {
        for (i, file) in files.iter().enumerate() {
            let offset = (trial as usize * 37_123 + i * 4_001) % ((1 << 20) - 10_000);
            let bytes = noise(7_000, trial * 10 + i as u64);
            file.write_all_at(&bytes, offset as u64).expect("write");
            models[i][offset..offset + bytes.len()].copy_from_slice(&bytes);
        }
        create(&m, &format!("t{trial}"));
        for (i, path) in paths.iter().enumerate() {
            let found = fs::read(m.path(&format!(".snapshots/t{trial}/{path}"))).expect("read");
            assert!(found == models[i], "trial {trial}: {path} differs");
        }
    }
}

/// Writes racing a snapshot: a writer puts each sequence number in file `a`, fsyncs it, then
/// puts it in file `b` without syncing. Every snapshot holds every write that returned before it
/// was requested, and is a state a crash could leave: `b` never ahead of `a`, since `b`'s write
/// started after `a`'s fsync had handed the same number over.
#[test]
fn a_snapshot_taken_during_writes_is_crash_consistent() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    let m = Arc::new(Mounted::new());
    let a = fs::File::create(m.path("a")).expect("a");
    let b = fs::File::create(m.path("b")).expect("b");
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (done, stop) = (done.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut seq = 0u64;
            while !stop.load(Ordering::Acquire) {
                seq += 1;
                let text = format!("{seq:020}");
                a.write_all_at(text.as_bytes(), 0).expect("write a");
                a.sync_data().expect("fsync a");
                b.write_all_at(text.as_bytes(), 0).expect("write b");
                done.store(seq, Ordering::Release);
            }
        })
    };
    let read = |snap: &str, f: &str| -> u64 {
        let text = fs::read_to_string(m.path(&format!(".snapshots/{snap}/{f}"))).expect("read");
        if text.is_empty() {
            0
        } else {
            text.parse().expect("a whole number")
        }
    };
    for trial in 0..TRIALS {
        let before = done.load(Ordering::Acquire);
        let name = format!("c{trial}");
        create(&m, &name);
        let (in_a, in_b) = (read(&name, "a"), read(&name, "b"));
        assert!(
            in_b >= before,
            "{name}: b has {in_b}, but {before} had returned before"
        );
        assert!(
            in_a >= in_b,
            "{name}: b ({in_b}) is ahead of a ({in_a}), fsync'd first"
        );
    }
    stop.store(true, Ordering::Release);
    writer.join().expect("writer");
}

/// Without the writeback cache (`--writeback-cache off`) the promise is the same.
#[test]
fn the_promise_holds_with_the_writeback_cache_off() {
    let m = Mounted::new_with(&[], &["--writeback-cache", "off"]);
    let data = noise(4 << 20, 7);
    let mut file = fs::File::create(m.path("f")).expect("create file");
    file.write_all(&data).expect("write");
    create(&m, "s");
    assert!(fs::read(m.path(".snapshots/s/f")).expect("read") == data);
}

/// With the writeback cache the kernel stamps a file's mtime at write(2) and shows that time;
/// the share records the same time (not the later moment the data reached the daemon), so a
/// snapshot, and the share after a remount, show what `stat` showed.
#[test]
fn snapshots_and_remounts_keep_the_times_the_kernel_showed() {
    use std::os::unix::fs::MetadataExt;
    let mut m = Mounted::new();
    let times = |m: &Mounted, dir: &str| -> Vec<(i64, i64)> {
        (0..40)
            .map(|i| {
                let meta = fs::metadata(m.path(&format!("{dir}f{i}"))).expect("stat");
                (meta.mtime(), meta.mtime_nsec())
            })
            .collect()
    };
    // Files still open when the mount is synced: sync(2) sends the kernel's times while the
    // data may still be on its way to the daemon (the race in which the daemon, stamping its
    // own time on the data's arrival, used to record a later mtime than `stat` showed).
    let files: Vec<fs::File> = (0..40u64)
        .map(|i| {
            let mut file = fs::File::create(m.path(&format!("f{i}"))).expect("create");
            file.write_all(&noise(3 << 20, i)).expect("write");
            file
        })
        .collect();
    nix::unistd::syncfs(&files[0]).expect("syncfs");
    drop(files);
    let shown = times(&m, "");
    create(&m, "s");
    assert_eq!(times(&m, ".snapshots/s/"), shown, "the snapshot's times");
    m.remount();
    assert_eq!(times(&m, ""), shown, "the times after a remount");
}
