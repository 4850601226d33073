//! Commit ordering under `kill -9`: after a crash every file is as it was at some moment of its
//! life. Its size never covers bytes that were not stored, and a later change of the inode
//! (times, mode) is never kept without the data written before it (ext4's `data=ordered`).
//! Nothing here calls `fsync`: losing the newest writes is allowed, showing zeros where data was
//! written, or a mode set after data that was lost, is not.
//!
//! Each workload checks contents, not only metadata. `scripts/crash-soak.sh` runs these with
//! many seeds; the suite runs the fixed default.
//!
//! These are the promises of `--writeback-cache off`, where every write(2) reaches snapfs
//! before it returns. With the kernel's writeback cache (the default) un-synced data waits in
//! the kernel's page cache, which hands it over when and in the order it likes, as ext4's does:
//! a crash then keeps everything fsync'd (`durability`) and some subset of the rest.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::harness::{Mounted, noise};

/// The kill comes after this many milliseconds plus a random part, so that several commits
/// (every second here) have run first.
const KILL_AFTER_MS: u64 = 1_500;

fn seed() -> u64 {
    std::env::var("SNAPFS_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x0dd5)
}

/// A delay in [KILL_AFTER_MS, KILL_AFTER_MS + 2 s), different for each round.
fn kill_delay(round: u64) -> Duration {
    let mut x = seed() ^ (round.wrapping_add(1)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x ^= x >> 29;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 32;
    Duration::from_millis(KILL_AFTER_MS + x % 2_000)
}

fn mounted() -> Mounted {
    Mounted::new_with(
        &["--block-size", "64K"],
        &["--commit-interval", "1", "--writeback-cache", "off"],
    )
}

/// `found` is the first `found.len()` bytes of `written`: what a crash may leave of a file
/// written front to back.
fn assert_prefix(found: &[u8], written: &[u8], what: &str) {
    assert!(
        found.len() <= written.len(),
        "{what}: {} bytes after the crash, only {} were written",
        found.len(),
        written.len()
    );
    if let Some(at) = found.iter().zip(written).position(|(a, b)| a != b) {
        panic!(
            "{what}: byte {at} of {} differs from what was written (found {:#04x}, wrote {:#04x}){}",
            found.len(),
            found[at],
            written[at],
            if found[at..].iter().all(|b| *b == 0) {
                ": the size was kept without the data it covers"
            } else {
                ""
            }
        );
    }
}

/// A log written a line at a time with O_APPEND and never synced, as a daemon's log is: after
/// the crash the file is some prefix of the lines, never zeros.
#[test]
fn an_appended_log_is_a_prefix_of_its_lines_after_kill_9() {
    let mut m = mounted();
    let mut kept = Vec::new();
    for round in 0..3u64 {
        let path = m.path(&format!("app-{round}.log"));
        let mut file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .expect("open log");
        let writer = std::thread::spawn(move || {
            let mut written = Vec::new();
            for i in 0.. {
                let line = format!(
                    "{i:08} the quick brown fox jumps over the lazy dog {:>40}\n",
                    i * 7919
                );
                if file.write_all(line.as_bytes()).is_err() {
                    break;
                }
                written.extend_from_slice(line.as_bytes());
                std::thread::sleep(Duration::from_millis(20));
            }
            written
        });
        std::thread::sleep(kill_delay(round));
        m.kill9();
        let written = writer.join().expect("writer");
        m.mount();
        let found = fs::read(&path).expect("the log survives its creation's commit");
        assert_prefix(&found, &written, &format!("round {round}"));
        kept.push(found.len());
    }
    // At least one crash came after a commit that held some of the log, so the check had
    // something to look at.
    assert!(
        kept.iter().any(|n| *n > 0),
        "no commit kept any line: {kept:?}"
    );
}

/// Files written, then given old times, then chmod'ed, then closed, one after another, as a
/// restore tool does: a file that shows the later mode or times holds all its data.
#[test]
fn times_and_mode_are_never_kept_without_the_data_written_before_them() {
    let mut m = mounted();
    let mut checked_complete = 0;
    for round in 0..3u64 {
        let dir = m.path(&format!("round-{round}"));
        fs::create_dir(&dir).expect("mkdir");
        let writer_dir = dir.clone();
        let writer = std::thread::spawn(move || {
            let mut files = Vec::new();
            for i in 0u64.. {
                let data = nonzero(20_000 + (i as usize * 7_001) % 180_000, round * 1_000 + i);
                let path = writer_dir.join(format!("f{i}"));
                let done = (|| -> std::io::Result<()> {
                    let mut f = fs::OpenOptions::new()
                        .create(true)
                        .truncate(true)
                        .write(true)
                        .mode(0o644)
                        .open(&path)?;
                    f.write_all(&data)?;
                    f.set_modified(old_time(i))?;
                    f.set_permissions(fs::Permissions::from_mode(0o600))?;
                    Ok(())
                })();
                files.push((path, data));
                if done.is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            files
        });
        std::thread::sleep(kill_delay(round));
        m.kill9();
        let files = writer.join().expect("writer");
        m.mount();
        for (i, (path, data)) in files.iter().enumerate() {
            let Ok(meta) = fs::metadata(path) else {
                continue;
            };
            let found = fs::read(path).expect("read");
            let what = format!("round {round}: {}", path.display());
            assert_prefix(&found, data, &what);
            let later_mode = meta.mode() & 0o777 == 0o600;
            let later_times = meta.modified().expect("mtime") == old_time(i as u64);
            if later_times || later_mode {
                assert!(
                    found.len() == data.len(),
                    "{what}: mode {:o} / old mtime {later_times} kept, but only {} of {} bytes",
                    meta.mode() & 0o777,
                    found.len(),
                    data.len()
                );
                checked_complete += 1;
            }
        }
    }
    assert!(checked_complete > 0, "no file reached its later attributes");
}

/// `cp -a` of a tree of a few thousand files, cut by the crash: every file copied so far is a
/// prefix of its source, and one whose times were copied (cp sets them last) is complete.
#[test]
fn a_large_copy_cut_by_kill_9_leaves_prefixes_of_its_sources() {
    let mut m = mounted();
    let source = m.dir.path().join("source");
    let files = make_source_tree(&source, 2_500);
    let mut complete = 0;
    for round in 0..2u64 {
        let target = m.path(&format!("copy-{round}"));
        let mut cp = std::process::Command::new("cp")
            .arg("-a")
            .arg(&source)
            .arg(&target)
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("cp");
        std::thread::sleep(kill_delay(round));
        m.kill9();
        let _ = cp.wait();
        m.mount();
        for (relative, data) in &files {
            let path = target.join(relative);
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            let found = fs::read(&path).expect("read");
            let what = format!("round {round}: {relative}");
            assert_prefix(&found, data, &what);
            let source_mtime = fs::metadata(source.join(relative))
                .expect("source")
                .modified();
            if meta.modified().ok() == source_mtime.ok() {
                assert!(
                    found.len() == data.len(),
                    "{what}: cp had set its times, but only {} of {} bytes",
                    found.len(),
                    data.len()
                );
                complete += 1;
            }
        }
    }
    assert!(
        complete > 0,
        "no copied file was complete after either crash"
    );
}

/// One change a punching writer makes to its file.
#[derive(Clone, Copy, Debug)]
enum RangeOp {
    Write {
        offset: usize,
        len: usize,
        seed: u64,
    },
    Punch {
        offset: usize,
        len: usize,
    },
    ZeroRange {
        offset: usize,
        len: usize,
    },
}

impl RangeOp {
    /// Applies the change to a model of the file (every range lies inside it).
    fn apply(self, model: &mut [u8]) {
        match self {
            RangeOp::Write { offset, len, seed } => {
                model[offset..offset + len].copy_from_slice(&nonzero(len, seed));
            }
            RangeOp::Punch { offset, len } | RangeOp::ZeroRange { offset, len } => {
                model[offset..offset + len].fill(0);
            }
        }
    }
}

/// A file, synced once, then punched, zeroed and rewritten in random ranges, never synced, as
/// a virtual machine image or database giving space back is: after `kill -9` the file is
/// exactly as it was after some prefix of those changes. Never a punch half applied (zeros in
/// some of its blocks and not others), never a partial block's zeros without its hole blocks,
/// never a later write kept without an earlier punch.
#[test]
fn a_file_punched_and_rewritten_is_a_state_it_had_after_kill_9() {
    use std::os::unix::fs::FileExt;
    let mut m = mounted();
    const BLOCK: usize = 64 * 1024;
    const SIZE: usize = 32 * BLOCK + 1234;
    let mut reached = Vec::new();
    for round in 0..3u64 {
        let path = m.path(&format!("image-{round}"));
        let initial = nonzero(SIZE, 500 + round);
        {
            let f = fs::File::create(&path).expect("create");
            f.write_all_at(&initial, 0).expect("write");
            f.sync_all().expect("fsync");
        }
        let file = fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open");
        let writer = std::thread::spawn(move || {
            let mut ops = Vec::new();
            let mut x = seed() ^ (round + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let mut next = move |n: usize| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % n as u64) as usize
            };
            for i in 0u64.. {
                let offset = next(SIZE);
                let len = 1 + next((SIZE - offset).min(6 * BLOCK));
                let op = match next(3) {
                    // Writes start on a page: the kernel sends a write(2) whose first page is
                    // partial and not cached as two FUSE requests (that page, then the rest),
                    // so a crash between them may keep half of it. That is allowed (ext4 does
                    // not make a write atomic against a crash either) but is no state at a
                    // change's boundary, which is what this test compares with.
                    0 => RangeOp::Write {
                        offset: offset / 4096 * 4096,
                        len: len + offset % 4096,
                        seed: round * 100_000 + i,
                    },
                    1 => RangeOp::Punch { offset, len },
                    _ => RangeOp::ZeroRange { offset, len },
                };
                // Recorded before it is made: the crash may keep the change it interrupts.
                ops.push(op);
                let done = match op {
                    RangeOp::Write { offset, len, seed } => file
                        .write_all_at(&nonzero(len, seed), offset as u64)
                        .map_err(|err| {
                            nix::errno::Errno::from_raw(err.raw_os_error().unwrap_or(0))
                        }),
                    RangeOp::Punch { .. } => nix::fcntl::fallocate(
                        &file,
                        nix::fcntl::FallocateFlags::FALLOC_FL_PUNCH_HOLE
                            | nix::fcntl::FallocateFlags::FALLOC_FL_KEEP_SIZE,
                        offset as i64,
                        len as i64,
                    ),
                    RangeOp::ZeroRange { .. } => nix::fcntl::fallocate(
                        &file,
                        nix::fcntl::FallocateFlags::FALLOC_FL_ZERO_RANGE
                            | nix::fcntl::FallocateFlags::FALLOC_FL_KEEP_SIZE,
                        offset as i64,
                        len as i64,
                    ),
                };
                if let Err(err) = done {
                    return (ops, err);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            unreachable!("the loop ends at the first error")
        });
        std::thread::sleep(kill_delay(round));
        m.kill9();
        let (ops, stopped_by) = writer.join().expect("writer");
        // ENOTCONN once the daemon is gone; ECONNABORTED for a request it had when it died.
        assert!(
            [nix::errno::Errno::ENOTCONN, nix::errno::Errno::ECONNABORTED].contains(&stopped_by),
            "round {round}: the writer stopped for another reason than the crash: {stopped_by}"
        );
        m.mount();
        let found = fs::read(&path).expect("read");
        let mut model = initial;
        let differing = |model: &[u8]| {
            if found.len() != model.len() {
                return usize::MAX;
            }
            found.iter().zip(model).filter(|(a, b)| a != b).count()
        };
        // (differing bytes, prefix length) of the state closest to what was found.
        let mut closest = (differing(&model), 0);
        for (k, op) in ops.iter().enumerate() {
            op.apply(&mut model);
            closest = closest.min((differing(&model), k + 1));
        }
        let (diff, k) = closest;
        if diff != 0 {
            let mut model = nonzero(SIZE, 500 + round);
            ops[..k].iter().for_each(|op| op.apply(&mut model));
            let wrong: Vec<usize> = (0..SIZE.min(found.len()))
                .filter(|i| found[*i] != model[*i])
                .collect();
            panic!(
                "round {round}: the file ({} bytes) is no state it had after any prefix of \
                 its {} changes; closest: after {k} changes, {diff} bytes differ, from {:?} \
                 to {:?} (zeros found: {}); changes around it: {:?}",
                found.len(),
                ops.len(),
                wrong.first(),
                wrong.last(),
                wrong.iter().filter(|i| found[**i] == 0).count(),
                &ops[k.saturating_sub(3)..(k + 3).min(ops.len())]
            );
        }
        reached.push((k, ops.len()));
    }
    // A commit (every second) kept some of the changes at least once: the check looked at
    // punched states, not only at the synced one.
    assert!(
        reached.iter().any(|(k, _)| *k > 0),
        "no change survived any crash: {reached:?}"
    );
}

/// Bytes with no zero among them, so a block lost to a crash cannot pass for data.
fn nonzero(len: usize, seed: u64) -> Vec<u8> {
    noise(len, seed).into_iter().map(|b| b | 1).collect()
}

fn old_time(i: u64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + Duration::from_secs(1_000_000_000 + i * 60)
}

/// A tree of `count` files of 0.5 to 40 KiB in 50 directories, with old times; returns each
/// file's path relative to `root` and its content.
fn make_source_tree(root: &Path, count: usize) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::with_capacity(count);
    for i in 0..count {
        let relative = format!("d{:02}/file-{i:05}.txt", i % 50);
        let path: PathBuf = root.join(&relative);
        if i < 50 {
            fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        }
        let data = nonzero(512 + (i * 4_099) % 40_000, 77 + i as u64);
        fs::write(&path, &data).expect("write");
        let f = fs::File::options().write(true).open(&path).expect("open");
        f.set_modified(old_time(i as u64)).expect("times");
        files.push((relative, data));
    }
    files
}
