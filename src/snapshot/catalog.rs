//! The snapshot catalog in the metadata database.
//!
//! - `snapshots`: name (UTF-8) → [`SnapshotRecord`] bytes (`format::catalog`): the snapshots
//!   that exist.
//! - `deleted_snapshots`: number → (name, record bytes): soft-deleted snapshots, recoverable
//!   until their `purge_at`. Keyed by number, since a name may be deleted more than once.
//! - `snapshot_counters`: `"next_number"` → u64, so numbers are never reused.

use std::collections::BTreeMap;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::format::catalog::SnapshotRecord;
use crate::meta::accounting::{AccountingError, Ledger};

const SNAPSHOTS: TableDefinition<&str, &[u8]> = TableDefinition::new("snapshots");
const DELETED: TableDefinition<u64, (&str, &[u8])> = TableDefinition::new("deleted_snapshots");
const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("snapshot_counters");
const NEXT_NUMBER: &str = "next_number";

/// Copies the catalog's tables (for a checkpoint).
pub fn copy_tables(
    from: &redb::ReadTransaction,
    to: &redb::WriteTransaction,
) -> Result<(), redb::Error> {
    use crate::storage::table_copy::copy_table;
    copy_table(from, to, SNAPSHOTS)?;
    copy_table(from, to, DELETED)?;
    copy_table(from, to, COUNTERS)
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("snapshot catalog: {0}")]
    Db(redb::Error),
    #[error("snapshot catalog entry {name:?} is damaged: {reason}")]
    Damaged { name: String, reason: String },
    #[error(transparent)]
    Accounting(AccountingError),
}

impl<E: Into<redb::Error>> From<E> for CatalogError {
    fn from(err: E) -> Self {
        CatalogError::Db(err.into())
    }
}

/// The whole catalog, as loaded.
pub struct Loaded {
    pub active: BTreeMap<String, SnapshotRecord>,
    /// Soft-deleted snapshots by number.
    pub deleted: BTreeMap<u64, (String, SnapshotRecord)>,
    pub next_number: u64,
}

/// One change to the catalog; a list of them is applied in one transaction.
pub enum Change<'a> {
    Put(&'a str, &'a SnapshotRecord),
    Remove(&'a str),
    PutDeleted(&'a str, &'a SnapshotRecord),
    RemoveDeleted(u64),
}

fn decode(name: &str, bytes: &[u8]) -> Result<SnapshotRecord, CatalogError> {
    SnapshotRecord::decode(bytes).map_err(|e| CatalogError::Damaged {
        name: name.to_owned(),
        reason: e.to_string(),
    })
}

pub fn load(db: &Database) -> Result<Loaded, CatalogError> {
    let txn = db.begin_read()?;
    let mut loaded = Loaded {
        active: BTreeMap::new(),
        deleted: BTreeMap::new(),
        next_number: 1,
    };
    match txn.open_table(SNAPSHOTS) {
        Ok(table) => {
            for entry in table.iter()? {
                let (name, bytes) = entry?;
                let name = name.value().to_owned();
                let record = decode(&name, bytes.value())?;
                loaded.active.insert(name, record);
            }
        }
        Err(redb::TableError::TableDoesNotExist(_)) => {}
        Err(err) => return Err(err.into()),
    }
    match txn.open_table(DELETED) {
        Ok(table) => {
            for entry in table.iter()? {
                let (number, value) = entry?;
                let (name, bytes) = value.value();
                let record = decode(name, bytes)?;
                loaded
                    .deleted
                    .insert(number.value(), (name.to_owned(), record));
            }
        }
        Err(redb::TableError::TableDoesNotExist(_)) => {}
        Err(err) => return Err(err.into()),
    }
    match txn.open_table(COUNTERS) {
        Ok(table) => {
            if let Some(next) = table.get(NEXT_NUMBER)? {
                loaded.next_number = next.value();
            }
        }
        Err(redb::TableError::TableDoesNotExist(_)) => {}
        Err(err) => return Err(err.into()),
    }
    Ok(loaded)
}

/// Applies `changes` and records `next_number`, durably, in one transaction, which also
/// carries what `account` makes of them in the space accounting (skipped while it is stale).
pub fn apply(
    db: &Database,
    changes: &[Change<'_>],
    next_number: u64,
    account: impl FnOnce(&mut Ledger<'_>) -> Result<(), AccountingError>,
) -> Result<(), CatalogError> {
    let txn = db.begin_write()?;
    {
        let mut active = txn.open_table(SNAPSHOTS)?;
        let mut deleted = txn.open_table(DELETED)?;
        for change in changes {
            match change {
                Change::Put(name, record) => {
                    active.insert(*name, record.encode().as_slice())?;
                }
                Change::Remove(name) => {
                    active.remove(*name)?;
                }
                Change::PutDeleted(name, record) => {
                    deleted.insert(record.number, (*name, record.encode().as_slice()))?;
                }
                Change::RemoveDeleted(number) => {
                    deleted.remove(*number)?;
                }
            }
        }
        txn.open_table(COUNTERS)?.insert(NEXT_NUMBER, next_number)?;
    }
    let accounted = || -> Result<(), AccountingError> {
        if let Some(mut ledger) = Ledger::open(&txn)? {
            account(&mut ledger)?;
            ledger.finish()?;
        }
        Ok(())
    };
    accounted().map_err(CatalogError::Accounting)?;
    txn.commit()?;
    Ok(())
}
