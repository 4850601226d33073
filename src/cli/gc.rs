//! `snapfs gc`: reclaim the space of chunks that no snapshot and not the live share uses.

use anyhow::Context;
use clap::Args;

use super::snapshot::human_bytes;
use super::target::{Target, TargetArgs, send};
use crate::gc::{GcReport, collect};

#[derive(Args, Debug)]
pub struct GcArgs {
    #[command(flatten)]
    pub target: TargetArgs,
}

pub fn run(args: GcArgs) -> anyhow::Result<()> {
    let report: GcReport = match args.target.resolve()? {
        Target::Mounted { control } => {
            let json = send(&control, "gc")?;
            serde_json::from_str(&json).context("unexpected report from the daemon")?
        }
        Target::Offline(offline) => collect(&offline.snapshots)?,
    };
    println!(
        "gc: removed {} unused chunks, rewrote {} packs, freed {} ({} bytes)",
        report.chunks_removed,
        report.packs_rewritten,
        human_bytes(report.bytes_freed),
        report.bytes_freed
    );
    if !report.damaged.is_empty() {
        eprintln!(
            "gc: {} damaged chunks were left in place: {:?}",
            report.damaged.len(),
            report.damaged
        );
    }
    Ok(())
}
