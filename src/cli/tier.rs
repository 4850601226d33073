//! `snapfs tier status|enable` and `snapfs attach`: a tiered store's cache and uploads, tiering
//! an existing store, and disaster recovery on a new host.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::human_bytes;
use super::init::TierCacheArgs;
use super::progress::{ProgressArgs, with_progress};
use super::target::TargetArgs;
use crate::schedule::calendar::format_rfc3339;
use crate::service::Request;
use crate::service::request::{BytePath, CacheAction};
use crate::tier::{RecallReport, TierStatus};

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
    /// Fetch a file or tree of a mounted tiered share into the local cache now.
    Recall {
        /// A path on the mounted share.
        path: PathBuf,
        #[command(flatten)]
        progress: ProgressArgs,
    },
    /// Keep a file or tree of a mounted tiered share in the local cache (fetched now, never
    /// evicted, even over the cache size), following it through renames.
    Pin {
        /// A path on the mounted share.
        path: PathBuf,
        #[command(flatten)]
        progress: ProgressArgs,
    },
    /// Let a pinned file or tree be evicted again.
    Unpin {
        /// A path on the mounted share.
        path: PathBuf,
    },
}

/// The mountpoint of the snapfs share `path` lies on, and `path` relative to its root.
fn on_a_mounted_share(path: &std::path::Path) -> anyhow::Result<(PathBuf, Vec<u8>)> {
    use std::os::unix::ffi::OsStrExt;
    let path =
        std::fs::canonicalize(path).with_context(|| format!("cannot find {}", path.display()))?;
    for mountpoint in path.ancestors() {
        if super::umount::store_of_mount(mountpoint)?.is_some() {
            let relative = path.strip_prefix(mountpoint).unwrap_or(&path);
            if relative.starts_with(".snapshots") {
                anyhow::bail!(
                    "{} is in a snapshot: snapshots share the live share's data, so recall or \
                     pin the live path (or restore it)",
                    path.display()
                );
            }
            return Ok((
                mountpoint.to_owned(),
                relative.as_os_str().as_bytes().to_vec(),
            ));
        }
    }
    anyhow::bail!("{} is not on a mounted snapfs share", path.display())
}

fn tier_cache(
    action: CacheAction,
    path: &std::path::Path,
    shown: ProgressArgs,
) -> anyhow::Result<()> {
    let (mount, relative) = on_a_mounted_share(path)?;
    let target = TargetArgs {
        mount: Some(mount),
        store: None,
    }
    .resolve(None)?;
    let started = std::time::Instant::now();
    let request = Request::TierCache(crate::service::request::TierCacheRequest {
        action,
        path: BytePath(relative),
    });
    let command = match action {
        CacheAction::Pin => "tier pin",
        _ => "tier recall",
    };
    let Some(report) = target.execute_shown::<RecallReport>(command, shown, request)? else {
        return Ok(());
    };
    let what = match action {
        CacheAction::Unpin => {
            println!("unpinned {}: it may be evicted again", path.display());
            return Ok(());
        }
        CacheAction::Pin => "pinned",
        CacheAction::Recall => "recalled",
    };
    println!(
        "{what} {}: {} files, {} chunks, {} fetched from the object store in {:.1} s{}",
        path.display(),
        report.files,
        report.chunks,
        human_bytes(report.fetched_bytes),
        started.elapsed().as_secs_f64(),
        if report.pinned {
            "; kept in the cache from now on"
        } else {
            ""
        }
    );
    Ok(())
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
    #[command(flatten)]
    pub progress: ProgressArgs,
}

pub fn run(args: TierArgs, on_failure: Option<&str>) -> anyhow::Result<()> {
    match args.action {
        TierAction::Recall { path, progress } => tier_cache(CacheAction::Recall, &path, progress),
        TierAction::Pin { path, progress } => tier_cache(CacheAction::Pin, &path, progress),
        TierAction::Unpin { path } => {
            tier_cache(CacheAction::Unpin, &path, ProgressArgs::default())
        }
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
            if status.cache_full {
                println!(
                    "CACHE FULL:       the data not yet uploaded takes the whole cache; writes \
                     wait for uploads and fail with ENOSPC after {} s",
                    crate::tier::CACHE_FULL_WAIT.as_secs()
                );
            }
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
            if !status.pins.is_empty() {
                println!("pinned:           {}", status.pins.join(", "));
            }
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
    let report = with_progress("attach", args.progress.json, |progress| {
        crate::tier::attach(
            args.cache.config(&location),
            &args.store,
            args.force,
            progress,
        )
        .with_context(|| format!("cannot attach {location}"))
    })?;
    if args.progress.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
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
