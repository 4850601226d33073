//! The data of one regular file: its block map, the blocks being written, and its size and
//! times (which the data path changes without touching the namespace lock).
//!
//! Invariants:
//! - `blocks` (when loaded) is the file's current block map: committed entries plus blocks
//!   sealed since; `changed` and `dropped_from` describe how it differs from the committed map.
//! - A block in `buffers` is newer than its entry in `blocks`; bytes of a buffer past the end of
//!   the file are zero, so growing the file never exposes old data.
//! - Every chunk id in `blocks` was published by the chunk store before it was inserted.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};

use parking_lot::{Mutex, MutexGuard};

use super::error::{FsError, FsResult};
use super::workers::DataWorkers;
use crate::blocks::{BlockSpan, spans};
use crate::chunk_store::ChunkStore;
use crate::format::inode::Timestamp;
use crate::id::{ChunkId, InodeNo};
use crate::meta::{BlockChanges, MetaStore};

/// Largest file size accepted: block indexes and offsets stay far from overflow.
pub const MAX_FILE_SIZE: u64 = 1 << 50;
/// Blocks a single file may hold unsealed before its oldest are sealed: bounds the memory of
/// random writers while leaving room for a few interleaved sequential streams.
const MAX_BUFFERS_PER_FILE: usize = 64;

/// Stores one block's bytes; an all-zero block becomes a hole (`None`) and costs nothing.
pub(super) fn store_block_data(store: &ChunkStore, data: &[u8]) -> FsResult<Option<ChunkId>> {
    if data.iter().all(|b| *b == 0) {
        return Ok(None);
    }
    store.put(data).map(Some).map_err(|err| match err {
        crate::chunk_store::ChunkStoreError::Io(io) if io.raw_os_error() == Some(libc::ENOSPC) => {
            FsError::NoSpace
        }
        other => other.into(),
    })
}

/// The chunks of the whole blocks one write request covers, by block index.
#[derive(Default)]
pub struct WholeBlocks {
    first: u64,
    chunks: Vec<Option<ChunkId>>,
}

impl WholeBlocks {
    fn get(&self, index: u64) -> Option<Option<ChunkId>> {
        let at = usize::try_from(index.checked_sub(self.first)?).ok()?;
        self.chunks.get(at).copied()
    }
}

/// Hashes, compresses and stores the whole blocks `data` covers at `offset`, before the file's
/// lock is taken, spread over the data workers: so neither other requests on the file nor a
/// single large request wait on one core's compression, and no thread is started per request.
pub fn store_whole_blocks(
    store: &ChunkStore,
    workers: &DataWorkers,
    block_size: u32,
    offset: u64,
    data: &[u8],
) -> FsResult<WholeBlocks> {
    let bs = u64::from(block_size);
    let first = offset.div_ceil(bs);
    let end = offset.saturating_add(data.len() as u64) / bs;
    if end <= first {
        return Ok(WholeBlocks::default());
    }
    let skip = (first * bs - offset) as usize;
    let blocks: Vec<&[u8]> = data[skip..].chunks_exact(block_size as usize).collect();
    let chunks = workers
        .map(&blocks, |block| store_block_data(store, block))
        .into_iter()
        .collect::<FsResult<Vec<_>>>()?;
    Ok(WholeBlocks { first, chunks })
}

/// A block being written: its bytes, and which of them are known (written, or loaded from
/// the block's previous content).
struct BlockBuffer {
    bytes: Vec<u8>,
    /// Sorted, disjoint, non-adjacent byte ranges. Sequential writes keep this one range long.
    known: Vec<(usize, usize)>,
    /// The file's [`ContentState::stamps`] at the last change of `bytes`: a freeze that copied
    /// the buffer may hand the chunk it stored back only while this is unchanged.
    stamp: u64,
}

impl BlockBuffer {
    fn new(block_size: usize) -> Self {
        BlockBuffer {
            bytes: vec![0u8; block_size],
            known: Vec::new(),
            stamp: 0,
        }
    }

    fn cover(&mut self, start: usize, end: usize) {
        let (mut start, mut end) = (start, end);
        // Merge every range that touches or overlaps [start, end).
        self.known.retain(|&(s, e)| {
            if e < start || s > end {
                true
            } else {
                start = start.min(s);
                end = end.max(e);
                false
            }
        });
        let at = self.known.partition_point(|&(s, _)| s < start);
        self.known.insert(at, (start, end));
    }

    fn is_complete(&self) -> bool {
        self.known == [(0, self.bytes.len())]
    }
}

/// Shared by every file: the bytes held in unsealed blocks, and the limit on them.
pub struct DirtyBudget {
    bytes: AtomicI64,
    limit: i64,
}

impl DirtyBudget {
    pub fn new(limit: u64) -> Self {
        DirtyBudget {
            bytes: AtomicI64::new(0),
            limit: limit as i64,
        }
    }

    fn add(&self, delta: i64) {
        self.bytes.fetch_add(delta, Ordering::Relaxed);
    }

    fn exceeded(&self) -> bool {
        self.bytes.load(Ordering::Relaxed) > self.limit
    }

    /// Bytes buffered now.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed).max(0) as u64
    }
}

/// What a commit takes from a file.
pub struct ContentChanges {
    pub size: u64,
    pub mtime: Timestamp,
    pub ctime: Timestamp,
    pub blocks: BlockChanges,
}

/// Everything the I/O operations need from outside the file.
pub struct DataContext<'a> {
    pub store: &'a ChunkStore,
    pub meta: &'a MetaStore,
    pub budget: &'a DirtyBudget,
    pub block_size: u32,
}

pub struct FileContent {
    pub ino: InodeNo,
    state: Mutex<ContentState>,
}

pub struct ContentState {
    pub size: u64,
    pub mtime: Timestamp,
    pub ctime: Timestamp,
    blocks: Option<BTreeMap<u64, ChunkId>>,
    /// How many blocks the block map holds while it is not in memory (counted in the database
    /// when first asked, or kept when the map was dropped), so that `stat` reports holes
    /// without loading the map. `None` when unknown or when `blocks` is loaded.
    stored_blocks: Option<u64>,
    buffers: BTreeMap<u64, BlockBuffer>,
    changed: BTreeMap<u64, Option<ChunkId>>,
    dropped_from: Option<u64>,
    /// Size or times changed since the last commit.
    attrs_changed: bool,
    /// Size, mtime and ctime as the last commit recorded them (for a new file, as created):
    /// what a commit records again when it cannot store the file's newer data.
    committed: (u64, Timestamp, Timestamp),
    /// Counts changes of buffered bytes (see `BlockBuffer::stamp`); never goes back, so a
    /// buffer dropped and buffered again never repeats a stamp.
    stamps: u64,
}

/// A file's content as a freeze captured it: enough to encode its file object without the
/// file, the namespace or the write gate.
pub struct CapturedContent {
    pub size: u64,
    /// The block map at the capture, without the buffered blocks, by block index; `None` if it
    /// is the one last committed, for the encoding to read in the capture's transaction. A
    /// sorted vector, not a map: a capture holds one per thawed file, and a one-block
    /// `BTreeMap` takes a 450-byte node where this takes 40 bytes.
    pub blocks: Option<Vec<(u64, ChunkId)>>,
    /// Copies of the buffered blocks (index, stamp, the bytes up to the end of the file):
    /// newer than their entries in `blocks`, stored after the capture.
    pub buffered: Vec<CapturedBlock>,
}

/// One buffered block copied by a freeze.
pub struct CapturedBlock {
    pub index: u64,
    /// The buffer's stamp when copied (see [`ContentState::adopt_sealed`]).
    pub stamp: u64,
    pub bytes: Vec<u8>,
}

impl FileContent {
    pub fn new(ino: InodeNo, size: u64, mtime: Timestamp, ctime: Timestamp) -> Self {
        FileContent {
            ino,
            state: Mutex::new(ContentState {
                size,
                mtime,
                ctime,
                blocks: None,
                stored_blocks: None,
                buffers: BTreeMap::new(),
                changed: BTreeMap::new(),
                dropped_from: None,
                attrs_changed: false,
                committed: (size, mtime, ctime),
                stamps: 0,
            }),
        }
    }

    /// The content of a new file that takes over an existing block map (a restore from a
    /// snapshot): no data is read or stored. Every block counts as changed, so the next commit
    /// writes the whole map. Every chunk of `blocks` must already be stored.
    pub fn with_blocks(
        ino: InodeNo,
        size: u64,
        mtime: Timestamp,
        ctime: Timestamp,
        blocks: BTreeMap<u64, ChunkId>,
    ) -> Self {
        let mut content = FileContent::new(ino, size, mtime, ctime);
        let state = content.state.get_mut();
        state.changed = blocks
            .iter()
            .map(|(index, chunk)| (*index, Some(*chunk)))
            .collect();
        state.blocks = Some(blocks);
        state.attrs_changed = true;
        content
    }

    pub fn lock(&self) -> MutexGuard<'_, ContentState> {
        self.state.lock()
    }
}

impl ContentState {
    fn blocks(
        &mut self,
        ino: InodeNo,
        ctx: &DataContext<'_>,
    ) -> FsResult<&mut BTreeMap<u64, ChunkId>> {
        if self.blocks.is_none() {
            self.blocks = Some(ctx.meta.load_blocks(ino)?);
            self.stored_blocks = None;
        }
        Ok(self.blocks.as_mut().expect("loaded above"))
    }

    /// The chunks of the current block map (after [`ContentState::seal_all`], the whole
    /// content), block by block. A map not in memory is read without being kept: a walk over
    /// the whole share must not leave every file's map loaded.
    pub fn block_chunks(&self, ino: InodeNo, ctx: &DataContext<'_>) -> FsResult<Vec<ChunkId>> {
        Ok(self.block_map_unkept(ino, ctx)?.values().copied().collect())
    }

    /// The block map: the one in memory, or else read from the database without keeping it.
    fn block_map_unkept(
        &self,
        ino: InodeNo,
        ctx: &DataContext<'_>,
    ) -> FsResult<Cow<'_, BTreeMap<u64, ChunkId>>> {
        Ok(match &self.blocks {
            Some(blocks) => Cow::Borrowed(blocks),
            None => Cow::Owned(ctx.meta.load_blocks(ino)?),
        })
    }

    /// Adds the chunks of the block map to `out`, if it is in memory.
    pub fn loaded_chunks(&self, out: &mut Vec<ChunkId>) {
        if let Some(blocks) = &self.blocks {
            out.extend(blocks.values().copied());
        }
    }

    #[cfg(test)]
    pub fn has_block_map(&self) -> bool {
        self.blocks.is_some()
    }

    pub fn has_buffers(&self) -> bool {
        !self.buffers.is_empty()
    }

    /// Whether anything here is not yet committed.
    pub fn is_dirty(&self) -> bool {
        self.attrs_changed
            || !self.changed.is_empty()
            || self.dropped_from.is_some()
            || !self.buffers.is_empty()
    }

    /// Allocated 512-byte sectors, as `stat` reports them: holes cost nothing. A map that is
    /// not in memory is counted in the database once (a range scan of the file's blocks, no
    /// chunk read); if that fails, the size stands in.
    pub fn sectors(&mut self, ino: InodeNo, ctx: &DataContext<'_>) -> u64 {
        let stored = match &self.blocks {
            Some(blocks) => {
                blocks.len()
                    + self
                        .buffers
                        .keys()
                        .filter(|k| !blocks.contains_key(k))
                        .count()
            }
            // No buffers without a loaded map: every write, truncate and punch loads it first.
            None => match self.stored_blocks {
                Some(count) => count as usize,
                None => match ctx.meta.count_blocks(ino) {
                    Ok(count) => {
                        self.stored_blocks = Some(count);
                        count as usize
                    }
                    Err(err) => {
                        tracing::warn!(ino = %ino, "cannot count the file's blocks: {err}");
                        return self.size.div_ceil(512);
                    }
                },
            },
        };
        (stored as u64 * u64::from(ctx.block_size)).min(self.size.next_multiple_of(512)) / 512
    }

    /// Reads up to `len` bytes at `offset`. Chunks are fetched after the lock is dropped, so
    /// readers of one file run in parallel.
    pub fn read(
        mut guard: MutexGuard<'_, Self>,
        ino: InodeNo,
        ctx: &DataContext<'_>,
        offset: u64,
        len: u32,
    ) -> FsResult<Vec<u8>> {
        let size = guard.size;
        if offset >= size {
            return Ok(Vec::new());
        }
        let end = size.min(offset + u64::from(len));
        let mut out = vec![0u8; (end - offset) as usize];
        let mut fetch = Vec::new();
        guard.blocks(ino, ctx)?;
        let state = &*guard;
        let blocks = state.blocks.as_ref().expect("loaded above");
        for BlockSpan {
            index,
            in_block,
            len: n,
            at,
        } in spans(offset, end, ctx.block_size)
        {
            if let Some(buffer) = state.buffers.get(&index) {
                out[at..at + n].copy_from_slice(&buffer.bytes[in_block..in_block + n]);
            } else if let Some(id) = blocks.get(&index) {
                fetch.push((*id, in_block, at, n));
            }
        }
        drop(guard);
        for (id, in_block, at, n) in fetch {
            // A chunk shorter than the block holds what were the file's last bytes when it was
            // sealed; the rest reads as zero (`out` starts zeroed).
            ctx.store.read_into(&id, in_block, &mut out[at..at + n])?;
        }
        Ok(out)
    }

    /// Writes `data` at `offset`. `stored` holds the chunks of the whole blocks the request
    /// covers, already stored by [`store_whole_blocks`] outside this file's lock.
    /// Writes `data` at `offset`. `kernel_keeps_times`: the kernel's writeback cache is on, so
    /// the kernel stamps mtime and ctime at write(2) and sends them with a setattr of its own;
    /// stamping them again here, when the data arrives (possibly after that setattr), would
    /// record a later time than the one the kernel shows and snapshots would disagree with
    /// `stat`.
    pub fn write(
        &mut self,
        ino: InodeNo,
        ctx: &DataContext<'_>,
        offset: u64,
        data: &[u8],
        stored: &WholeBlocks,
        kernel_keeps_times: bool,
    ) -> FsResult<()> {
        let end = offset
            .checked_add(data.len() as u64)
            .filter(|end| *end <= MAX_FILE_SIZE)
            .ok_or(FsError::FileTooLarge)?;
        let bs = u64::from(ctx.block_size);
        self.blocks(ino, ctx)?;
        for BlockSpan {
            index,
            in_block,
            len: n,
            at: src,
        } in spans(offset, end, ctx.block_size)
        {
            let pos = offset + src as u64;
            let whole_block = n as u64 == bs;
            if let Some(chunk) = stored.get(index) {
                // A whole block straight from the request, already stored: a newer write
                // replaces whatever was buffered for it.
                if self.unbuffer(index).is_some() {
                    ctx.budget.add(-i64::from(ctx.block_size));
                }
                self.size = self.size.max(pos + bs);
                self.set_block(ino, ctx, index, chunk)?;
            } else {
                let buffer = self.buffer_for(ino, ctx, index, whole_block)?;
                buffer.bytes[in_block..in_block + n].copy_from_slice(&data[src..src + n]);
                buffer.cover(in_block, in_block + n);
                if buffer.is_complete() {
                    // Every byte of the block is known: hash, compress and store it now, while
                    // the data is hot in cache. Waiting for full coverage (rather than a write
                    // reaching the block's end) keeps out-of-order writeback from storing
                    // half-written blocks that are rewritten moments later.
                    self.size = self.size.max(pos + n as u64);
                    self.seal(ino, ctx, index)?;
                }
            }
        }
        self.size = self.size.max(end);
        if kernel_keeps_times {
            self.attrs_changed = true;
        } else {
            self.touch_data();
        }
        self.limit_buffers(ino, ctx)
    }

    /// Keeps the file's unsealed blocks within [`MAX_BUFFERS_PER_FILE`], and every file's
    /// within the dirty budget, by sealing the oldest (or all) of them.
    fn limit_buffers(&mut self, ino: InodeNo, ctx: &DataContext<'_>) -> FsResult<()> {
        if self.buffers.len() > MAX_BUFFERS_PER_FILE {
            let oldest: Vec<u64> = self
                .buffers
                .keys()
                .take(self.buffers.len() - MAX_BUFFERS_PER_FILE)
                .copied()
                .collect();
            for index in oldest {
                self.seal(ino, ctx, index)?;
            }
        }
        if ctx.budget.exceeded() {
            self.seal_all(ino, ctx)?;
        }
        Ok(())
    }

    fn buffer_for(
        &mut self,
        ino: InodeNo,
        ctx: &DataContext<'_>,
        index: u64,
        overwrite_whole: bool,
    ) -> FsResult<&mut BlockBuffer> {
        if !self.buffers.contains_key(&index) {
            let mut buffer = BlockBuffer::new(ctx.block_size as usize);
            let existing = self.blocks.as_ref().and_then(|b| b.get(&index)).copied();
            if let (Some(id), false) = (existing, overwrite_whole) {
                ctx.store
                    .read_into(&id, 0, &mut buffer.bytes)
                    .inspect_err(|err| {
                        tracing::error!(ino = %ino, chunk = %id, "read for update failed: {err}");
                    })?;
                buffer.cover(0, buffer.bytes.len());
            }
            ctx.budget.add(i64::from(ctx.block_size));
            self.buffers.insert(index, buffer);
        }
        // Every caller changes the buffer's bytes next: a copy a freeze took is stale now.
        self.stamps += 1;
        let buffer = self.buffers.get_mut(&index).expect("inserted above");
        buffer.stamp = self.stamps;
        Ok(buffer)
    }

    /// Takes block `index`'s buffer out. The last one out frees the map's node too: an empty
    /// `BTreeMap` keeps its root node, and every file written once would keep one.
    fn unbuffer(&mut self, index: u64) -> Option<BlockBuffer> {
        let buffer = self.buffers.remove(&index);
        self.free_empty_buffers();
        buffer
    }

    fn free_empty_buffers(&mut self) {
        if self.buffers.is_empty() {
            self.buffers = BTreeMap::new();
        }
    }

    /// Moves one buffered block into the chunk store (or makes it a hole if it is all zero).
    fn seal(&mut self, ino: InodeNo, ctx: &DataContext<'_>, index: u64) -> FsResult<()> {
        let Some(buffer) = self.unbuffer(index) else {
            return Ok(());
        };
        ctx.budget.add(-i64::from(ctx.block_size));
        let bs = u64::from(ctx.block_size);
        let valid = self.size.saturating_sub(index * bs).min(bs) as usize;
        if let Err(err) = self.store_block(ino, ctx, index, &buffer.bytes[..valid]) {
            // Keep the data buffered: a later flush may succeed once space is freed.
            ctx.budget.add(i64::from(ctx.block_size));
            self.buffers.insert(index, buffer);
            return Err(err);
        }
        Ok(())
    }

    /// Puts one block's bytes in the chunk store and points the block map at it.
    fn store_block(
        &mut self,
        ino: InodeNo,
        ctx: &DataContext<'_>,
        index: u64,
        data: &[u8],
    ) -> FsResult<()> {
        let chunk = store_block_data(ctx.store, data)?;
        self.set_block(ino, ctx, index, chunk)
    }

    /// Points block `index` at `chunk` (`None`: a hole).
    fn set_block(
        &mut self,
        ino: InodeNo,
        ctx: &DataContext<'_>,
        index: u64,
        chunk: Option<ChunkId>,
    ) -> FsResult<()> {
        let blocks = self.blocks(ino, ctx)?;
        match chunk {
            Some(id) => blocks.insert(index, id),
            None => blocks.remove(&index),
        };
        self.changed.insert(index, chunk);
        Ok(())
    }

    /// What a freeze needs of the file, taken under the file's lock (and the freeze's write
    /// gate): its size, block map and a copy of each buffered block. Copying costs a memcpy
    /// per buffered block (at most 64 per file, `--dirty-limit` in all) where sealing would
    /// hash and compress them while every writer waits; the copies are stored after the
    /// freeze lets writers go, and handed back with [`ContentState::adopt_sealed`] so that
    /// the file does not hash and compress the same bytes again.
    pub fn capture(&mut self, ino: InodeNo, ctx: &DataContext<'_>) -> FsResult<CapturedContent> {
        // A map not in memory, with nothing buffered, is the one last committed: every change
        // loads the map first, and a commit drops it only once its transaction is committed.
        // Its encoding reads it then, instead of a transaction per file under the capture's
        // locks (and a freeze of many files must not leave all their maps loaded).
        let blocks = match (&self.blocks, self.buffers.is_empty()) {
            (None, true) => None,
            _ => Some(
                self.block_map_unkept(ino, ctx)?
                    .iter()
                    .map(|(index, chunk)| (*index, *chunk))
                    .collect(),
            ),
        };
        let bs = u64::from(ctx.block_size);
        let buffered = self
            .buffers
            .iter()
            .map(|(index, buffer)| {
                // As `seal` stores it: the bytes up to the end of the file (the rest are zero,
                // and a short chunk reads as zeros past its end).
                let valid = self.size.saturating_sub(index * bs).min(bs) as usize;
                CapturedBlock {
                    index: *index,
                    stamp: buffer.stamp,
                    bytes: buffer.bytes[..valid].to_vec(),
                }
            })
            .collect();
        Ok(CapturedContent {
            size: self.size,
            blocks,
            buffered,
        })
    }

    /// Seals buffered block `index` as `chunk` (what a freeze stored from its copy of it), if
    /// its bytes did not change since the copy (`stamp`): the same as `seal`, without hashing
    /// and compressing them again. Returns whether it did; if not, the buffer stays and is
    /// sealed as usual. Bytes past the end of the file are zero in a buffer, so the copy
    /// stands for the buffer also if the file grew since; a shrink through the block drops the
    /// buffer or changes it (the tail is zeroed), so it never matches.
    pub fn adopt_sealed(
        &mut self,
        ino: InodeNo,
        ctx: &DataContext<'_>,
        index: u64,
        stamp: u64,
        chunk: Option<ChunkId>,
    ) -> FsResult<bool> {
        if self.buffers.get(&index).is_none_or(|b| b.stamp != stamp) {
            return Ok(false);
        }
        self.unbuffer(index);
        ctx.budget.add(-i64::from(ctx.block_size));
        self.set_block(ino, ctx, index, chunk)?;
        Ok(true)
    }

    /// Seals every buffered block: after this the file's data is all in the chunk store.
    pub fn seal_all(&mut self, ino: InodeNo, ctx: &DataContext<'_>) -> FsResult<()> {
        let indexes: Vec<u64> = self.buffers.keys().copied().collect();
        for index in indexes {
            self.seal(ino, ctx, index)?;
        }
        Ok(())
    }

    pub fn truncate(&mut self, ino: InodeNo, ctx: &DataContext<'_>, new_size: u64) -> FsResult<()> {
        if new_size > MAX_FILE_SIZE {
            return Err(FsError::FileTooLarge);
        }
        let bs = u64::from(ctx.block_size);
        if new_size < self.size {
            let first_gone = new_size.div_ceil(bs);
            let blocks = self.blocks(ino, ctx)?;
            blocks.retain(|index, _| *index < first_gone);
            let dropped = self.buffers.split_off(&first_gone);
            self.free_empty_buffers();
            ctx.budget
                .add(-(dropped.len() as i64) * i64::from(ctx.block_size));
            self.changed.retain(|index, _| *index < first_gone);
            self.dropped_from = Some(self.dropped_from.map_or(first_gone, |d| d.min(first_gone)));
            let tail = (new_size % bs) as usize;
            if tail != 0 {
                // Zero the rest of the last block, so that growing the file again reads zeros.
                let buffer = self.buffer_for(ino, ctx, new_size / bs, false)?;
                buffer.bytes[tail..].fill(0);
            }
        }
        self.size = new_size;
        self.touch_data();
        Ok(())
    }

    /// Makes the bytes `[start, end)` read as zeros without changing the size (bytes past the
    /// end of the file are zero already): `fallocate` punch hole and zero range.
    ///
    /// Whole blocks in the range become holes in the block map (their chunks are no longer
    /// named, so gc can reclaim them), and so does the last block when the range reaches the
    /// end of the file from that block's start. At most two blocks are partly in the range;
    /// each is buffered (its old content loaded) and the range zeroed in the buffer, so the
    /// commit-ordering rule holds as for a write: the next commit stores it before taking the
    /// times. A partial block that is a hole is left alone. The work follows the blocks that
    /// exist, not the length of the range, so punching a terabyte of a sparse file is cheap.
    pub fn zero_range(
        &mut self,
        ino: InodeNo,
        ctx: &DataContext<'_>,
        start: u64,
        end: u64,
    ) -> FsResult<()> {
        let end = end.min(self.size);
        if start < end {
            let bs = u64::from(ctx.block_size);
            let first_whole = start.div_ceil(bs);
            let end_whole = if end == self.size {
                end.div_ceil(bs)
            } else {
                end / bs
            };
            if first_whole < end_whole {
                let holes: Vec<u64> = self
                    .blocks(ino, ctx)?
                    .range(first_whole..end_whole)
                    .map(|(index, _)| *index)
                    .collect();
                let unbuffered: Vec<u64> = self
                    .buffers
                    .range(first_whole..end_whole)
                    .map(|(index, _)| *index)
                    .collect();
                for index in &unbuffered {
                    self.unbuffer(*index);
                    ctx.budget.add(-i64::from(ctx.block_size));
                }
                for index in holes {
                    self.set_block(ino, ctx, index, None)?;
                }
            }
            let mut partial = vec![start / bs, (end - 1) / bs];
            partial.dedup();
            for index in partial {
                if (first_whole..end_whole).contains(&index) {
                    continue;
                }
                let has_data = self.buffers.contains_key(&index)
                    || self.blocks(ino, ctx)?.contains_key(&index);
                if !has_data {
                    continue;
                }
                let block_start = index * bs;
                let from = (start.max(block_start) - block_start) as usize;
                let to = (end.min(block_start + bs) - block_start) as usize;
                let buffer = self.buffer_for(ino, ctx, index, false)?;
                buffer.bytes[from..to].fill(0);
                buffer.cover(from, to);
                if buffer.is_complete() {
                    self.seal(ino, ctx, index)?;
                }
            }
        }
        self.touch_data();
        self.limit_buffers(ino, ctx)
    }

    pub fn touch_data(&mut self) {
        let now = Timestamp::now();
        self.mtime = now;
        self.ctime = now;
        self.attrs_changed = true;
    }

    pub fn set_times(&mut self, mtime: Option<Timestamp>, ctime: Timestamp) {
        if let Some(mtime) = mtime {
            self.mtime = mtime;
        }
        self.ctime = ctime;
        self.attrs_changed = true;
    }

    /// Takes what the next commit must write, first storing every buffered block: a commit
    /// must never record a size or times that come from after data it does not hold (the
    /// `data=ordered` rule; see "Commit ordering" in docs/ARCHITECTURE.md).
    ///
    /// If a block cannot be stored (a full disk), nothing of the file's content is taken: the
    /// commit records its last committed size and times again, and the changes wait, buffered,
    /// for a later commit (the file stays dirty).
    pub fn take_changes(&mut self, ino: InodeNo, ctx: &DataContext<'_>) -> ContentChanges {
        if let Err(err) = self.seal_all(ino, ctx) {
            tracing::warn!(ino = %ino, "a commit could not store the file's buffered data: {err}");
            return ContentChanges {
                size: self.committed.0,
                mtime: self.committed.1,
                ctime: self.committed.2,
                blocks: BlockChanges::default(),
            };
        }
        self.attrs_changed = false;
        self.committed = (self.size, self.mtime, self.ctime);
        ContentChanges {
            size: self.size,
            mtime: self.mtime,
            ctime: self.ctime,
            blocks: BlockChanges {
                dropped_from: self.dropped_from.take(),
                set: std::mem::take(&mut self.changed).into_iter().collect(),
            },
        }
    }

    /// Drops the in-memory block map of a clean file nobody has open.
    pub fn evict(&mut self) {
        if !self.is_dirty()
            && let Some(blocks) = self.blocks.take()
        {
            self.stored_blocks = Some(blocks.len() as u64);
        }
    }

    /// Releases the memory of a file that was deleted.
    pub fn discard(&mut self, ctx: &DataContext<'_>) {
        ctx.budget
            .add(-(self.buffers.len() as i64) * i64::from(ctx.block_size));
        self.buffers.clear();
        self.blocks = None;
        self.stored_blocks = None;
        self.changed.clear();
        self.attrs_changed = false;
        self.dropped_from = None;
    }
}

#[cfg(test)]
mod tests {
    use super::BlockBuffer;

    #[test]
    fn coverage_merges_out_of_order_writes() {
        let mut buffer = BlockBuffer::new(100);
        buffer.cover(50, 100);
        assert!(!buffer.is_complete());
        buffer.cover(0, 20);
        buffer.cover(30, 40);
        assert_eq!(buffer.known, [(0, 20), (30, 40), (50, 100)]);
        buffer.cover(20, 30);
        assert_eq!(buffer.known, [(0, 40), (50, 100)]);
        buffer.cover(35, 60);
        assert!(buffer.is_complete());
    }
}
