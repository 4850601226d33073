//! The lifecycle service: carries out every [`Request`] against one open store, the same way
//! for the daemon (behind the control file and `mkdir`/`rmdir` in `.snapshots`) and for the
//! `snapfs` command on a store that is not mounted. It records jobs, applies the snapshot
//! policy, and runs the scheduler (snapshots, and scheduled backups: `backup_schedule.rs`).
//!
//! Invariant: whoever has the store open owns its one `Service`; a command for a mounted store
//! goes through the daemon's control file, never around it (the store lock enforces it).

pub mod background;
mod backup_schedule;
pub mod byte_path;
pub(crate) mod control;
mod error;
mod jobs;
pub mod metrics;
mod open_vaults;
mod privilege;
pub mod replies;
mod report;
pub mod request;
mod scheduler;
mod settings;
mod space_history;

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Weak};

use parking_lot::{Condvar, Mutex};
use serde::Serialize;
use serde_json::Value;

use background::BackgroundJobs;
pub use error::{ServiceError, restore_errno};
pub use jobs::Job;
use jobs::JobLog;
use replies::{PolicyReport, SnapshotInfo, Space, StatusReport, ViewMemory};
pub use request::Request;
use request::{BytePath, CloneArgs, PolicyAction, PolicySetArgs, RestoreArgs, VerifyArgs};
pub use scheduler::TickReport;
use settings::Settings;

use crate::access::Requester;
use crate::format::catalog::{Hold, LIVE, Origin};
use crate::history;
use crate::progress::{Progress, Unit};
use crate::schedule::calendar::{
    Zone, format_rfc3339, format_rfc3339_in, parse_duration, parse_instant, parse_time_of_day,
};
use crate::schedule::clock::ManualClock;
use crate::schedule::policy::PolicyChange;
use crate::schedule::slots;
use crate::snapshot::view::SnapshotView;
use crate::snapshot::{
    CloneReport, DeleteMode, RestoreReport, RollbackReport, Snapshots, clone_snapshot,
};

/// How a service is set up.
#[derive(Default)]
pub struct ServiceOptions {
    /// Where the share is mounted, for `status` (none when the store is opened offline).
    pub mountpoint: Option<PathBuf>,
    /// A shell command run (in the background) when a job fails.
    pub on_failure: Option<String>,
    /// The injected clock of tests: `clock` requests set it. `Snapshots` must use the same.
    pub manual_clock: Option<Arc<ManualClock>>,
}

/// One open store's lifecycle: requests, jobs, policy and the scheduler.
pub struct Service {
    /// This service itself, for the background jobs it starts on its own (scheduled backups).
    me: Weak<Service>,
    /// A scheduled backup is running: the next slot must not start another beside it.
    backup_running: AtomicBool,
    snapshots: Arc<Snapshots>,
    jobs: JobLog,
    settings: Mutex<Settings>,
    options: ServiceOptions,
    /// One tick at a time (the scheduler thread's, or a `clock` request's), so that two never
    /// expire the same snapshot.
    ticking: Mutex<()>,
    /// Long requests given to the daemon, running on threads of their own.
    background: Arc<BackgroundJobs>,
    /// Wakes the scheduler thread early: the policy changed, or the service is closing.
    wake: Condvar,
    stopped: Mutex<bool>,
    /// The scheduler thread, waited for by [`Service::stop`]: it holds the service (and so the
    /// share and its database) while it ticks, and the database is closed cleanly only if the
    /// last holder lets go before the process exits.
    scheduler: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// The read-only view of the snapshots that a mount serves under `.snapshots/`: owned here
    /// so that `status` can report what it holds.
    view: Arc<SnapshotView>,
    /// Vaults kept open for the next backup or restore into them.
    open_vaults: open_vaults::OpenVaults,
}

fn to_value<T: Serialize>(value: T) -> Result<Value, ServiceError> {
    serde_json::to_value(value).map_err(ServiceError::io)
}

impl Service {
    pub fn open(
        snapshots: Arc<Snapshots>,
        options: ServiceOptions,
    ) -> Result<Arc<Self>, ServiceError> {
        let live = snapshots.live();
        let db = live.database();
        let settings = settings::load(&db).map_err(ServiceError::io)?;
        let jobs = JobLog::open(
            db,
            live.store_dir().to_owned(),
            options.on_failure.clone(),
            live.metrics().jobs(),
        )
        .map_err(ServiceError::io)?;
        Ok(Arc::new_cyclic(|me| Service {
            me: me.clone(),
            backup_running: AtomicBool::new(false),
            jobs,
            settings: Mutex::new(settings),
            options,
            ticking: Mutex::new(()),
            background: Arc::new(BackgroundJobs::default()),
            wake: Condvar::new(),
            stopped: Mutex::new(false),
            scheduler: Mutex::new(None),
            view: Arc::new(SnapshotView::new(snapshots.clone())),
            open_vaults: open_vaults::OpenVaults::new(),
            snapshots,
        }))
    }

    pub fn snapshots(&self) -> &Arc<Snapshots> {
        &self.snapshots
    }

    fn now(&self) -> i64 {
        self.snapshots.clock().now()
    }

    /// Carries out a request given to the running daemon: a long one (see
    /// [`Request::background_kind`]) starts as a background job and the reply is its number
    /// (`{"job": N, ...}`); anything else is answered at once, as [`Self::execute`] does.
    pub fn submit(
        self: &Arc<Self>,
        request: Request,
        who: &Requester,
    ) -> Result<Value, ServiceError> {
        let Some(kind) = request.background_kind() else {
            return self.execute(request, who);
        };
        // Refused at once, not as a failed job.
        privilege::authorize(&request, who, nix::unistd::geteuid().as_raw())?;
        let this = self.clone();
        let who = who.clone();
        let job = self.background.start(kind, move |progress| {
            this.execute_with_progress(request, &who, progress)
        })?;
        to_value(serde_json::json!({ "job": job, "kind": kind, "state": "running" }))
    }

    /// At unmount: waits up to `grace` for background jobs, and records those still running as
    /// interrupted (the process then ends under them; each is safe to stop anywhere).
    pub fn finish_jobs(&self, grace: std::time::Duration) {
        let now = self.now();
        for kind in self.background.shut_down(grace) {
            self.jobs.record(Job {
                id: 0,
                kind,
                target: String::new(),
                started: now,
                ended: now,
                ok: false,
                error: Some("interrupted: the share was unmounted while it ran".into()),
                bytes: 0,
                automatic: false,
                ..Job::default()
            });
        }
    }

    pub fn execute(&self, request: Request, who: &Requester) -> Result<Value, ServiceError> {
        self.execute_with_progress(request, who, &Progress::new())
    }

    /// Carries out one request for `who`, if the privilege rule lets it (`privilege.rs`); the
    /// reply is JSON (the types in [`replies`]).
    pub fn execute_with_progress(
        &self,
        request: Request,
        who: &Requester,
        progress: &Progress,
    ) -> Result<Value, ServiceError> {
        privilege::authorize(&request, who, nix::unistd::geteuid().as_raw())?;
        match request {
            Request::Create(args) => to_value(self.create(&args.name, Origin::Manual, false)?),
            Request::Delete(args) => to_value(self.delete(&args.name, "delete", false)?),
            Request::List(args) => to_value(self.list(args.deleted, args.full_walk)?),
            Request::Undelete(args) => {
                let record = self.snapshots.undelete(&args.name)?;
                self.sample_space();
                to_value(SnapshotInfo::new(&args.name, &record, None))
            }
            Request::Purge(args) => {
                let purged = self.job("purge", &args.name, false, || {
                    Ok((self.snapshots.purge(&args.name)?, 0))
                })?;
                self.sample_space();
                to_value(serde_json::json!({ "purged": purged }))
            }
            Request::Hold(args) => {
                let hold = match &args.until {
                    Some(until) => Hold::Until(self.hold_end(until)?),
                    None => Hold::Indefinite,
                };
                let record = self.snapshots.set_hold(&args.name, hold)?;
                to_value(SnapshotInfo::new(&args.name, &record, None))
            }
            Request::Release(args) => {
                let record = self.snapshots.set_hold(&args.name, Hold::None)?;
                to_value(SnapshotInfo::new(&args.name, &record, None))
            }
            Request::Gc => to_value(self.gc(progress)?),
            Request::Usage => to_value(crate::gc::usage::usage(&self.snapshots)?),
            Request::Verify(args) => to_value(self.verify(args, progress)?),
            Request::Restore(args) => to_value(self.restore(&args, progress)?),
            Request::Rollback(args) => to_value(self.rollback(&args.snapshot, progress)?),
            Request::Clone(args) => to_value(self.clone_snapshot(&args, progress)?),
            Request::Backup(args) => to_value(self.backup(&args, progress)?),
            Request::VaultRestore(args) => to_value(self.vault_restore(&args, progress)?),
            Request::Diff(args) => {
                let (old, new) = (self.tree(&args.from)?, self.tree(&args.to)?);
                let path = args.path.as_ref().map(BytePath::as_bytes);
                to_value(history::diff(self.snapshots.objects(), &old, &new, path)?)
            }
            Request::Log(args) => {
                let snapshots = self.snapshots.list();
                let versions =
                    history::log(self.snapshots.objects(), &snapshots, args.path.as_bytes())?;
                if versions.is_empty() {
                    return Err(ServiceError {
                        errno: libc::ENOENT,
                        message: format!("no such path in any snapshot: {}", args.path),
                    });
                }
                to_value(versions)
            }
            Request::Policy { action } => {
                if let PolicyAction::Set(change) = action {
                    self.set_policy(&change)?;
                }
                to_value(self.policy_report())
            }
            Request::Status(args) => to_value(self.status(args.jobs, args.full_walk)?),
            Request::Report(args) => to_value(self.report(args.jobs)?),
            Request::Job(args) => to_value(self.background.state(args.job)?),
            Request::TierStatus => to_value(self.tier()?.status()),
            Request::TierCache(args) => to_value(self.tier_cache(&args, progress)?),
            Request::Clock(args) => {
                let clock =
                    self.options.manual_clock.as_ref().ok_or_else(|| {
                        ServiceError::invalid("this daemon runs on the system clock")
                    })?;
                clock.set(match args.now.parse::<i64>() {
                    Ok(secs) => secs,
                    Err(_) => self.parse_time(&args.now)?,
                });
                to_value(self.tick())
            }
        }
    }

    fn tier(&self) -> Result<&Arc<crate::tier::Tier>, ServiceError> {
        self.snapshots.live().tier().ok_or_else(|| {
            ServiceError::invalid("this store is not tiered (see `snapfs tier enable`)")
        })
    }

    /// `tier recall|pin|unpin PATH`, a background job. The walk lists one directory at a time
    /// and fetches what is missing as reads do: the share is never held for the size of the
    /// tree.
    fn tier_cache(
        &self,
        args: &request::TierCacheRequest,
        progress: &Progress,
    ) -> Result<crate::tier::RecallReport, ServiceError> {
        use request::CacheAction;
        let tier = self.tier()?;
        let live = self.snapshots.live();
        let ino = live.resolve(&args.path.0)?;
        let tier_error = |err: crate::tier::TierError| ServiceError::io(err);
        let mut report = crate::tier::RecallReport {
            path: args.path.to_string(),
            ..Default::default()
        };
        self.job(args.action.job_kind(), &report.path.clone(), false, || {
            match args.action {
                CacheAction::Unpin => {
                    if !tier.unpin(ino).map_err(tier_error)? {
                        return Err(ServiceError::invalid(format!(
                            "{} is not pinned",
                            args.path
                        )));
                    }
                    return Ok((report, 0));
                }
                CacheAction::Pin => {
                    tier.pin(ino, &args.path.0).map_err(tier_error)?;
                    report.pinned = true;
                }
                CacheAction::Recall => {}
            }
            progress.stage("fetching from the object store", Unit::Bytes, None);
            live.each_file_chunks(ino, |_, chunks| {
                report.files += 1;
                for id in &chunks {
                    tier.recall(id, &mut report).map_err(tier_error)?;
                }
                progress.set(report.fetched_bytes);
                Ok::<(), ServiceError>(())
            })?;
            let fetched = report.fetched_bytes;
            Ok((report, fetched))
        })
    }

    /// A time as a user gives it: absolute (RFC 3339 with `Z` or an offset, or a date at
    /// midnight UTC) or a duration from now.
    fn parse_time(&self, text: &str) -> Result<i64, ServiceError> {
        parse_instant(text, self.now()).map_err(|e| ServiceError::invalid(e.to_string()))
    }

    /// When a hold given `--until TEXT` ends: a time after now, or the hold would protect
    /// nothing (and a typo such as `--until 0d` would go unnoticed).
    fn hold_end(&self, text: &str) -> Result<i64, ServiceError> {
        let until = self.parse_time(text)?;
        if until <= self.now() {
            return Err(ServiceError::invalid(format!(
                "--until {text} is not in the future ({}): a hold must end later than now",
                format_rfc3339(until)
            )));
        }
        Ok(until)
    }

    /// Runs `work` as a recorded job; `work` returns its result and the bytes it moved.
    fn job<T>(
        &self,
        kind: &str,
        target: &str,
        automatic: bool,
        work: impl FnOnce() -> Result<(T, u64), ServiceError>,
    ) -> Result<T, ServiceError> {
        let job = Job {
            kind: kind.to_owned(),
            target: target.to_owned(),
            automatic,
            ..Job::default()
        };
        self.job_as(job, work)
    }

    /// Runs `work` as a recorded job whose record starts as `job` (its kind, target and the
    /// fields of its kind); the times, outcome and bytes are filled in.
    fn job_as<T>(
        &self,
        job: Job,
        work: impl FnOnce() -> Result<(T, u64), ServiceError>,
    ) -> Result<T, ServiceError> {
        let started = self.now();
        let result = work();
        let (ok, error, bytes) = match &result {
            Ok((_, bytes)) => (true, None, *bytes),
            Err(err) => (false, Some(err.message.clone()), 0),
        };
        self.jobs.record(Job {
            id: 0,
            started,
            ended: self.now(),
            ok,
            error,
            bytes,
            ..job
        });
        result.map(|(value, _)| value)
    }

    /// Adds the space figures to the space history (`space_history.rs`): after every change
    /// of the snapshots and every gc, each of which commits its figures, and at the scheduler's
    /// tick. Cheap: the figures kept up to date, as last committed (the share commits at least
    /// every commit interval), and nothing while they are being rebuilt. A sample that cannot
    /// be taken or written is logged: it never fails the request that changed the space.
    fn sample_space(&self) {
        let usage = match crate::gc::usage::as_committed(&self.snapshots) {
            Ok(Some(usage)) => usage,
            Ok(None) => {
                tracing::debug!("space accounting is stale: no space history sample");
                return;
            }
            Err(err) => {
                tracing::warn!("cannot read the space figures for the space history: {err}");
                return;
            }
        };
        let db = self.snapshots.live().database();
        let sample = space_history::sample_of(&usage);
        if let Err(err) = space_history::record(&db, self.now(), &sample) {
            tracing::warn!("cannot record a space history sample: {err}");
        }
    }

    /// A sample, if the newest is [`space_history::TICK_INTERVAL`] old or older (or there is
    /// none): the scheduler's, so the curve follows writes between snapshots.
    fn sample_space_if_due(&self, now: i64) {
        match space_history::newest(&self.snapshots.live().database()) {
            Ok(Some(newest)) if now.saturating_sub(newest) < space_history::TICK_INTERVAL => {}
            Ok(_) => self.sample_space(),
            Err(err) => tracing::warn!("cannot read the space history: {err}"),
        }
    }

    /// `base`, or `base-2`, `base-3`... whichever names no snapshot yet.
    fn free_name(&self, base: &str) -> String {
        let mut name = base.to_owned();
        let mut n = 2;
        while self.snapshots.get(&name).is_some() {
            name = format!("{base}-{n}");
            n += 1;
        }
        name
    }

    fn verify(
        &self,
        args: VerifyArgs,
        progress: &Progress,
    ) -> Result<crate::verify::VerifyReport, ServiceError> {
        let target = args.snapshot.clone().unwrap_or_default();
        let options = crate::verify::VerifyOptions {
            snapshot: args.snapshot,
            quick: args.quick,
        };
        let started = self.now();
        let report = crate::verify::verify(&self.snapshots, &options, progress);
        // Damage found is a failed job (it runs the hook), though the report itself is the
        // request's answer.
        let error = match &report {
            Ok(report) if report.is_clean() => None,
            Ok(report) => Some(format!("{} damaged chunks", report.damaged.len())),
            Err(err) => Some(err.to_string()),
        };
        self.jobs.record(Job {
            kind: "verify".into(),
            target,
            started,
            ended: self.now(),
            ok: error.is_none(),
            error,
            ..Job::default()
        });
        report.map_err(|e| ServiceError::io(e.to_string()))
    }

    fn restore(
        &self,
        args: &RestoreArgs,
        progress: &Progress,
    ) -> Result<RestoreReport, ServiceError> {
        self.job("restore", &args.path.to_string(), false, || {
            let report = self.snapshots.restore(
                &args.snapshot,
                args.path.as_bytes(),
                args.to.as_ref().map(BytePath::as_bytes),
                args.overwrite,
                progress,
            )?;
            let bytes = report.restored.bytes;
            Ok((report, bytes))
        })
    }

    fn rollback(
        &self,
        snapshot: &str,
        progress: &Progress,
    ) -> Result<RollbackReport, ServiceError> {
        let report = self.job("rollback", snapshot, false, || {
            let safety = self.free_name(&format!("before-rollback-{}", compact_time(self.now())));
            Ok((self.snapshots.rollback(snapshot, &safety, progress)?, 0))
        })?;
        self.sample_space();
        Ok(report)
    }

    fn clone_snapshot(
        &self,
        args: &CloneArgs,
        progress: &Progress,
    ) -> Result<CloneReport, ServiceError> {
        if !args.new_store.is_absolute() {
            return Err(ServiceError::invalid(
                "the new store's directory must be an absolute path",
            ));
        }
        if let Some(mountpoint) = &self.options.mountpoint
            && args.new_store.starts_with(mountpoint)
        {
            return Err(ServiceError::invalid(format!(
                "a clone cannot go inside the share it comes from ({})",
                mountpoint.display()
            )));
        }
        self.job("clone", &args.snapshot, false, || {
            let report =
                clone_snapshot(&self.snapshots, &args.snapshot, &args.new_store, progress)?;
            let bytes = report.chunk_bytes;
            Ok((report, bytes))
        })
    }

    /// Backs a snapshot up into a vault, inside this process: a mounted store is read through
    /// its daemon, never around it.
    fn backup(
        &self,
        args: &request::BackupArgs,
        progress: &Progress,
    ) -> Result<crate::vault::backup::BackupReport, ServiceError> {
        let name = match &args.snapshot {
            Some(name) => name.clone(),
            None => {
                let name = self.free_name(&format!("backup-{}", compact_time(self.now())));
                let taking = std::time::Instant::now();
                self.create(&name, Origin::Manual, false)?;
                tracing::debug!(took = ?taking.elapsed(), "snapshot taken for the backup");
                name
            }
        };
        let share = self
            .snapshots
            .live()
            .share_id()
            .ok_or_else(|| ServiceError::io("the store has no share id"))?;
        let job = Job {
            kind: "backup".into(),
            target: format!("{name} -> {}", args.to),
            vault: Some(args.to.clone()),
            backup: Some(name.clone()),
            ..Job::default()
        };
        let result = self.job_as(job, || {
            let opening = std::time::Instant::now();
            let (kept, mut vault) = self.open_vaults.take(&args.to, &args.access, || {
                open_vault(&args.to, &args.access)
            })?;
            tracing::debug!(took = ?opening.elapsed(), "vault opened for the backup");
            let report =
                crate::vault::backup::backup(&mut vault, &self.snapshots, &name, share, progress)?;
            self.open_vaults.keep(kept, vault);
            let bytes = report.bytes_added;
            Ok((report, bytes))
        });
        // A backup by hand into a scheduled vault counts for its status too.
        if self.settings.lock().backup_policy.vaults.contains(&args.to) {
            self.note_backup(
                &args.to,
                &name,
                result.as_ref().err().map(|e| e.message.clone()),
            );
        }
        result
    }

    /// Restores a file or tree of a backup into the live share, inside this process: the
    /// fetched objects go straight into the store's chunk store, and the graft is the share's.
    fn vault_restore(
        &self,
        args: &request::VaultRestoreArgs,
        progress: &Progress,
    ) -> Result<crate::vault::restore::VaultPathReport, ServiceError> {
        let target = format!("{} {} <- {}", args.backup, args.path, args.vault);
        self.job("vault-restore", &target, false, || {
            let (kept, mut vault) = self.open_vaults.take(&args.vault, &args.access, || {
                open_vault(&args.vault, &args.access)
            })?;
            let report = crate::vault::restore::restore_path(
                &mut vault,
                &self.snapshots,
                &args.backup,
                args.path.as_bytes(),
                args.to.as_ref().map(BytePath::as_bytes),
                args.overwrite,
                progress,
            )?;
            self.open_vaults.keep(kept, vault);
            let bytes = report.bytes_fetched;
            Ok((report, bytes))
        })
    }

    pub fn create(
        &self,
        name: &str,
        origin: Origin,
        automatic: bool,
    ) -> Result<SnapshotInfo, ServiceError> {
        let kind = if automatic {
            "create (scheduled)"
        } else {
            "create"
        };
        let info = self.job(kind, name, automatic, || {
            let chunks = self.snapshots.live().chunk_store();
            let before = chunks.usage().pack_bytes;
            let started = std::time::Instant::now();
            let record = self.snapshots.create(name, origin)?;
            self.snapshots.live().metrics().snapshot_done(started);
            let grown = chunks.usage().pack_bytes.saturating_sub(before);
            Ok((SnapshotInfo::new(name, &record, None), grown))
        })?;
        self.sample_space();
        Ok(info)
    }

    /// Deletes (or with soft delete on, hides) a snapshot, as `kind` (`delete` or `expire`).
    pub fn delete(&self, name: &str, kind: &str, automatic: bool) -> Result<Value, ServiceError> {
        let mode = match self.settings.lock().policy.soft_delete_secs {
            Some(retain_secs) => DeleteMode::Soft { retain_secs },
            None => DeleteMode::Now,
        };
        let reply = self.job(kind, name, automatic, || {
            self.snapshots.delete(name, mode)?;
            Ok((
                serde_json::json!({
                    "deleted": name,
                    "recoverable_until": match mode {
                        DeleteMode::Soft { retain_secs } => Some(format_rfc3339(
                            self.now().saturating_add_unsigned(retain_secs),
                        )),
                        DeleteMode::Now => None,
                    },
                }),
                0,
            ))
        })?;
        self.sample_space();
        Ok(reply)
    }

    /// The space figures: kept up to date (costs the number of snapshots), or walked.
    fn usage(&self, full_walk: bool) -> Result<crate::gc::usage::Usage, ServiceError> {
        Ok(if full_walk {
            crate::gc::usage::full_walk(&self.snapshots)?
        } else {
            crate::gc::usage::usage(&self.snapshots)?
        })
    }

    fn list(&self, deleted: bool, full_walk: bool) -> Result<Vec<SnapshotInfo>, ServiceError> {
        if deleted {
            // What deleted snapshots hold is counted together, in `status`.
            return Ok(self
                .snapshots
                .list_deleted()
                .iter()
                .map(|(name, record)| SnapshotInfo::new(name, record, None))
                .collect());
        }
        let usage = self.usage(full_walk)?;
        Ok(self
            .snapshots
            .list()
            .iter()
            .map(|(name, record)| {
                SnapshotInfo::new(name, record, usage.unique_bytes.get(name).copied())
            })
            .collect())
    }

    fn gc(&self, progress: &Progress) -> Result<crate::gc::GcReport, ServiceError> {
        self.purge_expired(false);
        let report = self.job("gc", "", false, || {
            let report = crate::gc::collect(&self.snapshots, progress)?;
            let freed = report.bytes_freed;
            Ok((report, freed))
        })?;
        self.sample_space();
        Ok(report)
    }

    /// Purges soft-deleted snapshots whose recovery period is over.
    fn purge_expired(&self, automatic: bool) -> Vec<String> {
        let started = self.now();
        match self.snapshots.purge_expired() {
            Ok(names) => {
                for name in &names {
                    self.jobs.record(Job {
                        kind: "purge".into(),
                        target: name.clone(),
                        started,
                        ended: self.now(),
                        ok: true,
                        automatic,
                        ..Job::default()
                    });
                }
                if !names.is_empty() {
                    self.sample_space();
                }
                names
            }
            Err(err) => {
                self.jobs.record(Job {
                    kind: "purge".into(),
                    started,
                    ended: self.now(),
                    ok: false,
                    error: Some(err.to_string()),
                    automatic,
                    ..Job::default()
                });
                Vec::new()
            }
        }
    }

    fn tree(&self, side: &str) -> Result<history::Tree, ServiceError> {
        if side == LIVE {
            return Ok(history::Tree::of_live(
                self.snapshots.live(),
                self.snapshots.objects(),
            )?);
        }
        let record = self.snapshots.get(side).ok_or_else(|| ServiceError {
            errno: libc::ENOENT,
            message: format!("no snapshot named {side:?} (use a snapshot name or {LIVE:?})"),
        })?;
        Ok(history::Tree::of_snapshot(&record))
    }

    fn set_policy(&self, args: &PolicySetArgs) -> Result<(), ServiceError> {
        let change = policy_change(args)?;
        let backup = backup_schedule::backup_change(args)?;
        let mut settings = self.settings.lock();
        let was_enabled = settings.policy.automatic_enabled();
        let backups_were_on = settings.backup_policy.schedule().is_some();
        let mut updated = settings.clone();
        updated.policy = settings
            .policy
            .apply(&change)
            .map_err(|e| ServiceError::invalid(e.to_string()))?;
        updated.backup_policy = settings
            .backup_policy
            .apply(&backup)
            .map_err(|e| ServiceError::invalid(e.to_string()))?;
        if updated.policy.automatic_enabled() && !was_enabled {
            // Slots before now were not missed: the schedule starts from here.
            updated.last_handled_slot = Some(self.now());
        }
        if updated.backup_policy.schedule().is_some() && !backups_were_on {
            updated.last_backup_slot = Some(self.now());
        }
        settings::store(&self.snapshots.live().database(), &updated).map_err(ServiceError::io)?;
        *settings = updated;
        drop(settings);
        tracing::info!("snapshot policy changed");
        self.wake.notify_all();
        Ok(())
    }

    fn policy_report(&self) -> PolicyReport {
        let (policy, backup) = {
            let settings = self.settings.lock();
            (settings.policy.clone(), settings.backup_policy.clone())
        };
        let now = self.now();
        PolicyReport {
            description: format!("{}{}", policy.describe(), backup.describe()),
            next_snapshot: slots::next_slot_after(&policy, now)
                .map(|t| format_rfc3339_in(t, &policy.timezone)),
            next_backup: backup
                .schedule()
                .and_then(|schedule| slots::next_of(&schedule, now))
                .map(|t| format_rfc3339_in(t, &backup.timezone)),
            backup,
            policy,
        }
    }

    fn status(&self, jobs: usize, full_walk: bool) -> Result<StatusReport, ServiceError> {
        let usage = self.usage(full_walk)?;
        let list = self.snapshots.list();
        let now = self.now();
        Ok(StatusReport {
            store: self.snapshots.live().store_dir().display().to_string(),
            mountpoint: self
                .options
                .mountpoint
                .as_ref()
                .map(|p| p.display().to_string()),
            now: format_rfc3339(now),
            policy: self.policy_report(),
            snapshots: list.len(),
            automatic_snapshots: list
                .iter()
                .filter(|(_, r)| r.origin == Origin::Automatic)
                .count(),
            held_snapshots: list.iter().filter(|(_, r)| r.hold.protects_at(now)).count(),
            deleted_snapshots: self.snapshots.list_deleted().len(),
            space: Space::from(&usage),
            snapshot_view: {
                let held = self.view.usage();
                ViewMemory {
                    inodes: held.inodes,
                    cached_object_bytes: held.cached_object_bytes,
                }
            },
            jobs: self.jobs.recent(jobs, false).map_err(ServiceError::io)?,
            failures: self.jobs.recent(jobs, true).map_err(ServiceError::io)?,
            backups: self.vault_statuses(),
        })
    }

    /// The read-only view of the snapshots, as a mount serves it.
    pub fn view(&self) -> &Arc<SnapshotView> {
        &self.view
    }

    /// Stops the scheduler thread (at unmount).
    /// Stops the scheduler, and waits up to `grace` for its thread to end (a scheduled backup
    /// it is running may take longer: the process then exits without it).
    pub fn stop(&self, grace: std::time::Duration) {
        *self.stopped.lock() = true;
        self.wake.notify_all();
        let Some(thread) = self.scheduler.lock().take() else {
            return;
        };
        let deadline = std::time::Instant::now() + grace;
        while !thread.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        if thread.is_finished() {
            let _ = thread.join();
        }
    }
}

/// Copies every table of a store's metadata database that a mount needs (for a tier's
/// checkpoint): the one list of them, since each layer keeps its own tables private.
pub fn copy_store_tables(
    from: &redb::ReadTransaction,
    to: &redb::WriteTransaction,
) -> Result<(), redb::Error> {
    crate::meta::copy_tables(from, to)?;
    crate::chunk_store::index::copy_tables(from, to)?;
    crate::snapshot::catalog::copy_tables(from, to)?;
    jobs::copy_tables(from, to)?;
    space_history::copy_tables(from, to)?;
    settings::copy_tables(from, to)
}

/// `2026-11-21T013500Z`: a time for a snapshot name (no ':' in file names).
fn compact_time(secs: i64) -> String {
    format_rfc3339(secs).replace(':', "")
}

fn on_off(field: &str, value: &str) -> Result<bool, ServiceError> {
    match value {
        "on" | "yes" | "true" => Ok(true),
        "off" | "no" | "false" => Ok(false),
        _ => Err(ServiceError::invalid(format!(
            "--{field} takes on or off, not {value:?}"
        ))),
    }
}

/// Checks the values of a `policy set`.
fn policy_change(args: &PolicySetArgs) -> Result<PolicyChange, ServiceError> {
    let invalid = |e: crate::schedule::calendar::ParseError| ServiceError::invalid(e.to_string());
    /// `off`, or a value for `parse`.
    fn off_or<T>(
        value: &Option<String>,
        parse: impl Fn(&str) -> Result<T, ServiceError>,
    ) -> Result<Option<Option<T>>, ServiceError> {
        value
            .as_deref()
            .map(|v| {
                if v == "off" {
                    Ok(None)
                } else {
                    parse(v).map(Some)
                }
            })
            .transpose()
    }
    Ok(PolicyChange {
        hourly: args
            .hourly
            .as_deref()
            .map(|v| on_off("hourly", v))
            .transpose()?,
        daily_at: off_or(&args.daily_at, |v| parse_time_of_day(v).map_err(invalid))?,
        keep_hourly: args.keep_hourly,
        keep_daily: args.keep_daily,
        keep_weekly: args.keep_weekly,
        keep_monthly: args.keep_monthly,
        keep_yearly: args.keep_yearly,
        soft_delete_secs: off_or(&args.soft_delete, |v| parse_duration(v).map_err(invalid))?,
        timezone: parse_zone(args)?,
    })
}

/// The `--timezone` of a `policy set`, checked against the time zone database: an unknown
/// zone fails the whole change before anything is stored.
fn parse_zone(args: &PolicySetArgs) -> Result<Option<Zone>, ServiceError> {
    args.timezone
        .as_deref()
        .map(|name| Zone::parse(name).map_err(|e| ServiceError::invalid(e.to_string())))
        .transpose()
}

/// Opens a vault with what the command sent: its location, its secret, its S3 settings (else
/// this process's own environment).
fn open_vault(
    to: &str,
    access: &request::VaultAccess,
) -> Result<crate::vault::Vault, ServiceError> {
    use crate::vault::Secret;
    let settings = access.s3.as_ref().map(|s3| crate::blob::S3Settings {
        access_key_id: s3.access_key_id.clone(),
        secret_access_key: s3.secret_access_key.clone(),
        region: s3.region.clone(),
        endpoint: s3.endpoint.clone(),
        retry_timeout: s3.retry_timeout_secs.map_or(
            crate::blob::DEFAULT_RETRY_TIMEOUT,
            std::time::Duration::from_secs,
        ),
    });
    let secret = match (&access.passphrase, &access.key_hex) {
        (_, Some(hex)) => Secret::KeyFile(
            decode_hex(hex).ok_or_else(|| ServiceError::invalid("key bytes are not hex"))?,
        ),
        (Some(passphrase), None) => Secret::Passphrase(passphrase.as_bytes().to_vec()),
        (None, None) => Secret::None,
    };
    open_vault_with(to, settings.as_ref(), &secret)
}

/// Opens the vault at `to` with `secret`; S3 settings from `settings`, else this process's
/// environment.
fn open_vault_with(
    to: &str,
    settings: Option<&crate::blob::S3Settings>,
    secret: &crate::vault::Secret,
) -> Result<crate::vault::Vault, ServiceError> {
    let location = crate::blob::BlobLocation::parse(to)
        .map_err(|err| ServiceError::invalid(err.to_string()))?;
    let backend =
        crate::blob::open_with(&location, settings).map_err(crate::vault::VaultError::from)?;
    Ok(crate::vault::Vault::open_backend(backend, secret)?)
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len() / 2)
        .map(|i| u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::testing::{close, new_store, noise, snapshots_of, write_file};

    /// A snapshot's space sample reads the figures the snapshot's own commits left: it asks
    /// the share for no commit of its own, whose sync every snapshot used to wait for.
    #[test]
    fn a_snapshot_is_sampled_without_a_commit_of_its_own() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (_store, live) = new_store(tmp.path(), "store");
        let service = Service::open(Arc::new(snapshots_of(&live)), ServiceOptions::default())
            .expect("service");
        write_file(&live, "a", &noise(100_000, 1));
        let asked = live.commits_asked();
        service.create("s1", Origin::Manual, false).expect("create");
        assert_eq!(live.commits_asked(), asked, "a commit was asked for");
        let history = space_history::read(&live.database()).expect("history");
        let (_, sample) = history.last().expect("a sample");
        let usage = crate::gc::usage::usage(service.snapshots()).expect("usage");
        assert_eq!(*sample, space_history::sample_of(&usage));
        assert!(sample.live_bytes > 0, "{sample:?}");
        drop(service);
        close(live);
    }
}
