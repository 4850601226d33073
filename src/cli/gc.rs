//! `snapfs gc`: reclaim the space of chunks that no snapshot and not the live share uses.

use clap::Args;

use super::human_bytes;
use super::progress::{ProgressArgs, with_progress};
use super::target::TargetArgs;
use crate::gc::GcReport;
use crate::service::Request;

#[derive(Args, Debug)]
pub struct GcArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub progress: ProgressArgs,
}

pub fn run(args: GcArgs, on_failure: Option<&str>) -> anyhow::Result<()> {
    let target = args.target.resolve(on_failure)?;
    let report: GcReport = with_progress("gc", args.progress.json, |progress| {
        target.execute_with_progress(Request::Gc, progress)
    })?;
    if args.progress.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
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
