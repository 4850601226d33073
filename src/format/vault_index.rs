//! The index of one vault pack, `index/<pack id>`: where each object of the pack is. Written
//! after its pack (so an index never names bytes that are not stored) and sealed like
//! everything else, so an encrypted vault's provider never sees an object id. The vault's whole
//! index is the union of these files: a backup killed in the middle leaves whole packs with
//! their indexes, which the next run reads and does not send again.
//!
//! ```text
//! "SVIX" | version u8 = 1 | pack_id [16] | count u32
//!        | (object_id [32] | offset u32 | len u32)*        sorted by object id, unique
//! ```
//! `offset` and `len` locate the sealed entry in the pack ([`super::vault_pack`]).

use super::DecodeError;
use super::cursor::Cursor;
use crate::id::{ChunkId, VaultPackId};

const MAGIC: &[u8; 4] = b"SVIX";
const VERSION: u8 = 1;
/// A pack holds at most this many objects (a pack of 64 MiB of 4 KiB objects has 16,384).
pub const MAX_PACK_OBJECTS: u32 = 1 << 20;

/// Where one object is inside its pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackSlice {
    pub offset: u32,
    pub len: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackIndex {
    pub pack: VaultPackId,
    /// Sorted by id, unique.
    pub entries: Vec<(ChunkId, PackSlice)>,
}

impl PackIndex {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(25 + self.entries.len() * 40);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&self.pack.0);
        out.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        for (id, slice) in &self.entries {
            out.extend_from_slice(&id.0);
            out.extend_from_slice(&slice.offset.to_le_bytes());
            out.extend_from_slice(&slice.len.to_le_bytes());
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut cur = Cursor::new(bytes);
        cur.header(MAGIC, VERSION)?;
        let pack = VaultPackId(cur.array()?);
        let count = cur.u32()?;
        if count > MAX_PACK_OBJECTS {
            return Err(DecodeError::InvalidField {
                field: "count",
                value: count.into(),
            });
        }
        let mut entries: Vec<(ChunkId, PackSlice)> = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let id = ChunkId(cur.array()?);
            let slice = PackSlice {
                offset: cur.u32()?,
                len: cur.u32()?,
            };
            if entries.last().is_some_and(|(last, _)| *last >= id) {
                return Err(DecodeError::InvalidField {
                    field: "order",
                    value: entries.len() as u64,
                });
            }
            entries.push((id, slice));
        }
        cur.finish()?;
        Ok(PackIndex { pack, entries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trips(ids in proptest::collection::btree_set(any::<[u8; 32]>(), 0..50), pack in any::<[u8; 16]>()) {
            let index = PackIndex {
                pack: VaultPackId(pack),
                entries: ids.into_iter().enumerate().map(|(i, id)| (ChunkId(id), PackSlice { offset: i as u32 * 10, len: 10 })).collect(),
            };
            prop_assert_eq!(PackIndex::decode(&index.encode()), Ok(index));
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = PackIndex::decode(&bytes);
        }
    }

    #[test]
    fn refuses_unsorted_entries() {
        let slice = PackSlice { offset: 0, len: 1 };
        let index = PackIndex {
            pack: VaultPackId([0; 16]),
            entries: vec![(ChunkId([2; 32]), slice), (ChunkId([1; 32]), slice)],
        };
        assert!(PackIndex::decode(&index.encode()).is_err());
    }
}
