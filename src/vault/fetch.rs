//! Fetches many objects of a vault into a chunk store at once, for a restore: located by the
//! index, sorted by pack and offset, and entries lying close together in a pack read with one
//! ranged get (what a restore of whole files finds: a backup writes a file's chunks one after
//! another). The reads are spread over the share's data workers, each unsealing, checking and
//! storing its entries in their stored form, so nothing is hashed or compressed twice.
//!
//! Memory is bounded by the workers times [`MAX_READ`]: each holds one read at a time.

use super::{Vault, VaultError, pack_key};
use crate::chunk_store::ChunkStore;
use crate::format::vault_index::PackSlice;
use crate::id::{ChunkId, VaultPackId};
use crate::live::DataWorkers;
use crate::progress::Progress;

/// The longest ranged read: long enough that a pack's worth of data costs a handful of
/// requests, short enough to start the next worker's read soon.
const MAX_READ: u64 = 8 << 20;
/// Entries at most this far apart are read together, the bytes between them discarded: one
/// request costs more than reading this much more (for S3, a round trip).
const MAX_GAP: u64 = 256 << 10;

/// One located entry.
#[derive(Clone, Copy)]
struct Located {
    pack: VaultPackId,
    slice: PackSlice,
    id: ChunkId,
}

impl Located {
    fn start(&self) -> u64 {
        u64::from(self.slice.offset)
    }

    fn end(&self) -> u64 {
        self.start() + u64::from(self.slice.len)
    }
}

/// Fetches the objects `ids` (each once; an id listed twice is fetched once) into `chunks`;
/// returns their bytes, uncompressed, and counts them into `progress` as they arrive.
pub(super) fn fetch_into(
    vault: &Vault,
    chunks: &ChunkStore,
    workers: &DataWorkers,
    ids: &[ChunkId],
    progress: &Progress,
) -> Result<u64, VaultError> {
    let mut located = ids
        .iter()
        .map(|id| {
            let (pack, slice) = vault.index.get(id).ok_or(VaultError::Missing(*id))?;
            Ok(Located {
                pack: *pack,
                slice: *slice,
                id: *id,
            })
        })
        .collect::<Result<Vec<_>, VaultError>>()?;
    located.sort_by_key(|entry| (entry.pack, entry.slice.offset));
    located.dedup_by_key(|entry| entry.id);
    let reads = plan_reads(&located);
    workers
        .map(&reads, |read| {
            let raw = fetch_read(vault, chunks, read)?;
            progress.add(raw);
            Ok(raw)
        })
        .into_iter()
        .sum()
}

/// Groups entries sorted by pack and offset into ranged reads.
fn plan_reads(located: &[Located]) -> Vec<&[Located]> {
    let mut reads = Vec::new();
    let mut first = 0;
    for i in 1..=located.len() {
        let joins = located.get(i).is_some_and(|next| {
            let read = &located[first];
            let last = &located[i - 1];
            next.pack == read.pack
                && next.start() >= last.end()
                && next.start() - last.end() <= MAX_GAP
                && next.end() - read.start() <= MAX_READ
        });
        if !joins {
            reads.push(&located[first..i]);
            first = i;
        }
    }
    reads
}

/// Reads one range and stores every entry in it.
fn fetch_read(vault: &Vault, chunks: &ChunkStore, read: &[Located]) -> Result<u64, VaultError> {
    let (Some(first), Some(last)) = (read.first(), read.last()) else {
        return Ok(0);
    };
    let start = first.start();
    let bytes = vault
        .backend
        .get_range(&pack_key(first.pack), start..last.end())?;
    let mut raw = 0u64;
    for entry in read {
        let at = (entry.start() - start) as usize;
        let sealed = bytes
            .get(at..at + entry.slice.len as usize)
            .ok_or_else(|| {
                VaultError::Damaged(format!("pack {}: shorter than its index says", entry.pack))
            })?;
        let len = vault.with_verified_entry(&entry.id, entry.pack, sealed, |chunk, data| {
            chunks.put_verified(chunk).map(|_| data.len() as u64)
        })??;
        raw += len;
    }
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(pack: u8, offset: u32, len: u32) -> Located {
        Located {
            pack: VaultPackId([pack; 16]),
            slice: PackSlice { offset, len },
            id: ChunkId::of(&[pack, offset as u8, len as u8]),
        }
    }

    fn lengths(reads: &[&[Located]]) -> Vec<usize> {
        reads.iter().map(|read| read.len()).collect()
    }

    #[test]
    fn close_entries_of_one_pack_are_read_together_and_nothing_else_is() {
        let gap = MAX_GAP as u32;
        let located = [
            entry(1, 0, 100),
            entry(1, 100, 100),
            entry(1, 200 + gap, 100),     // exactly the largest gap: joins
            entry(1, 301 + 2 * gap, 100), // one byte more: a new read
            entry(2, 0, 100),             // another pack: a new read
        ];
        assert_eq!(lengths(&plan_reads(&located)), [3, 1, 1]);
        assert!(plan_reads(&[]).is_empty());
    }

    #[test]
    fn a_read_never_grows_past_its_limit() {
        let len = (MAX_READ / 4) as u32;
        let located: Vec<Located> = (0..9).map(|i| entry(1, i * len, len)).collect();
        let reads = plan_reads(&located);
        assert_eq!(lengths(&reads), [4, 4, 1]);
        for read in reads {
            let span = read.last().unwrap().end() - read[0].start();
            assert!(span <= MAX_READ);
        }
    }
}
