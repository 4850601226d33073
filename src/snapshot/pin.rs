//! Pins: a snapshot that a restore or a clone is reading cannot be deleted until they are done.
//! Its chunks, which the reader is about to name from the live share or copy, then stay marked by
//! every garbage collection meanwhile, without holding up snapshot creation or collection the
//! way holding the whole catalog would.
//!
//! A delete of a pinned snapshot waits for its pins to go, holding the catalog: no new pin can be
//! taken meanwhile (taking one needs the catalog), so a delete is never starved.

use std::collections::HashMap;

use parking_lot::{Condvar, Mutex};

use super::{SnapshotError, Snapshots};
use crate::format::catalog::SnapshotRecord;

/// How many pins each snapshot (by number) has.
#[derive(Default)]
pub(super) struct Pins {
    counts: Mutex<HashMap<u64, u32>>,
    released: Condvar,
}

impl Pins {
    /// Returns once snapshot `number` has no pin. Call holding the catalog.
    pub(super) fn wait_unpinned(&self, number: u64) {
        let mut counts = self.counts.lock();
        while counts.contains_key(&number) {
            self.released.wait(&mut counts);
        }
    }
}

/// Keeps one snapshot from being deleted while it lives.
pub struct SnapshotPin<'a> {
    pins: &'a Pins,
    pub name: String,
    pub record: SnapshotRecord,
}

impl Drop for SnapshotPin<'_> {
    fn drop(&mut self) {
        let mut counts = self.pins.counts.lock();
        if let Some(count) = counts.get_mut(&self.record.number) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.record.number);
                self.pins.released.notify_all();
            }
        }
    }
}

impl Snapshots {
    /// Pins the snapshot `name` (see the module documentation).
    pub fn pin(&self, name: &str) -> Result<SnapshotPin<'_>, SnapshotError> {
        let _catalog = self.hold_catalog();
        let record = self
            .get(name)
            .ok_or_else(|| SnapshotError::NotFound(name.to_owned()))?;
        *self.pins.counts.lock().entry(record.number).or_default() += 1;
        Ok(SnapshotPin {
            pins: &self.pins,
            name: name.to_owned(),
            record,
        })
    }
}
