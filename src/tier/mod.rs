//! Cloud tiering: the share's authoritative copy in an object store, the local disk a bounded
//! cache of it (issue "cloud tiering and disaster recovery").
//!
//! A tiered store works as any other store, and one background thread ([`Tier`]) adds:
//! - **upload**: each sealed pack (closed at [`TIERED_PACK_SIZE`]) is put in the object store
//!   byte for byte, then recorded in `tier_packs` (`uploaded`);
//! - **checkpoints** (`checkpoint`): at most a second after a snapshot is taken or deleted, and
//!   every checkpoint interval while anything else changed, the metadata database as of one
//!   commit is uploaded, after every pack it names;
//! - **eviction**: while the packs take more than the cache size (or the local file system has
//!   less free space than asked), the least recently read uploaded packs are punched out of
//!   their files; a read of an evicted frame fetches it, and the whole frames after it up to a
//!   window, from the object store (`ChunkStore`'s [`RemotePacks`]), verified as every read is.
//!
//! What survives the loss of the local disk: everything up to the last checkpoint (`tier
//! status` says how old it is). `fsync` still means durable on the local disk only.
//!
//! Invariants:
//! - a pack is evicted only once it is recorded as uploaded, and recorded only once the object
//!   store confirmed the put;
//! - a checkpoint is published only after every pack its chunk index may name is uploaded, so
//!   an attached store can read everything it lists;
//! - pack objects live under the writer's epoch, and checkpoints are created, never replaced,
//!   so a second writer can neither overwrite the first one's packs nor its checkpoints.

mod attach;
mod checkpoint;
mod layout;
mod remote_packs;
mod uploaded;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use redb::{Database, ReadableDatabase};
use serde::{Deserialize, Serialize};

pub use attach::{AttachReport, attach};
pub use checkpoint::CopyTables;

use crate::blob::{BlobBackend, BlobError, BlobLocation};
use crate::chunk_store::{ChunkStore, RemotePacks};
use crate::format::store_config::TierConfig;
use crate::id::PackId;
use layout::ShareMarker;
use uploaded::Uploaded;

/// Packs of a tiered store are closed at this size: the unit of upload and eviction.
pub const TIERED_PACK_SIZE: u64 = 32 << 20;
/// Checkpoints kept in the object store (older ones are deleted once a newer one is up).
const KEEP_CHECKPOINTS: usize = 3;
/// How often the tier thread looks for work when nothing wakes it.
const TICK: Duration = Duration::from_secs(1);

/// Why the tier could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum TierError {
    #[error("object store: {0}")]
    Blob(#[from] BlobError),
    #[error("metadata database: {0}")]
    Meta(#[from] redb::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Invalid(String),
}

macro_rules! redb_errors {
    ($($t:ty),*) => {$(
        impl From<$t> for TierError {
            fn from(err: $t) -> Self {
                TierError::Meta(err.into())
            }
        }
    )*};
}
redb_errors!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// What `snapfs tier status` shows.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TierStatus {
    pub location: String,
    /// Bytes of local disk the packs take, and the most they may take once uploaded.
    pub cache_used: u64,
    pub cache_size: u64,
    pub min_free_percent: u8,
    pub packs: u64,
    pub packs_uploaded: u64,
    /// Bytes of packs not yet in the object store.
    pub pending_upload_bytes: u64,
    /// When the oldest change not yet in a checkpoint was seen (unix seconds), if any.
    pub oldest_pending_change: Option<i64>,
    pub last_checkpoint: Option<CheckpointInfo>,
    /// Bytes read from the object store into the cache since the mount.
    pub fetched_bytes: u64,
    /// The last failure talking to the object store, while it lasts.
    pub last_error: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CheckpointInfo {
    pub sequence: u64,
    /// When it was published (unix seconds).
    pub time: i64,
    pub bytes: u64,
}

/// What changed in the share since some moment, as the tier tells when a checkpoint is due:
/// data and metadata commits, and the snapshot catalog (a checkpoint follows each snapshot).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Generation {
    pub commits: u64,
    pub catalog: u64,
}

/// Tells the tier how far the share has changed.
pub type GenerationSource = Box<dyn Fn() -> Generation + Send + Sync>;

struct State {
    uploaded: Arc<Mutex<HashMap<PackId, Uploaded>>>,
    last_checkpoint: Option<CheckpointInfo>,
    /// The generation the last checkpoint holds (`None`: none taken by this mount).
    checkpointed: Option<Generation>,
    oldest_pending: Option<i64>,
    last_error: Option<String>,
    /// Another writer published a checkpoint this one meant to: it stops publishing.
    fenced: bool,
    stopping: bool,
}

/// A tiered store's background work, started by the daemon at mount.
pub struct Tier {
    backend: Arc<dyn BlobBackend>,
    chunks: Arc<ChunkStore>,
    db: Arc<Database>,
    store_dir: PathBuf,
    config: TierConfig,
    epoch: u64,
    /// Set when the background work starts (in the daemon only).
    background: std::sync::OnceLock<(CopyTables, GenerationSource)>,
    remote: Arc<remote_packs::BlobPacks>,
    state: Mutex<State>,
    wake: Condvar,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Opens the object store a tier config names.
pub fn open_backend(config: &TierConfig) -> Result<Arc<dyn BlobBackend>, TierError> {
    let location =
        BlobLocation::parse(&config.location).map_err(|err| TierError::Invalid(err.to_string()))?;
    Ok(Arc::from(crate::blob::open(&location)?))
}

/// Checks that the object store a tier config names answers (a listing of its checkpoints).
pub fn probe(config: &TierConfig) -> Result<(), TierError> {
    open_backend(config)?.list(layout::CHECKPOINTS)?;
    Ok(())
}

/// Prepares an object store location for a new tiered share (`snapfs init --tier`): writes its
/// marker, refusing a location that holds another share.
pub fn claim_location(
    config: &TierConfig,
    share_id: &str,
    block_size: u32,
) -> Result<(), TierError> {
    let backend = open_backend(config)?;
    let marker = ShareMarker::new(share_id.to_owned(), block_size);
    match backend.put_if_absent(&layout::marker_key(), &marker.encode()) {
        Ok(()) => Ok(()),
        Err(BlobError::AlreadyExists(_)) => {
            let existing = ShareMarker::decode(&backend.get(&layout::marker_key())?)
                .map_err(TierError::Invalid)?;
            Err(TierError::Invalid(format!(
                "{} already holds share {}; attach to it with `snapfs attach`, or choose another prefix",
                backend.describe(),
                existing.share_id
            )))
        }
        Err(err) => Err(err.into()),
    }
}

impl Tier {
    /// Connects a tiered store's chunk store to its object store, so that evicted frames are
    /// fetched when read (whether the store is mounted or opened by a command). Nothing is
    /// contacted yet: a store whose object store is unreachable still opens and serves what
    /// its cache holds.
    pub fn connect(
        chunks: Arc<ChunkStore>,
        db: Arc<Database>,
        store_dir: PathBuf,
        config: TierConfig,
    ) -> Result<Arc<Tier>, TierError> {
        let backend = open_backend(&config)?;
        let epoch = uploaded::epoch(&db)?;
        let known = uploaded::all(&db)?;
        let highest = known.keys().copied().max();
        let shared = Arc::new(Mutex::new(known));
        let remote = Arc::new(remote_packs::BlobPacks::new(
            backend.clone(),
            shared.clone(),
        ));
        chunks.set_remote(
            remote.clone() as Arc<dyn RemotePacks>,
            TIERED_PACK_SIZE,
            highest,
        );
        Ok(Arc::new(Tier {
            backend,
            chunks,
            db,
            store_dir,
            config,
            epoch,
            background: std::sync::OnceLock::new(),
            remote,
            state: Mutex::new(State {
                uploaded: shared,
                last_checkpoint: None,
                checkpointed: None,
                oldest_pending: None,
                last_error: None,
                fenced: false,
                stopping: false,
            }),
            wake: Condvar::new(),
            thread: Mutex::new(None),
        }))
    }

    /// Starts the background work of a mounted store: uploads, checkpoints, eviction. `copy`
    /// copies every table a checkpoint holds; `generation` tells how far the share changed.
    pub fn start(
        self: &Arc<Self>,
        copy: CopyTables,
        generation: GenerationSource,
    ) -> Result<(), TierError> {
        if self.background.set((copy, generation)).is_err() {
            return Err(TierError::Invalid("the tier is already running".into()));
        }
        let weak = Arc::downgrade(self);
        let thread = std::thread::Builder::new()
            .name("snapfs-tier".into())
            .spawn(move || run(weak))?;
        *self.thread.lock() = Some(thread);
        Ok(())
    }

    /// Stops the thread, then uploads what is left and publishes a last checkpoint, so that a
    /// clean unmount leaves the object store holding the whole share.
    pub fn stop(&self) {
        self.state.lock().stopping = true;
        self.wake.notify_all();
        let Some(thread) = self.thread.lock().take() else {
            return;
        };
        let _ = thread.join();
        if let Err(err) = self.checkpoint() {
            tracing::error!("last checkpoint at unmount failed: {err}");
        }
    }

    pub fn status(&self) -> TierStatus {
        let packs = self.chunks.cached_packs();
        let state = self.state.lock();
        let uploaded = state.uploaded.lock();
        TierStatus {
            location: self.config.location.clone(),
            cache_used: packs.iter().map(|p| p.allocated).sum(),
            cache_size: self.config.cache_size,
            min_free_percent: self.config.min_free_percent,
            packs: packs.len() as u64,
            packs_uploaded: packs
                .iter()
                .filter(|p| uploaded.contains_key(&p.id))
                .count() as u64,
            pending_upload_bytes: packs
                .iter()
                .filter(|p| !uploaded.contains_key(&p.id))
                .map(|p| p.len)
                .sum(),
            oldest_pending_change: state.oldest_pending,
            last_checkpoint: state.last_checkpoint.clone(),
            fetched_bytes: self.remote.fetched_bytes(),
            last_error: state.last_error.clone(),
        }
    }

    /// Uploads every sealed pack not yet uploaded (`committed_only`: whose every frame is
    /// committed, as the background pass wants; a checkpoint takes the others too).
    fn upload_sealed(&self, committed_only: bool) -> Result<(), TierError> {
        let committed = if committed_only {
            Some(crate::chunk_store::index::committed_pack_lengths(&self.db)?)
        } else {
            None
        };
        let uploaded = self.state.lock().uploaded.clone();
        for pack in self.chunks.cached_packs() {
            if !pack.sealed || uploaded.lock().contains_key(&pack.id) {
                continue;
            }
            if let Some(committed) = &committed
                && committed.get(&pack.id) != Some(&pack.len)
            {
                continue;
            }
            let Some(file) = self.chunks.pack(pack.id) else {
                continue;
            };
            let bytes = file.read_prefix(pack.len)?;
            self.backend
                .put(&layout::pack_key(self.epoch, pack.id), &bytes)?;
            let up = Uploaded {
                len: pack.len,
                epoch: self.epoch,
            };
            uploaded::record(&self.db, &[(pack.id, up)])?;
            uploaded.lock().insert(pack.id, up);
            tracing::debug!(pack = %pack.id, bytes = pack.len, "uploaded");
        }
        Ok(())
    }

    /// Uploads every pack the committed state names, then a checkpoint of that state.
    fn checkpoint(&self) -> Result<(), TierError> {
        let Some((copy, generation)) = self.background.get() else {
            return Ok(());
        };
        if self.state.lock().fenced {
            return Ok(());
        }
        let generation = generation();
        let view = self.db.begin_read()?;
        let named = crate::chunk_store::index::pack_lengths(&view)?;
        // Whatever the view names in the active pack must be in an uploaded pack.
        self.chunks.seal_active_pack();
        let uploaded = self.state.lock().uploaded.clone();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            self.upload_sealed(false)?;
            let missing = named
                .iter()
                .filter(|(id, _)| !uploaded.lock().contains_key(id))
                .count();
            if missing == 0 {
                break;
            }
            if Instant::now() > deadline {
                return Err(TierError::Invalid(format!(
                    "{missing} packs the checkpoint names could not be uploaded"
                )));
            }
            // A frame still being written into a just-sealed pack: it ends in microseconds.
            std::thread::sleep(Duration::from_millis(5));
        }
        let packs: Vec<(PackId, Uploaded)> = {
            let uploaded = uploaded.lock();
            named.iter().map(|(id, _)| (*id, uploaded[id])).collect()
        };
        let bytes = checkpoint::build(&view, copy, &packs, &self.store_dir.join("checkpoint.tmp"))?;
        drop(view);
        let published = checkpoint::all(&*self.backend)?;
        let seq = published.last().map_or(1, |s| s + 1);
        match self
            .backend
            .put_if_absent(&layout::checkpoint_key(seq), &bytes)
        {
            Ok(()) => {}
            Err(BlobError::AlreadyExists(_)) => {
                self.state.lock().fenced = true;
                return Err(TierError::Invalid(format!(
                    "checkpoint {seq} was published by another writer of this share; this \
                     store stops publishing checkpoints (its changes stay on its local disk)"
                )));
            }
            Err(err) => return Err(err.into()),
        }
        let info = CheckpointInfo {
            sequence: seq,
            time: unix_now(),
            bytes: bytes.len() as u64,
        };
        tracing::info!(sequence = seq, bytes = info.bytes, "checkpoint published");
        {
            let mut state = self.state.lock();
            state.last_checkpoint = Some(info);
            state.checkpointed = Some(generation);
            state.oldest_pending = None;
        }
        // The new one is the newest of `published` plus it: keep it and KEEP - 1 of those.
        let stale = (published.len() + 1).saturating_sub(KEEP_CHECKPOINTS);
        for old in published.iter().take(stale) {
            self.backend.delete(&layout::checkpoint_key(*old))?;
        }
        Ok(())
    }

    fn checkpoint_due(&self, now: i64) -> bool {
        let Some((_, generation)) = self.background.get() else {
            return false;
        };
        let generation = generation();
        let mut state = self.state.lock();
        if state.fenced {
            return false;
        }
        let Some(last) = state.checkpointed else {
            // The first pass of a mount: one checkpoint, so status knows where it stands.
            return true;
        };
        if last == generation {
            return false;
        }
        let since = *state.oldest_pending.get_or_insert(now);
        last.catalog != generation.catalog
            || now - since >= self.config.checkpoint_interval_secs as i64
    }

    /// Evicts uploaded packs, least recently read first, while the cache is over its size or
    /// the file system is short of free space.
    fn evict(&self) -> Result<(), TierError> {
        let mut packs = self.chunks.cached_packs();
        let mut used: u64 = packs.iter().map(|p| p.allocated).sum();
        let short_of_space = || {
            nix::sys::statvfs::statvfs(&self.store_dir).is_ok_and(|fs| {
                let total = fs.blocks() as u128;
                total > 0
                    && (fs.blocks_available() as u128) * 100
                        < total * u128::from(self.config.min_free_percent)
            })
        };
        if used <= self.config.cache_size && !short_of_space() {
            return Ok(());
        }
        let uploaded = self.state.lock().uploaded.clone();
        packs.retain(|p| p.sealed && p.allocated > 0 && uploaded.lock().contains_key(&p.id));
        packs.sort_by_key(|p| p.last_used);
        for pack in packs {
            if used <= self.config.cache_size && !short_of_space() {
                break;
            }
            let freed = self.chunks.evict(pack.id)?;
            used = used.saturating_sub(freed);
            tracing::debug!(pack = %pack.id, freed, "evicted");
        }
        Ok(())
    }

    fn note(&self, result: Result<(), TierError>) {
        let mut state = self.state.lock();
        match result {
            Ok(()) => state.last_error = None,
            Err(err) => {
                if state.last_error.as_deref() != Some(&err.to_string()) {
                    tracing::warn!("tier: {err}");
                }
                state.last_error = Some(err.to_string());
            }
        }
    }
}

fn run(weak: std::sync::Weak<Tier>) {
    loop {
        let Some(tier) = weak.upgrade() else { return };
        {
            let mut state = tier.state.lock();
            if state.stopping {
                return;
            }
            tier.wake.wait_for(&mut state, TICK);
            if state.stopping {
                return;
            }
        }
        let result = tier.upload_sealed(true);
        let result = result.and_then(|()| {
            if tier.checkpoint_due(unix_now()) {
                tier.checkpoint()
            } else {
                Ok(())
            }
        });
        let evicted = tier.evict();
        tier.note(result.and(evicted));
    }
}
