//! Backup vaults through the `snapfs` command and real mounts, on a local vault and on a real
//! S3 server (SeaweedFS): a backup survives the destruction of its store and restores every
//! byte and attribute; an incremental backup adds what changed; a wrong passphrase is refused.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::harness::{Mounted, SNAPFS, noise, snapfs_ok, xattr_get, xattr_set};
use crate::s3_server::S3Server;

/// Runs `snapfs` with extra environment (S3 settings, a passphrase).
pub(crate) fn snapfs_env(args: &[&str], env: &[(&str, String)]) -> Output {
    let mut command = Command::new(SNAPFS);
    command.args(args).env_remove("SNAPFS_PASSPHRASE");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("running snapfs")
}

pub(crate) fn ok_env(args: &[&str], env: &[(&str, String)]) -> String {
    let out = snapfs_env(args, env);
    assert!(
        out.status.success(),
        "snapfs {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Everything a restore must keep of one entry.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct EntryState {
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    mtime: (i64, i64),
    nlink: u64,
    /// Content of files (blake3), target of symlinks.
    content: String,
    /// Allocated 512-byte blocks, for sparse files (holes stay holes).
    sparse: bool,
    xattrs: Vec<(String, Vec<u8>)>,
    /// For hard links: the first path with the same inode.
    link_group: Option<String>,
}

/// The state of every entry under `root`, by relative path (iteratively, no recursion).
pub(crate) fn tree_state(root: &Path) -> BTreeMap<String, EntryState> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<u64, String> = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let mut entries: Vec<PathBuf> = fs::read_dir(&dir)
            .expect("readdir")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.file_name().is_some_and(|n| n != ".snapshots"))
            .collect();
        entries.sort();
        for path in entries {
            let rel = path
                .strip_prefix(root)
                .expect("under root")
                .display()
                .to_string();
            let meta = fs::symlink_metadata(&path).expect("lstat");
            let kind = meta.file_type();
            // A file's allocation is read through an open handle, after reading it: snapfs
            // counts holes from the block map, which it loads when the file is read (a file
            // not opened since the mount reports its whole size as allocated).
            let mut sparse = false;
            let content = if kind.is_file() {
                let mut file = fs::File::open(&path).expect("open");
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut file, &mut bytes).expect("read");
                let open_meta = file.metadata().expect("fstat");
                sparse = open_meta.blocks() * 512 < open_meta.size();
                blake3::hash(&bytes).to_hex().to_string()
            } else if kind.is_symlink() {
                fs::read_link(&path)
                    .expect("readlink")
                    .display()
                    .to_string()
            } else {
                String::new()
            };
            if kind.is_dir() {
                pending.push(path.clone());
            }
            let link_group = (kind.is_file() && meta.nlink() > 1).then(|| {
                inodes
                    .entry(meta.ino())
                    .or_insert_with(|| rel.clone())
                    .clone()
            });
            let xattrs = if kind.is_symlink() {
                vec![]
            } else {
                ["user.a", "user.b"]
                    .iter()
                    .filter_map(|name| xattr_get(&path, name).map(|v| (name.to_string(), v)))
                    .collect()
            };
            out.insert(
                rel,
                EntryState {
                    mode: meta.mode(),
                    uid: meta.uid(),
                    gid: meta.gid(),
                    size: if kind.is_dir() { 0 } else { meta.size() },
                    mtime: if kind.is_dir() {
                        (0, 0)
                    } else {
                        (meta.mtime(), meta.mtime_nsec())
                    },
                    nlink: if kind.is_dir() { 0 } else { meta.nlink() },
                    content,
                    sparse,
                    xattrs,
                    link_group,
                },
            );
        }
    }
    out
}

/// A share with every kind of entry and attribute a restore must keep.
pub(crate) fn populate(m: &Mounted) {
    fs::create_dir_all(m.path("docs/deep/er")).expect("mkdir");
    fs::write(m.path("docs/report.txt"), b"quarterly numbers\n").expect("write");
    fs::write(m.path("docs/deep/er/big.bin"), noise(3 << 20, 7)).expect("write");
    fs::set_permissions(m.path("docs/report.txt"), fs::Permissions::from_mode(0o640))
        .expect("chmod");
    std::os::unix::fs::chown(m.path("docs/report.txt"), Some(1234), Some(5678)).expect("chown");
    fs::set_permissions(m.path("docs/deep"), fs::Permissions::from_mode(0o750)).expect("chmod");
    xattr_set(&m.path("docs/report.txt"), "user.a", b"one");
    xattr_set(&m.path("docs/deep"), "user.b", b"two\0binary");
    fs::hard_link(m.path("docs/report.txt"), m.path("report-link")).expect("link");
    symlink("docs/report.txt", m.path("shortcut")).expect("symlink");
    let mut sparse = fs::File::create(m.path("sparse.img")).expect("create");
    sparse.seek(SeekFrom::Start(10 << 20)).expect("seek");
    sparse.write_all(b"end").expect("write");
    drop(sparse);
    let old = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
    fs::File::options()
        .write(true)
        .open(m.path("docs/deep/er/big.bin"))
        .expect("open")
        .set_modified(old)
        .expect("utimes");
}

/// Backs up, destroys the store, restores, mounts the restored store and compares.
fn round_trip(vault: &str, env: &[(&str, String)]) {
    let mut m = Mounted::new();
    populate(&m);
    let mnt = m.mnt.to_str().expect("utf-8").to_owned();
    snapfs_ok(&["snapshot", "create", "first", "--mount", &mnt]);
    let before = tree_state(&m.mnt);
    assert!(before.len() >= 8, "{before:?}");
    ok_env(&["backup", "first", "--to", vault, "--mount", &mnt], env);
    let listed = ok_env(&["vault", "list", vault, "--json"], env);
    let listed: serde_json::Value = serde_json::from_str(&listed).expect("json");
    assert_eq!(listed[0]["name"], "first", "{listed}");
    assert!(listed[0]["size"].as_u64().expect("size") >= 3 << 20);

    // The store goes completely: its snapshot first (destroy refuses a store with snapshots).
    snapfs_ok(&["snapshot", "delete", "first", "--mount", &mnt]);
    let _ = crate::harness::snapfs(&["snapshot", "purge", "first", "--mount", &mnt]);
    m.unmount();
    let store = m.store.to_str().expect("utf-8").to_owned();
    snapfs_ok(&["destroy", &store, "--yes"]);
    assert!(!m.store.join("snapfs-store.json").exists());

    let restored = m.dir.path().join("restored");
    ok_env(
        &[
            "vault",
            "restore",
            vault,
            "first",
            restored.to_str().expect("utf-8"),
        ],
        env,
    );
    m.store = restored;
    m.mount();
    let after = tree_state(&m.mnt);
    assert_eq!(before, after, "every byte and attribute comes back");
    assert!(after["sparse.img"].sparse, "holes stay holes");
    let root = fs::metadata(&m.mnt).expect("stat");
    assert_eq!(root.mode() & 0o7777, 0o755);
}

#[test]
fn a_local_backup_outlives_its_store_and_restores_every_byte_and_attribute() {
    let vault_dir = tempfile::tempdir().expect("tempdir");
    let vault = vault_dir.path().join("vault");
    let vault = vault.to_str().expect("utf-8");
    snapfs_ok(&["vault", "init", vault]);
    round_trip(vault, &[]);
}

#[test]
fn an_encrypted_s3_backup_outlives_its_store_and_refuses_a_wrong_passphrase() {
    let server = S3Server::start();
    let mut env: Vec<(&str, String)> = server.env();
    let vault = server.url("backups/share1");
    let out = snapfs_env(&["vault", "init", &vault], &env);
    assert!(
        !out.status.success(),
        "an s3 vault is encrypted: it needs a key"
    );
    env.push(("SNAPFS_PASSPHRASE", "correct horse battery".into()));
    let created = ok_env(&["vault", "init", &vault], &env);
    assert!(created.contains("encrypted"), "{created}");
    round_trip(&vault, &env);

    let mut wrong = server.env();
    wrong.push(("SNAPFS_PASSPHRASE", "not it".into()));
    let out = snapfs_env(&["vault", "list", &vault], &wrong);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("wrong passphrase"), "{err}");
}

#[test]
fn an_incremental_backup_adds_about_what_changed() {
    let vault_dir = tempfile::tempdir().expect("tempdir");
    let vault = vault_dir.path().join("vault");
    let vault_str = vault.to_str().expect("utf-8");
    snapfs_ok(&["vault", "init", vault_str]);
    let m = Mounted::new();
    let mnt = m.mnt.to_str().expect("utf-8").to_owned();
    for i in 0..16u64 {
        fs::write(m.path(&format!("f{i}")), noise(4 << 20, 2 * i + 1)).expect("write");
    }
    snapfs_ok(&["snapshot", "create", "one", "--mount", &mnt]);
    snapfs_ok(&["backup", "one", "--to", vault_str, "--mount", &mnt]);
    let size_of = |dir: &Path| -> u64 {
        let mut total = 0;
        let mut pending = vec![dir.to_path_buf()];
        while let Some(d) = pending.pop() {
            for e in fs::read_dir(&d).expect("readdir") {
                let e = e.expect("entry");
                let meta = e.metadata().expect("stat");
                if meta.is_dir() {
                    pending.push(e.path());
                } else {
                    total += meta.len();
                }
            }
        }
        total
    };
    let full = size_of(&vault);
    assert!(full >= 64 << 20, "{full}");

    // 1 MiB changed in the middle of one file.
    let mut f = fs::File::options()
        .write(true)
        .open(m.path("f5"))
        .expect("open");
    f.seek(SeekFrom::Start(1 << 20)).expect("seek");
    f.write_all(&noise(1 << 20, 999)).expect("write");
    drop(f);
    // Without a name, the backup takes a snapshot first.
    let out = snapfs_ok(&["backup", "--to", vault_str, "--mount", &mnt]);
    assert!(out.contains("backed up backup-"), "{out}");
    let grown = size_of(&vault) - full;
    assert!(
        grown <= 13 * (1 << 20) / 10,
        "1 MiB changed, the vault grew by {grown}, more than 1.3 MiB"
    );
    assert!(grown >= 1 << 20, "the change is in: {grown}");
}

/// `tests/fixtures/vault-v1`: an unencrypted vault written by the release before index files
/// had a version 2 (two backups of a small share, `first` and `second`, the second with a line
/// added to `docs/readme.txt`). This release lists it, verifies every byte, restores both and
/// adds a backup of its own.
#[test]
fn a_vault_written_before_index_version_2_restores_verifies_and_takes_new_backups() {
    let dir = tempfile::tempdir().expect("tempdir");
    let vault = dir.path().join("vault");
    crate::tier_lease::copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vault-v1"),
        &vault,
    );
    let vault = vault.to_str().expect("utf-8");
    let listed: serde_json::Value =
        serde_json::from_str(&snapfs_ok(&["vault", "list", vault, "--json"])).expect("json");
    let names: Vec<&str> = listed
        .as_array()
        .expect("array")
        .iter()
        .map(|b| b["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["first", "second"]);
    let verified = snapfs_ok(&["vault", "verify", vault, "--read-data", "--json"]);
    let verified: serde_json::Value = serde_json::from_str(&verified).expect("json");
    assert_eq!(verified["problems"], serde_json::json!([]), "{verified}");

    let mut contents = Vec::new();
    for name in ["first", "second"] {
        let store = dir.path().join(name);
        snapfs_ok(&[
            "vault",
            "restore",
            vault,
            name,
            store.to_str().expect("utf-8"),
        ]);
        let m = Mounted::open(store);
        assert_eq!(
            fs::read_link(m.path("docs/link")).expect("readlink"),
            Path::new("readme.txt")
        );
        assert_eq!(fs::metadata(m.path("empty")).expect("stat").len(), 0);
        contents.push((
            fs::read_to_string(m.path("docs/readme.txt")).expect("read"),
            fs::read(m.path("docs/random.bin")).expect("read"),
        ));
    }
    assert_eq!(contents[0].0, "hello from the version-1 vault\n");
    assert_eq!(contents[1].0, "hello from the version-1 vault\nmore\n");
    assert_eq!(contents[0].1.len(), 20_000);
    assert_eq!(contents[0].1, contents[1].1);

    let m = Mounted::new();
    fs::write(m.path("new"), noise(100_000, 3)).expect("write");
    let mnt = m.mnt.to_str().expect("utf-8");
    snapfs_ok(&["snapshot", "create", "third", "--mount", mnt]);
    snapfs_ok(&["backup", "third", "--to", vault, "--mount", mnt]);
    let listed: serde_json::Value =
        serde_json::from_str(&snapfs_ok(&["vault", "list", vault, "--json"])).expect("json");
    assert_eq!(listed.as_array().expect("array").len(), 3);
    let verified = snapfs_ok(&["vault", "verify", vault, "--read-data", "--json"]);
    assert!(verified.contains("\"problems\":[]"), "{verified}");
}
