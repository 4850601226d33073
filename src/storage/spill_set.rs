//! A set of 32-byte ids (chunk and object ids) that keeps at most a configured number of bytes
//! in memory: what a walk over every tree (gc's marking, verify) has seen.
//!
//! Ids go into a hash set in memory, allocated once at the size the budget allows. When it is
//! full, its ids are sorted and appended to a scratch file as a *run*, and the hash set starts
//! empty again. The scratch file is unlinked as soon as it is created, so it goes when the set
//! is dropped, or when the process dies, and nothing is ever left beside the store.
//!
//! A lookup asks the hash set, then each run whose Bloom filter says the id may be in it: a
//! walk mostly meets ids it has not seen, and those cost no read. In a run, the first id of
//! each block of 4 KiB is kept in memory (its *fence*), so a lookup there reads one block.
//! An id added with [`SpillSet::add`] (a leaf of a walk: whether it was seen does not matter)
//! is not looked up in the runs at all, so it may be in two runs; membership is unchanged.
//! Reading a sorted list of ids against the set ([`SpillSet::ascending`]) reads each run
//! front to back alongside, rather than looking each id up.
//!
//! So a walk over any number of files takes the memory configured, 32 bytes of sequential
//! writes per id past it, and a walk that fits in memory never touches the disk.
//!
//! Memory: three eighths of the budget for the hash set (a power of two of buckets, so often
//! less), as much again for sorting it when it spills. The runs' filters (10 to 20 bits per
//! id) and fences (a 128th of their bytes) take under 3 bytes per id spilled: the last
//! quarter of the budget covers the first few million ids spilled, which is all but the
//! largest stores; past that, they grow by those 3 bytes per id, a tenth of what the ids
//! themselves would take.

use std::collections::HashSet;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes a hash-set bucket of an id takes: the id and hashbrown's control byte.
const BUCKET_BYTES: u64 = 33;

const ID: u64 = 32;

/// Bytes read at a time from each run by [`Ascending`].
const READ_AHEAD: usize = 64 << 10;

/// Ids per block of a run, the unit a lookup reads (4 KiB).
const BLOCK_IDS: usize = 128;

/// Bloom filter bits per id of a run, at least (a power of two at or above this many).
const FILTER_BITS_PER_ID: u64 = 10;

/// Why the set could not take or answer for an id.
#[derive(Debug, thiserror::Error)]
#[error("scratch file in {dir}: {source}")]
pub struct SpillError {
    dir: PathBuf,
    source: std::io::Error,
}

impl From<SpillError> for std::io::Error {
    fn from(err: SpillError) -> Self {
        std::io::Error::new(err.source.kind(), err.to_string())
    }
}

/// A set of ids within a memory budget, spilling to disk past it (see the module comment).
pub struct SpillSet {
    memory: HashSet<[u8; 32]>,
    /// How many ids the hash set takes before it spills: its allocation never grows.
    capacity: usize,
    /// Where the scratch file is made.
    dir: PathBuf,
    scratch: Option<File>,
    /// The spilled runs, newest first, in the scratch file one after another.
    runs: Vec<Run>,
}

/// Sorted ids in the scratch file: `count` of them from byte `offset`.
struct Run {
    offset: u64,
    count: u64,
    filter: BloomFilter,
    /// The first id of each block.
    fences: Vec<[u8; 32]>,
}

impl SpillSet {
    /// A set that keeps at most about `budget` bytes in memory (never less than a few
    /// thousand ids), with its scratch file, if it needs one, in `dir`.
    pub fn new(dir: &Path, budget: u64) -> Self {
        // The hash set's bucket count, a power of two, must fit its part (with at most 7/8 of
        // its buckets used, hashbrown's load factor).
        let buckets = prev_power_of_two(budget / 8 * 3 / BUCKET_BYTES).max(4096);
        let capacity = usize::try_from(buckets / 8 * 7).unwrap_or(usize::MAX);
        SpillSet {
            memory: HashSet::new(),
            capacity,
            dir: dir.to_path_buf(),
            scratch: None,
            runs: Vec::new(),
        }
    }

    /// Adds `id`; true if it was not in the set.
    pub fn insert(&mut self, id: &[u8; 32]) -> Result<bool, SpillError> {
        if self.contains(id)? {
            return Ok(false);
        }
        self.add(id);
        Ok(true)
    }

    /// Adds `id` without finding out whether it was in the set: it is then not looked up on
    /// disk. If the ids in memory cannot be spilled (a full disk, when gc is needed most),
    /// they stay, and the set grows past its budget rather than fail.
    pub fn add(&mut self, id: &[u8; 32]) {
        if self.memory.contains(id) {
            return;
        }
        if self.memory.capacity() == 0 {
            // Allocated once, at the first insert, so that an empty set costs nothing. The
            // table's pages are only touched as ids land in them.
            self.memory.reserve(self.capacity);
        }
        if self.memory.len() >= self.capacity
            && let Err(err) = self.spill()
        {
            tracing::warn!("{err}: what is left of this walk is kept in memory, past its budget");
            self.capacity = usize::MAX;
        }
        self.memory.insert(*id);
    }

    pub fn contains(&self, id: &[u8; 32]) -> Result<bool, SpillError> {
        if self.memory.contains(id) {
            return Ok(true);
        }
        let Some(scratch) = &self.scratch else {
            return Ok(false);
        };
        for run in &self.runs {
            if run.contains(scratch, id).map_err(|e| self.error(e))? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// A reader of the set for ids asked in ascending order, which reads each run front to
    /// back once rather than searching it for each id.
    pub fn ascending(&self) -> Ascending<'_> {
        Ascending {
            set: self,
            cursors: self.runs.iter().map(Cursor::new).collect(),
        }
    }

    /// Calls `visit` with every id in the set, once each, in ascending order: the ids in
    /// memory sorted (a copy, as a spill makes), merged with every run read front to back.
    pub fn for_each_sorted<E: From<SpillError>>(
        &self,
        mut visit: impl FnMut(&[u8; 32]) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut memory: Vec<[u8; 32]> = self.memory.iter().copied().collect();
        memory.sort_unstable();
        let mut memory = memory.into_iter().peekable();
        let mut cursors: Vec<Cursor> = self.runs.iter().map(Cursor::new).collect();
        loop {
            let mut least = memory.peek().copied();
            if let Some(scratch) = &self.scratch {
                for cursor in &mut cursors {
                    let head = cursor.peek(scratch).map_err(|e| self.error(e))?;
                    if let Some(head) = head
                        && least.is_none_or(|least| head < least)
                    {
                        least = Some(head);
                    }
                }
            }
            let Some(id) = least else {
                return Ok(());
            };
            visit(&id)?;
            // Past it everywhere: an id added more than once is in several runs.
            memory.next_if_eq(&id);
            if let Some(scratch) = &self.scratch {
                for cursor in &mut cursors {
                    if cursor.peek(scratch).map_err(|e| self.error(e))? == Some(id) {
                        cursor.at += 32;
                    }
                }
            }
        }
    }

    /// How many ids the set keeps in memory before it spills.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many times the ids in memory moved to disk (0 for a set that fit its budget).
    pub fn spills(&self) -> u64 {
        self.runs.len() as u64
    }

    /// Appends every id in memory, sorted, to the scratch file as a new run. If that fails,
    /// every id is still in memory.
    fn spill(&mut self) -> Result<(), SpillError> {
        if self.scratch.is_none() {
            self.scratch = Some(self.create_scratch()?);
        }
        let mut ids: Vec<[u8; 32]> = self.memory.iter().copied().collect();
        ids.sort_unstable();
        let offset = self
            .runs
            .first()
            .map_or(0, |run| run.offset + run.count * ID);
        if let Some(scratch) = &self.scratch {
            scratch
                .write_all_at(ids.as_flattened(), offset)
                .map_err(|e| self.error(e))?;
        }
        // Cleared, not dropped: the next ids fill the same allocation.
        self.memory.clear();
        let count = ids.len() as u64;
        let mut filter = BloomFilter::new(count.saturating_mul(FILTER_BITS_PER_ID));
        for id in &ids {
            filter.add(id);
        }
        let fences = ids.iter().step_by(BLOCK_IDS).copied().collect();
        self.runs.insert(
            0,
            Run {
                offset,
                count,
                filter,
                fences,
            },
        );
        Ok(())
    }

    fn create_scratch(&self) -> Result<File, SpillError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = self.dir.join(format!(
            ".spill-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| self.error(e))?;
        std::fs::remove_file(&path).map_err(|e| self.error(e))?;
        Ok(file)
    }

    fn error(&self, source: std::io::Error) -> SpillError {
        SpillError {
            dir: self.dir.clone(),
            source,
        }
    }
}

impl Run {
    /// Its filter, then a read of the one block the fences point to.
    fn contains(&self, scratch: &File, id: &[u8; 32]) -> std::io::Result<bool> {
        if !self.filter.may_hold(id) {
            return Ok(false);
        }
        let Some(block) = self
            .fences
            .partition_point(|first| first <= id)
            .checked_sub(1)
        else {
            return Ok(false);
        };
        let first = (block * BLOCK_IDS) as u64;
        let ids = (self.count - first).min(BLOCK_IDS as u64) as usize;
        let mut bytes = [0; BLOCK_IDS * ID as usize];
        let bytes = &mut bytes[..ids * ID as usize];
        scratch.read_exact_at(bytes, self.offset + first * ID)?;
        let (ids, _) = bytes.as_chunks::<32>();
        Ok(ids.binary_search(id).is_ok())
    }
}

/// Asks a [`SpillSet`] about ids in ascending order (see [`SpillSet::ascending`]).
pub struct Ascending<'a> {
    set: &'a SpillSet,
    cursors: Vec<Cursor<'a>>,
}

impl Ascending<'_> {
    /// Whether `id` is in the set. Each id must be greater than the one asked before.
    pub fn contains(&mut self, id: &[u8; 32]) -> Result<bool, SpillError> {
        if self.set.memory.contains(id) {
            return Ok(true);
        }
        let Some(scratch) = &self.set.scratch else {
            return Ok(false);
        };
        let mut found = false;
        for cursor in &mut self.cursors {
            found |= cursor
                .skip_below(scratch, id)
                .map_err(|e| self.set.error(e))?
                == Some(*id);
        }
        Ok(found)
    }
}

/// A position in one run, read ahead in blocks.
struct Cursor<'a> {
    run: &'a Run,
    /// Ids of the run before the buffer's.
    done: u64,
    buffer: Vec<u8>,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn new(run: &'a Run) -> Self {
        Cursor {
            run,
            done: 0,
            buffer: Vec::new(),
            at: 0,
        }
    }

    /// The next id of the run, if any is left (without moving past it).
    fn peek(&mut self, scratch: &File) -> std::io::Result<Option<[u8; 32]>> {
        self.skip_below(scratch, &[0; 32])
    }

    /// Moves past the ids below `id`; returns the first id not below it, if any is left.
    fn skip_below(&mut self, scratch: &File, id: &[u8; 32]) -> std::io::Result<Option<[u8; 32]>> {
        loop {
            if self.at == self.buffer.len() {
                self.done += (self.buffer.len() / 32) as u64;
                self.buffer.clear();
                self.at = 0;
                let left = self.run.count - self.done;
                if left == 0 {
                    return Ok(None);
                }
                let take = left.min((READ_AHEAD / 32) as u64);
                self.buffer.resize((take * ID) as usize, 0);
                scratch.read_exact_at(&mut self.buffer, self.run.offset + self.done * ID)?;
            }
            let mut next = [0; 32];
            next.copy_from_slice(&self.buffer[self.at..self.at + 32]);
            if next >= *id {
                return Ok(Some(next));
            }
            self.at += 32;
        }
    }
}

/// A Bloom filter over ids that are already uniform hashes, so its probes are taken from the
/// id's own bytes rather than hashed again (why no crate: they all hash their keys).
struct BloomFilter {
    words: Vec<u64>,
    /// The bit count less one: a power of two, so that a probe is masked, not divided.
    mask: u64,
}

impl BloomFilter {
    /// Probes per id: about 1% false positives at 10 bits per id, 0.1% at 20.
    const PROBES: u64 = 4;

    /// A filter of at least `bits` bits (a power of two).
    fn new(bits: u64) -> Self {
        let bits = bits.max(64).checked_next_power_of_two().unwrap_or(1 << 63);
        BloomFilter {
            words: vec![0; usize::try_from(bits / 64).unwrap_or(usize::MAX)],
            mask: bits - 1,
        }
    }

    fn probes(&self, id: &[u8; 32]) -> impl Iterator<Item = u64> + use<> {
        let word = |at: usize| {
            let mut bytes = [0; 8];
            bytes.copy_from_slice(&id[at..at + 8]);
            u64::from_le_bytes(bytes)
        };
        let (first, step, mask) = (word(0), word(8) | 1, self.mask);
        (0..Self::PROBES).map(move |i| first.wrapping_add(i.wrapping_mul(step)) & mask)
    }

    fn add(&mut self, id: &[u8; 32]) {
        for bit in self.probes(id) {
            self.words[(bit / 64) as usize] |= 1 << (bit % 64);
        }
    }

    fn may_hold(&self, id: &[u8; 32]) -> bool {
        self.probes(id)
            .all(|bit| self.words[(bit / 64) as usize] & (1 << (bit % 64)) != 0)
    }
}

fn prev_power_of_two(n: u64) -> u64 {
    match n {
        0 => 0,
        n => 1 << (63 - n.leading_zeros()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(n: u64) -> [u8; 32] {
        *blake3::hash(&n.to_le_bytes()).as_bytes()
    }

    #[test]
    fn a_set_within_its_budget_never_spills() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut set = SpillSet::new(tmp.path(), 1 << 20);
        assert_eq!(set.capacity(), 7168);
        for n in 0..7168 {
            assert!(set.insert(&id(n)).expect("insert"));
        }
        assert_eq!(set.spills(), 0);
        assert!(set.scratch.is_none());
    }

    #[test]
    fn a_set_past_its_budget_spills_and_still_knows_every_id() {
        let tmp = tempfile::tempdir().expect("tempdir");
        // The smallest budget: 4,096 buckets, 3,584 ids in memory.
        let mut set = SpillSet::new(tmp.path(), 0);
        for n in 0..20_000 {
            assert!(set.insert(&id(n)).expect("insert"), "{n}");
        }
        assert!(set.spills() >= 5, "{}", set.spills());
        for n in 0..20_000 {
            assert!(!set.insert(&id(n)).expect("insert again"), "{n}");
            assert!(set.contains(&id(n)).expect("contains"));
        }
        assert!(!set.contains(&id(20_000)).expect("contains"));
        assert_eq!(
            std::fs::read_dir(tmp.path()).expect("dir").count(),
            0,
            "the scratch file is unlinked"
        );
    }

    #[test]
    fn a_set_that_cannot_spill_keeps_every_id_in_memory() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut set = SpillSet::new(&tmp.path().join("absent"), 0);
        for n in 0..10_000 {
            assert!(set.insert(&id(n)).expect("insert"), "{n}");
        }
        assert_eq!(set.spills(), 0);
        for n in 0..10_000 {
            assert!(set.contains(&id(n)).expect("contains"));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]
        /// Ids inserted (asking whether they were there) or added (not asking), then every id
        /// asked one by one and in ascending order.
        #[test]
        fn it_answers_as_a_hash_set_does(
            ops in proptest::collection::vec((0u64..6_000, any::<bool>()), 1..12_000),
        ) {
            let tmp = tempfile::tempdir().expect("tempdir");
            let mut set = SpillSet::new(tmp.path(), 0);
            let mut model = HashSet::new();
            for (n, ask) in ops {
                if ask {
                    prop_assert_eq!(set.insert(&id(n)).expect("insert"), model.insert(n));
                } else {
                    set.add(&id(n));
                    model.insert(n);
                }
            }
            for n in 0..6_000 {
                prop_assert_eq!(set.contains(&id(n)).expect("contains"), model.contains(&n));
            }
            let mut sorted: Vec<(u64, [u8; 32])> = (0..6_000).map(|n| (n, id(n))).collect();
            sorted.sort_by_key(|(_, id)| *id);
            let mut ascending = set.ascending();
            for (n, id) in &sorted {
                prop_assert_eq!(ascending.contains(id).expect("contains"), model.contains(n));
            }
            let mut listed = Vec::new();
            set.for_each_sorted(|id| {
                listed.push(*id);
                Ok::<_, SpillError>(())
            })
            .expect("for each");
            let expected: Vec<[u8; 32]> = sorted
                .iter()
                .filter(|(n, _)| model.contains(n))
                .map(|(_, id)| *id)
                .collect();
            prop_assert_eq!(listed, expected);
        }
    }
}
