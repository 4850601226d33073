//! Long requests given to a running daemon (gc, verify, restore, clone, backup) run as
//! background jobs: the control-file write that asks for one returns its job number at once,
//! and `job N` reads how far it got and, once it ended, its outcome. So a kernel request
//! never waits on a long job (the kernel serialises writes to the control file, so one long
//! request would hold up every other), and quick requests (create, list) never queue behind it.
//!
//! Each job has a thread of its own: jobs are few and long, and a thread per job keeps a slow
//! one from delaying another. Job numbers here count from 1 for the daemon's life; the job log
//! (`jobs.rs`) records each job when it ends, under the log's own id. The newest
//! [`KEEP_ENDED`] ended jobs stay readable.
//!
//! At shutdown, [`BackgroundJobs::shut_down`] waits a bounded time for running jobs, then lets
//! the process end under them. Every long job is safe to stop anywhere (each is built to
//! survive a crash: gc's steps are single transactions, a restore is one atomic graft, a clone
//! or a backup resumes or starts over), and the log records the job as interrupted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ServiceError;
use crate::progress::{Progress, ProgressState};

/// Ended jobs whose outcome can still be read.
const KEEP_ENDED: usize = 100;

/// What `job N` answers.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct JobState {
    pub job: u64,
    /// The request's kind: `gc`, `verify`, `restore`, `clone`, `backup`.
    pub kind: String,
    /// `running`, `done` or `failed`.
    pub state: String,
    /// How far it got: its stage, unit, done and total (see [`crate::progress`]).
    #[serde(flatten)]
    pub progress: ProgressState,
    /// The reply, once done (what the request would have answered in the foreground).
    pub result: Option<Value>,
    /// Why it failed, once failed.
    pub error: Option<String>,
    /// The errno of the failure.
    pub errno: Option<i32>,
}

struct Entry {
    kind: String,
    progress: Arc<Progress>,
    outcome: Mutex<Option<Result<Value, ServiceError>>>,
}

impl Entry {
    fn state(&self, job: u64) -> JobState {
        let outcome = self.outcome.lock();
        let (state, result, error, errno) = match &*outcome {
            None => ("running", None, None, None),
            Some(Ok(value)) => ("done", Some(value.clone()), None, None),
            Some(Err(err)) => ("failed", None, Some(err.message.clone()), Some(err.errno)),
        };
        JobState {
            job,
            kind: self.kind.clone(),
            state: state.into(),
            progress: self.progress.state(),
            result,
            error,
            errno,
        }
    }
}

/// The daemon's background jobs.
#[derive(Default)]
pub struct BackgroundJobs {
    jobs: Mutex<BTreeMap<u64, Arc<Entry>>>,
    next: AtomicU64,
    running: Mutex<usize>,
    ended: Condvar,
}

impl BackgroundJobs {
    /// Starts `work` on a thread of its own; returns its job number.
    pub fn start(
        self: &Arc<Self>,
        kind: &str,
        work: impl FnOnce(&Progress) -> Result<Value, ServiceError> + Send + 'static,
    ) -> Result<u64, ServiceError> {
        let job = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let entry = Arc::new(Entry {
            kind: kind.to_owned(),
            progress: Arc::new(Progress::new()),
            outcome: Mutex::new(None),
        });
        {
            let mut jobs = self.jobs.lock();
            jobs.insert(job, entry.clone());
            // Forget the oldest ended jobs beyond the limit; running ones always stay.
            let ended: Vec<u64> = jobs
                .iter()
                .filter(|(_, e)| e.outcome.lock().is_some())
                .map(|(n, _)| *n)
                .collect();
            for old in ended.iter().take(ended.len().saturating_sub(KEEP_ENDED)) {
                jobs.remove(old);
            }
        }
        *self.running.lock() += 1;
        let this = self.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("snapfs-job-{job}"))
            .spawn(move || {
                let outcome = work(&entry.progress);
                *entry.outcome.lock() = Some(outcome);
                let mut running = this.running.lock();
                *running -= 1;
                this.ended.notify_all();
            });
        if let Err(err) = spawned {
            *self.running.lock() -= 1;
            self.jobs.lock().remove(&job);
            return Err(ServiceError::io(format!(
                "cannot start a job thread: {err}"
            )));
        }
        Ok(job)
    }

    /// The state of job `job`.
    pub fn state(&self, job: u64) -> Result<JobState, ServiceError> {
        let entry = self.jobs.lock().get(&job).cloned();
        match entry {
            Some(entry) => Ok(entry.state(job)),
            None => Err(ServiceError {
                errno: libc::ENOENT,
                message: format!(
                    "no job {job} in this daemon (the newest {KEEP_ENDED} ended jobs are kept; \
                     `snapfs status --jobs` lists what the store recorded)"
                ),
            }),
        }
    }

    /// Waits up to `grace` for running jobs to end; returns the kinds of those still running.
    pub fn shut_down(&self, grace: Duration) -> Vec<String> {
        let deadline = Instant::now() + grace;
        let mut running = self.running.lock();
        while *running > 0 {
            if self.ended.wait_until(&mut running, deadline).timed_out() {
                break;
            }
        }
        drop(running);
        self.jobs
            .lock()
            .values()
            .filter(|entry| entry.outcome.lock().is_none())
            .map(|entry| entry.kind.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait_done(jobs: &BackgroundJobs, job: u64) -> JobState {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let state = jobs.state(job).expect("state");
            if state.state != "running" || Instant::now() > deadline {
                return state;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_job_reports_progress_then_its_outcome() {
        let jobs = Arc::new(BackgroundJobs::default());
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let job = jobs
            .start("verify", move |progress| {
                progress.stage("checking chunks", crate::progress::Unit::Items, Some(10));
                progress.set(3);
                wait.recv().expect("go");
                Ok(serde_json::json!({"checked": 10}))
            })
            .expect("start");
        let deadline = Instant::now() + Duration::from_secs(10);
        while jobs.state(job).expect("state").progress.done != 3 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        let running = jobs.state(job).expect("state");
        assert_eq!(
            (
                running.state.as_str(),
                running.progress.done,
                running.progress.total
            ),
            ("running", 3, Some(10))
        );
        go.send(()).expect("go");
        let ended = wait_done(&jobs, job);
        assert_eq!(ended.state, "done");
        assert_eq!(ended.result, Some(serde_json::json!({"checked": 10})));
        assert!(jobs.shut_down(Duration::from_secs(1)).is_empty());
    }

    #[test]
    fn a_failed_job_keeps_its_error_and_errno_and_unknown_jobs_are_enoent() {
        let jobs = Arc::new(BackgroundJobs::default());
        let job = jobs
            .start("gc", |_| Err(ServiceError::invalid("no")))
            .expect("start");
        let ended = wait_done(&jobs, job);
        assert_eq!(ended.state, "failed");
        assert_eq!(ended.errno, Some(libc::EINVAL));
        assert_eq!(
            jobs.state(job + 1).expect_err("unknown").errno,
            libc::ENOENT
        );
    }

    #[test]
    fn shutdown_waits_a_bounded_time_and_names_what_still_runs() {
        let jobs = Arc::new(BackgroundJobs::default());
        let (_keep, wait) = std::sync::mpsc::channel::<()>();
        jobs.start("clone", move |_| {
            let _ = wait.recv_timeout(Duration::from_secs(30));
            Ok(Value::Null)
        })
        .expect("start");
        let started = Instant::now();
        assert_eq!(
            jobs.shut_down(Duration::from_millis(200)),
            vec!["clone".to_owned()]
        );
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn only_the_newest_ended_jobs_are_kept() {
        let jobs = Arc::new(BackgroundJobs::default());
        let mut last = 0;
        for _ in 0..KEEP_ENDED + 10 {
            last = jobs.start("gc", |_| Ok(Value::Null)).expect("start");
            wait_done(&jobs, last);
        }
        assert!(jobs.state(1).is_err(), "the oldest was forgotten");
        assert_eq!(jobs.state(last).expect("newest").state, "done");
    }
}
