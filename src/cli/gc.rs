//! `snapfs gc`: reclaim the space of chunks that no snapshot and not the live share uses.

use clap::Args;

use super::human_bytes;
use super::progress::ProgressArgs;
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
    let Some(report) = args.target.resolve(on_failure)?.execute_shown::<GcReport>(
        "gc",
        args.progress,
        Request::Gc,
    )?
    else {
        return Ok(());
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
