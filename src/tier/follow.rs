//! Following a tiered share read-only from any host (`snapfs mount --follow LOCATION MNT`).
//!
//! A follower never writes the share: it reads checkpoints and packs, and writes only its own
//! reader's lease (`readers`), which keeps the writer's gc from deleting what it reads. Its
//! cache directory holds:
//!
//! ```text
//! lock                               held while the follower runs (`snapfs umount` finds it)
//! packs/EEEEEEEEEEEEEEEE-NNNNNNNN.pack
//!                                    one file per pack object: holes until read, filled as
//!                                    read, punched out again by eviction
//! checkpoint-SSSSSSSSSSSSSSSS/       the store of checkpoint S: its metadata database, and
//!                                    its packs as hard links to the files above
//! ```
//!
//! A pack object never changes once written (its key holds its writer's epoch), so one cached
//! file serves every checkpoint that names it, and survives a restart of the follower. A copy
//! has no identity file: no command but its follower opens it, so nothing can ever take the
//! share's writer lease from it.
//!
//! A copy is served until a newer checkpoint's copy replaces it and every file opened on it is
//! closed; then the store lock its share held is free, and the next sweep deletes it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use redb::ReadableDatabase;

use super::layout::{self, CheckpointId, ShareMarker};
use super::readers::{self, ReaderLease};
use super::uploaded;
use super::{TierError, checkpoint};
use crate::blob::BlobBackend;
use crate::chunk_store::{PACK_DIR, PackFile};
use crate::format::store_config::{StoreConfig, TierConfig};
use crate::id::PackId;
use crate::progress::Progress;
use crate::storage::lock::StoreLock;

const COPY_PREFIX: &str = "checkpoint-";

/// A follower of one tiered share, with its cache directory.
pub struct Follower {
    backend: Arc<dyn BlobBackend>,
    config: TierConfig,
    marker: ShareMarker,
    cache_dir: PathBuf,
    /// This follower's number in `readers/`.
    reader: u64,
    mountpoint: PathBuf,
    /// The checkpoint the reader's lease names, and when it was last written.
    lease: Mutex<Option<(u64, Instant)>>,
    _lock: StoreLock,
}

impl Follower {
    /// Opens the share at `config.location` for following, with its cache in `cache_dir`
    /// (made if missing; locked while this lives, so one follower uses it at a time).
    pub fn open(
        config: TierConfig,
        cache_dir: &Path,
        mountpoint: &Path,
    ) -> Result<Self, TierError> {
        let backend = super::open_backend(&config)?;
        let marker = super::read_marker(&*backend)?;
        if marker.version < layout::FOLLOWABLE_VERSION {
            return Err(TierError::Invalid(format!(
                "{} was last written by an older snapfs, whose gc does not keep what followers \
                 read; mount the share's store once with this version (which upgrades the \
                 share), then follow it",
                backend.describe()
            )));
        }
        std::fs::create_dir_all(cache_dir.join(PACK_DIR))?;
        let lock = StoreLock::acquire(cache_dir).map_err(|err| {
            TierError::Invalid(format!("cache directory {}: {err}", cache_dir.display()))
        })?;
        let mut reader = [0u8; 8];
        getrandom::getrandom(&mut reader)
            .map_err(|err| TierError::Invalid(format!("no random numbers: {err}")))?;
        let reader = u64::from_le_bytes(reader);
        Ok(Follower {
            backend,
            config,
            marker,
            cache_dir: cache_dir.to_owned(),
            reader,
            mountpoint: mountpoint.to_owned(),
            lease: Mutex::new(None),
            _lock: lock,
        })
    }

    /// The newest checkpoint published, if any.
    pub fn newest(&self) -> Result<Option<CheckpointId>, TierError> {
        Ok(checkpoint::all(&*self.backend)?.last().copied())
    }

    /// Makes the store of checkpoint `id` in the cache, registering it in the reader's lease
    /// first; returns its directory and the config to open it with.
    pub fn copy_of(
        &self,
        id: CheckpointId,
        progress: &Progress,
    ) -> Result<(PathBuf, StoreConfig), TierError> {
        // Copies only: the packs left by a copy no longer served (a follower that stopped, say)
        // are linked into the new copy first, and what they cached is kept.
        let oldest = self.sweep_copies().into_iter().chain([id.seq]).min();
        self.renew(oldest.unwrap_or(id.seq))?;
        // Listed after the lease was written: the writer deletes the packs of a checkpoint only
        // after it deletes the checkpoint, and reads the readers' leases in between.
        if !checkpoint::all(&*self.backend)?.contains(&id) {
            return Err(TierError::Invalid(format!(
                "checkpoint {id} was replaced while it was being registered; the next refresh \
                 takes the newer one"
            )));
        }
        let dir = self.cache_dir.join(format!("{COPY_PREFIX}{:016}", id.seq));
        if dir.exists() {
            // Left by a follower that stopped while making it.
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir(&dir)?;
        let made = self.populate(id, &dir, progress);
        if made.is_err() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        self.sweep_packs();
        made.map(|()| (dir, self.store_config()))
    }

    fn populate(&self, id: CheckpointId, dir: &Path, progress: &Progress) -> Result<(), TierError> {
        let meta = dir.join("meta.redb");
        checkpoint::download(&*self.backend, id, &meta, progress)?;
        let (named, recorded) = {
            let db = redb::Database::open(&meta)?;
            let view = db.begin_read()?;
            (
                crate::chunk_store::index::pack_lengths(&view)?,
                uploaded::read(&view)?,
            )
        };
        let packs = dir.join(PACK_DIR);
        std::fs::create_dir(&packs)?;
        for (pack, len) in named {
            let Some(up) = recorded.get(&pack) else {
                return Err(TierError::Invalid(format!(
                    "checkpoint {id} names pack {pack}, which it does not record as uploaded"
                )));
            };
            let cached = self.cached_pack(pack, up.epoch, len)?;
            std::fs::hard_link(&cached, crate::chunk_store::pack_path(&packs, pack))?;
        }
        Ok(())
    }

    /// The cache's file of pack `id` of writer `epoch`, `len` bytes long, made (all holes) if
    /// it is not there yet.
    fn cached_pack(&self, id: PackId, epoch: u64, len: u64) -> Result<PathBuf, TierError> {
        let dir = self.cache_dir.join(PACK_DIR);
        let path = dir.join(format!("{epoch:016x}-{id}.pack"));
        match std::fs::metadata(&path) {
            Ok(meta) if meta.len() == len => return Ok(path),
            Ok(_) => std::fs::remove_file(&path)?,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(err.into()),
        }
        // Made under the pack's own name in a scratch directory, then renamed into place.
        let scratch = dir.join("new");
        std::fs::create_dir_all(&scratch)?;
        let _ = std::fs::remove_file(crate::chunk_store::pack_path(&scratch, id));
        PackFile::create_uncached(&scratch, id, len)?;
        std::fs::rename(crate::chunk_store::pack_path(&scratch, id), &path)?;
        Ok(path)
    }

    /// The identity a copy is opened with: the share's, tiered to its object store.
    fn store_config(&self) -> StoreConfig {
        let mut config = StoreConfig::new(self.marker.block_size)
            .expect("the share's marker holds a valid block size");
        config.share_id = Some(self.marker.share_id.clone());
        config.tier = Some(self.config.clone());
        config
    }

    /// Renews the reader's lease when a quarter of its timeout has passed since it was
    /// written, or at once when the oldest checkpoint it serves changed.
    pub fn keep_lease(&self) -> Result<(), TierError> {
        let Some(oldest) = self.sweep().into_iter().min() else {
            return Ok(());
        };
        let due = match *self.lease.lock() {
            Some((named, written)) => {
                named != oldest
                    || written.elapsed() >= Duration::from_secs(self.config.lease_timeout_secs) / 4
            }
            None => true,
        };
        if due { self.renew(oldest) } else { Ok(()) }
    }

    fn renew(&self, checkpoint: u64) -> Result<(), TierError> {
        let lease = ReaderLease {
            host: super::lease::hostname(),
            pid: std::process::id(),
            mountpoint: self.mountpoint.display().to_string(),
            checkpoint,
            timeout_secs: self.config.lease_timeout_secs,
        };
        readers::renew(&*self.backend, self.reader, &lease)?;
        *self.lease.lock() = Some((checkpoint, Instant::now()));
        Ok(())
    }

    /// Gives the reader's lease up (a clean unmount): nothing is kept for this follower now.
    pub fn release(&self) {
        if let Err(err) = readers::remove(&*self.backend, self.reader) {
            tracing::warn!("could not remove this follower's lease: {err}");
        }
    }

    /// Deletes the copies no share serves any more (their store lock is free) and then the
    /// cached packs no copy links to; returns the checkpoint sequences of the copies still
    /// served.
    pub fn sweep(&self) -> Vec<u64> {
        let served = self.sweep_copies();
        self.sweep_packs();
        served
    }

    /// Deletes the copies no share serves any more; returns the checkpoint sequences of the
    /// copies still served.
    fn sweep_copies(&self) -> Vec<u64> {
        let mut served = Vec::new();
        let Ok(entries) = std::fs::read_dir(&self.cache_dir) else {
            return served;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(seq) = name
                .to_str()
                .and_then(|name| name.strip_prefix(COPY_PREFIX))
                .and_then(|digits| digits.parse::<u64>().ok())
            else {
                continue;
            };
            match StoreLock::acquire(&entry.path()) {
                Ok(lock) => {
                    drop(lock);
                    if let Err(err) = std::fs::remove_dir_all(entry.path()) {
                        tracing::warn!("cannot remove {}: {err}", entry.path().display());
                    }
                }
                Err(_) => served.push(seq),
            }
        }
        served
    }

    /// Deletes the cached packs no copy links to.
    fn sweep_packs(&self) {
        let unlinked = |meta: &std::fs::Metadata| {
            std::os::unix::fs::MetadataExt::nlink(meta) == 1 && meta.is_file()
        };
        if let Ok(packs) = std::fs::read_dir(self.cache_dir.join(PACK_DIR)) {
            for pack in packs.flatten() {
                if pack.metadata().is_ok_and(|meta| unlinked(&meta)) {
                    let _ = std::fs::remove_file(pack.path());
                }
            }
        }
    }

    /// Where the share is, for messages.
    pub fn describe(&self) -> String {
        self.backend.describe()
    }
}

/// The cache directory a follower of `location` mounted at `mountpoint` uses unless told
/// otherwise: one per mountpoint, so that a restarted follower finds its cached packs again.
pub fn default_cache_dir(location: &str, mountpoint: &Path) -> PathBuf {
    let key = blake3::hash(format!("{location}\0{}", mountpoint.display()).as_bytes());
    Path::new("/var/cache/snapfs/follow").join(&key.to_hex()[..16])
}
