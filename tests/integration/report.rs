//! `snapfs report` against a real store: the space history that snapshot changes, gc and the
//! scheduler's tick leave behind, drawn into one self-contained HTML file whose figures are
//! those `status --json` and `snapshot list --json` print, with user-given names escaped.

use std::fs;

use serde_json::Value;

use crate::harness::{Mounted, control_reply, noise, snapfs_err, snapfs_ok};

/// 2026-11-01T00:00:00Z: the daemon's test clock starts here.
const T0: i64 = 1_793_491_200;
const HOUR: i64 = 3_600;
/// A snapshot name with every character HTML gives a meaning.
const ODD_NAME: &str = r#"q3 "report" <draft> & 'co'"#;
const ODD_ESCAPED: &str = "q3 &quot;report&quot; &lt;draft&gt; &amp; &#39;co&#39;";

fn json(args: &[&str]) -> Value {
    serde_json::from_str(&snapfs_ok(args)).expect("JSON")
}

/// Moves the daemon's clock (and runs its scheduler's tick at the new time).
fn clock(m: &Mounted, secs: i64) {
    control_reply(m, &format!("clock {secs}")).expect("clock");
}

/// The cells of the table row that holds `needle`.
fn row_with<'a>(html: &'a str, needle: &str) -> &'a str {
    let at = html
        .find(needle)
        .unwrap_or_else(|| panic!("{needle} is not in the report"));
    let start = html[..at].rfind("<tr").expect("a row");
    let end = at + html[at..].find("</tr>").expect("the row's end");
    &html[start..end]
}

fn exact(bytes: &Value) -> String {
    format!(
        r#"<td class="n exact">{}</td>"#,
        bytes.as_u64().expect("a byte count")
    )
}

#[test]
fn the_report_draws_the_history_snapshot_changes_and_gc_leave() {
    let vault_dir = tempfile::tempdir_in("/var/tmp").expect("tempdir");
    let vault = vault_dir.path().join("vault");
    let vault = vault.to_str().expect("utf-8");
    snapfs_ok(&["vault", "init", vault]);
    let m = Mounted::new_with(&[], &["--test-clock", &T0.to_string()]);
    let mnt = m.mnt.to_str().expect("utf-8").to_owned();
    let out_dir = tempfile::tempdir().expect("tempdir");
    let html_path = out_dir.path().join("out.html");
    let html_path = html_path.to_str().expect("utf-8");

    // Day one: data, a snapshot, more data and a second one three hours later.
    fs::write(m.path("a"), noise(2 << 20, 1)).expect("write");
    snapfs_ok(&["snapshot", "create", ODD_NAME, "--mount", &mnt]);
    clock(&m, T0 + 3 * HOUR);
    fs::write(m.path("b"), noise(3 << 20, 10)).expect("write");
    snapfs_ok(&["snapshot", "create", "second", "--mount", &mnt]);
    // Soft delete on: the second snapshot goes, and its data is replaced in the share, so
    // only a soft-deleted snapshot holds it.
    clock(&m, T0 + 6 * HOUR);
    snapfs_ok(&["policy", "set", "--soft-delete", "7d", "--mount", &mnt]);
    snapfs_ok(&["snapshot", "delete", "second", "--mount", &mnt]);
    fs::write(m.path("b"), noise(1 << 20, 20)).expect("write");
    clock(&m, T0 + 9 * HOUR);
    fs::write(m.path("a"), noise(1 << 20, 30)).expect("write");
    snapfs_ok(&["snapshot", "create", "third", "--mount", &mnt]);
    snapfs_ok(&["backup", "third", "--to", vault, "--mount", &mnt]);
    snapfs_err(&["snapshot", "delete", "no-such-snapshot", "--mount", &mnt]);
    clock(&m, T0 + 10 * HOUR);
    snapfs_ok(&["gc", "--mount", &mnt]);
    // Two hours with nothing done: the scheduler's tick samples once, not again half an hour
    // later.
    clock(&m, T0 + 12 * HOUR);
    clock(&m, T0 + 12 * HOUR + HOUR / 2);

    let data = json(&["report", "--mount", &mnt, "--html", html_path, "--json"]);
    let html = fs::read_to_string(html_path).expect("the report");
    let status = json(&["status", "--mount", &mnt, "--json"]);
    let list = json(&["snapshot", "list", "--mount", &mnt, "--json"]);

    // One self-contained page: two charts, nothing to run, nothing to fetch.
    assert!(html.starts_with("<!DOCTYPE html>"), "{}", &html[..80]);
    assert!(html.trim_end().ends_with("</html>"));
    assert_eq!(html.matches("<svg").count(), 2);
    assert_eq!(html.matches("</svg>").count(), 2);
    for absent in [
        "<script", "http://", "https://", " src=", "href=", "@import", "url(",
    ] {
        assert!(!html.contains(absent), "the report contains {absent}");
    }
    assert_eq!(
        html.matches("<table").count(),
        html.matches("</table>").count()
    );

    // The history: a sample at each change (creates, the delete, gc; two in one second keep
    // the later) and the tick's, hourly at most; the last one what the store holds now.
    let history = data["history"].as_array().expect("history");
    let times: Vec<i64> = history
        .iter()
        .map(|p| p["secs"].as_i64().expect("secs"))
        .collect();
    assert_eq!(
        times,
        [0, 3, 6, 9, 10, 12].map(|h| T0 + h * HOUR),
        "one sample per moment the space changed, and the tick's at 12 h"
    );
    assert_eq!(history.last().expect("a sample")["space"], status["space"]);
    assert_eq!(
        html.matches(r#"<circle class="sample""#).count(),
        times.len()
    );
    // Once the share no longer held the deleted snapshot's data, only it did.
    let before_gc = history
        .iter()
        .find(|p| p["secs"] == T0 + 9 * HOUR)
        .expect("the third snapshot's sample");
    assert!(
        before_gc["space"]["deleted_snapshot_bytes"]
            .as_u64()
            .expect("bytes")
            >= 3 << 20,
        "{before_gc}"
    );
    assert_eq!(history[0]["space"]["deleted_snapshot_bytes"], 0);

    // The figures now are status's, in the report's data and on the page.
    assert_eq!(data["space"], status["space"]);
    for field in [
        "live_bytes",
        "snapshot_bytes",
        "deleted_snapshot_bytes",
        "reclaimable_bytes",
    ] {
        let name = match field {
            "live_bytes" => "live share",
            "snapshot_bytes" => "snapshots only",
            "deleted_snapshot_bytes" => "soft-deleted snapshots",
            _ => "reclaimable by gc",
        };
        let row = row_with(&html, &format!("</span>{name}</td>"));
        assert!(
            row.contains(&exact(&status["space"][field])),
            "{field}: {row}"
        );
    }
    assert!(row_with(&html, "total stored").contains(&exact(&status["space"]["stored_bytes"])));
    assert!(status["space"]["deleted_snapshot_bytes"].as_u64() > Some(0));

    // Every listed snapshot's unique bytes, by name, escaped; the soft-deleted one marked.
    assert!(!html.contains(ODD_NAME));
    for snapshot in list.as_array().expect("a list") {
        let name = snapshot["name"].as_str().expect("name");
        let shown = if name == ODD_NAME { ODD_ESCAPED } else { name };
        let row = row_with(&html, &format!("<tr><td>{shown}</td>"));
        assert!(row.contains(&exact(&snapshot["unique_bytes"])), "{row}");
    }
    assert!(html.contains(&format!("<title>{ODD_ESCAPED}, taken ")));
    assert!(row_with(&html, "<tr><td>second</td>").contains("soft-deleted"));
    let snapshots = data["snapshots"].as_array().expect("snapshots");
    let created: Vec<i64> = snapshots
        .iter()
        .map(|s| s["created"].as_i64().expect("created"))
        .collect();
    assert_eq!(created, vec![T0, T0 + 3 * HOUR, T0 + 9 * HOUR]);
    assert_eq!(html.matches(r#"<rect class="bar""#).count(), 2);

    // The backup, in its vault's row; the failed delete, highlighted among the jobs.
    let vaults = data["vaults"].as_array().expect("vaults");
    assert_eq!(vaults.len(), 1, "{vaults:?}");
    assert_eq!(vaults[0]["vault"], vault);
    assert_eq!(vaults[0]["backups"], 1);
    assert_eq!(vaults[0]["latest"]["name"], "third");
    let row = row_with(&html, &format!("<td>{vault}</td>"));
    assert!(
        row.contains("third at ") && row.contains("3 h 30 min ago"),
        "{row}"
    );
    assert!(row.contains(&exact(&vaults[0]["bytes_added"])), "{row}");
    assert!(vaults[0]["bytes_added"].as_u64() > Some(0));
    let failed = row_with(&html, "no-such-snapshot");
    assert!(failed.starts_with(r#"<tr class="failed">"#), "{failed}");
    assert!(failed.contains("FAILED"), "{failed}");
}

#[test]
fn a_store_without_history_reports_so_offline() {
    // Made and never mounted: no scheduler has ticked, nothing has changed its snapshots.
    let dir = tempfile::tempdir_in("/var/tmp").expect("tempdir");
    let store = dir.path().join("store");
    let store = store.to_str().expect("utf-8");
    snapfs_ok(&["init", store]);
    let html_path = dir.path().join("fresh.html");
    let html_path = html_path.to_str().expect("utf-8");
    snapfs_ok(&["report", "--store", store, "--html", html_path]);
    let html = fs::read_to_string(html_path).expect("the report");
    assert!(html.contains("No space history yet"), "{html}");
    assert!(html.contains("No snapshots."));
    assert!(html.contains("No backups in the job log."));
    assert!(!html.contains("<script") && !html.contains("NaN"));
    let data = json(&["report", "--store", store, "--json"]);
    assert_eq!(data["history"], serde_json::json!([]));
    // Neither --html nor --json: refused.
    snapfs_err(&["report", "--store", store]);
}
