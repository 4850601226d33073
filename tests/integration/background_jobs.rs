//! Long requests given to a running daemon run as background jobs: the control-file write
//! returns a job number at once, quick requests go on meanwhile, `job N` tells the outcome, and
//! the `snapfs` command waits for the job as if it ran in the foreground.

use std::fs;
use std::io::Write;

use crate::harness::{Mounted, noise, snapfs_ok};

fn control(m: &Mounted, line: &str) -> serde_json::Value {
    crate::harness::control_reply(m, line).unwrap_or_else(|e| panic!("{line}: {e:?}"))
}

/// A share whose full verify reads 512 MiB: long enough for requests to run beside it.
fn big_share() -> Mounted {
    let m = Mounted::new();
    let mut file = fs::File::create(m.path("big")).expect("create");
    for part in 0..8 {
        file.write_all(&noise(64 << 20, part)).expect("write");
    }
    drop(file);
    control(&m, "create base");
    m
}

#[test]
fn a_verify_runs_in_the_background_while_snapshots_are_taken() {
    let m = big_share();
    let started = control(&m, "verify");
    assert_eq!(started["kind"], "verify");
    assert_eq!(started["state"], "running");
    let job = started["job"].as_u64().expect("a job number");
    let mut taken_while_running = 0;
    let mut n = 0;
    let ended = loop {
        control(&m, &format!("create during-{n}"));
        n += 1;
        let state = control(&m, &format!("job {job}"));
        match state["state"].as_str() {
            Some("running") => taken_while_running += 1,
            Some("done") => break state,
            other => panic!("job {job}: {other:?}: {state}"),
        }
    };
    assert!(
        taken_while_running > 0,
        "no snapshot was created while the verify ran"
    );
    assert!(
        ended["result"]["chunks_checked"].as_u64().unwrap_or(0) > 0,
        "{ended}"
    );
    // The job log has it, with the snapshots taken meanwhile recorded before it ended (all of
    // them: a create takes a few milliseconds, so there may be hundreds).
    let status: serde_json::Value = serde_json::from_str(&snapfs_ok(&[
        "status",
        "--json",
        "--jobs",
        "1000",
        "--mount",
        m.path("").to_str().expect("utf-8"),
    ]))
    .expect("status JSON");
    let jobs = status["jobs"].as_array().expect("jobs");
    let verify_id = jobs
        .iter()
        .find(|j| j["kind"] == "verify")
        .and_then(|j| j["id"].as_u64())
        .expect("the verify is recorded");
    let first_create = jobs
        .iter()
        .filter(|j| j["kind"] == "create" && j["target"] == "during-0")
        .find_map(|j| j["id"].as_u64())
        .expect("the create is recorded");
    assert!(
        first_create < verify_id,
        "the create ended before the verify"
    );
}

#[test]
fn the_command_waits_for_its_job_and_reports_like_the_foreground() {
    let m = big_share();
    let mount = m.path("");
    let mount = mount.to_str().expect("utf-8");
    let out = snapfs_ok(&["verify", "--mount", mount]);
    assert!(out.contains("chunks"), "{out}");
    let out = snapfs_ok(&["gc", "--mount", mount]);
    assert!(!out.is_empty());
    // A failing background request fails the command with the job's reason.
    let err = crate::harness::snapfs_err(&["verify", "--snapshot", "nope", "--mount", mount]);
    assert!(err.contains("nope"), "{err}");
}

#[test]
fn an_unknown_job_is_enoent_and_an_unmount_during_a_job_ends_the_daemon() {
    let mut m = big_share();
    let err = fs::write(m.path(".snapshots/.control"), "job 999\n").expect_err("unknown job");
    assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
    control(&m, "verify");
    // `snapfs umount` waits for the daemon, which waits a bounded time for the job.
    m.unmount();
    m.mount();
    let status = snapfs_ok(&[
        "status",
        "--json",
        "--jobs",
        "10",
        "--mount",
        m.path("").to_str().expect("utf-8"),
    ]);
    assert!(
        status.contains("\"verify\""),
        "the verify is recorded: {status}"
    );
}
