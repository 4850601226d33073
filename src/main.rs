//! The `snapfs` command-line entry point: parse, set up logging, dispatch.

use clap::Parser;
use nix::sys::signal::{SigHandler, Signal, signal};
use snapfs::cli::{Cli, Command};
use tracing_subscriber::EnvFilter;

/// Makes a command whose reader goes away (`snapfs status | head`) end as `ls | head` does:
/// killed by SIGPIPE, which shells do not report. Rust starts programs with SIGPIPE ignored,
/// so a write to a closed pipe fails with `EPIPE`, and `println!` turns that into a panic.
/// Every command's output goes through this one switch. The daemon (`mount`) keeps ignoring
/// SIGPIPE: a log reader that goes away must not take the mount down with it. The other
/// commands write their output only once their work is done and durable, so being killed
/// while writing it loses nothing.
fn end_quietly_when_the_reader_goes_away() {
    // SAFETY: SIG_DFL installs no handler, so no code of ours can run in signal context; this
    // runs on the main thread before any other thread exists.
    // It cannot fail for SIGPIPE; if it did, output would fail with an error as before.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
}

fn main() {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Mount(_)) {
        end_quietly_when_the_reader_goes_away();
    }
    let filter = EnvFilter::try_from_env("SNAPFS_LOG")
        .unwrap_or_else(|_| EnvFilter::new("snapfs=info,fuser=error"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    if let Err(err) = snapfs::cli::run(cli) {
        eprintln!("snapfs: {err:#}");
        std::process::exit(1);
    }
}
