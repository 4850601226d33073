//! `snapfs verify`: check the store and report which files damaged chunks affect.

use anyhow::bail;
use clap::Args;

use super::progress::{ProgressArgs, with_progress};
use super::target::TargetArgs;
use crate::service::Request;
use crate::service::request::VerifyArgs as VerifyRequest;
use crate::verify::VerifyReport;

#[derive(Args, Debug)]
pub struct VerifyCommand {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub request: VerifyRequest,
    #[command(flatten)]
    pub progress: ProgressArgs,
}

pub fn run(args: VerifyCommand, on_failure: Option<&str>) -> anyhow::Result<()> {
    let target = args.target.resolve(on_failure)?;
    let report: VerifyReport = with_progress("verify", args.progress.json, |progress| {
        target.execute_with_progress(Request::Verify(args.request), progress)
    })?;
    if args.progress.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        if !report.is_clean() {
            bail!(
                "{} of {} chunks damaged",
                report.damaged.len(),
                report.chunks_checked
            );
        }
        return Ok(());
    }
    for damage in &report.damaged {
        println!("damaged chunk {}: {}", damage.chunk, damage.problem);
        for place in &damage.affected {
            println!("    {place}");
        }
    }
    if report.is_clean() {
        println!(
            "verify: {} chunks checked, no damage",
            report.chunks_checked
        );
        Ok(())
    } else {
        bail!(
            "{} of {} chunks damaged, affecting {} files",
            report.damaged.len(),
            report.chunks_checked,
            report
                .damaged
                .iter()
                .map(|d| d.affected.len())
                .sum::<usize>()
        )
    }
}
