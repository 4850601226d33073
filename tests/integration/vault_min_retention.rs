//! The vault lock (`vault policy set --min-retention`) through the `snapfs` command: inside the
//! window no backup can be deleted by `vault delete` or `vault prune` (the error names the
//! backup and when it may go), older backups delete as before, and the lock can only be
//! raised. Age is simulated with the daemon's test clock: a backup's age is its snapshot's
//! time, and a snapshot taken at a test-clock time of 2025 is more than a year old.

use crate::harness::{Mounted, snapfs_ok};
use crate::s3_server::S3Server;
use crate::vault::{ok_env, snapfs_env};

/// 2025-01-01T00:00:00Z.
const YEAR_START: i64 = 1_735_689_600;

fn err_env(args: &[&str], env: &[(&str, String)]) -> String {
    let out = snapfs_env(args, env);
    assert!(
        !out.status.success(),
        "snapfs {args:?} should have failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}

fn min_retention_locks_young_backups(vault: &str, env: &[(&str, String)]) {
    let m = Mounted::new_with(&[], &["--test-clock", &YEAR_START.to_string()]);
    let mnt = m.mnt.to_str().expect("utf-8").to_owned();
    std::fs::write(m.path("a.txt"), b"first").expect("write");
    snapfs_ok(&["snapshot", "create", "old1", "--mount", &mnt]);
    ok_env(&["backup", "old1", "--to", vault, "--mount", &mnt], env);
    crate::harness::control_reply(&m, &format!("clock {}", YEAR_START + 86_400)).expect("clock");
    std::fs::write(m.path("a.txt"), b"second").expect("write");
    snapfs_ok(&["snapshot", "create", "old2", "--mount", &mnt]);
    ok_env(&["backup", "old2", "--to", vault, "--mount", &mnt], env);
    // Now: a backup as young as a real one.
    crate::harness::control_reply(&m, &format!("clock {}", unix_now())).expect("clock");
    std::fs::write(m.path("a.txt"), b"third").expect("write");
    snapfs_ok(&["snapshot", "create", "young", "--mount", &mnt]);
    ok_env(&["backup", "young", "--to", vault, "--mount", &mnt], env);

    let set = ok_env(
        &[
            "vault",
            "policy",
            "set",
            vault,
            "--keep-last",
            "1",
            "--min-retention",
            "30d",
        ],
        env,
    );
    assert!(set.contains("minimum retention 30d"), "{set}");
    let shown = ok_env(&["vault", "policy", "show", vault], env);
    assert!(shown.contains("minimum retention: 30d"), "{shown}");

    // Inside the window: refused, naming the backup and when it may be deleted.
    let err = err_env(&["vault", "delete", vault, "young"], env);
    assert!(
        err.contains("backup young is inside the vault's minimum retention of 30d"),
        "{err}"
    );
    assert!(err.contains("may be deleted from 20"), "{err}");
    // Older than the window: deleted as before.
    ok_env(&["vault", "delete", vault, "old2"], env);
    // Prune removes what its counts drop, except what the lock protects.
    let pruned: serde_json::Value =
        serde_json::from_str(&ok_env(&["vault", "prune", vault, "--json"], env)).expect("json");
    let removed = pruned["prune"]["removed"].as_array().expect("removed");
    assert_eq!(removed.len(), 1, "{pruned}");
    assert!(
        removed[0]["backup"]
            .as_str()
            .expect("name")
            .ends_with("/old1"),
        "{pruned}"
    );
    let kept = &pruned["prune"]["kept"][0];
    assert!(kept["backup"].as_str().expect("name").ends_with("/young"));
    assert!(
        kept["reasons"]
            .as_array()
            .expect("reasons")
            .contains(&"min-retention".into()),
        "{pruned}"
    );

    // The lock only rises; a policy set without it keeps it.
    let err = err_env(
        &["vault", "policy", "set", vault, "--min-retention", "7d"],
        env,
    );
    assert!(err.contains("can only be raised"), "{err}");
    ok_env(&["vault", "policy", "set", vault, "--keep-daily", "7"], env);
    let shown = ok_env(&["vault", "policy", "show", vault], env);
    assert!(shown.contains("minimum retention: 30d"), "{shown}");
    ok_env(
        &["vault", "policy", "set", vault, "--min-retention", "90d"],
        env,
    );
    let err = err_env(&["vault", "delete", vault, "young"], env);
    assert!(err.contains("minimum retention of 90d"), "{err}");
    let listed: serde_json::Value =
        serde_json::from_str(&ok_env(&["vault", "list", vault, "--json"], env)).expect("json");
    assert_eq!(listed.as_array().expect("list").len(), 1, "{listed}");
    // gc frees nothing the locked backup needs.
    ok_env(&["vault", "gc", vault], env);
    ok_env(&["vault", "verify", vault, "--read-data"], env);
}

#[test]
fn vault_min_retention_locks_young_backups_on_a_local_vault() {
    let dir = tempfile::tempdir().expect("tempdir");
    let vault = dir.path().join("vault");
    let vault = vault.to_str().expect("utf-8");
    ok_env(&["vault", "init", vault], &[]);
    min_retention_locks_young_backups(vault, &[]);
}

#[test]
fn vault_min_retention_locks_young_backups_on_s3() {
    let server = S3Server::start();
    let mut env = server.env();
    env.push(("SNAPFS_PASSPHRASE", "lock passphrase".into()));
    let vault = server.url("locked");
    ok_env(&["vault", "init", &vault], &env);
    min_retention_locks_young_backups(&vault, &env);
}
