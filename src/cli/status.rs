//! `snapfs status`: the share, its policy, the next scheduled snapshot, each scheduled vault
//! (last backup, a newer failure, next backup), recent jobs and failures, and space use.

use clap::Args;

use super::human_bytes;
use super::target::TargetArgs;
use crate::schedule::calendar::{Zone, format_rfc3339};
use crate::service::replies::StatusReport;
use crate::service::request::StatusArgs as StatusRequest;
use crate::service::{Job, Request};

#[derive(Args, Debug)]
pub struct StatusCommand {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub request: StatusRequest,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

fn job_line(job: &Job) -> String {
    let outcome = match &job.error {
        None => "ok".to_owned(),
        Some(error) => format!("FAILED: {error}"),
    };
    let target = if job.target.is_empty() {
        String::new()
    } else {
        format!(" {}", job.target)
    };
    format!(
        "  #{:<5} {}  {}{target}  {} ({})  {outcome}",
        job.id,
        format_rfc3339(job.started),
        job.kind,
        human_bytes(job.bytes),
        if job.automatic {
            "scheduled"
        } else {
            "command"
        },
    )
}

pub fn run(args: StatusCommand, on_failure: Option<&str>) -> anyhow::Result<()> {
    let report: StatusReport = args
        .target
        .resolve(on_failure)?
        .execute(Request::Status(args.request))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!("store:      {}", report.store);
    println!(
        "mounted:    {}",
        report.mountpoint.as_deref().unwrap_or("no")
    );
    println!(
        "snapshots:  {} ({} automatic, {} held), {} soft-deleted",
        report.snapshots,
        report.automatic_snapshots,
        report.held_snapshots,
        report.deleted_snapshots
    );
    println!(
        "next automatic snapshot: {}",
        report
            .policy
            .next_snapshot
            .as_deref()
            .map_or("none".to_owned(), |next| in_zone(
                next,
                &report.policy.policy.timezone
            ))
    );
    let space = &report.space;
    println!("space (stored bytes):");
    for (what, bytes) in [
        ("live share", space.live_bytes),
        ("snapshots only", space.snapshot_bytes),
        ("deleted snapshots", space.deleted_snapshot_bytes),
        ("reclaimable by gc", space.reclaimable_bytes),
        ("total", space.stored_bytes),
    ] {
        println!("  {what:<18} {:>12}", human_bytes(bytes));
    }
    if !report.backups.is_empty() {
        let backup_zone = &report.policy.backup.timezone;
        println!("scheduled backups:");
        for vault in &report.backups {
            println!("  {}", vault.vault);
            match &vault.last_success {
                Some(mark) => println!("    last backup:  {} at {}", mark.name, mark.time),
                None => println!("    last backup:  none yet"),
            }
            if let Some(failure) = &vault.last_failure {
                println!(
                    "    FAILED:       {} at {}: {}",
                    failure.name,
                    failure.time,
                    failure.error.as_deref().unwrap_or("")
                );
            }
            println!(
                "    next backup:  {}",
                vault
                    .next
                    .as_deref()
                    .map_or("none".to_owned(), |next| in_zone(next, backup_zone))
            );
        }
    }
    println!("policy:");
    for line in report.policy.description.lines() {
        println!("  {line}");
    }
    println!("recent jobs:");
    report
        .jobs
        .iter()
        .for_each(|job| println!("{}", job_line(job)));
    if !report.failures.is_empty() {
        println!("recent failures:");
        report
            .failures
            .iter()
            .for_each(|job| println!("{}", job_line(job)));
    }
    Ok(())
}

/// A time from a report (RFC 3339, with the zone's offset) for people: followed by the zone's
/// name unless it is UTC, so that `+01:00` reads as a place.
pub(super) fn in_zone(time: &str, zone: &Zone) -> String {
    if zone.is_utc() {
        time.to_owned()
    } else {
        format!("{time} ({zone})")
    }
}
