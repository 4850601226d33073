//! POSIX operations through a real mount, checked one by one.

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use crate::harness::{Mounted, c_path, xattr_get, xattr_set};

#[test]
fn write_read_and_remount_persistence() {
    let mut m = Mounted::new();
    fs::write(m.path("hello.txt"), b"hello snapfs\n").unwrap();
    fs::create_dir_all(m.path("a/b/c")).unwrap();
    fs::write(m.path("a/b/c/deep"), vec![7u8; 300_000]).unwrap();
    m.remount();
    assert_eq!(fs::read(m.path("hello.txt")).unwrap(), b"hello snapfs\n");
    assert_eq!(fs::read(m.path("a/b/c/deep")).unwrap(), vec![7u8; 300_000]);
}

#[test]
fn truncate_up_and_down_and_sparse_holes() {
    let m = Mounted::new();
    let path = m.path("sparse");
    let mut f = fs::OpenOptions::new()
        .create_new(true)
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    f.seek(SeekFrom::Start(5 << 30)).unwrap();
    f.write_all(b"end").unwrap();
    f.sync_all().unwrap();
    let meta = fs::metadata(&path).unwrap();
    assert_eq!(meta.len(), (5 << 30) + 3);
    assert!(meta.blocks() * 512 < 1 << 20, "a hole costs no storage");
    let mut buf = vec![1u8; 4096];
    f.seek(SeekFrom::Start(1 << 30)).unwrap();
    f.read_exact(&mut buf).unwrap();
    assert!(buf.iter().all(|b| *b == 0), "holes read as zeros");
    f.set_len(10).unwrap();
    f.write_all_at_start(b"0123456789");
    f.set_len(4).unwrap();
    f.set_len(8).unwrap();
    let mut content = Vec::new();
    f.seek(SeekFrom::Start(0)).unwrap();
    f.read_to_end(&mut content).unwrap();
    assert_eq!(content, b"0123\0\0\0\0");
}

trait WriteAt {
    fn write_all_at_start(&mut self, data: &[u8]);
}

impl WriteAt for fs::File {
    fn write_all_at_start(&mut self, data: &[u8]) {
        use std::os::unix::fs::FileExt;
        self.write_all_at(data, 0).unwrap();
    }
}

#[test]
fn chmod_and_unlinked_open_file_stays_readable() {
    let m = Mounted::new();
    let path = m.path("f");
    fs::write(&path, b"still here").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o7777,
        0o640
    );
    let mut f = fs::File::open(&path).unwrap();
    fs::remove_file(&path).unwrap();
    assert!(!path.exists());
    let mut content = String::new();
    f.read_to_string(&mut content).unwrap();
    assert_eq!(content, "still here");
}

#[test]
fn create_exclusive_append_and_times() {
    use std::os::unix::fs::OpenOptionsExt;
    let m = Mounted::new();
    let path = m.path("log");
    fs::write(&path, b"one\n").unwrap();
    let err = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EEXIST));
    let mut f = fs::OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(b"two\n").unwrap();
    drop(f);
    assert_eq!(fs::read(&path).unwrap(), b"one\ntwo\n");
    let f = fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_TRUNC)
        .open(&path)
        .unwrap();
    drop(f);
    assert_eq!(fs::metadata(&path).unwrap().len(), 0);
    // utimensat with an explicit time for mtime and UTIME_OMIT for atime.
    let before = fs::metadata(&path).unwrap();
    let times = [
        nix::sys::time::TimeSpec::UTIME_OMIT,
        nix::sys::time::TimeSpec::new(1_000_000_000, 5),
    ];
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        &path,
        &times[0],
        &times[1],
        nix::sys::stat::UtimensatFlags::FollowSymlink,
    )
    .unwrap();
    let after = fs::metadata(&path).unwrap();
    assert_eq!((after.mtime(), after.mtime_nsec()), (1_000_000_000, 5));
    assert_eq!(after.atime(), before.atime());
}

#[test]
fn directories_links_symlinks_and_fifos() {
    let m = Mounted::new();
    fs::create_dir(m.path("d")).unwrap();
    fs::write(m.path("d/f"), b"x").unwrap();
    let err = fs::remove_dir(m.path("d")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOTEMPTY));
    fs::hard_link(m.path("d/f"), m.path("g")).unwrap();
    assert_eq!(fs::metadata(m.path("g")).unwrap().nlink(), 2);
    assert_eq!(
        fs::metadata(m.path("g")).unwrap().ino(),
        fs::metadata(m.path("d/f")).unwrap().ino()
    );
    fs::remove_file(m.path("d/f")).unwrap();
    assert_eq!(fs::metadata(m.path("g")).unwrap().nlink(), 1);
    std::os::unix::fs::symlink("g", m.path("link")).unwrap();
    assert_eq!(fs::read_link(m.path("link")).unwrap().to_str(), Some("g"));
    assert_eq!(fs::read(m.path("link")).unwrap(), b"x");
    nix::unistd::mkfifo(
        &m.path("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(
        &fs::metadata(m.path("fifo")).unwrap().file_type()
    ));
    assert_eq!(fs::metadata(m.path("d")).unwrap().nlink(), 2);
    fs::create_dir(m.path("d/sub")).unwrap();
    assert_eq!(fs::metadata(m.path("d")).unwrap().nlink(), 3);
    let long = "n".repeat(255);
    fs::write(m.path(&long), b"long name").unwrap();
    let too_long = "n".repeat(256);
    assert_eq!(
        fs::write(m.path(&too_long), b"")
            .unwrap_err()
            .raw_os_error(),
        Some(libc::ENAMETOOLONG)
    );
    let odd = "\u{1}tab\there and spaces ü";
    fs::write(m.path(odd), b"odd").unwrap();
    assert_eq!(fs::read(m.path(odd)).unwrap(), b"odd");
}

#[test]
fn rename_variants() {
    let m = Mounted::new();
    fs::write(m.path("a"), b"A").unwrap();
    fs::write(m.path("b"), b"B").unwrap();
    fs::create_dir_all(m.path("x/y")).unwrap();
    fs::rename(m.path("a"), m.path("b")).unwrap();
    assert_eq!(fs::read(m.path("b")).unwrap(), b"A");
    assert!(!m.path("a").exists());
    let err = fs::rename(m.path("x"), m.path("x/y/z")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "no loops");
    fs::write(m.path("c"), b"C").unwrap();
    let noreplace = nix::fcntl::renameat2(
        nix::fcntl::AT_FDCWD,
        &m.path("c"),
        nix::fcntl::AT_FDCWD,
        &m.path("b"),
        nix::fcntl::RenameFlags::RENAME_NOREPLACE,
    );
    assert_eq!(noreplace, Err(nix::errno::Errno::EEXIST));
    nix::fcntl::renameat2(
        nix::fcntl::AT_FDCWD,
        &m.path("c"),
        nix::fcntl::AT_FDCWD,
        &m.path("x/y"),
        nix::fcntl::RenameFlags::RENAME_EXCHANGE,
    )
    .unwrap();
    assert!(m.path("c").is_dir());
    assert_eq!(fs::read(m.path("x/y")).unwrap(), b"C");
    fs::create_dir(m.path("empty")).unwrap();
    fs::rename(m.path("c"), m.path("empty")).unwrap();
    assert!(m.path("empty").is_dir() && !m.path("c").exists());
}

#[test]
fn xattrs_statfs_and_fallocate() {
    let m = Mounted::new();
    let path = m.path("f");
    fs::write(&path, b"").unwrap();
    xattr_set(&path, "user.color", b"blue");
    assert_eq!(xattr_get(&path, "user.color"), Some(b"blue".to_vec()));
    assert!(xattr_list(&path).contains("user.color"));
    xattr_remove(&path, "user.color");
    assert_eq!(xattr_get(&path, "user.color"), None);
    let stats = nix::sys::statvfs::statvfs(&m.mnt).unwrap();
    assert!(stats.blocks() > 0 && stats.blocks_available() > 0);
    assert_eq!(stats.name_max(), 255);
    let f = fs::OpenOptions::new().write(true).open(&path).unwrap();
    nix::fcntl::fallocate(&f, nix::fcntl::FallocateFlags::empty(), 0, 1 << 20).unwrap();
    assert_eq!(fs::metadata(&path).unwrap().len(), 1 << 20);
}

fn xattr_list(path: &std::path::Path) -> String {
    let mut buf = vec![0u8; 4096];
    // SAFETY: a valid C string and a writable buffer of the given length.
    let n = unsafe { libc::listxattr(c_path(path).as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    assert!(n >= 0);
    String::from_utf8_lossy(&buf[..n as usize]).into_owned()
}

fn xattr_remove(path: &std::path::Path, name: &str) {
    let name = std::ffi::CString::new(name).unwrap();
    // SAFETY: valid C strings.
    let rc = unsafe { libc::removexattr(c_path(path).as_ptr(), name.as_ptr()) };
    assert_eq!(rc, 0);
}

#[test]
fn reading_past_the_stored_end_of_a_grown_block_gives_zeros() {
    use std::os::unix::fs::FileExt;
    let mut m = Mounted::new();
    fs::write(m.path("grown"), [7u8; 100]).unwrap();
    let f = fs::OpenOptions::new()
        .write(true)
        .open(m.path("grown"))
        .unwrap();
    f.set_len(200_000).unwrap();
    drop(f);
    // After a remount the kernel has nothing cached: the read reaches the stored 100 bytes.
    m.remount();
    let f = fs::File::open(m.path("grown")).unwrap();
    let mut buf = [1u8; 4096];
    f.read_exact_at(&mut buf, 86_016).unwrap();
    assert!(buf.iter().all(|b| *b == 0));
    f.read_exact_at(&mut buf[..100], 0).unwrap();
    assert_eq!(&buf[..100], &[7u8; 100]);
}

/// The default block size of a store (`snapfs init` without `--block-size`).
const BLOCK: usize = 128 * 1024;

fn fallocate_mode(
    path: &std::path::Path,
    mode: nix::fcntl::FallocateFlags,
    offset: usize,
    len: usize,
) {
    let f = fs::OpenOptions::new().write(true).open(path).unwrap();
    nix::fcntl::fallocate(&f, mode, offset as i64, len as i64).unwrap();
}

fn sectors(path: &std::path::Path) -> u64 {
    fs::metadata(path).unwrap().blocks()
}

#[test]
fn punch_hole_reads_zeros_gives_back_blocks_and_spares_snapshots() {
    use nix::fcntl::FallocateFlags as F;
    let mut m = Mounted::new();
    let path = m.path("image");
    let data = crate::harness::noise(8 * BLOCK, 10);
    fs::write(&path, &data).unwrap();
    assert_eq!(sectors(&path), (8 * BLOCK / 512) as u64);
    fs::create_dir(m.path(".snapshots/before")).unwrap();
    // Half of block 1, blocks 2 to 4 whole, half of block 5.
    let (start, end) = (BLOCK + BLOCK / 2, 5 * BLOCK + BLOCK / 2);
    fallocate_mode(
        &path,
        F::FALLOC_FL_PUNCH_HOLE | F::FALLOC_FL_KEEP_SIZE,
        start,
        end - start,
    );
    let mut want = data.clone();
    want[start..end].fill(0);
    let check = |m: &Mounted, what: &str| {
        let got = fs::read(m.path("image")).unwrap();
        assert_eq!(got.len(), want.len(), "{what}: the size is kept");
        assert!(
            got[..start] == want[..start],
            "{what}: data before the hole"
        );
        assert!(
            got[start..end].iter().all(|b| *b == 0),
            "{what}: the hole reads zeros"
        );
        assert!(got[end..] == want[end..], "{what}: data after the hole");
        assert_eq!(
            sectors(&m.path("image")),
            (5 * BLOCK / 512) as u64,
            "{what}: three whole blocks given back"
        );
    };
    check(&m, "punched");
    assert!(
        fs::read(m.path(".snapshots/before/image")).unwrap() == data,
        "a snapshot taken before keeps the data"
    );
    fs::create_dir(m.path(".snapshots/after")).unwrap();
    assert!(
        fs::read(m.path(".snapshots/after/image")).unwrap() == want,
        "a snapshot after holds the hole"
    );
    m.remount();
    check(&m, "after a remount");
    assert!(fs::read(m.path(".snapshots/before/image")).unwrap() == data);
    // A punch without KEEP_SIZE is refused, as on ext4.
    let f = fs::OpenOptions::new().write(true).open(&path).unwrap();
    let err = nix::fcntl::fallocate(&f, F::FALLOC_FL_PUNCH_HOLE, 0, 4096).unwrap_err();
    assert_eq!(err, nix::errno::Errno::EOPNOTSUPP);
}

#[test]
fn zero_range_with_and_without_keep_size() {
    use nix::fcntl::FallocateFlags as F;
    let mut m = Mounted::new();
    let path = m.path("db");
    let data = crate::harness::noise(4 * BLOCK, 11);
    fs::write(&path, &data).unwrap();
    fs::create_dir(m.path(".snapshots/before")).unwrap();
    let mut want = data.clone();
    // Inside the file: half of block 0 and blocks 1 and 2 whole.
    fallocate_mode(
        &path,
        F::FALLOC_FL_ZERO_RANGE | F::FALLOC_FL_KEEP_SIZE,
        BLOCK / 2,
        5 * BLOCK / 2,
    );
    want[BLOCK / 2..3 * BLOCK].fill(0);
    assert!(fs::read(&path).unwrap() == want);
    assert_eq!(sectors(&path), (2 * BLOCK / 512) as u64);
    // Past the end with KEEP_SIZE: the size stays.
    fallocate_mode(
        &path,
        F::FALLOC_FL_ZERO_RANGE | F::FALLOC_FL_KEEP_SIZE,
        4 * BLOCK - 100,
        2 * BLOCK,
    );
    want[4 * BLOCK - 100..].fill(0);
    assert!(fs::read(&path).unwrap() == want);
    // Past the end without it: the file grows, and the new bytes read as zeros.
    fallocate_mode(&path, F::FALLOC_FL_ZERO_RANGE, 3 * BLOCK + 7, 2 * BLOCK);
    want[3 * BLOCK + 7..].fill(0);
    want.resize(5 * BLOCK + 7, 0);
    assert!(fs::read(&path).unwrap() == want, "grown by zero range");
    assert!(fs::read(m.path(".snapshots/before/db")).unwrap() == data);
    m.remount();
    assert!(fs::read(&path).unwrap() == want, "after a remount");
    assert!(fs::read(m.path(".snapshots/before/db")).unwrap() == data);
}
