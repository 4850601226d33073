//! Incremental space accounting: the figures of `snapshot list` and `status` (live bytes, each
//! listed snapshot's unique bytes, snapshot bytes, bytes only soft-deleted snapshots hold,
//! stored bytes) kept up to date in the metadata database, so that reading them costs the
//! number of snapshots and not the size of the data.
//!
//! Every chunk that a snapshot holds or held has a [`ChunkUsage`] record: its size, how often
//! the newest created snapshot names it, the intervals of snapshot numbers it is in, and the
//! [`Class`] its bytes are counted in. A chunk no snapshot ever held has no record: it is
//! `Live` while a block map names it and `Free` otherwise. Snapshot numbers only grow, so an
//! interval never changes when a snapshot is deleted; only the class of the chunks whose
//! intervals contain that snapshot can.
//!
//! An *open* chunk is one no block map names whose only interval is still open (`[b, OPEN)`:
//! it has been in every snapshot since `b`, the newest included), typically a tree object of an
//! unchanged directory. Its class depends on `b` and the snapshot states alone, so open chunks
//! are counted together by birth (`usage_open`) and classed when the figures are read; each
//! new snapshot changes the class of all those born since the second-newest listed one (from
//! unique to the previous snapshot to shared), and counting them one by one made the second
//! snapshot of a share cost every directory and file object of the first.
//!
//! Tables:
//! - `usage_chunks`: chunk id → [`ChunkUsage`] bytes.
//! - `usage_live_refs`: chunk id → how many committed block-map entries name it (absent = 0).
//! - `usage_births`: (birth, chunk id) → (): one row per interval of each chunk no block map
//!   names, to find by a range scan the chunks whose class a catalog change can alter. A chunk
//!   the live share names is `Live` whatever the catalog says, so it has no rows: a snapshot
//!   of a large share that changed little then scans what is no longer live, not the share.
//! - `usage_snapshots`: snapshot number → 1 listed, 2 soft-deleted (absent: gone).
//! - `usage_unique`: listed snapshot number → bytes of the chunks of class `Unique` for it.
//! - `usage_newest`: at most one row, number → root of the newest created snapshot (kept after
//!   that snapshot is deleted: the next create diffs against it, and gc keeps its tree).
//! - `usage_open`: birth → Σ size of the open chunks born then (absent = 0).
//! - `usage_totals`: `version` (present and equal to [`VERSION`] exactly when every table is
//!   exact), `live`, `snapshot`, `deleted`, `stored` bytes (open chunks not included).
//!
//! Invariants (while `version` is present):
//! 1. `live` = Σ size of `Live` chunks, `snapshot` = Σ of `Unique` and `Shared`, `deleted` = Σ
//!    of `Deleted`, `usage_unique[s]` = Σ of `Unique(s)`, each over the chunks that are not
//!    open; `usage_open[b]` = Σ size of the open chunks born at `b`; `stored` = Σ frame lengths
//!    in the chunk index. What [`read`] returns adds the open chunks, each birth classed as its
//!    chunks are. Reclaimable = stored − live − snapshot − deleted.
//! 2. A chunk that is not open has the class [`classify`] gives its live references, its
//!    intervals and the snapshot states, and `usage_births` rows exactly when no block map
//!    names it; an open chunk has class `Free` and no rows. For every chunk, after every
//!    transaction.
//! 3. Each update is made in the transaction of the change it accounts for (a block-map commit,
//!    a catalog change, a sweep), so a crash keeps both or neither.
//!
//! An update that finds the tables inconsistent (a count would go below zero) removes
//! `version` instead of failing the transaction it is part of: the figures are then computed by
//! a full walk until the next open rebuilds the tables.

use std::collections::{BTreeSet, HashMap, HashSet};

use redb::{ReadableDatabase, ReadableTable, Table, TableDefinition, WriteTransaction};

use crate::format::DecodeError;
use crate::format::location::ChunkLocation;
pub use crate::format::usage::{ChunkUsage, Class, OPEN};
use crate::id::ChunkId;

/// The accounting layout this build keeps; a store without it (or with another) is rebuilt.
/// Version 1 kept birth rows for live chunks too; version 2 counted open chunks one by one.
pub const VERSION: u64 = 3;

const CHUNKS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("usage_chunks");
const LIVE_REFS: TableDefinition<&[u8; 32], u64> = TableDefinition::new("usage_live_refs");
const BIRTHS: TableDefinition<(u64, &[u8; 32]), ()> = TableDefinition::new("usage_births");
const SNAPSHOTS: TableDefinition<u64, u8> = TableDefinition::new("usage_snapshots");
const UNIQUE: TableDefinition<u64, u64> = TableDefinition::new("usage_unique");
const NEWEST: TableDefinition<u64, &[u8; 32]> = TableDefinition::new("usage_newest");
const OPEN_BYTES: TableDefinition<u64, u64> = TableDefinition::new("usage_open");
const TOTALS: TableDefinition<&str, u64> = TableDefinition::new("usage_totals");

const KEY_VERSION: &str = "version";
const KEY_LIVE: &str = "live";
const KEY_SNAPSHOT: &str = "snapshot";
const KEY_DELETED: &str = "deleted";
const KEY_STORED: &str = "stored";

pub(super) fn copy_tables(
    from: &redb::ReadTransaction,
    to: &WriteTransaction,
) -> Result<(), redb::Error> {
    use crate::storage::table_copy::copy_table;
    copy_table(from, to, CHUNKS)?;
    copy_table(from, to, LIVE_REFS)?;
    copy_table(from, to, BIRTHS)?;
    copy_table(from, to, SNAPSHOTS)?;
    copy_table(from, to, UNIQUE)?;
    copy_table(from, to, NEWEST)?;
    copy_table(from, to, OPEN_BYTES)?;
    copy_table(from, to, TOTALS)
}

#[derive(Debug, thiserror::Error)]
pub enum AccountingError {
    #[error("accounting tables: {0}")]
    Db(redb::Error),
    #[error("damaged accounting record of chunk {chunk}: {source}")]
    Damaged { chunk: ChunkId, source: DecodeError },
}

impl<E: Into<redb::Error>> From<E> for AccountingError {
    fn from(err: E) -> Self {
        AccountingError::Db(err.into())
    }
}

/// Whether a snapshot number is listed or soft-deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotState {
    Listed,
    Deleted,
}

impl SnapshotState {
    fn code(self) -> u8 {
        match self {
            SnapshotState::Listed => 1,
            SnapshotState::Deleted => 2,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(SnapshotState::Listed),
            2 => Some(SnapshotState::Deleted),
            _ => None,
        }
    }
}

/// The figures as read, in one transaction.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub live: u64,
    pub snapshot: u64,
    pub deleted: u64,
    pub stored: u64,
    /// Listed snapshot number → unique bytes.
    pub unique: HashMap<u64, u64>,
}

/// The listed and soft-deleted snapshot numbers.
#[derive(Clone, Debug, Default)]
pub struct States {
    pub listed: BTreeSet<u64>,
    pub deleted: BTreeSet<u64>,
}

impl States {
    fn set(&mut self, number: u64, state: Option<SnapshotState>) {
        self.listed.remove(&number);
        self.deleted.remove(&number);
        match state {
            Some(SnapshotState::Listed) => self.listed.insert(number),
            Some(SnapshotState::Deleted) => self.deleted.insert(number),
            None => false,
        };
    }

    /// The second-newest listed number below `below` (0 if there are fewer than two): every
    /// interval that holds `below` and at most one other listed snapshot starts after it.
    fn second_listed_below(&self, below: u64) -> u64 {
        self.listed
            .range(..below)
            .rev()
            .nth(1)
            .copied()
            .unwrap_or(0)
    }
}

/// The class a chunk belongs in (invariant 2).
pub fn classify(live: bool, intervals: &[(u64, u64)], states: &States) -> Class {
    if live {
        return Class::Live;
    }
    let mut listed = None;
    let mut deleted = false;
    for &(birth, death) in intervals {
        for &number in states.listed.range(birth..death).take(2) {
            match listed {
                None => listed = Some(number),
                Some(first) if first != number => return Class::Shared,
                Some(_) => {}
            }
        }
        deleted = deleted || states.deleted.range(birth..death).next().is_some();
    }
    match listed {
        Some(number) => Class::Unique(number),
        None if deleted => Class::Deleted,
        None => Class::Free,
    }
}

/// Where a chunk's bytes are counted: in the counter of its class, or with the open chunks of
/// its birth (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Placement {
    Counted(Class),
    Open(u64),
}

impl Placement {
    /// Where a chunk belongs now.
    fn of(live: bool, intervals: &[(u64, u64)], states: &States) -> Self {
        match intervals {
            [(birth, OPEN)] if !live => Placement::Open(*birth),
            _ => Placement::Counted(classify(live, intervals, states)),
        }
    }

    /// Where a record was counted (invariant 2: its stored class, unless it is open).
    fn stored(live: bool, usage: &ChunkUsage) -> Self {
        match usage.intervals[..] {
            [(birth, OPEN)] if !live => Placement::Open(birth),
            _ => Placement::Counted(usage.class),
        }
    }

    /// Whether a chunk counted here has `usage_births` rows.
    fn has_births(self) -> bool {
        matches!(self, Placement::Counted(class) if class != Class::Live)
    }
}

/// Creates the tables of a new, empty store: everything zero, and exact.
pub fn create_tables(txn: &WriteTransaction) -> Result<(), AccountingError> {
    txn.open_table(CHUNKS)?;
    txn.open_table(LIVE_REFS)?;
    txn.open_table(BIRTHS)?;
    txn.open_table(SNAPSHOTS)?;
    txn.open_table(UNIQUE)?;
    txn.open_table(NEWEST)?;
    txn.open_table(OPEN_BYTES)?;
    let mut totals = txn.open_table(TOTALS)?;
    for key in [KEY_LIVE, KEY_SNAPSHOT, KEY_DELETED, KEY_STORED] {
        totals.insert(key, 0)?;
    }
    totals.insert(KEY_VERSION, VERSION)?;
    Ok(())
}

/// Whether the tables are exact (see the module documentation).
pub fn is_current_in(txn: &WriteTransaction) -> Result<bool, AccountingError> {
    let totals = match txn.open_table(TOTALS) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(false),
        Err(err) => return Err(err.into()),
    };
    Ok(totals.get(KEY_VERSION)?.map(|v| v.value()) == Some(VERSION))
}

/// Marks the tables stale: figures come from a full walk until the next open rebuilds them.
pub fn mark_stale(txn: &WriteTransaction, why: &str) -> Result<(), AccountingError> {
    tracing::error!("space accounting is inconsistent ({why}); it is rebuilt at the next open");
    txn.open_table(TOTALS)?.remove(KEY_VERSION)?;
    Ok(())
}

/// The figures, or `None` if the tables are stale.
pub fn read(db: &redb::Database) -> Result<Option<Totals>, AccountingError> {
    let txn = db.begin_read()?;
    let totals = match txn.open_table(TOTALS) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(err) => return Err(err.into()),
    };
    if totals.get(KEY_VERSION)?.map(|v| v.value()) != Some(VERSION) {
        return Ok(None);
    }
    let get = |key| -> Result<u64, AccountingError> {
        Ok(totals.get(key)?.map(|v| v.value()).unwrap_or(0))
    };
    let mut out = Totals {
        live: get(KEY_LIVE)?,
        snapshot: get(KEY_SNAPSHOT)?,
        deleted: get(KEY_DELETED)?,
        stored: get(KEY_STORED)?,
        unique: HashMap::new(),
    };
    for entry in txn.open_table(UNIQUE)?.iter()? {
        let (number, bytes) = entry?;
        out.unique.insert(number.value(), bytes.value());
    }
    let mut states = States::default();
    for entry in txn.open_table(SNAPSHOTS)?.iter()? {
        let (number, code) = entry?;
        states.set(number.value(), SnapshotState::from_code(code.value()));
    }
    for entry in txn.open_table(OPEN_BYTES)?.iter()? {
        let (birth, bytes) = entry?;
        let bytes = bytes.value();
        match classify(false, &[(birth.value(), OPEN)], &states) {
            Class::Free | Class::Live => {}
            Class::Unique(number) => {
                out.snapshot += bytes;
                *out.unique.entry(number).or_default() += bytes;
            }
            Class::Shared => out.snapshot += bytes,
            Class::Deleted => out.deleted += bytes,
        }
    }
    Ok(Some(out))
}

/// The newest created snapshot's number and root, if any was created since the tables were
/// built.
pub fn newest(db: &redb::Database) -> Result<Option<(u64, ChunkId)>, AccountingError> {
    let txn = db.begin_read()?;
    let table = match txn.open_table(NEWEST) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(err) => return Err(err.into()),
    };
    let newest = table
        .last()?
        .map(|(n, root)| (n.value(), ChunkId(*root.value())));
    Ok(newest)
}

/// The open tables of one transaction, with the counter changes it has made so far.
pub struct Ledger<'t> {
    txn: &'t WriteTransaction,
    chunks: Table<'t, &'static [u8; 32], &'static [u8]>,
    live_refs: Table<'t, &'static [u8; 32], u64>,
    births: Table<'t, (u64, &'static [u8; 32]), ()>,
    index: Table<'t, &'static [u8; 32], &'static [u8; ChunkLocation::ENCODED_LEN]>,
    states: Option<States>,
    live: i128,
    snapshot: i128,
    deleted: i128,
    stored: i128,
    unique: HashMap<u64, i128>,
    /// Changes to `usage_open`, by birth.
    open: HashMap<u64, i128>,
    /// Why the tables turned out inconsistent, if they did.
    broken: Option<String>,
}

impl<'t> Ledger<'t> {
    /// Opens the ledger, or returns `None` if the tables are stale (they are rebuilt later, so
    /// there is nothing to keep up to date).
    pub fn open(txn: &'t WriteTransaction) -> Result<Option<Self>, AccountingError> {
        if !is_current_in(txn)? {
            return Ok(None);
        }
        Ok(Some(Ledger {
            txn,
            chunks: txn.open_table(CHUNKS)?,
            live_refs: txn.open_table(LIVE_REFS)?,
            births: txn.open_table(BIRTHS)?,
            index: txn.open_table(crate::chunk_store::index::CHUNKS)?,
            states: None,
            live: 0,
            snapshot: 0,
            deleted: 0,
            stored: 0,
            unique: HashMap::new(),
            open: HashMap::new(),
            broken: None,
        }))
    }

    fn states(&mut self) -> Result<&States, AccountingError> {
        if self.states.is_none() {
            let mut states = States::default();
            for entry in self.txn.open_table(SNAPSHOTS)?.iter()? {
                let (number, code) = entry?;
                states.set(number.value(), SnapshotState::from_code(code.value()));
            }
            self.states = Some(states);
        }
        Ok(self.states.get_or_insert_with(States::default))
    }

    fn record(&self, id: &ChunkId) -> Result<Option<ChunkUsage>, AccountingError> {
        let Some(bytes) = self.chunks.get(&id.0)? else {
            return Ok(None);
        };
        ChunkUsage::decode(bytes.value())
            .map(Some)
            .map_err(|source| AccountingError::Damaged { chunk: *id, source })
    }

    fn put_record(&mut self, id: &ChunkId, usage: &ChunkUsage) -> Result<(), AccountingError> {
        self.chunks.insert(&id.0, usage.encode().as_slice())?;
        Ok(())
    }

    fn live_refs(&self, id: &ChunkId) -> Result<u64, AccountingError> {
        Ok(self.live_refs.get(&id.0)?.map(|v| v.value()).unwrap_or(0))
    }

    /// The stored size of a chunk without a record, from the chunk index (0 if absent, as a
    /// full walk counts it).
    fn indexed_size(&self, id: &ChunkId) -> Result<u32, AccountingError> {
        let Some(value) = self.index.get(&id.0)? else {
            return Ok(0);
        };
        ChunkLocation::decode(value.value())
            .map(|location| location.frame_len)
            .map_err(|source| AccountingError::Damaged { chunk: *id, source })
    }

    fn count(&mut self, class: Class, size: u32, sign: i128) {
        let bytes = i128::from(size) * sign;
        match class {
            Class::Free => {}
            Class::Live => self.live += bytes,
            Class::Unique(number) => {
                self.snapshot += bytes;
                *self.unique.entry(number).or_default() += bytes;
            }
            Class::Shared => self.snapshot += bytes,
            Class::Deleted => self.deleted += bytes,
        }
    }

    fn count_placement(&mut self, placement: Placement, size: u32, sign: i128) {
        match placement {
            Placement::Counted(class) => self.count(class, size, sign),
            Placement::Open(birth) => {
                *self.open.entry(birth).or_default() += i128::from(size) * sign;
            }
        }
    }

    /// Puts `usage` where it belongs now (`live`: whether a block map names it), given where it
    /// was counted `before` with the intervals `before_intervals`: moves its bytes and its
    /// births rows accordingly.
    fn settle(
        &mut self,
        id: &ChunkId,
        usage: &mut ChunkUsage,
        before: Placement,
        before_intervals: &[(u64, u64)],
        live: bool,
    ) -> Result<(), AccountingError> {
        let after = Placement::of(live, &usage.intervals, self.states()?);
        if after != before {
            self.count_placement(before, usage.size, -1);
            self.count_placement(after, usage.size, 1);
        }
        usage.class = match after {
            Placement::Counted(class) => class,
            Placement::Open(_) => Class::Free,
        };
        let births = |placement: Placement, intervals: &[(u64, u64)]| -> Vec<u64> {
            if placement.has_births() {
                intervals.iter().map(|(birth, _)| *birth).collect()
            } else {
                Vec::new()
            }
        };
        let (old, new) = (
            births(before, before_intervals),
            births(after, &usage.intervals),
        );
        for birth in old.iter().filter(|birth| !new.contains(birth)) {
            self.births.remove((*birth, &id.0))?;
        }
        for birth in new.iter().filter(|birth| !old.contains(birth)) {
            self.births.insert((*birth, &id.0), ())?;
        }
        Ok(())
    }

    /// Gives up keeping the tables exact in this transaction: they are marked stale.
    pub fn mark_broken(&mut self, why: String) {
        self.broken = Some(why);
    }

    /// Chunks stored or rewritten in the chunk index: `delta` bytes more (or fewer) in it.
    pub fn stored(&mut self, delta: i64) {
        self.stored += i128::from(delta);
    }

    /// Applies a commit's changes to the number of block-map entries naming each chunk.
    pub fn live_refs_changed(
        &mut self,
        deltas: &HashMap<ChunkId, i64>,
    ) -> Result<(), AccountingError> {
        for (id, delta) in in_key_order(deltas) {
            if delta == 0 {
                continue;
            }
            let old = self.live_refs(id)?;
            let Some(new) = old.checked_add_signed(delta) else {
                self.broken = Some(format!("live references of {id} below zero"));
                continue;
            };
            if new == 0 {
                self.live_refs.remove(&id.0)?;
            } else {
                self.live_refs.insert(&id.0, new)?;
            }
            if (old == 0) == (new == 0) {
                continue;
            }
            match self.record(id)? {
                Some(mut usage) => {
                    let before = Placement::stored(old > 0, &usage);
                    let intervals = usage.intervals.clone();
                    self.settle(id, &mut usage, before, &intervals, new > 0)?;
                    self.put_record(id, &usage)?;
                }
                None => {
                    let size = self.indexed_size(id)?;
                    self.count(Class::Live, size, if new > 0 { 1 } else { -1 });
                }
            }
        }
        Ok(())
    }

    /// Reclassifies every chunk with births rows born in `from..=to` (see [`States`]): the
    /// others are `Live` whatever the catalog says, or open (classed when read).
    fn reclassify_born_in(&mut self, from: u64, to: u64) -> Result<(), AccountingError> {
        if from > to {
            return Ok(());
        }
        let mut candidates = Vec::new();
        for entry in self
            .births
            .range((from, &[0u8; 32])..=(to, &[0xffu8; 32]))?
        {
            candidates.push(ChunkId(*entry?.0.value().1));
        }
        let mut seen = HashSet::new();
        for id in candidates {
            if !seen.insert(id) {
                continue;
            }
            if let Some(mut usage) = self.record(&id)? {
                let live = self.live_refs(&id)? > 0;
                let (before, class) = (Placement::stored(live, &usage), usage.class);
                let intervals = usage.intervals.clone();
                self.settle(&id, &mut usage, before, &intervals, live)?;
                if usage.class != class {
                    self.put_record(&id, &usage)?;
                }
            }
        }
        Ok(())
    }

    /// Snapshot `number` was created with tree `root`, whose references differ from the
    /// previous newest tree's by `deltas`. Costs the change, plus the chunks of the previous
    /// newest tree born since the second-newest listed snapshot.
    pub fn created(
        &mut self,
        number: u64,
        root: &ChunkId,
        deltas: &HashMap<ChunkId, i64>,
    ) -> Result<(), AccountingError> {
        let previous = {
            let table = self.txn.open_table(NEWEST)?;
            table.last()?.map(|(n, _)| n.value())
        };
        let window_from = self.states()?.second_listed_below(number) + 1;
        self.set_state(number, Some(SnapshotState::Listed))?;
        self.unique.entry(number).or_default();
        for (id, delta) in in_key_order(deltas) {
            if delta == 0 {
                continue;
            }
            let live = self.live_refs(id)? > 0;
            let mut usage = match self.record(id)? {
                Some(usage) => usage,
                None => ChunkUsage {
                    size: self.indexed_size(id)?,
                    newest_refs: 0,
                    class: if live { Class::Live } else { Class::Free },
                    intervals: Vec::new(),
                },
            };
            let before = Placement::stored(live, &usage);
            let intervals = usage.intervals.clone();
            let old = usage.newest_refs;
            let Some(new) = old.checked_add_signed(delta) else {
                self.broken = Some(format!("references of {id} in the newest snapshot below 0"));
                continue;
            };
            usage.newest_refs = new;
            if old == 0 && new > 0 {
                usage.intervals.push((number, OPEN));
            } else if old > 0 && new == 0 {
                match usage.intervals.last_mut() {
                    Some(last) if last.1 == OPEN => last.1 = number,
                    _ => self.broken = Some(format!("{id} was named but had no open interval")),
                }
            }
            self.settle(id, &mut usage, before, &intervals, live)?;
            self.put_record(id, &usage)?;
        }
        // Chunks that stay in the newest tree are now in `number` too: those that were in at
        // most one listed snapshot may change class, and they were all born in this window.
        if let Some(previous) = previous {
            self.reclassify_born_in(window_from, previous)?;
        }
        let mut table = self.txn.open_table(NEWEST)?;
        table.retain(|_, _| false)?;
        table.insert(number, &root.0)?;
        Ok(())
    }

    /// The newest created snapshot, `number`, was deleted for good and its tree is no longer
    /// kept: `deltas` (minus every reference of that tree) close the open intervals just after
    /// its number. No existing snapshot's membership changes, so no class does.
    pub fn retired(
        &mut self,
        number: u64,
        deltas: &HashMap<ChunkId, i64>,
    ) -> Result<(), AccountingError> {
        for (id, delta) in in_key_order(deltas) {
            let Some(mut usage) = self.record(id)? else {
                self.broken = Some(format!("{id} of the newest tree has no record"));
                continue;
            };
            let live = self.live_refs(id)? > 0;
            let before = Placement::stored(live, &usage);
            let intervals = usage.intervals.clone();
            match usage.newest_refs.checked_add_signed(delta) {
                Some(0) => match usage.intervals.last_mut() {
                    Some(last) if last.1 == OPEN => last.1 = number + 1,
                    _ => self.broken = Some(format!("{id} was named but had no open interval")),
                },
                _ => self.broken = Some(format!("{id} is left in no tree with references")),
            }
            usage.newest_refs = 0;
            // Leaving the newest tree changes no class, but an open chunk is counted apart.
            self.settle(id, &mut usage, before, &intervals, live)?;
            self.put_record(id, &usage)?;
        }
        self.txn.open_table(NEWEST)?.retain(|_, _| false)?;
        Ok(())
    }

    fn set_state(
        &mut self,
        number: u64,
        state: Option<SnapshotState>,
    ) -> Result<(), AccountingError> {
        self.states()?;
        if let Some(states) = self.states.as_mut() {
            states.set(number, state);
        }
        let mut table = self.txn.open_table(SNAPSHOTS)?;
        match state {
            Some(state) => table.insert(number, state.code())?,
            None => table.remove(number)?,
        };
        Ok(())
    }

    /// Snapshot `number` became listed, soft-deleted or gone (`None`). Costs the chunks born
    /// since the second listed snapshot before it: those whose class this can change.
    pub fn state_changed(
        &mut self,
        number: u64,
        state: Option<SnapshotState>,
    ) -> Result<(), AccountingError> {
        let from = self.states()?.second_listed_below(number) + 1;
        self.set_state(number, state)?;
        // Visited by `finish` whatever happens: a row is kept exactly for listed snapshots.
        self.unique.entry(number).or_default();
        self.reclassify_born_in(from, number)
    }

    /// Chunks swept from the index (with their frame lengths): their records go.
    pub fn swept(&mut self, removed: &[(ChunkId, u32)]) -> Result<(), AccountingError> {
        for (id, frame_len) in removed {
            self.stored -= i128::from(*frame_len);
            if self.live_refs(id)? > 0 {
                self.broken = Some(format!("swept chunk {id} is named by a block map"));
            }
            if let Some(usage) = self.record(id)? {
                if usage.class != Class::Free || usage.newest_refs > 0 {
                    self.broken = Some(format!("swept chunk {id} is in use ({:?})", usage.class));
                }
                for (birth, _) in &usage.intervals {
                    self.births.remove((*birth, &id.0))?;
                }
                self.chunks.remove(&id.0)?;
            }
        }
        Ok(())
    }

    /// Writes the counters. Marks the tables stale instead if they went wrong.
    pub fn finish(self) -> Result<(), AccountingError> {
        let Ledger {
            txn,
            chunks,
            live_refs,
            births,
            index,
            states,
            live,
            snapshot,
            deleted,
            stored,
            unique,
            open,
            mut broken,
        } = self;
        drop((chunks, live_refs, births, index));
        let mut totals = txn.open_table(TOTALS)?;
        for (key, delta) in [
            (KEY_LIVE, live),
            (KEY_SNAPSHOT, snapshot),
            (KEY_DELETED, deleted),
            (KEY_STORED, stored),
        ] {
            if delta == 0 {
                continue;
            }
            let old = i128::from(totals.get(key)?.map(|v| v.value()).unwrap_or(0));
            match u64::try_from(old + delta) {
                Ok(new) => {
                    totals.insert(key, new)?;
                }
                Err(_) => broken = Some(format!("{key} bytes below zero")),
            }
        }
        drop(totals);
        let mut table = txn.open_table(OPEN_BYTES)?;
        for (birth, delta) in open {
            let old = i128::from(table.get(birth)?.map(|v| v.value()).unwrap_or(0));
            match u64::try_from(old + delta) {
                Ok(0) => {
                    table.remove(birth)?;
                }
                Ok(new) => {
                    table.insert(birth, new)?;
                }
                Err(_) => broken = Some(format!("open bytes born at {birth} below zero")),
            }
        }
        drop(table);
        let mut table = txn.open_table(UNIQUE)?;
        for (number, delta) in unique {
            let old = i128::from(table.get(number)?.map(|v| v.value()).unwrap_or(0));
            let listed = states
                .as_ref()
                .is_some_and(|states| states.listed.contains(&number));
            match u64::try_from(old + delta) {
                Ok(new) if listed => {
                    table.insert(number, new)?;
                }
                Ok(0) => {
                    table.remove(number)?;
                }
                _ => {
                    broken = Some(format!("unique bytes of snapshot {number} wrong"));
                }
            }
        }
        drop(table);
        if let Some(why) = broken {
            mark_stale(txn, &why)?;
        }
        Ok(())
    }
}

/// Everything a rebuild computed, written by [`replace`] in one transaction.
pub struct Rebuilt {
    pub records: HashMap<ChunkId, ChunkUsage>,
    pub live_refs: HashMap<ChunkId, u64>,
    pub states: States,
    pub newest: Option<(u64, ChunkId)>,
    pub live_sizes: HashMap<ChunkId, u32>,
    pub stored: u64,
}

/// Replaces every accounting table by `rebuilt`, classifying each chunk, and marks the
/// tables exact.
pub fn replace(txn: &WriteTransaction, rebuilt: Rebuilt) -> Result<(), AccountingError> {
    txn.delete_table(CHUNKS)?;
    txn.delete_table(LIVE_REFS)?;
    txn.delete_table(BIRTHS)?;
    txn.delete_table(SNAPSHOTS)?;
    txn.delete_table(UNIQUE)?;
    txn.delete_table(NEWEST)?;
    txn.delete_table(OPEN_BYTES)?;
    txn.delete_table(TOTALS)?;
    let Rebuilt {
        mut records,
        live_refs,
        states,
        newest,
        live_sizes,
        stored,
    } = rebuilt;
    let (mut live, mut snapshot, mut deleted) = (0u64, 0u64, 0u64);
    let mut unique: HashMap<u64, u64> = states.listed.iter().map(|n| (*n, 0)).collect();
    let mut open: HashMap<u64, u64> = HashMap::new();
    {
        let mut chunks = txn.open_table(CHUNKS)?;
        let mut births = txn.open_table(BIRTHS)?;
        for (id, usage) in &mut records {
            let is_live = live_refs.get(id).is_some_and(|n| *n > 0);
            let placement = Placement::of(is_live, &usage.intervals, &states);
            let size = u64::from(usage.size);
            usage.class = match placement {
                Placement::Open(birth) => {
                    *open.entry(birth).or_default() += size;
                    Class::Free
                }
                Placement::Counted(class) => class,
            };
            match placement {
                Placement::Counted(Class::Unique(number)) => {
                    snapshot += size;
                    *unique.entry(number).or_default() += size;
                }
                Placement::Counted(Class::Shared) => snapshot += size,
                Placement::Counted(Class::Deleted) => deleted += size,
                _ => {}
            }
            if placement.has_births() {
                for (birth, _) in &usage.intervals {
                    births.insert((*birth, &id.0), ())?;
                }
            }
            chunks.insert(&id.0, usage.encode().as_slice())?;
        }
        let mut table = txn.open_table(OPEN_BYTES)?;
        for (birth, bytes) in open {
            table.insert(birth, bytes)?;
        }
    }
    {
        let mut table = txn.open_table(LIVE_REFS)?;
        for (id, count) in &live_refs {
            table.insert(&id.0, *count)?;
            live += match records.get(id) {
                Some(usage) => u64::from(usage.size),
                None => u64::from(live_sizes.get(id).copied().unwrap_or(0)),
            };
        }
    }
    {
        let mut table = txn.open_table(SNAPSHOTS)?;
        for number in &states.listed {
            table.insert(*number, SnapshotState::Listed.code())?;
        }
        for number in &states.deleted {
            table.insert(*number, SnapshotState::Deleted.code())?;
        }
    }
    {
        let mut table = txn.open_table(UNIQUE)?;
        for (number, bytes) in unique {
            table.insert(number, bytes)?;
        }
    }
    {
        let mut table = txn.open_table(NEWEST)?;
        if let Some((number, root)) = newest {
            table.insert(number, &root.0)?;
        }
    }
    let mut totals = txn.open_table(TOTALS)?;
    totals.insert(KEY_LIVE, live)?;
    totals.insert(KEY_SNAPSHOT, snapshot)?;
    totals.insert(KEY_DELETED, deleted)?;
    totals.insert(KEY_STORED, stored)?;
    totals.insert(KEY_VERSION, VERSION)?;
    Ok(())
}

/// How many `usage_births` rows there are: what a window scan may have to visit.
#[cfg(test)]
pub fn births_rows(db: &redb::Database) -> u64 {
    let txn = db.begin_read().expect("read");
    let table = txn.open_table(BIRTHS).expect("births");
    redb::ReadableTableMetadata::len(&table).expect("len")
}

/// `deltas` by chunk id, the order of every table they change: each page of those tables is
/// then read and written once, where the hash map's own order touched them at random (the
/// first snapshot of 200,000 small files spent 1.0 s of its 2.1 s on these at 50,000).
fn in_key_order(deltas: &HashMap<ChunkId, i64>) -> Vec<(&ChunkId, i64)> {
    let mut sorted: Vec<(&ChunkId, i64)> = deltas.iter().map(|(id, delta)| (id, *delta)).collect();
    sorted.sort_unstable_by_key(|(id, _)| id.0);
    sorted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn states(listed: &[u64], deleted: &[u64]) -> States {
        States {
            listed: listed.iter().copied().collect(),
            deleted: deleted.iter().copied().collect(),
        }
    }

    #[test]
    fn classes_follow_the_listed_and_deleted_snapshots_in_the_intervals() {
        let s = states(&[1, 4, 7], &[2, 5]);
        assert_eq!(classify(true, &[(1, 8)], &s), Class::Live);
        assert_eq!(classify(false, &[(1, 2)], &s), Class::Unique(1));
        assert_eq!(classify(false, &[(2, 4)], &s), Class::Deleted);
        assert_eq!(classify(false, &[(3, 4)], &s), Class::Free);
        assert_eq!(classify(false, &[(4, 6)], &s), Class::Unique(4));
        assert_eq!(classify(false, &[(1, 2), (7, OPEN)], &s), Class::Shared);
        assert_eq!(classify(false, &[(5, 7)], &s), Class::Deleted);
        assert_eq!(classify(false, &[(6, OPEN)], &s), Class::Unique(7));
    }

    #[test]
    fn the_window_starts_after_the_second_listed_snapshot_below() {
        let s = states(&[1, 4, 7], &[]);
        assert_eq!(s.second_listed_below(8), 4);
        assert_eq!(s.second_listed_below(7), 1);
        assert_eq!(s.second_listed_below(4), 0);
    }
}
