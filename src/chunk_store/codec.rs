//! Compression and verification of chunk payloads.

use std::cell::RefCell;

use super::ChunkStoreError;
use crate::format::pack::{Codec, FRAME_HEADER_LEN, FrameHeader};
use crate::id::ChunkId;

/// zstd level 1: on mixed data it compresses several hundred MB/s per core, so the write path
/// stays disk-bound, and on incompressible data it gives up quickly.
const ZSTD_LEVEL: i32 = 1;

thread_local! {
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// The zstd encoding of `data` if it is smaller than `data`, else `None`.
pub fn compress(data: &[u8]) -> Option<Vec<u8>> {
    // Worth storing compressed only if it saves at least 1/32: decompressing costs time on
    // every read.
    let limit = data.len() - data.len() / 32;
    if limit == 0 {
        return None;
    }
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = zstd::bulk::Compressor::new(ZSTD_LEVEL).ok();
        }
        let compressor = slot.as_mut()?;
        let mut out = Vec::with_capacity(limit);
        // Fails when the output would not fit in `limit`: the chunk is stored raw.
        compressor.compress_to_buffer(data, &mut out).ok()?;
        Some(out)
    })
}

thread_local! {
    /// Where zstd chunks are decompressed, reused so reads allocate nothing.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A chunk as the store keeps it: how its payload is encoded, its decoded length, and the
/// payload itself (still compressed when `codec` says so).
#[derive(Clone, Copy)]
pub struct StoredChunk<'a> {
    pub codec: Codec,
    pub raw_len: u32,
    pub payload: &'a [u8],
}

/// A stored chunk whose payload was checked to decode to bytes hashing to its id: the only
/// form [`super::ChunkStore::put_verified`] takes, so nothing unchecked enters a store that way.
#[derive(Clone, Copy)]
pub struct VerifiedChunk<'a> {
    pub(super) id: ChunkId,
    pub(super) stored: StoredChunk<'a>,
}

impl<'a> VerifiedChunk<'a> {
    pub fn id(&self) -> ChunkId {
        self.id
    }

    /// The stored form that was checked.
    pub fn stored(&self) -> StoredChunk<'a> {
        self.stored
    }
}

/// Decodes the frame that the index says holds chunk `id`, verifies it, and hands its bytes to
/// `use_data`. Nothing is handed over unless the bytes hash to `id`.
pub fn with_verified_frame<T>(
    id: ChunkId,
    frame: &[u8],
    use_data: impl FnOnce(&[u8]) -> T,
) -> Result<T, ChunkStoreError> {
    verify_frame(id, frame, |_, data| use_data(data))
}

/// Verifies the frame of chunk `id` as [`with_verified_frame`] does, and hands over its
/// payload as stored, so that a copy elsewhere need not compress it again.
pub fn with_verified_stored<T>(
    id: ChunkId,
    frame: &[u8],
    use_stored: impl FnOnce(StoredChunk<'_>) -> T,
) -> Result<T, ChunkStoreError> {
    verify_frame(id, frame, |stored, _| use_stored(stored))
}

/// Checks that `stored` (from elsewhere: a vault) decodes to bytes hashing to `id`; only then
/// hands over the stored form, to be kept as it is without compressing it again, and the bytes.
pub fn verify_stored<T>(
    id: ChunkId,
    stored: StoredChunk<'_>,
    use_both: impl FnOnce(VerifiedChunk<'_>, &[u8]) -> T,
) -> Result<T, ChunkStoreError> {
    decode_verified(id, stored, |data| {
        use_both(VerifiedChunk { id, stored }, data)
    })
}

/// [`verify_stored`] for a whole frame as a pack holds it, read from elsewhere than this
/// store's packs (a vault keeps copies of a tiered store's packs): its header must name `id`.
pub fn verify_frame_copy<T>(
    id: ChunkId,
    frame: &[u8],
    use_both: impl FnOnce(VerifiedChunk<'_>, &[u8]) -> T,
) -> Result<T, ChunkStoreError> {
    verify_frame(id, frame, |stored, data| {
        use_both(VerifiedChunk { id, stored }, data)
    })
}

/// Checks the frame's header, decodes its payload and hashes it; only then hands both the
/// stored form and the decoded bytes to `use_both`.
fn verify_frame<T>(
    id: ChunkId,
    frame: &[u8],
    use_both: impl FnOnce(StoredChunk<'_>, &[u8]) -> T,
) -> Result<T, ChunkStoreError> {
    let corrupt = |reason: String| ChunkStoreError::Corrupt { id, reason };
    let header =
        FrameHeader::decode(frame).map_err(|e| corrupt(format!("bad frame header: {e}")))?;
    if header.chunk_id != id {
        return Err(corrupt(format!(
            "the index points at a frame holding chunk {}",
            header.chunk_id
        )));
    }
    let payload = frame
        .get(FRAME_HEADER_LEN..)
        .filter(|p| p.len() == header.stored_len as usize)
        .ok_or_else(|| corrupt("frame length disagrees with its header".into()))?;
    let stored = StoredChunk {
        codec: header.codec,
        raw_len: header.raw_len,
        payload,
    };
    decode_verified(id, stored, |data| use_both(stored, data))
}

/// Decodes `stored` and hashes the bytes; only if they are chunk `id` hands them to `use_data`.
fn decode_verified<T>(
    id: ChunkId,
    stored: StoredChunk<'_>,
    use_data: impl FnOnce(&[u8]) -> T,
) -> Result<T, ChunkStoreError> {
    let corrupt = |reason: String| ChunkStoreError::Corrupt { id, reason };
    let verify = |data: &[u8]| {
        if data.len() != stored.raw_len as usize {
            Err(corrupt("decoded length disagrees with the header".into()))
        } else if ChunkId::of(data) != id {
            Err(corrupt("content does not match its hash".into()))
        } else {
            Ok(())
        }
    };
    match stored.codec {
        Codec::Raw => {
            verify(stored.payload)?;
            Ok(use_data(stored.payload))
        }
        Codec::Zstd => SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            scratch.clear();
            scratch.reserve(stored.raw_len as usize);
            DECOMPRESSOR.with(|cell| {
                let mut slot = cell.borrow_mut();
                if slot.is_none() {
                    *slot = Some(
                        zstd::bulk::Decompressor::new()
                            .map_err(|e| corrupt(format!("zstd init: {e}")))?,
                    );
                }
                let decompressor = slot.as_mut().expect("just initialised");
                decompressor
                    .decompress_to_buffer(stored.payload, &mut *scratch)
                    .map_err(|e| corrupt(format!("zstd: {e}")))
            })?;
            verify(&scratch)?;
            Ok(use_data(&scratch))
        }),
    }
}
