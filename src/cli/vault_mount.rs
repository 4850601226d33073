//! `snapfs vault mount VAULT MOUNTPOINT`: serve a vault's backups read-only
//! (`MOUNTPOINT/<share>/<backup>/...`) until unmounted (`umount`, `fusermount3 -u`, or
//! SIGINT/SIGTERM/SIGHUP). A shared vault lock is held the whole time, so that `vault gc`
//! (which takes an exclusive one) removes nothing being read; it is refreshed by its own
//! thread and deleted at unmount.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Args;
use fuser::{Config, MountOption, Session, SessionACL};

use super::mount::block_termination_signals;
use super::vault::KeyArgs;
use crate::blob::BlobLocation;
use crate::fuse::VaultFuse;
use crate::vault::Vault;
use crate::vault::browse::VaultBrowser;
use crate::vault::lock::{LockKind, VaultLock};

/// The mount source names the vault, so `mount` and `/proc/mounts` show what is mounted.
pub const MOUNT_SOURCE_PREFIX: &str = "snapfs-vault:";

#[derive(Args, Debug)]
pub struct VaultMountArgs {
    /// A local directory or s3://bucket/prefix.
    pub vault: String,
    /// An existing, empty directory to mount the backups on.
    pub mountpoint: PathBuf,
    /// Memory for the objects read from the vault (decoded directories and block maps, file
    /// data), so that reading again does not fetch again (suffixes K, M, G).
    #[arg(long, default_value = "256M", value_parser = super::parse_size)]
    pub cache_size: u64,
    /// Let users other than the one who mounted see the backups (permissions still apply).
    #[arg(long)]
    pub allow_other: bool,
    /// Threads serving kernel requests (each may wait on one fetch from the vault).
    #[arg(long, default_value_t = 4)]
    pub threads: usize,
    #[command(flatten)]
    pub key: KeyArgs,
}

pub fn run(args: VaultMountArgs) -> anyhow::Result<()> {
    let mountpoint = std::path::absolute(&args.mountpoint)?;
    match std::fs::metadata(&mountpoint) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => bail!("mountpoint {} is not a directory", mountpoint.display()),
        Err(err) => bail!("mountpoint {}: {err}", mountpoint.display()),
    }
    if args.threads == 0 || args.cache_size < 1 << 20 {
        bail!("--threads must be positive and --cache-size at least 1M");
    }
    let signals = block_termination_signals()?;
    let location = BlobLocation::parse(&args.vault)?;
    let mut vault = Vault::open(&location, &args.key.secret()?)?;
    let lock = VaultLock::acquire(&vault, LockKind::Shared, "mount")?;
    // What gc finished before the lock was granted is out of the index now.
    vault.reload_index()?;
    let source = format!("{MOUNT_SOURCE_PREFIX}{}", vault.describe());
    let owner = (
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    );
    let browser = Arc::new(
        VaultBrowser::new(vault, args.cache_size, owner).context("cannot list the backups")?,
    );
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName(source),
        MountOption::Subtype("snapfs".into()),
        MountOption::RO,
        MountOption::DefaultPermissions,
        MountOption::NoDev,
        MountOption::NoSuid,
    ];
    config.acl = if args.allow_other {
        SessionACL::All
    } else {
        SessionACL::Owner
    };
    config.n_threads = Some(args.threads);
    let mut session = Session::new(VaultFuse::new(browser), &mountpoint, &config)
        .with_context(|| format!("cannot mount on {}", mountpoint.display()))?;
    let mut unmounter = session.unmount_callable();
    let signal_mount = mountpoint.clone();
    std::thread::Builder::new()
        .name("snapfs-signals".into())
        .spawn(move || {
            if let Ok(signal) = signals.wait() {
                tracing::info!("{signal}: unmounting");
                if let Err(err) = unmounter.unmount() {
                    // Nothing is written here, so nothing is lost by detaching: processes
                    // still in the mount get ENOTCONN from then on.
                    tracing::warn!("unmount after {signal} failed ({err}): detaching the mount");
                    use nix::mount::{MntFlags, umount2};
                    let _ = umount2(&signal_mount, MntFlags::MNT_FORCE);
                    if let Err(err) = umount2(&signal_mount, MntFlags::MNT_DETACH) {
                        tracing::error!("cannot detach {}: {err}", signal_mount.display());
                    }
                }
            }
        })?;
    tracing::info!(vault = args.vault, mountpoint = %mountpoint.display(), "vault mounted");
    let served = session.run().context("the FUSE session failed");
    // The lock goes only once nothing can read any more.
    drop(lock);
    served?;
    tracing::info!("vault unmounted");
    Ok(())
}
