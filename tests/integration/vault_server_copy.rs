//! Backups of a tiered share into a vault in the same object store: the object store copies
//! the tier's packs (S3 `CopyObject` in one bucket of a real SeaweedFS; `copy_file_range`
//! between two directories), the data is not fetched through this host, and the vault then
//! restores, verifies, takes incremental backups and collects garbage as any other. An
//! encrypted vault in the same bucket takes no copies.

use std::path::Path;

use crate::harness::{Mounted, noise};
use crate::s3_server::S3Server;
use crate::tier::{
    drop_caches, mount_with_small_cache, tier_status, wait_for_cache_within,
    wait_until_checkpointed,
};
use crate::vault::{ok_env, populate, tree_state};

/// `snapfs backup NAME --to VAULT --json`: the report.
fn backup(m: &Mounted, name: &str, vault: &str, env: &[(&str, String)]) -> serde_json::Value {
    let mnt = m.mnt.to_str().expect("utf-8");
    let out = ok_env(
        &["backup", name, "--to", vault, "--mount", mnt, "--json"],
        env,
    );
    serde_json::from_str(&out).expect("backup JSON")
}

fn fetched(m: &Mounted, env: &[(&str, String)]) -> u64 {
    tier_status(m, env)["fetched_bytes"]
        .as_u64()
        .expect("fetched")
}

/// Verifies the vault with `--read-data` and asserts it found nothing wrong.
fn verify_clean(vault: &str, env: &[(&str, String)]) {
    let out = ok_env(&["vault", "verify", vault, "--read-data", "--json"], env);
    let report: serde_json::Value = serde_json::from_str(&out).expect("verify JSON");
    assert_eq!(report["problems"], serde_json::json!([]), "{report}");
    assert!(
        report["objects_read"].as_u64().expect("read") > 0,
        "{report}"
    );
}

/// Restores backup `name` into a new store under `dir`, mounts it and returns its tree.
fn restored_tree(
    vault: &str,
    name: &str,
    dir: &Path,
    env: &[(&str, String)],
) -> std::collections::BTreeMap<String, crate::vault::EntryState> {
    let store = dir.join(format!("restored-{name}"));
    ok_env(
        &[
            "vault",
            "restore",
            vault,
            name,
            store.to_str().expect("utf-8"),
        ],
        env,
    );
    let m = Mounted::open_with_env(store, env);
    tree_state(&m.mnt)
}

#[test]
fn a_vault_in_the_tiers_bucket_takes_its_packs_by_server_side_copy() {
    let server = S3Server::start();
    let env = server.env();
    let m = mount_with_small_cache(&server.url("tiers/share"), &env);
    populate(&m);
    let big = noise(40 << 20, 11);
    std::fs::write(m.path("big"), &big).expect("write big");
    let mnt = m.mnt.to_str().expect("utf-8").to_owned();
    ok_env(&["snapshot", "create", "first", "--mount", &mnt], &env);
    let first = tree_state(&m.mnt);
    wait_until_checkpointed(&m, &env, 0);
    wait_for_cache_within(&m, &env, 8 << 20);

    // An unencrypted vault in the same bucket: the evicted data is copied by the server, not
    // fetched and sent again.
    let plain = server.url("vaults/plain");
    ok_env(&["vault", "init", &plain, "--no-encrypt"], &env);
    let before = fetched(&m, &env);
    let report = backup(&m, "first", &plain, &env);
    let fetched_during = fetched(&m, &env) - before;
    let copied = report["bytes_copied"].as_u64().expect("bytes_copied");
    assert!(
        report["packs_copied"].as_u64().expect("packs") >= 1,
        "{report}"
    );
    assert!(copied >= 32 << 20, "most of the data was copied: {report}");
    assert!(
        report["bytes_added"].as_u64().expect("added") >= copied,
        "{report}"
    );
    assert!(
        fetched_during < 16 << 20,
        "{fetched_during} bytes fetched from the tier for a backup of 43 MiB: {report}"
    );
    verify_clean(&plain, &env);
    let restore_dir = tempfile::tempdir_in("/var/tmp").expect("tempdir");
    assert_eq!(
        restored_tree(&plain, "first", restore_dir.path(), &env),
        first,
        "every byte and attribute comes back from the copied packs"
    );

    // An incremental backup sends what changed; the big file goes, so deleting the first
    // backup leaves the copied packs mostly dead, and gc rewrites or deletes them.
    std::fs::write(m.path("big"), b"small now").expect("rewrite big");
    std::fs::write(m.path("new"), noise(1 << 20, 12)).expect("write");
    ok_env(&["snapshot", "create", "second", "--mount", &mnt], &env);
    let second = tree_state(&m.mnt);
    let report = backup(&m, "second", &plain, &env);
    assert!(
        report["bytes_added"].as_u64().expect("added") < 4 << 20,
        "{report}"
    );
    ok_env(&["vault", "delete", &plain, "first"], &env);
    let gc = ok_env(&["vault", "gc", &plain, "--json"], &env);
    let gc: serde_json::Value = serde_json::from_str(&gc).expect("gc JSON");
    assert!(
        gc["packs_deleted"].as_u64().expect("deleted")
            + gc["packs_rewritten"].as_u64().expect("rewritten")
            >= 1,
        "{gc}"
    );
    assert!(
        gc["pack_bytes_after"].as_u64().expect("after") < 16 << 20,
        "the dead copied bytes are freed: {gc}"
    );
    verify_clean(&plain, &env);
    drop_caches();
    assert_eq!(
        restored_tree(&plain, "second", restore_dir.path(), &env),
        second
    );

    // An encrypted vault in the same bucket: its entries must be sealed with its key, so the
    // data goes through this host, and the backup is whole all the same.
    let sealed = server.url("vaults/sealed");
    let mut keyed = env.clone();
    keyed.push(("SNAPFS_PASSPHRASE", "a long passphrase".into()));
    ok_env(&["vault", "init", &sealed], &keyed);
    let report = backup(&m, "second", &sealed, &keyed);
    assert_eq!(report["packs_copied"], 0, "{report}");
    verify_clean(&sealed, &keyed);
}

#[test]
fn a_vault_directory_takes_a_tier_directorys_packs_by_copy_file_range() {
    let dir = tempfile::tempdir_in("/var/tmp").expect("tempdir");
    let tier = dir.path().join("tier");
    let m = Mounted::new_with_env(&["--tier", tier.to_str().expect("utf-8")], &[], &[]);
    let data = noise(36 << 20, 21);
    std::fs::write(m.path("data"), &data).expect("write");
    std::fs::write(m.path("small"), b"small").expect("write");
    let mnt = m.mnt.to_str().expect("utf-8").to_owned();
    ok_env(&["snapshot", "create", "one", "--mount", &mnt], &[]);
    let one = tree_state(&m.mnt);
    wait_until_checkpointed(&m, &[], 0);

    let vault = dir.path().join("vault");
    let vault = vault.to_str().expect("utf-8");
    ok_env(&["vault", "init", vault], &[]);
    let report = backup(&m, "one", vault, &[]);
    assert!(
        report["packs_copied"].as_u64().expect("packs") >= 1,
        "{report}"
    );
    assert!(
        report["bytes_copied"].as_u64().expect("copied") >= 32 << 20,
        "{report}"
    );
    verify_clean(vault, &[]);
    assert_eq!(restored_tree(vault, "one", dir.path(), &[]), one);
}
