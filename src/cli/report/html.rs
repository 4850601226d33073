//! The report as one self-contained HTML page: an inline style sheet, the two inline SVG
//! charts and plain tables. No script, no font, style sheet or image from anywhere else, so it
//! reads the same offline, in a mail attachment or in a browser with JavaScript off.

use std::fmt::Write;

use super::chart::{LAYERS, TimeSpan, snapshot_chart, space_chart, space_points};
use super::svg::escape;
use crate::cli::human_bytes;
use crate::schedule::calendar::format_rfc3339;
use crate::service::Job;
use crate::service::replies::{SpaceReport, VaultBackups};

/// At most this many snapshots are listed in the table under their chart (the newest); the
/// chart shows them all.
const SNAPSHOT_ROWS: usize = 200;

const STYLE: &str = "
body { font-family: sans-serif; margin: 24px; color: #222; max-width: 1100px; }
h1 { font-size: 24px; margin-bottom: 4px; }
h2 { font-size: 18px; margin: 28px 0 8px; border-bottom: 1px solid #ddd; }
p.meta { color: #555; margin-top: 0; }
table { border-collapse: collapse; font-size: 13px; }
th, td { padding: 3px 10px; text-align: left; border-bottom: 1px solid #eee; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.t { white-space: nowrap; }
tr.failed td { background: #fde2e1; }
td.failed { color: #b00020; font-weight: bold; }
span.swatch { display: inline-block; width: 12px; height: 12px; margin-right: 6px;
  vertical-align: -1px; border: 1px solid #0003; }
ul.legend { list-style: none; padding: 0; margin: 4px 0; font-size: 13px; }
ul.legend li { display: inline-block; margin-right: 18px; }
svg.chart { display: block; margin: 4px 0; }
svg .grid { stroke: #e4e4e4; }
svg .axis { stroke: #777; }
svg text { font-size: 11px; fill: #444; }
svg text.empty { font-size: 14px; fill: #777; }
svg text.name { font-size: 11px; fill: #222; }
svg .layer { stroke: none; opacity: 0.9; }
svg .stored { stroke: #222; stroke-width: 1.2; }
svg .sample { fill: #222; }
svg .bar { fill: #f28e2b; stroke: #b35f0f; stroke-width: 0.5; }
svg .deleted { fill: none; stroke: #e15759; stroke-width: 1.5; }
p.note { color: #555; font-size: 13px; }
";

/// How long ago `secs` was, from `now`: `3 d 4 h ago`, `12 min ago`, `just now`.
pub fn age(secs: i64, now: i64) -> String {
    let ago = now.saturating_sub(secs);
    if ago < 0 {
        return "in the future".into();
    }
    let (days, hours, minutes) = (ago / 86_400, ago % 86_400 / 3_600, ago % 3_600 / 60);
    match (days, hours, minutes) {
        (0, 0, 0) => "just now".into(),
        (0, 0, m) => format!("{m} min ago"),
        (0, h, m) => format!("{h} h {m} min ago"),
        (d, h, _) => format!("{d} d {h} h ago"),
    }
}

/// A byte count as a table cell: readable, with the exact count beside it.
fn bytes_cells(bytes: u64) -> String {
    format!(
        r#"<td class="n">{}</td><td class="n exact">{bytes}</td>"#,
        escape(&human_bytes(bytes))
    )
}

/// The whole page for `report`.
pub fn page(report: &SpaceReport) -> String {
    let mut out = String::new();
    let store = escape(&report.store);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>snapfs report: {store}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <h1>Where the space went</h1>\n<p class=\"meta\">Store <code>{store}</code>, \
         report made {}. Sizes are stored bytes (after deduplication and compression).</p>\n",
        format_rfc3339(report.now)
    );
    space_now(&mut out, report);
    let span = TimeSpan::of(report);
    history(&mut out, report, &span);
    snapshots(&mut out, report, &span);
    vaults(&mut out, &report.vaults, report.now);
    jobs(&mut out, &report.jobs);
    out.push_str("</body>\n</html>\n");
    out
}

fn swatch(colour: &str) -> String {
    format!(r#"<span class="swatch" style="background: {colour}"></span>"#)
}

fn space_now(out: &mut String, report: &SpaceReport) {
    out.push_str("<h2>Space now</h2>\n<table class=\"space\">\n");
    out.push_str("<tr><th></th><th class=\"n\">stored</th><th class=\"n\">bytes</th></tr>\n");
    for layer in &LAYERS {
        let _ = writeln!(
            out,
            "<tr><td>{}{}</td>{}</tr>",
            swatch(layer.colour),
            escape(layer.name),
            bytes_cells((layer.value)(&report.space))
        );
    }
    let _ = writeln!(
        out,
        "<tr><th>total stored</th>{}</tr>\n</table>",
        bytes_cells(report.space.stored_bytes)
    );
}

fn legend(out: &mut String) {
    out.push_str("<ul class=\"legend\">");
    for layer in &LAYERS {
        let _ = write!(
            out,
            "<li>{}{}</li>",
            swatch(layer.colour),
            escape(layer.name)
        );
    }
    out.push_str("</ul>\n");
}

fn history(out: &mut String, report: &SpaceReport, span: &TimeSpan) {
    out.push_str("<h2>Stored bytes over time</h2>\n");
    legend(out);
    out.push_str(&space_chart(report, span));
    let samples = report.history.len();
    let text = match (report.history.first(), report.history.last()) {
        (Some(first), Some(last)) => format!(
            "{samples} samples from {} to {}, and the figures now. A sample is taken at every \
             snapshot change and gc, and hourly while the share is mounted; older than two days, \
             one a day is kept.",
            format_rfc3339(first.secs),
            format_rfc3339(last.secs)
        ),
        _ => "No samples yet: this store has not changed its snapshots or run gc since it \
              started keeping a space history."
            .to_owned(),
    };
    let _ = writeln!(
        out,
        "<p class=\"note\" data-samples=\"{}\">{}</p>",
        space_points(report).len(),
        escape(&text)
    );
}

fn snapshots(out: &mut String, report: &SpaceReport, span: &TimeSpan) {
    out.push_str("<h2>What each snapshot alone holds</h2>\n");
    out.push_str(
        "<p class=\"note\">Each bar: the stored bytes no other snapshot and not the live share \
         holds, which deleting that snapshot would free. A hollow triangle: a soft-deleted \
         snapshot (what those hold is counted together, above).</p>\n",
    );
    out.push_str(&snapshot_chart(report, span));
    if report.snapshots.is_empty() {
        return;
    }
    out.push_str(
        "<table class=\"snapshots\">\n<tr><th>snapshot</th><th>taken</th>\
         <th class=\"n\">alone holds</th><th class=\"n\">bytes</th><th>state</th></tr>\n",
    );
    let skipped = report.snapshots.len().saturating_sub(SNAPSHOT_ROWS);
    for snapshot in report.snapshots.iter().skip(skipped) {
        let cells = match snapshot.unique_bytes {
            Some(bytes) => bytes_cells(bytes),
            None => "<td class=\"n\"></td><td class=\"n\"></td>".to_owned(),
        };
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td class=\"t\">{}</td>{cells}<td>{}</td></tr>",
            escape(&snapshot.name),
            format_rfc3339(snapshot.created),
            if snapshot.deleted { "soft-deleted" } else { "" },
        );
    }
    out.push_str("</table>\n");
    if skipped > 0 {
        let _ = writeln!(
            out,
            "<p class=\"note\">The {skipped} oldest snapshots are drawn above but not listed.</p>"
        );
    }
}

fn vaults(out: &mut String, vaults: &[VaultBackups], now: i64) {
    out.push_str("<h2>Backups per vault</h2>\n");
    if vaults.is_empty() {
        out.push_str("<p class=\"note\">No backups in the job log.</p>\n");
        return;
    }
    out.push_str(
        "<table class=\"vaults\">\n<tr><th>vault</th><th>latest backup</th><th>its age</th>\
         <th class=\"n\">added</th><th class=\"n\">bytes</th><th class=\"n\">backups</th>\
         <th class=\"n\">failed</th><th>newer failure</th></tr>\n",
    );
    for vault in vaults {
        let (latest, latest_age) = match &vault.latest {
            Some(mark) => (
                format!("{} at {}", escape(&mark.name), escape(&mark.time)),
                age(mark.secs, now),
            ),
            None => ("none".to_owned(), String::new()),
        };
        let failure = match &vault.last_failure {
            Some(mark) => format!(
                "<td class=\"failed\">{} at {}: {}</td>",
                escape(&mark.name),
                escape(&mark.time),
                escape(mark.error.as_deref().unwrap_or(""))
            ),
            None => "<td></td>".to_owned(),
        };
        let _ = writeln!(
            out,
            "<tr{}><td>{}</td><td>{latest}</td><td class=\"t\">{latest_age}</td>{}\
             <td class=\"n\">{}</td><td class=\"n\">{}</td>{failure}</tr>",
            if vault.last_failure.is_some() {
                " class=\"failed\""
            } else {
                ""
            },
            escape(&vault.vault),
            bytes_cells(vault.bytes_added),
            vault.backups,
            vault.failures,
        );
    }
    out.push_str("</table>\n<p class=\"note\">From the job log (its newest 1,000 jobs).</p>\n");
}

fn jobs(out: &mut String, jobs: &[Job]) {
    let failed = jobs.iter().filter(|job| !job.ok).count();
    let _ = writeln!(
        out,
        "<h2>Recent jobs</h2>\n<p class=\"note\">The newest {}, {failed} of them failed.</p>",
        jobs.len()
    );
    if jobs.is_empty() {
        return;
    }
    out.push_str(
        "<table class=\"jobs\">\n<tr><th class=\"n\">#</th><th>started</th><th>kind</th>\
         <th>target</th><th class=\"n\">bytes</th><th>by</th><th>outcome</th></tr>\n",
    );
    for job in jobs {
        let outcome = match &job.error {
            None if job.ok => "ok".to_owned(),
            None => "<span class=\"failed\">FAILED</span>".to_owned(),
            Some(error) => format!("FAILED: {}", escape(error)),
        };
        let _ = writeln!(
            out,
            "<tr{}><td class=\"n\">{}</td><td class=\"t\">{}</td><td>{}</td><td>{}</td>\
             <td class=\"n\">{}</td><td>{}</td><td{}>{outcome}</td></tr>",
            if job.ok { "" } else { " class=\"failed\"" },
            job.id,
            format_rfc3339(job.started),
            escape(&job.kind),
            escape(&job.target),
            escape(&human_bytes(job.bytes)),
            if job.automatic { "schedule" } else { "command" },
            if job.ok { "" } else { " class=\"failed\"" },
        );
    }
    out.push_str("</table>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::replies::{BackupMark, Space};

    fn empty() -> SpaceReport {
        SpaceReport {
            store: "/srv/<store>".into(),
            now: 1_000_000,
            space: Space::default(),
            history: Vec::new(),
            snapshots: Vec::new(),
            vaults: Vec::new(),
            jobs: Vec::new(),
        }
    }

    #[test]
    fn ages() {
        assert_eq!(age(100, 100), "just now");
        assert_eq!(age(100, 100 + 125), "2 min ago");
        assert_eq!(age(0, 3 * 3_600 + 60), "3 h 1 min ago");
        assert_eq!(age(0, 2 * 86_400 + 5 * 3_600), "2 d 5 h ago");
        assert_eq!(age(10, 0), "in the future");
    }

    #[test]
    fn a_fresh_store_makes_a_whole_page_without_script_or_links() {
        let html = page(&empty());
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.trim_end().ends_with("</html>"));
        assert!(html.contains("/srv/&lt;store&gt;") && !html.contains("<store>"));
        assert!(html.contains("No space history yet"));
        assert!(html.contains("No backups in the job log."));
        for absent in ["<script", "http://", "https://", "src=", "href=", "@import"] {
            assert!(!html.contains(absent), "{absent}");
        }
        assert_eq!(html.matches("<svg").count(), 2);
        assert_eq!(html.matches("</svg>").count(), 2);
    }

    #[test]
    fn failures_are_marked() {
        let mut report = empty();
        report.jobs = vec![
            Job {
                id: 2,
                kind: "backup".into(),
                target: "s -> /v".into(),
                ok: false,
                error: Some("<denied>".into()),
                ..Job::default()
            },
            Job {
                id: 1,
                kind: "gc".into(),
                ok: true,
                ..Job::default()
            },
        ];
        report.vaults = vec![VaultBackups {
            vault: "/v".into(),
            backups: 1,
            bytes_added: 4096,
            latest: Some(BackupMark {
                name: "s".into(),
                time: format_rfc3339(report.now - 7_200),
                secs: report.now - 7_200,
                error: None,
            }),
            ..VaultBackups::default()
        }];
        let html = page(&report);
        assert_eq!(html.matches("<tr class=\"failed\">").count(), 1);
        assert!(html.contains("FAILED: &lt;denied&gt;"));
        assert!(html.contains("1 of them failed") || html.contains("2, 1 of them failed"));
        assert!(html.contains("2 h 0 min ago"));
        assert!(html.contains("<td class=\"n exact\">4096</td>"));
    }
}
