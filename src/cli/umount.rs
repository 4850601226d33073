//! `snapfs umount MOUNTPOINT`: unmount and wait for the daemon to finish its last commit.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;

use super::mount::MOUNT_SOURCE_PREFIX;
use crate::storage::lock;

#[derive(Args, Debug)]
pub struct UmountArgs {
    /// Where the share is mounted.
    pub mountpoint: PathBuf,
    /// Seconds to wait for the daemon to exit.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
}

/// The store behind a snapfs mountpoint, from the mount table.
pub fn store_of_mount(mountpoint: &Path) -> anyhow::Result<Option<PathBuf>> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").context("reading the mount table")?;
    for line in mounts.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        if let [source, target, fstype, ..] = fields[..]
            && fstype.starts_with("fuse")
            && Path::new(&unescape(target)) == mountpoint
            && let Some(store) = unescape(source).strip_prefix(MOUNT_SOURCE_PREFIX)
        {
            return Ok(Some(PathBuf::from(store)));
        }
    }
    Ok(None)
}

/// The mount table escapes space, tab, newline and backslash as octal.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && let Ok(code) = u8::from_str_radix(&field[i + 1..i + 4], 8)
        {
            out.push(code);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether a process is alive: a zombie (exited, not yet reaped by its parent) is not.
fn is_running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name, which may itself hold spaces.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => false,
    }
}

pub fn run(args: UmountArgs) -> anyhow::Result<()> {
    let mountpoint = std::path::absolute(&args.mountpoint)?;
    let Some(store) = store_of_mount(&mountpoint)? else {
        bail!("{} is not a snapfs mount", mountpoint.display());
    };
    let daemon = lock::holder(&store);
    nix::mount::umount(&mountpoint).map_err(|err| match err {
        nix::errno::Errno::EBUSY => anyhow::anyhow!(
            "cannot unmount {}: it is busy (a process has a file or directory open there)",
            mountpoint.display()
        ),
        other => anyhow::anyhow!("cannot unmount {}: {other}", mountpoint.display()),
    })?;
    if let Some(pid) = daemon {
        let deadline = Instant::now() + Duration::from_secs(args.timeout);
        while is_running(pid) {
            if Instant::now() > deadline {
                bail!(
                    "unmounted, but the daemon (pid {pid}) has not exited after {}s",
                    args.timeout
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    println!("unmounted {}", mountpoint.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::unescape;

    #[test]
    fn unescapes_mount_table_fields() {
        assert_eq!(unescape(r"/mnt/a\040b"), "/mnt/a b");
        assert_eq!(unescape(r"/plain"), "/plain");
    }
}
