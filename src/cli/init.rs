//! `snapfs init STORE [--tier LOCATION]`: create an empty store, on local disk only or tiered
//! to an object store.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::format::store_config::{DEFAULT_BLOCK_SIZE, TierConfig};
use crate::store::Store;

/// How a tiered store uses its local disk and when it checkpoints (for `init` and `attach`).
#[derive(Args, Debug, Clone)]
pub struct TierCacheArgs {
    /// Local disk the tiered store's data may take once uploaded (suffixes K, M, G).
    #[arg(long, default_value = "10G", value_parser = super::parse_size)]
    pub cache_size: u64,
    /// Also evict uploaded data while the local file system has less than this percentage free.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u8).range(0..=90))]
    pub min_free_percent: u8,
    /// Seconds between checkpoints of the namespace while there are changes (a checkpoint
    /// also follows each snapshot): what the loss of the local disk can lose at most.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub checkpoint_interval: u64,
    /// Seconds without renewal after which this host's writer lease on the share is free for
    /// another host (renewed every quarter of it while mounted).
    #[arg(long, default_value_t = crate::tier::DEFAULT_LEASE_TIMEOUT_SECS,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub lease_timeout: u64,
    /// Accept an object store that ignores conditional writes (If-None-Match), where the lease
    /// cannot keep a second writer out: you promise that only this host writes the share.
    #[arg(long)]
    pub single_host: bool,
}

impl TierCacheArgs {
    pub fn config(&self, location: &crate::blob::BlobLocation) -> TierConfig {
        TierConfig {
            location: location.to_string(),
            cache_size: self.cache_size,
            min_free_percent: self.min_free_percent,
            checkpoint_interval_secs: self.checkpoint_interval,
            lease_timeout_secs: self.lease_timeout,
            single_host: self.single_host,
        }
    }
}

#[derive(Args, Debug)]
pub struct InitArgs {
    /// Directory to create the store in (created if missing; must be empty).
    pub store: PathBuf,
    /// Size of the blocks file data is cut into: a power of two from 4K to 1M.
    #[arg(long, default_value_t = DEFAULT_BLOCK_SIZE as u64, value_parser = super::parse_size)]
    pub block_size: u64,
    /// Tier the store to an object store (`s3://bucket/prefix`, or a directory on another
    /// disk): it then holds the share, and the local disk is a cache of it.
    #[arg(long, value_name = "LOCATION")]
    pub tier: Option<String>,
    #[command(flatten)]
    pub cache: TierCacheArgs,
}

pub fn run(args: InitArgs) -> anyhow::Result<()> {
    let block_size = u32::try_from(args.block_size).context("block size too large")?;
    let (uid, gid) = (
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    );
    let tier = match &args.tier {
        Some(text) => {
            let location = crate::blob::BlobLocation::parse(text)?;
            let tier = args.cache.config(&location);
            // Reached before anything is created: a wrong location or key, or a server that
            // cannot keep a second writer out, leaves nothing.
            crate::tier::probe(&tier).with_context(|| format!("cannot tier to {location}"))?;
            Some(tier)
        }
        None => None,
    };
    let config = Store::init_tiered(&args.store, block_size, uid, gid, tier.clone())
        .with_context(|| format!("cannot create a store in {}", args.store.display()))?;
    if let Some(tier) = &tier {
        let share = config.share_id.clone().unwrap_or_default();
        if let Err(err) = crate::tier::claim_location(tier, &share, config.block_size) {
            // The store was just made, empty: taking it away again leaves nothing behind.
            let _ = std::fs::remove_dir_all(&args.store);
            return Err(err).context("cannot tier the new store");
        }
    }
    println!(
        "created snapfs store {} (format {}, block size {} KiB{})",
        args.store.display(),
        config.format_version,
        config.block_size / 1024,
        match &tier {
            Some(tier) => format!(
                ", tiered to {}, cache {}",
                tier.location,
                super::human_bytes(tier.cache_size)
            ),
            None => String::new(),
        }
    );
    Ok(())
}
