//! Backup vaults: independent, incremental, optionally encrypted copies of snapshots, kept in a
//! blob backend (a local directory or an S3 bucket). A vault is a content-addressed store of
//! its own: it receives snapshot trees (objects and the chunks they name) and backup records.
//! This layer depends on the blob layer, the formats, the chunk store and the snapshot tree
//! objects; nothing below depends on it.
//!
//! ```text
//! VAULT/
//!   config                 identity, cipher, key slots (format::vault_config), never sealed
//!   packs/<xx>/<pack id>   objects (format::vault_pack); <xx> = first two hex digits
//!   index/<pack id>        where each object of that pack is (format::vault_index), sealed
//!   backups/<backup id>    one record per backup (format::backup_record), sealed
//!   holds/<backup id>      a backup's hold, while it has one (format::vault_hold), sealed
//!   policy                 the retention policy `vault prune` applies (format::vault_policy),
//!                          sealed; absent until `vault policy set`
//!   locks/<lock id>        who is working on the vault (format::vault_lock), sealed
//!   gc/<plan id>           what a running or interrupted gc took out of the index
//!                          (format::vault_gc), sealed
//! ```
//! Every name is random (pack ids, backup ids): an encrypted vault's provider sees how many
//! objects there are and their sizes, nothing else.
//!
//! The promise everything here keeps, **data → index → record**: an index names only packs
//! that were completely stored before it, a tree object is put in a pack only after every
//! object below it is in that pack or an earlier one, and a record is written only after the
//! indexes of everything its tree needs. So an object id in the index means its whole subtree is
//! in the vault (a backup skips it unread), and a listed backup always restores.
//!
//! Removing keeps it too: `gc` takes everything it removes out of the index in one atomic put
//! (a retirement list, applied by every reader) before it deletes anything, and never runs
//! beside an operation that relies on the index (`lock`: shared locks for backup, copy,
//! restore and verify, exclusive ones for gc and delete).

pub mod backup;
pub mod browse;
pub mod copy;
pub mod crypto;
mod fetch;
pub mod gc;
mod index;
pub mod init;
pub mod keys;
pub mod list;
pub mod lock;
mod pack_writer;
pub mod prune;
pub mod restore;
pub mod retention;
mod server_copy;
mod size;
#[cfg(test)]
mod tests;
mod tree;
pub mod verify;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::blob::{self, BlobBackend, BlobError, BlobKey, BlobLocation};
use crate::chunk_store::{self, ChunkStoreError, StoredChunk, VerifiedChunk};
use crate::format::DecodeError;
use crate::format::backup_record::BackupRecord;
use crate::format::catalog::Hold;
use crate::format::pack::Codec;
use crate::format::vault_config::{Cipher, VaultConfig};
use crate::format::vault_hold::HoldRecord;
use crate::format::vault_index::PackSlice;
use crate::format::vault_pack::{self, EntryCodec};
use crate::id::{BackupId, ChunkId, GcPlanId, VaultLockId, VaultPackId};
use crate::snapshot::RestoreError;
use crate::snapshot::SnapshotError;
use crate::store::StoreError;
use crypto::{CryptoError, MasterKey, Sealer};

/// The key of the vault's config object.
const CONFIG_KEY: &str = "config";
const PACKS: &str = "packs";
const INDEX: &str = "index";
const BACKUPS: &str = "backups";
const HOLDS: &str = "holds";
const LOCKS: &str = "locks";
const GC: &str = "gc";

/// What unlocks an encrypted vault.
#[derive(Clone)]
pub enum Secret {
    /// Nothing given: enough for an unencrypted vault only.
    None,
    Passphrase(Vec<u8>),
    /// The bytes of a key file.
    KeyFile(Vec<u8>),
}

impl Secret {
    fn bytes(&self) -> Option<&[u8]> {
        match self {
            Secret::None => None,
            Secret::Passphrase(bytes) | Secret::KeyFile(bytes) => Some(bytes),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error("{0} is not a snapfs vault (it has no config); create one with `snapfs vault init`")]
    NotAVault(String),
    #[error("{0} is already a snapfs vault")]
    AlreadyAVault(String),
    #[error(
        "{0} is encrypted: give its passphrase in SNAPFS_PASSPHRASE or its key with --key-file"
    )]
    NeedKey(String),
    #[error("{what}: {source}")]
    Crypto { what: String, source: CryptoError },
    #[error("{what}: {source}")]
    Decode { what: String, source: DecodeError },
    #[error("{0}: damaged")]
    Damaged(String),
    #[error("object {0} is not in the vault")]
    Missing(ChunkId),
    #[error("no backup named {0} in the vault")]
    NoBackup(String),
    #[error("{0} names backups of more than one share; use SHARE/NAME")]
    Ambiguous(String),
    #[error(
        "the vault already holds a different backup named {0} of this share (a snapshot deleted and taken again under that name?)"
    )]
    NameTaken(String),
    #[error(transparent)]
    Chunks(#[from] ChunkStoreError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error(transparent)]
    Restore(#[from] RestoreError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(String),
    #[error("backup {0} is held; release it first with `snapfs vault release`")]
    Held(String),
    /// The vault's minimum retention (its lock) protects the backup.
    #[error(
        "backup {backup} is inside the vault's minimum retention of {min_retention}: it may be deleted from {until}"
    )]
    RetentionLocked {
        backup: String,
        min_retention: String,
        until: String,
    },
    /// A command refused to act, saying why (key slots, prune).
    #[error("{0}")]
    Refused(String),
    #[error("{vault} is in use: {holder}; try again when it is done")]
    Locked { vault: String, holder: String },
    #[error(
        "{vault}: {problem}; run `snapfs vault verify` (gc removes nothing from a damaged vault)"
    )]
    Unsafe { vault: String, problem: String },
}

fn key(text: &str) -> BlobKey {
    // Every key this module builds is from fixed words and hex digits.
    BlobKey::new(text).unwrap_or_else(|| unreachable!("vault keys are valid: {text}"))
}

fn pack_key(pack: VaultPackId) -> BlobKey {
    let hex = pack.to_hex();
    key(&format!("{PACKS}/{}/{hex}", &hex[..2]))
}

fn index_key(pack: VaultPackId) -> BlobKey {
    key(&format!("{INDEX}/{}", pack.to_hex()))
}

fn backup_key(backup: BackupId) -> BlobKey {
    key(&format!("{BACKUPS}/{}", backup.to_hex()))
}

fn hold_key(backup: BackupId) -> BlobKey {
    key(&format!("{HOLDS}/{}", backup.to_hex()))
}

fn lock_key(lock: VaultLockId) -> BlobKey {
    key(&format!("{LOCKS}/{}", lock.to_hex()))
}

fn gc_key(plan: GcPlanId) -> BlobKey {
    key(&format!("{GC}/{}", plan.to_hex()))
}

/// The id in a listed key `<dir>/<hex>`, or `None` for a stray object.
fn listed_id<T>(key: &BlobKey, dir: &str, parse: impl Fn(&str) -> Option<T>) -> Option<T> {
    key.as_str()
        .strip_prefix(dir)
        .and_then(|rest| rest.strip_prefix('/'))
        .and_then(parse)
}

/// The pack a listed key `packs/<xx>/<hex>` names, if it is one (with the right `<xx>`).
fn listed_pack(key: &BlobKey) -> Option<VaultPackId> {
    let rest = key.as_str().strip_prefix(PACKS)?.strip_prefix('/')?;
    let (dir, hex) = rest.split_once('/')?;
    VaultPackId::from_hex(hex).filter(|_| hex.get(..2) == Some(dir))
}

/// Unix seconds now.
fn unix_now() -> i64 {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// A vault's index as read from its index files, ready to become a handle's index
/// ([`Vault::install_index`]).
pub(crate) struct LoadedIndex {
    locations: HashMap<ChunkId, (VaultPackId, PackSlice)>,
    frame_packs: HashSet<VaultPackId>,
    files: index::IndexFiles,
}

/// An open vault: its backend, its config, the key to its objects, and its index (the union
/// of every pack index, loaded at open).
pub struct Vault {
    backend: Arc<dyn BlobBackend>,
    config: VaultConfig,
    sealer: Arc<Sealer>,
    /// For an encrypted vault: the slot the secret opened, and the master key (to add slots).
    unlocked: Option<(usize, MasterKey)>,
    index: HashMap<ChunkId, (VaultPackId, PackSlice)>,
    /// The packs of the index that hold chunk-store frames rather than sealed entries (copies
    /// of a tiered store's packs, `server_copy`); only an unencrypted vault has any.
    frame_packs: HashSet<VaultPackId>,
    /// The index files that index was built from, kept so that reloading it reads only the
    /// files that are new or changed since ([`index::IndexFiles`]).
    index_files: index::IndexFiles,
}

impl Vault {
    /// Opens the vault at `location`, unlocking it with `secret` if it is encrypted.
    pub fn open(location: &BlobLocation, secret: &Secret) -> Result<Self, VaultError> {
        Self::open_backend(blob::open(location)?, secret)
    }

    /// Opens the vault without reading its index: for `verify`, which reads every index file
    /// itself and names each one it cannot read.
    pub fn open_unchecked(location: &BlobLocation, secret: &Secret) -> Result<Self, VaultError> {
        Self::unlock(blob::open(location)?, secret)
    }

    pub fn open_backend(
        backend: Box<dyn BlobBackend>,
        secret: &Secret,
    ) -> Result<Self, VaultError> {
        let mut vault = Self::unlock(backend, secret)?;
        vault.reload_index()?;
        Ok(vault)
    }

    /// Opens the vault without reading its index (verify reads it itself, problem by problem).
    fn unlock(backend: Box<dyn BlobBackend>, secret: &Secret) -> Result<Self, VaultError> {
        let where_ = backend.describe();
        let bytes = match backend.get(&key(CONFIG_KEY)) {
            Ok(bytes) => bytes,
            Err(BlobError::NotFound(_)) => return Err(VaultError::NotAVault(where_)),
            Err(err) => return Err(err.into()),
        };
        let config = VaultConfig::decode(&bytes).map_err(|source| VaultError::Decode {
            what: format!("{where_}: vault config"),
            source,
        })?;
        let (sealer, unlocked) = match config.cipher {
            Cipher::None => (Sealer::Plain, None),
            Cipher::XChaCha20Poly1305 => {
                let secret = secret
                    .bytes()
                    .ok_or_else(|| VaultError::NeedKey(where_.clone()))?;
                let (slot, master) =
                    crypto::unlock_slot(&config, secret).map_err(|source| VaultError::Crypto {
                        what: where_.clone(),
                        source,
                    })?;
                (Sealer::new(&master), Some((slot, master)))
            }
        };
        Ok(Vault {
            backend: Arc::from(backend),
            config,
            sealer: Arc::new(sealer),
            unlocked,
            index: HashMap::new(),
            frame_packs: HashSet::new(),
            index_files: index::IndexFiles::default(),
        })
    }

    /// Whether this handle may serve another operation: the vault's config is as it was when
    /// the handle was opened. A key slot removed or re-wrapped (`vault key remove|passwd`)
    /// changes it, and then the secret must be checked anew (it may no longer open the vault).
    pub fn config_unchanged(&self) -> Result<bool, VaultError> {
        let bytes = match self.backend.get(&key(CONFIG_KEY)) {
            Ok(bytes) => bytes,
            Err(BlobError::NotFound(_)) => return Ok(false),
            Err(err) => return Err(err.into()),
        };
        Ok(VaultConfig::decode(&bytes).is_ok_and(|config| config == self.config))
    }

    /// Reads the vault's index again: an operation that took a lock reloads it, so that it
    /// sees every change made before the lock was granted. Index files read before and
    /// unchanged since are not read again.
    pub fn reload_index(&mut self) -> Result<(), VaultError> {
        if self.index_files.still_listed(self)? {
            return Ok(());
        }
        let loaded = self.read_index()?;
        self.install_index(loaded);
        Ok(())
    }

    /// Reads the vault's index as [`Vault::reload_index`] does, without changing this handle:
    /// a reader serving requests (`vault mount`) reads it aside and installs it in a moment.
    pub(crate) fn read_index(&self) -> Result<LoadedIndex, VaultError> {
        let scan = index::Scan::read_reusing(self, &self.index_files)?;
        let files = index::IndexFiles::of(&scan);
        let visible = scan.strict()?;
        self.check_frame_packs(&visible)?;
        Ok(LoadedIndex {
            locations: visible.locations(),
            frame_packs: visible.frame_packs,
            files,
        })
    }

    /// Makes `loaded` this handle's index.
    pub(crate) fn install_index(&mut self, loaded: LoadedIndex) {
        self.index = loaded.locations;
        self.frame_packs = loaded.frame_packs;
        self.index_files = loaded.files;
    }

    /// Makes the index `visible` this handle's (gc and verify read it themselves).
    fn use_visible(&mut self, visible: &index::Visible) {
        self.index = visible.locations();
        self.frame_packs = visible.frame_packs.clone();
    }

    /// An encrypted vault holds sealed entries only: a pack of plain frames in it is damage
    /// (or tampering), never something this program wrote.
    fn check_frame_packs(&self, visible: &index::Visible) -> Result<(), VaultError> {
        match visible.frame_packs.iter().next() {
            Some(pack) if self.is_encrypted() => Err(VaultError::Damaged(format!(
                "index of pack {pack}: an encrypted vault cannot hold unsealed frames"
            ))),
            _ => Ok(()),
        }
    }

    /// Seals `plain`; `what` names it in errors.
    fn seal(&self, plain: &[u8], what: &dyn Fn() -> String) -> Result<Vec<u8>, VaultError> {
        self.sealer
            .seal(plain)
            .map_err(|source| VaultError::Crypto {
                what: what(),
                source,
            })
    }

    pub fn describe(&self) -> String {
        self.backend.describe()
    }

    pub fn is_encrypted(&self) -> bool {
        self.config.cipher != Cipher::None
    }

    /// Whether the vault holds the object (and, for a tree object, everything under it).
    pub fn contains(&self, id: &ChunkId) -> bool {
        self.index.contains_key(id)
    }

    /// The pack the index says holds an object (for messages about it).
    pub fn locate(&self, id: &ChunkId) -> Option<VaultPackId> {
        self.index.get(id).map(|(pack, _)| *pack)
    }

    /// Where the index says an object is: its pack, and the offset and length of its sealed
    /// entry there (for tests that damage one object on purpose, and for messages).
    pub fn object_location(&self, id: &ChunkId) -> Option<(VaultPackId, u64, u32)> {
        self.index
            .get(id)
            .map(|(pack, slice)| (*pack, u64::from(slice.offset), slice.len))
    }

    /// How many objects the vault holds.
    pub fn object_count(&self) -> usize {
        self.index.len()
    }

    /// Unseals an object read from the backend; `what` names it in errors.
    fn open_sealed(&self, sealed: &[u8], what: &dyn Fn() -> String) -> Result<Vec<u8>, VaultError> {
        self.sealer
            .open(sealed)
            .map_err(|source| VaultError::Crypto {
                what: what(),
                source,
            })
    }

    /// Reads one object back: located by the index, fetched with a ranged read, unsealed,
    /// decompressed and checked against its id. Never returns wrong bytes.
    pub fn read_object(&self, id: &ChunkId) -> Result<Vec<u8>, VaultError> {
        let (pack, slice) = self.index.get(id).ok_or(VaultError::Missing(*id))?;
        let start = u64::from(slice.offset);
        let sealed = self
            .backend
            .get_range(&pack_key(*pack), start..start + u64::from(slice.len))?;
        self.with_verified_entry(id, *pack, &sealed, |_, raw| raw.to_vec())
    }

    /// Unseals the entry of object `id` fetched from `pack` (or, from a pack of frames, takes
    /// the frame as it is) and checks it against its id; only then hands over its stored form
    /// (to be kept as it is) and its bytes.
    pub(crate) fn with_verified_entry<T>(
        &self,
        id: &ChunkId,
        pack: VaultPackId,
        sealed: &[u8],
        use_both: impl FnOnce(VerifiedChunk<'_>, &[u8]) -> T,
    ) -> Result<T, VaultError> {
        let what = || format!("object {id} in pack {pack}");
        if self.frame_packs.contains(&pack) {
            return chunk_store::verify_frame_copy(*id, sealed, use_both)
                .map_err(|_| VaultError::Damaged(what()));
        }
        let entry = self.open_sealed(sealed, &what)?;
        let (codec, raw_len, payload) =
            vault_pack::decode_entry(&entry).map_err(|source| VaultError::Decode {
                what: what(),
                source,
            })?;
        let stored = StoredChunk {
            codec: match codec {
                EntryCodec::Raw => Codec::Raw,
                EntryCodec::Zstd => Codec::Zstd,
            },
            raw_len,
            payload,
        };
        chunk_store::verify_stored(*id, stored, use_both).map_err(|_| VaultError::Damaged(what()))
    }

    /// Reads one backup record.
    fn record(&self, id: BackupId) -> Result<BackupRecord, VaultError> {
        let what = || format!("backup record {id}");
        let sealed = self.backend.get(&backup_key(id))?;
        let plain = self.open_sealed(&sealed, &what)?;
        BackupRecord::decode(&plain).map_err(|source| VaultError::Decode {
            what: what(),
            source,
        })
    }

    /// The ids of the backups the vault lists now: one listing, no record read.
    pub fn backup_ids(&self) -> Result<Vec<BackupId>, VaultError> {
        Ok(self
            .backend
            .list(BACKUPS)?
            .iter()
            .filter_map(|meta| listed_id(&meta.key, BACKUPS, BackupId::from_hex))
            .collect())
    }

    /// The record of a listed backup, or `None` if it was deleted since the listing.
    fn listed_record(&self, id: BackupId) -> Result<Option<BackupRecord>, VaultError> {
        match self.record(id) {
            Ok(record) => Ok(Some(record)),
            Err(VaultError::Blob(BlobError::NotFound(_))) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Every backup record, with its id.
    pub fn records(&self) -> Result<Vec<(BackupId, BackupRecord)>, VaultError> {
        let mut out = Vec::new();
        for id in self.backup_ids()? {
            if let Some(record) = self.listed_record(id)? {
                out.push((id, record));
            }
        }
        out.sort_by(|a, b| {
            (a.1.created.secs, a.1.created.nanos, &a.1.name).cmp(&(
                b.1.created.secs,
                b.1.created.nanos,
                &b.1.name,
            ))
        });
        Ok(out)
    }

    /// Reads the hold of one backup from its `holds/` object.
    fn hold_record(&self, key: &BlobKey) -> Result<HoldRecord, VaultError> {
        let what = || format!("hold {key}");
        let sealed = self.backend.get(key)?;
        let plain = self.open_sealed(&sealed, &what)?;
        HoldRecord::decode(&plain).map_err(|source| VaultError::Decode {
            what: what(),
            source,
        })
    }

    /// The hold of every backup that has one (objects under `holds/`; a hold object that
    /// names another backup than its key is damage).
    pub fn holds(&self) -> Result<HashMap<BackupId, Hold>, VaultError> {
        let mut out = HashMap::new();
        for meta in self.backend.list(HOLDS)? {
            let Some(id) = listed_id(&meta.key, HOLDS, BackupId::from_hex) else {
                continue;
            };
            let record = match self.hold_record(&meta.key) {
                Ok(record) => record,
                Err(VaultError::Blob(BlobError::NotFound(_))) => continue,
                Err(err) => return Err(err),
            };
            if record.backup != id {
                return Err(VaultError::Damaged(format!(
                    "hold {} (it names backup {})",
                    meta.key, record.backup
                )));
            }
            out.insert(id, record.hold);
        }
        Ok(out)
    }

    /// A backup's hold: its `holds/` object if it has one, else what its record says.
    pub fn hold_of(holds: &HashMap<BackupId, Hold>, id: BackupId, record: &BackupRecord) -> Hold {
        holds.get(&id).copied().unwrap_or(record.hold)
    }

    /// The backup `name` (a snapshot name, or `SHARE/NAME` with the share id in hex).
    pub fn find(&self, name: &str) -> Result<(BackupId, BackupRecord), VaultError> {
        let (share, snapshot) = match name.split_once('/') {
            Some((share, snapshot)) => (Some(share), snapshot),
            None => (None, name),
        };
        let mut found: Vec<_> = self
            .records()?
            .into_iter()
            .filter(|(_, record)| {
                record.name == snapshot && share.is_none_or(|share| record.share.to_hex() == share)
            })
            .collect();
        match found.len() {
            0 => Err(VaultError::NoBackup(name.to_owned())),
            1 => Ok(found.remove(0)),
            _ => Err(VaultError::Ambiguous(name.to_owned())),
        }
    }
}
