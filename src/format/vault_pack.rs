//! Vault packs, `packs/<xx>/<pack id>`: many objects (file data chunks and snapshot tree
//! objects) in one blob, so a backup of many small files is a few large uploads. Each entry is
//! sealed on its own (see `vault::crypto`), so one object is read with one ranged GET and no
//! more of the pack is downloaded.
//!
//! ```text
//! pack   := "SVPK" | version u8 = 1 | pack_id [16] | sealed entry*
//! entry  := codec u8 (0 raw, 1 zstd) | raw_len u32 | payload       (before sealing)
//! ```
//! The pack header says nothing the pack's name does not already say. Entries are located by
//! the pack's index ([`super::vault_index`]), not by scanning: a sealed entry's length is not
//! visible without its key.

use super::DecodeError;
use super::cursor::Cursor;
use crate::id::VaultPackId;

const MAGIC: &[u8; 4] = b"SVPK";
const VERSION: u8 = 1;
/// Length of a pack's header; the first entry starts here.
pub const PACK_HEADER_LEN: usize = 21;
/// An entry holds one chunk or object part: at most the chunk store's limit.
pub const MAX_ENTRY_RAW_LEN: u32 = super::pack::MAX_CHUNK_LEN;

/// How an entry's payload is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryCodec {
    Raw,
    Zstd,
}

/// The header of a pack.
pub fn encode_header(pack: VaultPackId) -> Vec<u8> {
    let mut out = Vec::with_capacity(PACK_HEADER_LEN);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&pack.0);
    out
}

/// Checks a pack's header and returns its id.
pub fn decode_header(bytes: &[u8]) -> Result<VaultPackId, DecodeError> {
    let mut cur = Cursor::new(bytes);
    cur.header(MAGIC, VERSION)?;
    Ok(VaultPackId(cur.array()?))
}

/// An entry before sealing.
pub fn encode_entry(codec: EntryCodec, raw_len: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ENTRY_HEADER_LEN + payload.len());
    append_entry(&mut out, codec, raw_len, payload);
    out
}

/// Bytes an entry adds to its payload.
pub const ENTRY_HEADER_LEN: usize = 5;

/// Appends an entry before sealing to `out` (where it is then sealed in place).
pub fn append_entry(out: &mut Vec<u8>, codec: EntryCodec, raw_len: u32, payload: &[u8]) {
    out.push(match codec {
        EntryCodec::Raw => 0,
        EntryCodec::Zstd => 1,
    });
    out.extend_from_slice(&raw_len.to_le_bytes());
    out.extend_from_slice(payload);
}

/// An unsealed entry: its codec, its uncompressed length (bounded) and its payload.
pub fn decode_entry(bytes: &[u8]) -> Result<(EntryCodec, u32, &[u8]), DecodeError> {
    let mut cur = Cursor::new(bytes);
    let codec = match cur.u8()? {
        0 => EntryCodec::Raw,
        1 => EntryCodec::Zstd,
        other => {
            return Err(DecodeError::InvalidField {
                field: "codec",
                value: other.into(),
            });
        }
    };
    let raw_len = cur.u32()?;
    if raw_len > MAX_ENTRY_RAW_LEN {
        return Err(DecodeError::InvalidField {
            field: "raw_len",
            value: raw_len.into(),
        });
    }
    let payload = cur.take(bytes.len() - ENTRY_HEADER_LEN)?;
    if codec == EntryCodec::Raw && payload.len() as u64 != u64::from(raw_len) {
        return Err(DecodeError::InvalidField {
            field: "raw_len",
            value: raw_len.into(),
        });
    }
    Ok((codec, raw_len, payload))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn golden_header_and_entry() {
        let header = encode_header(VaultPackId([9; 16]));
        assert_eq!(header.len(), PACK_HEADER_LEN);
        assert_eq!(&header[..5], b"SVPK\x01");
        assert_eq!(decode_header(&header), Ok(VaultPackId([9; 16])));
        let entry = encode_entry(EntryCodec::Raw, 3, b"abc");
        assert_eq!(entry, b"\x00\x03\x00\x00\x00abc");
        assert_eq!(decode_entry(&entry), Ok((EntryCodec::Raw, 3, &b"abc"[..])));
        assert!(decode_entry(&entry[..7]).is_err(), "raw length mismatch");
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = decode_entry(&bytes);
            let _ = decode_header(&bytes);
        }
    }
}
