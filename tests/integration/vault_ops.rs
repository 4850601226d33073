//! The vault commands that look after a vault once backups are in it, through the `snapfs`
//! command, on a local vault and on a real S3 server (SeaweedFS): verify names a damaged pack,
//! a missing pack and a missing index; a held backup cannot be deleted; gc frees a deleted
//! backup's space, refuses while a backup holds a lock, and leaves the other backup restoring
//! every byte; copy sends backups to another vault (another key, another backend) and back,
//! and a second copy sends nothing.

use std::fs;
use std::path::Path;

use snapfs::blob::{self, BlobLocation, S3Settings};
use snapfs::vault::lock::{LockKind, VaultLock};
use snapfs::vault::{Secret, Vault};

use crate::harness::{Mounted, noise, snapfs_ok};
use crate::s3_server::S3Server;
use crate::vault::{ok_env, snapfs_env, tree_state};

/// Runs `snapfs`, expecting it to fail; returns its standard error and output together.
fn err_env(args: &[&str], env: &[(&str, String)]) -> String {
    let out = snapfs_env(args, env);
    assert!(
        !out.status.success(),
        "snapfs {args:?} should have failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|err| panic!("{err}: {text}"))
}

/// Opens a vault through the library, with the S3 settings and passphrase of `env`.
pub(crate) fn open_vault(vault: &str, env: &[(&str, String)]) -> Vault {
    let get = |name: &str| {
        env.iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.clone())
    };
    let settings = get("AWS_ENDPOINT_URL").map(|endpoint| S3Settings {
        access_key_id: get("AWS_ACCESS_KEY_ID").expect("key id"),
        secret_access_key: get("AWS_SECRET_ACCESS_KEY").expect("secret"),
        region: "us-east-1".into(),
        endpoint: Some(endpoint),
        retry_timeout: std::time::Duration::from_secs(5),
    });
    let location = BlobLocation::parse(vault).expect("location");
    let backend = blob::open_with(&location, settings.as_ref()).expect("backend");
    let secret = get("SNAPFS_PASSPHRASE").map_or(Secret::None, |p| Secret::Passphrase(p.into()));
    Vault::open_backend(backend, &secret).expect("open vault")
}

/// A share with two snapshots backed up: `one` has 3 MiB of its own (`gone.bin`), `two` a
/// small file of its own; both have `keep/`.
fn two_backups(vault: &str, env: &[(&str, String)]) -> Mounted {
    let m = Mounted::new();
    let mnt = m.mnt.to_str().expect("utf-8").to_owned();
    fs::create_dir_all(m.path("keep/deeper")).expect("mkdir");
    fs::write(m.path("keep/data.bin"), noise(1 << 20, 1)).expect("write");
    fs::write(m.path("keep/deeper/notes.txt"), b"kept in both\n").expect("write");
    fs::write(m.path("gone.bin"), noise(3 << 20, 2)).expect("write");
    snapfs_ok(&["snapshot", "create", "one", "--mount", &mnt]);
    ok_env(&["backup", "one", "--to", vault, "--mount", &mnt], env);
    fs::remove_file(m.path("gone.bin")).expect("rm");
    fs::write(m.path("later.txt"), noise(10_000, 3)).expect("write");
    // Snapshot times are whole seconds: "two" is taken in a later one than "one", so that
    // "newest" means the same thing to every rule.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    snapfs_ok(&["snapshot", "create", "two", "--mount", &mnt]);
    ok_env(&["backup", "two", "--to", vault, "--mount", &mnt], env);
    m
}

/// Restores `backup` into a new store beside `m`'s, mounts it, and returns its tree.
fn restored_state(
    m: &Mounted,
    vault: &str,
    env: &[(&str, String)],
    backup: &str,
    name: &str,
) -> std::collections::BTreeMap<String, crate::vault::EntryState> {
    let store = m.dir.path().join(name);
    ok_env(
        &[
            "vault",
            "restore",
            vault,
            backup,
            store.to_str().expect("utf-8"),
        ],
        env,
    );
    let mut restored = Mounted::new();
    restored.unmount();
    restored.store = store;
    restored.mount();
    let state = tree_state(&restored.mnt);
    drop(restored);
    state
}

/// Hold, release, delete, gc (refused under a backup's lock), then restore and verify.
fn hold_delete_gc(vault: &str, env: &[(&str, String)]) {
    let m = two_backups(vault, env);
    let expected = tree_state(&m.mnt);

    ok_env(&["vault", "hold", vault, "one"], env);
    let listed = json(&ok_env(&["vault", "list", vault, "--json"], env));
    assert_eq!(listed[0]["name"], "one", "{listed}");
    assert_eq!(listed[0]["hold"], "indefinite", "{listed}");
    assert_eq!(listed[1]["hold"], "none", "{listed}");
    let err = err_env(&["vault", "delete", vault, "one"], env);
    assert!(err.contains("backup one is held"), "{err}");
    ok_env(&["vault", "release", vault, "one"], env);
    let out = ok_env(&["vault", "delete", vault, "one"], env);
    assert!(out.contains("deleted one"), "{out}");
    let listed = json(&ok_env(&["vault", "list", vault, "--json"], env));
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");

    // A backup in progress holds a shared lock: gc refuses, and says who is in the way.
    let library = open_vault(vault, env);
    let lock = VaultLock::acquire(&library, LockKind::Shared, "backup").expect("lock");
    let err = err_env(&["vault", "gc", vault], env);
    assert!(
        err.contains("is in use: backup holds a shared lock"),
        "{err}"
    );
    let dry = json(&ok_env(&["vault", "gc", vault, "--dry-run", "--json"], env));
    assert_eq!(dry["dry_run"], true, "{dry}");
    drop(lock);
    // And while gc runs, a backup (through the mounted share's daemon) refuses.
    let lock = VaultLock::acquire(&library, LockKind::Exclusive, "gc").expect("lock");
    let mnt = m.mnt.to_str().expect("utf-8");
    let err = err_env(&["backup", "--to", vault, "--mount", mnt], env);
    assert!(err.contains("gc holds an exclusive lock"), "{err}");
    drop(lock);

    let report = json(&ok_env(&["vault", "gc", vault, "--json"], env));
    let before = report["pack_bytes_before"].as_u64().expect("before");
    let after = report["pack_bytes_after"].as_u64().expect("after");
    assert!(
        after + (5 << 19) < before,
        "one's 3 MiB go: {before} -> {after} ({report})"
    );
    assert_eq!(report["backups"], 1, "{report}");
    let again = json(&ok_env(&["vault", "gc", vault, "--json"], env));
    assert_eq!(
        again["pack_bytes_after"], report["pack_bytes_after"],
        "{again}"
    );

    let out = ok_env(&["vault", "verify", vault, "--read-data"], env);
    assert!(out.contains("no problems found"), "{out}");
    assert_eq!(
        restored_state(&m, vault, env, "two", "restored-two"),
        expected,
        "every byte and attribute of the backup that stayed"
    );
}

#[test]
fn a_local_vault_keeps_held_backups_and_gc_frees_a_deleted_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let vault = dir.path().join("vault");
    let vault = vault.to_str().expect("utf-8");
    snapfs_ok(&["vault", "init", vault]);
    hold_delete_gc(vault, &[]);
}

#[test]
fn an_s3_vault_keeps_held_backups_and_gc_frees_a_deleted_one() {
    let server = S3Server::start();
    let mut env = server.env();
    env.push(("SNAPFS_PASSPHRASE", "gc passphrase".into()));
    let vault = server.url("gc");
    ok_env(&["vault", "init", &vault], &env);
    hold_delete_gc(&vault, &env);
}

/// The keys of the objects under `dir` of a local vault, sorted.
fn objects(vault: &Path, dir: &str) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut pending = vec![vault.join(dir)];
    while let Some(d) = pending.pop() {
        for entry in fs::read_dir(&d).expect("readdir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn copy_dir(from: &Path, to: &Path) {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp");
    assert!(status.success());
}

#[test]
fn verify_names_a_damaged_pack_a_missing_pack_and_a_missing_index() {
    let dir = tempfile::tempdir().expect("tempdir");
    let intact = dir.path().join("vault");
    let intact_str = intact.to_str().expect("utf-8");
    let env = vec![("SNAPFS_PASSPHRASE", "verify me".to_owned())];
    ok_env(&["vault", "init", intact_str, "--encrypt"], &env);
    let _m = two_backups(intact_str, &env);
    let out = ok_env(&["vault", "verify", intact_str, "--read-data"], &env);
    assert!(out.contains("no problems found"), "{out}");
    assert!(out.contains("2 backups"), "{out}");

    let wrong = vec![("SNAPFS_PASSPHRASE", "not it".to_owned())];
    let err = err_env(&["vault", "verify", intact_str], &wrong);
    assert!(err.contains("wrong passphrase"), "{err}");
    let err = err_env(&["vault", "verify", intact_str], &[]);
    assert!(err.contains("is encrypted"), "{err}");

    let packs = objects(&intact, "packs");
    let biggest = packs
        .iter()
        .max_by_key(|p| fs::metadata(p).expect("stat").len())
        .expect("a pack");
    let pack_id = biggest
        .file_name()
        .and_then(|n| n.to_str())
        .expect("name")
        .to_owned();
    let relative = biggest.strip_prefix(&intact).expect("inside");

    // One flipped byte: only reading the data finds it, and it names the pack.
    let damaged = dir.path().join("damaged");
    copy_dir(&intact, &damaged);
    let path = damaged.join(relative);
    let mut bytes = fs::read(&path).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    fs::write(&path, &bytes).expect("tamper");
    let damaged = damaged.to_str().expect("utf-8");
    let err = err_env(&["vault", "verify", damaged, "--read-data"], &env);
    assert!(
        err.contains(&format!("PROBLEM: pack {pack_id}: object")),
        "{err}"
    );
    assert!(err.contains("failed authentication"), "{err}");

    // A pack gone.
    let no_pack = dir.path().join("no-pack");
    copy_dir(&intact, &no_pack);
    fs::remove_file(no_pack.join(relative)).expect("rm");
    let err = err_env(&["vault", "verify", no_pack.to_str().expect("utf-8")], &env);
    assert!(
        err.contains(&format!("names pack {pack_id}, which is missing")),
        "{err}"
    );
    assert!(
        err.contains("PROBLEM: backup one") || err.contains("PROBLEM: backup two"),
        "{err}"
    );

    // An index gone: its objects are missing from the backups that need them.
    let no_index = dir.path().join("no-index");
    copy_dir(&intact, &no_index);
    fs::remove_file(no_index.join("index").join(&pack_id)).expect("rm");
    let err = err_env(
        &["vault", "verify", no_index.to_str().expect("utf-8")],
        &env,
    );
    assert!(err.contains("is not in the vault's index"), "{err}");
    assert!(
        err.contains(&format!("pack {pack_id} has no index")),
        "{err}"
    );
}

#[test]
fn a_copy_to_s3_and_back_restores_every_byte_and_a_second_copy_sends_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let local = dir.path().join("vault");
    let local = local.to_str().expect("utf-8");
    snapfs_ok(&["vault", "init", local]);
    let m = two_backups(local, &[]);
    let expected = tree_state(&m.mnt);

    let server = S3Server::start();
    let remote = server.url("copy");
    let mut env = server.env();
    env.push(("SNAPFS_PASSPHRASE", "remote passphrase".into()));
    ok_env(&["vault", "init", &remote], &env);

    // Local (no key) to S3 (its own passphrase).
    let mut to_remote = server.env();
    to_remote.push(("SNAPFS_DEST_PASSPHRASE", "remote passphrase".into()));
    let first = json(&ok_env(
        &["vault", "copy", local, &remote, "two", "--json"],
        &to_remote,
    ));
    assert_eq!(first["copied"], serde_json::json!(["two"]), "{first}");
    let rest = json(&ok_env(
        &["vault", "copy", local, &remote, "--json"],
        &to_remote,
    ));
    assert_eq!(rest["copied"], serde_json::json!(["one"]), "{rest}");
    assert_eq!(rest["skipped"], serde_json::json!(["two"]), "{rest}");
    assert!(
        rest["bytes_added"].as_u64().expect("bytes") < (3 << 20) + (1 << 19),
        "one shares keep/ with two: {rest}"
    );
    let again = json(&ok_env(
        &["vault", "copy", local, &remote, "--json"],
        &to_remote,
    ));
    assert_eq!(again["bytes_added"], 0, "{again}");
    assert_eq!(again["objects_sent"], 0, "{again}");
    let listed = json(&ok_env(&["vault", "list", &remote, "--json"], &env));
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed}");
    let out = ok_env(&["vault", "verify", &remote, "--read-data"], &env);
    assert!(out.contains("no problems found"), "{out}");

    // A wrong destination passphrase is refused before anything is sent.
    let mut wrong = server.env();
    wrong.push(("SNAPFS_DEST_PASSPHRASE", "not it".into()));
    let err = err_env(&["vault", "copy", local, &remote], &wrong);
    assert!(err.contains("wrong passphrase"), "{err}");

    // Restored from the S3 copy: every byte and attribute.
    assert_eq!(
        restored_state(&m, &remote, &env, "two", "from-remote"),
        expected
    );

    // And back into a new local vault (unencrypted: the source's passphrase opens S3).
    let back = dir.path().join("back");
    let back = back.to_str().expect("utf-8");
    snapfs_ok(&["vault", "init", back]);
    let copied = json(&ok_env(&["vault", "copy", &remote, back, "--json"], &env));
    assert_eq!(
        copied["copied"].as_array().map(Vec::len),
        Some(2),
        "{copied}"
    );
    let again = json(&ok_env(&["vault", "copy", &remote, back, "--json"], &env));
    assert_eq!(again["bytes_added"], 0, "{again}");
    assert_eq!(restored_state(&m, back, &[], "two", "from-back"), expected);
    drop(server);
}

#[test]
fn vault_keys_can_be_added_changed_and_removed_without_touching_the_backups() {
    let dir = tempfile::tempdir().expect("tempdir");
    let vault = dir.path().join("vault");
    let vault = vault.to_str().expect("utf-8");
    let first = [("SNAPFS_PASSPHRASE", "first".to_owned())];
    ok_env(&["vault", "init", vault, "--encrypt"], &first);
    let m = two_backups(vault, &first);
    let before = restored_state(&m, vault, &first, "two", "restored-before");

    let adding = [
        ("SNAPFS_PASSPHRASE", "first".to_owned()),
        ("SNAPFS_NEW_PASSPHRASE", "second".to_owned()),
    ];
    let out = ok_env(&["vault", "key", "add", vault], &adding);
    assert!(out.contains("slot 1"), "{out}");
    let err = err_env(&["vault", "key", "add", vault], &adding);
    assert!(err.contains("already opens slot 1"), "{err}");
    let second = [("SNAPFS_PASSPHRASE", "second".to_owned())];
    let slots = json(&ok_env(&["vault", "key", "list", vault, "--json"], &second));
    let slots = slots.as_array().expect("array");
    assert_eq!(slots.len(), 2);
    assert_eq!(slots[1]["unlocked"], true);
    assert_eq!(slots[0]["unlocked"], false);

    let err = err_env(&["vault", "key", "remove", vault, "0"], &first);
    assert!(err.contains("unlock with another"), "{err}");
    ok_env(&["vault", "key", "remove", vault, "0"], &second);
    let err = err_env(&["vault", "list", vault], &first);
    assert!(err.contains("wrong passphrase"), "{err}");
    // The daemon kept the vault open after the backups with `first`: the removed passphrase
    // stops working there too.
    let mnt = m.mnt.to_str().expect("utf-8");
    let err = err_env(&["backup", "two", "--to", vault, "--mount", mnt], &first);
    assert!(err.contains("wrong passphrase"), "{err}");
    let again = json(&ok_env(
        &["backup", "two", "--to", vault, "--mount", mnt, "--json"],
        &second,
    ));
    assert_eq!(again["already_there"], true, "{again}");
    let err = err_env(&["vault", "key", "remove", vault, "0"], &second);
    assert!(
        err.contains("unlock with another"),
        "the last slot stays: {err}"
    );

    let changing = [
        ("SNAPFS_PASSPHRASE", "second".to_owned()),
        ("SNAPFS_NEW_PASSPHRASE", "third".to_owned()),
    ];
    ok_env(&["vault", "key", "passwd", vault], &changing);
    assert!(err_env(&["vault", "list", vault], &second).contains("wrong passphrase"));
    let third = [("SNAPFS_PASSPHRASE", "third".to_owned())];
    assert_eq!(
        json(&ok_env(&["vault", "list", vault, "--json"], &third))
            .as_array()
            .expect("array")
            .len(),
        2
    );
    assert_eq!(
        restored_state(&m, vault, &third, "two", "restored-after"),
        before
    );
    ok_env(&["vault", "verify", vault, "--read-data"], &third);
}

#[test]
fn vault_prune_removes_what_the_policy_does_not_keep_but_never_a_held_backup() {
    let dir = tempfile::tempdir().expect("tempdir");
    let vault = dir.path().join("vault");
    let vault = vault.to_str().expect("utf-8");
    snapfs_ok(&["vault", "init", vault]);
    let err = err_env(&["vault", "prune", vault], &[]);
    assert!(err.contains("no retention policy"), "{err}");
    let m = two_backups(vault, &[]);
    let before = restored_state(&m, vault, &[], "two", "restored-before");

    ok_env(&["vault", "policy", "set", vault, "--keep-last", "1"], &[]);
    let shown = json(&ok_env(&["vault", "policy", "show", vault, "--json"], &[]));
    assert_eq!(shown["last"], 1);
    assert_eq!(shown["daily"], 0);

    let plan = json(&ok_env(
        &["vault", "prune", vault, "--dry-run", "--json"],
        &[],
    ));
    let removed = plan["prune"]["removed"].as_array().expect("removed");
    assert_eq!(removed.len(), 1, "{plan}");
    assert!(
        removed[0]["backup"]
            .as_str()
            .expect("name")
            .ends_with("/one")
    );
    assert_eq!(
        json(&ok_env(&["vault", "list", vault, "--json"], &[]))
            .as_array()
            .expect("array")
            .len(),
        2,
        "a dry run deletes nothing"
    );

    ok_env(&["vault", "hold", vault, "one"], &[]);
    let held = json(&ok_env(&["vault", "prune", vault, "--json"], &[]));
    assert_eq!(
        held["prune"]["removed"].as_array().expect("removed").len(),
        0
    );
    ok_env(&["vault", "release", vault, "one"], &[]);

    let packs = || -> u64 { walk_size(&Path::new(vault).join("packs")) };
    let before_bytes = packs();
    let done = json(&ok_env(&["vault", "prune", vault, "--gc", "--json"], &[]));
    assert_eq!(
        done["prune"]["removed"].as_array().expect("removed").len(),
        1
    );
    assert!(done["gc"].is_object(), "{done}");
    assert!(packs() < before_bytes, "gc freed the pruned backup's data");
    let listed = json(&ok_env(&["vault", "list", vault, "--json"], &[]));
    let listed = listed.as_array().expect("array");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["name"], "two");
    assert_eq!(
        restored_state(&m, vault, &[], "two", "restored-after"),
        before
    );
    ok_env(&["vault", "verify", vault, "--read-data"], &[]);
}

/// Bytes of the files under `dir`.
fn walk_size(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in fs::read_dir(dir).expect("readdir") {
        let entry = entry.expect("entry");
        let meta = entry.metadata().expect("metadata");
        total += if meta.is_dir() {
            walk_size(&entry.path())
        } else {
            meta.len()
        };
    }
    total
}
