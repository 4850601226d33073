//! The replies of requests, as JSON: what the daemon writes back through the control file and
//! what `snapfs ... --json` prints. The command line reads them back with the same types.

use serde::{Deserialize, Serialize};

use super::jobs::Job;
use crate::format::catalog::{Hold, Origin, SnapshotRecord};
use crate::gc::usage::Usage;
use crate::schedule::backup_policy::BackupPolicy;
use crate::schedule::calendar::format_rfc3339;
use crate::schedule::policy::Policy;

/// One snapshot, as `list` shows it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub name: String,
    pub number: u64,
    /// RFC 3339, UTC.
    pub created: String,
    /// `manual` or `automatic`.
    pub origin: String,
    /// The root object id (hex).
    pub root: String,
    /// `indefinite`, an RFC 3339 time, or none.
    pub held_until: Option<String>,
    /// For a soft-deleted snapshot: when it was deleted and when it will be purged.
    pub deleted_at: Option<String>,
    pub purge_at: Option<String>,
    /// Stored bytes only this snapshot holds (what deleting it would free), when computed.
    pub unique_bytes: Option<u64>,
}

impl SnapshotInfo {
    pub fn new(name: &str, record: &SnapshotRecord, unique_bytes: Option<u64>) -> Self {
        SnapshotInfo {
            name: name.to_owned(),
            number: record.number,
            created: format_rfc3339(record.created.secs),
            origin: match record.origin {
                Origin::Manual => "manual",
                Origin::Automatic => "automatic",
            }
            .into(),
            root: record.root.to_hex(),
            held_until: match record.hold {
                Hold::None => None,
                Hold::Until(until) => Some(format_rfc3339(until)),
                Hold::Indefinite => Some("indefinite".into()),
            },
            deleted_at: record.deleted.map(|d| format_rfc3339(d.deleted_at)),
            purge_at: record.deleted.map(|d| format_rfc3339(d.purge_at)),
            unique_bytes,
        }
    }
}

/// `policy show` and `policy set`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PolicyReport {
    pub policy: Policy,
    /// The policy in words (the snapshot policy, then the backup schedule).
    pub description: String,
    /// When the next automatic snapshot is due (RFC 3339), if any.
    pub next_snapshot: Option<String>,
    /// The backup schedule.
    #[serde(default)]
    pub backup: BackupPolicy,
    /// When the next scheduled backup is due (RFC 3339), if any.
    #[serde(default)]
    pub next_backup: Option<String>,
}

/// A backup that went into a vault (by the schedule or by a command).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct BackupMark {
    /// The snapshot backed up.
    pub name: String,
    /// When the backup ended (RFC 3339).
    pub time: String,
    /// Unix seconds of `time`, to compare.
    pub secs: i64,
    /// Why it failed, for a failure.
    #[serde(default)]
    pub error: Option<String>,
}

/// The last outcomes of backups into one vault, kept in the store's settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct VaultBackupState {
    pub last_success: Option<BackupMark>,
    pub last_failure: Option<BackupMark>,
}

/// One scheduled vault, as `status` shows it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct VaultStatus {
    pub vault: String,
    pub last_success: Option<BackupMark>,
    /// The last failure, only when it is newer than the last success.
    pub last_failure: Option<BackupMark>,
    /// When the next scheduled backup is due (RFC 3339), if any.
    pub next: Option<String>,
}

/// Space use, in stored (compressed) bytes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Space {
    /// Every chunk in the index.
    pub stored_bytes: u64,
    /// Chunks the live share uses.
    pub live_bytes: u64,
    /// Chunks only snapshots use (not the live share).
    pub snapshot_bytes: u64,
    /// Chunks only soft-deleted snapshots hold: freed once they are purged and gc runs.
    pub deleted_snapshot_bytes: u64,
    /// Chunks nothing uses: what `gc` frees now.
    pub reclaimable_bytes: u64,
}

impl From<&Usage> for Space {
    fn from(usage: &Usage) -> Self {
        Space {
            stored_bytes: usage.stored_bytes,
            live_bytes: usage.live_bytes,
            snapshot_bytes: usage.snapshot_bytes,
            deleted_snapshot_bytes: usage.deleted_snapshot_bytes,
            reclaimable_bytes: usage.reclaimable_bytes,
        }
    }
}

/// What browsing `.snapshots/` holds in memory: both bounded (see `snapshot/view.rs`), and
/// reported so that the bound can be watched.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ViewMemory {
    /// Inodes inside snapshots remembered: those the kernel holds, and history versions.
    pub inodes: usize,
    /// Estimated bytes of decoded snapshot objects cached.
    pub cached_object_bytes: u64,
}

/// `status`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct StatusReport {
    pub store: String,
    pub mountpoint: Option<String>,
    pub now: String,
    pub policy: PolicyReport,
    pub snapshots: usize,
    pub automatic_snapshots: usize,
    pub held_snapshots: usize,
    pub deleted_snapshots: usize,
    pub space: Space,
    /// What the daemon's snapshot view holds in memory (zero for a store that is not mounted).
    #[serde(default)]
    pub snapshot_view: ViewMemory,
    /// The newest jobs, newest first.
    pub jobs: Vec<Job>,
    /// The newest failed jobs, newest first.
    pub failures: Vec<Job>,
    /// Each vault of the backup schedule.
    #[serde(default)]
    pub backups: Vec<VaultStatus>,
}

/// `report`: what `snapfs report` draws, the space over time and what holds it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SpaceReport {
    pub store: String,
    /// Unix seconds: when the report was made.
    pub now: i64,
    /// The space figures now.
    pub space: Space,
    /// The space history (`service::space_history`), oldest first.
    pub history: Vec<SpacePoint>,
    /// Every snapshot, listed and soft-deleted, oldest first.
    pub snapshots: Vec<ReportSnapshot>,
    /// The backups the job log records, per vault.
    pub vaults: Vec<VaultBackups>,
    /// The newest jobs, newest first.
    pub jobs: Vec<Job>,
}

/// One sample of the space history.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SpacePoint {
    /// Unix seconds.
    pub secs: i64,
    pub space: Space,
}

/// One snapshot, as the report places it on the time line.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ReportSnapshot {
    pub name: String,
    pub number: u64,
    /// Unix seconds.
    pub created: i64,
    /// Stored bytes only this snapshot holds; `None` for a soft-deleted one (what those hold
    /// is counted together, in `Space::deleted_snapshot_bytes`).
    pub unique_bytes: Option<u64>,
    /// Soft-deleted (recoverable until purged).
    pub deleted: bool,
}

/// The backups into one vault that the job log records (its newest 1,000 jobs).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct VaultBackups {
    pub vault: String,
    /// Backups that succeeded.
    pub backups: u64,
    /// Stored bytes they added to the vault, together.
    pub bytes_added: u64,
    /// The newest that succeeded.
    pub latest: Option<BackupMark>,
    /// Backups that failed.
    pub failures: u64,
    /// The newest failure, only when it is newer than the newest success.
    pub last_failure: Option<BackupMark>,
}
