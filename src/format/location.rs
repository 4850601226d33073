//! Where a chunk lives: the value of the chunk index (`ChunkId` → `ChunkLocation`).
//!
//! Layout, 16 bytes little-endian: `pack: u32 | offset: u64 | frame_len: u32`, where `offset` is
//! the start of the chunk's frame in the pack and `frame_len` covers header and payload.

use super::DecodeError;
use super::cursor::Cursor;
use crate::id::PackId;

/// The position of one chunk frame inside a pack file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkLocation {
    pub pack: PackId,
    pub offset: u64,
    pub frame_len: u32,
}

impl ChunkLocation {
    pub const ENCODED_LEN: usize = 16;

    pub fn encode(&self) -> [u8; Self::ENCODED_LEN] {
        let mut out = [0u8; Self::ENCODED_LEN];
        out[..4].copy_from_slice(&self.pack.0.to_le_bytes());
        out[4..12].copy_from_slice(&self.offset.to_le_bytes());
        out[12..].copy_from_slice(&self.frame_len.to_le_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut cursor = Cursor::new(bytes);
        let location = ChunkLocation {
            pack: PackId(cursor.u32()?),
            offset: cursor.u64()?,
            frame_len: cursor.u32()?,
        };
        cursor.finish()?;
        Ok(location)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn golden_bytes() {
        let location = ChunkLocation {
            pack: PackId(7),
            offset: 0x0102_0304_0506,
            frame_len: 300,
        };
        assert_eq!(
            location.encode(),
            [7, 0, 0, 0, 6, 5, 4, 3, 2, 1, 0, 0, 44, 1, 0, 0]
        );
    }

    proptest! {
        #[test]
        fn round_trips(pack: u32, offset: u64, frame_len: u32) {
            let location = ChunkLocation { pack: PackId(pack), offset, frame_len };
            prop_assert_eq!(ChunkLocation::decode(&location.encode()), Ok(location));
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let decoded = ChunkLocation::decode(&bytes);
            prop_assert_eq!(decoded.is_ok(), bytes.len() == ChunkLocation::ENCODED_LEN);
        }
    }
}
