//! `snapfs install [--prefix DIR] [--dest-dir DIR]`: puts the binary, the `mount(8)` helper,
//! the systemd unit, shell completions and manual pages where the system looks for them.
//! A plan (every file with its content) is made first and carried out second, so `--dry-run`
//! shows exactly what would be written.
//!
//! Everything goes under the prefix except the helper: `mount(8)` looks for helpers only in
//! `/sbin` (`/sbin/fs.d`, `/sbin/fs`), whatever the prefix, so `/sbin/mount.fuse.snapfs` is a
//! symbolic link to `PREFIX/bin/snapfs` (on merged-/usr systems `/sbin` is `/usr/sbin`). The
//! unit goes to `PREFIX/lib/systemd/system`, which systemd searches for both `/usr` and
//! `/usr/local`.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use clap::Args;
use clap_complete::Shell;

/// The unit as shipped: its `ExecStart` names the binary under the default prefix, which the
/// plan replaces with the binary under the chosen one.
const UNIT: &str = include_str!("../../scripts/systemd/snapfs@.service");
const UNIT_NAME: &str = "snapfs@.service";
const DEFAULT_BINARY: &str = "/usr/local/bin/snapfs";

#[derive(Args, Debug)]
pub struct InstallArgs {
    /// Where the binary (PREFIX/bin), unit, completions and manual pages (PREFIX/share) go.
    #[arg(long, value_name = "DIR", default_value = "/usr/local")]
    pub prefix: PathBuf,
    /// Write everything under this directory instead of `/` (for building packages); the
    /// paths written into the files (the unit's ExecStart, the helper's link) stay as if
    /// installed under PREFIX.
    #[arg(long, value_name = "DIR")]
    pub dest_dir: Option<PathBuf>,
    /// Where `mount(8)` looks for the `mount.fuse.snapfs` helper.
    #[arg(long, value_name = "DIR", default_value = "/sbin")]
    pub sbin_dir: PathBuf,
    /// Show what would be installed; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Why an installation failed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("{0} must be an absolute path")]
    NotAbsolute(PathBuf),
    #[error("cannot read this program ({0}) to install it")]
    OwnBinary(std::io::Error),
    #[error("cannot generate the manual pages: {0}")]
    ManPages(std::io::Error),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What one installed file holds.
enum Content {
    /// A regular file with this mode.
    File { bytes: Vec<u8>, mode: u32 },
    /// A symbolic link to this target.
    Link(PathBuf),
}

/// One file to install, at its path on the installed system.
struct Item {
    path: PathBuf,
    content: Content,
}

pub fn run(args: InstallArgs) -> anyhow::Result<()> {
    let items = plan(&args)?;
    let root = args.dest_dir.as_deref().unwrap_or(Path::new("/"));
    for item in &items {
        let target = staged(root, &item.path);
        if args.dry_run {
            println!("would install {}", target.display());
            continue;
        }
        write(&target, &item.content)?;
        println!("installed {}", target.display());
    }
    if !args.dry_run && args.dest_dir.is_none() {
        println!("run `systemctl daemon-reload` for systemd to see the unit");
    }
    Ok(())
}

/// Every file of an installation under `args.prefix`.
fn plan(args: &InstallArgs) -> Result<Vec<Item>, InstallError> {
    for dir in [&args.prefix, &args.sbin_dir] {
        if !dir.is_absolute() {
            return Err(InstallError::NotAbsolute(dir.clone()));
        }
    }
    if let Some(dest) = &args.dest_dir
        && !dest.is_absolute()
    {
        return Err(InstallError::NotAbsolute(dest.clone()));
    }
    let prefix = &args.prefix;
    let binary_path = prefix.join("bin/snapfs");
    let own = std::env::current_exe().map_err(InstallError::OwnBinary)?;
    let binary = std::fs::read(&own).map_err(InstallError::OwnBinary)?;
    let unit = UNIT.replace(DEFAULT_BINARY, &binary_path.to_string_lossy());
    let share = prefix.join("share");
    let mut items = vec![
        Item {
            path: binary_path.clone(),
            content: Content::File {
                bytes: binary,
                mode: 0o755,
            },
        },
        Item {
            path: args.sbin_dir.join(super::mount_helper::HELPER_NAMES[0]),
            content: Content::Link(binary_path),
        },
        Item {
            path: prefix.join("lib/systemd/system").join(UNIT_NAME),
            content: Content::File {
                bytes: unit.into_bytes(),
                mode: 0o644,
            },
        },
    ];
    let completions = [
        (Shell::Bash, "bash-completion/completions/snapfs"),
        (Shell::Zsh, "zsh/site-functions/_snapfs"),
        (Shell::Fish, "fish/vendor_completions.d/snapfs.fish"),
    ];
    for (shell, path) in completions {
        items.push(Item {
            path: share.join(path),
            content: Content::File {
                bytes: super::completions::script(shell),
                mode: 0o644,
            },
        });
    }
    for page in super::man::pages().map_err(InstallError::ManPages)? {
        items.push(Item {
            path: share.join("man/man1").join(page.file_name),
            content: Content::File {
                bytes: page.roff,
                mode: 0o644,
            },
        });
    }
    Ok(items)
}

/// `path` under the staging root `root` (`/` for a direct installation).
fn staged(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

/// Writes one file in one step: the new version is made beside the old one and renamed over
/// it, so a reader (or the running binary being replaced) sees the old or the new file, never
/// half of one, and replacing a running binary does not fail with "text file busy".
fn write(target: &Path, content: &Content) -> Result<(), InstallError> {
    let failed = |source| InstallError::Write {
        path: target.to_owned(),
        source,
    };
    let dir = target.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(dir).map_err(failed)?;
    let name = target.file_name().unwrap_or_default().to_string_lossy();
    let temporary = dir.join(format!(".{name}.snapfs-install"));
    let _ = std::fs::remove_file(&temporary);
    match content {
        Content::File { bytes, mode } => {
            let mut file = std::fs::File::create(&temporary).map_err(failed)?;
            file.write_all(bytes).map_err(failed)?;
            file.set_permissions(std::fs::Permissions::from_mode(*mode))
                .map_err(failed)?;
            file.sync_all().map_err(failed)?;
        }
        Content::Link(to) => std::os::unix::fs::symlink(to, &temporary).map_err(failed)?,
    }
    std::fs::rename(&temporary, target).map_err(failed)
}
