//! A gc's retirement list, `gc/<plan id>`: what an interrupted or running `vault gc` has taken
//! out of the vault's index, written in one atomic put before anything is deleted, and deleted
//! last. Every reader of the index applies every retirement list it finds: the entries of a
//! retired pack, and the dropped entries of a kept pack, are not part of the vault's index.
//!
//! This is what makes gc crash-safe for later backups as well as for listed ones: taking
//! unreachable objects out of several index files one file at a time could leave a tree object
//! listed while a child of it is not, and a later backup would skip that tree trusting the
//! index. One put takes them all out at once.
//!
//! ```text
//! "SVGC" | version u8 = 1
//!        | retired_count u32 | pack_id [16]*                          sorted, unique
//!        | kept_count u32 | (pack_id [16] | dropped_count u32 | object_id [32]*)*
//!                                                     packs sorted, unique; ids sorted, unique
//! ```

use super::cursor::Cursor;
use super::vault_index::MAX_PACK_OBJECTS;
use super::{DecodeError, invalid};
use crate::id::{ChunkId, VaultPackId};

const MAGIC: &[u8; 4] = b"SVGC";
const VERSION: u8 = 1;
/// Bound on pack counts read back: 2^24 packs of 16 MiB are 256 TiB.
const MAX_PACKS: u32 = 1 << 24;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Retirement {
    /// Packs whose index entries no longer count (they are deleted or rewritten).
    pub retired: Vec<VaultPackId>,
    /// Packs that stay, with the entries of theirs that no longer count.
    pub dropped: Vec<(VaultPackId, Vec<ChunkId>)>,
}

fn sorted_unique<T: Ord>(items: &[T]) -> bool {
    items.windows(2).all(|w| w[0] < w[1])
}

impl Retirement {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&(self.retired.len() as u32).to_le_bytes());
        for pack in &self.retired {
            out.extend_from_slice(&pack.0);
        }
        out.extend_from_slice(&(self.dropped.len() as u32).to_le_bytes());
        for (pack, ids) in &self.dropped {
            out.extend_from_slice(&pack.0);
            out.extend_from_slice(&(ids.len() as u32).to_le_bytes());
            for id in ids {
                out.extend_from_slice(&id.0);
            }
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut cur = Cursor::new(bytes);
        cur.header(MAGIC, VERSION)?;
        let count = cur.u32()?;
        if count > MAX_PACKS {
            return Err(invalid("retired_count", count.into()));
        }
        let mut retired = Vec::new();
        for _ in 0..count {
            retired.push(VaultPackId(cur.array()?));
        }
        if !sorted_unique(&retired) {
            return Err(invalid("retired order", 0));
        }
        let count = cur.u32()?;
        if count > MAX_PACKS {
            return Err(invalid("kept_count", count.into()));
        }
        let mut dropped = Vec::new();
        for _ in 0..count {
            let pack = VaultPackId(cur.array()?);
            let n = cur.u32()?;
            if n > MAX_PACK_OBJECTS {
                return Err(invalid("dropped_count", n.into()));
            }
            let mut ids = Vec::new();
            for _ in 0..n {
                ids.push(ChunkId(cur.array()?));
            }
            if !sorted_unique(&ids) {
                return Err(invalid("dropped order", 0));
            }
            dropped.push((pack, ids));
        }
        if !dropped.windows(2).all(|w| w[0].0 < w[1].0) {
            return Err(invalid("kept order", 0));
        }
        cur.finish()?;
        Ok(Retirement { retired, dropped })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn golden_bytes() {
        let plan = Retirement {
            retired: vec![VaultPackId([1; 16])],
            dropped: vec![(VaultPackId([2; 16]), vec![ChunkId([3; 32])])],
        };
        let bytes = plan.encode();
        let mut expected = b"SVGC\x01\x01\0\0\0".to_vec();
        expected.extend_from_slice(&[1; 16]);
        expected.extend_from_slice(&[1, 0, 0, 0]);
        expected.extend_from_slice(&[2; 16]);
        expected.extend_from_slice(&[1, 0, 0, 0]);
        expected.extend_from_slice(&[3; 32]);
        assert_eq!(bytes, expected);
        assert_eq!(Retirement::decode(&bytes), Ok(plan));
        for len in 0..bytes.len() {
            assert!(Retirement::decode(&bytes[..len]).is_err(), "prefix {len}");
        }
    }

    #[test]
    fn refuses_unsorted_lists() {
        let plan = Retirement {
            retired: vec![VaultPackId([2; 16]), VaultPackId([1; 16])],
            dropped: vec![],
        };
        assert!(Retirement::decode(&plan.encode()).is_err());
    }

    proptest! {
        #[test]
        fn round_trips(
            retired in proptest::collection::btree_set(any::<[u8; 16]>(), 0..10),
            dropped in proptest::collection::btree_map(any::<[u8; 16]>(), proptest::collection::btree_set(any::<[u8; 32]>(), 0..5), 0..5),
        ) {
            let plan = Retirement {
                retired: retired.into_iter().map(VaultPackId).collect(),
                dropped: dropped.into_iter().map(|(p, ids)| (VaultPackId(p), ids.into_iter().map(ChunkId).collect())).collect(),
            };
            prop_assert_eq!(Retirement::decode(&plan.encode()), Ok(plan));
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Retirement::decode(&bytes);
        }
    }
}
