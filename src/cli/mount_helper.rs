//! The `mount(8)` helper: `mount -t fuse.snapfs STORE MNT -o OPTS`, and `/etc/fstab` lines of
//! type `fuse.snapfs`, run `/sbin/mount.fuse.snapfs STORE MNT [-sfnv] [-o OPTS]` (util-linux's
//! helper protocol, see `mount(8)`, "External helpers"); `snapfs install` makes that name a
//! symbolic link to the `snapfs` binary, which recognises it by the name it was run as. This
//! module turns such a command line into the `snapfs mount --daemon` it stands for: every
//! `snapfs mount` flag is an option (`allow_other`, `threads=8`, `cache_ttl=5`: dashes or
//! underscores), the generic options `mount(8)` passes for every file system are ignored as
//! FUSE helpers do, and anything else is refused with a clear error. The mount is made in the
//! background, since `mount(8)` waits for its helper, and the helper returns once it serves.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{ArgAction, CommandFactory, Parser};

use super::Cli;

/// The names under which the binary acts as the helper: `mount -t fuse.snapfs` looks for the
/// first, `mount -t snapfs` for the second.
pub const HELPER_NAMES: [&str; 2] = ["mount.fuse.snapfs", "mount.snapfs"];

/// Options every file system gets from `mount(8)` or fstab, which mean nothing to snapfs (or
/// to any FUSE file system in this position: `libfuse`'s helper drops the same ones), or which
/// snapfs always does (`default_permissions`, `nodev`).
const IGNORED: &[&str] = &[
    "rw",
    "defaults",
    "auto",
    "noauto",
    "nofail",
    "_netdev",
    "user",
    "users",
    "nouser",
    "owner",
    "group",
    "dev",
    "nodev",
    "suid",
    "nosuid",
    "exec",
    "noexec",
    "async",
    "atime",
    "noatime",
    "diratime",
    "nodiratime",
    "relatime",
    "norelatime",
    "strictatime",
    "nostrictatime",
    "lazytime",
    "nolazytime",
    "iversion",
    "noiversion",
    "silent",
    "loud",
    "default_permissions",
];

/// Prefixes of options meant for other programs: systemd (`x-systemd.*`), util-linux
/// (`x-mount.*`, `comment=`), and any `x-` of an admin's own.
const IGNORED_PREFIXES: &[&str] = &["x-", "comment="];

/// Other names FUSE users know for `snapfs mount` flags.
const ALIASES: &[(&str, &str)] = &[("nonempty", "allow-non-empty")];

/// Flags of `snapfs mount` that are not mount options: the helper always goes into the
/// background.
const NOT_OPTIONS: &[&str] = &["daemon"];

/// Why a helper command line is refused.
#[derive(Debug, thiserror::Error)]
pub enum HelperError {
    #[error("{0}")]
    Usage(String),
    #[error("unknown mount option {0:?} (snapfs takes: {1})")]
    Unknown(String, String),
    #[error("mount option {0:?} takes no value")]
    NoValueExpected(String),
    #[error("mount option {0:?} needs a value ({0}=...)")]
    ValueNeeded(String),
    #[error(
        "a store is mounted read-write (option \"ro\" is for followers of a tiered share, with \"follow\"); browse .snapshots for read-only views"
    )]
    ReadOnly,
    #[error("mounting in another namespace (-N) is not supported")]
    Namespace,
    #[error("{0}")]
    Invalid(String),
}

/// The command line util-linux gives a mount helper.
#[derive(Parser, Debug)]
#[command(name = "mount.fuse.snapfs", disable_version_flag = true)]
struct HelperArgs {
    /// The store directory.
    source: PathBuf,
    /// The mountpoint.
    mountpoint: PathBuf,
    /// Mount options, comma-separated (may be given more than once).
    #[arg(short = 'o', action = ArgAction::Append)]
    options: Vec<String>,
    /// Sloppy: ignore unknown options instead of failing.
    #[arg(short = 's')]
    sloppy: bool,
    /// Fake: check everything, mount nothing.
    #[arg(short = 'f')]
    fake: bool,
    /// Do not write /etc/mtab (there is none to write: a no-op).
    #[arg(short = 'n')]
    no_mtab: bool,
    /// Verbose: show the `snapfs mount` command the options stand for.
    #[arg(short = 'v')]
    verbose: bool,
    /// Mount namespace to mount in.
    #[arg(short = 'N')]
    namespace: Option<String>,
    /// The file system type (`fuse.snapfs`), passed by some callers.
    #[arg(short = 't')]
    fstype: Option<String>,
}

/// What the helper is to do.
#[derive(Debug)]
pub enum HelperPlan {
    /// Run this command (a `snapfs mount --daemon`).
    Mount(Box<Cli>),
    /// `-f`: the options were checked; mount nothing.
    Fake,
    /// This store is already mounted there: nothing to do. `mount -a` runs the helper again
    /// for every fstab line, because the mount table shows the source as `snapfs:STORE` (how
    /// `snapfs umount` finds the store), which util-linux does not match to the fstab line.
    AlreadyMounted,
}

/// The helper's command-line definition, for clap's consistency checks.
#[cfg(test)]
pub(crate) fn helper_command() -> clap::Command {
    HelperArgs::command()
}

/// Whether the program was run under a helper name (by `mount(8)`).
pub fn invoked_as_helper(argv0: &Path) -> bool {
    argv0
        .file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| HELPER_NAMES.contains(&name))
}

/// The `snapfs mount --daemon` a helper command line stands for.
pub fn plan(argv: impl IntoIterator<Item = OsString>) -> Result<HelperPlan, HelperError> {
    let args =
        HelperArgs::try_parse_from(argv).map_err(|err| HelperError::Usage(err.to_string()))?;
    if args.namespace.is_some() {
        return Err(HelperError::Namespace);
    }
    let options: Vec<&str> = args
        .options
        .iter()
        .flat_map(|list| list.split(','))
        .filter(|option| !option.is_empty())
        .collect();
    // A follower (`follow`) is read-only: `ro` says so, and is all it can be.
    let follow = options.contains(&"follow");
    if already_mounted(&args.source, &args.mountpoint, &options) {
        eprintln!(
            "mount.fuse.snapfs: {} is already mounted on {}",
            args.source.display(),
            args.mountpoint.display()
        );
        return Ok(HelperPlan::AlreadyMounted);
    }
    let mut command: Vec<OsString> = vec!["snapfs".into(), "mount".into(), "--daemon".into()];
    command.push(args.source.into_os_string());
    command.push(args.mountpoint.into_os_string());
    for option in options {
        if follow && option == "ro" {
            continue;
        }
        match flag_for(option) {
            Ok(Some(flag)) => command.push(flag.into()),
            Ok(None) => {}
            Err(HelperError::Unknown(option, _)) if args.sloppy => {
                eprintln!("mount.fuse.snapfs: ignoring unknown option {option:?} (-s)");
            }
            Err(err) => return Err(err),
        }
    }
    if args.verbose {
        let shown: Vec<String> = command
            .iter()
            .map(|word| word.to_string_lossy().into_owned())
            .collect();
        eprintln!("mount.fuse.snapfs: {}", shown.join(" "));
    }
    let cli = Cli::try_parse_from(command).map_err(|err| HelperError::Invalid(err.to_string()))?;
    if args.fake {
        return Ok(HelperPlan::Fake);
    }
    Ok(HelperPlan::Mount(Box::new(cli)))
}

/// Whether `source` is what is mounted on `mountpoint` now: the store, or for a follower
/// (option `follow`) its cache directory, which its mount names.
fn already_mounted(source: &Path, mountpoint: &Path, options: &[&str]) -> bool {
    let Ok(mountpoint) = std::path::absolute(mountpoint) else {
        return false;
    };
    let expected = if options.contains(&"follow") {
        options
            .iter()
            .find_map(|option| option.strip_prefix("cache_dir="))
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                crate::tier::default_cache_dir(&source.to_string_lossy(), &mountpoint)
            })
    } else {
        source.to_owned()
    };
    match super::umount::store_of_mount(&mountpoint) {
        Ok(Some(mounted)) => {
            std::fs::canonicalize(mounted).ok() == std::fs::canonicalize(expected).ok()
        }
        _ => false,
    }
}

/// The `snapfs mount` flag one mount option stands for (`--threads=8` for `threads=8`), or
/// `None` for an option that is ignored.
fn flag_for(option: &str) -> Result<Option<String>, HelperError> {
    if option == "ro" {
        return Err(HelperError::ReadOnly);
    }
    if IGNORED.contains(&option) || IGNORED_PREFIXES.iter().any(|p| option.starts_with(p)) {
        return Ok(None);
    }
    let (name, value) = match option.split_once('=') {
        Some((name, value)) => (name, Some(value)),
        None => (option, None),
    };
    let dashed = name.replace('_', "-");
    let long = ALIASES
        .iter()
        .find(|(alias, _)| *alias == dashed)
        .map_or(dashed.as_str(), |(_, long)| *long);
    let mount = mount_command();
    let Some(arg) = mount
        .get_arguments()
        .find(|arg| arg.get_long() == Some(long) && is_option(arg))
    else {
        return Err(HelperError::Unknown(option.to_owned(), known_options()));
    };
    let takes_value = !matches!(arg.get_action(), ArgAction::SetTrue);
    match (takes_value, value) {
        (false, None) => Ok(Some(format!("--{long}"))),
        (false, Some(_)) => Err(HelperError::NoValueExpected(name.to_owned())),
        (true, Some(value)) => Ok(Some(format!("--{long}={value}"))),
        (true, None) => Err(HelperError::ValueNeeded(name.to_owned())),
    }
}

/// `snapfs mount`'s definition: the options follow its flags, so a new flag is a new option.
fn mount_command() -> clap::Command {
    let mut cli = Cli::command();
    cli.build();
    cli.find_subcommand("mount")
        .expect("the mount subcommand exists")
        .clone()
}

/// Whether a `snapfs mount` argument can be given as a mount option.
fn is_option(arg: &clap::Arg) -> bool {
    arg.get_long()
        .is_some_and(|long| !arg.is_hide_set() && !NOT_OPTIONS.contains(&long) && long != "help")
}

/// The options snapfs takes, for the error about an unknown one.
fn known_options() -> String {
    let mount = mount_command();
    let names: Vec<String> = mount
        .get_arguments()
        .filter(|arg| is_option(arg))
        .filter_map(|arg| {
            let name = arg.get_long()?.replace('-', "_");
            Some(match arg.get_action() {
                ArgAction::SetTrue => name,
                _ => format!("{name}=..."),
            })
        })
        .collect();
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::{HelperError, HelperPlan, plan};
    use crate::cli::Command;

    fn mount_args(words: &[&str]) -> Result<crate::cli::mount::MountArgs, HelperError> {
        match plan(words.iter().map(Into::into))? {
            HelperPlan::Mount(cli) => match cli.command {
                Command::Mount(args) => Ok(args),
                other => panic!("not a mount: {other:?}"),
            },
            other => panic!("not a mount: {other:?}"),
        }
    }

    #[test]
    fn options_map_to_mount_flags() {
        let args = mount_args(&[
            "mount.fuse.snapfs",
            "/srv/store",
            "/mnt/share",
            "-o",
            "rw,allow_other,threads=8,cache-ttl=5,writeback_cache=off,_netdev,x-systemd.automount",
            "-o",
            "snapdir=visible,nonempty,dirty_limit=64M,log_file=/var/log/snapfs.log",
            "-o",
            "on_failure=/usr/local/bin/page-me,gmt_names",
        ])
        .expect("valid");
        assert!(args.daemon, "the helper always goes into the background");
        assert!(args.allow_other && args.allow_non_empty && !args.writeback_cache);
        assert!(args.gmt_names);
        assert_eq!(args.threads, 8);
        assert_eq!(args.cache_ttl, 5.0);
        assert_eq!(args.dirty_limit, 64 << 20);
        assert_eq!(args.snapdir, crate::cli::mount::SnapdirVisibility::Visible);
        assert_eq!(
            args.log_file.as_deref(),
            Some("/var/log/snapfs.log".as_ref())
        );
        assert_eq!(args.on_failure.as_deref(), Some("/usr/local/bin/page-me"));
        assert_eq!(args.store.to_str(), Some("/srv/store"));
        assert_eq!(args.mountpoint.to_str(), Some("/mnt/share"));
    }

    #[test]
    fn unknown_bad_and_read_only_options_are_refused() {
        let base = ["mount.fuse.snapfs", "/s", "/m", "-o"];
        let with = |opts: &str| {
            let mut words = base.to_vec();
            words.push(opts);
            mount_args(&words)
        };
        let err = with("allow_other,frobnicate").expect_err("unknown");
        assert!(
            err.to_string()
                .contains("unknown mount option \"frobnicate\""),
            "{err}"
        );
        assert!(err.to_string().contains("threads=..."), "{err}");
        assert!(matches!(with("ro"), Err(HelperError::ReadOnly)));
        assert!(matches!(with("threads"), Err(HelperError::ValueNeeded(_))));
        assert!(matches!(
            with("allow_other=1"),
            Err(HelperError::NoValueExpected(_))
        ));
        assert!(matches!(with("threads=many"), Err(HelperError::Invalid(_))));
        // Not options: the hidden test clock, and --daemon (always on).
        assert!(matches!(
            with("test_clock=5"),
            Err(HelperError::Unknown(..))
        ));
        assert!(matches!(with("daemon"), Err(HelperError::Unknown(..))));
        // Sloppy (-s) skips what it does not know.
        let sloppy = mount_args(&[
            "mount.fuse.snapfs",
            "/s",
            "/m",
            "-s",
            "-o",
            "frobnicate,threads=3",
        ])
        .expect("sloppy");
        assert_eq!(sloppy.threads, 3);
        // A follower: `ro` is what it is.
        let follower = mount_args(&[
            "mount.fuse.snapfs",
            "s3://bucket/share",
            "/m",
            "-o",
            "follow,ro,cache_dir=/var/cache/f,cache_size=2G",
        ])
        .expect("a follower");
        assert!(follower.follow);
        assert_eq!(follower.store.to_str(), Some("s3://bucket/share"));
        assert_eq!(
            follower.cache_dir.as_deref(),
            Some(std::path::Path::new("/var/cache/f"))
        );
        assert_eq!(follower.cache_size, 2 << 30);
    }

    #[test]
    fn fake_checks_without_mounting() {
        let words = [
            "mount.fuse.snapfs",
            "/s",
            "/m",
            "-f",
            "-n",
            "-v",
            "-o",
            "threads=2",
        ];
        assert!(matches!(
            plan(words.iter().map(Into::into)),
            Ok(HelperPlan::Fake)
        ));
        let words = ["mount.fuse.snapfs", "/s", "/m", "-f", "-o", "bogus"];
        assert!(plan(words.iter().map(Into::into)).is_err());
    }
}
