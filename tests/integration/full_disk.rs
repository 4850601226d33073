//! A full disk: the store lives on a small loop-mounted ext4. Writers get ENOSPC, nothing
//! already written is damaged, the daemon stays up, a snapshot create fails cleanly, and once
//! space is freed (delete + gc) writes work again.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{Mounted, noise, snapfs};

/// A small ext4 file system on a loop device, unmounted on drop.
struct SmallDisk {
    _dir: tempfile::TempDir,
    mountpoint: PathBuf,
}

impl SmallDisk {
    fn new(mib: u64) -> Self {
        let dir = tempfile::tempdir_in("/var/tmp").unwrap();
        let image = dir.path().join("disk.img");
        fs::File::create(&image)
            .unwrap()
            .set_len(mib << 20)
            .unwrap();
        let mkfs = Command::new("mkfs.ext4")
            .args(["-q", "-F"])
            .arg(&image)
            .status()
            .unwrap();
        assert!(mkfs.success());
        let mountpoint = dir.path().join("disk");
        fs::create_dir(&mountpoint).unwrap();
        let mount = Command::new("mount")
            .args(["-o", "loop"])
            .arg(&image)
            .arg(&mountpoint)
            .status()
            .unwrap();
        assert!(mount.success(), "loop mount failed");
        SmallDisk {
            _dir: dir,
            mountpoint,
        }
    }

    fn path(&self) -> &Path {
        &self.mountpoint
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mountpoint).status();
    }
}

#[test]
fn a_full_disk_gives_enospc_and_recovers() {
    let disk = SmallDisk::new(256);
    let mut m = Mounted::new_in(disk.path(), &[], &[]);
    let keep = noise(20 << 20, 1);
    let mut f = fs::File::create(m.path("keep")).unwrap();
    f.write_all(&keep).unwrap();
    f.sync_all().unwrap();
    drop(f);
    fs::write(m.path(".snapshots/.control"), "create before\n").unwrap();
    let mut filled = 0;
    let err = loop {
        let result = fs::File::create(m.path(&format!("fill{filled}"))).and_then(|mut f| {
            f.write_all(&noise(8 << 20, 100 + filled))
                .and_then(|()| f.sync_all())
        });
        match result {
            Ok(()) => filled += 1,
            Err(err) => break err,
        }
        assert!(filled < 100, "the disk never filled");
    };
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
    assert!(filled > 5);
    // Nothing written before is damaged, and the daemon still serves.
    assert!(fs::read(m.path("keep")).unwrap() == keep);
    assert!(fs::read(m.path(".snapshots/before/keep")).unwrap() == keep);
    // A snapshot needs a little space for its changed directories: it is taken whole if that
    // fits in what is left, else refused with ENOSPC and absent.
    match fs::write(m.path(".snapshots/.control"), "create while-full\n") {
        Ok(()) => {
            assert!(fs::read(m.path(".snapshots/while-full/keep")).unwrap() == keep);
            // It holds the fill files: gc could free nothing of them while it exists.
            fs::remove_dir(m.path(".snapshots/while-full")).unwrap();
        }
        Err(err) => {
            assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
            assert!(!m.path(".snapshots/while-full").exists());
        }
    }
    // Free space: delete the fill files and collect.
    for i in 0..=filled {
        let _ = fs::remove_file(m.path(&format!("fill{i}")));
    }
    let gc = snapfs(&["gc", "--mount", m.mnt.to_str().unwrap()]);
    assert!(
        gc.status.success(),
        "{}",
        String::from_utf8_lossy(&gc.stderr)
    );
    let again = noise(8 << 20, 7);
    fs::write(m.path("after"), &again).unwrap();
    fs::write(m.path(".snapshots/.control"), "create after-recovery\n").unwrap();
    m.remount();
    assert!(fs::read(m.path("keep")).unwrap() == keep);
    assert!(fs::read(m.path("after")).unwrap() == again);
    assert!(fs::read(m.path(".snapshots/before/keep")).unwrap() == keep);
    let verify = snapfs(&["verify", "--mount", m.mnt.to_str().unwrap()]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    drop(m);
}
