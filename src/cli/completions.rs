//! `snapfs completions SHELL`: the shell completion script, generated from the command-line
//! definition itself (clap_complete), so it never falls behind a new flag.

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::Cli;

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// The completion script for `shell`.
pub fn script(shell: Shell) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "snapfs", &mut out);
    out
}

pub fn run(args: CompletionsArgs) -> anyhow::Result<()> {
    use std::io::Write;
    std::io::stdout().write_all(&script(args.shell))?;
    Ok(())
}
