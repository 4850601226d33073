//! Schedules in the admin's time zone, against a real mount driven by the daemon's injected
//! clock: a policy set with `--timezone Europe/Berlin` takes its daily snapshot at 02:30 on
//! Berlin's clock, once on the day the clock springs forward over 02:30 and once (not twice)
//! on the day it falls back through it; the zone survives a remount; an unknown zone is
//! refused and changes nothing.

use std::collections::BTreeSet;
use std::fs;

use crate::harness::{Mounted, snapfs_err, snapfs_ok, wait_for};

/// Unix seconds of an RFC 3339 time.
fn at(text: &str) -> i64 {
    snapfs::schedule::calendar::parse_instant(text, 0).expect("a valid time")
}

fn set_clock(m: &Mounted, time: &str) {
    fs::write(
        m.path(".snapshots/.control"),
        format!("clock {}\n", at(time)),
    )
    .expect("clock");
}

fn listed(m: &Mounted) -> BTreeSet<String> {
    let mnt = m.mnt.to_str().expect("utf-8");
    let json = snapfs_ok(&["snapshot", "list", "--mount", mnt, "--json"]);
    let rows: serde_json::Value = serde_json::from_str(&json).expect("json");
    rows.as_array()
        .expect("array")
        .iter()
        .map(|r| r["name"].as_str().expect("name").to_owned())
        .collect()
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|name| (*name).to_owned()).collect()
}

#[test]
fn a_daily_slot_follows_berlins_clock_across_both_daylight_saving_changes() {
    // Saturday 2026-03-28, 13:00 in Berlin; that night the clock jumps from 02:00 to 03:00.
    let mut m = Mounted::new_with(
        &[],
        &["--test-clock", &at("2026-03-28T12:00:00Z").to_string()],
    );
    let mnt = m.mnt.to_str().expect("utf-8").to_owned();
    let store = m.store.to_str().expect("utf-8").to_owned();
    snapfs_ok(&[
        "policy",
        "set",
        "--daily-at",
        "02:30",
        "--keep-daily",
        "30",
        "--timezone",
        "Europe/Berlin",
        "--mount",
        &mnt,
    ]);
    let report: serde_json::Value =
        serde_json::from_str(&snapfs_ok(&["policy", "show", "--mount", &mnt, "--json"]))
            .expect("json");
    assert_eq!(report["policy"]["timezone"], "Europe/Berlin");
    assert_eq!(report["policy"]["daily_at"], 150);
    // 02:30 does not exist on 29 March: the slot is after the gap, at 03:30 CEST.
    assert_eq!(report["next_snapshot"], "2026-03-29T03:30:00+02:00");
    let shown = snapfs_ok(&["policy", "show", "--mount", &mnt]);
    assert!(
        shown.contains("schedule: every day at 02:30 Europe/Berlin")
            && shown.contains("next automatic snapshot: 2026-03-29T03:30:00+02:00 (Europe/Berlin)"),
        "{shown}"
    );

    // 03:00 CEST: nothing yet. 03:30 CEST: the day's one snapshot (named in UTC).
    set_clock(&m, "2026-03-29T01:00:00Z");
    assert!(listed(&m).is_empty());
    set_clock(&m, "2026-03-29T01:30:00Z");
    assert_eq!(listed(&m), names(&["auto-2026-03-29T0130Z"]));
    // The next day, 02:30 CEST again.
    set_clock(&m, "2026-03-30T00:29:59Z");
    assert_eq!(listed(&m).len(), 1);
    set_clock(&m, "2026-03-30T00:30:00Z");
    assert_eq!(
        listed(&m),
        names(&["auto-2026-03-29T0130Z", "auto-2026-03-30T0030Z"])
    );

    // An unknown zone is refused with the reason, and changes nothing.
    let err = snapfs_err(&[
        "policy",
        "set",
        "--timezone",
        "Europe/Atlantis",
        "--mount",
        &mnt,
    ]);
    assert!(
        err.contains("Europe/Atlantis") && err.contains("IANA"),
        "{err}"
    );
    let err = snapfs_err(&[
        "policy",
        "set",
        "--keep-daily",
        "1",
        "--timezone",
        "+02:00",
        "--mount",
        &mnt,
    ]);
    assert!(err.contains("not a time zone"), "{err}");
    let report: serde_json::Value =
        serde_json::from_str(&snapfs_ok(&["policy", "show", "--mount", &mnt, "--json"]))
            .expect("json");
    assert_eq!(report["policy"]["timezone"], "Europe/Berlin");
    assert_eq!(report["policy"]["keep"]["daily"], 30);

    // The zone is in the stored policy: it survives an unmount, and the daemon mounted again
    // (on a Saturday in October, before the clock falls back) follows it.
    m.unmount();
    let offline: serde_json::Value =
        serde_json::from_str(&snapfs_ok(&["policy", "show", "--store", &store, "--json"]))
            .expect("json");
    assert_eq!(offline["policy"]["timezone"], "Europe/Berlin");
    m.extra_args = vec![
        "--test-clock".into(),
        at("2026-10-24T12:00:00Z").to_string(),
    ];
    m.mount();
    // Catch-up: one snapshot for the latest slot missed, 02:30 CEST that morning.
    wait_for("the catch-up snapshot", 20, || listed(&m).len() >= 3);
    assert!(listed(&m).contains("auto-2026-10-24T0030Z"));
    let status: serde_json::Value =
        serde_json::from_str(&snapfs_ok(&["status", "--mount", &mnt, "--json"])).expect("json");
    assert_eq!(
        status["policy"]["next_snapshot"],
        "2026-10-25T02:30:00+02:00"
    );

    // 25 October: Berlin's clock reads 02:30 twice, first in CEST, then in CET. One snapshot.
    set_clock(&m, "2026-10-25T00:30:00Z");
    assert!(listed(&m).contains("auto-2026-10-25T0030Z"));
    let before = listed(&m);
    set_clock(&m, "2026-10-25T01:30:00Z");
    assert_eq!(listed(&m), before, "the second 02:30 takes nothing");
    let report: serde_json::Value =
        serde_json::from_str(&snapfs_ok(&["policy", "show", "--mount", &mnt, "--json"]))
            .expect("json");
    assert_eq!(report["next_snapshot"], "2026-10-26T02:30:00+01:00");
    // The next day, 02:30 CET: 01:30 UTC.
    set_clock(&m, "2026-10-26T01:30:00Z");
    assert_eq!(
        listed(&m),
        names(&[
            "auto-2026-03-29T0130Z",
            "auto-2026-03-30T0030Z",
            "auto-2026-10-24T0030Z",
            "auto-2026-10-25T0030Z",
            "auto-2026-10-26T0130Z",
        ])
    );
}

/// The names of the backups a `vault prune --dry-run --json` would remove.
fn prune_plan(vault: &str) -> BTreeSet<String> {
    let plan: serde_json::Value = serde_json::from_str(&snapfs_ok(&[
        "vault",
        "prune",
        vault,
        "--dry-run",
        "--json",
    ]))
    .expect("json");
    plan["prune"]["removed"]
        .as_array()
        .expect("removed")
        .iter()
        .map(|entry| {
            let backup = entry["backup"].as_str().expect("backup");
            backup.split_once('/').expect("SHARE/NAME").1.to_owned()
        })
        .collect()
}

#[test]
fn vault_retention_days_are_the_policys_zone_and_an_unknown_zone_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let vault = dir.path().join("vault");
    let vault = vault.to_str().expect("utf-8");
    snapfs_ok(&["vault", "init", vault]);
    let m = Mounted::new_with(
        &[],
        &["--test-clock", &at("2026-07-10T21:00:00Z").to_string()],
    );
    let mnt = m.mnt.to_str().expect("utf-8").to_owned();
    // 23:00 and 01:30 (the next day) in Berlin; both 10 July in UTC.
    for (name, time) in [
        ("evening", "2026-07-10T21:00:00Z"),
        ("night", "2026-07-10T23:30:00Z"),
        ("noon", "2026-07-11T12:00:00Z"),
    ] {
        set_clock(&m, time);
        fs::write(m.path("a.txt"), name).expect("write");
        snapfs_ok(&["snapshot", "create", name, "--mount", &mnt]);
        snapfs_ok(&["backup", name, "--to", vault, "--mount", &mnt]);
    }

    snapfs_ok(&["vault", "policy", "set", vault, "--keep-daily", "2"]);
    assert_eq!(prune_plan(vault), names(&["evening"]));

    let set = snapfs_ok(&[
        "vault",
        "policy",
        "set",
        vault,
        "--keep-daily",
        "2",
        "--timezone",
        "Europe/Berlin",
    ]);
    assert!(set.contains("buckets in Europe/Berlin"), "{set}");
    assert_eq!(prune_plan(vault), names(&["night"]));

    let err = snapfs_err(&[
        "vault",
        "policy",
        "set",
        vault,
        "--keep-daily",
        "9",
        "--timezone",
        "Europe/Atlantis",
    ]);
    assert!(err.contains("Europe/Atlantis"), "{err}");
    let shown: serde_json::Value =
        serde_json::from_str(&snapfs_ok(&["vault", "policy", "show", vault, "--json"]))
            .expect("json");
    assert_eq!(shown["timezone"], "Europe/Berlin");
    assert_eq!(shown["daily"], 2, "the refused change stored nothing");
    let text = snapfs_ok(&["vault", "policy", "show", vault]);
    assert!(text.contains("time zone: Europe/Berlin"), "{text}");
}
