//! `snapfs policy show|set`: the snapshot schedule, retention and soft delete of a store, and
//! its backup schedule (vaults, times, key file).

use clap::{Args, Subcommand};

use super::target::TargetArgs;
use crate::service::Request;
use crate::service::replies::PolicyReport;
use crate::service::request::{PolicyAction, PolicySetArgs};

#[derive(Args, Debug)]
pub struct PolicyArgs {
    #[command(subcommand)]
    pub command: PolicyCommand,
}

// Parsed once per command: the size of the `Set` variant costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Show the policy and when the next automatic snapshot is due.
    Show {
        #[command(flatten)]
        target: TargetArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change the policy (a mounted share applies it at once, without remount).
    Set {
        #[command(flatten)]
        change: PolicySetArgs,
        #[command(flatten)]
        target: TargetArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(args: PolicyArgs, on_failure: Option<&str>) -> anyhow::Result<()> {
    let (action, target, json) = match args.command {
        PolicyCommand::Show { target, json } => (PolicyAction::Show, target, json),
        PolicyCommand::Set {
            mut change,
            target,
            json,
        } => {
            // The daemon's working directory is not ours: it gets absolute paths.
            for vault in &mut change.backup_to {
                if vault != "none" && !vault.contains("://") {
                    *vault = std::path::absolute(&*vault)?.display().to_string();
                }
            }
            if let Some(file) = &mut change.backup_key_file
                && file != "none"
            {
                *file = std::path::absolute(&*file)?.display().to_string();
            }
            (PolicyAction::Set(change), target, json)
        }
    };
    let report: PolicyReport = target
        .resolve(on_failure)?
        .execute(Request::Policy { action })?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.description);
        if let Some(next) = &report.next_snapshot {
            let next = super::status::in_zone(next, &report.policy.timezone);
            println!("next automatic snapshot: {next}");
        }
        if let Some(next) = &report.next_backup {
            let next = super::status::in_zone(next, &report.backup.timezone);
            println!("next scheduled backup: {next}");
        }
    }
    Ok(())
}
