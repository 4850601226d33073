//! The `snapfs` command-line entry point: parse, set up logging, dispatch.

use clap::Parser;
use nix::sys::signal::{SigHandler, Signal, signal};
use snapfs::cli::mount_helper::{self, HelperPlan};
use snapfs::cli::{Cli, Command};

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

/// The command to run: the command line's, or, when `mount(8)` runs this binary as its
/// `mount.fuse.snapfs` helper, the `snapfs mount --daemon` the helper's arguments stand for.
fn command_line() -> Cli {
    let argv0 = std::env::args_os().next().unwrap_or_default();
    if !mount_helper::invoked_as_helper(argv0.as_ref()) {
        return Cli::parse();
    }
    match mount_helper::plan(std::env::args_os()) {
        Ok(HelperPlan::Mount(cli)) => *cli,
        Ok(HelperPlan::Fake | HelperPlan::AlreadyMounted) => std::process::exit(0),
        Err(err) => {
            eprintln!("mount.fuse.snapfs: {err}");
            std::process::exit(1);
        }
    }
}

fn main() {
    let cli = command_line();
    if !matches!(cli.command, Command::Mount(_)) {
        end_quietly_when_the_reader_goes_away();
    }
    snapfs::cli::logging::init(&cli);
    if let Err(err) = snapfs::cli::run(cli) {
        eprintln!("snapfs: {err:#}");
        std::process::exit(1);
    }
}
