//! The inodes a read-only view has handed to the kernel, remembered only while the kernel
//! holds them. The FUSE protocol counts references: every reply that gives the kernel an inode
//! (a lookup, each entry of a readdirplus, a create) is one more, and `forget` gives back any
//! number of them; at zero the kernel will never name the inode again, so its entry can go.
//! This keeps memory proportional to what the kernel caches (which it trims under pressure, or
//! on `drop_caches`), not to what was ever browsed.
//!
//! Shared by the snapshot view (`.snapshots/`) and the vault browser (`snapfs vault mount`).
//! Not synchronised: the owner wraps it in a lock.

use std::collections::HashMap;

use crate::id::InodeNo;

/// One remembered inode: what it stands for, and the references the kernel has not given
/// back. A pinned inode stays whatever the count, for a caller that keeps its number itself
/// (the history view mirrors snapshot inodes it never hands to the kernel under their own
/// number).
struct Held<T> {
    value: T,
    lookups: u64,
    pinned: bool,
    /// The table's tick at its last lookup: larger is more recent.
    used: u64,
}

/// The table: inode number to what it stands for.
pub struct HeldInodes<T> {
    held: HashMap<InodeNo, Held<T>>,
    ticks: u64,
}

impl<T> Default for HeldInodes<T> {
    fn default() -> Self {
        HeldInodes {
            held: HashMap::new(),
            ticks: 0,
        }
    }
}

impl<T> HeldInodes<T> {
    pub fn get(&self, ino: InodeNo) -> Option<&T> {
        self.held.get(&ino).map(|held| &held.value)
    }

    /// One more kernel reference to `ino`: made with `make` if it is new. An inode already
    /// held keeps what it stood for, so its number means one thing while the kernel knows it.
    pub fn look_up(&mut self, ino: InodeNo, make: impl FnOnce() -> T) -> &T {
        self.ticks += 1;
        let held = self.held.entry(ino).or_insert_with(|| Held {
            value: make(),
            lookups: 0,
            pinned: false,
            used: 0,
        });
        held.lookups = held.lookups.saturating_add(1);
        held.used = self.ticks;
        &held.value
    }

    /// The `count` unpinned inodes looked up least recently, each marked as just used: a
    /// caller asks the kernel to let go of them, and one the kernel keeps (an open file, a
    /// working directory) is not asked for again at once.
    pub fn least_recent(&mut self, count: usize) -> Vec<(InodeNo, T)>
    where
        T: Clone,
    {
        let mut unpinned: Vec<(u64, InodeNo)> = self
            .held
            .iter()
            .filter(|(_, held)| !held.pinned)
            .map(|(ino, held)| (held.used, *ino))
            .collect();
        if count < unpinned.len() {
            unpinned.select_nth_unstable(count);
            unpinned.truncate(count);
        }
        unpinned
            .into_iter()
            .filter_map(|(_, ino)| {
                self.ticks += 1;
                let held = self.held.get_mut(&ino)?;
                held.used = self.ticks;
                Some((ino, held.value.clone()))
            })
            .collect()
    }

    /// Keeps `ino` whatever the kernel forgets (made with `make` if it is new).
    pub fn pin(&mut self, ino: InodeNo, make: impl FnOnce() -> T) -> &T {
        let held = self.held.entry(ino).or_insert_with(|| Held {
            value: make(),
            lookups: 0,
            pinned: false,
            used: 0,
        });
        held.pinned = true;
        &held.value
    }

    /// The kernel gives back `count` references to `ino`; with none left (and no pin), the
    /// inode is forgotten. A count larger than what is held (a reference this table never
    /// counted) only brings it to zero.
    pub fn forget(&mut self, ino: InodeNo, count: u64) {
        if let Some(held) = self.held.get_mut(&ino) {
            held.lookups = held.lookups.saturating_sub(count);
            if held.lookups == 0 && !held.pinned {
                self.held.remove(&ino);
                self.shrink_if_sparse();
            }
        }
    }

    /// A `HashMap` never shrinks by itself: once the kernel has forgotten most of what a large
    /// walk held, the table's room goes back too. Halving only below a quarter full keeps the
    /// rehashing amortised over the removals.
    fn shrink_if_sparse(&mut self) {
        const SMALL: usize = 1024;
        if self.held.capacity() > SMALL && self.held.len() < self.held.capacity() / 4 {
            self.held.shrink_to((self.held.len() * 2).max(SMALL));
        }
    }

    /// Keeps only the inodes for which `keep` is true (those of a deleted snapshot go).
    pub fn retain(&mut self, mut keep: impl FnMut(InodeNo) -> bool) {
        self.held.retain(|ino, _| keep(*ino));
        self.shrink_if_sparse();
    }

    /// How many inodes are remembered.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inode_goes_when_the_kernel_gives_back_every_lookup() {
        let mut table = HeldInodes::default();
        assert_eq!(*table.look_up(InodeNo(7), || "a"), "a");
        // A second lookup (another name of a hard link) keeps what the first made.
        assert_eq!(*table.look_up(InodeNo(7), || "b"), "a");
        table.forget(InodeNo(7), 1);
        assert_eq!(table.get(InodeNo(7)), Some(&"a"));
        table.forget(InodeNo(7), 1);
        assert!(table.get(InodeNo(7)).is_none() && table.is_empty());
        // Forgetting what was never held, or more than was held, is harmless.
        table.forget(InodeNo(8), 3);
        table.look_up(InodeNo(9), || "c");
        table.forget(InodeNo(9), 5);
        assert!(table.is_empty());
    }

    #[test]
    fn a_pinned_inode_stays() {
        let mut table = HeldInodes::default();
        table.look_up(InodeNo(1), || 1);
        table.pin(InodeNo(1), || 2);
        table.forget(InodeNo(1), 1);
        assert_eq!(table.get(InodeNo(1)), Some(&1));
        table.retain(|ino| ino != InodeNo(1));
        assert_eq!(table.len(), 0);
    }

    #[test]
    fn the_least_recent_are_chosen_and_then_count_as_recent() {
        let mut table = HeldInodes::default();
        for n in 0..10 {
            table.look_up(InodeNo(n), || n);
        }
        table.pin(InodeNo(0), || 0);
        table.look_up(InodeNo(1), || 1);
        let mut oldest: Vec<u64> = table.least_recent(3).iter().map(|(ino, _)| ino.0).collect();
        oldest.sort_unstable();
        assert_eq!(oldest, [2, 3, 4], "pinned and recently used ones stay out");
        let mut next: Vec<u64> = table.least_recent(3).iter().map(|(ino, _)| ino.0).collect();
        next.sort_unstable();
        assert_eq!(next, [5, 6, 7], "those chosen before count as just used");
        assert_eq!(table.least_recent(100).len(), 9);
    }

    #[test]
    fn the_table_gives_its_room_back_once_most_is_forgotten() {
        let mut table = HeldInodes::default();
        for n in 0..100_000 {
            table.look_up(InodeNo(n), || n);
        }
        let full = table.held.capacity();
        for n in 0..99_990 {
            table.forget(InodeNo(n), 1);
        }
        assert_eq!(table.len(), 10);
        assert!(
            table.held.capacity() < full / 16,
            "{} of {full}",
            table.held.capacity()
        );
        assert_eq!(table.get(InodeNo(99_995)), Some(&99_995));
    }
}
