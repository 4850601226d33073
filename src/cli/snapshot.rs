//! `snapfs snapshot create|list|show|delete`.

use std::collections::HashMap;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use super::target::{Target, TargetArgs, send};
use crate::format::catalog::Origin;
use crate::gc::usage::{Usage, usage};
use crate::snapshot::control::format_time;

#[derive(Args, Debug)]
pub struct SnapshotArgs {
    #[command(subcommand)]
    pub command: SnapshotCommand,
}

#[derive(Subcommand, Debug)]
pub enum SnapshotCommand {
    /// Take a snapshot of the share now.
    Create {
        name: String,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// List snapshots, with the bytes each alone holds.
    List {
        #[command(flatten)]
        target: TargetArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one snapshot.
    Show {
        name: String,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Delete a snapshot (its unique data becomes reclaimable by `snapfs gc`).
    Delete {
        name: String,
        #[command(flatten)]
        target: TargetArgs,
    },
}

/// One row of `list`.
#[derive(serde::Serialize)]
struct Listed {
    name: String,
    created: String,
    origin: &'static str,
    root: String,
    unique_bytes: u64,
}

fn listed(target: &Target) -> anyhow::Result<Vec<Listed>> {
    match target {
        Target::Mounted { control } => {
            let usage: Usage = serde_json::from_str(&send(control, "usage")?)
                .context("unexpected usage report from the daemon")?;
            let status = std::fs::read_to_string(control)?;
            Ok(status
                .lines()
                .skip(2)
                .filter_map(|line| {
                    let fields: Vec<&str> = line.split('\t').collect();
                    let [name, created, origin, root] = fields[..] else {
                        return None;
                    };
                    Some(Listed {
                        name: name.to_owned(),
                        created: created.to_owned(),
                        origin: if origin == "automatic" {
                            "automatic"
                        } else {
                            "manual"
                        },
                        root: root.to_owned(),
                        unique_bytes: usage.unique_bytes.get(name).copied().unwrap_or(0),
                    })
                })
                .collect())
        }
        Target::Offline(offline) => {
            let usage = usage(&offline.snapshots)?;
            Ok(offline
                .snapshots
                .list()
                .into_iter()
                .map(|(name, record)| Listed {
                    unique_bytes: usage.unique_bytes.get(&name).copied().unwrap_or(0),
                    created: format_time(record.created.secs),
                    origin: match record.origin {
                        Origin::Manual => "manual",
                        Origin::Automatic => "automatic",
                    },
                    root: record.root.to_hex(),
                    name,
                })
                .collect())
        }
    }
}

pub fn human_bytes(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

pub fn run(args: SnapshotArgs) -> anyhow::Result<()> {
    match args.command {
        SnapshotCommand::Create { name, target } => {
            match target.resolve()? {
                Target::Mounted { control } => {
                    send(&control, &format!("create {name}"))?;
                }
                Target::Offline(offline) => {
                    offline.snapshots.create(&name, Origin::Manual)?;
                }
            }
            println!("created snapshot {name}");
        }
        SnapshotCommand::Delete { name, target } => {
            match target.resolve()? {
                Target::Mounted { control } => {
                    send(&control, &format!("delete {name}"))?;
                }
                Target::Offline(offline) => offline.snapshots.delete(&name)?,
            }
            println!("deleted snapshot {name} (run `snapfs gc` to reclaim its space)");
        }
        SnapshotCommand::List { target, json } => {
            let rows = listed(&target.resolve()?)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                println!(
                    "{:<32} {:<21} {:<10} {:>12}",
                    "NAME", "CREATED", "ORIGIN", "UNIQUE"
                );
                for row in rows {
                    println!(
                        "{:<32} {:<21} {:<10} {:>12}",
                        row.name,
                        row.created,
                        row.origin,
                        human_bytes(row.unique_bytes)
                    );
                }
            }
        }
        SnapshotCommand::Show { name, target } => {
            let rows = listed(&target.resolve()?)?;
            let Some(row) = rows.into_iter().find(|r| r.name == name) else {
                bail!("no snapshot named {name:?}");
            };
            let by_field: HashMap<&str, String> = HashMap::from([
                ("name", row.name.clone()),
                ("created", row.created.clone()),
                ("origin", row.origin.to_owned()),
                ("root", row.root.clone()),
                (
                    "unique",
                    format!(
                        "{} ({} bytes)",
                        human_bytes(row.unique_bytes),
                        row.unique_bytes
                    ),
                ),
            ]);
            for field in ["name", "created", "origin", "root", "unique"] {
                println!("{field:<8} {}", by_field[field]);
            }
        }
    }
    Ok(())
}
