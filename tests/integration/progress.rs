//! Progress of long commands, as an admin and a script see it: a bar on a terminal (run under
//! `script`, which gives the command a real pseudo-terminal), nothing but the summary through
//! a pipe, and JSON events on stderr with `--json`, whose stdout stays one JSON document.

use std::process::Command;

use serde_json::Value;

use crate::harness::{Mounted, SNAPFS, noise, snapfs_ok};
use crate::json_fields;
use crate::tier::{wait_until_checkpointed, write_synced};

/// A finished command's result and progress events.
struct JsonRun {
    result: Value,
    events: Vec<Value>,
}

/// Runs `snapfs ARGS --json`; checks that stdout is one JSON document and that every line of
/// stderr that is not a log message is a progress event of `command`.
fn run_json(command: &str, args: &[&str]) -> JsonRun {
    let mut all = args.to_vec();
    all.push("--json");
    let out = Command::new(SNAPFS)
        .args(&all)
        .env_remove("SNAPFS_PASSPHRASE")
        .output()
        .expect("running snapfs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "snapfs {all:?} failed: {stderr}");
    let result: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|err| {
        panic!(
            "snapfs {all:?}: stdout is not one JSON document ({err}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    let events: Vec<Value> = stderr
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).expect("an event is JSON"))
        .collect();
    assert!(
        !events.is_empty(),
        "snapfs {all:?}: no progress events: {stderr}"
    );
    for event in &events {
        assert_eq!(event["event"], "progress", "{event}");
        assert_eq!(event["command"], command, "{event}");
        assert!(matches!(event["unit"].as_str(), Some("bytes" | "items")));
        assert!(event["done"].is_u64() && event["elapsed_secs"].is_number());
    }
    let last = events.last().expect("events");
    assert_eq!(
        last["finished"], true,
        "the last event is the final reading: {last}"
    );
    let doc = json_fields::documented();
    for event in &events {
        json_fields::check(&doc, "Progress events of long commands", &event.to_string());
    }
    JsonRun { result, events }
}

impl JsonRun {
    fn last(&self) -> &Value {
        self.events.last().expect("events")
    }

    /// The final reading of a stage with a known total: all of it done.
    fn completed(&self, stage: &str) -> u64 {
        let last = self.last();
        assert_eq!(last["stage"], stage, "{last}");
        let total = last["total"].as_u64().expect("a known total");
        assert_eq!(last["done"].as_u64(), Some(total), "{last}");
        total
    }
}

const MIB: u64 = 1 << 20;

#[test]
fn long_commands_report_progress_as_json_events() {
    let m = Mounted::new();
    let work = m.dir.path();
    let path = |name: &str| work.join(name).to_str().expect("utf-8").to_owned();
    let mnt = m.mnt.to_str().expect("utf-8").to_owned();
    std::fs::create_dir(m.path("docs")).expect("mkdir");
    std::fs::write(m.path("docs/big.bin"), noise(8 << 20, 1)).expect("write");
    for n in 0..50 {
        std::fs::write(m.path(&format!("docs/small-{n}")), format!("{n}\n")).expect("write");
    }
    snapfs_ok(&["snapshot", "create", "s1", "--mount", &mnt]);

    let verify = run_json("verify", &["verify", "--mount", &mnt]);
    assert!(verify.completed("reading chunks") >= 8 * MIB);
    assert_eq!(verify.result["damaged"], serde_json::json!([]));
    let doc = json_fields::documented();
    json_fields::check(&doc, "`snapfs verify --json`", &verify.result.to_string());
    let quick = run_json("verify", &["verify", "--quick", "--mount", &mnt]);
    assert!(quick.completed("checking chunks") > 50);

    let restore = run_json(
        "restore",
        &[
            "restore",
            "s1",
            "docs",
            "--to",
            "docs-again",
            "--mount",
            &mnt,
        ],
    );
    assert_eq!(restore.last()["stage"], "reading the tree");
    assert!(restore.last()["done"].as_u64() >= Some(51));
    assert_eq!(restore.result["restored"]["files"], 51);

    let clone = run_json("clone", &["clone", "s1", &path("clone"), "--mount", &mnt]);
    assert!(clone.completed("copying chunks") > 8);

    snapfs_ok(&["vault", "init", &path("vault")]);
    let backup = run_json(
        "backup",
        &["backup", "s1", "--to", &path("vault"), "--mount", &mnt],
    );
    assert_eq!(backup.last()["stage"], "sending to the vault");
    assert!(backup.last()["done"].as_u64() >= Some(8 * MIB));
    assert_eq!(backup.result["name"], "s1");

    let vault_verify = run_json(
        "vault verify",
        &["vault", "verify", &path("vault"), "--read-data"],
    );
    assert!(vault_verify.completed("reading packs") >= 8 * MIB);

    snapfs_ok(&["vault", "init", &path("vault2")]);
    let copy = run_json(
        "vault copy",
        &["vault", "copy", &path("vault"), &path("vault2")],
    );
    assert!(copy.last()["done"].as_u64() >= Some(8 * MIB));
    assert_eq!(copy.result["copied"], serde_json::json!(["s1"]));

    let restored = run_json(
        "vault restore",
        &["vault", "restore", &path("vault2"), "s1", &path("restored")],
    );
    // Fetched, then read as a tree to graft (a stage too short may show only in the result).
    assert_eq!(restored.last()["stage"], "reading the tree");
    assert!(restored.result["bytes_fetched"].as_u64() >= Some(8 * MIB));
    assert_eq!(restored.result["restored"]["files"], 51);
    let one_file = run_json(
        "vault restore",
        &[
            "vault",
            "restore",
            &path("vault"),
            "s1",
            "--path",
            "docs/big.bin",
            "--to",
            "big-from-vault",
            "--mount",
            &mnt,
        ],
    );
    assert_eq!(one_file.result["restored"]["files"], 1);
    assert_eq!(
        std::fs::read(m.path("big-from-vault")).expect("read"),
        noise(8 << 20, 1)
    );

    std::fs::remove_file(m.path("docs/big.bin")).expect("rm");
    let rollback = run_json("rollback", &["rollback", "s1", "--mount", &mnt]);
    assert_eq!(rollback.last()["stage"], "reading the tree");
    assert_eq!(
        std::fs::read(m.path("docs/big.bin")).expect("back"),
        noise(8 << 20, 1)
    );

    snapfs_ok(&["snapshot", "delete", "s1", "--mount", &mnt]);
    let gc = run_json("gc", &["gc", "--mount", &mnt]);
    gc.completed("compacting packs");
    assert!(gc.result["chunks_marked"].as_u64() > Some(0));
    json_fields::check(&doc, "`snapfs gc --json`", &gc.result.to_string());
}

/// Runs `command` under `script`, on a pseudo-terminal of its own; returns what it showed.
fn on_a_terminal(command: &str) -> String {
    let out = Command::new("script")
        .args(["-qec", command, "/dev/null"])
        .output()
        .expect("running script (util-linux)");
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{command} failed: {shown}");
    shown
}

#[test]
fn a_terminal_shows_a_bar_and_a_pipe_only_the_summary() {
    let m = Mounted::new();
    let mnt = m.mnt.to_str().expect("utf-8");
    // Large enough that reading it takes longer than the bar's first frames.
    std::fs::write(m.path("big"), noise(512 << 20, 2)).expect("write");

    let shown = on_a_terminal(&format!("{SNAPFS} verify --mount {mnt}"));
    assert!(
        shown.contains("verify: reading chunks") && shown.contains("MiB/512."),
        "no bar with bytes of a total: {shown}"
    );
    assert!(shown.contains("ETA"), "no ETA: {shown}");
    assert!(shown.contains("chunks checked, no damage"), "{shown}");

    let piped = Command::new(SNAPFS)
        .args(["verify", "--mount", mnt])
        .output()
        .expect("verify");
    assert!(piped.status.success());
    assert_eq!(
        String::from_utf8_lossy(&piped.stderr),
        "",
        "no progress through a pipe"
    );
    let summary = String::from_utf8_lossy(&piped.stdout);
    assert_eq!(summary.lines().count(), 1, "{summary}");
    assert!(summary.contains("no damage"));
}

#[test]
fn tier_recall_and_attach_report_progress() {
    let objects = tempfile::tempdir().expect("tempdir");
    let location = objects.path().join("share");
    let location = location.to_str().expect("utf-8");
    let mut m = Mounted::new_with(&["--tier", location, "--checkpoint-interval", "1"], &[]);
    write_synced(&m.path("data.bin"), &noise(6 << 20, 3));
    wait_until_checkpointed(&m, &[], 0);

    let recall = run_json(
        "tier recall",
        &[
            "tier",
            "recall",
            m.path("data.bin").to_str().expect("utf-8"),
        ],
    );
    assert_eq!(recall.last()["stage"], "fetching from the object store");
    assert_eq!(recall.result["files"], 1);

    m.unmount();
    let attached = m.dir.path().join("attached");
    let attach = run_json(
        "attach",
        &["attach", location, attached.to_str().expect("utf-8")],
    );
    assert_eq!(attach.completed("making the packs"), attach.result["packs"]);
    let reopened = Mounted::open(attached);
    assert_eq!(
        std::fs::read(reopened.path("data.bin")).expect("read"),
        noise(6 << 20, 3)
    );
}
