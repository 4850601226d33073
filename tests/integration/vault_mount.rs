//! `snapfs vault mount`, through the kernel, on a local vault and on a real S3 server
//! (SeaweedFS): two backups of a real share show every byte and attribute their snapshots
//! show in `.snapshots/`; `find` walks them; a damaged object gives EIO on its file only
//! (logged with its object and pack); writes are refused with EROFS; the vault is locked
//! against gc while mounted; a backup made while it is mounted appears; unmounting (umount,
//! SIGTERM) ends the process cleanly and releases the lock.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use snapfs::id::ChunkId;

use crate::harness::{Mounted, SNAPFS, get_xattr, is_mounted, noise, snapfs_ok};
use crate::s3_server::S3Server;
use crate::vault::{ok_env, populate, snapfs_env, tree_state};
use crate::vault_ops::open_vault;

/// A running `snapfs vault mount`; dropping it unmounts (lazily if it must) and reaps it, so a
/// failing test leaves no mount and no process behind.
struct VaultMount {
    child: Option<Child>,
    mnt: PathBuf,
    log: PathBuf,
}

impl VaultMount {
    fn start(vault: &str, mnt: &Path, env: &[(&str, String)], extra: &[&str]) -> Self {
        fs::create_dir_all(mnt).expect("mountpoint");
        let log = mnt.with_extension("log");
        let mut command = Command::new(SNAPFS);
        command
            .args(["vault", "mount", vault])
            .arg(mnt)
            .args(extra)
            .env_remove("SNAPFS_PASSPHRASE")
            .env("SNAPFS_LOG", "snapfs=info,fuser=error")
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).expect("log"));
        for (key, value) in env {
            command.env(key, value);
        }
        let mut mount = VaultMount {
            child: Some(command.spawn().expect("spawn snapfs vault mount")),
            mnt: mnt.to_path_buf(),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !is_mounted(mnt) {
            if let Some(child) = mount.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("vault mount exited with {status}: {}", mount.log());
            }
            assert!(Instant::now() < deadline, "no mount: {}", mount.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        mount
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Unmounts with `how` and checks that the process ends on its own, successfully.
    fn stop_with(&mut self, how: &mut Command) {
        let out = how.output().expect("unmount tool");
        assert!(
            out.status.success(),
            "{how:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("vault mount did not end: {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "vault mount failed: {}", self.log());
        assert!(!is_mounted(&self.mnt));
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }
}

impl Drop for VaultMount {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if is_mounted(&self.mnt) {
                let _ = nix::mount::umount2(&self.mnt, nix::mount::MntFlags::MNT_DETACH);
            }
            std::thread::sleep(Duration::from_millis(200));
            if !matches!(child.try_wait(), Ok(Some(_))) {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}

/// A share with every kind of entry, backed up twice: `first`, then `second` with a file of
/// its own (`only-second.bin`) and one file changed. Returns the mounted share.
pub(crate) fn two_backups(vault: &str, env: &[(&str, String)]) -> Mounted {
    let m = Mounted::new();
    populate(&m);
    let mnt = m.mnt.to_str().expect("utf-8").to_owned();
    snapfs_ok(&["snapshot", "create", "first", "--mount", &mnt]);
    ok_env(&["backup", "first", "--to", vault, "--mount", &mnt], env);
    fs::write(m.path("only-second.bin"), noise(1 << 20, 42)).expect("write");
    fs::write(m.path("docs/report.txt"), b"revised numbers\n").expect("write");
    // Snapshot times are whole seconds: the two backups are of different ones.
    std::thread::sleep(Duration::from_millis(1100));
    snapfs_ok(&["snapshot", "create", "second", "--mount", &mnt]);
    ok_env(&["backup", "second", "--to", vault, "--mount", &mnt], env);
    m
}

/// The one directory under the mount's top: the share's, named as `vault list` shows it.
fn share_dir(mnt: &Path, vault: &str, env: &[(&str, String)]) -> PathBuf {
    let listed: serde_json::Value =
        serde_json::from_str(&ok_env(&["vault", "list", vault, "--json"], env)).expect("json");
    let share = listed[0]["share"].as_str().expect("share").to_owned();
    let names: Vec<String> = fs::read_dir(mnt)
        .expect("readdir")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .collect();
    assert_eq!(names, [share[..12].to_owned()]);
    mnt.join(&share[..12])
}

fn errno_of(result: std::io::Result<impl Sized>) -> Option<i32> {
    result.err().and_then(|err| err.raw_os_error())
}

/// What both backends must show: both backups equal to their snapshots, entry by entry and
/// attribute by attribute, hard links as one inode, `find` over everything, EROFS on writes,
/// and gc refused while mounted.
fn browse_and_compare(m: &Mounted, vault: &str, env: &[(&str, String)], mnt: &Path) {
    let share = share_dir(mnt, vault, env);
    let mut backups: Vec<String> = fs::read_dir(&share)
        .expect("readdir")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .collect();
    backups.sort();
    assert_eq!(backups, ["first", "second"]);
    for name in ["first", "second"] {
        let expected = tree_state(&m.path(&format!(".snapshots/{name}")));
        let shown = tree_state(&share.join(name));
        assert!(expected.len() >= 8, "{expected:?}");
        assert_eq!(expected, shown, "backup {name} as the vault mount shows it");
    }
    let first = share.join("first");
    assert_eq!(
        fs::metadata(first.join("docs/report.txt"))
            .expect("stat")
            .ino(),
        fs::metadata(first.join("report-link")).expect("stat").ino(),
        "hard links are one inode"
    );
    assert_eq!(
        fs::read_link(first.join("shortcut")).expect("readlink"),
        Path::new("docs/report.txt")
    );
    assert_eq!(
        fs::read(share.join("first/docs/report.txt")).expect("read"),
        b"quarterly numbers\n"
    );
    assert_eq!(
        fs::read(share.join("second/docs/report.txt")).expect("read"),
        b"revised numbers\n"
    );
    // POSIX ACLs are not supported, as in the share: not merely absent.
    let err = get_xattr(&first.join("docs/report.txt"), "system.posix_acl_access").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EOPNOTSUPP));
    // A read in the middle of a large file (a ranged read of the chunks it covers).
    let big = fs::read(first.join("docs/deep/er/big.bin")).expect("read");
    assert_eq!(big, noise(3 << 20, 7));

    let found = Command::new("find").arg(mnt).output().expect("find");
    assert!(
        found.status.success(),
        "{}",
        String::from_utf8_lossy(&found.stderr)
    );
    let lines = String::from_utf8_lossy(&found.stdout).lines().count();
    // The top, the share, two backup roots, and every entry of each.
    let entries = tree_state(&first).len() + tree_state(&share.join("second")).len();
    assert_eq!(lines, 4 + entries);

    assert_eq!(
        errno_of(fs::write(first.join("new-file"), b"x")),
        Some(libc::EROFS)
    );
    assert_eq!(
        errno_of(
            fs::OpenOptions::new()
                .write(true)
                .open(first.join("docs/report.txt"))
        ),
        Some(libc::EROFS)
    );
    assert_eq!(
        errno_of(fs::create_dir(first.join("dir"))),
        Some(libc::EROFS)
    );
    assert_eq!(
        errno_of(fs::remove_file(first.join("shortcut"))),
        Some(libc::EROFS)
    );
    let out = snapfs_env(&["vault", "gc", vault], env);
    assert!(!out.status.success(), "gc must wait for the mount");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("mount holds a shared lock"), "{err}");
}

#[test]
fn vault_mount_of_a_local_vault_shows_every_backup_and_fails_only_a_damaged_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let vault_path = dir.path().join("vault");
    let vault = vault_path.to_str().expect("utf-8");
    snapfs_ok(&["vault", "init", vault]);
    let m = two_backups(vault, &[]);
    let mnt = dir.path().join("browse");

    let mut mount = VaultMount::start(vault, &mnt, &[], &["--cache-size", "8M"]);
    browse_and_compare(&m, vault, &[], &mnt);
    assert_eq!(
        fs::read_dir(vault_path.join("locks"))
            .expect("locks")
            .count(),
        1
    );
    mount.stop_with(Command::new("umount").arg(&mnt));
    assert_eq!(
        fs::read_dir(vault_path.join("locks"))
            .expect("locks")
            .count(),
        0,
        "the lock goes at unmount"
    );

    // One flipped byte in the sealed entry of the first block of `only-second.bin`.
    let (pack, offset, len) = {
        let opened = open_vault(vault, &[]);
        let (_, record) = opened.find("second").expect("backup");
        let data = noise(1 << 20, 42);
        let first_block = &data[..record.block_size as usize];
        opened
            .object_location(&ChunkId::of(first_block))
            .expect("the block is in the vault")
    };
    let hex = pack.to_hex();
    let pack_file = vault_path.join("packs").join(&hex[..2]).join(&hex);
    let mut bytes = fs::read(&pack_file).expect("read pack");
    bytes[(offset + u64::from(len) / 2) as usize] ^= 0x40;
    fs::write(&pack_file, &bytes).expect("damage the pack");

    let mut mount = VaultMount::start(vault, &mnt, &[], &[]);
    let share = share_dir(&mnt, vault, &[]);
    assert_eq!(
        errno_of(fs::read(share.join("second/only-second.bin"))),
        Some(libc::EIO),
        "a damaged object is an error, never wrong bytes"
    );
    let log = mount.log();
    assert!(
        log.contains(&hex) && log.contains("vault read failed: object"),
        "{log}"
    );
    // Everything else still reads, in both backups.
    assert_eq!(
        fs::read(share.join("second/docs/report.txt")).expect("read"),
        b"revised numbers\n"
    );
    let expected = tree_state(&m.path(".snapshots/first"));
    assert_eq!(expected, tree_state(&share.join("first")));
    mount.stop_with(Command::new("fusermount3").arg("-u").arg(&mnt));
}

/// Waits (up to 20 s: the mount reads the list again 2 s after its last read) until the
/// backups listed in the share's directory are `expected`.
fn wait_for_backups(share: &Path, expected: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut names: Vec<String> = fs::read_dir(share)
            .expect("readdir")
            .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
            .collect();
        names.sort();
        if names == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "backups listed: {names:?}, expected {expected:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A backup made while the vault is mounted appears in it, whole.
fn a_backup_made_while_mounted_appears(
    m: &Mounted,
    vault: &str,
    env: &[(&str, String)],
    mnt: &Path,
) {
    let share = share_dir(mnt, vault, env);
    let share_mnt = m.mnt.to_str().expect("utf-8");
    fs::write(
        m.path("while-mounted.txt"),
        b"made while the vault was mounted\n",
    )
    .expect("write");
    std::thread::sleep(Duration::from_millis(1100));
    snapfs_ok(&["snapshot", "create", "third", "--mount", share_mnt]);
    ok_env(
        &["backup", "third", "--to", vault, "--mount", share_mnt],
        env,
    );
    wait_for_backups(&share, &["first", "second", "third"]);
    assert_eq!(
        tree_state(&m.path(".snapshots/third")),
        tree_state(&share.join("third"))
    );
}

#[test]
fn vault_mount_of_an_encrypted_s3_vault_shows_every_backup_and_ends_on_sigterm() {
    let server = S3Server::start();
    let mut env = server.env();
    env.push(("SNAPFS_PASSPHRASE", "mount me".into()));
    let vault = server.url("mounted");
    ok_env(&["vault", "init", &vault], &env);
    let m = two_backups(&vault, &env);
    let dir = tempfile::tempdir().expect("tempdir");
    let mnt = dir.path().join("browse");
    fs::create_dir(&mnt).expect("mountpoint");

    let mut wrong = server.env();
    wrong.push(("SNAPFS_PASSPHRASE", "not it".into()));
    let out = snapfs_env(
        &["vault", "mount", &vault, mnt.to_str().expect("utf-8")],
        &wrong,
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("wrong passphrase"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!is_mounted(&mnt));

    let mut mount = VaultMount::start(&vault, &mnt, &env, &[]);
    browse_and_compare(&m, &vault, &env, &mnt);
    a_backup_made_while_mounted_appears(&m, &vault, &env, &mnt);
    let pid = mount.pid().to_string();
    mount.stop_with(Command::new("kill").args(["-TERM", &pid]));
    // The lock is gone: gc runs.
    ok_env(&["vault", "gc", &vault], &env);
}
