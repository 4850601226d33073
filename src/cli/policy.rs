//! `snapfs policy show|set`: the snapshot schedule, retention and soft delete of a store.

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
            change,
            target,
            json,
        } => (PolicyAction::Set(change), target, json),
    };
    let report: PolicyReport = target
        .resolve(on_failure)?
        .execute(Request::Policy { action })?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.description);
        if let Some(next) = report.next_snapshot {
            println!("next automatic snapshot: {next}");
        }
    }
    Ok(())
}
