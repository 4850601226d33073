//! The `snapfs` command: one file per subcommand.

pub mod gc;
pub mod init;
pub mod mount;
pub mod snapshot;
mod target;
pub mod umount;
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
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create an empty store.
    Init(init::InitArgs),
    /// Serve a store at a mountpoint; stays in the foreground until unmounted.
    Mount(mount::MountArgs),
    /// Flush everything, unmount, and wait for the daemon to exit.
    #[command(alias = "unmount")]
    Umount(umount::UmountArgs),
    /// Create, list, show and delete snapshots.
    Snapshot(snapshot::SnapshotArgs),
    /// Reclaim the space no snapshot and not the live share uses.
    Gc(gc::GcArgs),
    /// Check every chunk in use; report the files damaged chunks affect (exit 1 if any).
    Verify(verify::VerifyArgs),
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Init(args) => init::run(args),
        Command::Mount(args) => mount::run(args),
        Command::Umount(args) => umount::run(args),
        Command::Snapshot(args) => snapshot::run(args),
        Command::Gc(args) => gc::run(args),
        Command::Verify(args) => verify::run(args),
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
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("131072"), Ok(131072));
        assert_eq!(parse_size("128K"), Ok(131072));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("").is_err());
    }
}
