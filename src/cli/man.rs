//! `snapfs man [--dir DIR]`: manual pages generated from the command-line definition
//! (clap_mangen): `snapfs(1)` and one page per subcommand (`snapfs-mount(1)`,
//! `snapfs-snapshot-create(1)`, ...), as git and cargo ship theirs.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, CommandFactory};

use super::Cli;

#[derive(Args, Debug)]
pub struct ManArgs {
    /// Write every page (snapfs.1 and one per subcommand) into this directory instead of
    /// printing snapfs.1.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// One manual page: its file name (`snapfs-mount.1`) and its roff source.
pub struct ManPage {
    pub file_name: String,
    pub roff: Vec<u8>,
}

/// Every page: the main one first, then one per subcommand at every depth (hidden ones and
/// `help` left out).
pub fn pages() -> std::io::Result<Vec<ManPage>> {
    let mut command = Cli::command().disable_help_subcommand(true);
    // Building gives each subcommand its display name (`snapfs-snapshot-create`), which names
    // its page and is how the pages refer to each other.
    command.build();
    let mut pages = Vec::new();
    let mut pending = vec![command];
    while let Some(command) = pending.pop() {
        pending.extend(
            command
                .get_subcommands()
                .filter(|sub| !sub.is_hide_set())
                .cloned(),
        );
        let man = clap_mangen::Man::new(command);
        let mut roff = Vec::new();
        man.render(&mut roff)?;
        pages.push(ManPage {
            file_name: man.get_filename(),
            roff,
        });
    }
    Ok(pages)
}

pub fn run(args: ManArgs) -> anyhow::Result<()> {
    use std::io::Write;
    let pages = pages()?;
    let Some(dir) = args.dir else {
        std::io::stdout().write_all(&pages[0].roff)?;
        return Ok(());
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for page in pages {
        let path = dir.join(&page.file_name);
        std::fs::write(&path, &page.roff).with_context(|| format!("writing {}", path.display()))?;
        println!("{}", path.display());
    }
    Ok(())
}
