//! The metadata database: the live share's inodes, directory entries, block maps and extended
//! attributes in redb, which gives atomic, crash-safe commits (copy-on-write B-trees with a
//! checksummed commit slot). Everything here is one schema; the live filesystem decides *when*
//! to commit, this module only knows *how* to read and write the tables.
//!
//! Tables:
//! - `inodes`: inode number → [`InodeRecord`] bytes (`format::inode`).
//! - `dirents`: (directory inode, name bytes) → child inode.
//! - `blocks`: (file inode, block index) → chunk id. An absent block is a hole.
//! - `xattrs`: (inode, name bytes) → value bytes.
//! - `counters`: name → u64 (`next_inode`).
//! - `frozen`: inode number → the snapshot object it froze to last (`live::freeze`), for the
//!   files and directories unchanged since. Invariant: an inode changed by a commit loses its
//!   entry in that commit, and so does every directory above it (each directory holding it,
//!   and theirs, up to the root). So an entry is never older than what the database holds of
//!   its inode or of anything below it, even after a crash: a directory loaded on demand is
//!   trusted by its own entry alone.
//! - `names`, `orphans`: the namespace read by inode number, see [`namespace`].
//! - `chunks`, `packs`: the chunk index, owned by `chunk_store::index`.
//! - `usage_*`: incremental space accounting, owned by [`accounting`]. A commit updates the
//!   live references of the chunks its block-map changes name, in its own transaction.

pub mod accounting;
pub mod namespace;

use std::collections::{BTreeMap, HashMap};

use namespace::{NAMES, ORPHANS};
use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

use crate::chunk_store::index::StoredChange;
use crate::format::DecodeError;
use crate::format::inode::InodeRecord;
use crate::id::{ChunkId, InodeNo};
use crate::metadata_budget::MetadataBudget;

pub const META_FILE: &str = "meta.redb";

/// The extended attributes of one inode, by name.
pub type XattrMap = BTreeMap<Vec<u8>, Vec<u8>>;

const INODES: TableDefinition<u64, &[u8]> = TableDefinition::new("inodes");
const DIRENTS: TableDefinition<(u64, &[u8]), u64> = TableDefinition::new("dirents");
const BLOCKS: TableDefinition<(u64, u64), &[u8; 32]> = TableDefinition::new("blocks");
const XATTRS: TableDefinition<(u64, &[u8]), &[u8]> = TableDefinition::new("xattrs");
const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");
const FROZEN: TableDefinition<u64, &[u8; 32]> = TableDefinition::new("frozen");
const NEXT_INODE: &str = "next_inode";

/// The block map of file `ino` in `table`.
fn read_blocks(
    table: &impl ReadableTable<(u64, u64), &'static [u8; 32]>,
    ino: InodeNo,
) -> Result<BTreeMap<u64, ChunkId>, MetaError> {
    let mut out = BTreeMap::new();
    for entry in table.range((ino.0, 0)..=(ino.0, u64::MAX))? {
        let (key, id) = entry?;
        out.insert(key.value().1, ChunkId(*id.value()));
    }
    Ok(out)
}

/// Copies every table of the metadata (namespace, block maps, frozen objects, accounting) from
/// `from` into `to`: the metadata part of a checkpoint.
pub fn copy_tables(from: &redb::ReadTransaction, to: &WriteTransaction) -> Result<(), redb::Error> {
    use crate::storage::table_copy::copy_table;
    copy_table(from, to, INODES)?;
    copy_table(from, to, DIRENTS)?;
    copy_table(from, to, BLOCKS)?;
    copy_table(from, to, XATTRS)?;
    copy_table(from, to, COUNTERS)?;
    copy_table(from, to, FROZEN)?;
    namespace::copy_tables(from, to)?;
    accounting::copy_tables(from, to)
}

#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    // Not a `#[source]`: the text is already in this message, and error chains would print it
    // twice.
    #[error("metadata database: {0}")]
    Db(redb::Error),
    #[error("damaged metadata record for inode {ino}: {source}")]
    Damaged { ino: InodeNo, source: DecodeError },
    #[error("inconsistent namespace tables at inode {ino}: {what}")]
    Inconsistent { ino: InodeNo, what: &'static str },
    #[error(transparent)]
    Accounting(accounting::AccountingError),
}

crate::storage::from_redb_errors!(MetaError, MetaError::Db);

/// The block-map changes of one file since the last commit.
#[derive(Debug, Default)]
pub struct BlockChanges {
    /// Every block at or after this index was dropped (truncate) before `set` was applied.
    pub dropped_from: Option<u64>,
    /// Blocks that now hold a chunk (`Some`) or became holes (`None`).
    pub set: Vec<(u64, Option<ChunkId>)>,
}

/// One commit's worth of changes: applied in one transaction, so a crash sees all or none.
#[derive(Default)]
pub struct CommitBatch {
    pub inodes: Vec<(InodeNo, InodeRecord)>,
    pub removed_inodes: Vec<InodeNo>,
    pub dirents: Vec<(InodeNo, Vec<u8>, Option<InodeNo>)>,
    /// The complete xattr set of each inode whose xattrs changed.
    pub xattrs: Vec<(InodeNo, XattrMap)>,
    pub blocks: Vec<(InodeNo, BlockChanges)>,
    /// Objects inodes froze to since the last commit (applied first)...
    pub frozen: Vec<(InodeNo, ChunkId)>,
    /// ...and inodes whose frozen object this commit makes stale (applied after).
    pub thawed: Vec<InodeNo>,
    pub next_inode: u64,
}

impl CommitBatch {
    pub fn is_empty(&self) -> bool {
        self.inodes.is_empty()
            && self.removed_inodes.is_empty()
            && self.dirents.is_empty()
            && self.xattrs.is_empty()
            && self.blocks.is_empty()
            && self.frozen.is_empty()
            && self.thawed.is_empty()
    }
}

/// Every chunk id the committed block maps name (with repeats), read inside a write
/// transaction (so no commit changes them meanwhile).
pub fn block_chunks_in(txn: &WriteTransaction) -> Result<Vec<ChunkId>, MetaError> {
    let table = txn.open_table(BLOCKS)?;
    let mut out = Vec::new();
    for entry in table.iter()? {
        out.push(ChunkId(*entry?.1.value()));
    }
    Ok(out)
}

/// The metadata database of one store.
#[derive(Clone)]
pub struct MetaStore {
    db: Arc<Database>,
}

impl MetaStore {
    /// Creates the database of a new store, holding only the root directory.
    pub fn create(store_dir: &Path, root: &InodeRecord) -> Result<Self, MetaError> {
        let path = store_dir.join(META_FILE);
        let db = Database::builder()
            .set_cache_size(MetadataBudget::DEFAULT.database_cache())
            .create(&path)?;
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .map_err(|e| MetaError::Db(redb::Error::Io(e)))?;
        let txn = db.begin_write()?;
        txn.open_table(INODES)?
            .insert(InodeNo::ROOT.0, root.encode().as_slice())?;
        txn.open_table(DIRENTS)?;
        txn.open_table(BLOCKS)?;
        txn.open_table(XATTRS)?;
        txn.open_table(COUNTERS)?
            .insert(NEXT_INODE, InodeNo::ROOT.0 + 1)?;
        accounting::create_tables(&txn).map_err(MetaError::Accounting)?;
        namespace::create_tables(&txn)?;
        txn.commit()?;
        crate::chunk_store::index::create_tables(&db)?;
        Ok(MetaStore { db: Arc::new(db) })
    }

    /// Opens the database with a page cache of `cache_bytes` (redb's default, 1 GiB, would
    /// dominate the daemon's memory: see `metadata_budget`).
    pub fn open(store_dir: &Path, cache_bytes: usize) -> Result<Self, MetaError> {
        let warned = std::sync::atomic::AtomicBool::new(false);
        let db = Database::builder()
            .set_cache_size(cache_bytes)
            .set_repair_callback(move |session| {
                // redb walks the whole database when it was not closed cleanly: a mount then
                // takes time in proportion to the share.
                if !warned.swap(true, std::sync::atomic::Ordering::Relaxed) {
                    tracing::warn!(
                        progress = session.progress(),
                        "the metadata database was not closed cleanly; redb is checking it"
                    );
                }
            })
            .open(store_dir.join(META_FILE))?;
        Ok(MetaStore { db: Arc::new(db) })
    }

    pub fn database(&self) -> Arc<Database> {
        self.db.clone()
    }

    /// The committed block map of one file.
    pub fn load_blocks(&self, ino: InodeNo) -> Result<BTreeMap<u64, ChunkId>, MetaError> {
        read_blocks(&self.db.begin_read()?.open_table(BLOCKS)?, ino)
    }

    /// How many blocks the committed block map of `ino` holds (holes are absent).
    pub fn count_blocks(&self, ino: InodeNo) -> Result<u64, MetaError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(BLOCKS)?;
        let mut count = 0;
        for entry in table.range((ino.0, 0)..=(ino.0, u64::MAX))? {
            entry?;
            count += 1;
        }
        Ok(count)
    }

    /// Calls `visit` with every chunk id the committed block maps name (with repeats).
    pub fn for_each_block_chunk<E: From<MetaError>>(
        &self,
        mut visit: impl FnMut(ChunkId) -> Result<(), E>,
    ) -> Result<(), E> {
        let txn = self.db.begin_read().map_err(MetaError::from)?;
        let table = txn.open_table(BLOCKS).map_err(MetaError::from)?;
        for entry in table.iter().map_err(MetaError::from)? {
            visit(ChunkId(*entry.map_err(MetaError::from)?.1.value()))?;
        }
        Ok(())
    }

    /// Writes `batch` into `txn` (the caller commits, after syncing the packs), with the space
    /// accounting of its block-map changes and of `stored`, what the same transaction added to
    /// the chunk index.
    pub fn stage(
        &self,
        txn: &WriteTransaction,
        batch: &CommitBatch,
        stored: StoredChange,
    ) -> Result<(), MetaError> {
        // Net change of the block-map entries naming each chunk. redb's insert and remove
        // return the value they replace, so an overwrite costs no extra lookup.
        let mut live: HashMap<ChunkId, i64> = HashMap::new();
        let mut inodes = txn.open_table(INODES)?;
        let mut dirents = txn.open_table(DIRENTS)?;
        let mut blocks = txn.open_table(BLOCKS)?;
        let mut xattrs = txn.open_table(XATTRS)?;
        let mut names = txn.open_table(NAMES)?;
        let mut orphans = txn.open_table(ORPHANS)?;
        // `names` mirrors `dirents`: the entry replaced or removed leaves it, the new one joins.
        for (parent, name, child) in &batch.dirents {
            let key = (parent.0, name.as_slice());
            let old = match child {
                Some(child) => dirents.insert(key, child.0)?,
                None => dirents.remove(key)?,
            }
            .map(|old| old.value());
            if let Some(old) = old {
                names.remove((old, parent.0, name.as_slice()))?;
            }
            if let Some(child) = child {
                names.insert((child.0, parent.0, name.as_slice()), ())?;
            }
        }
        for (ino, record) in &batch.inodes {
            inodes.insert(ino.0, record.encode().as_slice())?;
            // A file unlinked while open: purged at the next mount if still there then.
            if record.nlink == 0 && *ino != InodeNo::ROOT {
                orphans.insert(ino.0, ())?;
            }
        }
        for (ino, changes) in &batch.blocks {
            if let Some(from) = changes.dropped_from {
                blocks.retain_in((ino.0, from)..=(ino.0, u64::MAX), |_, id| {
                    *live.entry(ChunkId(*id)).or_default() -= 1;
                    false
                })?;
            }
            for (index, chunk) in &changes.set {
                let old = match chunk {
                    Some(id) => {
                        *live.entry(*id).or_default() += 1;
                        blocks.insert((ino.0, *index), &id.0)?
                    }
                    None => blocks.remove((ino.0, *index))?,
                };
                if let Some(old) = old {
                    *live.entry(ChunkId(*old.value())).or_default() -= 1;
                }
            }
        }
        for (ino, set) in &batch.xattrs {
            xattrs.retain_in((ino.0, &[][..])..(ino.0 + 1, &[][..]), |_, _| false)?;
            for (name, value) in set {
                xattrs.insert((ino.0, name.as_slice()), value.as_slice())?;
            }
        }
        let mut frozen = txn.open_table(FROZEN)?;
        for (ino, id) in &batch.frozen {
            frozen.insert(ino.0, &id.0)?;
        }
        for ino in batch.thawed.iter().chain(&batch.removed_inodes) {
            frozen.remove(ino.0)?;
        }
        for ino in &batch.removed_inodes {
            inodes.remove(ino.0)?;
            orphans.remove(ino.0)?;
            blocks.retain_in((ino.0, 0)..=(ino.0, u64::MAX), |_, id| {
                *live.entry(ChunkId(*id)).or_default() -= 1;
                false
            })?;
            xattrs.retain_in((ino.0, &[][..])..(ino.0 + 1, &[][..]), |_, _| false)?;
        }
        txn.open_table(COUNTERS)?
            .insert(NEXT_INODE, batch.next_inode)?;
        drop((inodes, dirents, blocks, xattrs, names, orphans));
        if live.is_empty() && stored == StoredChange::default() {
            return Ok(());
        }
        let account = || -> Result<(), accounting::AccountingError> {
            let Some(mut ledger) = accounting::Ledger::open(txn)? else {
                return Ok(());
            };
            ledger.stored(stored.delta);
            ledger.live_refs_changed(&live)?;
            ledger.finish()?;
            if stored.resized {
                accounting::mark_stale(txn, "a chunk was stored again with another length")?;
            }
            Ok(())
        };
        account().map_err(MetaError::Accounting)
    }
}
