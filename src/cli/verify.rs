//! `snapfs verify`: check the store and report which files damaged chunks affect.

use std::io::{IsTerminal, Write};

use anyhow::bail;
use clap::Args;

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
}

pub fn run(args: VerifyCommand, on_failure: Option<&str>) -> anyhow::Result<()> {
    let terminal = std::io::stderr().is_terminal();
    let target = args.target.resolve(on_failure)?;
    // Progress shows when the check runs here; a daemon reports only at the end.
    let report: VerifyReport =
        target.execute_with_progress(Request::Verify(args.request), &mut |done, total| {
            if terminal {
                eprint!("\rverify: {done}/{total} chunks");
                let _ = std::io::stderr().flush();
            }
        })?;
    if terminal {
        eprintln!();
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
