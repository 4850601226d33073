//! `snapfs snapshot create|list|show|delete|undelete|purge|hold|release`.

use anyhow::bail;
use clap::{Args, Subcommand};
use serde_json::Value;

use super::human_bytes;
use super::target::TargetArgs;
use crate::service::Request;
use crate::service::replies::SnapshotInfo;
use crate::service::request::{HoldArgs, ListArgs, Named};

#[derive(Args, Debug)]
pub struct SnapshotArgs {
    #[command(subcommand)]
    pub command: SnapshotCommand,
}

#[derive(Subcommand, Debug)]
pub enum SnapshotCommand {
    /// Take a snapshot of the share now (manual snapshots never expire).
    Create(On<Named>),
    /// List snapshots, with the bytes each alone holds.
    List {
        #[command(flatten)]
        args: ListArgs,
        #[command(flatten)]
        target: TargetArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one snapshot.
    Show(On<Named>),
    /// Delete a snapshot (with soft delete on, it stays recoverable for the policy's period).
    Delete(On<Named>),
    /// Bring back a soft-deleted snapshot.
    Undelete(On<Named>),
    /// Forget a soft-deleted snapshot now; `snapfs gc` then frees its data.
    Purge(On<Named>),
    /// Protect a snapshot from deletion (by hand or by retention) until released or a time.
    Hold(On<HoldArgs>),
    /// Remove a snapshot's hold.
    Release(On<Named>),
}

/// A request's arguments and the store it goes to.
#[derive(Args, Debug)]
pub struct On<A: Args> {
    #[command(flatten)]
    pub args: A,
    #[command(flatten)]
    pub target: TargetArgs,
}

fn print_table(rows: &[SnapshotInfo], deleted: bool) {
    let last = if deleted { "PURGE AT" } else { "HELD UNTIL" };
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(0).max(24);
    println!(
        "{:<width$} {:<21} {:<10} {:>12}  {last}",
        "NAME", "CREATED", "ORIGIN", "UNIQUE"
    );
    for row in rows {
        let extra = if deleted {
            row.purge_at.clone()
        } else {
            row.held_until.clone()
        };
        println!(
            "{:<width$} {:<21} {:<10} {:>12}  {}",
            row.name,
            row.created,
            row.origin,
            row.unique_bytes.map_or_else(|| "-".into(), human_bytes),
            extra.unwrap_or_default()
        );
    }
}

pub fn run(args: SnapshotArgs, on_failure: Option<&str>) -> anyhow::Result<()> {
    match args.command {
        SnapshotCommand::Create(On { args, target }) => {
            let name = args.name.clone();
            let info: SnapshotInfo = target.resolve(on_failure)?.execute(Request::Create(args))?;
            println!("created snapshot {name} ({})", info.root);
        }
        SnapshotCommand::Delete(On { args, target }) => {
            let name = args.name.clone();
            let reply: Value = target.resolve(on_failure)?.execute(Request::Delete(args))?;
            match reply["recoverable_until"].as_str() {
                Some(until) => println!(
                    "deleted snapshot {name}: recoverable with `snapfs snapshot undelete` until {until}"
                ),
                None => println!("deleted snapshot {name} (run `snapfs gc` to reclaim its space)"),
            }
        }
        SnapshotCommand::List { args, target, json } => {
            let deleted = args.deleted;
            let rows: Vec<SnapshotInfo> =
                target.resolve(on_failure)?.execute(Request::List(args))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print_table(&rows, deleted);
            }
        }
        SnapshotCommand::Show(On { args, target }) => {
            let rows: Vec<SnapshotInfo> = target
                .resolve(on_failure)?
                .execute(Request::List(ListArgs::default()))?;
            let Some(row) = rows.into_iter().find(|r| r.name == args.name) else {
                bail!("no snapshot named {:?}", args.name);
            };
            let unique = row.unique_bytes.unwrap_or(0);
            for (field, value) in [
                ("name", row.name),
                ("number", row.number.to_string()),
                ("created", row.created),
                ("origin", row.origin),
                ("root", row.root),
                (
                    "unique",
                    format!("{} ({unique} bytes)", human_bytes(unique)),
                ),
                ("held", row.held_until.unwrap_or_else(|| "no".into())),
            ] {
                println!("{field:<8} {value}");
            }
        }
        SnapshotCommand::Undelete(On { args, target }) => {
            let name = args.name.clone();
            let _: SnapshotInfo = target
                .resolve(on_failure)?
                .execute(Request::Undelete(args))?;
            println!("undeleted snapshot {name}");
        }
        SnapshotCommand::Purge(On { args, target }) => {
            let name = args.name.clone();
            let _: Value = target.resolve(on_failure)?.execute(Request::Purge(args))?;
            println!("purged deleted snapshot {name} (run `snapfs gc` to reclaim its space)");
        }
        SnapshotCommand::Hold(On { args, target }) => {
            let name = args.name.clone();
            let info: SnapshotInfo = target.resolve(on_failure)?.execute(Request::Hold(args))?;
            match info.held_until.as_deref() {
                Some("indefinite") | None => println!("snapshot {name} is held until released"),
                Some(until) => println!("snapshot {name} is held until {until}"),
            }
        }
        SnapshotCommand::Release(On { args, target }) => {
            let name = args.name.clone();
            let _: SnapshotInfo = target
                .resolve(on_failure)?
                .execute(Request::Release(args))?;
            println!("released the hold on snapshot {name}");
        }
    }
    Ok(())
}
