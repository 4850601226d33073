//! The live share a mount serves, and the ones it served before: a follower (`snapfs mount
//! --follow`) replaces its share by a newer one as each checkpoint arrives, while files opened
//! on an older one go on reading it until they are closed.
//!
//! Each share served gets a tag, carried in the high bits of every live file handle it hands
//! out ([`TAG_SHIFT`]): a request on a handle goes to the share that opened it, every other
//! request to the newest. A replaced share is shut down and dropped once its last handle is
//! released. An ordinary mount never replaces its share: its tag is 0 and its handles are the
//! share's own numbers.
//!
//! An open file behaves as on a local file system, whose open files see changes made in place
//! and keep what was deleted: the first read of a replaced share's file handle after a switch
//! opens the same inode in the newest share and reads there from then on (the kernel, which
//! learns the file's new size from the newest share, then reads bytes that agree with it); a
//! file the newest share no longer has is read from the share it was opened on until it is
//! closed (whose reader's lease keeps its data in the object store).
//!
//! Finding the current share is an `ArcSwap` load, with no lock and no shared counter, so the
//! data path of a mount pays nothing for this.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};
use parking_lot::Mutex;

use crate::id::InodeNo;
use crate::live::LiveFs;

/// Live file handles are below 2^48 (a counter of opens), and snapshot-side handles have bit
/// 63 set: the tag takes the 14 bits between.
const TAG_SHIFT: u32 = 48;
const TAG_BITS: u64 = (1 << 14) - 1;
const TAG_MASK: u64 = TAG_BITS << TAG_SHIFT;

/// One share a mount serves or served.
pub struct Generation {
    pub live: Arc<LiveFs>,
    tag: u64,
}

/// The share a request goes to: the current one (no reference counted) or a replaced one.
pub enum Served {
    Current(Guard<Arc<Generation>>),
    Replaced(Arc<Generation>),
}

impl std::ops::Deref for Served {
    type Target = Generation;

    fn deref(&self) -> &Generation {
        match self {
            Served::Current(guard) => guard,
            Served::Replaced(generation) => generation,
        }
    }
}

pub struct Generations {
    current: ArcSwap<Generation>,
    /// Replaced shares with handles still open.
    replaced: Mutex<Vec<Arc<Generation>>>,
    /// File handles of replaced shares whose files were opened again in a newer share: the
    /// kernel's handle, and the share and handle reads go to now.
    moved: Mutex<HashMap<u64, (Arc<Generation>, u64)>>,
}

impl Generations {
    pub fn new(live: Arc<LiveFs>) -> Self {
        Generations {
            current: ArcSwap::from_pointee(Generation { live, tag: 0 }),
            replaced: Mutex::new(Vec::new()),
            moved: Mutex::new(HashMap::new()),
        }
    }

    pub fn current(&self) -> Served {
        Served::Current(self.current.load())
    }

    /// A handle `generation` opened, as the kernel is to know it.
    pub fn tagged(generation: &Generation, fh: u64) -> u64 {
        debug_assert_eq!(fh & TAG_MASK, 0, "live handles stay below 2^48");
        fh | generation.tag << TAG_SHIFT
    }

    /// The share live handle `fh` is served by, and the handle as that share knows it; `None`
    /// if that share is gone (which the kernel, closing every handle it opened, never asks).
    pub fn of_handle(&self, fh: u64) -> Option<(Served, u64)> {
        let tag = (fh & TAG_MASK) >> TAG_SHIFT;
        let current = self.current.load();
        if current.tag == tag {
            return Some((Served::Current(current), fh & !TAG_MASK));
        }
        if let Some((generation, own)) = self.moved.lock().get(&fh) {
            return Some((Served::Replaced(generation.clone()), *own));
        }
        let replaced = self.replaced.lock();
        let generation = replaced.iter().find(|g| g.tag == tag)?.clone();
        Some((Served::Replaced(generation), fh & !TAG_MASK))
    }

    /// [`Self::of_handle`] for a read of file `ino`: a replaced share's handle is first moved
    /// to the newest share if that share still has the file (see the module comment).
    pub fn for_read(&self, fh: u64, ino: InodeNo) -> Option<(Served, u64)> {
        let tag = (fh & TAG_MASK) >> TAG_SHIFT;
        let current = self.current.load();
        if current.tag == tag {
            return Some((Served::Current(current), fh & !TAG_MASK));
        }
        let current = Guard::into_inner(current);
        // Moved under the lock, so that two reads of one handle move it once.
        let mut moved = self.moved.lock();
        let (from, own) = match moved.get(&fh) {
            Some((generation, own)) => (generation.clone(), *own),
            None => {
                let replaced = self.replaced.lock();
                let generation = replaced.iter().find(|g| g.tag == tag)?.clone();
                (generation, fh & !TAG_MASK)
            }
        };
        if from.tag == current.tag {
            return Some((Served::Replaced(from), own));
        }
        let Ok(reopened) = current.live.open(ino, false, false) else {
            // Deleted since: read on from the share it was opened on.
            return Some((Served::Replaced(from), own));
        };
        if let Err(err) = from.live.release(own) {
            tracing::warn!("closing a file on a replaced share: {err}");
        }
        moved.insert(fh, (current.clone(), reopened));
        drop((moved, from));
        self.reap();
        Some((Served::Replaced(current), reopened))
    }

    /// Forgets live handle `fh` once its share released it.
    pub fn released(&self, fh: u64) {
        if self.moved.lock().remove(&fh).is_some() {
            self.reap();
        }
    }

    /// Serves `live` from now on. The share it replaces stays until its open handles are
    /// released.
    pub fn replace(&self, live: Arc<LiveFs>) {
        // The next tag no share still serving has, and no handle the kernel holds (with 16,383
        // tags, one is always free). Lock order: `moved`, then `replaced`.
        let moved: Vec<u64> = self
            .moved
            .lock()
            .keys()
            .map(|fh| (fh & TAG_MASK) >> TAG_SHIFT)
            .collect();
        let mut replaced = self.replaced.lock();
        let old = self.current.load_full();
        let mut tag = old.tag;
        loop {
            tag = tag % TAG_BITS + 1;
            if replaced.iter().all(|g| g.tag != tag) && !moved.contains(&tag) {
                break;
            }
        }
        self.current.store(Arc::new(Generation { live, tag }));
        replaced.push(old);
        drop(replaced);
        self.reap();
    }

    /// Shuts down and drops every replaced share that has no open handle left.
    pub fn reap(&self) {
        let done: Vec<Arc<Generation>> = {
            let mut replaced = self.replaced.lock();
            let (done, open) = replaced
                .drain(..)
                .partition(|g: &Arc<Generation>| g.live.open_handles() == 0);
            *replaced = open;
            done
        };
        for generation in done {
            if let Err(err) = generation.live.shutdown() {
                tracing::warn!("closing a replaced share: {err}");
            }
        }
    }

    /// Every share still served, the current one first.
    pub fn all(&self) -> Vec<Arc<LiveFs>> {
        let mut all = vec![self.current.load().live.clone()];
        all.extend(self.replaced.lock().iter().map(|g| g.live.clone()));
        all
    }
}
