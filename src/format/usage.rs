//! The per-chunk record of incremental space accounting (`meta::accounting`): which snapshots
//! hold a chunk, how often the newest created snapshot names it, and which space class it is
//! counted in.
//!
//! Layout, little-endian:
//!
//! ```text
//! version u8 = 1 | size u32 | newest_refs u64 | class u8 | class_snapshot u64
//! | count u32 | (birth u64 | death u64)*            sorted, disjoint, at most one open
//! ```
//!
//! - `size`: the chunk's stored bytes (its frame length in the pack).
//! - `newest_refs`: how many times the newest created snapshot's tree names the chunk (a tree
//!   may name one chunk in several files or objects). Non-zero exactly when the last interval
//!   is open.
//! - intervals `[birth, death)` of snapshot numbers: the chunk is in every snapshot whose
//!   number lies in one of them, and in no other. `death = u64::MAX` means open: the chunk is in
//!   the newest created snapshot and stays in the interval until a snapshot without it is made.
//! - `class`: where the chunk's bytes are counted now (see [`Class`]); `class_snapshot` is the
//!   snapshot of `Unique` and 0 for the other classes.

use super::cursor::Cursor;
use super::{DecodeError, invalid};

const VERSION: u8 = 1;
/// The death of an interval that is still open.
pub const OPEN: u64 = u64::MAX;
/// More intervals than this is damage: a chunk leaves and comes back once per snapshot at most,
/// and this bounds what a damaged count can make a decoder allocate.
const MAX_INTERVALS: u32 = 1 << 24;

/// The space class a chunk's bytes are counted in. Exactly one at any time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Nothing uses it: reclaimable by the next gc.
    Free,
    /// The live share names it (whatever else does).
    Live,
    /// Only this listed snapshot holds it (and not the live share).
    Unique(u64),
    /// Two or more listed snapshots hold it, the live share does not.
    Shared,
    /// Only soft-deleted snapshots hold it.
    Deleted,
}

impl Class {
    fn encode(self) -> (u8, u64) {
        match self {
            Class::Free => (0, 0),
            Class::Live => (1, 0),
            Class::Unique(snapshot) => (2, snapshot),
            Class::Shared => (3, 0),
            Class::Deleted => (4, 0),
        }
    }

    fn decode(tag: u8, snapshot: u64) -> Result<Self, DecodeError> {
        Ok(match tag {
            0 => Class::Free,
            1 => Class::Live,
            2 => Class::Unique(snapshot),
            3 => Class::Shared,
            4 => Class::Deleted,
            other => return Err(invalid("usage class", u64::from(other))),
        })
    }
}

/// What accounting knows of one chunk that some snapshot holds or held.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkUsage {
    pub size: u32,
    pub newest_refs: u64,
    pub class: Class,
    /// `[birth, death)` ranges of snapshot numbers, oldest first.
    pub intervals: Vec<(u64, u64)>,
}

impl ChunkUsage {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(26 + 16 * self.intervals.len());
        out.push(VERSION);
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&self.newest_refs.to_le_bytes());
        let (tag, snapshot) = self.class.encode();
        out.push(tag);
        out.extend_from_slice(&snapshot.to_le_bytes());
        out.extend_from_slice(&(self.intervals.len() as u32).to_le_bytes());
        for (birth, death) in &self.intervals {
            out.extend_from_slice(&birth.to_le_bytes());
            out.extend_from_slice(&death.to_le_bytes());
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut cursor = Cursor::new(bytes);
        let version = cursor.u8()?;
        if version != VERSION {
            return Err(DecodeError::UnsupportedVersion(u32::from(version)));
        }
        let size = cursor.u32()?;
        let newest_refs = cursor.u64()?;
        let tag = cursor.u8()?;
        let class = Class::decode(tag, cursor.u64()?)?;
        let count = cursor.u32()?;
        if count > MAX_INTERVALS {
            return Err(invalid("interval count", u64::from(count)));
        }
        let mut intervals = Vec::with_capacity((count as usize).min(bytes.len() / 16));
        let mut previous_death = 0;
        for _ in 0..count {
            let birth = cursor.u64()?;
            let death = cursor.u64()?;
            // Sorted and disjoint; only the last may be open.
            if birth >= death || birth < previous_death || previous_death == OPEN {
                return Err(invalid("interval", birth));
            }
            previous_death = death;
            intervals.push((birth, death));
        }
        cursor.finish()?;
        Ok(ChunkUsage {
            size,
            newest_refs,
            class,
            intervals,
        })
    }

    /// Whether some interval contains snapshot `number`.
    pub fn holds(&self, number: u64) -> bool {
        self.intervals
            .iter()
            .any(|&(birth, death)| birth <= number && number < death)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn golden_bytes() {
        let usage = ChunkUsage {
            size: 300,
            newest_refs: 2,
            class: Class::Unique(5),
            intervals: vec![(1, 3), (5, OPEN)],
        };
        let mut expected = vec![
            1, 44, 1, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 2, 5, 0, 0, 0, 0, 0, 0, 0,
        ];
        expected.extend_from_slice(&[2, 0, 0, 0]);
        expected.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0]);
        expected.extend_from_slice(&[5, 0, 0, 0, 0, 0, 0, 0]);
        expected.extend_from_slice(&[0xff; 8]);
        assert_eq!(usage.encode(), expected);
        assert_eq!(ChunkUsage::decode(&expected), Ok(usage));
    }

    #[test]
    fn overlapping_or_reopened_intervals_are_refused() {
        for intervals in [vec![(3, 1)], vec![(1, 4), (3, 6)], vec![(1, OPEN), (5, 6)]] {
            let usage = ChunkUsage {
                size: 1,
                newest_refs: 0,
                class: Class::Free,
                intervals,
            };
            assert!(ChunkUsage::decode(&usage.encode()).is_err());
        }
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = ChunkUsage::decode(&bytes);
        }

        #[test]
        fn round_trips(size: u32, refs: u64, tag in 0u8..5, snap: u64,
                       starts in proptest::collection::btree_set(0u64..1000, 0..8)) {
            let starts: Vec<u64> = starts.into_iter().collect();
            let intervals: Vec<(u64, u64)> = starts.iter().map(|s| (s * 2, s * 2 + 1)).collect();
            let class = Class::decode(tag, if tag == 2 { snap } else { 0 }).expect("tag");
            let usage = ChunkUsage { size, newest_refs: refs, class, intervals };
            prop_assert_eq!(ChunkUsage::decode(&usage.encode()), Ok(usage));
        }
    }
}
