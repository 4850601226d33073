//! Followers (`snapfs mount --follow`): a tiered share served read-only from its object store
//! alongside its writer, against a real S3 server (SeaweedFS) and a directory tier: the
//! follower serves the latest checkpoint and every snapshot, refuses every change, moves to new
//! checkpoints while files stay open on the old one, and its reader's lease keeps the writer's
//! gc from deleting what it reads.

use std::io::Read as _;
use std::os::unix::fs::FileExt;

use crate::harness::{Mounted, noise, wait_for};
use crate::s3_server::S3Server;
use crate::tier::{drop_caches, remote_pack_bytes, wait_until_checkpointed, write_synced};
use crate::vault::{ok_env, populate, snapfs_env, tree_state};

fn snapshot(m: &Mounted, name: &str, env: &[(&str, String)]) {
    let mnt = m.mnt.to_str().expect("utf-8");
    ok_env(&["snapshot", "create", name, "--mount", mnt], env);
}

#[test]
fn followers_serve_the_share_read_only_and_follow_its_checkpoints() {
    let server = S3Server::start();
    let env = server.env();
    let location = server.url("tiers/followed");
    let m = Mounted::new_with_env(
        &["--tier", &location, "--checkpoint-interval", "1"],
        &[],
        &env,
    );
    populate(&m);
    let old = noise(3 << 20, 41);
    write_synced(&m.path("doc"), &old);
    snapshot(&m, "first", &env);
    let seq = wait_until_checkpointed(&m, &env, 0);

    // Any number of hosts: two followers, each with its own cache.
    let f1 = Mounted::follow(&location, &env, &[]);
    let f2 = Mounted::follow(&location, &env, &["--snapdir", "visible"]);
    for f in [&f1, &f2] {
        assert_eq!(tree_state(&f.mnt), tree_state(&m.mnt), "the live share");
        assert_eq!(
            tree_state(&f.path(".snapshots/first")),
            tree_state(&m.path(".snapshots/first"))
        );
    }
    // Read-only, whatever is tried.
    let refused = std::fs::write(f1.path("doc"), b"x").expect_err("a follower refuses writes");
    assert_eq!(refused.raw_os_error(), Some(libc::EROFS), "{refused}");
    let refused = std::fs::create_dir(f1.path(".snapshots/mine")).expect_err("no snapshots");
    assert_eq!(refused.raw_os_error(), Some(libc::EROFS), "{refused}");
    let refused = std::fs::remove_file(f1.path("doc")).expect_err("no deletes");
    assert_eq!(refused.raw_os_error(), Some(libc::EROFS), "{refused}");
    let out = snapfs_env(
        &[
            "snapshot",
            "create",
            "mine",
            "--mount",
            f1.mnt.to_str().expect("utf-8"),
        ],
        &env,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("read-only follower"),
        "{err}"
    );

    // A file open on the follower while the writer changes it in place...
    let mut open = std::fs::File::open(f1.path("doc")).expect("open on the follower");
    let mut head = vec![0u8; 4096];
    open.read_exact(&mut head).expect("read the head");
    assert!(head[..] == old[..4096]);
    // ...snapshots, and deletes the first snapshot.
    let new = noise(2 << 20, 42);
    write_synced(&m.path("doc"), &new);
    std::fs::write(m.path("added"), b"after first").expect("write");
    snapshot(&m, "second", &env);
    ok_env(
        &[
            "snapshot",
            "delete",
            "first",
            "--mount",
            m.mnt.to_str().expect("utf-8"),
        ],
        &env,
    );
    wait_until_checkpointed(&m, &env, seq);
    for f in [&f1, &f2] {
        wait_for("the follower shows the new checkpoint", 30, || {
            f.path(".snapshots/second").exists() && !f.path(".snapshots/first").exists()
        });
        assert_eq!(tree_state(&f.mnt), tree_state(&m.mnt), "the live share");
        assert_eq!(
            tree_state(&f.path(".snapshots/second")),
            tree_state(&m.path(".snapshots/second"))
        );
        assert!(std::fs::read(f.path("doc")).expect("read") == new);
    }
    // ...reads what the file is now, as on a local file system (a deleted file reads on what it
    // was: see the next test).
    let mut now = vec![0u8; new.len()];
    open.read_exact_at(&mut now, 0).expect("read on");
    assert!(now == new, "the open file reads the new content, whole");
    let mut past_end = [0u8; 16];
    assert_eq!(
        open.read_at(&mut past_end, new.len() as u64).expect("read"),
        0
    );
    drop(open);

    // What a follower cached survives its restart: the cache directory is kept.
    let mut f1 = f1;
    let packs = f1.dir.path().join("cache/packs");
    let cached = || -> u64 {
        std::fs::read_dir(&packs)
            .expect("cached packs")
            .filter_map(|e| e.ok()?.metadata().ok())
            .filter(|meta| meta.is_file())
            .map(|meta| std::os::unix::fs::MetadataExt::blocks(&meta) * 512)
            .sum()
    };
    let before = cached();
    assert!(before >= 2 << 20, "what was read is cached: {before}");
    f1.unmount();
    f1.mount();
    assert!(cached() >= before, "kept across a restart");
    assert!(std::fs::read(f1.path("doc")).expect("read") == new);

    // A follower with `--snapdir visible` lists `.snapshots`, and nothing the writer does not.
    let listed: Vec<String> = std::fs::read_dir(&f2.mnt)
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(listed.contains(&".snapshots".to_owned()), "{listed:?}");
}

#[test]
fn gc_keeps_what_a_follower_reads_until_it_moves_on() {
    // A directory on "another disk" is a tier location like a bucket.
    let remote = tempfile::tempdir_in("/var/tmp").expect("tempdir");
    let share = remote.path().join("share");
    let location = share.to_str().expect("utf-8").to_owned();
    let m = Mounted::new_with(&["--tier", &location, "--checkpoint-interval", "1"], &[]);
    let mnt = m.mnt.to_str().expect("utf-8").to_owned();
    let big = noise(40 << 20, 43);
    write_synced(&m.path("big"), &big);
    let mut seq = wait_until_checkpointed(&m, &[], 0);
    let before = remote_pack_bytes(&share);
    assert!(before >= 40 << 20, "{before}");

    let f = Mounted::follow(&location, &[], &["--cache-size", "4M"]);
    // Open, and not read yet: its data is in the object store only.
    let open = std::fs::File::open(f.path("big")).expect("open on the follower");
    let readers = share.join("readers");
    let leases = || {
        std::fs::read_dir(&readers)
            .expect("readers")
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".json"))
            })
            .count()
    };
    assert_eq!(leases(), 1, "the follower's lease");

    // The writer deletes the file and collects it; a gc would delete the packs' objects once
    // no checkpoint kept names them (three checkpoints later).
    std::fs::remove_file(m.path("big")).expect("rm");
    ok_env(&["gc", "--mount", &mnt], &[]);
    for i in 0..4 {
        snapshot(&m, &format!("after-gc-{i}"), &[]);
        seq = wait_until_checkpointed(&m, &[], seq);
    }
    wait_for("the follower moved on", 30, || {
        f.path(".snapshots/after-gc-3").exists()
    });
    assert!(!f.path("big").exists(), "the new checkpoint has no big");
    assert!(
        remote_pack_bytes(&share) >= before,
        "the follower's lease kept the packs"
    );
    // The file opened on the old checkpoint reads whole, from the object store.
    drop_caches();
    let mut read = vec![0u8; big.len()];
    open.read_exact_at(&mut read, 0).expect("read the old file");
    assert!(read == big, "byte for byte");
    drop(open);

    // Closed: the old checkpoint's copy goes, the lease moves on, and the next checkpoints
    // free the object store.
    wait_for("the old copy closed", 30, || {
        std::fs::read_dir(f.dir.path().join("cache"))
            .expect("cache")
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().starts_with("checkpoint-"))
            })
            .count()
            == 1
    });
    let mut i = 0;
    wait_for("the packs deleted", 60, || {
        i += 1;
        snapshot(&m, &format!("later-{i}"), &[]);
        seq = wait_until_checkpointed(&m, &[], seq);
        remote_pack_bytes(&share) + (30 << 20) < before
    });

    // The cache directory is the follower's alone.
    let other = m.dir.path().join("other");
    std::fs::create_dir(&other).expect("mkdir");
    let out = snapfs_env(
        &[
            "mount",
            &location,
            other.to_str().expect("utf-8"),
            "--follow",
            "--cache-dir",
            f.dir.path().join("cache").to_str().expect("utf-8"),
        ],
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a second follower on one cache");
    assert!(err.contains("in use"), "{err}");

    // A clean unmount gives the reader's lease up.
    drop(f);
    assert_eq!(leases(), 0);
}

#[test]
fn following_what_is_no_followable_share_is_a_clear_error() {
    let tmp = tempfile::tempdir_in("/var/tmp").expect("tempdir");
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).expect("mkdir");
    let follow = |location: &str| {
        let out = snapfs_env(
            &[
                "mount",
                location,
                mnt.to_str().expect("utf-8"),
                "--follow",
                "--cache-dir",
                tmp.path().join("cache").to_str().expect("utf-8"),
            ],
            &[],
        );
        assert!(!out.status.success(), "{location}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    let err = follow(empty.to_str().expect("utf-8"));
    assert!(err.contains("holds no tiered snapfs share"), "{err}");

    // A share last written by a format-2 writer, whose gc knows no followers.
    let old = tmp.path().join("old");
    std::fs::create_dir(&old).expect("mkdir");
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/tier-v2/snapfs-tier.json"
        ),
        old.join("snapfs-tier.json"),
    )
    .expect("copy the fixture");
    let err = follow(old.to_str().expect("utf-8"));
    assert!(err.contains("older snapfs"), "{err}");
    assert!(!crate::harness::is_mounted(&mnt));
}
