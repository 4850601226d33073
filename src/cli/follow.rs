//! `snapfs mount --follow LOCATION MOUNTPOINT`: serves a tiered share read-only from its object
//! store, on any host and alongside its writer, and follows it: each newer checkpoint replaces
//! the share served (see `tier::follow` for the cache, `fuse::generations` for the switch).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use fuser::Session;

use super::daemon::Readiness;
use super::mount::{
    MOUNT_SOURCE_PREFIX, MountArgs, SnapdirVisibility, block_termination_signals, check_mount_args,
    session_config, spawn_readiness_probe, spawn_signal_thread,
};
use crate::blob::BlobLocation;
use crate::format::store_config::TierConfig;
use crate::fuse::{CacheOptions, KernelNotifier, ShareSwitch, SnapFuse};
use crate::live::{LiveFs, LiveOptions};
use crate::metadata_budget::MetadataBudget;
use crate::schedule::clock::SystemClock;
use crate::service::{Service, ServiceOptions};
use crate::snapshot::Snapshots;
use crate::snapshot::view::SNAPSHOTS_DIR;
use crate::store::Store;
use crate::tier::{Follower, default_cache_dir};

/// Eviction below this share of the local file system's free space, as a tiered store's
/// default.
const MIN_FREE_PERCENT: u8 = 10;

/// One checkpoint of the share, opened.
struct Served {
    checkpoint: crate::tier::CheckpointId,
    live: Arc<LiveFs>,
    service: Arc<Service>,
}

pub fn serve(args: MountArgs, readiness: &Readiness) -> anyhow::Result<()> {
    check_mount_args(&args)?;
    if args.refresh_interval <= 0.0 {
        bail!("--refresh-interval must be positive");
    }
    if args.metrics.is_some() || args.test_clock.is_some() || args.on_failure.is_some() {
        bail!("--metrics, --on-failure and --test-clock serve a writable share, not --follow");
    }
    let location = args.store.to_string_lossy().into_owned();
    let location = BlobLocation::parse(&location)
        .with_context(|| format!("{location} is not an object store location"))?
        .to_string();
    let mountpoint = args.mountpoint.clone();
    let cache_dir = args
        .cache_dir
        .clone()
        .unwrap_or_else(|| default_cache_dir(&location, &mountpoint));
    // Before any thread starts (the object store's client starts some).
    let signals = block_termination_signals()?;
    let config = TierConfig {
        location: location.clone(),
        cache_size: args.cache_size,
        min_free_percent: MIN_FREE_PERCENT,
        // A follower publishes nothing: these only describe how long its reader's lease lasts.
        checkpoint_interval_secs: 0,
        lease_timeout_secs: crate::tier::DEFAULT_LEASE_TIMEOUT_SECS,
        single_host: false,
    };
    let follower = Arc::new(
        Follower::open(config, &cache_dir, &mountpoint)
            .with_context(|| format!("cannot follow {location}"))?,
    );
    let newest = follower.newest()?.with_context(|| {
        format!(
            "{} holds no checkpoint yet (the share's first one is published within a second \
             of its first mount)",
            follower.describe()
        )
    })?;
    let options = LiveOptions {
        metadata: MetadataBudget::new(args.metadata_cache),
        ..LiveOptions::default()
    };
    let first = open_checkpoint(&follower, newest, &options, &mountpoint)
        .with_context(|| format!("cannot open checkpoint {newest} of {location}"))?;
    let cache = CacheOptions {
        ttl: Duration::from_secs_f64(args.cache_ttl),
        writeback_cache: false,
        snapdir_visible: args.snapdir == SnapdirVisibility::Visible,
        gmt_names: args.gmt_names,
        changes_elsewhere: true,
    };
    let config = session_config(
        &args,
        format!("{MOUNT_SOURCE_PREFIX}{}", cache_dir.display()),
        true,
    );
    let fs = SnapFuse::new(first.live.clone(), first.service.clone(), cache);
    let switch = fs.switch();
    let mut session = Session::new(fs, &mountpoint, &config)
        .with_context(|| format!("cannot mount on {}", mountpoint.display()))?;
    let notifier = session.notifier();
    first.live.attach_kernel_cache(Arc::new(KernelNotifier {
        notifier: notifier.clone(),
        writeback_mount: None,
    }))?;
    let stopping = Arc::new(AtomicBool::new(false));
    let signal_mount = mountpoint.clone();
    let signal_thread = spawn_signal_thread(
        signals,
        session.unmount_callable(),
        readiness.clone(),
        stopping.clone(),
        move |signal, err| {
            // Read-only: nothing is left to save before the mount is taken away.
            tracing::warn!("unmount after {signal} failed ({err}): detaching the mount");
            let _ = nix::mount::umount2(&signal_mount, nix::mount::MntFlags::MNT_FORCE);
            let _ = nix::mount::umount2(&signal_mount, nix::mount::MntFlags::MNT_DETACH);
        },
    )?;
    tracing::info!(
        mountpoint = %mountpoint.display(),
        checkpoint = %newest,
        "following {location}"
    );
    let refresh = Refresh {
        follower: follower.clone(),
        switch,
        notifier,
        options,
        mountpoint: mountpoint.clone(),
        interval: Duration::from_secs_f64(args.refresh_interval),
        served: first,
    };
    let refresh_stop = Arc::new((parking_lot::Mutex::new(false), parking_lot::Condvar::new()));
    let refresh_thread = {
        let stop = refresh_stop.clone();
        std::thread::Builder::new()
            .name("snapfs-follow".into())
            .spawn(move || refresh.run(&stop))?
    };
    spawn_readiness_probe(mountpoint.clone(), cache_dir, readiness.clone())?;
    let served = session.run().context("the FUSE session failed");
    readiness.stopping();
    if stopping.load(Ordering::SeqCst) {
        let _ = signal_thread.join();
    }
    *refresh_stop.0.lock() = true;
    refresh_stop.1.notify_all();
    let _ = refresh_thread.join();
    follower.release();
    served?;
    tracing::info!("unmounted");
    Ok(())
}

/// Downloads checkpoint `id` into the cache and opens it as a share, with its snapshots and
/// the service that answers for them (no scheduler: a follower takes and expires nothing).
fn open_checkpoint(
    follower: &Follower,
    id: crate::tier::CheckpointId,
    options: &LiveOptions,
    mountpoint: &Path,
) -> anyhow::Result<Served> {
    let (dir, config) = follower.copy_of(id, &crate::progress::Progress::new())?;
    let store = Store::open_follower_copy(&dir, config, options.metadata)?;
    let live = LiveFs::serve(store, options.clone())?;
    let snapshots = Arc::new(Snapshots::open(live.clone(), Arc::new(SystemClock))?);
    let service = Service::open(
        snapshots,
        ServiceOptions {
            mountpoint: Some(mountpoint.to_owned()),
            on_failure: None,
            manual_clock: None,
        },
    )?;
    Ok(Served {
        checkpoint: id,
        live,
        service,
    })
}

/// The follower's thread: keeps its reader's lease, moves the mount to each newer checkpoint,
/// closes what is no longer served, and keeps the cache within its size.
struct Refresh {
    follower: Arc<Follower>,
    switch: ShareSwitch,
    notifier: fuser::Notifier,
    options: LiveOptions,
    mountpoint: PathBuf,
    interval: Duration,
    served: Served,
}

type Stop = (parking_lot::Mutex<bool>, parking_lot::Condvar);

impl Refresh {
    fn run(mut self, stop: &Stop) {
        loop {
            {
                let mut stopped = stop.0.lock();
                if *stopped {
                    return;
                }
                stop.1.wait_for(&mut stopped, self.interval);
                if *stopped {
                    return;
                }
            }
            if let Err(err) = self.step() {
                tracing::warn!("following the share: {err:#}");
            }
        }
    }

    fn step(&mut self) -> anyhow::Result<()> {
        self.switch.reap();
        self.follower.keep_lease()?;
        if let Some(tier) = self.served.live.tier()
            && let Err(err) = tier.evict()
        {
            tracing::warn!("evicting from the cache: {err}");
        }
        let Some(newest) = self.follower.newest()? else {
            return Ok(());
        };
        if newest <= self.served.checkpoint {
            return Ok(());
        }
        let next = open_checkpoint(&self.follower, newest, &self.options, &self.mountpoint)?;
        next.live.attach_kernel_cache(Arc::new(KernelNotifier {
            notifier: self.notifier.clone(),
            writeback_mount: None,
        }))?;
        let before: Vec<String> = self
            .served
            .service
            .snapshots()
            .list()
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        self.switch
            .switch_to(next.live.clone(), next.service.clone());
        let previous = std::mem::replace(&mut self.served, next);
        // The kernel may hold the names of deleted snapshots for their cache time: forget them,
        // and the attributes of `.snapshots` (its link count is the number of snapshots).
        let now = self.served.service.snapshots();
        for gone in before.iter().filter(|name| now.get(name).is_none()) {
            let _ = self
                .notifier
                .inval_entry(fuser::INodeNo(SNAPSHOTS_DIR.0), std::ffi::OsStr::new(gone));
        }
        let _ = self
            .notifier
            .inval_inode(fuser::INodeNo(SNAPSHOTS_DIR.0), -1, 0);
        tracing::info!(
            checkpoint = %newest,
            previous = %previous.checkpoint,
            "now serving a newer checkpoint"
        );
        drop(previous);
        self.switch.reap();
        self.follower.keep_lease()?;
        Ok(())
    }
}
