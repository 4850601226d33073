//! The `snapfs` command: one file per subcommand (or group of subcommands). Commands that act
//! on a store build a [`crate::service::Request`] and hand it to their target (`target.rs`).

pub mod backup;
pub mod completions;
pub mod daemon;
pub mod destroy;
mod follow;
pub mod gc;
pub mod history;
pub mod init;
pub mod install;
pub mod logging;
pub mod man;
pub mod mount;
pub mod mount_helper;
pub mod policy;
pub mod progress;
pub mod report;
pub mod restore;
pub mod snapshot;
pub mod status;
mod target;
pub mod tier;
pub mod umount;
pub mod vault;
pub mod vault_mount;
pub mod verify;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "snapfs",
    version,
    about = "A FUSE file share with browsable snapshots on a verified, deduplicating chunk store"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Run this shell command when a job this command runs on an unmounted store fails, with
    /// the job's details in its environment (SNAPFS_JOB_*). A mounted store's daemon runs the
    /// command given to `snapfs mount --on-failure` instead.
    #[arg(long, global = true, value_name = "CMD")]
    pub on_failure: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create an empty store.
    Init(init::InitArgs),
    /// Serve a store at a mountpoint, in the foreground until unmounted, or (--daemon) in the
    /// background once the share serves.
    Mount(mount::MountArgs),
    /// Flush everything, unmount, and wait for the daemon to exit.
    #[command(alias = "unmount")]
    Umount(umount::UmountArgs),
    /// Create, list, show, delete, undelete, purge, hold and release snapshots.
    Snapshot(snapshot::SnapshotArgs),
    /// Put a file or tree from a snapshot back into the live share, by reference (no copy).
    Restore(restore::RestoreCommand),
    /// Return the whole live share to a snapshot (after an automatic safety snapshot).
    Rollback(restore::RollbackCommand),
    /// Make a new, independent store whose share starts as a snapshot.
    Clone(restore::CloneCommand),
    /// What changed between two snapshots, or a snapshot and `live`.
    Diff(history::DiffCommand),
    /// The distinct versions of a file or directory across snapshots.
    Log(history::LogCommand),
    /// Show or change automatic snapshots, retention and soft delete.
    Policy(policy::PolicyArgs),
    /// The share, its policy, the next snapshot, recent jobs and failures, space use.
    Status(status::StatusCommand),
    /// A picture of where the space went: stored bytes over time, what each snapshot alone
    /// holds, backups per vault, recent jobs; one self-contained HTML file (or JSON).
    Report(report::ReportCommand),
    /// Reclaim the space no snapshot and not the live share uses.
    Gc(gc::GcArgs),
    /// Check every chunk in use; report the files damaged chunks affect (exit 1 if any).
    Verify(verify::VerifyCommand),
    /// Remove a store that has no snapshots.
    Destroy(destroy::DestroyArgs),
    /// Copy a snapshot into a backup vault.
    Backup(backup::BackupCommand),
    /// Backup vaults: create, list, restore.
    Vault(vault::VaultArgs),
    /// A tiered store's cache, uploads and checkpoints.
    Tier(tier::TierArgs),
    /// Disaster recovery: make a new store from a tiered share's newest checkpoint (the
    /// namespace first; data is fetched as it is read).
    Attach(tier::AttachArgs),
    /// Print the shell completion script for bash, zsh or fish.
    Completions(completions::CompletionsArgs),
    /// Print the manual page, or write every page (one per subcommand) into a directory.
    Man(man::ManArgs),
    /// Install the binary, the mount(8) helper, the systemd unit, completions and manual pages.
    Install(install::InstallArgs),
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    let on_failure = cli.on_failure.as_deref();
    match cli.command {
        Command::Init(args) => init::run(args),
        Command::Mount(args) => mount::run(args),
        Command::Umount(args) => umount::run(args),
        Command::Snapshot(args) => snapshot::run(args, on_failure),
        Command::Restore(args) => restore::restore(args, on_failure),
        Command::Rollback(args) => restore::rollback(args, on_failure),
        Command::Clone(args) => restore::clone(args, on_failure),
        Command::Diff(args) => history::diff(args, on_failure),
        Command::Log(args) => history::log(args, on_failure),
        Command::Policy(args) => policy::run(args, on_failure),
        Command::Status(args) => status::run(args, on_failure),
        Command::Report(args) => report::run(args, on_failure),
        Command::Gc(args) => gc::run(args, on_failure),
        Command::Verify(args) => verify::run(args, on_failure),
        Command::Destroy(args) => destroy::run(args),
        Command::Backup(args) => backup::run(args, on_failure),
        Command::Vault(args) => vault::run(args, on_failure),
        Command::Tier(args) => tier::run(args, on_failure),
        Command::Attach(args) => tier::attach(args),
        Command::Completions(args) => completions::run(args),
        Command::Man(args) => man::run(args),
        Command::Install(args) => install::run(args),
    }
}

/// `1.5 GiB`, `12 B`.
pub fn human_bytes(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

/// Parses sizes such as `131072`, `128K`, `128KiB` or `1M`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("not a size: {text:?}"))?;
    let factor = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("unknown size unit in {text:?} (use K, M or G)")),
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("size too large: {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::{Cli, parse_size};

    /// clap's own consistency checks over every command (unique names and groups, valid
    /// defaults); without them a mistake shows only as a panic of a debug build at run time.
    #[test]
    fn the_command_line_is_consistent() {
        <Cli as clap::CommandFactory>::command().debug_assert();
        super::mount_helper::helper_command().debug_assert();
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("131072"), Ok(131072));
        assert_eq!(parse_size("128K"), Ok(131072));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("").is_err());
    }
}
