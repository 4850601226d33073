//! Cloud tiering against a real S3 server (SeaweedFS): eviction under a small cache with
//! byte-exact reads back, attach on a "new host" with every snapshot intact, the object store
//! going away and coming back, `kill -9` before the upload, and bad input.

use std::path::Path;

use crate::harness::{Mounted, noise, wait_for};
use crate::s3_server::S3Server;
use crate::vault::{ok_env, populate, snapfs_env, tree_state};

/// The share's tier status, as `snapfs tier status --json` reports it.
pub(crate) fn tier_status(m: &Mounted, env: &[(&str, String)]) -> serde_json::Value {
    let mnt = m.mnt.to_str().expect("utf-8");
    let out = ok_env(&["tier", "status", "--mount", mnt, "--json"], env);
    serde_json::from_str(&out).expect("status JSON")
}

/// Waits until everything the share committed is uploaded and in a checkpoint newer than
/// `after` (a write not yet committed may not be: sync it first).
pub(crate) fn wait_until_checkpointed(m: &Mounted, env: &[(&str, String)], after: u64) -> u64 {
    let mut seq = 0;
    wait_for("everything uploaded and checkpointed", 60, || {
        let status = tier_status(m, env);
        seq = status["last_checkpoint"]["sequence"].as_u64().unwrap_or(0);
        status["pending_upload_bytes"] == 0 && status["up_to_date"] == true && seq > after
    });
    seq
}

pub(crate) fn attach(location: &str, to: &Path, env: &[(&str, String)]) -> String {
    ok_env(
        &[
            "attach",
            location,
            to.to_str().expect("utf-8"),
            "--cache-size",
            "64M",
        ],
        env,
    )
}

/// Unmounts `m`, deletes its store (the old host is lost), attaches the share into a new store
/// and mounts it.
fn move_to_a_new_host(
    mut m: Mounted,
    location: &str,
    env: &[(&str, String)],
) -> (tempfile::TempDir, Mounted) {
    m.unmount();
    std::fs::remove_dir_all(&m.store).expect("lose the old store");
    let new_host = tempfile::tempdir_in("/var/tmp").expect("tempdir");
    let store = new_host.path().join("store");
    let attached = attach(location, &store, env);
    assert!(attached.contains("attached share"), "{attached}");
    let mounted = Mounted::open_with_env(store, env);
    (new_host, mounted)
}

/// A share tiered to `location` with an 8 MiB cache and a checkpoint every second.
pub(crate) fn mount_with_small_cache(location: &str, env: &[(&str, String)]) -> Mounted {
    Mounted::new_with_env(
        &[
            "--tier",
            location,
            "--cache-size",
            "8M",
            "--checkpoint-interval",
            "1",
        ],
        &[],
        env,
    )
}

/// Waits until the packs take no more local disk than `bytes` (eviction ran).
pub(crate) fn wait_for_cache_within(m: &Mounted, env: &[(&str, String)], bytes: u64) {
    wait_for("the cache within its size", 30, || {
        tier_status(m, env)["cache_used"]
            .as_u64()
            .unwrap_or(u64::MAX)
            <= bytes
    });
}

pub(crate) fn drop_caches() {
    std::fs::write("/proc/sys/vm/drop_caches", "3").expect("drop caches");
}

#[test]
fn a_tiered_share_evicts_under_a_small_cache_and_attaches_whole_on_a_new_host() {
    let server = S3Server::start();
    let env = server.env();
    let location = server.url("tiers/share1");
    let m = mount_with_small_cache(&location, &env);
    populate(&m);
    let big = noise(48 << 20, 7);
    std::fs::write(m.path("big"), &big).expect("write big");
    let mnt = m.mnt.to_str().expect("utf-8").to_owned();
    ok_env(&["snapshot", "create", "first", "--mount", &mnt], &env);
    std::fs::write(m.path("big"), b"small now").expect("rewrite big");
    std::fs::write(m.path("changed-after-first"), b"second").expect("write");
    ok_env(&["snapshot", "create", "second", "--mount", &mnt], &env);
    std::fs::write(m.path("live-only"), b"after the snapshots").expect("write");
    wait_until_checkpointed(&m, &env, 0);

    // The packs are evicted down to the cache size once uploaded...
    wait_for_cache_within(&m, &env, 8 << 20);
    // ...and read back byte for byte from the object store.
    drop_caches();
    assert!(std::fs::read(m.path(".snapshots/first/big")).expect("read") == big);
    let fetched = tier_status(&m, &env)["fetched_bytes"]
        .as_u64()
        .expect("fetched");
    assert!(
        fetched >= 40 << 20,
        "the evicted file came from S3: {fetched}"
    );
    let live = tree_state(&m.mnt);
    let first = tree_state(&m.path(".snapshots/first"));
    let second = tree_state(&m.path(".snapshots/second"));

    // A new host: the old store is gone, the object store has the share.
    let (_new_host, m2) = move_to_a_new_host(m, &location, &env);
    assert_eq!(tree_state(&m2.mnt), live, "the live share, whole");
    assert_eq!(tree_state(&m2.path(".snapshots/first")), first);
    assert_eq!(tree_state(&m2.path(".snapshots/second")), second);
    // The attached store writes on, into packs of its own.
    std::fs::write(m2.path("on-the-new-host"), b"new").expect("write");
    let mnt2 = m2.mnt.to_str().expect("utf-8").to_owned();
    ok_env(&["snapshot", "create", "third", "--mount", &mnt2], &env);
    assert_eq!(
        std::fs::read(m2.path(".snapshots/third/on-the-new-host")).expect("read"),
        b"new"
    );
}

#[test]
fn the_share_keeps_working_while_the_object_store_is_down_and_catches_up() {
    let mut server = S3Server::start();
    let mut env = server.env();
    env.push(("SNAPFS_S3_RETRY_TIMEOUT", "1".into()));
    let location = server.url("tiers/outage");
    let port = crate::metrics::free_port();
    let address = format!("127.0.0.1:{port}");
    let mut m = Mounted::new_with_env(
        &["--tier", &location, "--checkpoint-interval", "1"],
        &["--metrics", &address],
        &env,
    );
    let tier_metric = |sample: &str| {
        let (_, body) = crate::metrics::get(port, "/metrics");
        crate::metrics::value(&crate::metrics::parse(&body), sample)
    };
    let mnt = m.mnt.to_str().expect("utf-8").to_owned();
    std::fs::write(m.path("before"), noise(3 << 20, 1)).expect("write");
    let seq = wait_until_checkpointed(&m, &env, 0);

    server.stop();
    let during = noise(5 << 20, 2);
    std::fs::write(m.path("during"), &during).expect("writes go on without the object store");
    ok_env(
        &["snapshot", "create", "in-the-outage", "--mount", &mnt],
        &env,
    );
    wait_for("the outage reported", 30, || {
        !tier_status(&m, &env)["last_error"].is_null()
    });
    assert_eq!(tier_metric("snapfs_tier_object_store_up{}"), 0.0);
    wait_for("the upload lag growing", 30, || {
        tier_metric("snapfs_tier_upload_lag_seconds{}") >= 2.0
    });
    assert!(std::fs::read(m.path("during")).expect("read") == during);
    // It mounts again while the object store is down: from the cache, the lease renewed later.
    m.remount();
    assert!(std::fs::read(m.path("during")).expect("read") == during);
    assert_eq!(tier_metric("snapfs_tier_writer_lease_held{}"), 0.0);

    server.restart();
    wait_until_checkpointed(&m, &env, seq);
    assert!(tier_status(&m, &env)["last_error"].is_null());
    assert_eq!(tier_metric("snapfs_tier_object_store_up{}"), 1.0);
    assert_eq!(tier_metric("snapfs_tier_writer_lease_held{}"), 1.0);
    assert_eq!(tier_metric("snapfs_tier_upload_lag_seconds{}"), 0.0);
    assert_eq!(tier_metric("snapfs_tier_pending_upload_bytes{}"), 0.0);
    let (_new_host, m2) = move_to_a_new_host(m, &location, &env);
    assert!(std::fs::read(m2.path("during")).expect("read") == during);
    assert!(std::fs::read(m2.path(".snapshots/in-the-outage/during")).expect("read") == during);
}

#[test]
fn writes_fail_with_enospc_only_when_the_cache_is_full_of_data_not_yet_uploaded() {
    use std::io::Write;
    let mut server = S3Server::start();
    let mut env = server.env();
    env.push(("SNAPFS_S3_RETRY_TIMEOUT", "1".into()));
    let location = server.url("tiers/full");
    let m = Mounted::new_with_env(
        &[
            "--tier",
            &location,
            "--cache-size",
            "8M",
            "--checkpoint-interval",
            "1",
        ],
        // Every write(2) reaches snapfs before it returns: the error is the write's.
        &["--writeback-cache", "off"],
        &env,
    );
    write_synced(&m.path("before"), &noise(6 << 20, 11));
    let seq = wait_until_checkpointed(&m, &env, 0);

    server.stop();
    // Less than the cache: written to the cache alone, while the object store is away.
    let small = noise(3 << 20, 12);
    write_synced(&m.path("small"), &small);
    // More than the cache: once what is not uploaded fills it, writes wait, then fail.
    let big = noise(32 << 20, 13);
    let mut file = std::fs::File::create(m.path("big")).expect("create");
    let mut written = 0;
    let refused = loop {
        assert!(written < big.len(), "the cache never filled up");
        match file.write(&big[written..written + (1 << 20)]) {
            Ok(n) => written += n,
            Err(err) => break err,
        }
    };
    assert_eq!(refused.raw_os_error(), Some(libc::ENOSPC), "{refused}");
    let status = tier_status(&m, &env);
    assert_eq!(status["cache_full"], true, "{status}");
    assert!(status["pending_upload_bytes"].as_u64().expect("pending") >= 8 << 20);
    // Reads, and everything written, are there meanwhile.
    assert!(std::fs::read(m.path("small")).expect("read") == small);

    // The object store back: uploads make room, and the writes go on where they stopped.
    server.restart();
    wait_for("room in the cache", 60, || {
        tier_status(&m, &env)["cache_full"] == false
    });
    file.write_all(&big[written..])
        .expect("the rest of the file");
    file.sync_all().expect("fsync");
    drop(file);
    wait_until_checkpointed(&m, &env, seq);
    drop_caches();
    assert!(std::fs::read(m.path("big")).expect("read") == big);
    assert!(std::fs::read(m.path("small")).expect("read") == small);
}

#[test]
fn kill_9_before_the_upload_loses_nothing_that_was_synced() {
    let server = S3Server::start();
    let env = server.env();
    let location = server.url("tiers/crash");
    let mut m = Mounted::new_with_env(
        &["--tier", &location, "--checkpoint-interval", "1"],
        &[],
        &env,
    );
    let data = noise(20 << 20, 3);
    {
        use std::io::Write;
        let mut file = std::fs::File::create(m.path("synced")).expect("create");
        file.write_all(&data).expect("write");
        file.sync_all().expect("fsync");
    }
    m.kill9();
    m.mount();
    wait_until_checkpointed(&m, &env, 0);
    let (_new_host, m2) = move_to_a_new_host(m, &location, &env);
    assert!(std::fs::read(m2.path("synced")).expect("read") == data);
}

#[test]
fn bad_tier_input_gets_a_clear_error_and_leaves_nothing() {
    let server = S3Server::start();
    let env = server.env();
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = |name: &str| tmp.path().join(name).to_str().expect("utf-8").to_owned();

    let out = snapfs_env(&["attach", &server.url("tiers/nothing"), &path("a")], &env);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("holds no tiered snapfs share"), "{err}");
    assert!(!tmp.path().join("a").exists());

    let taken = server.url("tiers/taken");
    ok_env(&["init", &path("first"), "--tier", &taken], &env);
    let out = snapfs_env(&["init", &path("second"), "--tier", &taken], &env);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already holds share"), "{err}");
    assert!(
        !tmp.path().join("second").exists(),
        "nothing is left behind"
    );

    let out = snapfs_env(&["attach", &taken, &path("early")], &env);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no checkpoint yet"), "{err}");

    std::fs::create_dir(tmp.path().join("full")).expect("mkdir");
    std::fs::write(tmp.path().join("full/file"), b"x").expect("write");
    let m = Mounted::new_with_env(&["--tier", &taken.replace("taken", "other")], &[], &env);
    wait_until_checkpointed(&m, &env, 0);
    let out = snapfs_env(
        &["attach", &taken.replace("taken", "other"), &path("full")],
        &env,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not empty"), "{err}");

    let mut unreachable = env.clone();
    unreachable.retain(|(k, _)| *k != "AWS_ENDPOINT_URL");
    unreachable.push(("AWS_ENDPOINT_URL", "http://127.0.0.1:9".into()));
    unreachable.push(("SNAPFS_S3_RETRY_TIMEOUT", "1".into()));
    let out = snapfs_env(&["init", &path("nowhere"), "--tier", &taken], &unreachable);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot tier to"), "{err}");
    assert!(!tmp.path().join("nowhere").exists());

    let out = snapfs_env(
        &[
            "tier",
            "status",
            "--mount",
            Mounted::new().mnt.to_str().expect("utf-8"),
        ],
        &env,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not tiered"), "{err}");
}

#[test]
fn an_existing_store_is_tiered_and_uploads_what_it_held() {
    let server = S3Server::start();
    let env = server.env();
    let location = server.url("tiers/enabled");
    let mut m = Mounted::new();
    populate(&m);
    let held = noise(6 << 20, 11);
    std::fs::write(m.path("held-before"), &held).expect("write");
    let mnt = m.mnt.to_str().expect("utf-8").to_owned();
    ok_env(&["snapshot", "create", "untiered", "--mount", &mnt], &env);
    let store = m.store.to_str().expect("utf-8").to_owned();

    // Not while it is mounted: the daemon has it open.
    let out = snapfs_env(&["tier", "enable", "--store", &store, &location], &env);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use"), "{err}");

    m.unmount();
    let out = ok_env(
        &[
            "tier",
            "enable",
            "--store",
            &store,
            &location,
            "--cache-size",
            "1M",
        ],
        &env,
    );
    assert!(out.contains("its next mount uploads"), "{out}");
    let out = snapfs_env(&["tier", "enable", "--store", &store, &location], &env);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tiered already"), "{err}");

    let m = Mounted::open_with_env(m.store.clone(), &env);
    let live = tree_state(&m.mnt);
    let snapshot = tree_state(&m.path(".snapshots/untiered"));
    wait_until_checkpointed(&m, &env, 0);
    // Uploaded, the old data is evicted down to the small cache like any other.
    wait_for_cache_within(&m, &env, 1 << 20);
    let (_new_host, m2) = move_to_a_new_host(m, &location, &env);
    assert_eq!(tree_state(&m2.mnt), live);
    assert_eq!(tree_state(&m2.path(".snapshots/untiered")), snapshot);
    assert!(std::fs::read(m2.path("held-before")).expect("read") == held);
}

fn fetched(m: &Mounted, env: &[(&str, String)]) -> u64 {
    tier_status(m, env)["fetched_bytes"]
        .as_u64()
        .expect("fetched")
}

/// Writes a file and syncs it: committed, so the next checkpoint holds it.
pub(crate) fn write_synced(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    let mut file = std::fs::File::create(path).expect("create");
    file.write_all(bytes).expect("write");
    file.sync_all().expect("fsync");
}

#[test]
fn recall_fetches_a_tree_and_a_pinned_tree_stays_in_the_cache() {
    let server = S3Server::start();
    let env = server.env();
    let location = server.url("tiers/pinned");
    let m = Mounted::new_with_env(
        &[
            "--tier",
            &location,
            "--cache-size",
            "4M",
            "--checkpoint-interval",
            "1",
        ],
        &[],
        &env,
    );
    std::fs::create_dir_all(m.path("project/sub")).expect("mkdir");
    let a = noise(12 << 20, 21);
    let b = noise(6 << 20, 22);
    write_synced(&m.path("project/a"), &a);
    write_synced(&m.path("project/sub/b"), &b);
    write_synced(&m.path("other"), &noise(40 << 20, 23));
    wait_until_checkpointed(&m, &env, 0);
    let evicted = || {
        tier_status(&m, &env)["cache_used"]
            .as_u64()
            .unwrap_or(u64::MAX)
            <= 4 << 20
    };
    wait_for("the cache within its size", 30, evicted);

    // Recall fetches the whole tree now, verified.
    let project = m.path("project");
    let out = ok_env(&["tier", "recall", project.to_str().expect("utf-8")], &env);
    assert!(out.contains("recalled") && out.contains("2 files"), "{out}");

    // Pinned, it stays: reads after many eviction passes fetch nothing.
    let out = ok_env(&["tier", "pin", project.to_str().expect("utf-8")], &env);
    assert!(out.contains("kept in the cache"), "{out}");
    assert_eq!(tier_status(&m, &env)["pins"][0], "project");
    std::thread::sleep(std::time::Duration::from_secs(3));
    drop_caches();
    let before = fetched(&m, &env);
    assert!(std::fs::read(m.path("project/a")).expect("read") == a);
    assert!(std::fs::read(m.path("project/sub/b")).expect("read") == b);
    assert_eq!(
        fetched(&m, &env),
        before,
        "a pinned tree is read from the cache"
    );

    // The pin follows the tree through a rename.
    std::fs::rename(m.path("project"), m.path("renamed")).expect("rename");
    write_synced(&m.path("renamed/new"), &noise(3 << 20, 24));
    std::thread::sleep(std::time::Duration::from_secs(3));
    drop_caches();
    let before = fetched(&m, &env);
    assert!(std::fs::read(m.path("renamed/sub/b")).expect("read") == b);
    assert_eq!(fetched(&m, &env), before);

    // Unpinned, it is evicted again like anything else.
    let renamed = m.path("renamed");
    let out = ok_env(&["tier", "unpin", renamed.to_str().expect("utf-8")], &env);
    assert!(out.contains("unpinned"), "{out}");
    wait_for("the cache within its size again", 30, evicted);
    assert!(
        tier_status(&m, &env)["pins"]
            .as_array()
            .expect("pins")
            .is_empty()
    );

    // Bad input: a path in a snapshot, a path off any share, a tree that is not pinned.
    let mnt = m.mnt.to_str().expect("utf-8").to_owned();
    ok_env(&["snapshot", "create", "s", "--mount", &mnt], &env);
    let snap = m.path(".snapshots/s/renamed");
    let out = snapfs_env(&["tier", "pin", snap.to_str().expect("utf-8")], &env);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("in a snapshot"),
        "{err}"
    );
    let out = snapfs_env(&["tier", "recall", "/tmp"], &env);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not on a mounted snapfs share"), "{err}");
    let out = snapfs_env(&["tier", "unpin", renamed.to_str().expect("utf-8")], &env);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not pinned"), "{err}");
}

#[test]
fn an_object_lost_from_the_bucket_gives_eio_naming_the_file_and_verify_names_every_path() {
    let remote = tempfile::tempdir_in("/var/tmp").expect("tempdir");
    let share = remote.path().join("share");
    let location = share.to_str().expect("utf-8").to_owned();
    let m = Mounted::new_with(
        &[
            "--tier",
            &location,
            "--cache-size",
            "4M",
            "--checkpoint-interval",
            "1",
        ],
        &[],
    );
    let mnt = m.mnt.to_str().expect("utf-8").to_owned();
    std::fs::create_dir(m.path("dir")).expect("mkdir");
    write_synced(&m.path("dir/big"), &noise(40 << 20, 51));
    write_synced(&m.path("small"), b"not in the lost packs");
    ok_env(&["snapshot", "create", "s1", "--mount", &mnt], &[]);
    wait_until_checkpointed(&m, &[], 0);
    wait_for("the packs evicted", 30, || {
        tier_status(&m, &[])["cache_used"]
            .as_u64()
            .unwrap_or(u64::MAX)
            <= 4 << 20
    });
    // One pack object deleted, another damaged, in the bucket.
    let mut packs: Vec<std::path::PathBuf> = std::fs::read_dir(share.join("packs"))
        .expect("packs")
        .flat_map(|epoch| std::fs::read_dir(epoch.expect("epoch").path()).expect("epoch dir"))
        .map(|pack| pack.expect("pack").path())
        .filter(|pack| pack.metadata().expect("stat").len() > 1 << 20)
        .collect();
    packs.sort();
    assert!(packs.len() >= 2, "{packs:?}");
    std::fs::remove_file(&packs[0]).expect("delete an object");
    let mut bytes = std::fs::read(&packs[1]).expect("read");
    for byte in &mut bytes[4096..8192] {
        *byte ^= 0x5a;
    }
    std::fs::write(&packs[1], bytes).expect("damage an object");

    drop_caches();
    let err = std::fs::read(m.path("dir/big")).expect_err("EIO, never wrong bytes");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    assert!(m.log().contains("reading /dir/big failed"), "{}", m.log());
    let err = std::fs::read(m.path(".snapshots/s1/dir/big")).expect_err("EIO");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    assert!(
        m.log().contains("reading a file of snapshot s1 failed"),
        "{}",
        m.log()
    );
    assert_eq!(
        std::fs::read(m.path("small")).expect("the rest reads"),
        b"not in the lost packs"
    );

    let out = snapfs_env(&["verify", "--mount", &mnt], &[]);
    assert!(!out.status.success(), "verify finds the damage");
    let report =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    for named in ["live:/dir/big", "snapshot s1:/dir/big", "no such object"] {
        assert!(report.contains(named), "{named}: {report}");
    }
    assert!(!report.contains("/small"), "{report}");
}

/// Bytes of pack objects in a share tiered to a directory.
pub(crate) fn remote_pack_bytes(share: &Path) -> u64 {
    let mut total = 0;
    for epoch in std::fs::read_dir(share.join("packs")).expect("packs") {
        for pack in std::fs::read_dir(epoch.expect("epoch").path()).expect("epoch dir") {
            total += pack.expect("pack").metadata().expect("stat").len();
        }
    }
    total
}

#[test]
fn gc_frees_the_object_store_once_no_kept_checkpoint_names_a_pack() {
    // A directory on "another disk" is a tier location like a bucket.
    let remote = tempfile::tempdir_in("/var/tmp").expect("tempdir");
    let share = remote.path().join("share");
    let location = share.to_str().expect("utf-8").to_owned();
    let m = Mounted::new_with(&["--tier", &location, "--checkpoint-interval", "1"], &[]);
    let mnt = m.mnt.to_str().expect("utf-8").to_owned();
    write_synced(&m.path("big"), &noise(40 << 20, 31));
    write_synced(&m.path("small"), b"kept");
    let mut seq = wait_until_checkpointed(&m, &[], 0);
    let before = remote_pack_bytes(&share);
    assert!(before >= 40 << 20, "{before}");

    std::fs::remove_file(m.path("big")).expect("rm");
    ok_env(&["gc", "--mount", &mnt], &[]);
    // The dropped packs' objects stay while a kept checkpoint (the newest three) names them.
    seq = wait_until_checkpointed(&m, &[], seq);
    assert!(remote_pack_bytes(&share) >= before);
    for i in 0..3 {
        ok_env(
            &[
                "snapshot",
                "create",
                &format!("after-gc-{i}"),
                "--mount",
                &mnt,
            ],
            &[],
        );
        seq = wait_until_checkpointed(&m, &[], seq);
    }
    let after = remote_pack_bytes(&share);
    assert!(after + (30 << 20) < before, "{before} -> {after}");

    let (_new_host, m2) = move_to_a_new_host(m, &location, &[]);
    assert_eq!(std::fs::read(m2.path("small")).expect("read"), b"kept");
    assert!(!m2.path("big").exists());
}
