//! Snapshots through a real mount: taken with the control file or mkdir, browsed and copied
//! from with ordinary tools, immutable, point-in-time, complete, durable and incremental.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use crate::harness::{Mounted, as_nobody, get_xattr, pack_bytes};

fn control(m: &Mounted, command: &str) -> std::io::Result<()> {
    fs::write(m.path(".snapshots/.control"), format!("{command}\n"))
}

fn control_status(m: &Mounted) -> String {
    fs::read_to_string(m.path(".snapshots/.control")).unwrap()
}

#[test]
fn take_browse_diff_and_restore_by_copy() {
    let m = Mounted::new();
    fs::create_dir(m.path("etc")).unwrap();
    fs::write(m.path("etc/app.conf"), "listen = 80\n").unwrap();
    control(&m, "create before-deploy").unwrap();
    fs::write(m.path("etc/app.conf"), "listen = 8080\n").unwrap();
    fs::write(m.path("etc/new.conf"), "new\n").unwrap();
    let snap = m.path(".snapshots/before-deploy");
    assert_eq!(
        fs::read_to_string(snap.join("etc/app.conf")).unwrap(),
        "listen = 80\n"
    );
    assert!(!snap.join("etc/new.conf").exists());
    let diff = Command::new("diff")
        .arg("-r")
        .arg(&snap)
        .arg(&m.mnt)
        .output()
        .unwrap();
    let diff = String::from_utf8_lossy(&diff.stdout);
    assert!(
        diff.contains("listen = 8080") && diff.contains("Only in"),
        "{diff}"
    );
    let cp = Command::new("cp")
        .arg("-a")
        .arg(snap.join("etc/app.conf"))
        .arg(m.path("etc/"))
        .status()
        .unwrap();
    assert!(cp.success());
    assert_eq!(
        fs::read_to_string(m.path("etc/app.conf")).unwrap(),
        "listen = 80\n"
    );
    assert!(control_status(&m).contains("before-deploy"));
}

#[test]
fn mkdir_and_rmdir_under_snapshots_create_and_delete() {
    let m = Mounted::new();
    fs::write(m.path("f"), "x").unwrap();
    let before = std::time::SystemTime::now();
    fs::create_dir(m.path(".snapshots/nightly-2026-11-21")).unwrap();
    let meta = fs::metadata(m.path(".snapshots/nightly-2026-11-21")).unwrap();
    let mtime = meta.modified().unwrap();
    let skew = std::time::Duration::from_secs(2);
    assert!(mtime + skew >= before && mtime <= std::time::SystemTime::now() + skew);
    let names: Vec<String> = fs::read_dir(m.path(".snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        names.contains(&"nightly-2026-11-21".to_string()),
        "{names:?}"
    );
    fs::remove_dir(m.path(".snapshots/nightly-2026-11-21")).unwrap();
    assert!(!m.path(".snapshots/nightly-2026-11-21").exists());
    control(&m, "create a").unwrap();
    control(&m, "delete a").unwrap();
    assert!(!m.path(".snapshots/a").exists());
}

#[test]
fn snapshots_are_hidden_from_the_root_listing_unless_visible() {
    let m = Mounted::new();
    let names = |m: &Mounted| -> Vec<String> {
        fs::read_dir(&m.mnt)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect()
    };
    fs::write(m.path("a"), "a").unwrap();
    assert_eq!(names(&m), ["a"]);
    assert!(m.path(".snapshots").is_dir(), "reachable by name");
    let visible = Mounted::new_with(&[], &["--snapdir", "visible"]);
    assert!(names(&visible).contains(&".snapshots".to_string()));
}

#[test]
fn every_change_inside_a_snapshot_is_erofs() {
    let m = Mounted::new();
    fs::create_dir(m.path("d")).unwrap();
    fs::write(m.path("d/f"), "data").unwrap();
    fs::create_dir(m.path("d/sub")).unwrap();
    control(&m, "create s").unwrap();
    let snap = m.path(".snapshots/s");
    let erofs = |result: std::io::Result<()>, what: &str| {
        let err = result.expect_err(what);
        assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{what}: {err}");
    };
    let f = snap.join("d/f");
    erofs(
        fs::OpenOptions::new().write(true).open(&f).map(drop),
        "open for writing",
    );
    erofs(
        fs::OpenOptions::new().append(true).open(&f).map(drop),
        "open for append",
    );
    erofs(
        fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(snap.join("d/new"))
            .map(drop),
        "create",
    );
    erofs(fs::remove_file(&f), "unlink");
    erofs(fs::remove_dir(snap.join("d/sub")), "rmdir");
    erofs(fs::create_dir(snap.join("d/x")), "mkdir");
    erofs(fs::rename(&f, snap.join("d/g")), "rename inside");
    erofs(fs::rename(&f, m.path("out")), "rename out");
    erofs(fs::rename(m.path("d/f"), snap.join("d/in")), "rename in");
    erofs(fs::hard_link(&f, snap.join("d/h")), "link inside");
    erofs(fs::hard_link(&f, m.path("h")), "link out");
    erofs(std::os::unix::fs::symlink("t", snap.join("d/l")), "symlink");
    erofs(
        fs::set_permissions(&f, fs::Permissions::from_mode(0o777)),
        "chmod",
    );
    erofs(
        nix::unistd::truncate(&f, 0).map_err(std::io::Error::from),
        "truncate",
    );
    erofs(
        nix::unistd::chown(&f, Some(nix::unistd::Uid::from_raw(1)), None)
            .map_err(std::io::Error::from),
        "chown",
    );
    erofs(
        nix::sys::stat::utimensat(
            nix::fcntl::AT_FDCWD,
            &f,
            &nix::sys::time::TimeSpec::new(1, 0),
            &nix::sys::time::TimeSpec::new(1, 0),
            nix::sys::stat::UtimensatFlags::FollowSymlink,
        )
        .map_err(std::io::Error::from),
        "utimens",
    );
    erofs(xattr(&f, "user.k", Some(b"v")), "setxattr");
    erofs(xattr(&f, "user.k", None), "removexattr");
    assert_eq!(fs::read(&f).unwrap(), b"data", "reading still works");
}

fn xattr(path: &Path, name: &str, value: Option<&[u8]>) -> std::io::Result<()> {
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let c_name = std::ffi::CString::new(name).unwrap();
    // SAFETY: valid C strings and a buffer of the given length.
    let rc = unsafe {
        match value {
            Some(v) => libc::setxattr(
                c_path.as_ptr(),
                c_name.as_ptr(),
                v.as_ptr().cast(),
                v.len(),
                0,
            ),
            None => libc::removexattr(c_path.as_ptr(), c_name.as_ptr()),
        }
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[test]
fn names_are_validated_and_duplicates_refused() {
    let m = Mounted::new();
    control(&m, "create good").unwrap();
    let long = "x".repeat(256);
    for (command, errno) in [
        ("create .hidden", libc::EINVAL),
        (&format!("create {long}")[..], libc::EINVAL),
        ("create a/b", libc::EINVAL),
        ("create good", libc::EEXIST),
        ("delete missing", libc::ENOENT),
        ("explode now", libc::EINVAL),
        ("create", libc::EINVAL),
    ] {
        let err = control(&m, command).expect_err(command);
        assert_eq!(err.raw_os_error(), Some(errno), "{command}");
        assert!(
            control_status(&m).starts_with("last: error:"),
            "{command}: {}",
            control_status(&m)
        );
    }
    let err = fs::create_dir(m.path(".snapshots/good")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EEXIST));
}

#[test]
fn snapshots_are_complete() {
    let m = Mounted::new();
    fs::create_dir(m.path("empty")).unwrap();
    fs::write(m.path("file"), "content").unwrap();
    fs::set_permissions(m.path("file"), fs::Permissions::from_mode(0o4751)).unwrap();
    nix::unistd::chown(
        &m.path("file"),
        Some(nix::unistd::Uid::from_raw(1234)),
        Some(nix::unistd::Gid::from_raw(5678)),
    )
    .unwrap();
    fs::hard_link(m.path("file"), m.path("empty2link")).unwrap();
    std::os::unix::fs::symlink("file", m.path("sym")).unwrap();
    xattr(&m.path("file"), "user.tag", Some(b"blue")).unwrap();
    let sparse = fs::File::create(m.path("sparse")).unwrap();
    sparse.set_len(3 << 30).unwrap();
    use std::os::unix::fs::FileExt;
    sparse.write_all_at(b"tail", (3 << 30) - 4).unwrap();
    drop(sparse);
    nix::unistd::mkfifo(
        &m.path("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o640),
    )
    .unwrap();
    control(&m, "create full").unwrap();
    let s = |p: &str| m.path(&format!(".snapshots/full/{p}"));
    let (live, snap) = (
        fs::metadata(m.path("file")).unwrap(),
        fs::metadata(s("file")).unwrap(),
    );
    assert_eq!(snap.mode(), live.mode());
    assert_eq!((snap.uid(), snap.gid()), (1234, 5678));
    assert_eq!(
        (snap.mtime(), snap.mtime_nsec()),
        (live.mtime(), live.mtime_nsec())
    );
    assert_eq!(snap.nlink(), 2);
    assert_eq!(
        snap.ino(),
        fs::metadata(s("empty2link")).unwrap().ino(),
        "hard links share an inode"
    );
    assert_ne!(
        snap.ino(),
        live.ino(),
        "snapshot inodes are distinct from live ones"
    );
    assert_eq!(fs::read_link(s("sym")).unwrap().to_str(), Some("file"));
    assert!(s("empty").is_dir() && fs::read_dir(s("empty")).unwrap().next().is_none());
    assert_eq!(get_xattr(&s("file"), "user.tag").unwrap(), b"blue");
    // POSIX ACLs are not supported, in a snapshot as in the live share (not merely absent:
    // `ls -l` then asks once, not for every file).
    for path in [m.path("file"), s("file")] {
        let err = get_xattr(&path, "system.posix_acl_access").unwrap_err();
        assert_eq!(
            err.raw_os_error(),
            Some(libc::EOPNOTSUPP),
            "{}",
            path.display()
        );
    }
    let sparse = fs::metadata(s("sparse")).unwrap();
    assert_eq!(sparse.len(), 3 << 30);
    let f = fs::File::open(s("sparse")).unwrap();
    let mut tail = [0u8; 4];
    f.read_exact_at(&mut tail, (3 << 30) - 4).unwrap();
    assert_eq!(&tail, b"tail");
    let mut middle = [1u8; 4096];
    f.read_exact_at(&mut middle, 1 << 30).unwrap();
    assert!(middle.iter().all(|b| *b == 0));
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(
        &fs::metadata(s("fifo")).unwrap().file_type()
    ));
}

#[test]
fn snapshots_survive_kill_9_byte_for_byte() {
    let mut m = Mounted::new();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    fs::write(m.path("big"), &data).unwrap();
    control(&m, "create durable").unwrap();
    fs::write(m.path("big"), b"changed").unwrap();
    m.kill9();
    m.mount();
    assert_eq!(fs::read(m.path(".snapshots/durable/big")).unwrap(), data);
    m.remount();
    assert_eq!(fs::read(m.path(".snapshots/durable/big")).unwrap(), data);
}

#[test]
fn a_snapshot_costs_what_changed() {
    let m = Mounted::new();
    let mut seed = 1u64;
    for i in 0..32 {
        let data: Vec<u8> = (0..1 << 20)
            .map(|_| {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (seed >> 56) as u8
            })
            .collect();
        fs::write(m.path(&format!("f{i}")), data).unwrap();
    }
    control(&m, "first").unwrap_or_else(|_| control(&m, "create first").unwrap());
    let before = pack_bytes(&m.store);
    let change: Vec<u8> = (0..1 << 20).map(|i| (i * 131 % 253) as u8 ^ 0x5a).collect();
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(m.path("f7"))
        .unwrap();
    f.write_all(&change).unwrap();
    drop(f);
    control(&m, "create second").unwrap();
    let growth = pack_bytes(&m.store) - before;
    assert!(
        growth < (1 << 20) + (128 << 10),
        "changing 1 MiB of 32 MiB grew the store by {growth} bytes"
    );
}

/// A name added to a directory of 20,000 stores a few parts of its listing, not the listing
/// again: the snapshot object of a big directory is cut into parts where its content says, so
/// the parts before and after the new name are the last snapshot's.
#[test]
fn a_snapshot_of_a_big_directory_costs_what_changed() {
    let m = Mounted::new();
    let fifo = |name: &str| {
        nix::unistd::mkfifo(
            &m.path(&format!("big/{name}")),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap()
    };
    fs::create_dir(m.path("big")).unwrap();
    for i in 0..20_000 {
        fifo(&format!("p{i:06}"));
    }
    let before = pack_bytes(&m.store);
    control(&m, "create first").unwrap();
    let listing = pack_bytes(&m.store) - before;
    fifo("p010000-new");
    let before = pack_bytes(&m.store);
    control(&m, "create second").unwrap();
    let growth = pack_bytes(&m.store) - before;
    assert!(
        growth * 4 < listing,
        "one name more in a listing that took {listing} bytes grew the store by {growth}"
    );
    assert!(m.path(".snapshots/second/big/p010000-new").exists());
    assert_eq!(
        fs::read_dir(m.path(".snapshots/first/big"))
            .unwrap()
            .count(),
        20_000
    );
}

/// With `--writeback-cache off` a snapshot is a consistent cut of un-synced writes too: a write
/// in it means every write that returned before that one started is in it. (With the writeback
/// cache the kernel hands un-synced writes over in its own order; `writeback` tests what holds
/// then.)
#[test]
fn snapshots_are_point_in_time_across_files() {
    let m = std::sync::Arc::new(Mounted::new_with(&[], &["--writeback-cache", "off"]));
    const FILES: u64 = 4;
    // Each record is one pwrite of a fixed width, so a write is all in a snapshot or not at all.
    let files: Vec<fs::File> = (0..FILES)
        .map(|f| fs::File::create(m.path(&format!("log{f}"))).unwrap())
        .collect();
    // The writer waits for a snapshot every 100 writes, so that snapshots fall between writes
    // however busy the machine is.
    let snapshots_taken = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let seen = snapshots_taken.clone();
    let writer = std::thread::spawn(move || {
        use std::os::unix::fs::FileExt;
        use std::sync::atomic::Ordering;
        for seq in 1..=400u64 {
            while seq % 100 == 0 && seen.load(Ordering::Acquire) < seq / 100 {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            let file = &files[(seq % FILES) as usize];
            file.write_all_at(format!("{seq:020}").as_bytes(), 0)
                .unwrap();
        }
    });
    let mut taken = 0;
    while !writer.is_finished() {
        control(&m, &format!("create p{taken}")).unwrap();
        taken += 1;
        snapshots_taken.store(taken, std::sync::atomic::Ordering::Release);
    }
    writer.join().unwrap();
    for n in 0..taken {
        let values: Vec<Option<u64>> = (0..FILES)
            .map(|f| {
                let text = fs::read_to_string(m.path(&format!(".snapshots/p{n}/log{f}"))).unwrap();
                (!text.is_empty()).then(|| text.parse().expect("a whole sequence number"))
            })
            .collect();
        let Some(top) = values.iter().flatten().max().copied() else {
            continue;
        };
        // Every write before the newest one seen is in the snapshot too.
        for (f, value) in values.iter().enumerate() {
            let f = f as u64;
            // The last sequence number up to `top` that went to this file (they start at 1).
            let expected = top
                .checked_sub((top + FILES - f) % FILES)
                .filter(|seq| *seq >= 1);
            assert_eq!(*value, expected, "snapshot p{n}, file log{f}: {values:?}");
        }
    }
    assert!(taken > 1);
}

#[test]
fn the_control_file_refuses_other_users() {
    let m = Mounted::new_with(&[], &["--allow-other"]);
    fs::set_permissions(&m.mnt, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(m.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let out = as_nobody(&format!(
        "echo 'create sneaky' > {}/.snapshots/.control",
        m.mnt.display()
    ));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Permission denied"));
    assert!(!m.path(".snapshots/sneaky").exists());
}

/// How many files and directories the daemon encoded for snapshot `name` (from its log).
fn encoded_for(m: &Mounted, name: &str) -> u64 {
    // Without the terminal colours the daemon's log has.
    let mut log = String::new();
    let mut rest = m.log();
    while let Some(start) = rest.find('\u{1b}') {
        log.push_str(&rest[..start]);
        rest = match rest[start..].find('m') {
            Some(end) => rest[start + end + 1..].to_owned(),
            None => String::new(),
        };
    }
    log.push_str(&rest);
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("snapshot created") && l.contains(&format!("snapshot=\"{name}\"")))
        .unwrap_or_else(|| panic!("no log line for {name}: {log}"));
    let value = line.split("encoded=").nth(1).expect("an encoded count");
    value
        .split_whitespace()
        .next()
        .unwrap_or("")
        .parse()
        .expect("a number")
}

/// The first snapshot after a remount, and after a gc, costs what changed: what each inode
/// froze to is kept in the store (and by gc), so only the changed file and the directories
/// above it are encoded again.
#[test]
fn a_snapshot_after_a_remount_or_a_gc_encodes_only_what_changed() {
    let mut m = Mounted::new();
    for d in 0..10 {
        fs::create_dir(m.path(&format!("d{d}"))).unwrap();
        for f in 0..20 {
            fs::write(m.path(&format!("d{d}/f{f}")), format!("{d} {f}")).unwrap();
        }
    }
    control(&m, "create s1").unwrap();
    assert!(encoded_for(&m, "s1") >= 211, "the first encodes everything");
    m.remount();
    fs::write(m.path("d4/f7"), "changed").unwrap();
    control(&m, "create s2").unwrap();
    assert_eq!(encoded_for(&m, "s2"), 3, "d4/f7, d4 and the root");
    control(&m, "delete s1").unwrap();
    crate::harness::control_wait(&m, "gc").expect("gc");
    fs::write(m.path("d5/f1"), "changed too").unwrap();
    control(&m, "create s3").unwrap();
    assert_eq!(encoded_for(&m, "s3"), 3, "after gc too");
    assert_eq!(
        fs::read_to_string(m.path(".snapshots/s3/d4/f7")).unwrap(),
        "changed"
    );
    assert_eq!(
        fs::read_to_string(m.path(".snapshots/s3/d9/f19")).unwrap(),
        "9 19"
    );
    m.remount();
    assert_eq!(
        fs::read_to_string(m.path(".snapshots/s3/d0/f0")).unwrap(),
        "0 0"
    );
}

/// How many snapshot-side inodes the daemon remembers, as `snapfs status --json` reports.
fn view_inodes(m: &Mounted) -> u64 {
    let out = crate::harness::snapfs_ok(&["status", "--json", "--mount", m.mnt.to_str().unwrap()]);
    let status: serde_json::Value = serde_json::from_str(&out).expect("json");
    status["snapshot_view"]["inodes"].as_u64().expect("a count")
}

/// Fills the share with `dirs` directories `dD` of `files` files `dD/fF` holding "D F\n".
fn fill(m: &Mounted, dirs: usize, files: usize) {
    for d in 0..dirs {
        fs::create_dir(m.path(&format!("d{d}"))).unwrap();
        for f in 0..files {
            fs::write(m.path(&format!("d{d}/f{f}")), format!("{d} {f}\n")).unwrap();
        }
    }
}

/// How many lines the files under `dir` hold, read by `find -exec cat`.
fn lines_in_files(dir: &Path) -> String {
    let cat = Command::new("sh")
        .arg("-c")
        .arg("find \"$1\" -type f -exec cat {} + | wc -l")
        .arg("sh")
        .arg(dir)
        .output()
        .unwrap();
    String::from_utf8_lossy(&cat.stdout).trim().to_owned()
}

/// Browsing a snapshot of thousands of files with `find` and `cat` leaves the daemon
/// remembering only what the kernel holds: once the kernel drops its caches (and sends
/// `forget`), the count falls, while a file kept open keeps its inode number and stays readable.
#[test]
fn browsing_a_large_snapshot_holds_only_what_the_kernel_holds() {
    let m = Mounted::new();
    fill(&m, 40, 75);
    control(&m, "create big").unwrap();
    let snap = m.path(".snapshots/big");
    let find = Command::new("find").arg(&snap).output().unwrap();
    assert!(find.status.success());
    assert_eq!(
        find.stdout.iter().filter(|b| **b == b'\n').count(),
        1 + 40 + 40 * 75
    );
    assert_eq!(lines_in_files(&snap), "3000");
    let before = view_inodes(&m);
    assert!(before >= 1000, "the kernel holds what find saw: {before}");

    let open = fs::File::open(snap.join("d7/f9")).unwrap();
    let ino = open.metadata().unwrap().ino();
    Command::new("sync").status().unwrap();
    fs::write("/proc/sys/vm/drop_caches", "2\n").expect("drop the kernel's caches");
    crate::harness::wait_for("the daemon forgets what the kernel forgot", 20, || {
        view_inodes(&m) < 100
    });
    let after = view_inodes(&m);
    assert!(after >= 1, "the open file is still held");
    // Still the same inode, by its descriptor and by a new lookup, and still readable.
    assert_eq!(open.metadata().unwrap().ino(), ino);
    assert_eq!(fs::metadata(snap.join("d7/f9")).unwrap().ino(), ino);
    let mut text = String::new();
    std::io::Read::read_to_string(&mut &open, &mut text).unwrap();
    assert_eq!(text, "7 9\n");
    drop(open);
    // A second walk finds everything again.
    let find = Command::new("find")
        .arg(&snap)
        .arg("-type")
        .arg("f")
        .output()
        .unwrap();
    assert_eq!(find.stdout.iter().filter(|b| **b == b'\n').count(), 3000);
    eprintln!("snapshot inodes held: {before} after find, {after} after drop_caches");
}

/// With a small `--metadata-cache`, the daemon keeps the snapshot inodes it remembers within
/// the budget it gives them (128 bytes each, at least 1,024) while a walk goes over many more:
/// it asks the kernel to forget the names it used least recently, without waiting for memory
/// pressure. Everything stays readable, an open file included, and a second walk finds it all.
#[test]
fn a_walk_over_a_snapshot_larger_than_the_budget_holds_the_budget() {
    let m = Mounted::new_with(&[], &["--metadata-cache", "128K"]);
    fill(&m, 60, 100);
    control(&m, "create big").unwrap();
    let snap = m.path(".snapshots/big");
    let open = fs::File::open(snap.join("d3/f4")).unwrap();
    let count = |path: &Path| {
        let find = Command::new("find").arg(path).output().unwrap();
        assert!(find.status.success());
        find.stdout.iter().filter(|b| **b == b'\n').count()
    };
    assert_eq!(count(&snap), 1 + 60 + 60 * 100);
    crate::harness::wait_for("the view back within its budget", 20, || {
        view_inodes(&m) <= 1024
    });
    assert_eq!(lines_in_files(&snap), "6000");
    let mut text = String::new();
    std::io::Read::read_to_string(&mut &open, &mut text).unwrap();
    assert_eq!(text, "3 4\n");
    assert_eq!(fs::read_to_string(snap.join("d59/f99")).unwrap(), "59 99\n");
    crate::harness::wait_for("the view back within its budget", 20, || {
        view_inodes(&m) <= 1024
    });
}

/// A reader of the control file sees one status, however many reads it takes and whatever
/// changes between them; reading again from the start sees the change.
#[test]
fn a_status_read_in_pieces_is_one_status() {
    use std::io::{Read, Seek};
    let m = Mounted::new();
    for n in 0..50 {
        control(&m, &format!("create s{n:02}")).unwrap();
    }
    let mut reader = fs::File::open(m.path(".snapshots/.control")).unwrap();
    let mut status = vec![0; 100];
    reader.read_exact(&mut status).unwrap();
    control(&m, "create zz-after-the-first-read").unwrap();
    reader.read_to_end(&mut status).unwrap();
    let status = String::from_utf8(status).unwrap();
    assert!(status.contains("snapshots: 50\n"), "{status}");
    assert_eq!(
        status.lines().filter(|line| line.contains('\t')).count(),
        50
    );
    assert!(!status.contains("zz-after"), "{status}");

    reader.rewind().unwrap();
    let mut again = String::new();
    reader.read_to_string(&mut again).unwrap();
    assert!(
        again.contains("snapshots: 51\n") && again.contains("zz-after"),
        "{again}"
    );
}
