//! Where the logs of a command go: standard error, or the systemd journal for a daemon in the
//! background that was given no log file (its standard error is then `/dev/null`).

use std::io::IsTerminal;
use std::path::Path;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use super::{Cli, Command};

/// The socket journald reads structured log records from.
const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

/// Sets up logging for `cli`, filtered by `SNAPFS_LOG` (an `env_logger`-style filter). Called
/// before any thread starts: the subscriber starts none, so a later fork keeps it whole, and a
/// daemon's standard error, once pointed at its log file, carries the same logs.
pub fn init(cli: &Cli) {
    let filter = EnvFilter::try_from_env("SNAPFS_LOG")
        .unwrap_or_else(|_| EnvFilter::new("snapfs=info,fuser=error"));
    let daemon = matches!(&cli.command, Command::Mount(args) if args.daemon);
    let to_journal = daemon
        && matches!(&cli.command, Command::Mount(args) if args.log_file.is_none())
        && Path::new(JOURNAL_SOCKET).exists();
    if to_journal {
        match tracing_journald::layer() {
            Ok(journal) => {
                tracing_subscriber::registry()
                    .with(filter)
                    .with(journal.with_syslog_identifier("snapfs".into()))
                    .init();
                return;
            }
            Err(err) => eprintln!("snapfs: cannot log to the journal ({err}); logs are lost"),
        }
    }
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colours only for a person watching: not in a daemon's log file, nor in the journal
        // (which a foreground daemon under systemd writes to through its standard error).
        .with_ansi(!daemon && std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}
