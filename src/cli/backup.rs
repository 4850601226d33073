//! `snapfs backup [SNAPSHOT] --to VAULT --mount M|--store S`: copy a snapshot (or one taken
//! now) into a vault. It is a request like any other: a mounted store's daemon runs it (it
//! alone may read the store), an unmounted store is opened here. The vault's secret and S3
//! settings come from this command's environment and travel with the request.

use clap::Args;

use super::progress::ProgressArgs;
use super::target::TargetArgs;
use super::vault::KeyArgs;
use crate::service::Request;
use crate::service::request::BackupArgs;
use crate::vault::backup::BackupReport;

#[derive(Args, Debug)]
pub struct BackupCommand {
    /// The snapshot to back up; without one, a snapshot is taken now.
    pub snapshot: Option<String>,
    /// The vault: a local directory or s3://bucket/prefix.
    #[arg(long)]
    pub to: String,
    #[command(flatten)]
    pub key: KeyArgs,
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub progress: ProgressArgs,
}

pub fn run(command: BackupCommand, on_failure: Option<&str>) -> anyhow::Result<()> {
    let mut to = command.to.clone();
    if !to.contains("://") {
        // The daemon may run elsewhere than here: it gets an absolute path.
        to = std::path::absolute(&to)?.display().to_string();
    }
    let request = Request::Backup(BackupArgs {
        snapshot: command.snapshot,
        to,
        access: command.key.access()?,
    });
    let Some(report) = command
        .target
        .resolve(on_failure)?
        .execute_shown::<BackupReport>("backup", command.progress, request)?
    else {
        return Ok(());
    };
    if report.already_there {
        println!("{} is already in the vault", report.name);
    } else {
        let copied = if report.packs_copied > 0 {
            format!(
                " ({} of it in {} packs copied by the object store)",
                super::human_bytes(report.bytes_copied),
                report.packs_copied
            )
        } else {
            String::new()
        };
        println!(
            "backed up {} to {}: {} objects, {} added to the vault{copied}",
            report.name,
            command.to,
            report.objects_sent,
            super::human_bytes(report.bytes_added)
        );
    }
    Ok(())
}
