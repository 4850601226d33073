//! `snapfs restore`, `snapfs rollback` and `snapfs clone`: put a snapshot's content back into
//! the live share (by reference, storing no data), or into a new store.

use clap::Args;

use super::human_bytes;
use super::progress::ProgressArgs;
use super::target::TargetArgs;
use crate::service::Request;
use crate::service::request::{CloneArgs, RestoreArgs, Snapshot};
use crate::snapshot::{CloneReport, RestoreReport, RollbackReport, TreeCounts};

#[derive(Args, Debug)]
pub struct RestoreCommand {
    #[command(flatten)]
    pub args: RestoreArgs,
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub progress: ProgressArgs,
}

#[derive(Args, Debug)]
pub struct RollbackCommand {
    #[command(flatten)]
    pub args: Snapshot,
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub progress: ProgressArgs,
}

#[derive(Args, Debug)]
pub struct CloneCommand {
    #[command(flatten)]
    pub args: CloneArgs,
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub progress: ProgressArgs,
}

fn counts(counts: &TreeCounts) -> String {
    format!(
        "{} files, {} directories, {} others, {}",
        counts.files,
        counts.dirs,
        counts.others,
        human_bytes(counts.bytes)
    )
}

pub fn restore(command: RestoreCommand, on_failure: Option<&str>) -> anyhow::Result<()> {
    let (snapshot, path) = (command.args.snapshot.clone(), command.args.path.clone());
    let to = command.args.to.clone().unwrap_or_else(|| path.clone());
    let Some(report) = command
        .target
        .resolve(on_failure)?
        .execute_shown::<RestoreReport>(
            "restore",
            command.progress,
            Request::Restore(command.args),
        )?
    else {
        return Ok(());
    };
    println!(
        "restored {path} from {snapshot} to {to}: {} (stored {})",
        counts(&report.restored),
        human_bytes(report.bytes_stored)
    );
    Ok(())
}

pub fn rollback(command: RollbackCommand, on_failure: Option<&str>) -> anyhow::Result<()> {
    let snapshot = command.args.snapshot.clone();
    let Some(report) = command
        .target
        .resolve(on_failure)?
        .execute_shown::<RollbackReport>(
            "rollback",
            command.progress,
            Request::Rollback(command.args),
        )?
    else {
        return Ok(());
    };
    println!(
        "rolled the share back to {snapshot}: {}; the state before is snapshot {}",
        counts(&report.restored),
        report.safety_snapshot
    );
    Ok(())
}

pub fn clone(command: CloneCommand, on_failure: Option<&str>) -> anyhow::Result<()> {
    let (snapshot, new_store) = (
        command.args.snapshot.clone(),
        command.args.new_store.clone(),
    );
    let mut args = command.args;
    // The daemon may run elsewhere than here: it gets an absolute path.
    args.new_store = std::path::absolute(&args.new_store)?;
    let Some(report) = command
        .target
        .resolve(on_failure)?
        .execute_shown::<CloneReport>("clone", command.progress, Request::Clone(args))?
    else {
        return Ok(());
    };
    println!(
        "cloned {snapshot} into a new store at {}: {}, {} chunks copied",
        new_store.display(),
        counts(&report.cloned),
        report.chunks_copied
    );
    Ok(())
}
