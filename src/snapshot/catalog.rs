//! The snapshot catalog in the metadata database.
//!
//! - `snapshots`: name (UTF-8) → [`SnapshotRecord`] bytes (`format::catalog`).
//! - `snapshot_counters`: `"next_number"` → u64, so numbers are never reused.

use std::collections::BTreeMap;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::format::catalog::SnapshotRecord;

const SNAPSHOTS: TableDefinition<&str, &[u8]> = TableDefinition::new("snapshots");
const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("snapshot_counters");
const NEXT_NUMBER: &str = "next_number";

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("snapshot catalog: {0}")]
    Db(redb::Error),
    #[error("snapshot catalog entry {name:?} is damaged: {reason}")]
    Damaged { name: String, reason: String },
}

impl<E: Into<redb::Error>> From<E> for CatalogError {
    fn from(err: E) -> Self {
        CatalogError::Db(err.into())
    }
}

/// Every snapshot by name, and the next free number.
pub fn load(db: &Database) -> Result<(BTreeMap<String, SnapshotRecord>, u64), CatalogError> {
    let txn = db.begin_read()?;
    let mut out = BTreeMap::new();
    match txn.open_table(SNAPSHOTS) {
        Ok(table) => {
            for entry in table.iter()? {
                let (name, bytes) = entry?;
                let name = name.value().to_owned();
                let record =
                    SnapshotRecord::decode(bytes.value()).map_err(|e| CatalogError::Damaged {
                        name: name.clone(),
                        reason: e.to_string(),
                    })?;
                out.insert(name, record);
            }
        }
        Err(redb::TableError::TableDoesNotExist(_)) => {}
        Err(err) => return Err(err.into()),
    }
    let next = match txn.open_table(COUNTERS) {
        Ok(table) => table.get(NEXT_NUMBER)?.map_or(1, |v| v.value()),
        Err(redb::TableError::TableDoesNotExist(_)) => 1,
        Err(err) => return Err(err.into()),
    };
    Ok((out, next))
}

/// Adds (`Some`) or removes (`None`) a snapshot, durably.
pub fn store(
    db: &Database,
    name: &str,
    record: Option<&SnapshotRecord>,
    next_number: u64,
) -> Result<(), CatalogError> {
    let txn = db.begin_write()?;
    {
        let mut table = txn.open_table(SNAPSHOTS)?;
        match record {
            Some(record) => {
                table.insert(name, record.encode().as_slice())?;
            }
            None => {
                table.remove(name)?;
            }
        }
        txn.open_table(COUNTERS)?.insert(NEXT_NUMBER, next_number)?;
    }
    txn.commit()?;
    Ok(())
}
