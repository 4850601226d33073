//! `snapfs diff` and `snapfs log`: what changed between two trees, and the versions of a path.

use clap::Args;

use super::human_bytes;
use super::target::TargetArgs;
use crate::format::inode::InodeKind;
use crate::history::diff::Change;
use crate::history::log::Version;
use crate::schedule::calendar::format_rfc3339;
use crate::service::Request;
use crate::service::request::{DiffArgs, LogArgs};

#[derive(Args, Debug)]
pub struct DiffCommand {
    #[command(flatten)]
    pub args: DiffArgs,
    #[command(flatten)]
    pub target: TargetArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct LogCommand {
    #[command(flatten)]
    pub args: LogArgs,
    #[command(flatten)]
    pub target: TargetArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

fn kind_name(kind: InodeKind) -> &'static str {
    match kind {
        InodeKind::File => "file",
        InodeKind::Directory => "directory",
        InodeKind::Symlink => "symlink",
        InodeKind::Fifo => "fifo",
        InodeKind::Socket => "socket",
        InodeKind::CharDevice => "character device",
        InodeKind::BlockDevice => "block device",
    }
}

pub fn diff(command: DiffCommand, on_failure: Option<&str>) -> anyhow::Result<()> {
    let changes: Vec<Change> = command
        .target
        .resolve(on_failure)?
        .execute(Request::Diff(command.args))?;
    if command.json {
        println!("{}", serde_json::to_string_pretty(&changes)?);
        return Ok(());
    }
    // One line per change, marked as `zfs diff` does: + added, - removed, M modified, R type.
    for change in &changes {
        match change {
            Change::Added { path, .. } => println!("+  {path}"),
            Change::Removed { path, .. } => println!("-  {path}"),
            Change::Modified { path, what, .. } => {
                let what: Vec<String> = what
                    .iter()
                    .map(|w| format!("{w:?}").to_lowercase())
                    .collect();
                println!("M  {path}  ({})", what.join(", "));
            }
            Change::TypeChanged {
                path,
                before,
                after,
            } => println!(
                "R  {path}  ({} -> {})",
                kind_name(before.kind),
                kind_name(after.kind)
            ),
        }
    }
    Ok(())
}

pub fn log(command: LogCommand, on_failure: Option<&str>) -> anyhow::Result<()> {
    let versions: Vec<Version> = command
        .target
        .resolve(on_failure)?
        .execute(Request::Log(command.args))?;
    if command.json {
        println!("{}", serde_json::to_string_pretty(&versions)?);
        return Ok(());
    }
    println!(
        "{:<28} {:<21} {:<10} {:>10}  {:<16} UNTIL",
        "SNAPSHOT", "TIME", "KIND", "SIZE", "HASH"
    );
    for version in &versions {
        let hash = version.hash.as_deref().unwrap_or("-");
        println!(
            "{:<28} {:<21} {:<10} {:>10}  {:<16} {}",
            version.snapshot,
            format_rfc3339(version.time),
            kind_name(version.kind),
            human_bytes(version.size),
            &hash[..hash.len().min(16)],
            version.last_snapshot
        );
    }
    Ok(())
}
