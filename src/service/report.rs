//! The `report` request: the data `snapfs report` draws, gathered in one place: the space
//! history, every snapshot with the bytes it alone holds, the backups the job log records per
//! vault, and the newest jobs.

use std::collections::BTreeMap;

use super::backup_schedule::SCHEDULED_BACKUP;
use super::jobs::{Job, KEEP_JOBS};
use super::replies::{BackupMark, ReportSnapshot, Space, SpacePoint, SpaceReport, VaultBackups};
use super::{Service, ServiceError, space_history};
use crate::schedule::calendar::format_rfc3339;

/// The job kind of a backup made by a command.
const BACKUP: &str = "backup";

impl Service {
    /// The report's data; `jobs`: how many recent jobs to include.
    pub(super) fn report(&self, jobs: usize) -> Result<SpaceReport, ServiceError> {
        let usage = self.usage(false)?;
        let now = self.now();
        let history = space_history::read(&self.snapshots.live().database())
            .map_err(ServiceError::io)?
            .into_iter()
            .map(|(secs, sample)| SpacePoint {
                secs,
                space: Space {
                    stored_bytes: sample.stored_bytes,
                    live_bytes: sample.live_bytes,
                    snapshot_bytes: sample.snapshot_bytes,
                    deleted_snapshot_bytes: sample.deleted_snapshot_bytes,
                    reclaimable_bytes: sample.reclaimable_bytes,
                },
            })
            .collect();
        let listed = self.snapshots.list().into_iter().map(|(name, record)| {
            let unique = usage.unique_bytes.get(&name).copied();
            (name, record, unique)
        });
        let deleted = self
            .snapshots
            .list_deleted()
            .into_iter()
            .map(|(name, record)| (name, record, None));
        let mut snapshots: Vec<ReportSnapshot> = listed
            .chain(deleted)
            .map(|(name, record, unique_bytes)| ReportSnapshot {
                name,
                number: record.number,
                created: record.created.secs,
                unique_bytes,
                deleted: record.deleted.is_some(),
            })
            .collect();
        snapshots.sort_by_key(|s| (s.created, s.number));
        let logged = self
            .jobs
            .recent(KEEP_JOBS as usize, false)
            .map_err(ServiceError::io)?;
        Ok(SpaceReport {
            store: self.snapshots.live().store_dir().display().to_string(),
            now,
            space: Space::from(&usage),
            history,
            snapshots,
            vaults: vault_backups(&logged),
            jobs: logged.into_iter().take(jobs).collect(),
        })
    }
}

/// The vault and the snapshot of a backup job, if it is one. Backups recorded before jobs
/// named their vault have only the target `NAME -> VAULT` (split at the last arrow: a vault
/// location is ours to spell, a snapshot name the user's).
fn backup_of(job: &Job) -> Option<(String, String)> {
    if job.kind != BACKUP && job.kind != SCHEDULED_BACKUP {
        return None;
    }
    let parsed = job.target.rsplit_once(" -> ");
    let vault = job
        .vault
        .clone()
        .or_else(|| parsed.map(|(_, vault)| vault.to_owned()))?;
    let name = job
        .backup
        .clone()
        .or_else(|| parsed.map(|(name, _)| name.to_owned()))
        .unwrap_or_default();
    Some((vault, name))
}

/// The backups of `jobs` (any order) per vault, by vault location.
fn vault_backups(jobs: &[Job]) -> Vec<VaultBackups> {
    let mut vaults: BTreeMap<String, VaultBackups> = BTreeMap::new();
    let newer = |mark: &Option<BackupMark>, secs: i64| mark.as_ref().is_none_or(|m| m.secs < secs);
    for job in jobs {
        let Some((vault, name)) = backup_of(job) else {
            continue;
        };
        let entry = vaults.entry(vault.clone()).or_insert_with(|| VaultBackups {
            vault,
            ..VaultBackups::default()
        });
        let mark = BackupMark {
            name,
            time: format_rfc3339(job.ended),
            secs: job.ended,
            error: job.error.clone(),
        };
        if job.ok {
            entry.backups += 1;
            entry.bytes_added += job.bytes;
            if newer(&entry.latest, job.ended) {
                entry.latest = Some(mark);
            }
        } else {
            entry.failures += 1;
            if newer(&entry.last_failure, job.ended) {
                entry.last_failure = Some(mark);
            }
        }
    }
    let mut out: Vec<VaultBackups> = vaults.into_values().collect();
    for vault in &mut out {
        // A failure is news only until a backup succeeds after it.
        if let (Some(failure), Some(latest)) = (&vault.last_failure, &vault.latest)
            && failure.secs < latest.secs
        {
            vault.last_failure = None;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backup(kind: &str, target: &str, vault: Option<&str>, ended: i64, ok: bool) -> Job {
        Job {
            kind: kind.into(),
            target: target.into(),
            started: ended - 5,
            ended,
            ok,
            error: (!ok).then(|| "vault unreachable".into()),
            bytes: if ok { 100 } else { 0 },
            vault: vault.map(str::to_owned),
            backup: vault.map(|_| "snap".to_owned()),
            ..Job::default()
        }
    }

    #[test]
    fn backups_are_counted_per_vault_with_the_newest_success_and_a_newer_failure() {
        let jobs = vec![
            backup(SCHEDULED_BACKUP, "snap -> /v/a", Some("/v/a"), 300, false),
            backup(BACKUP, "snap -> /v/a", Some("/v/a"), 200, true),
            backup(BACKUP, "old one -> s3://b/p", None, 150, true),
            backup(BACKUP, "snap -> /v/a", Some("/v/a"), 100, true),
            backup(BACKUP, "x -> s3://b/p", None, 120, false),
            backup("create", "snap", None, 50, true),
        ];
        let vaults = vault_backups(&jobs);
        assert_eq!(vaults.len(), 2, "{vaults:?}");
        let a = &vaults[0];
        assert_eq!(a.vault, "/v/a");
        assert_eq!((a.backups, a.bytes_added, a.failures), (2, 200, 1));
        assert_eq!(a.latest.as_ref().map(|m| m.secs), Some(200));
        assert_eq!(a.last_failure.as_ref().map(|m| m.secs), Some(300));
        let b = &vaults[1];
        assert_eq!(b.vault, "s3://b/p");
        assert_eq!((b.backups, b.failures), (1, 1));
        let latest = b.latest.as_ref().expect("latest");
        assert_eq!((latest.name.as_str(), latest.secs), ("old one", 150));
        assert_eq!(b.last_failure, None, "an older failure is no news");
    }
}
