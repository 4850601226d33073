//! How far a long piece of work has got (verify, gc, restore, clone, backup, a vault copy,
//! restore or verify, a tier recall, attach), told apart from how it is shown.
//!
//! The work advances a [`Progress`]; whoever shows it reads [`Progress::state`] from another
//! thread: a terminal bar or JSON events (`cli::progress`), or a daemon's answer to `job N`,
//! which the command following the job copies into a `Progress` of its own
//! ([`Progress::follow`]). So each long job reports in one place, whether it runs in the
//! command or in a daemon.
//!
//! Work goes through stages (gc marks, then compacts); each has a unit and, where the work
//! knows it in advance, a total. The counters are atomics: parallel work advances them
//! without a lock, and reading them never waits on the work. Invariant: `done` counts only the
//! current stage (a new stage starts it at 0).

use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// What a stage counts.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    /// Bytes (shown with binary prefixes, a rate and an ETA).
    #[default]
    Bytes,
    /// Things of the stage's own kind (snapshots marked, files recalled), named by the stage.
    Items,
}

/// One reading of a [`Progress`]: what `job N` answers and what a display draws.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct ProgressState {
    /// What the work is doing now, in a few words (`checking chunks`); empty before the
    /// first stage.
    pub stage: String,
    pub unit: Unit,
    pub done: u64,
    /// The stage's total, where the work knows it in advance.
    pub total: Option<u64>,
}

/// Progress of one long job. Shared (`Arc`) between the work and its displays.
#[derive(Default)]
pub struct Progress {
    /// The stage, its unit and its total; changed only at a stage's start.
    stage: Mutex<(String, Unit, Option<u64>)>,
    done: AtomicU64,
}

impl Progress {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a stage: `done` back to 0.
    pub fn stage(&self, name: &str, unit: Unit, total: Option<u64>) {
        let mut stage = self.stage.lock();
        *stage = (name.to_owned(), unit, total);
        self.done.store(0, Ordering::Relaxed);
    }

    /// Counts `n` more done in the current stage.
    pub fn add(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }

    /// Sets how much of the current stage is done.
    pub fn set(&self, done: u64) {
        self.done.store(done, Ordering::Relaxed);
    }

    pub fn state(&self) -> ProgressState {
        let stage = self.stage.lock();
        ProgressState {
            stage: stage.0.clone(),
            unit: stage.1,
            done: self.done.load(Ordering::Relaxed),
            total: stage.2,
        }
    }

    /// Takes on a state read elsewhere (a daemon's job): a new stage where the name changed.
    pub fn follow(&self, state: &ProgressState) {
        let mut stage = self.stage.lock();
        if stage.0 != state.stage || stage.1 != state.unit || stage.2 != state.total {
            *stage = (state.stage.clone(), state.unit, state.total);
        }
        self.done.store(state.done, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stage_counts_from_zero() {
        let progress = Progress::new();
        assert_eq!(progress.state(), ProgressState::default());
        progress.stage("marking", Unit::Items, Some(3));
        progress.add(2);
        progress.add(1);
        assert_eq!(
            progress.state(),
            ProgressState {
                stage: "marking".into(),
                unit: Unit::Items,
                done: 3,
                total: Some(3),
            }
        );
        progress.stage("compacting", Unit::Bytes, None);
        assert_eq!(progress.state().done, 0);
        assert_eq!(progress.state().total, None);
    }

    #[test]
    fn following_copies_another_reading() {
        let (work, shown) = (Progress::new(), Progress::new());
        work.stage("sending", Unit::Bytes, Some(100));
        work.set(40);
        shown.follow(&work.state());
        assert_eq!(shown.state(), work.state());
    }
}
