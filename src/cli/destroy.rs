//! `snapfs destroy STORE`: remove a store, only when it holds no snapshots (as a share with
//! snapshots cannot be deleted) and only after confirmation.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Args;

use crate::live::{LiveFs, LiveOptions};
use crate::schedule::clock::SystemClock;
use crate::snapshot::Snapshots;
use crate::store::Store;

#[derive(Args, Debug)]
pub struct DestroyArgs {
    /// The store directory.
    pub store: PathBuf,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
}

pub fn run(args: DestroyArgs) -> anyhow::Result<()> {
    let dir = std::path::absolute(&args.store)?;
    // Opening takes the store's lock: a mounted store is refused here.
    let store =
        Store::open(&dir).with_context(|| format!("cannot open store {}", dir.display()))?;
    let live = LiveFs::serve(store, LiveOptions::default()).context("cannot load the share")?;
    let snapshots = Snapshots::open(live.clone(), Arc::new(SystemClock))
        .context("cannot load the snapshot catalog")?;
    let (existing, deleted) = (snapshots.list().len(), snapshots.list_deleted().len());
    if existing + deleted > 0 {
        bail!(
            "{} has {existing} snapshots and {deleted} soft-deleted ones: delete (and purge) them \
             first, after releasing any hold",
            dir.display()
        );
    }
    drop(snapshots);
    live.shutdown().context("cannot close the store")?;
    drop(live);
    if !args.yes {
        if !std::io::stdin().is_terminal() {
            bail!("refusing to destroy {} without --yes", dir.display());
        }
        print!(
            "Destroy the store {} and everything in its live share? Type 'yes': ",
            dir.display()
        );
        std::io::stdout().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if answer.trim() != "yes" {
            bail!("not destroyed");
        }
    }
    std::fs::remove_dir_all(&dir).with_context(|| format!("cannot remove {}", dir.display()))?;
    println!("destroyed store {}", dir.display());
    Ok(())
}
