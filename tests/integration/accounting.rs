//! Space accounting through a real mount: the figures `snapfs snapshot list --json` and
//! `snapfs status --json` read from the tables kept up to date equal those a full walk of every
//! snapshot computes (`--full-walk`, hidden), after every kind of change and after `kill -9`
//! in the middle of accounting updates.

use std::fs;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{Mounted, noise, snapfs, snapfs_ok};

fn mnt(m: &Mounted) -> &str {
    m.mnt.to_str().expect("utf-8 path")
}

/// Each listed snapshot's name and unique bytes, kept and walked.
fn list(m: &Mounted, walk: bool) -> Vec<(String, Value)> {
    let mut args = vec!["snapshot", "list", "--json", "--mount", mnt(m)];
    if walk {
        args.push("--full-walk");
    }
    let out: Value = serde_json::from_str(&snapfs_ok(&args)).expect("json");
    out.as_array()
        .expect("a list")
        .iter()
        .map(|s| {
            (
                s["name"].as_str().expect("name").to_owned(),
                s["unique_bytes"].clone(),
            )
        })
        .collect()
}

fn space(m: &Mounted, walk: bool) -> Value {
    let mut args = vec!["status", "--json", "--mount", mnt(m)];
    if walk {
        args.push("--full-walk");
    }
    let out: Value = serde_json::from_str(&snapfs_ok(&args)).expect("json");
    out["space"].clone()
}

pub fn assert_figures_match(m: &Mounted, after: &str) {
    assert_eq!(list(m, false), list(m, true), "snapshot list after {after}");
    assert_eq!(space(m, false), space(m, true), "status after {after}");
}

fn snapshot(m: &Mounted, args: &[&str]) {
    let mut all = vec!["snapshot"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--mount", mnt(m)]);
    snapfs_ok(&all);
}

fn write(path: &Path, data: &[u8]) {
    fs::write(path, data).expect("write");
}

#[test]
fn list_and_status_match_a_full_walk_after_every_kind_of_change() {
    let mut m = Mounted::new_with(&["--block-size", "4096"], &[]);
    snapfs_ok(&["policy", "set", "--soft-delete", "7d", "--mount", mnt(&m)]);
    fs::create_dir(m.path("d")).expect("mkdir");
    write(&m.path("d/a"), &noise(40_000, 1));
    write(&m.path("b"), &noise(20_000, 2));
    fs::copy(m.path("b"), m.path("d/b-copy")).expect("copy");
    assert_figures_match(&m, "the first writes");
    snapshot(&m, &["create", "s1"]);
    assert_figures_match(&m, "create s1");

    write(&m.path("d/a"), &noise(30_000, 3));
    let f = fs::OpenOptions::new()
        .write(true)
        .open(m.path("b"))
        .expect("open");
    f.set_len(5_000).expect("truncate");
    drop(f);
    fs::remove_file(m.path("d/b-copy")).expect("unlink");
    assert_figures_match(&m, "overwrite, truncate, unlink");
    snapshot(&m, &["create", "s2"]);
    write(&m.path("c"), &noise(12_000, 4));
    snapshot(&m, &["create", "s3"]);
    assert_figures_match(&m, "create s2, s3");

    snapshot(&m, &["delete", "s2"]);
    assert_figures_match(&m, "soft delete s2");
    snapshot(&m, &["undelete", "s2"]);
    assert_figures_match(&m, "undelete s2");
    snapshot(&m, &["delete", "s1"]);
    snapshot(&m, &["purge", "s1"]);
    assert_figures_match(&m, "delete and purge s1");
    snapfs_ok(&["gc", "--mount", mnt(&m)]);
    assert_figures_match(&m, "gc");
    snapfs_ok(&["restore", "s2", "d/a", "--overwrite", "--mount", mnt(&m)]);
    assert_figures_match(&m, "restore");
    snapfs_ok(&["policy", "set", "--soft-delete", "off", "--mount", mnt(&m)]);
    snapshot(&m, &["delete", "s3"]);
    assert_figures_match(&m, "delete s3 now");

    m.remount();
    assert_figures_match(&m, "remount");
    assert!(
        !m.log().contains("space accounting"),
        "the tables stayed exact: {}",
        m.log()
    );
}

/// A writer changes files while snapshots are created and deleted and gc runs, and the daemon
/// is killed with SIGKILL at a random moment among them; after the remount the kept figures
/// are still exact (no rebuild was needed) and equal a full walk.
#[test]
fn figures_stay_exact_across_kill9_during_accounting_updates() {
    let mut m = Mounted::new_with(&["--block-size", "4096"], &[]);
    snapfs_ok(&["policy", "set", "--soft-delete", "7d", "--mount", mnt(&m)]);
    for round in 0..4u64 {
        let dir = m.mnt.clone();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let path = dir.join(format!("f{}", i % 7));
                    if fs::write(
                        &path,
                        noise(((i * 7919) % 30_000) as usize, round * 1000 + i),
                    )
                    .is_err()
                    {
                        break;
                    }
                    if i % 5 == 4 {
                        let _ = fs::remove_file(dir.join(format!("f{}", (i + 3) % 7)));
                    }
                    i += 1;
                }
            })
        };
        // SIGKILL from another thread, at a moment that falls among creates, deletes and gcs.
        let kill_after = Duration::from_millis(300 + (round * 577) % 900);
        let pid = nix::unistd::Pid::from_raw(i32::try_from(m.daemon_pid()).expect("pid"));
        let killer = std::thread::spawn(move || {
            std::thread::sleep(kill_after);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        });
        let mut n = 0;
        let mut created = 0;
        while !killer.is_finished() {
            let name = format!("r{round}n{n}");
            if snapfs(&["snapshot", "create", &name, "--mount", mnt(&m)])
                .status
                .success()
            {
                created += 1;
            }
            if n % 2 == 1 {
                let old = format!("r{round}n{}", n - 1);
                let _ = snapfs(&["snapshot", "delete", &old, "--mount", mnt(&m)]);
            }
            if n % 3 == 2 {
                let _ = snapfs(&["gc", "--mount", mnt(&m)]);
            }
            n += 1;
        }
        killer.join().expect("killer");
        assert!(
            created > 0,
            "round {round}: some snapshot was created before the kill"
        );
        eprintln!("round {round}: {created} snapshots created, {n} attempted, then SIGKILL");
        // The writer stops before the dead mount is detached: a write after that would land in
        // the bare mountpoint, which the next mount then refuses as not empty.
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        writer.join().expect("writer");
        m.kill9();
        m.mount();
        assert!(
            !m.log().contains("space accounting"),
            "round {round}: the tables stayed exact: {}",
            m.log()
        );
        assert_figures_match(&m, &format!("kill -9 in round {round}"));
    }
}
