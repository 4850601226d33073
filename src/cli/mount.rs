//! `snapfs mount STORE MOUNTPOINT`: serve a store until it is unmounted, in the foreground or
//! (`--daemon`) in the background once the share serves.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use fuser::{Config, MountOption, Session, SessionACL};
use nix::sys::signal::{SigSet, Signal};

use super::daemon::{self, Readiness};
use crate::fuse::{CacheOptions, KernelNotifier, SnapFuse};
use crate::live::{LiveFs, LiveOptions};
use crate::metadata_budget::MetadataBudget;
use crate::schedule::clock::{Clock, ManualClock, SystemClock};
use crate::service::metrics::MetricsEndpoint;
use crate::service::{Service, ServiceOptions};
use crate::snapshot::Snapshots;
use crate::store::Store;

/// The mount source is `snapfs:STORE`, which is how `snapfs umount` finds the store of a mount
/// (a root mount through /dev/fuse has file system type plain `fuse`).
pub const MOUNT_SOURCE_PREFIX: &str = "snapfs:";

/// How long an unmount waits for background jobs (gc, verify, ...) before the daemon ends under
/// them: long enough for most to reach their end, short enough for `systemctl stop`.
const JOB_GRACE: Duration = Duration::from_secs(5);

#[derive(Args, Debug)]
pub struct MountArgs {
    /// The store directory (made by `snapfs init`); with --follow, the object store location
    /// of a tiered share (`s3://bucket/prefix`, or a directory).
    pub store: PathBuf,
    /// An existing, empty directory to mount the share on.
    pub mountpoint: PathBuf,
    /// Let users other than the one who mounted see the share (permissions still apply).
    #[arg(long)]
    pub allow_other: bool,
    /// Threads serving kernel requests.
    #[arg(long, default_value_t = 4)]
    pub threads: usize,
    /// Seconds the kernel may cache names and attributes.
    #[arg(long, default_value_t = 1.0)]
    pub cache_ttl: f64,
    /// Let the kernel gather writes in its page cache and hand them over in large batches
    /// (`off`: every write(2) reaches snapfs before it returns). Either way a snapshot holds
    /// every write that returned before it was requested.
    #[arg(long, value_name = "on|off", default_value = "on", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub writeback_cache: bool,
    /// Whether `.snapshots` is listed in the root directory (`hidden`: reachable by name only,
    /// so that `cp -a`, `rsync`, `du` and `find` over the share skip history).
    #[arg(long, value_enum, default_value_t = SnapdirVisibility::Hidden)]
    pub snapdir: SnapdirVisibility,
    /// Also show every snapshot as `.snapshots/.gmt/@GMT-YYYY.MM.DD-HH.MM.SS` (its creation
    /// time in UTC), where Samba's `vfs_shadow_copy2` finds it for Windows' Previous Versions
    /// (`shadow:snapdir = .snapshots/.gmt`). Two snapshots of one second: the first created.
    #[arg(long)]
    pub gmt_names: bool,
    /// Memory for file data written but not yet stored, in bytes (suffixes K, M, G).
    #[arg(long, default_value = "256M", value_parser = super::parse_size)]
    pub dirty_limit: u64,
    /// Memory for metadata, in bytes (suffixes K, M, G). Half is for the share's names and
    /// attributes loaded from the metadata database: past it, the directories used least
    /// recently are dropped from memory and read again when next used, as the kernel's inode
    /// and dentry caches do. A quarter is for the snapshot inodes the kernel holds (one per
    /// 256 bytes): past that, the kernel is asked to forget those used least recently. An
    /// eighth is the metadata database's page cache, and an eighth holds what gc and verify
    /// have seen of the trees they walk (past it, they use a scratch file in the store).
    #[arg(long, default_value = "128M", value_parser = super::parse_size)]
    pub metadata_cache: u64,
    /// Seconds between commits when nobody calls fsync.
    #[arg(long, default_value_t = 2.0)]
    pub commit_interval: f64,
    /// Run this shell command when a job fails (a scheduled snapshot, an expiry, or any command
    /// sent to this daemon); the job's details are in its environment (SNAPFS_JOB_*).
    #[arg(long, value_name = "CMD")]
    pub on_failure: Option<String>,
    /// Serve Prometheus metrics at http://ADDR/metrics (for example 127.0.0.1:9477): requests,
    /// latencies, bytes, commits, snapshots, space, jobs and backups.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<String>,
    /// Go into the background and return once the share serves (exit 0), or has failed (exit
    /// 1, with the reason); logs then go to --log-file, else to the systemd journal.
    #[arg(long)]
    pub daemon: bool,
    /// With --daemon: append the logs to this file.
    #[arg(long, value_name = "FILE", requires = "daemon")]
    pub log_file: Option<PathBuf>,
    /// Mount over a directory that holds files (they are hidden until the share is unmounted).
    #[arg(long)]
    pub allow_non_empty: bool,
    /// Serve the tiered share at STORE read-only, from any host and alongside its writer:
    /// its newest checkpoint with every snapshot, moving to each newer checkpoint as it is
    /// published. Files open meanwhile go on reading what they opened.
    #[arg(long)]
    pub follow: bool,
    /// With --follow: the directory that caches what is read [default:
    /// /var/cache/snapfs/follow/<a hash of STORE and MOUNTPOINT>].
    #[arg(long, value_name = "DIR", requires = "follow")]
    pub cache_dir: Option<PathBuf>,
    /// With --follow: local disk space the cached data may take, in bytes (suffixes K, M, G).
    #[arg(long, default_value = "10G", value_parser = super::parse_size)]
    pub cache_size: u64,
    /// With --follow: seconds between looks for a newer checkpoint.
    #[arg(long, default_value_t = 5.0)]
    pub refresh_interval: f64,
    /// Tests only: start the daemon's clock at this time (unix seconds) and move it only when
    /// told to through the control file (`clock TIME`), instead of following the system clock.
    #[arg(long, hide = true, value_name = "UNIX_SECONDS")]
    pub test_clock: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SnapdirVisibility {
    Hidden,
    Visible,
}

pub fn run(mut args: MountArgs) -> anyhow::Result<()> {
    // Absolute before going into the background, where the working directory is `/`.
    if !(args.follow && args.store.to_string_lossy().contains("://")) {
        args.store = std::path::absolute(&args.store)?;
    }
    if let Some(dir) = &args.cache_dir {
        args.cache_dir = Some(std::path::absolute(dir)?);
    }
    args.mountpoint = std::path::absolute(&args.mountpoint)?;
    let readiness = if args.daemon {
        let log_file = args
            .log_file
            .as_deref()
            .map(std::path::absolute)
            .transpose()?;
        daemon::daemonize(log_file.as_deref())?
    } else {
        Readiness::foreground()
    };
    let served = if args.follow {
        super::follow::serve(args, &readiness)
    } else {
        serve(args, &readiness)
    };
    if let Err(err) = &served {
        readiness.failed(&format!("{err:#}"));
    }
    served
}

/// Refuses a mountpoint that is not an empty directory (unless told to mount over files), and
/// options out of range.
pub(crate) fn check_mount_args(args: &MountArgs) -> anyhow::Result<()> {
    let mountpoint = &args.mountpoint;
    match std::fs::metadata(mountpoint) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => bail!("mountpoint {} is not a directory", mountpoint.display()),
        Err(err) => bail!("mountpoint {}: {err}", mountpoint.display()),
    }
    if !args.allow_non_empty
        && std::fs::read_dir(mountpoint)
            .with_context(|| format!("mountpoint {}", mountpoint.display()))?
            .next()
            .is_some()
    {
        bail!(
            "mountpoint {} is not empty (the share would hide its files; \
             --allow-non-empty mounts anyway)",
            mountpoint.display()
        );
    }
    if args.threads == 0 || args.cache_ttl < 0.0 || args.commit_interval <= 0.0 {
        bail!("--threads and --commit-interval must be positive, --cache-ttl not negative");
    }
    Ok(())
}

/// Mounts and serves until unmounted; reports through `readiness` once the share serves.
fn serve(args: MountArgs, readiness: &Readiness) -> anyhow::Result<()> {
    let mountpoint = args.mountpoint.clone();
    check_mount_args(&args)?;
    if args.writeback_cache && args.threads < 2 {
        // A snapshot waits on one thread for the kernel's writes, which another must serve.
        bail!("--writeback-cache on needs --threads 2 or more");
    }
    let metadata = MetadataBudget::new(args.metadata_cache);
    let store = Store::open_with(&args.store, metadata)
        .with_context(|| format!("cannot open store {}", args.store.display()))?;
    let source = format!("{MOUNT_SOURCE_PREFIX}{}", store.dir.display());
    let store_dir = store.dir.clone();
    let options = LiveOptions {
        dirty_limit: args.dirty_limit,
        commit_interval: Duration::from_secs_f64(args.commit_interval),
        metadata,
    };
    let signals = block_termination_signals()?;
    let live = LiveFs::serve(store, options).context("cannot load the share")?;
    let cache = CacheOptions {
        ttl: Duration::from_secs_f64(args.cache_ttl),
        writeback_cache: args.writeback_cache,
        snapdir_visible: args.snapdir == SnapdirVisibility::Visible,
        gmt_names: args.gmt_names,
        changes_elsewhere: false,
    };
    let manual_clock = args
        .test_clock
        .map(|start| Arc::new(ManualClock::new(start)));
    let clock: Arc<dyn Clock> = match &manual_clock {
        Some(clock) => clock.clone(),
        None => Arc::new(SystemClock),
    };
    let snapshots =
        Arc::new(Snapshots::open(live.clone(), clock).context("cannot load the snapshot catalog")?);
    let service = Service::open(
        snapshots.clone(),
        ServiceOptions {
            mountpoint: Some(mountpoint.clone()),
            on_failure: args.on_failure.clone(),
            manual_clock,
        },
    )
    .context("cannot load the store's settings")?;
    if let Some(tier) = live.tier() {
        let (commits, catalog) = (Arc::downgrade(&live), Arc::downgrade(&snapshots));
        let share = Arc::downgrade(&live);
        tier.start(crate::tier::Background {
            copy: Arc::new(crate::service::copy_store_tables),
            generation: Box::new(move || crate::tier::Generation {
                commits: commits.upgrade().map_or(0, |live| live.changing_commits()),
                catalog: catalog.upgrade().map_or(0, |s| s.generation()),
            }),
            tree_chunks: Box::new(move |ino, each| {
                let Some(live) = share.upgrade() else {
                    return Ok(true);
                };
                match live.each_file_chunks(ino, |_, chunks| {
                    each(&chunks);
                    Ok::<(), crate::live::FsError>(())
                }) {
                    Ok(()) => Ok(true),
                    Err(crate::live::FsError::NotFound) => Ok(false),
                    Err(err) => Err(err.to_string()),
                }
            }),
        })
        .context("cannot start tiering")?;
    }
    // Before mounting: an address in use fails the mount with nothing mounted.
    let metrics = match &args.metrics {
        Some(addr) => Some(MetricsEndpoint::start(addr, Arc::downgrade(&service))?),
        None => None,
    };
    let config = session_config(&args, source, false);
    let mut session = Session::new(
        SnapFuse::new(live.clone(), service.clone(), cache),
        &mountpoint,
        &config,
    )
    .with_context(|| format!("cannot mount on {}", mountpoint.display()))?;
    live.attach_kernel_cache(Arc::new(KernelNotifier {
        notifier: session.notifier(),
        writeback_mount: args.writeback_cache.then(|| mountpoint.clone()),
    }))?;
    // Weak: the signal thread outlives the session when the mount ends otherwise (it waits for
    // a signal that never comes), and a strong reference would keep the share, and with it the
    // metadata database, open at exit: redb would then check the whole database at the next
    // mount, which would take time in proportion to the share.
    let (signal_live, signal_mount) = (Arc::downgrade(&live), mountpoint.clone());
    let stopping = Arc::new(AtomicBool::new(false));
    let signal_thread = spawn_signal_thread(
        signals,
        session.unmount_callable(),
        readiness.clone(),
        stopping.clone(),
        move |signal, err| {
            tracing::warn!(
                "unmount after {signal} failed ({err}): files are open on the share; saving \
                 what the kernel holds, then detaching the mount"
            );
            if let Some(live) = signal_live.upgrade() {
                force_unmount(&live, &signal_mount);
            }
        },
    )?;
    tracing::info!(mountpoint = %mountpoint.display(), "mounted");
    // Started once mounted: a snapshot caught up on start is then taken while the share serves.
    service.start_scheduler()?;
    spawn_readiness_probe(mountpoint.clone(), store_dir, readiness.clone())?;
    let served = session.run().context("the FUSE session failed");
    readiness.stopping();
    if stopping.load(Ordering::SeqCst) {
        let _ = signal_thread.join();
    }
    if let Some(metrics) = metrics {
        metrics.stop();
    }
    service.stop(JOB_GRACE);
    service.finish_jobs(JOB_GRACE);
    // After a forced unmount the kernel sends no `destroy`: the last commit happens here (a
    // second call after `destroy`'s finds nothing to do).
    if let Err(err) = live.shutdown() {
        tracing::error!("final commit at unmount failed: {err}");
    }
    if let Some(tier) = live.tier() {
        tier.stop();
    }
    served?;
    tracing::info!("unmounted; store closed");
    Ok(())
}

/// Starts the thread that turns the first termination signal into an unmount, setting
/// `stopping` first: a session that ends after it was set may have ended by a forced unmount's
/// abort, before that thread detached the mount, so the main thread is to wait for it (else
/// the process could exit leaving a dead mount attached). When the unmount fails (files are
/// open on the share), `busy` is given the signal and the error, and must take the mount away.
pub(crate) fn spawn_signal_thread(
    signals: SigSet,
    mut unmounter: fuser::SessionUnmounter,
    readiness: Readiness,
    stopping: Arc<AtomicBool>,
    busy: impl FnOnce(Signal, std::io::Error) + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("snapfs-signals".into())
        .spawn(move || {
            if let Ok(signal) = signals.wait() {
                stopping.store(true, Ordering::SeqCst);
                readiness.stopping();
                tracing::info!("{signal}: unmounting");
                if let Err(err) = unmounter.unmount() {
                    busy(signal, err);
                }
            }
        })
}

/// The FUSE session's settings for a mount of `source` (`snapfs:DIR`, which `snapfs umount`
/// reads back); `read_only` for a follower's.
pub(crate) fn session_config(args: &MountArgs, source: String, read_only: bool) -> Config {
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName(source),
        MountOption::Subtype("snapfs".into()),
        MountOption::DefaultPermissions,
        MountOption::NoDev,
    ];
    if read_only {
        config.mount_options.push(MountOption::RO);
    }
    config.acl = if args.allow_other {
        SessionACL::All
    } else {
        SessionACL::Owner
    };
    config.n_threads = Some(args.threads);
    config.clone_fd = true;
    config
}

/// Reports the share ready once it serves: once a `stat` of its root, which goes through the
/// kernel to this daemon's FUSE threads, has been answered, and the mount table shows this
/// store mounted there. Run on a thread of its own, since the session's threads start only
/// when the calling thread enters the session loop.
pub(crate) fn spawn_readiness_probe(
    mountpoint: PathBuf,
    store: PathBuf,
    readiness: Readiness,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("snapfs-ready".into())
        .spawn(move || {
            let served = std::fs::metadata(&mountpoint);
            let listed = super::umount::store_of_mount(&mountpoint);
            match (served, listed) {
                (Ok(_), Ok(Some(mounted))) if mounted == store => {
                    readiness.ready(&format!(
                        "serving {} at {}",
                        store.display(),
                        mountpoint.display()
                    ));
                }
                // The session ended before it served (the mount was taken away at once): the
                // main thread reports why when the session loop returns.
                (served, listed) => tracing::warn!(
                    "the share did not come up: stat {served:?}, mount table {listed:?}"
                ),
            }
        })?;
    Ok(())
}

/// Blocks the termination signals (INT, TERM, HUP) in the calling thread, and so in every thread
/// it starts afterwards: called before any thread starts, so that only the thread that waits on
/// the returned set receives them and turns them into a clean unmount.
pub(crate) fn block_termination_signals() -> nix::Result<SigSet> {
    let mut signals = SigSet::empty();
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        signals.add(signal);
    }
    signals.thread_block()?;
    Ok(signals)
}

/// Ends a mount that files are still open on, as `systemctl stop` expects of a daemon: the
/// kernel first hands over every write it holds for files open for writing (and they are
/// committed), then the connection is aborted (`MNT_FORCE`: FUSE's `umount_begin`), which ends
/// the session, and the mount is detached. Processes still using the share get `ENOTCONN` from
/// then on, as after `fusermount3 -uz`; nothing they wrote before is lost.
fn force_unmount(live: &LiveFs, mountpoint: &std::path::Path) {
    use nix::mount::{MntFlags, umount2};
    live.collect_kernel_writes();
    if let Err(err) = live.commit_now() {
        tracing::error!("commit before the forced unmount failed: {err}");
    }
    let _ = umount2(mountpoint, MntFlags::MNT_FORCE);
    if let Err(err) = umount2(mountpoint, MntFlags::MNT_DETACH) {
        tracing::error!("cannot detach {}: {err}", mountpoint.display());
    }
}
