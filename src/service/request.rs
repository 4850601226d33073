//! What a command asks of a store: one [`Request`] type for the `snapfs` command line, the
//! control file and the daemon, so that every command means the same thing mounted or not.
//!
//! The control file takes one request per line, in either form:
//! - as words, the way the command line spells it without `snapfs` and `--store`/`--mount`
//!   (`create before-deploy`, `restore nightly docs/report.txt --to docs/old.txt`), split like a
//!   shell would, so names with spaces are quoted;
//! - as one JSON object (`{"command":"create","name":"before-deploy"}`): what the `snapfs`
//!   command itself sends, so no name or path ever needs quoting.
//!
//! Paths inside the share are bytes from end to end ([`BytePath`], whose module says how they
//! are spelled in JSON), so a name that is not UTF-8 can be restored or looked up like any
//! other.

use std::os::unix::ffi::OsStringExt;

use clap::{Args, Parser, Subcommand};
use serde::{Deserialize, Serialize};

pub use super::byte_path::BytePath;

/// A request, as the control file and the daemon take it.
#[derive(Subcommand, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(tag = "command", rename_all = "kebab-case")]
pub enum Request {
    /// Take a snapshot now.
    Create(Named),
    /// Delete a snapshot (soft delete keeps it recoverable, if the policy says so).
    Delete(Named),
    /// List snapshots (or the deleted ones), with the bytes each alone holds.
    List(ListArgs),
    /// Bring back a soft-deleted snapshot.
    Undelete(Named),
    /// Forget a soft-deleted snapshot now, so gc can free its data.
    Purge(Named),
    /// Protect a snapshot from deletion, by anyone, until released or until a time.
    Hold(HoldArgs),
    /// Remove the hold on a snapshot.
    Release(Named),
    /// Reclaim the space no snapshot and not the live share uses.
    Gc,
    /// Space use: live share, each snapshot's unique bytes, reclaimable bytes.
    Usage,
    /// Check every chunk in use; report what damaged chunks affect.
    Verify(VerifyArgs),
    /// Put a file or tree from a snapshot back into the live share, by reference.
    Restore(RestoreArgs),
    /// Return the whole live share to a snapshot (after a safety snapshot of it).
    Rollback(Snapshot),
    /// Make a new, independent store whose share starts as a snapshot.
    Clone(CloneArgs),
    /// Copy a snapshot (or a new one taken now) into a backup vault.
    Backup(BackupArgs),
    /// Put a file or tree from a backup in a vault back into the live share.
    VaultRestore(VaultRestoreArgs),
    /// What changed between two snapshots (or a snapshot and `live`).
    Diff(DiffArgs),
    /// The distinct versions of a path across snapshots.
    Log(LogArgs),
    /// Show or change the snapshot schedule, retention and soft delete.
    Policy {
        #[command(subcommand)]
        action: PolicyAction,
    },
    /// The share, its policy, next scheduled snapshot, recent jobs and space use.
    Status(StatusArgs),
    /// The space over time (live share, snapshots, soft-deleted snapshots), each snapshot's
    /// unique bytes, backups per vault and recent jobs: what `snapfs report` draws.
    Report(ReportArgs),
    /// How far a background job of the daemon got, or its outcome once it ended.
    Job(JobArgs),
    /// A tiered store's cache use, uploads and checkpoints.
    TierStatus,
    /// Fetch a tree of the live share into a tiered store's cache now (recall), keep it there
    /// (pin), or let it be evicted again (unpin).
    TierCache(TierCacheRequest),
    /// Set the daemon's clock (only when it runs with an injected test clock) and run the
    /// scheduler at the new time.
    #[command(hide = true)]
    Clock(ClockArgs),
}

impl Request {
    /// The kind of a request a daemon runs as a background job (long ones: they read or copy
    /// data in proportion to the store), or `None` for one it answers at once.
    pub fn background_kind(&self) -> Option<&'static str> {
        match self {
            Request::Gc => Some("gc"),
            Request::Verify(_) => Some("verify"),
            Request::Restore(_) => Some("restore"),
            Request::Rollback(_) => Some("rollback"),
            Request::Clone(_) => Some("clone"),
            Request::Backup(_) => Some("backup"),
            Request::VaultRestore(_) => Some("vault-restore"),
            Request::TierCache(args) => Some(args.action.job_kind()),
            _ => None,
        }
    }
}

#[derive(Args, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct TierCacheRequest {
    #[arg(value_enum)]
    pub action: CacheAction,
    /// The file or directory, relative to the share's root.
    pub path: BytePath,
}

/// What `TierCache` does to a tree.
#[derive(clap::ValueEnum, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum CacheAction {
    Recall,
    Pin,
    Unpin,
}

impl CacheAction {
    /// Its kind as a job (a recall walks and fetches a whole tree: it runs in the background).
    pub fn job_kind(self) -> &'static str {
        match self {
            CacheAction::Recall => "tier-recall",
            CacheAction::Pin => "tier-pin",
            CacheAction::Unpin => "tier-unpin",
        }
    }
}

#[derive(Args, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct JobArgs {
    /// The job's number, as the request that started it answered.
    pub job: u64,
}

#[derive(Args, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Named {
    /// The snapshot's name.
    pub name: String,
}

#[derive(Args, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The snapshot's name.
    pub snapshot: String,
}

#[derive(Args, Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct ListArgs {
    /// List soft-deleted snapshots instead.
    #[arg(long)]
    #[serde(default)]
    pub deleted: bool,
    /// Compute space by walking every snapshot instead of reading the figures kept up to date
    /// (slow: the reference those figures are tested against).
    #[arg(long, hide = true)]
    #[serde(default)]
    pub full_walk: bool,
}

#[derive(Args, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct HoldArgs {
    /// The snapshot's name.
    pub name: String,
    /// When the hold ends by itself: a time (`2026-12-31`, `2026-12-31T12:00:00Z`, UTC) or a
    /// duration from now (`30d`). Without it, the hold lasts until released.
    #[arg(long)]
    pub until: Option<String>,
}

#[derive(Args, Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyArgs {
    /// Check one snapshot only.
    #[arg(long)]
    pub snapshot: Option<String>,
    /// Check that every chunk is indexed and inside an existing pack, without reading it.
    #[arg(long)]
    #[serde(default)]
    pub quick: bool,
}

#[derive(Args, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct RestoreArgs {
    /// The snapshot to restore from.
    pub snapshot: String,
    /// The file or directory to restore, relative to the share's root.
    pub path: BytePath,
    /// Where to put it in the live share (default: where it was).
    #[arg(long)]
    pub to: Option<BytePath>,
    /// Replace what is there now (by default an existing target is refused).
    #[arg(long)]
    #[serde(default)]
    pub overwrite: bool,
}

#[derive(Args, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct CloneArgs {
    /// The snapshot to clone.
    pub snapshot: String,
    /// The directory of the new store (absent or empty).
    #[serde(with = "super::byte_path::os_path")]
    pub new_store: std::path::PathBuf,
}

#[derive(Args, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct BackupArgs {
    /// The snapshot to back up; without one, a snapshot is taken now.
    pub snapshot: Option<String>,
    /// The vault: a local directory or `s3://bucket/prefix`.
    #[arg(long)]
    pub to: String,
    /// What opens the vault and reaches its storage. Filled in by the `snapfs` command from its
    /// own environment (`SNAPFS_PASSPHRASE`, `--key-file`, `AWS_*`), never from the words of a
    /// control-file line, and never recorded in a job.
    #[arg(skip)]
    #[serde(default)]
    pub access: VaultAccess,
}

#[derive(Args, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct VaultRestoreArgs {
    /// The vault: a local directory or `s3://bucket/prefix`.
    pub vault: String,
    /// The backup: a snapshot name, or SHARE/NAME.
    pub backup: String,
    /// The file or directory to restore, relative to the backup's root.
    pub path: BytePath,
    /// Where to put it in the live share (default: where it was).
    #[arg(long)]
    pub to: Option<BytePath>,
    /// Replace what is there now (by default an existing target is refused).
    #[arg(long)]
    #[serde(default)]
    pub overwrite: bool,
    /// What opens the vault, as for [`BackupArgs::access`]: never from the words of a
    /// control-file line, never recorded in a job.
    #[arg(skip)]
    #[serde(default)]
    pub access: VaultAccess,
}

/// The secret and the S3 settings a vault needs, carried from the command to the daemon.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct VaultAccess {
    /// A passphrase (UTF-8).
    #[serde(default)]
    pub passphrase: Option<String>,
    /// The bytes of a key file, in hex.
    #[serde(default)]
    pub key_hex: Option<String>,
    #[serde(default)]
    pub s3: Option<S3Access>,
}

/// S3 settings, as the standard environment gives them.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct S3Access {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub region: String,
    pub endpoint: Option<String>,
    /// How long transient failures are retried, in seconds (`SNAPFS_S3_RETRY_TIMEOUT`);
    /// `None`: the default.
    #[serde(default)]
    pub retry_timeout_secs: Option<u64>,
}

#[derive(Args, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct DiffArgs {
    /// The older side: a snapshot name or `live`.
    pub from: String,
    /// The newer side: a snapshot name or `live`.
    pub to: String,
    /// Limit the comparison to this path (relative to the share's root).
    pub path: Option<BytePath>,
}

#[derive(Args, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct LogArgs {
    /// The file or directory, relative to the share's root.
    pub path: BytePath,
}

// One value per request, parsed once: the size of the `Set` variant costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum PolicyAction {
    /// Show the policy.
    Show,
    /// Change the policy; what is not given stays as it is.
    Set(PolicySetArgs),
}

/// A policy change, as given: the values are checked where the request is carried out.
#[derive(Args, Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicySetArgs {
    /// Take a snapshot at the start of every hour (hh:00 in the policy's time zone): `on` or
    /// `off`.
    #[arg(long)]
    pub hourly: Option<String>,
    /// Take a snapshot every day at this time (HH:MM in the policy's time zone), or `off`.
    #[arg(long)]
    pub daily_at: Option<String>,
    /// Automatic snapshots to keep: the newest of each of the last N hours.
    #[arg(long)]
    pub keep_hourly: Option<u32>,
    /// ... of each of the last N days.
    #[arg(long)]
    pub keep_daily: Option<u32>,
    /// ... of each of the last N weeks (ISO weeks, from Monday).
    #[arg(long)]
    pub keep_weekly: Option<u32>,
    /// ... of each of the last N months.
    #[arg(long)]
    pub keep_monthly: Option<u32>,
    /// ... of each of the last N years.
    #[arg(long)]
    pub keep_yearly: Option<u32>,
    /// Keep deleted snapshots recoverable for this long (`14d`, `36h`), or `off`.
    #[arg(long)]
    pub soft_delete: Option<String>,
    /// Back the share up into this vault on the backup schedule (repeat for several vaults;
    /// replaces the list), or `none` to stop scheduled backups. A local vault must be an
    /// absolute path.
    #[arg(long, value_name = "VAULT")]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backup_to: Vec<String>,
    /// Back up at the start of every hour (hh:00 in the policy's time zone): `on` or `off`.
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_hourly: Option<String>,
    /// Back up every day at this time (HH:MM in the policy's time zone), or `off`.
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_daily_at: Option<String>,
    /// The key file that opens the vaults (read by the daemon at each backup; only its path is
    /// stored), or `none` for unencrypted vaults. S3 settings come from the daemon's `AWS_*`
    /// environment.
    #[arg(long, value_name = "FILE")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_key_file: Option<String>,
    /// The IANA time zone (`Europe/Berlin`, `America/New_York`, `UTC`) whose clock the
    /// snapshot and backup schedules and the retention buckets follow, across daylight-saving
    /// changes, and in which their times are shown. UTC until set.
    #[arg(long, value_name = "ZONE")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
}

impl PolicySetArgs {
    /// Whether the change touches the backup schedule (which acts outside the share).
    pub fn changes_backups(&self) -> bool {
        !self.backup_to.is_empty()
            || self.backup_hourly.is_some()
            || self.backup_daily_at.is_some()
            || self.backup_key_file.is_some()
    }
}

#[derive(Args, Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusArgs {
    /// How many recent jobs to show.
    #[arg(long, default_value_t = 10)]
    #[serde(default)]
    pub jobs: usize,
    /// Compute space by walking every snapshot instead of reading the figures kept up to date
    /// (slow: the reference those figures are tested against).
    #[arg(long, hide = true)]
    #[serde(default)]
    pub full_walk: bool,
}

#[derive(Args, Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportArgs {
    /// How many recent jobs to show.
    #[arg(long, default_value_t = 20)]
    #[serde(default)]
    pub jobs: usize,
}

#[derive(Args, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ClockArgs {
    /// The new time: unix seconds, or an RFC 3339 time such as `2026-11-21T03:00:00Z` or
    /// `2026-11-21T04:00:00+01:00`.
    pub now: String,
}

/// One line of the control file, parsed as the command line would be.
#[derive(Parser, Debug)]
#[command(
    name = "control",
    no_binary_name = true,
    disable_help_flag = true,
    disable_version_flag = true,
    disable_help_subcommand = true
)]
struct ControlLine {
    #[command(subcommand)]
    request: Request,
}

/// Parses one control-file line (without its newline): `None` for a blank line. A line of
/// words may hold any bytes (a path need not be UTF-8); a JSON line must be UTF-8, as JSON is.
pub fn parse_line(line: &[u8]) -> Result<Option<Request>, String> {
    let line = line.trim_ascii();
    if line.is_empty() {
        return Ok(None);
    }
    let shown = || String::from_utf8_lossy(line).into_owned();
    if line.starts_with(b"{") {
        let text =
            std::str::from_utf8(line).map_err(|_| format!("{:?}: JSON must be UTF-8", shown()))?;
        return serde_json::from_str(text)
            .map(Some)
            .map_err(|err| format!("{text:?}: {err}"));
    }
    let words =
        shlex::bytes::split(line).ok_or_else(|| format!("{:?}: unbalanced quotes", shown()))?;
    let words = words.into_iter().map(std::ffi::OsString::from_vec);
    match ControlLine::try_parse_from(words) {
        Ok(parsed) => Ok(Some(parsed.request)),
        Err(err) => {
            let text = err.to_string();
            let first = text.lines().next().unwrap_or("invalid request");
            Err(format!(
                "{:?}: {}",
                shown(),
                first.trim_start_matches("error: ")
            ))
        }
    }
}

/// Parses a whole text of requests, one per line (what [`parse_line`] takes, line by line);
/// refuses a text without any.
pub fn parse(text: &[u8]) -> Result<Vec<Request>, String> {
    let mut requests = Vec::new();
    for line in text.split(|&byte| byte == b'\n') {
        requests.extend(parse_line(line)?);
    }
    if requests.is_empty() {
        return Err("no request given".into());
    }
    Ok(requests)
}

/// One request as a control-file line (JSON, so nothing needs quoting).
pub fn to_line(request: &Request) -> String {
    serde_json::to_string(request).expect("requests serialise")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_words_and_json() {
        let named = |name: &str| Named { name: name.into() };
        assert_eq!(
            parse(b"create before-deploy\n\ndelete 'old one'\n").expect("valid"),
            vec![
                Request::Create(named("before-deploy")),
                Request::Delete(named("old one"))
            ]
        );
        assert_eq!(
            parse(b"gc\nverify --quick --snapshot a").expect("valid"),
            vec![
                Request::Gc,
                Request::Verify(VerifyArgs {
                    snapshot: Some("a".into()),
                    quick: true
                })
            ]
        );
        let restore = Request::Restore(RestoreArgs {
            snapshot: "nightly".into(),
            path: "docs/a b.txt".into(),
            to: Some("x".into()),
            overwrite: true,
        });
        assert_eq!(
            parse(b"restore nightly 'docs/a b.txt' --to x --overwrite").expect("valid"),
            vec![restore.clone()]
        );
        assert_eq!(
            parse(to_line(&restore).as_bytes()).expect("valid"),
            vec![restore]
        );
        assert_eq!(
            parse(b"policy set --keep-daily 7 --hourly on").expect("valid"),
            vec![Request::Policy {
                action: PolicyAction::Set(PolicySetArgs {
                    hourly: Some("on".into()),
                    keep_daily: Some(7),
                    ..PolicySetArgs::default()
                })
            }]
        );
    }

    #[test]
    fn paths_are_bytes_in_both_forms() {
        let log = |path: &[u8]| {
            Request::Log(LogArgs {
                path: BytePath(path.to_vec()),
            })
        };
        assert_eq!(parse_line(b"log 'caf\xe9'"), Ok(Some(log(b"caf\xe9"))));
        assert_eq!(
            parse_line(b"log two\\ words\xff"),
            Ok(Some(log(b"two words\xff")))
        );
        assert_eq!(
            parse_line(br#"{"command":"log","path":[99,97,102,233]}"#),
            Ok(Some(log(b"caf\xe9")))
        );
        assert_eq!(parse_line(b"  \r"), Ok(None));
        let restore = Request::Restore(RestoreArgs {
            snapshot: "s".into(),
            path: BytePath(b"a\nb\xff".to_vec()),
            to: Some(BytePath(b"\x80".to_vec())),
            overwrite: false,
        });
        let clone = Request::Clone(CloneArgs {
            snapshot: "s".into(),
            new_store: std::ffi::OsString::from_vec(b"/srv/\xfe".to_vec()).into(),
        });
        for request in [restore, clone] {
            let line = to_line(&request);
            assert!(!line.contains('\n'), "{line}");
            assert_eq!(parse(line.as_bytes()), Ok(vec![request]));
        }
        // A snapshot name is text: bytes that are not UTF-8 are refused there.
        assert!(parse_line(b"create \xff").is_err());
    }

    #[test]
    fn refuses_garbage() {
        for bad in [
            &b"explode x\n"[..],
            b"create\n",
            b"",
            b"\xff\xfe",
            b"   \n",
            b"gc now",
            b"create 'unbalanced",
            b"{\"command\":\"nope\"}",
            b"create a b",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
