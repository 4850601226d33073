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
use crate::format::store_config::{
    STORE_CONFIG_FILE, STORE_FORMAT_VERSION, StoreConfig, StoreConfigError,
};
use crate::meta::{MetaError, MetaStore};
use crate::metadata_budget::MetadataBudget;
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
    #[error("tiering: {0}")]
    Tier(#[from] crate::tier::TierError),
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Rewrites an older store's identity file at the current version (a version-1 store gets its
/// share id).
fn upgrade(config_path: &Path, old: &StoreConfig) -> Result<StoreConfig, StoreError> {
    let new = old.upgraded().map_err(|source| StoreError::Config {
        path: config_path.to_owned(),
        source,
    })?;
    rewrite_config(config_path, &new)?;
    tracing::info!(
        store = %config_path.display(),
        from = old.format_version,
        to = new.format_version,
        "upgraded the store format"
    );
    Ok(new)
}

/// Replaces a store's identity file atomically: a new file beside it, fsynced, renamed over
/// it, directory fsynced. A crash leaves the old file or the new one; a stray temporary file
/// is replaced next time.
fn rewrite_config(config_path: &Path, new: &StoreConfig) -> Result<(), StoreError> {
    let tmp = config_path.with_extension("json.upgrade");
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(io_at(&tmp)(err)),
    }
    durable::write_new_file(&tmp, &new.encode()).map_err(io_at(&tmp))?;
    std::fs::rename(&tmp, config_path).map_err(io_at(config_path))?;
    durable::sync_parent(config_path).map_err(io_at(config_path))
}

/// An open store: locked for this process until dropped.
pub struct Store {
    pub dir: PathBuf,
    pub config: StoreConfig,
    pub meta: MetaStore,
    pub chunks: Arc<ChunkStore>,
    /// The object store a tiered store is connected to.
    pub tier: Option<Arc<crate::tier::Tier>>,
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
        Self::init_tiered(dir, block_size, owner_uid, owner_gid, None)
    }

    /// [`Store::init`], for a store tiered to `tier` when given.
    pub fn init_tiered(
        dir: &Path,
        block_size: u32,
        owner_uid: u32,
        owner_gid: u32,
        tier: Option<crate::format::store_config::TierConfig>,
    ) -> Result<StoreConfig, StoreError> {
        let mut config = StoreConfig::new(block_size).map_err(|source| StoreError::Config {
            path: dir.to_owned(),
            source,
        })?;
        config.tier = tier;
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

    /// Opens and locks an existing store, for the default metadata budget.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(dir, MetadataBudget::DEFAULT)
    }

    /// Opens and locks an existing store, for a share served within `budget` (which sizes the
    /// metadata database's page cache).
    pub fn open_with(dir: &Path, budget: MetadataBudget) -> Result<Self, StoreError> {
        let dir = std::path::absolute(dir).map_err(io_at(dir))?;
        let (config, lock) = Self::lock_config(&dir)?;
        Self::opened(dir, config, lock, budget)
    }

    /// Opens a follower's copy of a checkpoint (`tier::follow`): a directory without an
    /// identity file, so that no command but the follower that made it opens it (a copy must
    /// never take the share's writer lease), with `config` given by that follower.
    pub fn open_follower_copy(
        dir: &Path,
        config: StoreConfig,
        budget: MetadataBudget,
    ) -> Result<Self, StoreError> {
        let dir = std::path::absolute(dir).map_err(io_at(dir))?;
        let lock = StoreLock::acquire(&dir)?;
        Self::opened(dir, config, lock, budget)
    }

    /// Reads the identity file of the store in `dir` (absolute), locks the store, and upgrades
    /// the file if it is of an older format.
    fn lock_config(dir: &Path) -> Result<(StoreConfig, StoreLock), StoreError> {
        let config_path = dir.join(STORE_CONFIG_FILE);
        let bytes = match std::fs::read(&config_path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Err(if dir.is_dir() {
                    StoreError::NotAStore(dir.to_owned())
                } else {
                    io_at(dir)(err)
                });
            }
            Err(err) => return Err(io_at(&config_path)(err)),
        };
        let config = StoreConfig::decode(&bytes).map_err(|source| StoreError::Config {
            path: config_path.clone(),
            source,
        })?;
        let lock = StoreLock::acquire(dir)?;
        let config = if config.format_version < STORE_FORMAT_VERSION {
            upgrade(&config_path, &config)?
        } else {
            config
        };
        Ok((config, lock))
    }

    /// Tiers an existing store to an object store (`snapfs tier enable`): claims the location
    /// for the share, then rewrites the identity file with the tier settings. The store must
    /// not be open (mounted): its next mount uploads what it holds, in the background.
    pub fn enable_tier(
        dir: &Path,
        tier: crate::format::store_config::TierConfig,
    ) -> Result<StoreConfig, StoreError> {
        let dir = std::path::absolute(dir).map_err(io_at(dir))?;
        let (config, _lock) = Self::lock_config(&dir)?;
        if let Some(existing) = &config.tier {
            return Err(StoreError::Tier(crate::tier::TierError::Invalid(format!(
                "{} is tiered already, to {}",
                dir.display(),
                existing.location
            ))));
        }
        let share = config.share_id.clone().unwrap_or_default();
        crate::tier::probe(&tier)?;
        crate::tier::claim_location(&tier, &share, config.block_size)?;
        let tiered = StoreConfig {
            tier: Some(tier),
            ..config
        };
        rewrite_config(&dir.join(STORE_CONFIG_FILE), &tiered)?;
        Ok(tiered)
    }
}

impl Store {
    /// Opened with `dir` absolute.
    fn opened(
        dir: PathBuf,
        config: StoreConfig,
        lock: StoreLock,
        budget: MetadataBudget,
    ) -> Result<Self, StoreError> {
        let meta = MetaStore::open(&dir, budget.database_cache())?;
        if crate::meta::namespace::ensure_tables(&meta.database())? {
            tracing::info!(store = %dir.display(), "built the namespace lookup tables");
        }
        let chunks = Arc::new(ChunkStore::open(&dir, meta.database())?);
        let tier = match &config.tier {
            Some(tier) => Some(crate::tier::Tier::connect(
                chunks.clone(),
                meta.database(),
                dir.clone(),
                tier.clone(),
            )?),
            None => None,
        };
        Ok(Store {
            dir,
            config,
            meta,
            chunks,
            tier,
            lock,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The store config in `dir` as its file holds it now.
    fn config_on_disk(dir: &Path) -> StoreConfig {
        StoreConfig::decode(&std::fs::read(dir.join(STORE_CONFIG_FILE)).expect("read"))
            .expect("the store config decodes")
    }

    /// Copies the store committed under `tests/fixtures/<fixture>` (its `files`) to `to` (git
    /// keeps no empty directory: `packs/` is made here).
    fn copy_fixture(fixture: &str, files: &[&str], to: &Path) {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(fixture);
        std::fs::create_dir_all(to.join(crate::chunk_store::PACK_DIR)).expect("mkdir");
        for name in files {
            std::fs::copy(fixture.join(name), to.join(name)).expect("copy fixture");
        }
    }

    /// A store made by `snapfs init` of format version 1 (before share ids).
    fn copy_v1_fixture(to: &Path) {
        copy_fixture("store-v1", &[STORE_CONFIG_FILE, "meta.redb"], to);
    }

    #[test]
    fn a_version_1_store_is_upgraded_at_open_with_a_stable_share_id() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("store");
        copy_v1_fixture(&dir);
        let before = std::fs::read(dir.join(STORE_CONFIG_FILE)).expect("read");
        assert_eq!(StoreConfig::decode(&before).expect("v1").format_version, 1);

        let store = Store::open(&dir).expect("opens and upgrades");
        assert_eq!(store.config.format_version, STORE_FORMAT_VERSION);
        let share = store.config.share_id().expect("a share id");
        drop(store);
        let on_disk = config_on_disk(&dir);
        assert_eq!(on_disk.format_version, STORE_FORMAT_VERSION);
        assert_eq!(on_disk.share_id(), Some(share), "written durably");
        let again = Store::open(&dir).expect("reopens");
        assert_eq!(again.config.share_id(), Some(share), "stable across opens");
        assert!(!dir.join("snapfs-store.json.upgrade").exists());
    }

    /// `tests/fixtures/store-v2`, written by the version-2 release: a share with snapshots and
    /// a change after the last one. Upgraded, it keeps its share id and its snapshots, and
    /// gains a `frozen` table: empty at first, so the first freeze encodes everything, then
    /// kept across a reopen.
    #[test]
    fn a_version_2_store_keeps_its_share_id_and_snapshots_and_gains_the_frozen_table() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("store");
        copy_fixture(
            "store-v2",
            &[STORE_CONFIG_FILE, "meta.redb", "packs/00000001.pack"],
            &dir,
        );
        let before = config_on_disk(&dir);
        assert_eq!(before.format_version, 2);

        let live = crate::testing::open(&dir);
        assert_eq!(live.share_id(), before.share_id(), "the share id is kept");
        let snapshots = crate::testing::snapshots_of(&live);
        let (_, newest) = snapshots
            .list()
            .into_iter()
            .max_by_key(|(_, r)| r.number)
            .expect("a snapshot");
        let objects = snapshots.objects().clone();
        let first = live.freeze(&objects).expect("freeze");
        assert!(first.encoded > 1, "the upgraded store had nothing frozen");
        let changes = crate::history::diff(
            &objects,
            &crate::history::tree::Tree::of_snapshot(&newest),
            &crate::history::tree::Tree::of_live(&live, &objects).expect("live tree"),
            None,
        )
        .expect("diff");
        assert!(
            !changes.is_empty(),
            "the change after the newest snapshot reads back"
        );
        live.commit_now().expect("commit");
        drop((objects, snapshots));
        crate::testing::close(live);

        let on_disk = config_on_disk(&dir);
        assert_eq!(on_disk.format_version, STORE_FORMAT_VERSION);
        let live = crate::testing::open(&dir);
        let objects = crate::tree_objects::TreeObjects::new(live.chunk_store());
        assert_eq!(
            live.freeze(&objects).expect("freeze").encoded,
            0,
            "now it had"
        );
        drop(objects);
        crate::testing::close(live);
    }

    /// `tests/fixtures/store-v3`, written by the version-3 release (`snapfs mount`, then
    /// `kill -9` while a file deleted after its last name went was still open): directories,
    /// a file with three hard links in three directories, a symbolic link, a FIFO, extended
    /// attributes, two snapshots, changes after them, and that orphan. Upgraded, it gains the
    /// `names` and `orphans` tables (the orphan is found in them and purged at mount), its
    /// share reads back whole when loaded on demand, its hard links keep their bookkeeping,
    /// and the first freeze encodes everything once (format 3's `frozen` table is dropped).
    #[test]
    fn a_version_3_store_gains_the_namespace_tables() {
        use crate::testing::{lookup, read_file};
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("store");
        copy_fixture(
            "store-v3",
            &[STORE_CONFIG_FILE, "meta.redb", "packs/00000001.pack"],
            &dir,
        );
        let before = config_on_disk(&dir);
        assert_eq!(before.format_version, 3);

        let store = Store::open(&dir).expect("opens and upgrades");
        assert_eq!(store.config.share_id(), before.share_id());
        let state = store.meta.mount_state().expect("mount state");
        assert_eq!(state.orphans.len(), 1, "the file open at the crash");
        let orphan = state.orphans[0];
        drop(store);
        let live = crate::testing::open(&dir);
        assert!(
            live.getattr(orphan).is_err(),
            "the orphan is purged at mount"
        );
        assert!(read_file(&live, "a/f0") == b"file 0\n");
        assert!(read_file(&live, "a/f2") == b"changed");
        assert!(read_file(&live, "d/f3moved") == b"file 3\n");
        assert!(read_file(&live, "a/b/c/after") == b"after");
        assert_eq!(read_file(&live, "a/b/c/big").len(), 20000);
        assert!(lookup(&live, "a/f4").is_err(), "removed before the crash");
        assert!(lookup(&live, "d/fifo").is_ok());
        let colour = live.getxattr(lookup(&live, "a/f1").expect("f1").ino, b"user.colour", 64);
        assert!(matches!(colour, Ok(crate::live::XattrReply::Data(v)) if v == b"blue"));
        // The hard link, found first through `d`, whose siblings in `a` and `a/b` are not
        // listed yet.
        let hard = lookup(&live, "d/hard2").expect("hard2");
        assert_eq!(hard.record.nlink, 3);
        let a = lookup(&live, "a").expect("a").ino;
        live.unlink(a, b"hard3").expect("unlink");
        assert!(read_file(&live, "a/b/hard") == b"hard");
        assert_eq!(lookup(&live, "a/b/hard").expect("hard").record.nlink, 2);
        live.assert_consistent();

        let snapshots = crate::testing::snapshots_of(&live);
        assert_eq!(snapshots.list().len(), 2, "both snapshots are kept");
        let objects = snapshots.objects().clone();
        let first = live.freeze(&objects).expect("freeze");
        assert!(first.encoded > 10, "format 3's frozen objects were dropped");
        live.commit_now().expect("commit");
        drop((objects, snapshots));
        crate::testing::close(live);

        let on_disk = config_on_disk(&dir);
        assert_eq!(on_disk.format_version, STORE_FORMAT_VERSION);
        let live = crate::testing::open(&dir);
        assert_eq!(lookup(&live, "d/hard2").expect("hard2").record.nlink, 2);
        let objects = crate::tree_objects::TreeObjects::new(live.chunk_store());
        assert_eq!(live.freeze(&objects).expect("freeze").encoded, 0);
        drop(objects);
        crate::testing::close(live);
    }

    /// `tests/fixtures/store-v4`, written by the version-4 release (`snapfs mount`, files, a
    /// hard link, a symbolic link, an extended attribute, a snapshot, a change after it, a clean
    /// unmount). Upgraded, it stays untiered and reads back whole, snapshot included, and the
    /// frozen objects version 4 persisted are still trusted.
    #[test]
    fn a_version_4_store_upgrades_untiered() {
        use crate::testing::{lookup, read_file};
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("store");
        copy_fixture(
            "store-v4",
            &[STORE_CONFIG_FILE, "meta.redb", "packs/00000001.pack"],
            &dir,
        );
        let before = config_on_disk(&dir);
        assert_eq!(before.format_version, 4);
        let live = crate::testing::open(&dir);
        assert_eq!(live.share_id(), before.share_id());
        assert!(read_file(&live, "docs/a.txt") == b"version four\n");
        assert!(read_file(&live, "docs/b.txt") == b"after\n");
        let random = read_file(&live, "docs/deep/random.bin");
        assert_eq!(
            blake3::hash(&random).to_hex().as_str(),
            "337e343cdd0269ef7ec9836b75b7695477f86bb4cb05f104838d1d61d991aa2d",
            "the 300,000 random bytes read back"
        );
        assert_eq!(
            lookup(&live, "docs/deep/link").expect("link").record.nlink,
            2
        );
        let snapshots = crate::testing::snapshots_of(&live);
        assert_eq!(snapshots.list().len(), 1);
        let objects = snapshots.objects().clone();
        live.commit_now().expect("commit");
        drop((objects, snapshots));
        crate::testing::close(live);
        let on_disk = config_on_disk(&dir);
        assert_eq!(on_disk.format_version, STORE_FORMAT_VERSION);
        assert_eq!(on_disk.tier, None);
    }

    #[test]
    fn new_stores_have_distinct_share_ids() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let a = Store::init(&tmp.path().join("a"), 4096, 0, 0).expect("init");
        let b = Store::init(&tmp.path().join("b"), 4096, 0, 0).expect("init");
        assert!(a.share_id().is_some());
        assert_ne!(a.share_id(), b.share_id());
    }
}
