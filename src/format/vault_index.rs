//! The index of one vault pack, `index/<pack id>`: where each object of the pack is. Written
//! after its pack (so an index never names bytes that are not stored) and sealed like
//! everything else, so an encrypted vault's provider never sees an object id. The vault's whole
//! index is the union of these files: a backup killed in the middle leaves whole packs with
//! their indexes, which the next run reads and does not send again.
//!
//! ```text
//! version 1: "SVIX" | 1 | pack_id [16] | count u32 | entry*
//! version 2: "SVIX" | 2 | pack_id [16] | kind u8 | count u32 | entry*
//! entry:     object_id [32] | offset u32 | len u32              sorted by object id, unique
//! ```
//! `offset` and `len` locate the object's entry in the pack. `kind` says what the pack holds:
//! 1, sealed entries ([`super::vault_pack`]); 2, chunk-store frames ([`super::pack`]): a
//! tiered store's pack copied whole by the object store into an unencrypted vault, whose
//! entries are its frames. A version 1 index is of kind 1. Version 1 is still written for
//! sealed packs, so that older releases keep reading vaults with no copied pack; they refuse a
//! version 2 index (an unsupported version) rather than misread its frames.

use super::DecodeError;
use super::cursor::Cursor;
use crate::id::{ChunkId, VaultPackId};

const MAGIC: &[u8; 4] = b"SVIX";
/// The version written for packs of sealed entries.
const VERSION_SEALED: u8 = 1;
/// The version written for other kinds of pack (and the newest read).
const VERSION_KINDS: u8 = 2;
/// A pack holds at most this many objects (a pack of 64 MiB of 4 KiB objects has 16,384).
pub const MAX_PACK_OBJECTS: u32 = 1 << 20;

/// Where one object is inside its pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackSlice {
    pub offset: u32,
    pub len: u32,
}

/// What a pack's entries are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PackKind {
    /// A vault pack: each entry sealed with the vault's key.
    #[default]
    Sealed,
    /// A copy of a chunk-store pack: each entry is a frame, header and payload, never sealed.
    Frames,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackIndex {
    pub pack: VaultPackId,
    pub kind: PackKind,
    /// Sorted by id, unique.
    pub entries: Vec<(ChunkId, PackSlice)>,
}

impl PackIndex {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(26 + self.entries.len() * 40);
        out.extend_from_slice(MAGIC);
        match self.kind {
            PackKind::Sealed => {
                out.push(VERSION_SEALED);
                out.extend_from_slice(&self.pack.0);
            }
            PackKind::Frames => {
                out.push(VERSION_KINDS);
                out.extend_from_slice(&self.pack.0);
                out.push(2);
            }
        }
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
        if cur.take(MAGIC.len())? != MAGIC {
            return Err(DecodeError::BadMagic);
        }
        let version = cur.u8()?;
        if version != VERSION_SEALED && version != VERSION_KINDS {
            return Err(DecodeError::UnsupportedVersion(version.into()));
        }
        let pack = VaultPackId(cur.array()?);
        let kind = if version == VERSION_SEALED {
            PackKind::Sealed
        } else {
            match cur.u8()? {
                1 => PackKind::Sealed,
                2 => PackKind::Frames,
                other => {
                    return Err(DecodeError::InvalidField {
                        field: "kind",
                        value: other.into(),
                    });
                }
            }
        };
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
        Ok(PackIndex {
            pack,
            kind,
            entries,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trips(ids in proptest::collection::btree_set(any::<[u8; 32]>(), 0..50), pack in any::<[u8; 16]>(), frames in any::<bool>()) {
            let index = PackIndex {
                pack: VaultPackId(pack),
                kind: if frames { PackKind::Frames } else { PackKind::Sealed },
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
            kind: PackKind::Sealed,
            entries: vec![(ChunkId([2; 32]), slice), (ChunkId([1; 32]), slice)],
        };
        assert!(PackIndex::decode(&index.encode()).is_err());
    }

    /// Sealed packs keep the version 1 layout, byte for byte, so older releases read them;
    /// a copied pack's index is version 2, which they refuse.
    #[test]
    fn sealed_packs_keep_version_1_and_copied_packs_take_version_2() {
        let slice = PackSlice {
            offset: 16,
            len: 60,
        };
        let mut index = PackIndex {
            pack: VaultPackId([7; 16]),
            kind: PackKind::Sealed,
            entries: vec![(ChunkId([1; 32]), slice)],
        };
        let mut v1 = b"SVIX\x01".to_vec();
        v1.extend_from_slice(&[7; 16]);
        v1.extend_from_slice(&1u32.to_le_bytes());
        v1.extend_from_slice(&[1; 32]);
        v1.extend_from_slice(&16u32.to_le_bytes());
        v1.extend_from_slice(&60u32.to_le_bytes());
        assert_eq!(index.encode(), v1);
        index.kind = PackKind::Frames;
        let v2 = index.encode();
        assert_eq!(&v2[..5], b"SVIX\x02");
        assert_eq!(v2[21], 2, "the kind follows the pack id");
        assert_eq!(PackIndex::decode(&v2), Ok(index));
        let mut unknown = v2.clone();
        unknown[21] = 9;
        assert!(PackIndex::decode(&unknown).is_err());
    }
}
