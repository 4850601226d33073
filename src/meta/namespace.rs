//! Reading the namespace tables on demand: one inode, one directory's entries, the entries that
//! name an inode. The live share (`live::namespace`) loads what the kernel asks for through
//! these, so that mounting reads a few records whatever the size of the share.
//!
//! Two tables exist for this (store format 4):
//! - `names`: (child inode, directory inode, name bytes) → (), the `dirents` table turned
//!   around. Kept by every commit (`MetaStore::stage`) in the same transaction as `dirents`,
//!   so that the two always hold the same entries. It gives a directory's parent and every
//!   directory holding a hard link, by inode number alone.
//! - `orphans`: inode → (), every inode committed with `nlink == 0` (a file unlinked while
//!   open) and not yet removed: after a crash these are purged at mount without a scan.
//!
//! A store from before them is given them by [`ensure_tables`], in one transaction, guided by
//! the `namespace_tables` counter: a crash during it leaves the store as it was, and the next
//! open does it again.

use std::collections::BTreeMap;

use redb::{
    Database, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable,
    ReadableTableMetadata, TableDefinition,
};

use super::{
    BLOCKS, COUNTERS, DIRENTS, FROZEN, INODES, MetaError, MetaStore, NEXT_INODE, XATTRS, XattrMap,
    read_blocks,
};
use crate::format::inode::InodeRecord;
use crate::id::{ChunkId, InodeNo};

pub(super) const NAMES: TableDefinition<(u64, u64, &[u8]), ()> = TableDefinition::new("names");
pub(super) const ORPHANS: TableDefinition<u64, ()> = TableDefinition::new("orphans");
/// Present (value 1) once `names` and `orphans` are complete.
pub(super) const NAMESPACE_TABLES: &str = "namespace_tables";

pub(super) fn copy_tables(
    from: &redb::ReadTransaction,
    to: &redb::WriteTransaction,
) -> Result<(), redb::Error> {
    crate::storage::table_copy::copy_table(from, to, NAMES)?;
    crate::storage::table_copy::copy_table(from, to, ORPHANS)
}

/// What a mount needs before the first request: no more than a few records and the orphans.
pub struct MountState {
    pub next_inode: u64,
    /// Inodes committed with no name left (a crash while they were open): to be purged.
    pub orphans: Vec<InodeNo>,
    /// How many inodes the share has (for statfs).
    pub inode_count: u64,
}

/// A consistent view of the namespace tables (one read transaction).
pub struct NamespaceReader {
    inodes: ReadOnlyTable<u64, &'static [u8]>,
    dirents: ReadOnlyTable<(u64, &'static [u8]), u64>,
    names: ReadOnlyTable<(u64, u64, &'static [u8]), ()>,
    xattrs: ReadOnlyTable<(u64, &'static [u8]), &'static [u8]>,
    /// Absent in a store that has never been frozen.
    frozen: Option<ReadOnlyTable<u64, &'static [u8; 32]>>,
}

impl NamespaceReader {
    /// The committed record of `ino`, if it exists.
    pub fn inode(&self, ino: InodeNo) -> Result<Option<InodeRecord>, MetaError> {
        let Some(bytes) = self.inodes.get(ino.0)? else {
            return Ok(None);
        };
        InodeRecord::decode(bytes.value())
            .map(Some)
            .map_err(|source| MetaError::Damaged { ino, source })
    }

    /// The extended attributes of `ino`.
    pub fn xattrs(&self, ino: InodeNo) -> Result<XattrMap, MetaError> {
        let mut out = XattrMap::new();
        for entry in self.xattrs.range((ino.0, &[][..])..(ino.0 + 1, &[][..]))? {
            let (key, value) = entry?;
            out.insert(key.value().1.to_vec(), value.value().to_vec());
        }
        Ok(out)
    }

    /// The snapshot object `ino` froze to last, if it has not changed since.
    pub fn frozen(&self, ino: InodeNo) -> Result<Option<ChunkId>, MetaError> {
        let Some(table) = &self.frozen else {
            return Ok(None);
        };
        Ok(table.get(ino.0)?.map(|id| ChunkId(*id.value())))
    }

    /// The entries of directory `dir`, in name order.
    pub fn entries(&self, dir: InodeNo) -> Result<Vec<(Vec<u8>, InodeNo)>, MetaError> {
        let mut out = Vec::new();
        for entry in self.dirents.range((dir.0, &[][..])..(dir.0 + 1, &[][..]))? {
            let (key, child) = entry?;
            out.push((key.value().1.to_vec(), InodeNo(child.value())));
        }
        Ok(out)
    }

    /// The inode `name` names in directory `dir`, if the directory has that entry.
    pub fn entry(&self, dir: InodeNo, name: &[u8]) -> Result<Option<InodeNo>, MetaError> {
        Ok(self
            .dirents
            .get((dir.0, name))?
            .map(|child| InodeNo(child.value())))
    }

    /// Every entry naming `ino`: (directory, name), one per entry.
    pub fn names_of(&self, ino: InodeNo) -> Result<Vec<(InodeNo, Vec<u8>)>, MetaError> {
        let mut out = Vec::new();
        for entry in self
            .names
            .range((ino.0, 0, &[][..])..(ino.0 + 1, 0, &[][..]))?
        {
            let (key, _) = entry?;
            let (_, dir, name) = key.value();
            out.push((InodeNo(dir), name.to_vec()));
        }
        Ok(out)
    }
}

/// The namespace tables and the block maps as one transaction saw them: what a freeze needs
/// to encode a subtree that is not in memory, in its own time, as it was at the freeze's
/// capture (see `live::freeze`). Holding it keeps the database from reusing the pages it reads.
pub struct CommittedTree {
    pub namespace: NamespaceReader,
    blocks: ReadOnlyTable<(u64, u64), &'static [u8; 32]>,
}

impl CommittedTree {
    /// The committed block map of file `ino`.
    pub fn blocks(&self, ino: InodeNo) -> Result<BTreeMap<u64, ChunkId>, MetaError> {
        read_blocks(&self.blocks, ino)
    }
}

impl MetaStore {
    /// A consistent view of the namespace tables as last committed.
    pub fn read_namespace(&self) -> Result<NamespaceReader, MetaError> {
        namespace_reader(&self.db.begin_read()?)
    }

    /// A consistent view of the namespace tables and the block maps as last committed.
    pub fn read_committed_tree(&self) -> Result<CommittedTree, MetaError> {
        let txn = self.db.begin_read()?;
        Ok(CommittedTree {
            namespace: namespace_reader(&txn)?,
            blocks: txn.open_table(BLOCKS)?,
        })
    }

    /// What a mount reads: counters and orphans, never the namespace itself.
    pub fn mount_state(&self) -> Result<MountState, MetaError> {
        let txn = self.db.begin_read()?;
        let next_inode = txn
            .open_table(COUNTERS)?
            .get(NEXT_INODE)?
            .map(|v| v.value())
            .unwrap_or(InodeNo::ROOT.0 + 1);
        let mut orphans = Vec::new();
        for entry in txn.open_table(ORPHANS)?.iter()? {
            orphans.push(InodeNo(entry?.0.value()));
        }
        let inode_count = txn.open_table(INODES)?.len()?;
        Ok(MountState {
            next_inode,
            orphans,
            inode_count,
        })
    }

    /// Up to `limit` persisted frozen objects, by inode, of the inodes numbered above `after`
    /// (from the first with `None`), in inode order: the objects a later freeze may reuse for
    /// inodes not in memory (see `LiveFs::for_each_frozen_object`). A batch at a time, so that
    /// a walk over them holds neither the whole table nor a transaction.
    pub fn frozen_ids_after(
        &self,
        after: Option<InodeNo>,
        limit: usize,
    ) -> Result<Vec<(InodeNo, ChunkId)>, MetaError> {
        let txn = self.db.begin_read()?;
        let table = match txn.open_table(FROZEN) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(err) => return Err(err.into()),
        };
        let rows = match after {
            Some(InodeNo(ino)) if ino == u64::MAX => return Ok(Vec::new()),
            Some(InodeNo(ino)) => table.range(ino + 1..)?,
            None => table.range(0..)?,
        };
        let mut out = Vec::new();
        for entry in rows.take(limit) {
            let (ino, id) = entry?;
            out.push((InodeNo(ino.value()), ChunkId(*id.value())));
        }
        Ok(out)
    }
}

fn namespace_reader(txn: &ReadTransaction) -> Result<NamespaceReader, MetaError> {
    let frozen = match txn.open_table(FROZEN) {
        Ok(table) => Some(table),
        Err(redb::TableError::TableDoesNotExist(_)) => None,
        Err(err) => return Err(err.into()),
    };
    Ok(NamespaceReader {
        inodes: txn.open_table(INODES)?,
        dirents: txn.open_table(DIRENTS)?,
        names: txn.open_table(NAMES)?,
        xattrs: txn.open_table(XATTRS)?,
        frozen,
    })
}

/// Gives a store from before format 4 its `names` and `orphans` tables, in one transaction,
/// unless it has them. It also empties `frozen`: format 3 removed an entry only for a changed
/// inode and the directories holding it, and left the directories further up to a scan of the
/// whole table at mount; format 4 removes the whole chain up to the root, because a directory
/// not loaded is trusted by its own entry alone. The first snapshot after the upgrade then
/// encodes the share once. Returns whether it built them.
pub fn ensure_tables(db: &Database) -> Result<bool, MetaError> {
    {
        let txn = db.begin_read()?;
        let done = match txn.open_table(COUNTERS) {
            Ok(table) => table.get(NAMESPACE_TABLES)?.is_some(),
            Err(redb::TableError::TableDoesNotExist(_)) => false,
            Err(err) => return Err(err.into()),
        };
        if done {
            return Ok(false);
        }
    }
    let mut txn = db.begin_write()?;
    txn.set_durability(redb::Durability::Immediate)
        .map_err(|e| MetaError::Db(redb::Error::from(e)))?;
    {
        let dirents = txn.open_table(DIRENTS)?;
        let mut names = txn.open_table(NAMES)?;
        names.retain(|_, ()| false)?;
        for entry in dirents.iter()? {
            let (key, child) = entry?;
            let (dir, name) = key.value();
            names.insert((child.value(), dir, name), ())?;
        }
        let inodes = txn.open_table(INODES)?;
        let mut orphans = txn.open_table(ORPHANS)?;
        orphans.retain(|_, ()| false)?;
        for entry in inodes.iter()? {
            let (ino, bytes) = entry?;
            let ino = InodeNo(ino.value());
            let record = InodeRecord::decode(bytes.value())
                .map_err(|source| MetaError::Damaged { ino, source })?;
            if ino != InodeNo::ROOT && record.nlink == 0 {
                orphans.insert(ino.0, ())?;
            }
        }
        txn.open_table(FROZEN)?.retain(|_, _| false)?;
        txn.open_table(COUNTERS)?.insert(NAMESPACE_TABLES, 1)?;
    }
    txn.commit()?;
    Ok(true)
}

/// Creates the tables in a new store (inside its creating transaction).
pub(super) fn create_tables(txn: &redb::WriteTransaction) -> Result<(), MetaError> {
    txn.open_table(NAMES)?;
    txn.open_table(ORPHANS)?;
    txn.open_table(FROZEN)?;
    txn.open_table(COUNTERS)?.insert(NAMESPACE_TABLES, 1)?;
    Ok(())
}
