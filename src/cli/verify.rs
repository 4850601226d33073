//! `snapfs verify`: check the store and report which files damaged chunks affect.

use std::io::{IsTerminal, Write};

use anyhow::{Context, bail};
use clap::Args;

use super::target::{Target, TargetArgs, send};
use crate::verify::{VerifyOptions, VerifyReport, verify};

#[derive(Args, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Check one snapshot only.
    #[arg(long)]
    pub snapshot: Option<String>,
    /// Check that every chunk is indexed and inside an existing pack, without reading it.
    #[arg(long)]
    pub quick: bool,
}

pub fn run(args: VerifyArgs) -> anyhow::Result<()> {
    let options = VerifyOptions {
        snapshot: args.snapshot.clone(),
        quick: args.quick,
    };
    let report: VerifyReport = match args.target.resolve()? {
        Target::Mounted { control } => {
            let verb = if args.quick { "verify-quick" } else { "verify" };
            let command = format!("{verb} {}", args.snapshot.as_deref().unwrap_or(""));
            serde_json::from_str(&send(&control, command.trim())?)
                .context("unexpected report from the daemon")?
        }
        Target::Offline(offline) => {
            let terminal = std::io::stderr().is_terminal();
            let report = verify(&offline.snapshots, &options, &mut |done, total| {
                if terminal {
                    eprint!("\rverify: {done}/{total} chunks");
                    let _ = std::io::stderr().flush();
                }
            })?;
            if terminal {
                eprintln!();
            }
            report
        }
    };
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
