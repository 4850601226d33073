//! Where a command acts: through a running daemon (the store is mounted) or on the store
//! directly (it is not). `--store` of a mounted store goes through its daemon too, never around
//! it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Args;

use super::umount::store_of_mount;
use crate::live::{LiveFs, LiveOptions};
use crate::snapshot::Snapshots;
use crate::store::Store;

#[derive(Args, Debug, Clone)]
#[group(required = true, multiple = false)]
pub struct TargetArgs {
    /// The mountpoint of a running share.
    #[arg(long)]
    pub mount: Option<PathBuf>,
    /// The store directory (mounted or not).
    #[arg(long)]
    pub store: Option<PathBuf>,
}

pub enum Target {
    /// The control file of a mounted share.
    Mounted { control: PathBuf },
    /// A store opened here; closed (with a final commit) on drop.
    Offline(Offline),
}

pub struct Offline {
    pub snapshots: Snapshots,
    live: Arc<LiveFs>,
}

impl Drop for Offline {
    fn drop(&mut self) {
        if let Err(err) = self.live.shutdown() {
            eprintln!("snapfs: closing the store failed: {err}");
        }
    }
}

/// The mountpoint where `store` is mounted, if it is.
fn mountpoint_of(store: &Path) -> anyhow::Result<Option<PathBuf>> {
    let mounts = std::fs::read_to_string("/proc/self/mounts")?;
    for line in mounts.lines() {
        let mut fields = line.split(' ');
        let (Some(_), Some(target)) = (fields.next(), fields.next()) else {
            continue;
        };
        let target = PathBuf::from(target.replace("\\040", " "));
        if store_of_mount(&target)?.as_deref() == Some(store) {
            return Ok(Some(target));
        }
    }
    Ok(None)
}

impl TargetArgs {
    pub fn resolve(&self) -> anyhow::Result<Target> {
        let mountpoint = match (&self.mount, &self.store) {
            (Some(mount), _) => {
                let mount = std::path::absolute(mount)?;
                if store_of_mount(&mount)?.is_none() {
                    bail!("{} is not a snapfs mount", mount.display());
                }
                Some(mount)
            }
            (None, Some(store)) => mountpoint_of(&std::path::absolute(store)?)?,
            (None, None) => bail!("give --mount or --store"),
        };
        if let Some(mount) = mountpoint {
            return Ok(Target::Mounted {
                control: mount.join(".snapshots/.control"),
            });
        }
        let store_dir = self.store.as_ref().expect("--store when not mounted");
        let store = Store::open(store_dir)
            .with_context(|| format!("cannot open store {}", store_dir.display()))?;
        let live = LiveFs::serve(store, LiveOptions::default()).context("cannot load the share")?;
        let snapshots =
            Snapshots::open(live.clone()).context("cannot load the snapshot catalog")?;
        Ok(Target::Offline(Offline { snapshots, live }))
    }
}

/// Sends one command to a daemon's control file and reads its outcome back through the same
/// open file, which gives this command's outcome even while others use the file.
pub fn send(control: &Path, command: &str) -> anyhow::Result<String> {
    use std::io::{Read, Seek, Write};
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(control)
        .with_context(|| format!("cannot open {}", control.display()))?;
    let written = file.write_all(format!("{command}\n").as_bytes());
    let mut status = String::new();
    file.rewind()?;
    file.read_to_string(&mut status)?;
    match written {
        Ok(()) => Ok(outcome(&status).trim_start_matches("ok: ").to_owned()),
        Err(err) => {
            let reason = outcome(&status).trim_start_matches("error: ");
            bail!(
                "{}",
                if reason.is_empty() {
                    err.to_string()
                } else {
                    reason.to_owned()
                }
            )
        }
    }
}

fn outcome(status: &str) -> &str {
    status
        .lines()
        .next()
        .and_then(|line| line.strip_prefix("last: "))
        .unwrap_or("")
}
