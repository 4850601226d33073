//! Vaults when things go wrong, through the `snapfs` command and real mounts: a backup whose
//! daemon is killed with SIGKILL midway, or whose S3 server (SeaweedFS) goes away midway,
//! leaves the vault consistent (it verifies, nothing half-made is listed) and the next backup
//! sends only what had not arrived; two shares back up into one vault at the same time, gc
//! refuses to run beside them, and data another share already sent is not sent again.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::harness::{Mounted, SNAPFS, noise, snapfs_ok, wait_for};
use crate::s3_server::{ACCESS_KEY, BUCKET, S3Server, SECRET_KEY};
use crate::vault::{ok_env, snapfs_env, tree_state};

const MIB: u64 = 1 << 20;

/// `len` bytes that share no 4 KiB block with any other call's (nor with each other), cheap to
/// make: a megabyte of noise, each 4 KiB block stamped with `seed` and its offset.
fn distinct(len: usize, seed: u64) -> Vec<u8> {
    let base = noise(MIB as usize, seed);
    let mut out: Vec<u8> = base.iter().copied().cycle().take(len).collect();
    for (index, block) in out.chunks_mut(4096).enumerate() {
        block[..8].copy_from_slice(&seed.to_le_bytes());
        block[8..16].copy_from_slice(&(index as u64).to_le_bytes());
    }
    out
}

/// Writes `files` files of `each` distinct bytes under `dir` of the share.
fn fill(m: &Mounted, dir: &str, files: u64, each: u64, seed: u64) {
    fs::create_dir_all(m.path(dir)).expect("mkdir");
    for i in 0..files {
        let path = m.path(&format!("{dir}/f{i}"));
        fs::write(path, distinct(each as usize, seed * 1000 + i)).expect("write");
    }
}

/// Starts `snapfs backup SNAPSHOT --to VAULT --mount M` without waiting for it.
fn start_backup(m: &Mounted, snapshot: &str, vault: &str, env: &[(&str, String)]) -> Child {
    let mut command = Command::new(SNAPFS);
    command
        .args(["backup", snapshot, "--to", vault, "--mount"])
        .arg(&m.mnt)
        .env_remove("SNAPFS_PASSPHRASE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    command.spawn().expect("running snapfs backup")
}

/// Waits for a backup started with [`start_backup`]; its success and its standard error.
fn finish(child: Child) -> (bool, String) {
    let out = child.wait_with_output().expect("wait");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The sizes of the files under `dir`, by path relative to it (a local vault's objects).
fn local_objects(dir: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for entry in entries {
            let entry = entry.expect("entry");
            let meta = entry.metadata().expect("stat");
            if meta.is_dir() {
                pending.push(entry.path());
            } else {
                let path = entry.path();
                let rel = path.strip_prefix(dir).expect("under").display();
                out.push((rel.to_string(), meta.len()));
            }
        }
    }
    out
}

/// The keys and sizes of the objects under `prefix` in the server's bucket, as any S3 client
/// lists them.
fn s3_objects(server: &S3Server, prefix: &str) -> Vec<(String, u64)> {
    let script = format!(
        "import boto3\n\
         s3 = boto3.client('s3', endpoint_url='{}', aws_access_key_id='{ACCESS_KEY}', \
         aws_secret_access_key='{SECRET_KEY}', region_name='us-east-1')\n\
         for page in s3.get_paginator('list_objects_v2').paginate(Bucket='{BUCKET}', \
         Prefix='{prefix}/'):\n\
         \x20   for o in page.get('Contents', []):\n\
         \x20       print(o['Key'][len('{prefix}/'):], o['Size'])\n",
        server.endpoint()
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "listing the bucket: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            let (key, size) = line.rsplit_once(' ').expect("key and size");
            (key.to_owned(), size.parse().expect("size"))
        })
        .collect()
}

fn total(objects: &[(String, u64)]) -> u64 {
    objects.iter().map(|(_, size)| size).sum()
}

/// Bytes of the packs that have an index: what a resumed backup may skip.
fn indexed_pack_bytes(objects: &[(String, u64)]) -> u64 {
    let indexed: BTreeSet<&str> = objects
        .iter()
        .filter_map(|(key, _)| key.strip_prefix("index/"))
        .collect();
    objects
        .iter()
        .filter(|(key, _)| {
            key.strip_prefix("packs/")
                .and_then(|rest| rest.split_once('/'))
                .is_some_and(|(_, id)| indexed.contains(id))
        })
        .map(|(_, size)| size)
        .sum()
}

fn count_under(objects: &[(String, u64)], dir: &str) -> usize {
    objects
        .iter()
        .filter(|(key, _)| key.starts_with(dir))
        .count()
}

fn listed(vault: &str, env: &[(&str, String)]) -> serde_json::Value {
    let text = ok_env(&["vault", "list", vault, "--json"], env);
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("{err}: {text}"))
}

/// Restores `backup` into a new store next to `m`'s, mounts it, and checks that it holds
/// exactly `expected`.
fn restores_to(
    m: &Mounted,
    vault: &str,
    backup: &str,
    env: &[(&str, String)],
    expected: &std::collections::BTreeMap<String, crate::vault::EntryState>,
) {
    let store = m
        .dir
        .path()
        .join(format!("restored-{}", backup.replace('/', "-")));
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
    let mut restored = Mounted::open(store);
    let state = tree_state(&restored.mnt);
    let differ: Vec<_> = expected
        .keys()
        .chain(state.keys())
        .filter(|path| expected.get(*path) != state.get(*path))
        .map(|path| (path, expected.get(path), state.get(path)))
        .collect();
    assert!(differ.is_empty(), "{backup} restores, but: {differ:?}");
    restored.unmount();
}

#[test]
fn a_backup_killed_midway_leaves_the_vault_consistent_and_the_next_one_resumes() {
    let vault_dir = tempfile::tempdir().expect("tempdir");
    let vault_path = vault_dir.path().join("vault");
    let vault = vault_path.to_str().expect("utf-8");
    snapfs_ok(&["vault", "init", vault]);
    let mut m = Mounted::new();
    let data = 128 * MIB;
    fill(&m, "data", 16, data / 16, 1);
    let mnt = m.mnt.to_str().expect("utf-8").to_owned();
    snapfs_ok(&["snapshot", "create", "s", "--mount", &mnt]);
    let expected = tree_state(&m.mnt);

    let backup = start_backup(&m, "s", vault, &[]);
    wait_for("two packs with their indexes arrive", 300, || {
        count_under(&local_objects(&vault_path), "index/") >= 2
    });
    m.kill9();
    let (succeeded, _) = finish(backup);
    assert!(
        !succeeded,
        "the backup finished before the daemon was killed: make the share bigger"
    );

    // Nothing half-made is listed, and everything that is there is whole.
    assert_eq!(listed(vault, &[]), serde_json::json!([]));
    ok_env(&["vault", "verify", vault, "--read-data"], &[]);
    let arrived = local_objects(&vault_path);
    let indexed = indexed_pack_bytes(&arrived);
    assert!(indexed >= 2 * 16 * MIB - MIB, "{indexed}");

    m.mount();
    ok_env(&["backup", "s", "--to", vault, "--mount", &mnt], &[]);
    let added = total(&local_objects(&vault_path)) - total(&arrived);
    assert!(
        added + indexed <= data + 4 * MIB,
        "the resumed backup sent {added} bytes: the {indexed} bytes of packs already indexed \
         should not have been sent again ({data} bytes of data)"
    );
    assert!(
        added >= data - indexed - 16 * MIB,
        "it did send the rest: {added}"
    );
    ok_env(&["vault", "verify", vault, "--read-data"], &[]);
    assert_eq!(listed(vault, &[])[0]["name"], "s");
    restores_to(&m, vault, "s", &[], &expected);
}

#[test]
fn an_s3_server_lost_midway_fails_the_backup_cleanly_and_the_next_one_resumes() {
    let mut server = S3Server::start();
    let mut env = server.env();
    env.push(("SNAPFS_PASSPHRASE", "outage drill".into()));
    // Give up after 3 s of failures instead of a minute: the test waits for the failure.
    env.push(("SNAPFS_S3_RETRY_TIMEOUT", "3".into()));
    let prefix = "outage";
    let vault = server.url(prefix);
    ok_env(&["vault", "init", &vault], &env);
    let mut m = Mounted::new();
    let data = 128 * MIB;
    fill(&m, "data", 16, data / 16, 2);
    let mnt = m.mnt.to_str().expect("utf-8").to_owned();
    snapfs_ok(&["snapshot", "create", "s", "--mount", &mnt]);
    let expected = tree_state(&m.mnt);

    let backup = start_backup(&m, "s", &vault, &env);
    let location = snapfs::blob::BlobLocation::parse(&vault).expect("location");
    let settings = snapfs::blob::S3Settings {
        access_key_id: ACCESS_KEY.into(),
        secret_access_key: SECRET_KEY.into(),
        region: "us-east-1".into(),
        endpoint: Some(server.endpoint()),
        retry_timeout: std::time::Duration::from_secs(3),
    };
    let bucket = snapfs::blob::open_with(&location, Some(&settings)).expect("backend");
    wait_for("a pack and its index arrive", 300, || {
        bucket
            .list("index/")
            .is_ok_and(|indexes| !indexes.is_empty())
    });
    server.stop();
    let (succeeded, err) = finish(backup);
    assert!(!succeeded, "the backup cannot finish without its server");
    assert!(err.contains("unreachable"), "a clear error: {err}");

    // The share goes on, and the daemon is ready for the next request.
    fs::write(m.path("after-outage"), b"still writable").expect("write");
    assert_eq!(
        fs::read(m.path("after-outage")).expect("read"),
        b"still writable"
    );
    server.restart();
    assert_eq!(listed(&vault, &env), serde_json::json!([]));
    ok_env(&["vault", "verify", &vault], &env);
    let arrived = s3_objects(&server, prefix);
    let indexed = indexed_pack_bytes(&arrived);
    assert!(indexed >= 15 * MIB, "{indexed}");

    ok_env(&["backup", "s", "--to", &vault, "--mount", &mnt], &env);
    let added = total(&s3_objects(&server, prefix)) - total(&arrived);
    assert!(
        added + indexed <= data + 4 * MIB,
        "the resumed backup sent {added} bytes: the {indexed} bytes already indexed should not \
         have been sent again"
    );
    ok_env(&["vault", "verify", &vault, "--read-data"], &env);
    restores_to(&m, &vault, "s", &env, &expected);
    m.unmount();
}

#[test]
fn two_shares_back_up_into_one_vault_at_once_gc_refuses_meanwhile_and_shared_data_is_sent_once() {
    let vault_dir = tempfile::tempdir().expect("tempdir");
    let vault_path = vault_dir.path().join("vault");
    let vault = vault_path.to_str().expect("utf-8");
    snapfs_ok(&["vault", "init", vault]);
    let mut a = Mounted::new();
    let mut b = Mounted::new();
    let a_mnt = a.mnt.to_str().expect("utf-8").to_owned();
    let b_mnt = b.mnt.to_str().expect("utf-8").to_owned();

    // Both shares hold the same 32 MiB; b has 1 MiB of its own.
    fill(&a, "common", 8, 4 * MIB, 3);
    fill(&b, "common", 8, 4 * MIB, 3);
    fill(&b, "own", 1, MIB, 4);
    snapfs_ok(&["snapshot", "create", "a1", "--mount", &a_mnt]);
    snapfs_ok(&["snapshot", "create", "b1", "--mount", &b_mnt]);
    ok_env(&["backup", "a1", "--to", vault, "--mount", &a_mnt], &[]);
    let after_a = total(&local_objects(&vault_path));
    ok_env(&["backup", "b1", "--to", vault, "--mount", &b_mnt], &[]);
    let added = total(&local_objects(&vault_path)) - after_a;
    assert!(
        added <= MIB + MIB / 2,
        "the second share's first backup sent {added} bytes for 1 MiB of new data"
    );

    // New data on both, backed up at the same time; gc meanwhile refuses.
    fill(&a, "new", 8, 4 * MIB, 5);
    fill(&b, "new", 8, 4 * MIB, 6);
    snapfs_ok(&["snapshot", "create", "a2", "--mount", &a_mnt]);
    snapfs_ok(&["snapshot", "create", "b2", "--mount", &b_mnt]);
    let a_state = tree_state(&a.mnt);
    let b_state = tree_state(&b.mnt);
    let backup_a = start_backup(&a, "a2", vault, &[]);
    let backup_b = start_backup(&b, "b2", vault, &[]);
    wait_for("a backup takes its lock", 60, || {
        count_under(&local_objects(&vault_path), "locks/") >= 1
    });
    let gc = snapfs_env(&["vault", "gc", vault], &[]);
    let (a_ok, a_err) = finish(backup_a);
    let (b_ok, b_err) = finish(backup_b);
    assert!(a_ok, "{a_err}");
    assert!(b_ok, "{b_err}");
    let gc_err = String::from_utf8_lossy(&gc.stderr);
    assert!(
        !gc.status.success() && gc_err.contains("is in use"),
        "gc beside running backups refuses: {gc_err}"
    );

    let names: BTreeSet<String> = listed(vault, &[])
        .as_array()
        .expect("array")
        .iter()
        .map(|backup| backup["name"].as_str().expect("name").to_owned())
        .collect();
    assert_eq!(names, ["a1", "a2", "b1", "b2"].map(String::from).into());
    // With the backups done, gc runs; it frees nothing a backup uses.
    ok_env(&["vault", "gc", vault], &[]);
    ok_env(&["vault", "verify", vault, "--read-data"], &[]);
    restores_to(&a, vault, "a2", &[], &a_state);
    restores_to(&b, vault, "b2", &[], &b_state);
    a.unmount();
    b.unmount();
}

#[test]
fn distinct_blocks_differ() {
    let one = distinct(64 * 1024, 1);
    let two = distinct(64 * 1024, 2);
    let blocks: BTreeSet<&[u8]> = one.chunks(4096).chain(two.chunks(4096)).collect();
    assert_eq!(blocks.len(), 32);
}
