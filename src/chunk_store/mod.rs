//! The chunk store: blocks of file data stored once under their blake3 hash, compressed, in
//! append-only pack files, and verified on every read.
//!
//! Invariants:
//! - A chunk's location is published (to readers and to the index) only after its whole frame is
//!   in the pack file, so a reader never sees a partly written frame.
//! - The committed index only names frames that were fsynced before the index was committed:
//!   a commit stages the published chunks ([`ChunkStore::stage_commit`]), then syncs the packs
//!   ([`ChunkStore::sync`]), then commits, so every staged frame was written before the sync.
//! - A read returns bytes whose blake3 hash is the id asked for, or an error: never other bytes.
//! - In a tiered store (one with [`RemotePacks`]), a sealed pack's bytes may be missing from the
//!   local file (evicted: a hole). A frame counts as present only if its header names the chunk
//!   asked for; otherwise it is fetched from the object store, written back whole, and read
//!   again. Eviction and filling change a pack's bytes only while no reader is inside it.

mod codec;
pub mod index;
mod pack;
mod space;

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::{Mutex, RwLock};
use redb::{Database, ReadableDatabase, WriteTransaction};

use crate::format::location::ChunkLocation;
use crate::format::pack::{Codec, FRAME_HEADER_LEN, FrameHeader, PACK_HEADER_LEN};
use crate::id::{ChunkId, PackId};
use pack::PackWriter;

pub use codec::{StoredChunk, VerifiedChunk, verify_frame_copy, verify_stored};
pub use pack::{PACK_DIR, PackFile, pack_path};

/// Where a tiered store's sealed packs are kept whole: the object store, seen by the chunk store
/// as byte ranges of packs (implemented by the tier layer, which knows the bucket).
pub trait RemotePacks: Send + Sync {
    /// The bytes `range` of pack `pack` as uploaded.
    fn read(&self, pack: PackId, range: Range<u64>) -> Result<Vec<u8>, String>;
}

/// How much is fetched from the object store when a read finds a frame missing: the frame and
/// the ones after it up to this size (whole frames only), since a file's data lies together in
/// a pack and a reader of one block is likely to want the next.
const FILL_WINDOW: u64 = 4 << 20;

/// After a read fetched a window, the windows after it are fetched ahead on a thread of their
/// own, up to this many, all at once (one ranged GET each), so that a sequential reader finds
/// them cached rather than waiting for the object store at every window, and the object store
/// serves several requests at a time rather than one.
const PREFETCH_WINDOWS: u64 = 3;

/// A pack as the tier sees it for caching decisions.
#[derive(Clone, Debug)]
pub struct CachedPack {
    pub id: PackId,
    /// Its committed (for a sealed pack: final) length.
    pub len: u64,
    /// Bytes of the local disk it takes.
    pub allocated: u64,
    /// Read ticks: larger is more recent.
    pub last_used: u64,
    /// Nothing is or will be appended to it, and no frame is being written into it.
    pub sealed: bool,
}

/// Why a chunk could not be stored or read.
#[derive(Debug, thiserror::Error)]
pub enum ChunkStoreError {
    #[error("chunk {0} is missing from the store")]
    Missing(ChunkId),
    #[error("chunk {id} is damaged: {reason}")]
    Corrupt { id: ChunkId, reason: String },
    // Not `#[source]`s: the text is already in the message, and chains would print it twice.
    #[error("chunk store I/O error: {0}")]
    Io(io::Error),
    #[error("chunk index error: {0}")]
    Index(redb::Error),
    #[error("chunk {id} is not in the local cache and cannot be fetched: {reason}")]
    Unavailable { id: ChunkId, reason: String },
}

/// A walk over the store (verify) that kept what it saw in a scratch file could not use it.
impl From<crate::storage::spill_set::SpillError> for ChunkStoreError {
    fn from(err: crate::storage::spill_set::SpillError) -> Self {
        ChunkStoreError::Io(err.into())
    }
}

impl From<io::Error> for ChunkStoreError {
    fn from(err: io::Error) -> Self {
        ChunkStoreError::Io(err)
    }
}

impl From<redb::Error> for ChunkStoreError {
    fn from(err: redb::Error) -> Self {
        ChunkStoreError::Index(err)
    }
}

impl ChunkStoreError {
    fn corrupt(id: ChunkId, reason: impl Into<String>) -> Self {
        ChunkStoreError::Corrupt {
            id,
            reason: reason.into(),
        }
    }
}

/// What a commit staged into the index: the chunks (forgotten from the pending map once the
/// commit is durable) and how the stored bytes changed (for space accounting).
#[derive(Debug, Default)]
pub struct StagedCommit {
    pub ids: Vec<ChunkId>,
    pub stored: index::StoredChange,
}

/// Space the store takes, as reported by `statfs` and `status`.
#[derive(Clone, Copy, Debug, Default)]
pub struct StoreUsage {
    pub pack_bytes: u64,
}

/// Content-addressed storage of chunks in pack files.
pub struct ChunkStore {
    pack_dir: PathBuf,
    db: Arc<Database>,
    /// Every pack readable now, by number.
    packs: RwLock<HashMap<PackId, Arc<PackFile>>>,
    /// The pack being appended to; created on the first write of a mount.
    writer: Mutex<PackWriter>,
    /// Chunks written to packs but not yet in the committed index.
    pending: Mutex<HashMap<ChunkId, ChunkLocation>>,
    read_since_release: AtomicU64,
    /// Frames read and verified since the store was opened (see [`ChunkStore::frames_read`]).
    frames_read: AtomicU64,
    /// Keeps new data from taking the last of the disk (see [`space::SpaceGuard`]).
    space: space::SpaceGuard,
    /// Taken shared by every dedup check, exclusively while a sweep removes chunks.
    sweep_lock: RwLock<()>,
    /// While a collection runs: chunks that writers found and reused, which it must keep even
    /// if its marking did not see them referenced.
    reused_during_gc: Mutex<Option<HashSet<ChunkId>>>,
    /// The object store holding the sealed packs of a tiered store; unset otherwise.
    remote: OnceLock<Arc<dyn RemotePacks>>,
    /// Counts frame reads, to order packs by last use.
    read_ticks: AtomicU64,
    /// Bytes of frames appended since the store was opened (see [`ChunkStore::appended_bytes`]).
    appended: AtomicU64,
}

/// Bytes of mapped pages read between two releases of them: the bound on the mapped part of the
/// daemon's resident set, and rare enough that the TLB shootdowns a release costs stay cheap
/// (every 128 frames of 128 KiB). A frame counts at least a page, the least a read maps: a walk
/// over a snapshot reads frames of a few hundred bytes, and counting their bytes alone left
/// 47 MiB of pack pages resident after a `find` over a snapshot of 1,000,000 files.
const RELEASE_MAPPED_EVERY: u64 = 16 << 20;
/// The page size a read maps at least (x86-64, arm64 with 4 KiB pages; larger pages only make
/// the bound looser).
const MAPPED_PAGE: u64 = 4096;

impl ChunkStore {
    /// Opens the packs of a store, first cutting every pack back to the length the last commit
    /// recorded (a crash may have left frames that no committed index entry names) and deleting
    /// packs that no commit recorded at all.
    pub fn open(store_dir: &Path, db: Arc<Database>) -> Result<Self, ChunkStoreError> {
        let pack_dir = store_dir.join(PACK_DIR);
        let committed = index::committed_pack_lengths(&db)?;
        let mut packs = HashMap::new();
        let mut next_pack = 1;
        for entry in fs::read_dir(&pack_dir)? {
            let path = entry?.path();
            let Some(id) = pack::parse_pack_name(&path) else {
                continue;
            };
            next_pack = next_pack.max(id.0 + 1);
            match committed.get(&id) {
                None => {
                    tracing::info!(pack = %id, "removing a pack that no commit recorded");
                    fs::remove_file(&path)?;
                }
                Some(&length) => {
                    packs.insert(id, Arc::new(PackFile::open_sealed(&path, id, length)?));
                }
            }
        }
        for id in committed.keys() {
            if !packs.contains_key(id) {
                tracing::error!(pack = %id, "pack file is missing; chunks in it will read as EIO");
            }
            next_pack = next_pack.max(id.0 + 1);
        }
        Ok(ChunkStore {
            writer: Mutex::new(PackWriter::new(pack_dir.clone(), PackId(next_pack))),
            pack_dir,
            db,
            packs: RwLock::new(packs),
            pending: Mutex::new(HashMap::new()),
            read_since_release: AtomicU64::new(0),
            frames_read: AtomicU64::new(0),
            space: space::SpaceGuard::default(),
            sweep_lock: RwLock::new(()),
            reused_during_gc: Mutex::new(None),
            remote: OnceLock::new(),
            appended: AtomicU64::new(0),
            read_ticks: AtomicU64::new(0),
        })
    }

    /// Makes this a tiered store's chunk store: frames missing from a pack are fetched from
    /// `remote`; packs are closed at `pack_size` (what is uploaded at a time); and no pack number
    /// up to `highest_uploaded` is used again (the object store may still hold that pack).
    pub fn set_remote(
        &self,
        remote: Arc<dyn RemotePacks>,
        pack_size: u64,
        highest_uploaded: Option<PackId>,
    ) {
        let mut writer = self.writer.lock();
        writer.set_capacity(pack_size);
        if let Some(id) = highest_uploaded {
            writer.skip_past(id);
        }
        let _ = self.remote.set(remote);
    }

    /// Creates the pack directory of a new store.
    pub fn create(store_dir: &Path) -> io::Result<()> {
        crate::storage::durable::create_dir(&store_dir.join(PACK_DIR))
    }

    /// Stores `data` (at most one block) and returns its id. Data already present is not written
    /// again. Hashing and compression run on the caller's thread, outside every lock; only the
    /// reservation of space in the pack is serialised.
    pub fn put(&self, data: &[u8]) -> Result<ChunkId, ChunkStoreError> {
        let id = ChunkId::of(data);
        if self.reuse(&id)? {
            return Ok(id);
        }
        self.space.check(&self.pack_dir, data.len() as u64)?;
        let compressed = codec::compress(data);
        let stored = match &compressed {
            Some(smaller) => StoredChunk {
                codec: Codec::Zstd,
                raw_len: data.len() as u32,
                payload: smaller,
            },
            None => StoredChunk {
                codec: Codec::Raw,
                raw_len: data.len() as u32,
                payload: data,
            },
        };
        self.write_frame(id, stored)?;
        Ok(id)
    }

    /// Stores a chunk received in its stored form (from a vault) and checked on the way in,
    /// as it is: neither hashed nor compressed again.
    pub fn put_verified(&self, chunk: VerifiedChunk<'_>) -> Result<ChunkId, ChunkStoreError> {
        if !self.reuse(&chunk.id)? {
            self.space
                .check(&self.pack_dir, chunk.stored.payload.len() as u64)?;
            self.write_frame(chunk.id, chunk.stored)?;
        }
        Ok(chunk.id)
    }

    /// Whether chunk `id` is already stored (and then counted as reused, should a gc be
    /// marking).
    fn reuse(&self, id: &ChunkId) -> Result<bool, ChunkStoreError> {
        // Shared with other writers, exclusive with a sweep: a chunk found here cannot be
        // swept before the caller has recorded its new reference.
        let _sweep = self.sweep_lock.read();
        if !self.contains(id)? {
            return Ok(false);
        }
        if let Some(reused) = self.reused_during_gc.lock().as_mut() {
            reused.insert(*id);
        }
        Ok(true)
    }

    /// Appends the frame of chunk `id` to the active pack and publishes its location.
    fn write_frame(&self, id: ChunkId, stored: StoredChunk<'_>) -> Result<(), ChunkStoreError> {
        let payload = stored.payload;
        let header = FrameHeader {
            codec: stored.codec,
            raw_len: stored.raw_len,
            stored_len: payload.len() as u32,
            chunk_id: id,
        };
        let (pack, offset, created) = self.writer.lock().reserve(header.frame_len())?;
        if let Some(new_pack) = created {
            self.packs.write().insert(new_pack.id, new_pack);
        }
        let written = pack.write_frame(offset, &header, payload);
        if written.is_ok() {
            self.appended
                .fetch_add(u64::from(header.frame_len() as u32), Ordering::Relaxed);
            let location = ChunkLocation {
                pack: pack.id,
                offset,
                frame_len: header.frame_len() as u32,
            };
            self.pending.lock().insert(id, location);
        }
        pack.frame_done();
        Ok(written?)
    }

    fn contains(&self, id: &ChunkId) -> Result<bool, ChunkStoreError> {
        Ok(self.locate(id)?.is_some())
    }

    fn locate(&self, id: &ChunkId) -> Result<Option<ChunkLocation>, ChunkStoreError> {
        if let Some(location) = self.pending.lock().get(id) {
            return Ok(Some(*location));
        }
        let txn = self.db.begin_read().map_err(redb::Error::from)?;
        index::lookup(&txn, id)
    }

    /// Where each of `ids` lies (`None` for a chunk the store lacks), read in one transaction.
    pub fn locate_all(
        &self,
        ids: &[ChunkId],
    ) -> Result<Vec<Option<ChunkLocation>>, ChunkStoreError> {
        let pending = self.pending.lock();
        let txn = self.db.begin_read().map_err(redb::Error::from)?;
        ids.iter()
            .map(|id| match pending.get(id) {
                Some(location) => Ok(Some(*location)),
                None => index::lookup(&txn, id),
            })
            .collect()
    }

    /// Asks the kernel to start reading the frames of `ids`, in as few ranges as their places
    /// allow, so that a reader going through many chunks at once (a backup) finds the next ones
    /// in the page cache instead of waiting for each in turn. Only a hint: unknown chunks are
    /// skipped, and an evicted frame of a tiered store is fetched when it is read, as always.
    pub fn read_ahead(&self, ids: &[ChunkId]) -> Result<(), ChunkStoreError> {
        /// Frames closer than this are read in one range.
        const GAP: u64 = 256 << 10;
        let mut frames: Vec<(PackId, u64, u64)> = self
            .locate_all(ids)?
            .into_iter()
            .flatten()
            .map(|at| (at.pack, at.offset, at.offset + u64::from(at.frame_len)))
            .collect();
        frames.sort_unstable();
        let mut ranges: Vec<(PackId, u64, u64)> = Vec::new();
        for (pack, start, end) in frames {
            match ranges.last_mut() {
                Some(last) if last.0 == pack && start <= last.2 + GAP => last.2 = last.2.max(end),
                _ => ranges.push((pack, start, end)),
            }
        }
        for (pack, start, end) in ranges {
            if let Some(pack) = self.pack(pack) {
                pack.will_need(start, end);
            }
        }
        Ok(())
    }

    /// Reads and verifies a chunk.
    pub fn get(&self, id: &ChunkId) -> Result<Vec<u8>, ChunkStoreError> {
        self.with_chunk(id, |data| data.to_vec())
    }

    /// Verifies chunk `id` and copies its bytes from `offset` on into `out`; returns how many
    /// were copied (fewer than `out.len()` when the chunk ends first). A raw chunk is hashed
    /// where it lies in the mapped pack and copied once, straight into `out`.
    pub fn read_into(
        &self,
        id: &ChunkId,
        offset: usize,
        out: &mut [u8],
    ) -> Result<usize, ChunkStoreError> {
        self.with_chunk(id, |data| {
            let available = data.get(offset..).unwrap_or_default();
            let n = available.len().min(out.len());
            out[..n].copy_from_slice(&available[..n]);
            n
        })
    }

    /// Makes chunk `id` present in a tiered store's local cache, verified: an evicted frame
    /// is fetched (with the whole frames after it, as any read does). Returns the pack it
    /// lies in, and its frame's length if it had to be fetched.
    pub fn recall(&self, id: &ChunkId) -> Result<(PackId, Option<u32>), ChunkStoreError> {
        let location = self.locate(id)?.ok_or(ChunkStoreError::Missing(*id))?;
        let present = self.packs.read().get(&location.pack).is_some_and(|pack| {
            let _resident = pack.residence.read();
            pack.frame(location.offset, location.frame_len)
                .is_some_and(|frame| frame_is_present(id, frame))
        });
        self.with_chunk_at(id, &location, |_| ())?;
        Ok((location.pack, (!present).then_some(location.frame_len)))
    }

    /// The pack chunk `id` lies in, if the store has it.
    pub fn pack_of(&self, id: &ChunkId) -> Result<Option<PackId>, ChunkStoreError> {
        Ok(self.locate(id)?.map(|location| location.pack))
    }

    /// Checks that a chunk is indexed and that its frame lies inside a pack that exists,
    /// without reading it.
    pub fn check_present(&self, id: &ChunkId) -> Result<(), ChunkStoreError> {
        let location = self.locate(id)?.ok_or(ChunkStoreError::Missing(*id))?;
        let packs = self.packs.read();
        let pack = packs.get(&location.pack).ok_or_else(|| {
            ChunkStoreError::corrupt(*id, format!("pack {} is missing", location.pack))
        })?;
        if location.offset + u64::from(location.frame_len) > pack.written_len() {
            return Err(ChunkStoreError::corrupt(
                *id,
                format!("pack {} is shorter than the index says", location.pack),
            ));
        }
        Ok(())
    }

    fn with_chunk<T>(
        &self,
        id: &ChunkId,
        use_data: impl FnOnce(&[u8]) -> T,
    ) -> Result<T, ChunkStoreError> {
        let location = self.locate(id)?.ok_or(ChunkStoreError::Missing(*id))?;
        self.with_chunk_at(id, &location, use_data)
    }

    fn with_chunk_at<T>(
        &self,
        id: &ChunkId,
        location: &ChunkLocation,
        use_data: impl FnOnce(&[u8]) -> T,
    ) -> Result<T, ChunkStoreError> {
        self.with_frame_at(id, location, |frame| {
            codec::with_verified_frame(*id, frame, use_data)
        })
    }

    /// Verifies chunk `id` and hands over its payload as stored (still compressed if it is):
    /// what a copy into another store (a vault) sends without compressing it again.
    pub fn with_stored<T>(
        &self,
        id: &ChunkId,
        use_stored: impl FnOnce(StoredChunk<'_>) -> T,
    ) -> Result<T, ChunkStoreError> {
        let location = self.locate(id)?.ok_or(ChunkStoreError::Missing(*id))?;
        self.with_frame_at(id, &location, |frame| {
            codec::with_verified_stored(*id, frame, use_stored)
        })
    }

    /// Finds the frame at `location` in its mapped pack and hands it to `verify`; in a tiered
    /// store, a frame missing from the pack is fetched first.
    fn with_frame_at<T>(
        &self,
        id: &ChunkId,
        location: &ChunkLocation,
        verify: impl FnOnce(&[u8]) -> Result<T, ChunkStoreError>,
    ) -> Result<T, ChunkStoreError> {
        let pack = self
            .packs
            .read()
            .get(&location.pack)
            .cloned()
            .ok_or_else(|| {
                ChunkStoreError::corrupt(*id, format!("pack {} is missing", location.pack))
            })?;
        let mut filled = false;
        loop {
            {
                let _resident = pack.residence.read();
                let frame = pack
                    .frame(location.offset, location.frame_len)
                    .ok_or_else(|| {
                        ChunkStoreError::corrupt(
                            *id,
                            format!("pack {} is shorter than the index says", location.pack),
                        )
                    })?;
                let remote = self.remote.get();
                if remote.is_none() || filled || frame_is_present(id, frame) {
                    if let Some(remote) = remote {
                        let tick = self.read_ticks.fetch_add(1, Ordering::Relaxed);
                        pack.last_used.store(tick, Ordering::Relaxed);
                        self.continue_prefetch(&pack, remote, location.offset);
                    }
                    let result = verify(frame);
                    self.note_read(location.frame_len);
                    return result;
                }
            }
            self.fill_from_remote(id, &pack, location)?;
            filled = true;
        }
    }

    /// Fetches the frame at `location` and the whole frames after it (up to [`FILL_WINDOW`])
    /// from the object store, and writes them into the local pack.
    fn fill_from_remote(
        &self,
        id: &ChunkId,
        pack: &Arc<PackFile>,
        location: &ChunkLocation,
    ) -> Result<(), ChunkStoreError> {
        let Some(remote) = self.remote.get() else {
            return Ok(());
        };
        let _filling = pack.filling.lock();
        {
            // Another reader may have fetched it while this one waited.
            let _resident = pack.residence.read();
            if pack
                .frame(location.offset, location.frame_len)
                .is_some_and(|frame| frame_is_present(id, frame))
            {
                return Ok(());
            }
        }
        let frame_end = location.offset + u64::from(location.frame_len);
        let end = (location.offset + FILL_WINDOW)
            .max(frame_end)
            .min(pack.written_len());
        let unavailable = |reason: String| ChunkStoreError::Unavailable { id: *id, reason };
        let bytes = remote
            .read(pack.id, location.offset..end)
            .map_err(|err| unavailable(format!("pack {}: {err}", pack.id)))?;
        let whole = whole_frames(&[&bytes], u64::from(location.frame_len));
        {
            let _exclusive = pack.residence.write();
            pack.fill(location.offset, &bytes[..whole]).map_err(|err| {
                unavailable(format!("writing pack {} into the cache: {err}", pack.id))
            })?;
        }
        drop(_filling);
        let next = location.offset + whole as u64;
        if next < pack.written_len() {
            prefetch(pack.clone(), remote.clone(), next);
        } else {
            // The rest of the pack came along: the next read near its end prefetches the
            // next pack.
            pack.prefetched_to.store(next, Ordering::Release);
        }
        Ok(())
    }

    /// Starts the next prefetch of `pack` when a reader at `offset` comes within two windows of
    /// where the last one stopped (once: the mark is taken before the thread starts). At the
    /// end of the pack it goes on with the next pack, where data written after it lies.
    fn continue_prefetch(&self, pack: &Arc<PackFile>, remote: &Arc<dyn RemotePacks>, offset: u64) {
        let ahead = pack.prefetched_to.load(Ordering::Relaxed);
        if ahead == 0 || offset + 2 * FILL_WINDOW < ahead {
            return;
        }
        if pack
            .prefetched_to
            .compare_exchange(ahead, 0, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        if ahead < pack.written_len() {
            prefetch(pack.clone(), remote.clone(), ahead);
        } else if let Some(next) = self.pack(PackId(pack.id.0 + 1)) {
            prefetch(next, remote.clone(), PACK_HEADER_LEN as u64);
        }
    }

    /// Every [`RELEASE_MAPPED_EVERY`] bytes read, drops the mapped pages of every pack read
    /// from, which bounds the daemon's resident set however much data streams through.
    fn note_read(&self, len: u32) {
        self.frames_read.fetch_add(1, Ordering::Relaxed);
        let mapped = u64::from(len).max(MAPPED_PAGE);
        let before = self.read_since_release.fetch_add(mapped, Ordering::Relaxed);
        if before + mapped >= RELEASE_MAPPED_EVERY {
            self.read_since_release.store(0, Ordering::Relaxed);
            for pack in self.packs.read().values() {
                pack.release_pages();
            }
        }
    }

    /// How many frames were read and verified since the store was opened: what a walk cost.
    pub fn frames_read(&self) -> u64 {
        self.frames_read.load(Ordering::Relaxed)
    }

    /// Makes every frame written so far durable.
    pub fn sync(&self) -> io::Result<()> {
        let packs = self.writer.lock().packs_written();
        for pack in packs {
            pack.sync()?;
        }
        Ok(())
    }

    /// Writes the chunks published so far, and the length of every pack written to, into `txn`.
    /// Then call [`ChunkStore::sync`] before committing `txn`, and [`ChunkStore::committed`] with
    /// the returned list once it is committed.
    pub fn stage_commit(&self, txn: &WriteTransaction) -> Result<StagedCommit, ChunkStoreError> {
        let staged: Vec<(ChunkId, ChunkLocation)> = self
            .pending
            .lock()
            .iter()
            .map(|(id, loc)| (*id, *loc))
            .collect();
        let stored = index::insert(txn, &staged)?;
        let lengths: Vec<(PackId, u64)> = self
            .packs
            .read()
            .values()
            .filter(|pack| pack.is_active())
            .map(|pack| (pack.id, pack.written_len()))
            .collect();
        index::record_pack_lengths(txn, &lengths)?;
        Ok(StagedCommit {
            ids: staged.into_iter().map(|(id, _)| id).collect(),
            stored,
        })
    }

    /// Forgets pending entries that are now in the committed index.
    pub fn committed(&self, ids: &[ChunkId]) {
        let mut pending = self.pending.lock();
        for id in ids {
            pending.remove(id);
        }
    }

    /// Starts recording reused chunks for a collection (see `gc`).
    pub fn begin_gc(&self) {
        *self.reused_during_gc.lock() = Some(HashSet::new());
    }

    /// Stops recording reused chunks.
    pub fn end_gc(&self) {
        *self.reused_during_gc.lock() = None;
    }

    /// Every committed chunk with its location.
    pub fn committed_chunks(&self) -> Result<Vec<(ChunkId, ChunkLocation)>, ChunkStoreError> {
        let txn = self.db.begin_read().map_err(redb::Error::from)?;
        index::all(&txn)
    }

    /// The committed index as it is now, to read through later (however it changes meanwhile)
    /// without holding it in memory: what a collection may sweep, read once its marking is
    /// done.
    pub fn committed_index(&self) -> Result<index::CommittedIndex, ChunkStoreError> {
        index::CommittedIndex::of(&self.db.begin_read().map_err(redb::Error::from)?)
    }

    /// Removes from the index the chunks of `garbage` that no writer reused since the
    /// collection began, in one durable transaction; returns how many were removed. Writers'
    /// dedup checks wait meanwhile, so none can pick up a chunk as it goes.
    /// `account` runs in the same transaction with the chunks removed and their frame lengths.
    pub fn sweep<E: From<ChunkStoreError>>(
        &self,
        garbage: &[ChunkId],
        account: impl FnOnce(&WriteTransaction, &[(ChunkId, u32)]) -> Result<(), E>,
    ) -> Result<Vec<ChunkId>, E> {
        let _exclusive = self.sweep_lock.write();
        let reused = self.reused_during_gc.lock().clone().unwrap_or_default();
        let removed: Vec<ChunkId> = garbage
            .iter()
            .filter(|id| !reused.contains(id) && !self.pending.lock().contains_key(id))
            .copied()
            .collect();
        let txn = self
            .db
            .begin_write()
            .map_err(|e| ChunkStoreError::from(redb::Error::from(e)))?;
        let gone = index::remove(&txn, &removed).map_err(ChunkStoreError::from)?;
        account(&txn, &gone)?;
        txn.commit()
            .map_err(|e| ChunkStoreError::from(redb::Error::from(e)))?;
        Ok(removed)
    }

    /// Stops appending to the current pack, so a collection can compact it too.
    /// Bytes of frames appended to packs since the store was opened: how a tiered store tells,
    /// between two looks at its packs, how much was written that is not uploaded yet.
    pub fn appended_bytes(&self) -> u64 {
        self.appended.load(Ordering::Relaxed)
    }

    pub fn seal_active_pack(&self) {
        self.writer.lock().seal_current();
    }

    /// Packs compaction may rewrite, with their sizes: nothing is appended to them, no frame
    /// is being written into them, and every chunk in them is committed.
    pub fn sealed_packs(&self) -> Vec<(PackId, u64)> {
        let writer = self.writer.lock();
        let pending = self.pending.lock();
        self.packs
            .read()
            .values()
            .filter(|pack| {
                !writer.is_current(pack.id)
                    && !pack.has_frames_in_flight()
                    && !pending.values().any(|l| l.pack == pack.id)
            })
            .map(|pack| (pack.id, pack.written_len()))
            .collect()
    }

    /// Copies the frames of `chunks` (all in one sealed pack) to the active pack and publishes
    /// their new locations; the next commit makes the move durable. A frame that fails
    /// verification is left behind and reported.
    pub fn relocate(
        &self,
        chunks: &[(ChunkId, ChunkLocation)],
    ) -> Result<Vec<ChunkId>, ChunkStoreError> {
        let mut damaged = Vec::new();
        for (id, location) in chunks {
            // Verified, then written anew as stored (not compressed again), at a fresh
            // location: put() would find the old one.
            let moved = self.with_frame_at(id, location, |frame| {
                codec::with_verified_stored(*id, frame, |stored| self.write_frame(*id, stored))
            });
            match moved {
                Ok(written) => written?,
                Err(err) => {
                    tracing::error!(chunk = %id, "not moved by compaction: {err}");
                    damaged.push(*id);
                }
            }
        }
        Ok(damaged)
    }

    /// Forgets a pack whose chunks were all moved or swept, durably, then deletes its file.
    pub fn drop_pack(&self, id: PackId) -> Result<u64, ChunkStoreError> {
        let txn = self.db.begin_write().map_err(redb::Error::from)?;
        index::forget_pack(&txn, id)?;
        txn.commit().map_err(redb::Error::from)?;
        if self.packs.write().remove(&id).is_none() {
            return Ok(0);
        }
        self.writer.lock().forget(id);
        let path = pack::pack_path(&self.pack_dir, id);
        let size = std::fs::metadata(&path).map_or(0, |m| m.len());
        std::fs::remove_file(&path)?;
        // Makes the removal durable, and makes the file system commit it now: ext4 counts the
        // freed space as available only once its journal has committed the delete, and a
        // writer waiting on a full disk should not have to wait for the next journal commit.
        crate::storage::durable::sync_parent(&path)?;
        Ok(size)
    }

    /// Every pack, as the tier's cache sees it.
    pub fn cached_packs(&self) -> Vec<CachedPack> {
        let writer = self.writer.lock();
        self.packs
            .read()
            .values()
            .map(|pack| CachedPack {
                id: pack.id,
                len: pack.written_len(),
                allocated: pack.allocated_bytes().unwrap_or(0),
                last_used: pack.last_used.load(Ordering::Relaxed),
                sealed: !writer.is_current(pack.id) && !pack.has_frames_in_flight(),
            })
            .collect()
    }

    /// The pack `id`, if the store has it.
    pub fn pack(&self, id: PackId) -> Option<Arc<PackFile>> {
        self.packs.read().get(&id).cloned()
    }

    /// Gives back the local disk space of sealed pack `id`, whose bytes the caller has made
    /// safe elsewhere (uploaded); returns the bytes freed. Its frames are fetched again when
    /// read.
    pub fn evict(&self, id: PackId) -> io::Result<u64> {
        let Some(pack) = self.pack(id) else {
            return Ok(0);
        };
        {
            let writer = self.writer.lock();
            if writer.is_current(id) || pack.has_frames_in_flight() {
                return Ok(0);
            }
        }
        let before = pack.allocated_bytes()?;
        let _exclusive = pack.residence.write();
        pack.punch_out()?;
        pack.release_pages();
        Ok(before.saturating_sub(pack.allocated_bytes()?))
    }

    pub fn usage(&self) -> StoreUsage {
        StoreUsage {
            pack_bytes: self.packs.read().values().map(|p| p.written_len()).sum(),
        }
    }
}

/// Fetches up to [`PREFETCH_WINDOWS`] windows of `pack` from `start` (a frame boundary) on, on
/// a thread of its own, the windows in parallel, and caches the whole frames they hold together;
/// it stops short at the end of the pack or at a frame already cached, and gives up at the first
/// failure (a reader then fetches what it needs itself). Readers missing a frame meanwhile wait
/// on the pack's `filling` lock, then find it cached.
fn prefetch(pack: Arc<PackFile>, remote: Arc<dyn RemotePacks>, start: u64) {
    let spawned = std::thread::Builder::new()
        .name("snapfs-prefetch".into())
        .spawn(move || {
            let _filling = pack.filling.lock();
            let len = pack.written_len();
            if start >= len {
                return;
            }
            {
                let _resident = pack.residence.read();
                let cached = pack
                    .frame(start, FRAME_HEADER_LEN as u32)
                    .is_some_and(|header| FrameHeader::decode(header).is_ok());
                if cached {
                    return;
                }
            }
            let end = (start + PREFETCH_WINDOWS * FILL_WINDOW).min(len);
            let windows: Vec<Range<u64>> = (start..end)
                .step_by(FILL_WINDOW as usize)
                .map(|from| from..(from + FILL_WINDOW).min(end))
                .collect();
            let fetched: Vec<Result<Vec<u8>, String>> = std::thread::scope(|scope| {
                let handles: Vec<_> = windows
                    .iter()
                    .map(|range| scope.spawn(|| remote.read(pack.id, range.clone())))
                    .collect();
                handles
                    .into_iter()
                    .map(|handle| handle.join().unwrap_or_else(|_| Err("panicked".into())))
                    .collect()
            });
            // The windows up to the first that failed, each written where it lies: gathering
            // them into one buffer first would copy every byte once more.
            let windows: Vec<Vec<u8>> = fetched.into_iter().map_while(Result::ok).collect();
            let slices: Vec<&[u8]> = windows.iter().map(Vec::as_slice).collect();
            let mut header = [0u8; FRAME_HEADER_LEN];
            if !copy_at(&slices, 0, &mut header) {
                return;
            }
            let Ok(first) = FrameHeader::decode(&header) else {
                return;
            };
            let fetched_len: usize = slices.iter().map(|window| window.len()).sum();
            if first.frame_len() > fetched_len as u64 {
                return;
            }
            let whole = whole_frames(&slices, first.frame_len());
            {
                let _exclusive = pack.residence.write();
                // Last window first: no frame's header is written before the bytes of it that
                // lie in a later window (a header is what makes a frame read as present).
                let mut window_start = fetched_len;
                for window in slices.iter().rev() {
                    window_start -= window.len();
                    if window_start >= whole {
                        continue;
                    }
                    let len = window.len().min(whole - window_start);
                    if pack
                        .fill(start + window_start as u64, &window[..len])
                        .is_err()
                    {
                        return;
                    }
                }
            }
            pack.prefetched_to
                .store(start + whole as u64, Ordering::Release);
        });
    if let Err(err) = spawned {
        tracing::debug!("no prefetch thread: {err}");
    }
}

/// Whether `frame` holds chunk `id` (a hole, or bytes of another frame, do not).
fn frame_is_present(id: &ChunkId, frame: &[u8]) -> bool {
    FrameHeader::decode(frame)
        .is_ok_and(|header| header.chunk_id == *id && header.frame_len() == frame.len() as u64)
}

/// How many leading bytes of `bytes` (fetched from a frame boundary on) are whole frames: the
/// first `first_len` bytes always (the frame asked for, verified when read), then each frame
/// whose header decodes and whose end lies inside `bytes`.
fn whole_frames(windows: &[&[u8]], first_len: u64) -> usize {
    let total: usize = windows.iter().map(|window| window.len()).sum();
    let mut end = first_len.min(total as u64) as usize;
    let mut header = [0u8; FRAME_HEADER_LEN];
    while copy_at(windows, end, &mut header) {
        let Ok(header) = FrameHeader::decode(&header) else {
            break;
        };
        let Ok(len) = usize::try_from(header.frame_len()) else {
            break;
        };
        if len > total - end {
            break;
        }
        end += len;
    }
    end
}

/// Fills `out` with the bytes at `at` of `windows` taken one after another; false if they end
/// first.
fn copy_at(windows: &[&[u8]], mut at: usize, out: &mut [u8]) -> bool {
    let mut filled = 0;
    for window in windows {
        if at >= window.len() {
            at -= window.len();
            continue;
        }
        let take = (window.len() - at).min(out.len() - filled);
        out[filled..filled + take].copy_from_slice(&window[at..at + take]);
        filled += take;
        at = 0;
        if filled == out.len() {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_store(dir: &Path) -> (Arc<Database>, ChunkStore) {
        let db = Arc::new(Database::create(dir.join("meta.redb")).expect("db"));
        index::create_tables(&db).expect("tables");
        if !dir.join(PACK_DIR).exists() {
            ChunkStore::create(dir).expect("pack dir");
        }
        let store = ChunkStore::open(dir, db.clone()).expect("open");
        (db, store)
    }

    fn commit(db: &Database, store: &ChunkStore) {
        let txn = db.begin_write().expect("txn");
        let ids = store.stage_commit(&txn).expect("stage").ids;
        store.sync().expect("sync");
        txn.commit().expect("commit");
        store.committed(&ids);
    }

    #[test]
    fn the_committed_index_is_read_through_as_it_was() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (db, store) = open_store(dir.path());
        let ids: Vec<ChunkId> = (0..500u32)
            .map(|n| store.put(&n.to_le_bytes().repeat(40)).expect("put"))
            .collect();
        commit(&db, &store);
        let index = store.committed_index().expect("index");
        // Committed after the view was taken: not in it.
        let later = store.put(b"later").expect("put");
        commit(&db, &store);

        let mut listed = Vec::new();
        index
            .for_each(|id, location| {
                listed.push((id, location));
                Ok::<_, ChunkStoreError>(())
            })
            .expect("for each");
        let mut expected: Vec<ChunkId> = ids.clone();
        expected.sort_unstable_by_key(|id| id.0);
        assert_eq!(
            listed.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
            expected
        );

        // Asked in ascending order, among ids it lacks: each found where it is.
        let absent = (0..500u32).map(|n| ChunkId(*blake3::hash(&n.to_be_bytes()).as_bytes()));
        let mut asked: Vec<ChunkId> = ids.iter().copied().chain(absent).chain([later]).collect();
        asked.sort_unstable_by_key(|id| id.0);
        let mut cursor = index.ascending().expect("cursor");
        for id in asked {
            let found = cursor.find(&id).expect("find");
            match listed.iter().find(|(listed, _)| *listed == id) {
                Some((_, location)) => assert_eq!(found, Some(*location)),
                None => assert_eq!(found, None),
            }
        }
    }

    #[test]
    fn stores_once_and_reads_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_db, store) = open_store(dir.path());
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let first = store.put(&data).expect("put");
        let used = store.usage().pack_bytes;
        let second = store.put(&data).expect("put again");
        assert_eq!(first, second);
        assert_eq!(
            store.usage().pack_bytes,
            used,
            "a duplicate is not stored again"
        );
        assert!(
            used < data.len() as u64 / 2,
            "compressible data is compressed"
        );
        assert_eq!(store.get(&first).expect("get"), data);
    }

    #[test]
    fn committed_chunks_survive_reopen_and_uncommitted_ones_vanish() {
        let dir = tempfile::tempdir().expect("tempdir");
        let kept;
        let lost;
        {
            let (db, store) = open_store(dir.path());
            kept = store.put(b"committed chunk").expect("put");
            commit(&db, &store);
            lost = store.put(b"never committed").expect("put");
        }
        let (_db, store) = open_store(dir.path());
        assert_eq!(store.get(&kept).expect("get"), b"committed chunk");
        assert!(matches!(store.get(&lost), Err(ChunkStoreError::Missing(_))));
    }

    #[test]
    fn a_flipped_byte_is_reported_never_returned() {
        let dir = tempfile::tempdir().expect("tempdir");
        let id;
        {
            let (db, store) = open_store(dir.path());
            id = store.put(&[7u8; 5000]).expect("put");
            commit(&db, &store);
        }
        let pack_path = fs::read_dir(dir.path().join(PACK_DIR))
            .expect("dir")
            .next()
            .expect("one pack")
            .expect("entry")
            .path();
        let mut bytes = fs::read(&pack_path).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40;
        fs::write(&pack_path, &bytes).expect("write");
        let (_db, store) = open_store(dir.path());
        assert!(matches!(
            store.get(&id),
            Err(ChunkStoreError::Corrupt { .. })
        ));
    }

    /// An object store in memory: the packs as they were "uploaded" (unit tests only; the
    /// integration tests run the tier against SeaweedFS).
    struct Uploaded {
        packs: Mutex<HashMap<PackId, Vec<u8>>>,
        reads: AtomicU64,
    }

    impl RemotePacks for Uploaded {
        fn read(&self, pack: PackId, range: Range<u64>) -> Result<Vec<u8>, String> {
            self.reads.fetch_add(1, Ordering::Relaxed);
            let packs = self.packs.lock();
            let bytes = packs.get(&pack).ok_or("no such object")?;
            bytes
                .get(range.start as usize..range.end as usize)
                .map(<[u8]>::to_vec)
                .ok_or_else(|| "range past the end".to_owned())
        }
    }

    /// Chunks stored, with their bytes.
    type Stored = Vec<(ChunkId, Vec<u8>)>;

    /// Stores `count` distinct chunks, commits, seals, and "uploads" every pack.
    fn tiered_store(dir: &Path, count: u32) -> (ChunkStore, Arc<Uploaded>, Stored) {
        let (db, store) = open_store(dir);
        let remote = Arc::new(Uploaded {
            packs: Mutex::new(HashMap::new()),
            reads: AtomicU64::new(0),
        });
        store.set_remote(remote.clone(), 1 << 20, None);
        let chunks: Vec<(ChunkId, Vec<u8>)> = (0..count)
            .map(|i| {
                let mut data = vec![0u8; 40_000];
                blake3::Hasher::new()
                    .update(&i.to_le_bytes())
                    .finalize_xof()
                    .fill(&mut data);
                (store.put(&data).expect("put"), data)
            })
            .collect();
        commit(&db, &store);
        store.seal_active_pack();
        for pack in store.cached_packs() {
            let file = store.pack(pack.id).expect("pack");
            remote
                .packs
                .lock()
                .insert(pack.id, file.read_prefix(pack.len).expect("read"));
        }
        (store, remote, chunks)
    }

    /// A read-ahead is a hint to the kernel only: it skips unknown chunks, asks nothing of the
    /// object store for evicted frames, and the reads after it verify as always.
    #[test]
    fn a_read_ahead_reads_only_local_packs_and_changes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, remote, chunks) = tiered_store(dir.path(), 60);
        let evicted = store.cached_packs()[0].id;
        store.evict(evicted).expect("evict");
        let mut ids: Vec<ChunkId> = chunks.iter().map(|(id, _)| *id).collect();
        ids.push(ChunkId::of(b"never stored"));
        ids.reverse();
        store.read_ahead(&ids).expect("read ahead");
        assert_eq!(remote.reads.load(Ordering::Relaxed), 0, "no fetch");
        for (id, data) in &chunks {
            assert_eq!(&store.get(id).expect("read"), data);
        }
        assert!(remote.reads.load(Ordering::Relaxed) > 0, "the evicted pack");
    }

    #[test]
    fn an_evicted_pack_is_read_back_from_the_object_store_and_cached_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, remote, chunks) = tiered_store(dir.path(), 60);
        let packs = store.cached_packs();
        assert!(packs.len() > 1, "1 MiB packs: several of them");
        for pack in &packs {
            assert!(pack.sealed);
            store.evict(pack.id).expect("evict");
        }
        assert!(store.cached_packs().iter().all(|p| p.allocated < 8192));
        for (id, data) in &chunks {
            assert_eq!(&store.get(id).expect("read through"), data);
        }
        let fetches = remote.reads.load(Ordering::Relaxed);
        assert!(
            fetches <= packs.len() as u64 + 2,
            "whole frames after the one read come along: {fetches} fetches"
        );
        for (id, data) in &chunks {
            assert_eq!(&store.get(id).expect("cached"), data);
        }
        assert_eq!(remote.reads.load(Ordering::Relaxed), fetches, "now cached");
    }

    #[test]
    fn a_damaged_or_missing_object_is_an_error_never_wrong_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, remote, chunks) = tiered_store(dir.path(), 3);
        let pack = store.cached_packs()[0].id;
        store.evict(pack).expect("evict");
        for bytes in remote.packs.lock().values_mut() {
            let last = bytes.len() - 1;
            bytes[last] ^= 1;
        }
        let (last_id, _) = chunks.last().expect("a chunk");
        assert!(matches!(
            store.get(last_id),
            Err(ChunkStoreError::Corrupt { .. })
        ));
        remote.packs.lock().clear();
        store.evict(pack).expect("evict");
        assert!(matches!(
            store.get(&chunks[0].0),
            Err(ChunkStoreError::Unavailable { .. })
        ));
    }

    #[test]
    fn only_whole_frames_are_taken_from_a_fetched_range() {
        let frame = |id: u8, len: u32| {
            let header = FrameHeader {
                codec: Codec::Raw,
                raw_len: len,
                stored_len: len,
                chunk_id: ChunkId([id; 32]),
            };
            let mut bytes = header.encode().to_vec();
            bytes.extend(std::iter::repeat_n(id, len as usize));
            bytes
        };
        let mut bytes = frame(1, 100);
        let first = bytes.len() as u64;
        bytes.extend(frame(2, 50));
        let two = bytes.len();
        bytes.extend(&frame(3, 80)[..60]);
        assert_eq!(whole_frames(&[&bytes], first), two);
        assert_eq!(
            whole_frames(&[&bytes[..10]], first),
            10,
            "never past the end"
        );
        // Fetched in windows that cut frames and headers anywhere: the same answer.
        for cut in [
            1,
            20,
            first as usize,
            first as usize + 30,
            two - 5,
            two + 10,
        ] {
            let (a, b) = bytes.split_at(cut);
            assert_eq!(whole_frames(&[a, b], first), two, "cut at {cut}");
            let (b, c) = b.split_at(b.len().min(7));
            assert_eq!(
                whole_frames(&[a, b, c], first),
                two,
                "cut at {cut} and 7 later"
            );
        }
        assert!(frame_is_present(
            &ChunkId([1; 32]),
            &bytes[..first as usize]
        ));
        assert!(!frame_is_present(
            &ChunkId([2; 32]),
            &bytes[..first as usize]
        ));
        assert!(!frame_is_present(
            &ChunkId([1; 32]),
            &vec![0u8; first as usize]
        ));
    }
}
