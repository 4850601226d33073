//! POSIX operations through a real mount, checked one by one.

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use crate::harness::Mounted;

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
