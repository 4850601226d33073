//! The scheduler: takes the policy's automatic snapshots and applies its retention, in a thread
//! of the mounted daemon. Each tick reads the clock once and does what is due at that time:
//! 1. purge soft-deleted snapshots whose recovery period is over;
//! 2. if a scheduled time has passed since the last one handled, take ONE snapshot (a daemon
//!    that was down across many scheduled times catches up with one, not a burst);
//! 3. if a backup slot has passed since the last one handled, start ONE scheduled backup
//!    (`backup_schedule.rs`), reusing the snapshot of step 2 when it is for the same slot;
//! 4. expire the automatic snapshots retention no longer keeps (held ones stay);
//! 5. add a sample to the space history if the newest is an hour old (`space_history.rs`).

use std::sync::{Arc, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Service, settings};
use crate::format::catalog::Origin;
use crate::schedule::retention::{Candidate, select};
use crate::schedule::slots;

/// The longest the scheduler sleeps without looking at the clock: it also notices a system
/// clock that jumped.
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// What one tick did.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct TickReport {
    /// The automatic snapshot taken, if one was due.
    pub created: Option<String>,
    /// Automatic snapshots retention expired.
    pub expired: Vec<String>,
    /// Soft-deleted snapshots purged because their period was over.
    pub purged: Vec<String>,
    /// Problems met (each also recorded as a failed job).
    pub errors: Vec<String>,
    /// The snapshot a scheduled backup started for, if one was due.
    #[serde(default)]
    pub backup_snapshot: Option<String>,
    /// The background job (`job N`) of that backup.
    #[serde(default)]
    pub backup_job: Option<u64>,
}

impl Service {
    /// Does what is due now.
    pub fn tick(&self) -> TickReport {
        let _one_at_a_time = self.ticking.lock();
        let mut report = TickReport {
            purged: self.purge_expired(true),
            ..TickReport::default()
        };
        let now = self.now();
        let due = {
            let mut settings = self.settings.lock();
            let last = *settings.last_handled_slot.get_or_insert(now);
            let due = slots::due(&settings.policy, now, last);
            if let Some(slot) = due {
                // Handled from now on, even if the snapshot fails: the next chance is the next
                // scheduled time, not a retry loop.
                settings.last_handled_slot = Some(slot);
                if let Err(err) = settings::store(&self.snapshots.live().database(), &settings) {
                    report.errors.push(err.to_string());
                }
            }
            due
        };
        if let Some(slot) = due {
            let name = self.free_name(&slots::auto_snapshot_name(slot));
            match self.create(&name, Origin::Automatic, true) {
                Ok(_) => report.created = Some(name),
                Err(err) => report.errors.push(err.message),
            }
        }
        let created = report.created.clone();
        self.backup_tick(now, created.as_deref(), &mut report);
        self.expire(&mut report);
        self.sample_space_if_due(now);
        report
    }

    fn expire(&self, report: &mut TickReport) {
        let (keep, zone) = {
            let settings = self.settings.lock();
            (settings.policy.keep, settings.policy.timezone.clone())
        };
        let now = self.now();
        let candidates: Vec<Candidate> = self
            .snapshots
            .list()
            .into_iter()
            .filter(|(_, record)| record.origin == Origin::Automatic)
            .map(|(name, record)| Candidate {
                held: record.hold.protects_at(now),
                created: record.created.secs,
                name,
            })
            .collect();
        for name in select(&candidates, &keep, &zone).expire {
            match self.delete(&name, "expire", true) {
                Ok(_) => report.expired.push(name),
                Err(err) => report.errors.push(err.message),
            }
        }
    }

    /// Starts the scheduler thread. It holds only a weak reference, so it ends when the service
    /// is dropped, or at [`Service::stop`].
    pub fn start_scheduler(self: &Arc<Self>) -> std::io::Result<()> {
        let weak: Weak<Service> = Arc::downgrade(self);
        let thread = std::thread::Builder::new()
            .name("snapfs-scheduler".into())
            .spawn(move || scheduler(weak))?;
        *self.scheduler.lock() = Some(thread);
        Ok(())
    }
}

fn scheduler(weak: Weak<Service>) {
    loop {
        let Some(service) = weak.upgrade() else {
            return;
        };
        if *service.stopped.lock() {
            return;
        }
        let report = service.tick();
        for error in &report.errors {
            tracing::error!("scheduled work failed: {error}");
        }
        let now = service.now();
        let next = {
            let settings = service.settings.lock();
            let backups = settings
                .backup_policy
                .schedule()
                .and_then(|schedule| slots::next_of(&schedule, now));
            match (slots::next_slot_after(&settings.policy, now), backups) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        };
        let sleep = next.map_or(MAX_SLEEP, |next| {
            Duration::from_secs((next - now).clamp(1, MAX_SLEEP.as_secs() as i64) as u64)
        });
        let mut stopped = service.stopped.lock();
        if !*stopped {
            service.wake.wait_for(&mut stopped, sleep);
        }
    }
}
