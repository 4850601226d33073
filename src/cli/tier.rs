//! `snapfs tier status|enable` and `snapfs attach`: a tiered store's cache and uploads, tiering
//! an existing store, and disaster recovery on a new host.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::human_bytes;
use super::init::TierCacheArgs;
use super::target::TargetArgs;
use crate::schedule::calendar::format_rfc3339;
use crate::service::Request;
use crate::tier::TierStatus;

#[derive(Args, Debug)]
pub struct TierArgs {
    #[command(subcommand)]
    pub action: TierAction,
}

#[derive(Subcommand, Debug)]
pub enum TierAction {
    /// Cache use, bytes not yet uploaded, the oldest change not in a checkpoint, the last
    /// checkpoint.
    Status {
        #[command(flatten)]
        target: TargetArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Tier an existing store: its next mount uploads what it holds, in the background, and
    /// from then on the local disk is a cache of the object store.
    Enable(EnableArgs),
}

#[derive(Args, Debug)]
pub struct EnableArgs {
    /// The store to tier (not mounted).
    #[arg(long)]
    pub store: PathBuf,
    /// Where the share is to be kept (`s3://bucket/prefix`, or a directory on another disk).
    pub location: String,
    #[command(flatten)]
    pub cache: TierCacheArgs,
}

#[derive(Args, Debug)]
pub struct AttachArgs {
    /// Where the tiered share is (`s3://bucket/prefix`, or a directory).
    pub location: String,
    /// A new store directory (created if missing; must be empty). Mount it as any store.
    pub store: PathBuf,
    #[command(flatten)]
    pub cache: TierCacheArgs,
    /// Take the share's writer lease even while another host holds it: that host is fenced
    /// (nothing it publishes afterwards is part of the share).
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: TierArgs, on_failure: Option<&str>) -> anyhow::Result<()> {
    match args.action {
        TierAction::Enable(args) => {
            let location = crate::blob::BlobLocation::parse(&args.location)?;
            let config =
                crate::store::Store::enable_tier(&args.store, args.cache.config(&location))
                    .with_context(|| {
                        format!("cannot tier {} to {location}", args.store.display())
                    })?;
            println!(
                "tiered {} to {} (cache {}); its next mount uploads what it holds",
                args.store.display(),
                location,
                human_bytes(config.tier.map_or(0, |tier| tier.cache_size))
            );
            Ok(())
        }
        TierAction::Status { target, json } => {
            let status: TierStatus = target.resolve(on_failure)?.execute(Request::TierStatus)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
                return Ok(());
            }
            println!("tiered to:        {}", status.location);
            println!(
                "cache:            {} of {} (evicting below {}% free disk too)",
                human_bytes(status.cache_used),
                human_bytes(status.cache_size),
                status.min_free_percent
            );
            println!(
                "packs:            {} ({} uploaded)",
                status.packs, status.packs_uploaded
            );
            println!(
                "not uploaded:     {}",
                human_bytes(status.pending_upload_bytes)
            );
            println!(
                "oldest change not in a checkpoint: {}",
                status
                    .oldest_pending_change
                    .map_or("none".to_owned(), format_rfc3339)
            );
            match (&status.fenced, status.lease) {
                (Some(reason), _) => println!("writer lease:     LOST: {reason}"),
                (None, Some(lease)) => println!("writer lease:     held (generation {lease})"),
                (None, None) => println!("writer lease:     not taken yet"),
            }
            match &status.last_checkpoint {
                Some(last) => println!(
                    "last checkpoint:  #{} at {} ({})",
                    last.sequence,
                    format_rfc3339(last.time),
                    human_bytes(last.bytes)
                ),
                None => println!("last checkpoint:  none yet from this mount"),
            }
            println!("fetched:          {}", human_bytes(status.fetched_bytes));
            if let Some(error) = &status.last_error {
                println!("object store:     FAILING: {error}");
            }
            Ok(())
        }
    }
}

pub fn attach(args: AttachArgs) -> anyhow::Result<()> {
    let location = crate::blob::BlobLocation::parse(&args.location)?;
    let started = std::time::Instant::now();
    let report = crate::tier::attach(args.cache.config(&location), &args.store, args.force)
        .with_context(|| format!("cannot attach {location}"))?;
    println!(
        "attached share {} from checkpoint #{} ({}) into {} in {:.1} s, holding its writer lease \
         {}: {} packs, {} left in the object store until read; mount it with `snapfs mount {} \
         MOUNTPOINT`",
        report.share_id,
        report.checkpoint,
        human_bytes(report.checkpoint_bytes),
        args.store.display(),
        started.elapsed().as_secs_f64(),
        report.lease,
        report.packs,
        human_bytes(report.tiered_bytes),
        args.store.display()
    );
    Ok(())
}
