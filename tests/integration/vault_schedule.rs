//! Scheduled backups through a real mount whose daemon runs on the injected test clock, on a
//! local vault and on a real S3 server (SeaweedFS): `policy set --backup-to` makes the daemon
//! back up at each slot (the backup is in `vault list`, `status` shows it and the next one);
//! the vault's own retention policy is applied after each backup; a failing vault (a removed
//! directory, a wrong key file) records a failed job, runs the `--on-failure` hook with the
//! vault and the backup in its environment, and `status` shows the failure; a daemon that was
//! down catches up with one backup; `--backup-to none` stops them.

use std::fs;
use std::time::{Duration, Instant};

use crate::harness::{Mounted, control_reply, snapfs_err, snapfs_ok, wait_for};
use crate::s3_server::S3Server;
use crate::vault::{ok_env, snapfs_env};

/// 2025-01-01T00:00:00Z.
const YEAR_START: i64 = 1_735_689_600;
const HOUR: i64 = 3600;
const DAY: i64 = 24 * HOUR;

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|err| panic!("{err}: {text}"))
}

/// Sets the daemon's clock (its scheduler ticks at once) and waits for the scheduled backup
/// the tick started; returns the backup job's outcome.
fn clock_and_wait(m: &Mounted, now: i64) -> serde_json::Value {
    let tick = control_reply(m, &format!("clock {now}")).expect("clock");
    let job = tick["backup_job"]
        .as_u64()
        .unwrap_or_else(|| panic!("no backup started: {tick}"));
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let state = control_reply(m, &format!("job {job}")).expect("job");
        if state["state"] != "running" {
            assert_eq!(state["state"], "done", "{state}");
            return state["result"].clone();
        }
        assert!(Instant::now() < deadline, "backup job {job} did not end");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn backups_in(vault: &str, env: &[(&str, String)]) -> Vec<String> {
    json(&ok_env(&["vault", "list", vault, "--json"], env))
        .as_array()
        .expect("array")
        .iter()
        .map(|b| b["name"].as_str().expect("name").to_owned())
        .collect()
}

fn status(mnt: &str) -> serde_json::Value {
    json(&snapfs_ok(&["status", "--mount", mnt, "--json"]))
}

/// Waits for the hook's output file and returns it.
fn hook_env(path: &std::path::Path) -> String {
    wait_for("the --on-failure hook did not run", 20, || {
        fs::read_to_string(path).is_ok_and(|env| env.contains("SNAPFS_JOB_KIND=backup (scheduled)"))
    });
    std::thread::sleep(Duration::from_millis(100));
    fs::read_to_string(path).expect("hook output")
}

#[test]
fn vault_schedule_backs_up_prunes_reports_and_fails_loudly_on_a_local_vault() {
    let dir = tempfile::tempdir().expect("tempdir");
    let vault_path = dir.path().join("vault");
    let vault = vault_path.to_str().expect("utf-8").to_owned();
    let hook_out = dir.path().join("hook.env");
    let hook = format!("env | grep ^SNAPFS_ | sort > {}", hook_out.display());
    let mut m = Mounted::new_with(
        &[],
        &[
            "--test-clock",
            &YEAR_START.to_string(),
            "--on-failure",
            &hook,
        ],
    );
    let mnt = m.mnt.to_str().expect("utf-8").to_owned();
    fs::write(m.path("report.txt"), b"day one").expect("write");
    snapfs_ok(&["vault", "init", &vault]);
    snapfs_ok(&["vault", "policy", "set", &vault, "--keep-last", "2"]);

    let set = snapfs_ok(&[
        "policy",
        "set",
        "--backup-to",
        &vault,
        "--backup-daily-at",
        "02:00",
        "--mount",
        &mnt,
    ]);
    assert!(
        set.contains("next scheduled backup: 2025-01-01T02:00:00Z"),
        "{set}"
    );
    assert!(set.contains(&format!("backup to: {vault}")), "{set}");

    // Day 1, 03:00: the 02:00 slot passed; one backup.
    let outcome = clock_and_wait(&m, YEAR_START + 3 * HOUR);
    assert_eq!(outcome["snapshot"], "auto-2025-01-01T0200Z", "{outcome}");
    assert_eq!(outcome["vaults"][0]["ok"], true, "{outcome}");
    assert_eq!(backups_in(&vault, &[]), ["auto-2025-01-01T0200Z"]);
    let report = status(&mnt);
    let vault_status = &report["backups"][0];
    assert_eq!(vault_status["vault"], vault.as_str(), "{report}");
    assert_eq!(
        vault_status["last_success"]["name"], "auto-2025-01-01T0200Z",
        "{report}"
    );
    assert_eq!(vault_status["next"], "2025-01-02T02:00:00Z", "{report}");
    assert!(vault_status["last_failure"].is_null(), "{report}");
    let job = report["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .find(|j| j["kind"] == "backup (scheduled)")
        .expect("a backup job")
        .clone();
    assert_eq!(job["ok"], true, "{job}");
    assert_eq!(job["automatic"], true, "{job}");
    assert!(job["bytes"].as_u64().expect("bytes") > 0, "{job}");
    let text = snapfs_ok(&["status", "--mount", &mnt]);
    assert!(
        text.contains("last backup:  auto-2025-01-01T0200Z"),
        "{text}"
    );
    assert!(
        text.contains("next backup:  2025-01-02T02:00:00Z"),
        "{text}"
    );
    // Without snapshot retention, the backup's snapshot is not kept on the share.
    assert!(!m.path(".snapshots/auto-2025-01-01T0200Z").exists());

    // Days 2 and 3: the vault keeps its last 2 (pruned after each scheduled backup).
    fs::write(m.path("report.txt"), b"day two").expect("write");
    clock_and_wait(&m, YEAR_START + DAY + 3 * HOUR);
    fs::write(m.path("report.txt"), b"day three").expect("write");
    let outcome = clock_and_wait(&m, YEAR_START + 2 * DAY + 3 * HOUR);
    assert_eq!(
        outcome["vaults"][0]["pruned"]
            .as_array()
            .expect("pruned")
            .len(),
        1,
        "{outcome}"
    );
    assert_eq!(
        backups_in(&vault, &[]),
        ["auto-2025-01-02T0200Z", "auto-2025-01-03T0200Z"]
    );
    let report = status(&mnt);
    assert!(
        report["jobs"]
            .as_array()
            .expect("jobs")
            .iter()
            .any(|j| j["kind"] == "vault prune (scheduled)" && j["ok"] == true),
        "{report}"
    );

    // Down for three days: one catch-up backup at start, not three.
    m.unmount();
    m.extra_args = vec![
        "--test-clock".into(),
        (YEAR_START + 6 * DAY + 3 * HOUR).to_string(),
        "--on-failure".into(),
        hook.clone(),
    ];
    m.mount();
    wait_for("no catch-up backup", 60, || {
        backups_in(&vault, &[]).contains(&"auto-2025-01-07T0200Z".to_owned())
    });
    // Background job numbers count from 1 for each daemon: the catch-up is job 1. It must end
    // (prune included) before the next slot, or that slot is skipped as still running.
    wait_for("the catch-up backup did not end", 60, || {
        control_reply(&m, "job 1").expect("job 1")["state"] == "done"
    });
    assert_eq!(
        status(&mnt)["backups"][0]["last_success"]["name"],
        "auto-2025-01-07T0200Z"
    );
    assert_eq!(
        backups_in(&vault, &[]),
        ["auto-2025-01-03T0200Z", "auto-2025-01-07T0200Z"]
    );

    // The vault's directory goes away: a failed job, the hook, and status says so.
    let moved = dir.path().join("vault.moved");
    fs::rename(&vault_path, &moved).expect("move the vault away");
    let outcome = clock_and_wait(&m, YEAR_START + 7 * DAY + 3 * HOUR);
    assert_eq!(outcome["vaults"][0]["ok"], false, "{outcome}");
    let env = hook_env(&hook_out);
    assert!(env.contains("SNAPFS_JOB_KIND=backup (scheduled)"), "{env}");
    assert!(env.contains(&format!("SNAPFS_VAULT={vault}\n")), "{env}");
    assert!(
        env.contains("SNAPFS_BACKUP_NAME=auto-2025-01-08T0200Z"),
        "{env}"
    );
    assert!(
        env.contains("SNAPFS_JOB_ERROR=") && env.contains("vault"),
        "{env}"
    );
    let report = status(&mnt);
    let vault_status = &report["backups"][0];
    assert_eq!(
        vault_status["last_success"]["name"], "auto-2025-01-07T0200Z",
        "{report}"
    );
    assert_eq!(
        vault_status["last_failure"]["name"], "auto-2025-01-08T0200Z",
        "{report}"
    );
    assert_eq!(
        report["failures"][0]["kind"], "backup (scheduled)",
        "{report}"
    );
    let text = snapfs_ok(&["status", "--mount", &mnt]);
    assert!(
        text.contains("FAILED:       auto-2025-01-08T0200Z"),
        "{text}"
    );
    // The failed backup's snapshot stays on the share (no vault holds it).
    assert!(m.path(".snapshots/auto-2025-01-08T0200Z").exists());

    // Back again: the next backup succeeds and the failure is no longer shown as current.
    fs::rename(&moved, &vault_path).expect("move the vault back");
    clock_and_wait(&m, YEAR_START + 8 * DAY + 3 * HOUR);
    let report = status(&mnt);
    assert!(report["backups"][0]["last_failure"].is_null(), "{report}");

    // Bad values are refused; `none` stops scheduled backups.
    let err = snapfs_err(&[
        "policy",
        "set",
        "--backup-daily-at",
        "25:00",
        "--mount",
        &mnt,
    ]);
    assert!(err.contains("25:00"), "{err}");
    let off = snapfs_ok(&["policy", "set", "--backup-to", "none", "--mount", &mnt]);
    assert!(off.contains("scheduled backups: disabled"), "{off}");
    assert!(!off.contains("next scheduled backup"), "{off}");
    let tick =
        control_reply(&m, &format!("clock {}", YEAR_START + 9 * DAY + 3 * HOUR)).expect("clock");
    assert!(tick["backup_job"].is_null(), "{tick}");
    assert!(status(&mnt)["backups"].as_array().expect("list").is_empty());
}

#[test]
fn vault_schedule_on_s3_with_a_key_file_and_a_wrong_one() {
    let server = S3Server::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("vault.key");
    fs::write(&key, b"the scheduled backups' key").expect("key");
    let wrong = dir.path().join("wrong.key");
    fs::write(&wrong, b"not the key").expect("key");
    let hook_out = dir.path().join("hook.env");
    let hook = format!("env | grep ^SNAPFS_ | sort > {}", hook_out.display());
    let vault = server.url("scheduled");
    let env = server.env();
    let key_str = key.to_str().expect("utf-8");
    ok_env(&["vault", "init", &vault, "--key-file", key_str], &env);
    ok_env(
        &[
            "vault",
            "policy",
            "set",
            &vault,
            "--keep-last",
            "1",
            "--key-file",
            key_str,
        ],
        &env,
    );
    let m = Mounted::new_with_env(
        &[],
        &[
            "--test-clock",
            &YEAR_START.to_string(),
            "--on-failure",
            &hook,
        ],
        &env,
    );
    let mnt = m.mnt.to_str().expect("utf-8").to_owned();
    fs::write(m.path("a.txt"), b"one").expect("write");
    // Snapshot retention on: the backups' snapshots are automatic ones it manages.
    snapfs_ok(&[
        "policy",
        "set",
        "--keep-daily",
        "7",
        "--backup-to",
        &vault,
        "--backup-hourly",
        "on",
        "--backup-key-file",
        key_str,
        "--mount",
        &mnt,
    ]);
    let shown = json(&snapfs_ok(&["policy", "show", "--mount", &mnt, "--json"]));
    assert_eq!(shown["backup"]["key_file"], key_str, "{shown}");
    assert_eq!(shown["next_backup"], "2025-01-01T01:00:00Z", "{shown}");

    let outcome = clock_and_wait(&m, YEAR_START + HOUR + 60);
    assert_eq!(outcome["vaults"][0]["ok"], true, "{outcome}");
    fs::write(m.path("a.txt"), b"two").expect("write");
    clock_and_wait(&m, YEAR_START + 2 * HOUR + 60);
    let listed = |env: &[(&str, String)]| {
        let out = snapfs_env(
            &["vault", "list", &vault, "--json", "--key-file", key_str],
            env,
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        json(&String::from_utf8_lossy(&out.stdout))
            .as_array()
            .expect("array")
            .iter()
            .map(|b| b["name"].as_str().expect("name").to_owned())
            .collect::<Vec<_>>()
    };
    // Pruned to the vault's last 1 after the second backup.
    assert_eq!(listed(&env), ["auto-2025-01-01T0200Z"]);
    assert!(m.path(".snapshots/auto-2025-01-01T0200Z").exists());
    let report = status(&mnt);
    assert_eq!(
        report["backups"][0]["last_success"]["name"], "auto-2025-01-01T0200Z",
        "{report}"
    );
    assert_eq!(report["backups"][0]["next"], "2025-01-01T03:00:00Z");

    // A wrong key file: a failed job, the hook, and the failure in status.
    snapfs_ok(&[
        "policy",
        "set",
        "--backup-key-file",
        wrong.to_str().expect("utf-8"),
        "--mount",
        &mnt,
    ]);
    let outcome = clock_and_wait(&m, YEAR_START + 3 * HOUR + 60);
    assert_eq!(outcome["vaults"][0]["ok"], false, "{outcome}");
    let env_seen = hook_env(&hook_out);
    assert!(
        env_seen.contains(&format!("SNAPFS_VAULT={vault}\n")),
        "{env_seen}"
    );
    assert!(
        env_seen.contains("SNAPFS_BACKUP_NAME=auto-2025-01-01T0300Z"),
        "{env_seen}"
    );
    assert!(
        env_seen.contains("wrong passphrase or key file"),
        "{env_seen}"
    );
    let report = status(&mnt);
    assert_eq!(
        report["backups"][0]["last_failure"]["name"], "auto-2025-01-01T0300Z",
        "{report}"
    );
    assert!(
        report["backups"][0]["last_failure"]["error"]
            .as_str()
            .expect("error")
            .contains("wrong passphrase or key file"),
        "{report}"
    );
    assert_eq!(listed(&env), ["auto-2025-01-01T0200Z"]);
}
