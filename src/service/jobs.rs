//! The job log: every snapshot create, delete and expiry, restore, rollback, clone, gc and
//! verify leaves a record (start, end, outcome, bytes) in the store, so `snapfs status` can tell
//! what happened while nobody watched, and a failure can run the `--on-failure` hook.
//!
//! Table `jobs`: id (u64, increasing) → the [`Job`] as JSON. The newest [`KEEP_JOBS`] are kept.

use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::metrics::JobCounts;
use crate::schedule::calendar::format_rfc3339;

const JOBS: TableDefinition<u64, &[u8]> = TableDefinition::new("jobs");

/// Copies the job log's table (for a checkpoint).
pub fn copy_tables(
    from: &redb::ReadTransaction,
    to: &redb::WriteTransaction,
) -> Result<(), redb::Error> {
    crate::storage::table_copy::copy_table(from, to, JOBS)
}
/// Records kept; older ones are dropped as new ones come.
pub const KEEP_JOBS: u64 = 1000;

/// One finished job.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Job {
    pub id: u64,
    /// `create`, `delete`, `expire`, `purge`, `restore`, `rollback`, `clone`, `gc`, `verify`,
    /// `backup`, `backup (scheduled)`, `vault prune (scheduled)`.
    pub kind: String,
    /// What it acted on: a snapshot name, a path, or empty.
    pub target: String,
    /// Unix seconds.
    pub started: i64,
    pub ended: i64,
    pub ok: bool,
    pub error: Option<String>,
    /// Bytes the job moved: stored by a snapshot, restored, freed by gc, checked by verify.
    pub bytes: u64,
    /// Whether the daemon's scheduler ran it (rather than someone's command).
    #[serde(default)]
    pub automatic: bool,
    /// For a backup or a vault prune: the vault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault: Option<String>,
    /// For a backup: the snapshot backed up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<String>,
}

/// Where jobs are recorded, and what runs when one fails.
pub struct JobLog {
    db: Arc<Database>,
    next_id: Mutex<u64>,
    on_failure: Option<String>,
    store_dir: PathBuf,
    counts: JobCounts,
}

impl JobLog {
    pub fn open(
        db: Arc<Database>,
        store_dir: PathBuf,
        on_failure: Option<String>,
        counts: JobCounts,
    ) -> Result<Self, redb::Error> {
        let next_id = {
            let txn = db.begin_read()?;
            match txn.open_table(JOBS) {
                Ok(table) => table.last()?.map_or(1, |(id, _)| id.value() + 1),
                Err(redb::TableError::TableDoesNotExist(_)) => 1,
                Err(err) => return Err(err.into()),
            }
        };
        Ok(JobLog {
            db,
            next_id: Mutex::new(next_id),
            on_failure,
            store_dir,
            counts,
        })
    }

    /// Records a finished job (and runs the failure hook if it failed). A job log that cannot
    /// be written must not fail the job itself: the error is logged.
    pub fn record(&self, mut job: Job) -> Job {
        self.counts.done(&job.kind, job.ok);
        let mut next = self.next_id.lock();
        job.id = *next;
        let written = (|| -> Result<(), redb::Error> {
            let mut txn = self.db.begin_write()?;
            // Durable with the share's next commit (within its commit interval, or at close):
            // a crash just after a job may lose its record, never its work, and a snapshot
            // pays for one sync of the database rather than two.
            txn.set_durability(redb::Durability::None)?;
            {
                let mut table = txn.open_table(JOBS)?;
                let json = serde_json::to_vec(&job).expect("jobs serialise");
                table.insert(job.id, json.as_slice())?;
                if job.id > KEEP_JOBS {
                    table.retain_in(..=job.id - KEEP_JOBS, |_, _| false)?;
                }
            }
            txn.commit()?;
            Ok(())
        })();
        *next += 1;
        drop(next);
        match written {
            Ok(()) if job.ok => tracing::info!(
                id = job.id,
                kind = job.kind,
                target = job.target,
                "job done"
            ),
            Ok(()) => {
                tracing::warn!(id = job.id, kind = job.kind, target = job.target, error = ?job.error, "job failed")
            }
            Err(err) => tracing::error!(kind = job.kind, "cannot record a job: {err}"),
        }
        if !job.ok {
            self.run_failure_hook(&job);
        }
        job
    }

    /// The newest `count` jobs, newest first; with `failed_only`, only failures.
    pub fn recent(&self, count: usize, failed_only: bool) -> Result<Vec<Job>, redb::Error> {
        let txn = self.db.begin_read()?;
        let table = match txn.open_table(JOBS) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(err) => return Err(err.into()),
        };
        let mut out = Vec::new();
        for entry in table.iter()?.rev() {
            if out.len() >= count {
                break;
            }
            let (_, json) = entry?;
            match serde_json::from_slice::<Job>(json.value()) {
                Ok(job) if job.ok && failed_only => {}
                Ok(job) => out.push(job),
                Err(err) => tracing::warn!("skipping an unreadable job record: {err}"),
            }
        }
        Ok(out)
    }

    /// Runs the `--on-failure` command with the job's details in its environment, in the
    /// background: a slow mailer must not hold up the share.
    fn run_failure_hook(&self, job: &Job) {
        let Some(command) = &self.on_failure else {
            return;
        };
        let mut child = std::process::Command::new("/bin/sh");
        child
            .arg("-c")
            .arg(command)
            .env("SNAPFS_STORE", &self.store_dir)
            .env("SNAPFS_JOB_ID", job.id.to_string())
            .env("SNAPFS_JOB_KIND", &job.kind)
            .env("SNAPFS_JOB_TARGET", &job.target)
            .env("SNAPFS_JOB_STARTED", format_rfc3339(job.started))
            .env("SNAPFS_JOB_ENDED", format_rfc3339(job.ended))
            .env("SNAPFS_JOB_ERROR", job.error.as_deref().unwrap_or(""))
            .env(
                "SNAPFS_JOB_AUTOMATIC",
                if job.automatic { "1" } else { "0" },
            )
            .env("SNAPFS_VAULT", job.vault.as_deref().unwrap_or(""))
            .env("SNAPFS_BACKUP_NAME", job.backup.as_deref().unwrap_or(""));
        match child.spawn() {
            Ok(mut child) => {
                std::thread::spawn(move || {
                    if let Ok(status) = child.wait()
                        && !status.success()
                    {
                        tracing::warn!("the --on-failure command exited with {status}");
                    }
                });
            }
            Err(err) => tracing::error!("cannot run the --on-failure command: {err}"),
        }
    }
}
