//! One writer per tiered share, against a real S3 server (SeaweedFS, which enforces
//! conditional writes): a second host is refused while the first holds the lease, takes it
//! over with `--force` and fences the first, or takes it once a dead holder's lease expired;
//! and a share written before leases existed (format 1, a fixture) attaches and upgrades.

use std::path::Path;

use crate::harness::{Mounted, wait_for};
use crate::s3_server::S3Server;
use crate::tier::{attach, tier_status, wait_until_checkpointed, write_synced};
use crate::vault::{ok_env, snapfs_env};

/// `snapfs attach` into `to`, which must fail; returns its error output.
fn attach_err(location: &str, to: &Path, env: &[(&str, String)]) -> String {
    let out = snapfs_env(&["attach", location, to.to_str().expect("utf-8")], env);
    assert!(!out.status.success(), "attach should have been refused");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_second_writer_is_refused_until_it_takes_over_and_the_first_is_fenced() {
    let server = S3Server::start();
    let env = server.env();
    let location = server.url("tiers/leased");
    let mut first = Mounted::new_with_env(
        &[
            "--tier",
            &location,
            "--checkpoint-interval",
            "1",
            "--lease-timeout",
            "4",
        ],
        &[],
        &env,
    );
    write_synced(&first.path("before"), b"written by the first host");
    wait_until_checkpointed(&first, &env, 0);
    assert_eq!(tier_status(&first, &env)["lease"], 1);

    // A second host, while the first is alive: refused, and nothing is left behind.
    let host = tempfile::tempdir_in("/var/tmp").expect("tempdir");
    let store = host.path().join("store");
    let err = attach_err(&location, &store, &env);
    assert!(
        err.contains("is written by host") && err.contains("--force"),
        "{err}"
    );
    assert!(!store.exists(), "a refused attach leaves nothing");

    // It takes the share over: the first host is fenced.
    let out = ok_env(
        &[
            "attach",
            &location,
            store.to_str().expect("utf-8"),
            "--force",
        ],
        &env,
    );
    assert!(out.contains("writer lease 2"), "{out}");
    wait_for("the first host to find itself fenced", 30, || {
        tier_status(&first, &env)["fenced"].is_string()
    });
    // It goes on serving from its disk, but nothing it does reaches the share.
    std::fs::write(first.path("after-takeover"), b"lost").expect("write");
    let mnt = first.mnt.to_str().expect("utf-8").to_owned();
    ok_env(&["snapshot", "create", "late", "--mount", &mnt], &env);
    std::thread::sleep(std::time::Duration::from_secs(3));
    let status = tier_status(&first, &env);
    assert!(
        status["fenced"]
            .as_str()
            .is_some_and(|why| why.contains("taken over by host")),
        "{status}"
    );

    let mut second = Mounted::open_with_env(store, &env);
    assert_eq!(
        std::fs::read(second.path("before")).expect("read"),
        b"written by the first host"
    );
    assert!(!second.path("after-takeover").exists());
    assert!(!second.path(".snapshots/late").exists());
    write_synced(&second.path("from-the-second"), b"new writer");
    wait_until_checkpointed(&second, &env, 0);

    // The first host, remounted, refuses: its store lost the share.
    first.unmount();
    let again = tempfile::tempdir().expect("mountpoint");
    let out = snapfs_env(
        &[
            "mount",
            first.store.to_str().expect("utf-8"),
            again.path().to_str().expect("utf-8"),
        ],
        &env,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("taken over by host"), "{err}");

    // The share is what the second host wrote, whatever the first published late.
    second.unmount();
    let third = tempfile::tempdir_in("/var/tmp").expect("tempdir");
    let store = third.path().join("store");
    attach(&location, &store, &env);
    let m3 = Mounted::open_with_env(store, &env);
    assert_eq!(
        std::fs::read(m3.path("from-the-second")).expect("read"),
        b"new writer"
    );
    assert!(!m3.path("after-takeover").exists());
    assert!(!m3.path(".snapshots/late").exists());
}

#[test]
fn a_dead_writers_lease_expires_after_its_timeout() {
    let server = S3Server::start();
    let env = server.env();
    let location = server.url("tiers/expiring");
    let mut dead = Mounted::new_with_env(
        &[
            "--tier",
            &location,
            "--checkpoint-interval",
            "1",
            "--lease-timeout",
            "3",
        ],
        &[],
        &env,
    );
    write_synced(&dead.path("kept"), b"checkpointed before the crash");
    wait_until_checkpointed(&dead, &env, 0);
    dead.kill9();

    let host = tempfile::tempdir_in("/var/tmp").expect("tempdir");
    let store = host.path().join("store");
    let err = attach_err(&location, &store, &env);
    assert!(err.contains("is written by host"), "{err}");
    // No renewal for the timeout (3 s, measured by the server's clock): free.
    let mut attached = false;
    wait_for("the dead host's lease to expire", 30, || {
        attached = snapfs_env(&["attach", &location, store.to_str().expect("utf-8")], &env)
            .status
            .success();
        attached
    });
    let m = Mounted::open_with_env(store, &env);
    assert_eq!(
        std::fs::read(m.path("kept")).expect("read"),
        b"checkpointed before the crash"
    );
}

/// Copies a fixture directory tree.
pub(crate) fn copy_tree(from: &Path, to: &Path) {
    let mut pending = vec![(from.to_path_buf(), to.to_path_buf())];
    while let Some((src, dst)) = pending.pop() {
        std::fs::create_dir_all(&dst).expect("mkdir");
        for entry in std::fs::read_dir(&src).expect("readdir") {
            let entry = entry.expect("entry");
            let target = dst.join(entry.file_name());
            if entry.file_type().expect("type").is_dir() {
                pending.push((entry.path(), target));
            } else {
                std::fs::copy(entry.path(), &target).expect("copy");
            }
        }
    }
}

/// `tests/fixtures/tier-v1` is a share tiered to a directory by the version-5 release (tier
/// format 1: no leases, checkpoints named by number alone), and `store-v5-tiered` the store
/// that wrote it: a file changed after snapshot `v1`, a symlink, incompressible data.
#[test]
fn a_share_tiered_before_leases_upgrades_and_attaches() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let tmp = tempfile::tempdir_in("/var/tmp").expect("tempdir");
    let remote = tmp.path().join("remote");
    copy_tree(&fixtures.join("tier-v1"), &remote);
    let store = tmp.path().join("store");
    copy_tree(&fixtures.join("store-v5-tiered"), &store);
    let config = store.join("snapfs-store.json");
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        text.replace("/tmp/fx/remote", remote.to_str().expect("utf-8")),
    )
    .expect("point the store at its copied share");

    // A new host attaches the old share as it is (format-1 checkpoint names).
    let early = tmp.path().join("early");
    attach(remote.to_str().expect("utf-8"), &early, &[]);
    let expect = |m: &Mounted| {
        assert_eq!(
            std::fs::read_to_string(m.path("docs/readme.txt")).expect("read"),
            "written by tier format 1\nchanged after v1\n"
        );
        assert_eq!(
            std::fs::read_to_string(m.path(".snapshots/v1/docs/readme.txt")).expect("read"),
            "written by tier format 1\n"
        );
        assert_eq!(
            std::fs::read_link(m.path("docs/link")).expect("readlink"),
            Path::new("readme.txt")
        );
        let random = std::fs::read(m.path("docs/random.bin")).expect("read");
        assert_eq!(random.len(), 20000);
        assert_eq!(
            random,
            std::fs::read(m.path(".snapshots/v1/docs/random.bin")).expect("read")
        );
    };
    let mut m = Mounted::open(early);
    expect(&m);
    m.unmount();

    // The old store, mounted by this release, upgrades and takes the lease back (the early
    // attach released it at unmount); the share's marker is rewritten as format 3.
    let mut m = Mounted::open(store.clone());
    expect(&m);
    std::fs::write(m.path("docs/after-upgrade"), b"new").expect("write");
    m.unmount();
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config).expect("config")).expect("json");
    assert_eq!(config["format_version"], 6);
    let marker: serde_json::Value =
        serde_json::from_slice(&std::fs::read(remote.join("snapfs-tier.json")).expect("marker"))
            .expect("json");
    assert_eq!(marker["version"], 3);
    // Upgraded, the share can be followed.
    let follower = Mounted::follow(remote.to_str().expect("utf-8"), &[], &[]);
    assert_eq!(
        std::fs::read(follower.path("docs/after-upgrade")).expect("read"),
        b"new"
    );
    drop(follower);

    let late = tmp.path().join("late");
    attach(remote.to_str().expect("utf-8"), &late, &[]);
    let m = Mounted::open(late);
    expect(&m);
    assert_eq!(
        std::fs::read(m.path("docs/after-upgrade")).expect("read"),
        b"new"
    );
}

/// On a real server that accepts conditional writes and ignores them (`rclone serve s3`), the
/// lease cannot keep a second writer out: `init --tier` and `attach` refuse, saying why and
/// leaving nothing, unless the admin vouches for a single host. So does `vault init`.
#[test]
fn a_server_that_ignores_conditional_writes_is_refused_without_single_host() {
    let server = crate::s3_server::IgnoringS3Server::start();
    let env = server.env();
    let location = server.url("unfenced");
    let tmp = tempfile::tempdir_in("/var/tmp").expect("tempdir");
    let store = tmp.path().join("store");
    let store_arg = store.to_str().expect("utf-8");

    let out = snapfs_env(&["init", store_arg, "--tier", &location], &env);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "init was accepted");
    assert!(
        err.contains("does not enforce conditional writes") && err.contains("--single-host"),
        "{err}"
    );
    assert!(!store.exists(), "a refused init leaves nothing");

    let m = Mounted::new_with_env(
        &[
            "--tier",
            &location,
            "--single-host",
            "--checkpoint-interval",
            "1",
        ],
        &[],
        &env,
    );
    write_synced(&m.path("kept"), b"on a single host");
    wait_until_checkpointed(&m, &env, 0);
    drop(m);

    let host = tmp.path().join("new-host");
    let err = attach_err(&location, &host, &env);
    assert!(err.contains("--single-host"), "{err}");
    assert!(!host.exists());
    ok_env(
        &[
            "attach",
            &location,
            host.to_str().expect("utf-8"),
            "--single-host",
        ],
        &env,
    );
    let m = Mounted::open_with_env(host, &env);
    assert_eq!(
        std::fs::read(m.path("kept")).expect("read"),
        b"on a single host"
    );

    let vault = server.url("vault");
    let out = snapfs_env(&["vault", "init", &vault, "--no-encrypt"], &env);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("--single-host"),
        "{err}"
    );
    ok_env(
        &["vault", "init", &vault, "--no-encrypt", "--single-host"],
        &env,
    );
}
