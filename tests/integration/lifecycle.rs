//! The snapshot lifecycle against a real mount: holds, soft delete, schedules and retention
//! driven by the daemon's injected clock, catch-up after downtime, policy changes without
//! remount, jobs and the failure hook, and `destroy`.

use std::collections::BTreeSet;
use std::fs;
use std::time::Duration;

use crate::harness::{Mounted, noise, snapfs_err, snapfs_ok, wait_for};

/// 2025-01-01T00:00:00Z.
const YEAR_START: i64 = 1_735_689_600;
const HOUR: i64 = 3600;

fn control(m: &Mounted, text: &str) -> std::io::Result<()> {
    fs::write(m.path(".snapshots/.control"), text)
}

fn names(json: &str) -> BTreeSet<String> {
    let rows: serde_json::Value = serde_json::from_str(json).expect("json");
    rows.as_array()
        .expect("array")
        .iter()
        .map(|r| r["name"].as_str().expect("name").to_owned())
        .collect()
}

fn listed(m: &Mounted, extra: &[&str]) -> BTreeSet<String> {
    let mnt = m.mnt.to_str().unwrap();
    let mut args = vec!["snapshot", "list", "--mount", mnt, "--json"];
    args.extend_from_slice(extra);
    names(&snapfs_ok(&args))
}

fn auto_name(month: u32, day: u32, hour: u32, year: u32) -> String {
    format!("auto-{year}-{month:02}-{day:02}T{hour:02}00Z")
}

#[test]
fn a_held_snapshot_cannot_be_deleted_by_anyone() {
    let m = Mounted::new_with(&[], &["--test-clock", &YEAR_START.to_string()]);
    let mnt = m.mnt.to_str().unwrap().to_owned();
    snapfs_ok(&["snapshot", "create", "keep", "--mount", &mnt]);
    snapfs_ok(&["snapshot", "hold", "keep", "--mount", &mnt]);
    let err = snapfs_err(&["snapshot", "delete", "keep", "--mount", &mnt]);
    assert!(err.contains("held"), "{err}");
    let rmdir = fs::remove_dir(m.path(".snapshots/keep")).expect_err("held");
    assert_eq!(rmdir.raw_os_error(), Some(libc::EPERM));
    let write = control(&m, "delete keep\n").expect_err("held");
    assert_eq!(write.raw_os_error(), Some(libc::EPERM));
    // A hold until a time ends by itself.
    snapfs_ok(&[
        "snapshot",
        "hold",
        "keep",
        "--until",
        "2025-01-02",
        "--mount",
        &mnt,
    ]);
    assert!(snapfs_err(&["snapshot", "delete", "keep", "--mount", &mnt]).contains("held until"));
    control(&m, &format!("clock {}\n", YEAR_START + 24 * HOUR)).unwrap();
    assert!(m.path(".snapshots/keep").exists());
    snapfs_ok(&["snapshot", "delete", "keep", "--mount", &mnt]);
    // Gone within moments, although the kernel had it cached (for up to a minute).
    wait_for("the kernel still shows it", 2, || {
        !m.path(".snapshots/keep").exists()
    });
    // Released by hand.
    snapfs_ok(&["snapshot", "create", "other", "--mount", &mnt]);
    snapfs_ok(&["snapshot", "hold", "other", "--mount", &mnt]);
    snapfs_ok(&["snapshot", "release", "other", "--mount", &mnt]);
    fs::remove_dir(m.path(".snapshots/other")).unwrap();
    assert!(listed(&m, &[]).is_empty());
}

#[test]
fn soft_delete_keeps_a_snapshot_recoverable_until_purged() {
    let m = Mounted::new_with(&[], &["--test-clock", &YEAR_START.to_string()]);
    let mnt = m.mnt.to_str().unwrap().to_owned();
    snapfs_ok(&["policy", "set", "--soft-delete", "14d", "--mount", &mnt]);
    let data = noise(4 << 20, 7);
    fs::write(m.path("f"), &data).unwrap();
    snapfs_ok(&["snapshot", "create", "s", "--mount", &mnt]);
    fs::remove_file(m.path("f")).unwrap();
    let out = snapfs_ok(&["snapshot", "delete", "s", "--mount", &mnt]);
    assert!(out.contains("recoverable"), "{out}");
    assert!(!m.path(".snapshots/s").exists());
    assert!(listed(&m, &[]).is_empty());
    assert_eq!(listed(&m, &["--deleted"]), BTreeSet::from(["s".to_owned()]));
    // Its data stays: gc frees nothing of it, and status counts it as held by deleted ones.
    snapfs_ok(&["gc", "--mount", &mnt]);
    let status: serde_json::Value =
        serde_json::from_str(&snapfs_ok(&["status", "--mount", &mnt, "--json"])).unwrap();
    assert!(status["space"]["deleted_snapshot_bytes"].as_u64().unwrap() >= 4 << 20);
    assert_eq!(status["deleted_snapshots"], 1);
    snapfs_ok(&["snapshot", "undelete", "s", "--mount", &mnt]);
    assert_eq!(fs::read(m.path(".snapshots/s/f")).unwrap(), data);
    // Deleted again, it is purged when its period is over, and gc then frees its data.
    snapfs_ok(&["snapshot", "delete", "s", "--mount", &mnt]);
    control(&m, &format!("clock {}\n", YEAR_START + 13 * 24 * HOUR)).unwrap();
    assert_eq!(listed(&m, &["--deleted"]).len(), 1);
    control(&m, &format!("clock {}\n", YEAR_START + 15 * 24 * HOUR)).unwrap();
    assert!(listed(&m, &["--deleted"]).is_empty());
    let gc: serde_json::Value = {
        let out = snapfs_ok(&["status", "--mount", &mnt, "--json"]);
        serde_json::from_str(&out).unwrap()
    };
    assert_eq!(gc["space"]["deleted_snapshot_bytes"], 0);
    assert!(gc["space"]["reclaimable_bytes"].as_u64().unwrap() >= 4 << 20);
    // Purge by hand frees at once.
    snapfs_ok(&["snapshot", "create", "t", "--mount", &mnt]);
    snapfs_ok(&["snapshot", "delete", "t", "--mount", &mnt]);
    snapfs_ok(&["snapshot", "purge", "t", "--mount", &mnt]);
    assert!(listed(&m, &["--deleted"]).is_empty());
    assert!(snapfs_err(&["snapshot", "undelete", "t", "--mount", &mnt]).contains("no deleted"));
}

/// A year of hourly snapshots, driven hour by hour through the daemon's injected clock, with
/// retention applied by the daemon after each one.
#[test]
fn retention_keeps_exactly_the_expected_set_over_a_simulated_year() {
    let m = Mounted::new_with(&[], &["--test-clock", &YEAR_START.to_string()]);
    let mnt = m.mnt.to_str().unwrap().to_owned();
    fs::write(m.path("f"), "data").unwrap();
    snapfs_ok(&[
        "policy",
        "set",
        "--hourly",
        "on",
        "--keep-hourly",
        "24",
        "--keep-daily",
        "7",
        "--keep-weekly",
        "4",
        "--keep-monthly",
        "12",
        "--keep-yearly",
        "3",
        "--mount",
        &mnt,
    ]);
    let held = auto_name(3, 15, 12, 2025);
    let mut batch = String::new();
    for hour in 1..=365 * 24 {
        let now = YEAR_START + hour * HOUR;
        batch.push_str(&format!("clock {now}\n"));
        if auto_name(3, 15, 12, 2025) == format!("auto-{}", compact(now)) {
            batch.push_str(&format!("hold {held}\n"));
        }
        if hour == 100 * 24 {
            batch.push_str("create manual-mid-year\n");
        }
        // Line-aligned writes well under the kernel's write size.
        if batch.len() > 3000 {
            control(&m, &batch).unwrap();
            batch.clear();
        }
    }
    control(&m, &batch).unwrap();

    let mut expected: BTreeSet<String> = BTreeSet::new();
    let newest = auto_name(1, 1, 0, 2026);
    expected.insert(newest);
    // Hourly: the 23 hours before the newest.
    expected.extend((1..=23).map(|h| auto_name(12, 31, h, 2025)));
    // Daily: the newest of each of the 6 days before.
    expected.extend((26..=31).map(|d| auto_name(12, d, 23, 2025)));
    // Weekly (ISO weeks end on Sunday): Dec 28, 21 and 14.
    expected.extend([28, 21, 14].map(|d| auto_name(12, d, 23, 2025)));
    // Monthly: the last hour of each month from February to December.
    let last_day = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    expected.extend((2..=12).map(|month| auto_name(month, last_day[month as usize - 1], 23, 2025)));
    // Yearly: 2025's newest is already in; plus what is held and what is manual.
    expected.insert(held);
    expected.insert("manual-mid-year".into());
    assert_eq!(listed(&m, &[]), expected);
    let status: serde_json::Value =
        serde_json::from_str(&snapfs_ok(&["status", "--mount", &mnt, "--json"])).unwrap();
    assert_eq!(status["automatic_snapshots"], expected.len() - 1);
    assert_eq!(status["policy"]["next_snapshot"], "2026-01-01T01:00:00Z");
}

/// `2026-11-21T0300Z` for a time.
fn compact(secs: i64) -> String {
    snapfs::schedule::calendar::format_rfc3339(secs)
        .replace(":00Z", "Z")
        .replace(':', "")
}

#[test]
fn a_daemon_that_was_down_catches_up_with_one_snapshot() {
    let mut m = Mounted::new_with(&[], &["--test-clock", &YEAR_START.to_string()]);
    let mnt = m.mnt.to_str().unwrap().to_owned();
    snapfs_ok(&[
        "policy",
        "set",
        "--hourly",
        "on",
        "--keep-hourly",
        "100",
        "--mount",
        &mnt,
    ]);
    control(&m, &format!("clock {}\n", YEAR_START + HOUR)).unwrap();
    assert_eq!(listed(&m, &[]).len(), 1);
    m.unmount();
    // Ten hours later the daemon starts again: one snapshot, not ten.
    m.extra_args = vec![
        "--test-clock".into(),
        (YEAR_START + 11 * HOUR + 600).to_string(),
    ];
    m.mount();
    wait_for("no catch-up snapshot", 20, || listed(&m, &[]).len() >= 2);
    std::thread::sleep(Duration::from_millis(300));
    let expected = BTreeSet::from([auto_name(1, 1, 1, 2025), "auto-2025-01-01T1100Z".to_owned()]);
    assert_eq!(listed(&m, &[]), expected);
}

#[test]
fn policy_changes_apply_without_remount_and_persist() {
    let mut m = Mounted::new_with(&[], &["--test-clock", &YEAR_START.to_string()]);
    let mnt = m.mnt.to_str().unwrap().to_owned();
    let store = m.store.to_str().unwrap().to_owned();
    let shown = snapfs_ok(&["policy", "show", "--mount", &mnt]);
    assert!(shown.contains("disabled"), "{shown}");
    // Through the control file, in the command line's words.
    control(&m, "policy set --daily-at 03:30 --keep-daily 7\n").unwrap();
    let report: serde_json::Value =
        serde_json::from_str(&snapfs_ok(&["policy", "show", "--store", &store, "--json"])).unwrap();
    assert_eq!(report["policy"]["daily_at"], 210);
    assert_eq!(report["next_snapshot"], "2025-01-01T03:30:00Z");
    control(&m, &format!("clock {}\n", YEAR_START + 4 * HOUR)).unwrap();
    assert_eq!(
        listed(&m, &[]),
        BTreeSet::from(["auto-2025-01-01T0330Z".to_owned()])
    );
    // Bad values are refused with the reason, and change nothing.
    let err = snapfs_err(&["policy", "set", "--daily-at", "25:00", "--mount", &mnt]);
    assert!(err.contains("25:00"), "{err}");
    assert_eq!(
        control(&m, "policy set --hourly maybe\n")
            .unwrap_err()
            .raw_os_error(),
        Some(libc::EINVAL)
    );
    m.unmount();
    let offline = snapfs_ok(&["policy", "show", "--store", &store]);
    assert!(offline.contains("03:30"), "{offline}");
}

#[test]
fn status_shows_jobs_and_a_failed_job_runs_the_hook() {
    let dir = tempfile::tempdir().unwrap();
    let hook_out = dir.path().join("hook.env");
    let hook = format!("env | grep ^SNAPFS_ | sort > {}", hook_out.display());
    let m = Mounted::new_with(&[], &["--on-failure", &hook]);
    let mnt = m.mnt.to_str().unwrap().to_owned();
    snapfs_ok(&["snapshot", "create", "good", "--mount", &mnt]);
    snapfs_ok(&["gc", "--mount", &mnt]);
    snapfs_err(&["snapshot", "create", ".bad", "--mount", &mnt]);
    wait_for("the hook did not run", 10, || {
        fs::read_to_string(&hook_out).is_ok_and(|env| !env.is_empty())
    });
    std::thread::sleep(Duration::from_millis(100));
    let env = fs::read_to_string(&hook_out).unwrap();
    assert!(env.contains("SNAPFS_JOB_KIND=create"), "{env}");
    assert!(env.contains("SNAPFS_JOB_TARGET=.bad"), "{env}");
    assert!(
        env.contains("SNAPFS_JOB_ERROR=invalid snapshot name"),
        "{env}"
    );
    let status: serde_json::Value =
        serde_json::from_str(&snapfs_ok(&["status", "--mount", &mnt, "--json"])).unwrap();
    let kinds: Vec<&str> = status["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["create", "gc", "create"]);
    assert_eq!(status["failures"][0]["target"], ".bad");
    assert_eq!(status["mountpoint"], mnt.as_str());
    let text = snapfs_ok(&["status", "--mount", &mnt]);
    assert!(text.contains("FAILED") && text.contains("next automatic snapshot: none"));
}

#[test]
fn destroy_removes_only_a_store_without_snapshots() {
    let mut m = Mounted::new();
    let mnt = m.mnt.to_str().unwrap().to_owned();
    let store = m.store.to_str().unwrap().to_owned();
    snapfs_ok(&["snapshot", "create", "s", "--mount", &mnt]);
    snapfs_ok(&["policy", "set", "--soft-delete", "1d", "--mount", &mnt]);
    // Mounted: the store is in use.
    assert!(snapfs_err(&["destroy", &store, "--yes"]).contains("in use"));
    m.unmount();
    assert!(snapfs_err(&["destroy", &store, "--yes"]).contains("1 snapshots"));
    m.mount();
    snapfs_ok(&["snapshot", "delete", "s", "--mount", &mnt]);
    m.unmount();
    assert!(snapfs_err(&["destroy", &store, "--yes"]).contains("1 soft-deleted"));
    snapfs_ok(&["snapshot", "purge", "s", "--store", &store]);
    // Without --yes and without a terminal to ask on, nothing happens.
    assert!(snapfs_err(&["destroy", &store]).contains("without --yes"));
    assert!(m.store.exists());
    snapfs_ok(&["destroy", &store, "--yes"]);
    assert!(!m.store.exists());
}
