//! `snapfs report`: a picture of where the space went, as one self-contained HTML file
//! (`--html`), or the same data as JSON (`--json`). The data is the service's `report`
//! request (so it reads the same mounted or not); drawing it is this module's:
//! `svg.rs` the pieces of SVG, `chart.rs` the two charts, `html.rs` the page.

mod chart;
mod html;
mod svg;

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::target::TargetArgs;
use crate::service::Request;
use crate::service::replies::SpaceReport;
use crate::service::request::ReportArgs;

#[derive(Args, Debug)]
pub struct ReportCommand {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub request: ReportArgs,
    /// Write the report to this HTML file (inline SVG charts; no script, nothing fetched).
    #[arg(long, value_name = "FILE", required_unless_present = "json")]
    pub html: Option<PathBuf>,
    /// Print the report's data as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: ReportCommand, on_failure: Option<&str>) -> anyhow::Result<()> {
    let report: SpaceReport = args
        .target
        .resolve(on_failure)?
        .execute(Request::Report(args.request))?;
    if let Some(path) = &args.html {
        std::fs::write(path, html::page(&report))
            .with_context(|| format!("cannot write {}", path.display()))?;
        if !args.json {
            eprintln!(
                "report: {} ({} samples, {} snapshots)",
                path.display(),
                report.history.len(),
                report.snapshots.len()
            );
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}
