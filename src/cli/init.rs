//! `snapfs init STORE`: create an empty store.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::format::store_config::DEFAULT_BLOCK_SIZE;
use crate::store::Store;

#[derive(Args, Debug)]
pub struct InitArgs {
    /// Directory to create the store in (created if missing; must be empty).
    pub store: PathBuf,
    /// Size of the blocks file data is cut into: a power of two from 4K to 1M.
    #[arg(long, default_value_t = DEFAULT_BLOCK_SIZE as u64, value_parser = super::parse_size)]
    pub block_size: u64,
}

pub fn run(args: InitArgs) -> anyhow::Result<()> {
    let block_size = u32::try_from(args.block_size).context("block size too large")?;
    let (uid, gid) = (
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    );
    let config = Store::init(&args.store, block_size, uid, gid)
        .with_context(|| format!("cannot create a store in {}", args.store.display()))?;
    println!(
        "created snapfs store {} (format {}, block size {} KiB)",
        args.store.display(),
        config.format_version,
        config.block_size / 1024
    );
    Ok(())
}
