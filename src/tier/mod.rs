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
//!   their files, except those holding data of pinned trees (`pins`); a read of an evicted
//!   frame fetches it, and the whole frames after it up to a window, from the object store
//!   (`ChunkStore`'s [`RemotePacks`]), verified as every read is;
//! - **a full cache**: while the data not yet uploaded takes the whole cache size (the object
//!   store unreachable, or writes faster than uploads), new writes wait for uploads to make
//!   room, at most [`CACHE_FULL_WAIT`], then fail with `ENOSPC` ([`Tier::wait_for_room`]).
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
//!   so a second writer can neither overwrite the first one's packs nor its checkpoints;
//! - one writer at a time: a store publishes checkpoints only under the share's writer lease
//!   it holds (`lease`), and checkpoints are named by lease, so once another host took the
//!   lease over, nothing this store publishes is ever read (fencing).

mod attach;
mod checkpoint;
mod follow;
mod layout;
mod lease;
mod pins;
mod readers;
mod remote_packs;
mod uploaded;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use redb::{Database, ReadableDatabase};
use serde::{Deserialize, Serialize};

pub use attach::{AttachReport, attach};
pub use checkpoint::CopyTables;
pub use follow::{Follower, default_cache_dir};
pub use layout::CheckpointId;
pub use lease::DEFAULT_TIMEOUT_SECS as DEFAULT_LEASE_TIMEOUT_SECS;

use crate::blob::{BlobBackend, BlobError, BlobLocation};
use crate::chunk_store::{ChunkStore, RemotePacks};
use crate::format::store_config::TierConfig;
use crate::id::{ChunkId, InodeNo, PackId};
use layout::ShareMarker;
use uploaded::Uploaded;

/// Packs of a tiered store are closed at this size: the unit of upload and eviction.
pub const TIERED_PACK_SIZE: u64 = 32 << 20;
/// Checkpoints kept in the object store (older ones are deleted once a newer one is up).
const KEEP_CHECKPOINTS: usize = 3;
/// How often the tier thread looks for work when nothing wakes it.
const TICK: Duration = Duration::from_secs(1);
/// How long a mount waits for the object store to answer about the writer lease before it
/// serves from the cache and leaves the lease to the tier thread (an outage must not hold a
/// mount for the backend's whole retry timeout).
const LEASE_WAIT_AT_MOUNT: Duration = Duration::from_secs(10);
/// How long a write waits for room while the cache is full of data not yet uploaded, before it
/// fails with `ENOSPC`: long enough to ride out writes that outpace uploads for a moment, short
/// enough that an outage gives the writing program an answer.
pub const CACHE_FULL_WAIT: Duration = Duration::from_secs(10);

/// Why the tier could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum TierError {
    #[error("object store: {0}")]
    Blob(#[from] BlobError),
    #[error("metadata database: {0}")]
    Meta(#[source] redb::Error),
    #[error("{0}")]
    Chunks(#[from] crate::chunk_store::ChunkStoreError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Invalid(String),
    /// Another host holds the share's writer lease.
    #[error("{0}")]
    LeaseHeld(String),
    /// Another host took the share's writer lease over from this store.
    #[error("{0}")]
    Fenced(String),
}

crate::storage::from_redb_errors!(TierError, TierError::Meta);

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
    /// Whether the newest checkpoint holds every commit made so far: the loss of the local
    /// disk now would lose nothing that was synced.
    pub up_to_date: bool,
    pub last_checkpoint: Option<CheckpointInfo>,
    /// Bytes read from the object store into the cache since the mount.
    pub fetched_bytes: u64,
    /// The last failure talking to the object store, while it lasts.
    pub last_error: Option<String>,
    /// The generation of the share's writer lease this store holds (`None`: not taken yet,
    /// the object store having been unreachable since the mount).
    pub lease: Option<u64>,
    /// Why this store no longer publishes to the share, if another host took it over.
    pub fenced: Option<String>,
    /// The trees kept in the cache (`tier pin`), by the paths they were pinned by.
    #[serde(default)]
    pub pins: Vec<String>,
    /// The data not yet uploaded takes the whole cache: new writes wait for uploads, and fail
    /// with `ENOSPC` if none make room in time.
    #[serde(default)]
    pub cache_full: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CheckpointInfo {
    /// The lease generation it was published under, and its number.
    pub lease: u64,
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

/// Hands the chunks of every file at or under an inode of the live share to a callback, file
/// by file; `Ok(false)` if there is no such inode. How the tier finds the data of pinned trees
/// (given by the daemon, which has the share).
pub type TreeChunks =
    Box<dyn Fn(InodeNo, &mut dyn FnMut(&[ChunkId])) -> Result<bool, String> + Send + Sync>;

/// What the daemon gives the tier when it starts its background work.
pub struct Background {
    /// Copies every table a checkpoint holds.
    pub copy: CopyTables,
    /// How far the share changed.
    pub generation: GenerationSource,
    /// What pinned trees hold.
    pub tree_chunks: TreeChunks,
}

/// What `snapfs tier recall|pin` did.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RecallReport {
    pub path: String,
    pub files: u64,
    pub chunks: u64,
    /// Stored (compressed) bytes fetched from the object store: what was not in the cache.
    pub fetched_bytes: u64,
    /// Whether the tree is pinned now.
    pub pinned: bool,
}

/// The packs pinned trees use, as of a generation of the share and a set of pins.
struct PinnedPacks {
    generation: Generation,
    pins: Vec<InodeNo>,
    packs: HashSet<PackId>,
}

struct State {
    uploaded: Arc<Mutex<HashMap<PackId, Uploaded>>>,
    last_checkpoint: Option<CheckpointInfo>,
    /// The generation the last checkpoint holds (`None`: none taken by this mount).
    checkpointed: Option<Generation>,
    oldest_pending: Option<i64>,
    last_error: Option<String>,
    /// The writer lease this store holds, and when it last renewed it.
    lease: Option<u64>,
    renewed: Option<Instant>,
    /// Another host took the share over: this store stops publishing, and says why.
    fenced: Option<String>,
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
    background: std::sync::OnceLock<Background>,
    /// The last computation of what pinned trees hold (the eviction pass's own).
    pinned: Mutex<Option<PinnedPacks>>,
    /// Held while the lease is taken or renewed: the mount's attempt and the tier thread's
    /// never run at once (they could take two generations).
    lease_op: Mutex<()>,
    remote: Arc<remote_packs::BlobPacks>,
    state: Mutex<State>,
    wake: Condvar,
    /// The bytes not yet uploaded when the tier thread last looked, and how many bytes the
    /// chunk store had appended by then: a write adds what was appended since (see
    /// [`Tier::backlog`]), two relaxed loads and no lock.
    pending_seen: std::sync::atomic::AtomicU64,
    appended_seen: std::sync::atomic::AtomicU64,
    /// Signalled (with `state`) each time the tier thread looked again.
    room: Condvar,
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

/// Checks that the object store a tier config names answers, and that it enforces the
/// conditional writes the writer lease needs (or that the config says single host).
pub fn probe(config: &TierConfig) -> Result<(), TierError> {
    let backend = open_backend(config)?;
    backend.list(layout::CHECKPOINTS)?;
    lease::check_server(&*backend, config.single_host)
}

/// The share a location holds, from its marker; a clear error if it holds none.
fn read_marker(backend: &dyn BlobBackend) -> Result<ShareMarker, TierError> {
    match backend.get(&layout::marker_key()) {
        Ok(bytes) => ShareMarker::decode(&bytes).map_err(TierError::Invalid),
        Err(BlobError::NotFound(_)) => Err(TierError::Invalid(format!(
            "{} holds no tiered snapfs share",
            backend.describe()
        ))),
        Err(err) => Err(err.into()),
    }
}

fn has_checkpoints(backend: &dyn BlobBackend) -> Result<bool, TierError> {
    Ok(!checkpoint::all(backend)?.is_empty())
}

/// Prepares an object store location for a new tiered share (`snapfs init --tier`, `snapfs
/// tier enable`): writes its marker, refusing a location that holds another share, or this
/// one already published (a store made by `attach` from it is its place).
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
            if existing.share_id == share_id && !has_checkpoints(&*backend)? {
                // This share's own claim, from an attempt that stopped before it finished.
                return Ok(());
            }
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
        // A retired pack's object may still be there: its number is not used again before.
        let highest = known
            .keys()
            .chain(uploaded::retired(&db)?.keys())
            .copied()
            .max();
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
        let tier = Arc::new(Tier {
            backend,
            chunks,
            db,
            store_dir,
            config,
            epoch,
            background: std::sync::OnceLock::new(),
            pinned: Mutex::new(None),
            lease_op: Mutex::new(()),
            remote,
            state: Mutex::new(State {
                uploaded: shared,
                last_checkpoint: None,
                checkpointed: None,
                oldest_pending: None,
                last_error: None,
                lease: None,
                renewed: None,
                fenced: None,
                stopping: false,
            }),
            wake: Condvar::new(),
            pending_seen: std::sync::atomic::AtomicU64::new(0),
            appended_seen: std::sync::atomic::AtomicU64::new(0),
            room: Condvar::new(),
            thread: Mutex::new(None),
        });
        // What the store holds that is not uploaded, before the first write asks.
        tier.check_room();
        Ok(tier)
    }

    /// Where the object store keeps the share's marker: what tells whether a blob backend
    /// reaches this tier's objects ([`crate::blob::BlobBackend::reaches`]).
    pub fn address(&self) -> Option<crate::blob::ObjectAddress> {
        self.backend
            .address(&crate::blob::BlobKey::new(layout::MARKER)?)
    }

    /// Where the object store keeps pack `pack`, and its length, if it was uploaded: what a
    /// vault in the same object store copies without the bytes passing through this host. An
    /// uploaded pack is sealed, and its object holds its bytes as the local pack does.
    pub fn uploaded_pack(&self, pack: PackId) -> Option<(crate::blob::ObjectAddress, u64)> {
        let uploaded = self.state.lock().uploaded.clone();
        let up = uploaded.lock().get(&pack).copied()?;
        let address = self.backend.address(&layout::pack_key(up.epoch, pack))?;
        Some((address, up.len))
    }

    /// Starts the background work of a mounted store: uploads, checkpoints, eviction.
    ///
    /// Takes or renews the share's writer lease first, and fails (so the mount does) when
    /// another host holds it, took it over from this store, or the server cannot enforce it.
    /// An unreachable object store does not fail it: the share serves from its cache, and the
    /// lease is taken before anything is published.
    pub fn start(self: &Arc<Self>, background: Background) -> Result<(), TierError> {
        let (answer, answered) = std::sync::mpsc::channel();
        let this = self.clone();
        std::thread::Builder::new()
            .name("snapfs-lease".into())
            .spawn(move || {
                let _ = answer.send(this.hold_lease());
            })?;
        match answered.recv_timeout(LEASE_WAIT_AT_MOUNT) {
            Ok(Ok(())) => {}
            Ok(Err(TierError::Blob(err))) => {
                tracing::warn!("the object store is unreachable at mount: {err}");
                self.note(Err(TierError::Blob(err)));
            }
            Ok(Err(err)) => return Err(err),
            Err(_) => tracing::warn!(
                "the object store did not answer within {} s: serving from the cache; the \
                 writer lease is taken before anything is published",
                LEASE_WAIT_AT_MOUNT.as_secs()
            ),
        }
        if self.background.set(background).is_err() {
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
        self.room.notify_all();
        let Some(thread) = self.thread.lock().take() else {
            return;
        };
        let _ = thread.join();
        if let Err(err) = self.checkpoint() {
            tracing::error!("last checkpoint at unmount failed: {err}");
            return;
        }
        // Everything is published: another host may take the share over at once.
        let lease = self.state.lock().lease;
        if let Some(generation) = lease
            && let Err(err) = lease::release(&*self.backend, generation)
        {
            tracing::warn!("could not release the share's lease: {err}");
        }
    }

    /// Takes the share's writer lease if this store holds none, or renews the one it holds;
    /// on a server that does not enforce conditional writes, only with `single_host`. Also
    /// rewrites a marker of an older format once the lease is held.
    fn hold_lease(&self) -> Result<(), TierError> {
        let _one_at_a_time = self.lease_op.lock();
        if let Some(reason) = self.state.lock().fenced.clone() {
            return Err(TierError::Fenced(reason));
        }
        let backend = &*self.backend;
        let held = self.state.lock().lease;
        let result = (|| {
            let generation =
                match held.map_or_else(|| uploaded::lease(&self.db), |g| Ok(Some(g)))? {
                    Some(generation) => {
                        lease::renew(backend, generation)?;
                        generation
                    }
                    None => {
                        lease::check_server(backend, self.config.single_host)?;
                        let holder =
                            lease::Holder::this_process(self.epoch, self.config.lease_timeout_secs);
                        let generation = lease::take(backend, &holder, false)?;
                        uploaded::set_lease(&self.db, generation)?;
                        tracing::info!(generation, "took the share's writer lease");
                        generation
                    }
                };
            if held.is_none() {
                let marker = ShareMarker::decode(&backend.get(&layout::marker_key())?)
                    .map_err(TierError::Invalid)?;
                if marker.is_outdated() {
                    backend.put(&layout::marker_key(), &marker.upgraded().encode())?;
                }
            }
            Ok(generation)
        })();
        let mut state = self.state.lock();
        match result {
            Ok(generation) => {
                state.lease = Some(generation);
                state.renewed = Some(Instant::now());
                Ok(())
            }
            Err(TierError::Fenced(reason)) => {
                state.fenced = Some(reason.clone());
                Err(TierError::Fenced(reason))
            }
            Err(err) => Err(err),
        }
    }

    /// Renews the lease when a quarter of its timeout has passed (or takes it, if the object
    /// store was unreachable at mount).
    fn keep_lease(&self) -> Result<(), TierError> {
        let due = {
            let state = self.state.lock();
            let quarter = Duration::from_secs(self.config.lease_timeout_secs) / 4;
            state.fenced.is_none()
                && state
                    .renewed
                    .is_none_or(|renewed| renewed.elapsed() >= quarter)
        };
        if due {
            self.hold_lease()?;
        }
        Ok(())
    }

    pub fn status(&self) -> TierStatus {
        let packs = self.chunks.cached_packs();
        let generation = self.background.get().map(|b| (b.generation)());
        let pins = pins::all(&self.db)
            .map(|pins| {
                pins.into_iter()
                    .map(|(_, path)| String::from_utf8_lossy(&path).into_owned())
                    .collect()
            })
            .unwrap_or_default();
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
            up_to_date: state.fenced.is_none()
                && generation.is_some()
                && state.checkpointed == generation,
            last_checkpoint: state.last_checkpoint.clone(),
            fetched_bytes: self.remote.fetched_bytes(),
            last_error: state.last_error.clone(),
            lease: state.lease,
            fenced: state.fenced.clone(),
            pins,
            cache_full: self.backlog() >= self.config.cache_size,
        }
    }

    /// Bytes of packs not yet uploaded: as the tier thread last counted them, plus every byte
    /// appended since (some of it may have gone up meanwhile: an estimate that errs high, for
    /// at most the time until the thread looks again).
    fn backlog(&self) -> u64 {
        let appended = self.chunks.appended_bytes();
        self.pending_seen.load(Ordering::Relaxed)
            + appended.saturating_sub(self.appended_seen.load(Ordering::Relaxed))
    }

    /// Waits, at most [`CACHE_FULL_WAIT`], while the data not yet uploaded takes the whole
    /// cache; `false` if it still does (the write is to fail with `ENOSPC`). Called by writes
    /// before they take any lock of the share, so that waiting holds up nothing but the writer.
    pub fn wait_for_room(&self) -> bool {
        if self.backlog() < self.config.cache_size {
            return true;
        }
        // The tier thread counts again now, and seals the active pack for upload.
        self.wake.notify_all();
        let deadline = Instant::now() + CACHE_FULL_WAIT;
        let mut state = self.state.lock();
        loop {
            if self.backlog() < self.config.cache_size {
                return true;
            }
            if state.stopping || self.room.wait_until(&mut state, deadline).timed_out() {
                return self.backlog() < self.config.cache_size;
            }
        }
    }

    /// Counts the bytes not yet uploaded (for writes to tell whether the cache is full); while
    /// they fill the cache, seals the active pack so that what it holds can go up once
    /// committed. Wakes the writers waiting for room, to look again.
    fn check_room(&self) {
        let was_full = self.backlog() >= self.config.cache_size;
        // Read before the count: what is appended meanwhile is counted twice, never missed.
        let appended = self.chunks.appended_bytes();
        let uploaded = self.state.lock().uploaded.clone();
        let pending: u64 = self
            .chunks
            .cached_packs()
            .iter()
            .filter(|p| !uploaded.lock().contains_key(&p.id))
            .map(|p| p.len)
            .sum();
        self.pending_seen.store(pending, Ordering::Relaxed);
        self.appended_seen.store(appended, Ordering::Relaxed);
        let full = pending >= self.config.cache_size;
        if full {
            self.chunks.seal_active_pack();
        }
        if full && !was_full {
            tracing::warn!(
                pending,
                cache_size = self.config.cache_size,
                "the cache is full of data not yet uploaded: writes wait for uploads, and \
                 fail with ENOSPC after {} s",
                CACHE_FULL_WAIT.as_secs()
            );
        } else if was_full && !full {
            tracing::info!("uploads made room in the cache: writes go on");
        }
        let _state = self.state.lock();
        self.room.notify_all();
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
        let Some(Background {
            copy, generation, ..
        }) = self.background.get()
        else {
            return Ok(());
        };
        let lease = {
            let state = self.state.lock();
            if state.fenced.is_some() {
                return Ok(());
            }
            state.lease.ok_or_else(|| {
                TierError::Invalid(
                    "no checkpoint yet: the share's writer lease is not taken (the object \
                     store was unreachable since the mount)"
                        .into(),
                )
            })?
        };
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
        // Still ours? (Also renews it.) A takeover after this point is fenced by the name.
        self.hold_lease()?;
        let published = checkpoint::all(&*self.backend)?;
        let id = CheckpointId {
            lease,
            seq: published.iter().map(|id| id.seq).max().unwrap_or(0) + 1,
        };
        match self
            .backend
            .put_if_absent(&layout::checkpoint_key(id), &bytes)
        {
            Ok(()) => {}
            Err(BlobError::AlreadyExists(_)) => {
                return Err(TierError::Invalid(format!(
                    "checkpoint {id} exists already: another store publishes under this \
                     store's lease"
                )));
            }
            Err(err) => return Err(err.into()),
        }
        let info = CheckpointInfo {
            lease,
            sequence: id.seq,
            time: unix_now(),
            bytes: bytes.len() as u64,
        };
        tracing::info!(%id, bytes = info.bytes, "checkpoint published");
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
        let oldest_kept = published[stale.min(published.len())..]
            .iter()
            .map(|kept| kept.seq)
            .chain([id.seq])
            .min()
            .unwrap_or(id.seq);
        self.retire_dropped(&named, id.seq, oldest_kept)
    }

    /// Packs gc dropped: retired as of checkpoint `published` (the first not to name them),
    /// and their objects deleted once the oldest checkpoint kept or served by a follower
    /// (`oldest_kept`) is no older than that, so no checkpoint anyone may attach from or read
    /// names them.
    fn retire_dropped(
        &self,
        named: &[(PackId, u64)],
        published: u64,
        oldest_kept: u64,
    ) -> Result<(), TierError> {
        let named: HashSet<PackId> = named.iter().map(|(id, _)| *id).collect();
        let uploaded = self.state.lock().uploaded.clone();
        let dropped: Vec<(PackId, uploaded::Retired)> = uploaded
            .lock()
            .iter()
            .filter(|(id, _)| !named.contains(id) && self.chunks.pack(**id).is_none())
            .map(|(id, up)| {
                let retired = uploaded::Retired {
                    epoch: up.epoch,
                    since: published,
                };
                (*id, retired)
            })
            .collect();
        if !dropped.is_empty() {
            uploaded::retire(&self.db, &dropped)?;
            let mut uploaded = uploaded.lock();
            for (id, _) in &dropped {
                uploaded.remove(id);
            }
        }
        let due: Vec<(PackId, uploaded::Retired)> = uploaded::retired(&self.db)?
            .into_iter()
            .filter(|(_, retired)| retired.since <= oldest_kept)
            .collect();
        if due.is_empty() {
            return Ok(());
        }
        // Followers keep what the checkpoints they serve name (see `readers`).
        let oldest_kept = readers::oldest_served(&*self.backend)?
            .map_or(oldest_kept, |served| served.min(oldest_kept));
        for (id, retired) in due {
            if retired.since <= oldest_kept {
                self.backend.delete(&layout::pack_key(retired.epoch, id))?;
                uploaded::forget_retired(&self.db, id)?;
                tracing::debug!(pack = %id, "deleted from the object store after gc");
            }
        }
        Ok(())
    }

    fn checkpoint_due(&self, now: i64) -> bool {
        let Some(background) = self.background.get() else {
            return false;
        };
        let generation = (background.generation)();
        let mut state = self.state.lock();
        if state.fenced.is_some() {
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
    pub fn evict(&self) -> Result<(), TierError> {
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
        let pinned = self.pinned_packs()?;
        packs.retain(|p| {
            p.sealed
                && p.allocated > 0
                && uploaded.lock().contains_key(&p.id)
                && !pinned.contains(&p.id)
        });
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

    /// The packs that hold data of pinned trees, found again when the share or the pins
    /// changed since the last time (a walk of the pinned trees, on the tier thread).
    fn pinned_packs(&self) -> Result<HashSet<PackId>, TierError> {
        let pins: Vec<InodeNo> = pins::all(&self.db)?
            .into_iter()
            .map(|(ino, _)| ino)
            .collect();
        let Some(background) = self.background.get() else {
            return Ok(HashSet::new());
        };
        if pins.is_empty() {
            return Ok(HashSet::new());
        }
        let generation = (background.generation)();
        let mut cached = self.pinned.lock();
        if let Some(known) = &*cached
            && known.generation == generation
            && known.pins == pins
        {
            return Ok(known.packs.clone());
        }
        let mut packs = HashSet::new();
        for &ino in &pins {
            let exists = (background.tree_chunks)(ino, &mut |chunks| {
                for id in chunks {
                    if let Ok(Some(pack)) = self.chunks.pack_of(id) {
                        packs.insert(pack);
                    }
                }
            })
            .map_err(TierError::Invalid)?;
            if !exists {
                pins::remove(&self.db, ino)?;
                tracing::info!(
                    inode = ino.0,
                    "a pinned tree was deleted: its pin is dropped"
                );
            }
        }
        *cached = Some(PinnedPacks {
            generation,
            pins,
            packs: packs.clone(),
        });
        Ok(packs)
    }

    /// Pins the tree at `ino` (pinned by `path`): its data is never evicted.
    pub fn pin(&self, ino: InodeNo, path: &[u8]) -> Result<(), TierError> {
        pins::add(&self.db, ino, path)?;
        Ok(())
    }

    /// Unpins the tree at `ino`; whether it was pinned.
    pub fn unpin(&self, ino: InodeNo) -> Result<bool, TierError> {
        Ok(pins::remove(&self.db, ino)?)
    }

    /// Makes chunk `id` present in the cache (fetched if it was evicted), verified.
    pub fn recall(&self, id: &ChunkId, report: &mut RecallReport) -> Result<(), TierError> {
        let (_, fetched) = self.chunks.recall(id)?;
        report.chunks += 1;
        report.fetched_bytes += fetched.map_or(0, u64::from);
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
        tier.check_room();
        let result = tier.keep_lease();
        let fenced = tier.state.lock().fenced.is_some();
        let result = result.and_then(|()| {
            if fenced {
                Ok(())
            } else {
                tier.upload_sealed(true)
            }
        });
        let result = result.and_then(|()| {
            if tier.checkpoint_due(unix_now()) {
                tier.checkpoint()
            } else {
                Ok(())
            }
        });
        let evicted = tier.evict();
        tier.check_room();
        tier.note(result.and(evicted));
    }
}
