//! What the tier knows of itself, in the metadata database:
//! - `tier_packs`: pack number → (length uploaded, epoch of the writer that uploaded it). A pack
//!   listed here is safe in the object store and may be evicted from the local disk.
//! - `tier_state`: `epoch` → this store's writer epoch (see `layout`); `lease` → the generation
//!   of the share's writer lease this store took (see `lease`), absent until it took one.
//! - `tier_retired`: pack number → (epoch, sequence of the first checkpoint that does not name
//!   it): an uploaded pack gc dropped, whose object is deleted once no kept checkpoint names it.
//!   Its number stays taken until then, so no new pack replaces the object meanwhile.
//!
//! A checkpoint carries `tier_packs` for exactly the packs it names (all uploaded before it was
//! published) and no `tier_state`: an attached store draws its own epoch.

use std::collections::HashMap;

use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition};

use crate::id::PackId;
use crate::storage::open_if_exists;

const PACKS: TableDefinition<u32, (u64, u64)> = TableDefinition::new("tier_packs");
const RETIRED: TableDefinition<u32, (u64, u64)> = TableDefinition::new("tier_retired");
const STATE: TableDefinition<&str, u64> = TableDefinition::new("tier_state");
const EPOCH: &str = "epoch";
const LEASE: &str = "lease";

/// An uploaded pack: how many bytes the object holds, and under which epoch's prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Uploaded {
    pub len: u64,
    pub epoch: u64,
}

/// Every row of `table` (one of the pack-keyed tables of pairs here) in `txn`'s view, each pair
/// made into a `T`.
fn read_packs<T>(
    txn: &ReadTransaction,
    table: TableDefinition<u32, (u64, u64)>,
    make: impl Fn(u64, u64) -> T,
) -> Result<HashMap<PackId, T>, redb::Error> {
    let Some(table) = open_if_exists(txn, table)? else {
        return Ok(HashMap::new());
    };
    let mut out = HashMap::new();
    for row in table.iter()? {
        let (id, value) = row?;
        let (a, b) = value.value();
        out.insert(PackId(id.value()), make(a, b));
    }
    Ok(out)
}

/// Every pack recorded as uploaded in `txn`'s view.
pub fn read(txn: &ReadTransaction) -> Result<HashMap<PackId, Uploaded>, redb::Error> {
    read_packs(txn, PACKS, |len, epoch| Uploaded { len, epoch })
}

pub fn all(db: &Database) -> Result<HashMap<PackId, Uploaded>, redb::Error> {
    read(&db.begin_read()?)
}

/// A pack gc dropped: under which epoch its object is, and the sequence number of the first
/// checkpoint that no longer names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retired {
    pub epoch: u64,
    pub since: u64,
}

/// Every retired pack whose object is not deleted yet.
pub fn retired(db: &Database) -> Result<HashMap<PackId, Retired>, redb::Error> {
    read_packs(&db.begin_read()?, RETIRED, |epoch, since| Retired {
        epoch,
        since,
    })
}

/// Moves packs from the uploaded to the retired ones, in one durable transaction.
pub fn retire(db: &Database, packs: &[(PackId, Retired)]) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    {
        let mut uploaded = txn.open_table(PACKS)?;
        let mut retired = txn.open_table(RETIRED)?;
        for (id, pack) in packs {
            uploaded.remove(id.0)?;
            retired.insert(id.0, (pack.epoch, pack.since))?;
        }
    }
    txn.commit()?;
    Ok(())
}

/// Forgets a retired pack whose object was deleted, durably.
pub fn forget_retired(db: &Database, id: PackId) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    txn.open_table(RETIRED)?.remove(id.0)?;
    txn.commit()?;
    Ok(())
}

/// Records packs as uploaded, durably.
pub fn record(db: &Database, packs: &[(PackId, Uploaded)]) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    record_in(&txn, packs)?;
    txn.commit()?;
    Ok(())
}

pub fn record_in(
    txn: &redb::WriteTransaction,
    packs: &[(PackId, Uploaded)],
) -> Result<(), redb::Error> {
    let mut table = txn.open_table(PACKS)?;
    for (id, up) in packs {
        table.insert(id.0, (up.len, up.epoch))?;
    }
    Ok(())
}

fn state(db: &Database, name: &str) -> Result<Option<u64>, redb::Error> {
    match open_if_exists(&db.begin_read()?, STATE)? {
        Some(table) => Ok(table.get(name)?.map(|value| value.value())),
        None => Ok(None),
    }
}

fn set_state(db: &Database, name: &str, value: u64) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    txn.open_table(STATE)?.insert(name, value)?;
    txn.commit()?;
    Ok(())
}

/// This store's writer epoch, drawn the first time it is asked for.
pub fn epoch(db: &Database) -> Result<u64, redb::Error> {
    match state(db, EPOCH)? {
        Some(epoch) => Ok(epoch),
        None => set_epoch(db, new_epoch()?),
    }
}

/// The lease generation this store took, if it took one.
pub fn lease(db: &Database) -> Result<Option<u64>, redb::Error> {
    state(db, LEASE)
}

/// Records the lease generation this store took, durably.
pub fn set_lease(db: &Database, generation: u64) -> Result<(), redb::Error> {
    set_state(db, LEASE, generation)
}

/// A new random writer epoch.
pub fn new_epoch() -> Result<u64, redb::Error> {
    let mut bytes = [0u8; 8];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| redb::Error::Io(std::io::Error::other(e.to_string())))?;
    Ok(u64::from_le_bytes(bytes))
}

/// Sets a new writer epoch (an attached store draws its own), durably; returns it.
pub fn set_epoch(db: &Database, epoch: u64) -> Result<u64, redb::Error> {
    set_state(db, EPOCH, epoch)?;
    Ok(epoch)
}
