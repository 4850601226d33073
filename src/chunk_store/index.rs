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

const CHUNKS: TableDefinition<&[u8; 32], &[u8; ChunkLocation::ENCODED_LEN]> =
    TableDefinition::new("chunks");
const PACKS: TableDefinition<u32, u64> = TableDefinition::new("packs");

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

pub fn insert(
    txn: &WriteTransaction,
    entries: &[(ChunkId, ChunkLocation)],
) -> Result<(), redb::Error> {
    let mut table = txn.open_table(CHUNKS)?;
    for (id, location) in entries {
        table.insert(&id.0, &location.encode())?;
    }
    Ok(())
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
    let txn = db.begin_read()?;
    let table = txn.open_table(PACKS)?;
    let mut out = HashMap::new();
    for entry in table.iter()? {
        let (id, len) = entry?;
        out.insert(PackId(id.value()), len.value());
    }
    Ok(out)
}

pub fn all(txn: &ReadTransaction) -> Result<Vec<(ChunkId, ChunkLocation)>, ChunkStoreError> {
    let table = txn.open_table(CHUNKS).map_err(redb::Error::from)?;
    let mut out = Vec::new();
    for entry in table.iter().map_err(redb::Error::from)? {
        let (id, value) = entry.map_err(redb::Error::from)?;
        let id = ChunkId(*id.value());
        let location =
            ChunkLocation::decode(value.value()).map_err(|e| ChunkStoreError::Corrupt {
                id,
                reason: format!("index entry: {e}"),
            })?;
        out.push((id, location));
    }
    Ok(out)
}

pub fn remove(txn: &WriteTransaction, ids: &[ChunkId]) -> Result<(), redb::Error> {
    let mut table = txn.open_table(CHUNKS)?;
    for id in ids {
        table.remove(&id.0)?;
    }
    Ok(())
}

pub fn forget_pack(txn: &WriteTransaction, id: PackId) -> Result<(), redb::Error> {
    txn.open_table(PACKS)?.remove(id.0)?;
    Ok(())
}
