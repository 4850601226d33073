//! A store directory as a whole: creating one, and opening one with every check a user would
//! want before anything is touched (is it a store, which format, is it already in use).
//!
//! ```text
//! STORE/
//!   snapfs-store.json   identity and settings (format::store_config)
//!   lock                flock'd while the store is open (storage::lock)
//!   meta.redb           metadata and chunk index (meta, chunk_store::index)
//!   packs/NNNNNNNN.pack chunk data (format::pack)
//! ```

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::chunk_store::{ChunkStore, ChunkStoreError};
use crate::format::inode::InodeRecord;
use crate::format::store_config::{STORE_CONFIG_FILE, StoreConfig, StoreConfigError};
use crate::meta::{MetaError, MetaStore};
use crate::storage::durable;
use crate::storage::lock::{LockError, StoreLock};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{} is not a snapfs store (no {STORE_CONFIG_FILE}); create one with `snapfs init`", .0.display())]
    NotAStore(PathBuf),
    #[error("{} is already a snapfs store", .0.display())]
    AlreadyAStore(PathBuf),
    #[error("{} is not empty and not a snapfs store; refusing to create a store there", .0.display())]
    NotEmpty(PathBuf),
    #[error("{}", path.display())]
    Config {
        path: PathBuf,
        source: StoreConfigError,
    },
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error(transparent)]
    Chunks(#[from] ChunkStoreError),
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// An open store: locked for this process until dropped.
pub struct Store {
    pub dir: PathBuf,
    pub config: StoreConfig,
    pub meta: MetaStore,
    pub chunks: Arc<ChunkStore>,
    pub lock: StoreLock,
}

impl Store {
    /// Creates a new, empty store in `dir` (created if missing; refused if it holds anything).
    pub fn init(
        dir: &Path,
        block_size: u32,
        owner_uid: u32,
        owner_gid: u32,
    ) -> Result<StoreConfig, StoreError> {
        let config = StoreConfig::new(block_size).map_err(|source| StoreError::Config {
            path: dir.to_owned(),
            source,
        })?;
        if dir.join(STORE_CONFIG_FILE).exists() {
            return Err(StoreError::AlreadyAStore(dir.to_owned()));
        }
        match std::fs::read_dir(dir) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    return Err(StoreError::NotEmpty(dir.to_owned()));
                }
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                durable::create_dir(dir).map_err(io_at(dir))?;
            }
            Err(err) => return Err(io_at(dir)(err)),
        }
        let _lock = StoreLock::acquire(dir)?;
        MetaStore::create(
            dir,
            &InodeRecord::new_directory(0o755, owner_uid, owner_gid),
        )?;
        ChunkStore::create(dir).map_err(io_at(dir))?;
        // The identity file is written last: a directory without it is not (yet) a store, so an
        // interrupted init is refused by `mount` and can simply be removed.
        durable::write_new_file(&dir.join(STORE_CONFIG_FILE), &config.encode())
            .map_err(io_at(dir))?;
        Ok(config)
    }

    /// Opens and locks an existing store.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let dir = std::path::absolute(dir).map_err(io_at(dir))?;
        let config_path = dir.join(STORE_CONFIG_FILE);
        let bytes = match std::fs::read(&config_path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Err(if dir.is_dir() {
                    StoreError::NotAStore(dir)
                } else {
                    io_at(&dir)(err)
                });
            }
            Err(err) => return Err(io_at(&config_path)(err)),
        };
        let config = StoreConfig::decode(&bytes).map_err(|source| StoreError::Config {
            path: config_path.clone(),
            source,
        })?;
        let lock = StoreLock::acquire(&dir)?;
        let meta = MetaStore::open(&dir)?;
        let chunks = Arc::new(ChunkStore::open(&dir, meta.database())?);
        Ok(Store {
            dir,
            config,
            meta,
            chunks,
            lock,
        })
    }
}
