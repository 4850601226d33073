//! Scheduled backups: at each slot of the backup schedule (`schedule::backup_policy`), the
//! daemon takes a snapshot and backs it up into each vault of the schedule, then applies that
//! vault's own retention policy (`vault prune`), each step a recorded job.
//!
//! - **Catch-up** as for snapshots (`schedule::slots::due_of`): the slot is recorded as handled
//!   before the work starts, so a failure is not retried in a loop, and a daemon that was down
//!   across many slots makes one backup when it starts, not one per slot.
//! - **The snapshot** is an automatic one named after the slot (`auto-...`), or the one the
//!   snapshot schedule took for the same slot in the same tick. Snapshot retention expires it
//!   like any automatic snapshot; when snapshot retention is off (nothing would ever expire
//!   it) it is deleted once every vault holds it, since the vaults keep it.
//! - **In the background**: the copying runs as a background job (`service::background`), so
//!   the scheduler, and a `clock` request of the tests, never waits for a long upload; its
//!   number is in the tick's report. A slot that comes while the previous scheduled backup
//!   still runs is recorded as a failed job (the hook hears of it), not queued.
//! - **The key** comes from the key file the schedule names, read at each backup, so the
//!   secret is never stored in the store; S3 settings come from the daemon's own `AWS_*`
//!   environment, as for any S3 tool started by an init system.
//! - **Outcome per vault**: each backup is a job `backup (scheduled)` with the vault and the
//!   snapshot in the job (and in the hook's environment, `SNAPFS_VAULT`,
//!   `SNAPFS_BACKUP_NAME`); the last success and failure per vault are kept in the settings
//!   for `status`. One vault failing does not stop the others.

use std::sync::atomic::Ordering;

use serde::Serialize;

use super::jobs::Job;
use super::replies::{BackupMark, VaultBackupState};
use super::scheduler::TickReport;
use super::{Service, ServiceError, settings};
use crate::format::catalog::Origin;
use crate::progress::Progress;
use crate::schedule::backup_policy::{BackupPolicy, BackupPolicyChange};
use crate::schedule::calendar::{format_rfc3339, format_rfc3339_in, parse_time_of_day};
use crate::schedule::slots;
use crate::vault::{Secret, Vault};

/// The job kind of a scheduled backup into one vault.
pub const SCHEDULED_BACKUP: &str = "backup (scheduled)";
/// The job kind of the prune that follows it.
pub const SCHEDULED_PRUNE: &str = "vault prune (scheduled)";

/// What one scheduled backup did in one vault.
#[derive(Serialize, Clone, Debug, Default)]
pub struct VaultOutcome {
    pub vault: String,
    pub ok: bool,
    pub bytes_added: u64,
    pub error: Option<String>,
    /// Backups the vault's retention policy removed afterwards.
    pub pruned: Vec<String>,
}

/// What a scheduled backup job did: its snapshot, and each vault.
#[derive(Serialize, Clone, Debug, Default)]
pub struct ScheduledBackupReport {
    pub snapshot: String,
    pub vaults: Vec<VaultOutcome>,
}

impl Service {
    /// The tick's backup step: if a backup slot passed since the last one handled, take (or
    /// reuse) the slot's snapshot and start the backup job. `created` is the automatic snapshot
    /// this tick took, if any.
    pub(super) fn backup_tick(&self, now: i64, created: Option<&str>, report: &mut TickReport) {
        let (due, policy) = {
            let mut settings = self.settings.lock();
            let Some(schedule) = settings.backup_policy.schedule() else {
                return;
            };
            let last = *settings.last_backup_slot.get_or_insert(now);
            let due = slots::due_of(&schedule, now, last);
            if let Some(slot) = due {
                // Handled from now on, even if it fails: the next chance is the next slot.
                settings.last_backup_slot = Some(slot);
                if let Err(err) = settings::store(&self.snapshots.live().database(), &settings) {
                    report.errors.push(err.to_string());
                }
            }
            (due, settings.backup_policy.clone())
        };
        let Some(slot) = due else {
            return;
        };
        let wanted = slots::auto_snapshot_name(slot);
        if self.backup_running.swap(true, Ordering::AcqRel) {
            let message = "skipped: the previous scheduled backup is still running".to_owned();
            for vault in &policy.vaults {
                self.record_backup(vault, &wanted, now, Err(message.clone()));
            }
            report.errors.push(message);
            return;
        }
        let name = match created {
            Some(name) if name == wanted => name.to_owned(),
            _ => {
                let name = self.free_name(&wanted);
                if let Err(err) = self.create(&name, Origin::Automatic, true) {
                    self.backup_running.store(false, Ordering::Release);
                    for vault in &policy.vaults {
                        self.record_backup(vault, &name, now, Err(err.message.clone()));
                    }
                    report.errors.push(err.message);
                    return;
                }
                name
            }
        };
        report.backup_snapshot = Some(name.clone());
        let Some(this) = self.me.upgrade() else {
            self.backup_running.store(false, Ordering::Release);
            return;
        };
        let started = self.background.start(SCHEDULED_BACKUP, move |progress| {
            let outcome = this.run_scheduled_backup(&name, &policy, progress);
            this.backup_running.store(false, Ordering::Release);
            serde_json::to_value(outcome).map_err(ServiceError::io)
        });
        match started {
            Ok(job) => report.backup_job = Some(job),
            Err(err) => {
                self.backup_running.store(false, Ordering::Release);
                report.errors.push(err.message);
            }
        }
    }

    /// Backs `name` up into every vault of `policy`, then prunes each vault that has a
    /// retention policy; every step is a recorded job.
    fn run_scheduled_backup(
        &self,
        name: &str,
        policy: &BackupPolicy,
        progress: &Progress,
    ) -> ScheduledBackupReport {
        let mut report = ScheduledBackupReport {
            snapshot: name.to_owned(),
            vaults: Vec::new(),
        };
        for vault in &policy.vaults {
            let started = self.now();
            let result = self.backup_one(vault, name, policy.key_file.as_deref(), progress);
            let mut outcome = VaultOutcome {
                vault: vault.clone(),
                ..VaultOutcome::default()
            };
            match result {
                Ok((opened, bytes_added)) => {
                    outcome.ok = true;
                    outcome.bytes_added = bytes_added;
                    self.record_backup(vault, name, started, Ok(bytes_added));
                    outcome.pruned = self.prune_after_backup(vault, &opened);
                }
                Err(message) => {
                    outcome.error = Some(message.clone());
                    self.record_backup(vault, name, started, Err(message));
                }
            }
            report.vaults.push(outcome);
        }
        let all_ok = report.vaults.iter().all(|v| v.ok);
        if all_ok && self.settings.lock().policy.keep.is_off() {
            // Nothing would ever expire it, and every vault holds it now.
            let _ = self.delete(name, "expire", true);
        }
        report
    }

    /// One vault: open with the key file, back up; returns the open vault (for the prune) and
    /// the bytes added, or the reason it failed.
    fn backup_one(
        &self,
        vault: &str,
        name: &str,
        key_file: Option<&str>,
        progress: &Progress,
    ) -> Result<(Vault, u64), String> {
        let secret = match key_file {
            None => Secret::None,
            Some(path) => match std::fs::read(path) {
                Ok(bytes) if !bytes.is_empty() => Secret::KeyFile(bytes),
                Ok(_) => return Err(format!("the key file {path} is empty")),
                Err(err) => return Err(format!("cannot read the key file {path}: {err}")),
            },
        };
        let share = self
            .snapshots
            .live()
            .share_id()
            .ok_or_else(|| "the store has no share id".to_owned())?;
        // Opening a local vault creates its directory (for `vault init`); a scheduled backup
        // must not create one where a disk failed to mount, but fail, saying so.
        if let Ok(crate::blob::BlobLocation::Local(path)) = crate::blob::BlobLocation::parse(vault)
            && !path.join("config").is_file()
        {
            return Err(format!(
                "{vault} is not there, or not a snapfs vault (no config): is its disk mounted?"
            ));
        }
        let mut opened = super::open_vault_with(vault, None, &secret).map_err(|e| e.message)?;
        let report =
            crate::vault::backup::backup(&mut opened, &self.snapshots, name, share, progress)
                .map_err(|e| ServiceError::from(e).message)?;
        Ok((opened, report.bytes_added))
    }

    /// Applies the vault's own retention policy after a scheduled backup, as a recorded job;
    /// returns the backups removed. A vault without a policy (or one that keeps everything)
    /// is left alone, silently: pruning is the vault owner's choice.
    fn prune_after_backup(&self, vault: &str, opened: &Vault) -> Vec<String> {
        let wants_prune = match crate::vault::prune::policy(opened) {
            Ok(Some(policy)) => !policy.keeps_everything(),
            Ok(None) => false,
            Err(err) => {
                self.record_prune(vault, self.now(), Err(err.to_string()));
                return Vec::new();
            }
        };
        if !wants_prune {
            return Vec::new();
        }
        let started = self.now();
        match crate::vault::prune::prune(opened, false) {
            Ok(report) => {
                let removed: Vec<String> = report.removed.into_iter().map(|b| b.backup).collect();
                self.record_prune(vault, started, Ok(report.bytes_added));
                removed
            }
            Err(err) => {
                self.record_prune(vault, started, Err(err.to_string()));
                Vec::new()
            }
        }
    }

    fn record_prune(&self, vault: &str, started: i64, result: Result<u64, String>) {
        let job = self.scheduled_job(SCHEDULED_PRUNE, vault.to_owned(), vault, started, result);
        self.jobs.record(job);
    }

    /// Records a scheduled backup into `vault`: the job (which runs the hook on failure) and
    /// the vault's last success or failure for `status`.
    fn record_backup(&self, vault: &str, name: &str, started: i64, result: Result<u64, String>) {
        let target = format!("{name} -> {vault}");
        let job = self.scheduled_job(SCHEDULED_BACKUP, target, vault, started, result);
        self.note_backup(vault, name, job.error.clone());
        self.jobs.record(Job {
            backup: Some(name.to_owned()),
            ..job
        });
    }

    /// The job record of scheduled work on `vault` that started at `started` and ended now.
    fn scheduled_job(
        &self,
        kind: &str,
        target: String,
        vault: &str,
        started: i64,
        result: Result<u64, String>,
    ) -> Job {
        let (ok, error, bytes) = match result {
            Ok(bytes) => (true, None, bytes),
            Err(error) => (false, Some(error), 0),
        };
        Job {
            kind: kind.to_owned(),
            target,
            started,
            ended: self.now(),
            ok,
            error,
            bytes,
            automatic: true,
            vault: Some(vault.to_owned()),
            ..Job::default()
        }
    }

    /// Keeps the outcome of a backup (scheduled or not) into `vault` for `status`.
    pub(super) fn note_backup(&self, vault: &str, name: &str, error: Option<String>) {
        let now = self.now();
        let mark = BackupMark {
            name: name.to_owned(),
            time: format_rfc3339(now),
            secs: now,
            error: error.clone(),
        };
        let mut settings = self.settings.lock();
        let state = settings.backup_status.entry(vault.to_owned()).or_default();
        match error {
            None => state.last_success = Some(mark),
            Some(_) => state.last_failure = Some(mark),
        }
        if let Err(err) = settings::store(&self.snapshots.live().database(), &settings) {
            tracing::error!("cannot record the outcome of a backup: {err}");
        }
    }

    /// Each vault of the backup schedule: last success, last failure if newer, next slot; the
    /// times in the schedule's zone (RFC 3339 with its offset; `Z` in UTC).
    pub(super) fn vault_statuses(&self) -> Vec<super::replies::VaultStatus> {
        let settings = self.settings.lock();
        let zone = &settings.backup_policy.timezone;
        let next = settings
            .backup_policy
            .schedule()
            .and_then(|schedule| slots::next_of(&schedule, self.now()))
            .map(|t| format_rfc3339_in(t, zone));
        // The stored marks carry UTC text; the report shows them in the zone.
        let in_zone = |mark: BackupMark| BackupMark {
            time: format_rfc3339_in(mark.secs, zone),
            ..mark
        };
        settings
            .backup_policy
            .vaults
            .iter()
            .map(|vault| {
                let state = settings
                    .backup_status
                    .get(vault)
                    .cloned()
                    .unwrap_or_else(VaultBackupState::default);
                let success_secs = state.last_success.as_ref().map(|m| m.secs);
                super::replies::VaultStatus {
                    vault: vault.clone(),
                    last_failure: state
                        .last_failure
                        .filter(|failure| success_secs.is_none_or(|ok| failure.secs >= ok))
                        .map(in_zone),
                    last_success: state.last_success.map(in_zone),
                    next: next.clone(),
                }
            })
            .collect()
    }
}

/// Checks the backup options of a `policy set`. A local vault must be an absolute path (the
/// daemon's working directory is not the caller's; the `snapfs` command makes it absolute).
pub(super) fn backup_change(
    args: &super::request::PolicySetArgs,
) -> Result<BackupPolicyChange, ServiceError> {
    let vaults = match args.backup_to.as_slice() {
        [] => None,
        [none] if none == "none" => Some(Vec::new()),
        vaults => {
            for vault in vaults {
                if vault == "none" {
                    return Err(ServiceError::invalid(
                        "--backup-to none stops scheduled backups; it cannot be given with vaults",
                    ));
                }
                let location = crate::blob::BlobLocation::parse(vault)
                    .map_err(|err| ServiceError::invalid(err.to_string()))?;
                if let crate::blob::BlobLocation::Local(path) = &location
                    && !path.is_absolute()
                {
                    return Err(ServiceError::invalid(format!(
                        "--backup-to {vault}: a local vault must be an absolute path"
                    )));
                }
            }
            Some(vaults.to_vec())
        }
    };
    let key_file = match args.backup_key_file.as_deref() {
        None => None,
        Some("none") => Some(None),
        Some(path) if std::path::Path::new(path).is_absolute() => Some(Some(path.to_owned())),
        Some(path) => {
            return Err(ServiceError::invalid(format!(
                "--backup-key-file {path}: the key file must be an absolute path"
            )));
        }
    };
    let daily_at = match args.backup_daily_at.as_deref() {
        None => None,
        Some("off") => Some(None),
        Some(text) => Some(Some(
            parse_time_of_day(text).map_err(|e| ServiceError::invalid(e.to_string()))?,
        )),
    };
    let hourly = args
        .backup_hourly
        .as_deref()
        .map(|v| super::on_off("backup-hourly", v))
        .transpose()?;
    Ok(BackupPolicyChange {
        vaults,
        hourly,
        daily_at,
        key_file,
        // One zone per store: `--timezone` sets the snapshot and the backup schedules alike.
        timezone: super::parse_zone(args)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::calendar::Zone;
    use crate::service::request::PolicySetArgs;

    fn change(args: PolicySetArgs) -> Result<BackupPolicyChange, ServiceError> {
        backup_change(&args)
    }

    #[test]
    fn backup_options_are_checked_before_anything_is_stored() {
        let set = change(PolicySetArgs {
            backup_to: vec!["/srv/vault".into(), "s3://bucket/p".into()],
            backup_daily_at: Some("02:00".into()),
            backup_key_file: Some("/etc/snapfs/vault.key".into()),
            ..PolicySetArgs::default()
        })
        .expect("valid");
        assert_eq!(
            set.vaults,
            Some(vec!["/srv/vault".to_owned(), "s3://bucket/p".to_owned()])
        );
        assert_eq!(set.daily_at, Some(Some(120)));
        assert_eq!(set.key_file, Some(Some("/etc/snapfs/vault.key".into())));
        assert_eq!(set.hourly, None, "left as it is");
        assert_eq!(set.timezone, None, "left as it is");

        // One `--timezone` sets the zone of both schedules; an unknown one fails both.
        let zoned = PolicySetArgs {
            timezone: Some("America/New_York".into()),
            ..PolicySetArgs::default()
        };
        let new_york = Zone::parse("America/New_York").expect("known");
        assert_eq!(
            change(zoned.clone()).expect("valid").timezone,
            Some(new_york.clone())
        );
        assert_eq!(
            super::super::policy_change(&zoned).expect("valid").timezone,
            Some(new_york)
        );
        let unknown = PolicySetArgs {
            timezone: Some("America/Atlantis".into()),
            ..PolicySetArgs::default()
        };
        let err = change(unknown.clone()).expect_err("unknown zone");
        assert!(err.message.contains("America/Atlantis"), "{}", err.message);
        assert!(super::super::policy_change(&unknown).is_err());

        let off = change(PolicySetArgs {
            backup_to: vec!["none".into()],
            backup_daily_at: Some("off".into()),
            backup_key_file: Some("none".into()),
            backup_hourly: Some("off".into()),
            ..PolicySetArgs::default()
        })
        .expect("valid");
        assert_eq!(off.vaults, Some(vec![]));
        assert_eq!(off.daily_at, Some(None));
        assert_eq!(off.key_file, Some(None));
        assert_eq!(off.hourly, Some(false));

        for bad in [
            PolicySetArgs {
                backup_to: vec!["relative/vault".into()],
                ..PolicySetArgs::default()
            },
            PolicySetArgs {
                backup_to: vec!["/srv/vault".into(), "none".into()],
                ..PolicySetArgs::default()
            },
            PolicySetArgs {
                backup_key_file: Some("vault.key".into()),
                ..PolicySetArgs::default()
            },
            PolicySetArgs {
                backup_daily_at: Some("25:00".into()),
                ..PolicySetArgs::default()
            },
            PolicySetArgs {
                backup_hourly: Some("maybe".into()),
                ..PolicySetArgs::default()
            },
        ] {
            let err = change(bad.clone()).expect_err("refused");
            assert_eq!(err.errno, libc::EINVAL, "{bad:?}: {}", err.message);
            if bad.backup_to.len() == 2 {
                assert!(
                    err.message.contains("cannot be given with vaults"),
                    "{}",
                    err.message
                );
            }
        }
    }

    /// Through the service with an injected clock: a slot backs up and records its job; a slot
    /// that comes while a scheduled backup still runs is a failed, skipped backup; without
    /// snapshot retention the backup's snapshot is not kept.
    #[test]
    fn a_slot_backs_up_once_and_one_during_a_running_backup_is_skipped() {
        use std::sync::Arc;

        use crate::access::Requester;
        use crate::schedule::ManualClock;
        use crate::service::ServiceOptions;
        use crate::service::request::{PolicyAction, Request};

        let dir = tempfile::tempdir().expect("tempdir");
        let (_path, live) = crate::testing::new_store(dir.path(), "store");
        crate::testing::write_file(&live, "a", b"data");
        // 2025-01-01T00:00:00Z.
        let start = 1_735_689_600;
        let clock = Arc::new(ManualClock::new(start));
        let snapshots = Arc::new(
            crate::snapshot::Snapshots::open(live.clone(), clock.clone()).expect("snapshots"),
        );
        let service = Service::open(
            snapshots,
            ServiceOptions {
                manual_clock: Some(clock.clone()),
                ..ServiceOptions::default()
            },
        )
        .expect("service");
        let vault_dir = dir.path().join("vault");
        let backend = crate::blob::LocalDir::open(&vault_dir).expect("vault dir");
        crate::vault::init::init(&backend, &Secret::None, crate::vault::crypto::DEFAULT_KDF)
            .expect("vault");
        let vault = vault_dir.display().to_string();
        service
            .execute(
                Request::Policy {
                    action: PolicyAction::Set(PolicySetArgs {
                        backup_to: vec![vault.clone()],
                        backup_daily_at: Some("02:00".into()),
                        ..PolicySetArgs::default()
                    }),
                },
                &Requester::ROOT,
            )
            .expect("policy");

        clock.set(start + 3 * 3600);
        let tick = service.tick();
        assert_eq!(
            tick.backup_snapshot.as_deref(),
            Some("auto-2025-01-01T0200Z")
        );
        let job = tick.backup_job.expect("a backup job");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while service.background.state(job).expect("job").state == "running" {
            assert!(
                std::time::Instant::now() < deadline,
                "the backup did not end"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let done = service.background.state(job).expect("job");
        assert_eq!(done.state, "done", "{done:?}");
        assert_eq!(
            done.result.as_ref().map(|r| r["vaults"][0]["ok"].clone()),
            Some(serde_json::Value::Bool(true)),
            "{done:?}"
        );
        assert!(
            service.snapshots.get("auto-2025-01-01T0200Z").is_none(),
            "not kept"
        );
        let opened = Vault::open_backend(Box::new(backend), &Secret::None).expect("open");
        assert_eq!(crate::vault::list::list(&opened).expect("list").len(), 1);
        // The same slot again: nothing.
        assert_eq!(service.tick().backup_job, None);

        // The next slot while one still runs: skipped, recorded as a failed job.
        service.backup_running.store(true, Ordering::Release);
        clock.set(start + 27 * 3600);
        let tick = service.tick();
        assert_eq!(tick.backup_job, None);
        assert!(
            tick.errors.iter().any(|e| e.contains("still running")),
            "{tick:?}"
        );
        let failed = service.jobs.recent(1, true).expect("jobs");
        assert_eq!(failed[0].kind, SCHEDULED_BACKUP);
        assert_eq!(failed[0].vault.as_deref(), Some(vault.as_str()));
        assert_eq!(failed[0].backup.as_deref(), Some("auto-2025-01-02T0200Z"));
        let statuses = service.vault_statuses();
        assert_eq!(
            statuses[0].last_failure.as_ref().map(|m| m.name.as_str()),
            Some("auto-2025-01-02T0200Z")
        );
        assert_eq!(statuses[0].next.as_deref(), Some("2025-01-03T02:00:00Z"));
        service.backup_running.store(false, Ordering::Release);
        drop(service);
    }
}
