//! The chunk index and pack table, kept in the metadata database so that they commit atomically
//! with the block maps that reference them.
//!
//! - `chunks`: chunk id (32 bytes) → [`ChunkLocation`] (16 bytes, see `format::location`).
//! - `packs`: pack number → committed length in bytes. A pack absent here was never committed.

use std::collections::HashMap;

use redb::{
    Database, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction,
};

use super::ChunkStoreError;
use crate::format::location::ChunkLocation;
use crate::id::{ChunkId, PackId};

pub(crate) const CHUNKS: TableDefinition<&[u8; 32], &[u8; ChunkLocation::ENCODED_LEN]> =
    TableDefinition::new("chunks");
const PACKS: TableDefinition<u32, u64> = TableDefinition::new("packs");

/// Copies the chunk index and the pack table (for a checkpoint).
pub fn copy_tables(from: &ReadTransaction, to: &WriteTransaction) -> Result<(), redb::Error> {
    crate::storage::table_copy::copy_table(from, to, CHUNKS)?;
    crate::storage::table_copy::copy_table(from, to, PACKS)
}

/// Every pack the committed state of `txn` names, with its committed length.
pub fn pack_lengths(txn: &ReadTransaction) -> Result<Vec<(PackId, u64)>, redb::Error> {
    let Some(table) = crate::storage::open_if_exists(txn, PACKS)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for entry in table.iter()? {
        let (id, len) = entry?;
        out.push((PackId(id.value()), len.value()));
    }
    Ok(out)
}

pub fn create_tables(db: &Database) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    txn.open_table(CHUNKS)?;
    txn.open_table(PACKS)?;
    txn.commit()?;
    Ok(())
}

pub fn lookup(
    txn: &ReadTransaction,
    id: &ChunkId,
) -> Result<Option<ChunkLocation>, ChunkStoreError> {
    let table = txn.open_table(CHUNKS).map_err(redb::Error::from)?;
    let Some(value) = table.get(&id.0).map_err(redb::Error::from)? else {
        return Ok(None);
    };
    ChunkLocation::decode(value.value())
        .map(Some)
        .map_err(|e| ChunkStoreError::Corrupt {
            id: *id,
            reason: format!("index entry: {e}"),
        })
}

/// How an insert changed the index's stored bytes, for space accounting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoredChange {
    /// Frame bytes added, less those of the entries replaced.
    pub delta: i64,
    /// Some chunk already indexed got a frame of another length (a compaction that compressed
    /// it differently): accounting records sizes per chunk, so it must be rebuilt.
    pub resized: bool,
}

pub fn insert(
    txn: &WriteTransaction,
    entries: &[(ChunkId, ChunkLocation)],
) -> Result<StoredChange, redb::Error> {
    let mut table = txn.open_table(CHUNKS)?;
    let mut change = StoredChange::default();
    for (id, location) in entries {
        let old = table
            .insert(&id.0, &location.encode())?
            .and_then(|old| ChunkLocation::decode(old.value()).ok());
        change.delta += i64::from(location.frame_len);
        if let Some(old) = old {
            change.delta -= i64::from(old.frame_len);
            change.resized |= old.frame_len != location.frame_len;
        }
    }
    Ok(change)
}

pub fn record_pack_lengths(
    txn: &WriteTransaction,
    lengths: &[(PackId, u64)],
) -> Result<(), redb::Error> {
    let mut table = txn.open_table(PACKS)?;
    for (id, len) in lengths {
        table.insert(id.0, len)?;
    }
    Ok(())
}

pub fn committed_pack_lengths(db: &Database) -> Result<HashMap<PackId, u64>, redb::Error> {
    Ok(pack_lengths(&db.begin_read()?)?.into_iter().collect())
}

pub fn all(txn: &ReadTransaction) -> Result<Vec<(ChunkId, ChunkLocation)>, ChunkStoreError> {
    let mut out = Vec::new();
    CommittedIndex::of(txn)?.for_each(|id, location| {
        out.push((id, location));
        Ok::<_, ChunkStoreError>(())
    })?;
    Ok(out)
}

/// The index as a read transaction saw it, read through in the order of chunk ids without
/// holding it in memory.
pub struct CommittedIndex(
    redb::ReadOnlyTable<&'static [u8; 32], &'static [u8; ChunkLocation::ENCODED_LEN]>,
);

type Entries<'a> = redb::Range<'a, &'static [u8; 32], &'static [u8; ChunkLocation::ENCODED_LEN]>;

fn db(err: impl Into<redb::Error>) -> ChunkStoreError {
    ChunkStoreError::from(err.into())
}

impl CommittedIndex {
    pub fn of(txn: &ReadTransaction) -> Result<Self, ChunkStoreError> {
        Ok(CommittedIndex(txn.open_table(CHUNKS).map_err(db)?))
    }

    /// Calls `visit` with every entry.
    pub fn for_each<E: From<ChunkStoreError>>(
        &self,
        mut visit: impl FnMut(ChunkId, ChunkLocation) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut entries = self.0.iter().map_err(db)?;
        while let Some((id, location)) = next_entry(&mut entries)? {
            visit(id, location)?;
        }
        Ok(())
    }

    /// A reader that finds ids asked in ascending order, reading the index front to back.
    pub fn ascending(&self) -> Result<IndexCursor<'_>, ChunkStoreError> {
        Ok(IndexCursor {
            entries: Some(self.0.iter().map_err(db)?),
            next: None,
        })
    }
}

fn next_entry(
    entries: &mut Entries<'_>,
) -> Result<Option<(ChunkId, ChunkLocation)>, ChunkStoreError> {
    let Some(entry) = entries.next() else {
        return Ok(None);
    };
    let (id, value) = entry.map_err(db)?;
    let id = ChunkId(*id.value());
    let location = ChunkLocation::decode(value.value()).map_err(|e| ChunkStoreError::Corrupt {
        id,
        reason: format!("index entry: {e}"),
    })?;
    Ok(Some((id, location)))
}

/// Finds ids in a [`CommittedIndex`] asked in ascending order (see
/// [`CommittedIndex::ascending`]).
pub struct IndexCursor<'a> {
    entries: Option<Entries<'a>>,
    /// The first entry not yet passed, if read.
    next: Option<(ChunkId, ChunkLocation)>,
}

impl IndexCursor<'_> {
    /// Where `id` is, if indexed. Each id must be greater than the one asked before.
    pub fn find(&mut self, id: &ChunkId) -> Result<Option<ChunkLocation>, ChunkStoreError> {
        loop {
            match self.next {
                Some((next, location)) if next.0 >= id.0 => {
                    return Ok((next == *id).then_some(location));
                }
                _ => {
                    let Some(entries) = &mut self.entries else {
                        return Ok(None);
                    };
                    self.next = next_entry(entries)?;
                    if self.next.is_none() {
                        self.entries = None;
                        return Ok(None);
                    }
                }
            }
        }
    }
}

/// Removes `ids` from the index; returns those that were in it, with their frame lengths.
pub fn remove(txn: &WriteTransaction, ids: &[ChunkId]) -> Result<Vec<(ChunkId, u32)>, redb::Error> {
    let mut table = txn.open_table(CHUNKS)?;
    let mut removed = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(old) = table.remove(&id.0)? {
            // An undecodable entry counts as 0 bytes, as the rest of the index reads it.
            let len = ChunkLocation::decode(old.value()).map_or(0, |l| l.frame_len);
            removed.push((*id, len));
        }
    }
    Ok(removed)
}

pub fn forget_pack(txn: &WriteTransaction, id: PackId) -> Result<(), redb::Error> {
    txn.open_table(PACKS)?.remove(id.0)?;
    Ok(())
}
