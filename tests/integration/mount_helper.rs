//! `mount(8)` and `/etc/fstab`: util-linux runs `/sbin/mount.fuse.snapfs STORE MNT -o OPTS`,
//! which is the snapfs binary under another name; options map to `snapfs mount` flags, the
//! generic ones are ignored, an unknown one is refused, and `mount` returns once the share
//! serves. The fstab case uses `mount -T FILE` (util-linux's alternative fstab), so /etc/fstab
//! is never touched.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard};

use crate::background::{BackgroundDaemon, assert_nothing_left, become_subreaper};
use crate::harness::{SNAPFS, as_nobody, is_mounted, snapfs_ok};

/// Where util-linux looks for the helper (`/sbin` is `/usr/sbin` on this Debian).
const HELPER: &str = "/sbin/mount.fuse.snapfs";

/// The helper, installed for one test: a link to the binary under test, which replaces (and on
/// drop restores) any helper installed on the machine. Tests that use it run one at a time.
struct HelperInstalled {
    saved: Option<PathBuf>,
    _serial: MutexGuard<'static, ()>,
}

impl HelperInstalled {
    fn new() -> Self {
        static SERIAL: Mutex<()> = Mutex::new(());
        let serial = SERIAL
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let helper = Path::new(HELPER);
        let saved = PathBuf::from("/sbin/.mount.fuse.snapfs.saved-by-test");
        let had_one = helper.symlink_metadata().is_ok();
        if had_one {
            std::fs::rename(helper, &saved).expect("setting the installed helper aside");
        }
        let guard = HelperInstalled {
            saved: had_one.then_some(saved),
            _serial: serial,
        };
        std::os::unix::fs::symlink(SNAPFS, helper).expect("installing the helper");
        guard
    }
}

impl Drop for HelperInstalled {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(HELPER);
        if let Some(saved) = &self.saved {
            let _ = std::fs::rename(saved, HELPER);
        }
    }
}

struct Share {
    dir: tempfile::TempDir,
    store: PathBuf,
    mnt: PathBuf,
}

fn new_share() -> Share {
    let dir = tempfile::tempdir_in("/var/tmp").expect("tempdir");
    let store = dir.path().join("store");
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).expect("mountpoint");
    snapfs_ok(&["init", store.to_str().expect("utf-8")]);
    Share { dir, store, mnt }
}

fn run(command: &mut Command) -> Output {
    command.output().expect("running mount")
}

fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether a user other than the one who mounted may enter the share.
fn others_can_enter(mnt: &Path) -> bool {
    as_nobody(&format!("ls '{}' >/dev/null", mnt.display()))
        .status
        .success()
}

fn root_names(mnt: &Path) -> Vec<String> {
    std::fs::read_dir(mnt)
        .expect("list the root")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn mount_t_fuse_snapfs_maps_options_and_returns_once_serving() {
    become_subreaper();
    let _helper = HelperInstalled::new();
    let share = new_share();
    let out = run(Command::new("mount")
        .args(["-t", "fuse.snapfs"])
        .arg(&share.store)
        .arg(&share.mnt)
        .args([
            "-o",
            "allow_other,snapdir=visible,threads=3,_netdev,noatime",
        ]));
    assert_ok(&out);
    let mut daemon = BackgroundDaemon::find(&share.mnt);
    std::fs::write(share.mnt.join("f"), b"via mount(8)").expect("write at once");
    assert_eq!(
        std::fs::read(share.mnt.join("f")).expect("read"),
        b"via mount(8)"
    );
    assert!(
        root_names(&share.mnt).contains(&".snapshots".to_owned()),
        "snapdir=visible"
    );
    assert!(others_can_enter(&share.mnt), "allow_other");
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", daemon.pid())).expect("cmdline");
    assert!(
        String::from_utf8_lossy(&cmdline).contains("threads=3"),
        "the daemon is the helper process itself"
    );
    // Plain umount(8) stops it cleanly.
    assert_ok(&run(Command::new("umount").arg(&share.mnt)));
    daemon.assert_exits_cleanly();

    // An unknown option is refused with the list of known ones; nothing is mounted.
    let out = run(Command::new("mount")
        .args(["-t", "fuse.snapfs"])
        .arg(&share.store)
        .arg(&share.mnt)
        .args(["-o", "allow_other,frobnicate=1"]));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unknown mount option \"frobnicate=1\""),
        "{stderr}"
    );
    assert!(stderr.contains("allow_other"), "{stderr}");
    // A read-only mount is refused, not silently made writable.
    let out = run(Command::new("mount")
        .args(["-t", "fuse.snapfs", "-o", "ro"])
        .arg(&share.store)
        .arg(&share.mnt));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("read-only"));
    // The daemon's own failures reach mount's caller too.
    let out = run(Command::new("mount")
        .args(["-t", "fuse.snapfs"])
        .arg(share.dir.path())
        .arg(&share.mnt));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a snapfs store"));
    assert!(!is_mounted(&share.mnt));
    assert_nothing_left(&share.mnt);
}

#[test]
fn an_fstab_line_mounts_with_mount_mountpoint() {
    become_subreaper();
    let _helper = HelperInstalled::new();
    let share = new_share();
    let fstab = share.dir.path().join("fstab");
    let log = share.dir.path().join("daemon.log");
    std::fs::write(
        &fstab,
        format!(
            "# the README's line, plus what systemd and admins add\n\
             {} {} fuse.snapfs defaults,allow_other,_netdev,nofail,x-systemd.requires=network-online.target,log_file={} 0 0\n",
            share.store.display(),
            share.mnt.display(),
            log.display()
        ),
    )
    .expect("fstab");
    let out = run(Command::new("mount").arg("-T").arg(&fstab).arg(&share.mnt));
    assert_ok(&out);
    let mut daemon = BackgroundDaemon::find(&share.mnt);
    std::fs::write(share.mnt.join("f"), b"from fstab").expect("write at once");
    assert!(others_can_enter(&share.mnt), "allow_other from fstab");
    assert!(
        !root_names(&share.mnt).contains(&".snapshots".to_owned()),
        "snapdir hidden by default"
    );
    // `mount -a` again (after an fstab edit, say) leaves the mounted share alone.
    let out = run(Command::new("mount").arg("-a").arg("-T").arg(&fstab));
    assert_ok(&out);
    assert_eq!(
        crate::background::processes_with_arg(&share.mnt),
        vec![daemon.pid()],
        "no second daemon"
    );
    assert_eq!(
        std::fs::read(share.mnt.join("f")).expect("read"),
        b"from fstab"
    );
    assert_ok(&run(Command::new("umount").arg(&share.mnt)));
    daemon.assert_exits_cleanly();
    let logged = std::fs::read_to_string(&log).expect("log_file= was honoured");
    assert!(logged.contains("unmounted; store closed"), "{logged}");
}

#[test]
fn an_fstab_line_mounts_a_follower_read_only() {
    become_subreaper();
    let _helper = HelperInstalled::new();
    // The writer, tiered to a directory.
    let remote = tempfile::tempdir_in("/var/tmp").expect("tempdir");
    let location = remote.path().join("share");
    let location = location.to_str().expect("utf-8");
    let writer =
        crate::harness::Mounted::new_with(&["--tier", location, "--checkpoint-interval", "1"], &[]);
    crate::tier::write_synced(&writer.path("f"), b"from the writer");
    crate::tier::wait_until_checkpointed(&writer, &[], 0);

    let dir = tempfile::tempdir_in("/var/tmp").expect("tempdir");
    let mnt = dir.path().join("ro");
    std::fs::create_dir(&mnt).expect("mountpoint");
    let fstab = dir.path().join("fstab");
    std::fs::write(
        &fstab,
        format!(
            "{location} {} fuse.snapfs follow,ro,cache_dir={},_netdev,nofail 0 0\n",
            mnt.display(),
            dir.path().join("cache").display()
        ),
    )
    .expect("fstab");
    assert_ok(&run(Command::new("mount").arg("-T").arg(&fstab).arg(&mnt)));
    let mut daemon = BackgroundDaemon::find(&mnt);
    assert_eq!(
        std::fs::read(mnt.join("f")).expect("read"),
        b"from the writer"
    );
    // `mount -a` again leaves the follower alone.
    assert_ok(&run(Command::new("mount").arg("-a").arg("-T").arg(&fstab)));
    assert_eq!(
        crate::background::processes_with_arg(&mnt),
        vec![daemon.pid()],
        "no second follower"
    );
    assert_ok(&run(Command::new("umount").arg(&mnt)));
    daemon.assert_exits_cleanly();
    assert!(!is_mounted(&mnt));
}
