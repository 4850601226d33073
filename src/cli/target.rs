//! Where a command acts: through a running daemon (the store is mounted) or on the store
//! directly (it is not). `--store` of a mounted store goes through its daemon too, never around
//! it. Either way the same [`Request`] is carried out by the same service, so a command means
//! the same thing mounted or not.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Args;
use serde::de::DeserializeOwned;

use super::progress::{ProgressArgs, with_progress};
use super::umount::store_of_mount;
use crate::access::Requester;
use crate::live::{LiveFs, LiveOptions};
use crate::progress::Progress;
use crate::schedule::clock::SystemClock;
use crate::service::background::JobState;
use crate::service::request::{JobArgs, to_line};
use crate::service::{Request, Service, ServiceOptions};
use crate::snapshot::Snapshots;
use crate::store::Store;

#[derive(Args, Debug, Clone)]
#[group(required = true, multiple = false)]
pub struct TargetArgs {
    /// The mountpoint of a running share.
    #[arg(long)]
    pub mount: Option<PathBuf>,
    /// The store directory (mounted or not).
    #[arg(long)]
    pub store: Option<PathBuf>,
}

pub enum Target {
    /// The control file of a mounted share.
    Mounted { control: PathBuf },
    /// A store opened here; closed (with a final commit) on drop.
    Offline(Offline),
}

pub struct Offline {
    pub service: Arc<Service>,
    live: Arc<LiveFs>,
}

impl Drop for Offline {
    fn drop(&mut self) {
        if let Err(err) = self.live.shutdown() {
            eprintln!("snapfs: closing the store failed: {err}");
        }
    }
}

/// The mountpoint where `store` is mounted, if it is.
pub fn mountpoint_of(store: &Path) -> anyhow::Result<Option<PathBuf>> {
    let mounts = std::fs::read_to_string("/proc/self/mounts")?;
    for line in mounts.lines() {
        let mut fields = line.split(' ');
        let (Some(_), Some(target)) = (fields.next(), fields.next()) else {
            continue;
        };
        let target = PathBuf::from(target.replace("\\040", " "));
        if store_of_mount(&target)?.as_deref() == Some(store) {
            return Ok(Some(target));
        }
    }
    Ok(None)
}

impl TargetArgs {
    /// Finds the daemon, or opens the store here (running `on_failure` for failed jobs).
    pub fn resolve(&self, on_failure: Option<&str>) -> anyhow::Result<Target> {
        let mountpoint = match (&self.mount, &self.store) {
            (Some(mount), _) => {
                let mount = std::path::absolute(mount)?;
                if store_of_mount(&mount)?.is_none() {
                    bail!("{} is not a snapfs mount", mount.display());
                }
                Some(mount)
            }
            (None, Some(store)) => mountpoint_of(&std::path::absolute(store)?)?,
            (None, None) => bail!("give --mount or --store"),
        };
        if let Some(mount) = mountpoint {
            return Ok(Target::Mounted {
                control: mount.join(".snapshots/.control"),
            });
        }
        let store_dir = self.store.as_ref().expect("--store when not mounted");
        let store = Store::open(store_dir)
            .with_context(|| format!("cannot open store {}", store_dir.display()))?;
        let live = LiveFs::serve(store, LiveOptions::default()).context("cannot load the share")?;
        let snapshots = Snapshots::open(live.clone(), Arc::new(SystemClock))
            .context("cannot load the snapshot catalog")?;
        let service = Service::open(
            Arc::new(snapshots),
            ServiceOptions {
                on_failure: on_failure.map(str::to_owned),
                ..ServiceOptions::default()
            },
        )
        .context("cannot load the store's settings")?;
        Ok(Target::Offline(Offline { service, live }))
    }
}

impl Target {
    /// Carries out `request` and decodes its reply.
    pub fn execute<T: DeserializeOwned>(&self, request: Request) -> anyhow::Result<T> {
        self.execute_with_progress(request, &Progress::new())
    }

    /// Carries out the long request `request`, showing its progress as `command`
    /// (`cli::progress`). With `--json` the reply is printed as it is and `None` returned;
    /// otherwise the caller prints its summary of it.
    pub fn execute_shown<T: DeserializeOwned + serde::Serialize>(
        &self,
        command: &str,
        shown: ProgressArgs,
        request: Request,
    ) -> anyhow::Result<Option<T>> {
        let reply: T = with_progress(command, shown.json, |progress| {
            self.execute_with_progress(request, progress)
        })?;
        if shown.json {
            println!("{}", serde_json::to_string_pretty(&reply)?);
            return Ok(None);
        }
        Ok(Some(reply))
    }

    /// Carries out `request`, following its progress in `progress` (a daemon's job is asked
    /// for it as it runs).
    pub fn execute_with_progress<T: DeserializeOwned>(
        &self,
        request: Request,
        progress: &Progress,
    ) -> anyhow::Result<T> {
        let reply = match self {
            Target::Mounted { control } => {
                let background = request.background_kind().is_some();
                let text = send(control, &to_line(&request))?;
                let reply: serde_json::Value =
                    serde_json::from_str(&text).context("unexpected reply from the daemon")?;
                if background {
                    let job = reply["job"]
                        .as_u64()
                        .context("the daemon did not answer with a job number")?;
                    follow_job(control, job, progress)?
                } else {
                    reply
                }
            }
            // The command acts as its own user here: the OS checks what it touches.
            Target::Offline(offline) => offline.service.execute_with_progress(
                request,
                &Requester::this_process(),
                progress,
            )?,
        };
        serde_json::from_value(reply).context("unexpected reply")
    }
}

/// Waits for a daemon's background job to end, showing its progress; returns its reply, or its
/// error as this command's. Each question is a short request of its own, so the control file
/// is never held while the job runs.
fn follow_job(control: &Path, job: u64, progress: &Progress) -> anyhow::Result<serde_json::Value> {
    let ask = to_line(&Request::Job(JobArgs { job }));
    // Asked again after a sixteenth of the time the job has run so far (1 to 50 ms): a job's
    // end is seen at most about 6% late, and never more than 50 ms late. A question costs the
    // daemon a few microseconds; a fixed doubling pause made a 65 ms backup wait for 112 ms.
    let started = std::time::Instant::now();
    loop {
        let text = send(control, &ask)?;
        let state: JobState =
            serde_json::from_str(&text).context("unexpected reply from the daemon")?;
        progress.follow(&state.progress);
        match state.state.as_str() {
            "running" => {
                let pause = (started.elapsed() / 16).clamp(
                    std::time::Duration::from_millis(1),
                    std::time::Duration::from_millis(50),
                );
                std::thread::sleep(pause);
            }
            "done" => return Ok(state.result.unwrap_or_default()),
            _ => bail!(
                "{}",
                state.error.unwrap_or_else(|| format!("job {job} failed"))
            ),
        }
    }
}

/// Sends one request line to a daemon's control file and reads its outcome back through the
/// same open file, which gives this request's outcome even while others use the file.
fn send(control: &Path, line: &str) -> anyhow::Result<String> {
    use std::io::{BufRead, Seek, Write};
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(control);
    let mut file = match file {
        Ok(file) => file,
        // Only a follower's mount is read-only.
        Err(err) if err.raw_os_error() == Some(libc::EROFS) => bail!(
            "{} is a read-only follower of a tiered share (snapfs mount --follow): give \
             commands to the share's writer",
            control
                .parent()
                .and_then(Path::parent)
                .unwrap_or(control)
                .display()
        ),
        Err(err) => {
            return Err(err).with_context(|| format!("cannot open {}", control.display()));
        }
    };
    let written = file.write_all(format!("{line}\n").as_bytes());
    // The outcome is the first line; the snapshot list after it is not read.
    let mut first = String::new();
    file.rewind()?;
    std::io::BufReader::new(&file).read_line(&mut first)?;
    let outcome = first
        .trim_end_matches('\n')
        .strip_prefix("last: ")
        .unwrap_or("");
    match written {
        Ok(()) => Ok(outcome.trim_start_matches("ok: ").to_owned()),
        Err(err) => {
            let reason = outcome.trim_start_matches("error: ");
            if reason.is_empty() {
                bail!("{err}")
            }
            bail!("{reason}")
        }
    }
}
