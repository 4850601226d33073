//! The `snapfs` command-line entry point: parse, set up logging, dispatch.

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() {
    let filter = EnvFilter::try_from_env("SNAPFS_LOG")
        .unwrap_or_else(|_| EnvFilter::new("snapfs=info,fuser=error"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let cli = snapfs::cli::Cli::parse();
    if let Err(err) = snapfs::cli::run(cli) {
        eprintln!("snapfs: {err:#}");
        std::process::exit(1);
    }
}
