//! Browsing a vault read-only, independent of FUSE: the core of `snapfs vault mount`. The
//! top directory lists the shares the vault holds backups of, each share lists its backups
//! by name, and each backup is its snapshot's tree, decoded lazily from the vault's objects.
//! The list of backups follows the vault: backups made (by any host) while it is mounted
//! appear, and deleted ones go, within [`REFRESH_AFTER`] of being listed or looked up.
//!
//! Memory stays bounded whatever the size of the backups: nothing is read until asked for;
//! decoded tree objects and fetched file data sit in two caches bounded in bytes (least
//! recently used first out); the inodes inside backups are remembered only while the kernel
//! holds a reference to them (a lookup each, given back by `forget`).
//!
//! Every object comes from [`Vault::read_object`]: one ranged read of its slice of its pack,
//! unsealed, decompressed and checked against its id, so a damaged or missing object is an
//! error for the read that needed it, never wrong bytes.
//!
//! Inode numbers: the top directory is 1; share directories are `2 + i`; inside backup number
//! `b` (1-based, in the order the mount first saw them), `b << 40 | link_id`, where
//! `link_id` is the live inode number the entry had when frozen (the root's is 1), so hard
//! links inside one backup share an inode, as in `.snapshots/`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};

use super::{Vault, VaultError, tree};
use crate::cache::LruCache;
use crate::format::backup_record::BackupRecord;
use crate::format::catalog::{Hold, Origin, SnapshotRecord};
use crate::format::inode::{InodeKind, InodeRecord, Timestamp};
use crate::format::object::{DirectoryObject, Object, ObjectId, Xattrs};
use crate::held_inodes::HeldInodes;
use crate::id::{BackupId, ChunkId, InodeNo, VaultPackId};
use crate::snapshot::view::read_file;

/// The top directory of a mount.
pub const TOP: InodeNo = InodeNo(1);
const LINK_BITS: u32 = 40;
const LINK_MASK: u64 = (1 << LINK_BITS) - 1;
/// The share of the cache budget given to decoded tree objects (the rest holds file data):
/// directories and block maps are small next to the data they describe.
const TREE_SHARE: u64 = 4;

/// Why a request on a mounted vault failed.
#[derive(Debug, thiserror::Error)]
pub enum BrowseError {
    #[error("no such entry")]
    NotFound,
    #[error("not a directory")]
    NotDirectory,
    #[error("not a regular file")]
    NotFile,
    /// An object could not be read back whole and checked: damaged, missing, or its storage
    /// unreachable. `pack` is where the index says it is.
    #[error("object {object} (pack {}): {source}", pack.map_or("none".to_owned(), |p| p.to_string()))]
    Object {
        object: ObjectId,
        pack: Option<VaultPackId>,
        source: Box<VaultError>,
    },
}

/// An inode of the mount, as the kernel is told of it.
#[derive(Clone, Debug)]
pub struct Node {
    pub ino: InodeNo,
    /// The directory it was found in (for `..` in listings).
    pub parent: InodeNo,
    pub record: InodeRecord,
    /// Its file or directory object inside a backup; `None` for the top and share directories
    /// and for entries that have none (symlinks, devices).
    pub object: Option<ObjectId>,
    pub xattrs: Xattrs,
}

/// The entries of a directory: name, inode, kind.
pub type Entries = Vec<(Vec<u8>, InodeNo, InodeKind)>;

/// How long the mount trusts the backup list it last read: listing (or missing a name in) the
/// top or a share directory after this long reads it again, so that a backup made while the
/// vault is mounted appears within this long. A refresh that finds nothing new costs one
/// listing of the vault's records.
const REFRESH_AFTER: Duration = Duration::from_secs(2);

struct Share {
    /// The share's id in hex.
    hex: String,
    /// Its directory's name.
    name: String,
    /// Its backups, as indexes into `Catalog::backups`, sorted by name.
    backups: Vec<usize>,
}

/// The backups the mount shows, as of its last refresh. Its numbering is stable for the life
/// of the mount, because the kernel holds inode numbers made from it: share `i` is directory
/// `2 + i` and backup `b` is `backups[b - 1]`, and both lists only grow. A backup gone from
/// the vault (deleted) leaves a `None`, so its number is never given to another.
#[derive(Default)]
struct Catalog {
    shares: Vec<Share>,
    backups: Vec<Option<BackupRecord>>,
    numbers: HashMap<BackupId, usize>,
    /// The newest backup's time: the synthetic directories' times.
    newest: Timestamp,
}

impl Catalog {
    /// Adds backups found since the last refresh (in the vault's order, oldest first) and
    /// drops those no longer `listed`.
    fn update(&mut self, found: Vec<(BackupId, BackupRecord)>, listed: &HashSet<BackupId>) {
        for (id, slot) in &self.numbers {
            if !listed.contains(id) && self.backups[*slot].take().is_some() {
                for share in &mut self.shares {
                    share.backups.retain(|b| b != slot);
                }
            }
        }
        let mut new_shares: Vec<String> = found.iter().map(|(_, r)| r.share.to_hex()).collect();
        new_shares.sort();
        new_shares.dedup();
        for hex in new_shares {
            if self.shares.iter().all(|s| s.hex != hex) {
                // A short form another share already has (unlikely) is shown in full.
                let short = share_dir_name(&hex);
                let name = if self.shares.iter().any(|s| s.name == short) {
                    hex.clone()
                } else {
                    short
                };
                self.shares.push(Share {
                    hex,
                    name,
                    backups: Vec::new(),
                });
            }
        }
        for (id, record) in found {
            let hex = record.share.to_hex();
            let slot = self.backups.len();
            if let Some(share) = self.shares.iter_mut().find(|s| s.hex == hex) {
                share.backups.push(slot);
            }
            self.newest = self.newest.max(record.created);
            self.backups.push(Some(record));
            self.numbers.insert(id, slot);
        }
        let backups = &self.backups;
        let name = |slot: &usize| backups[*slot].as_ref().map(|r| r.name.clone());
        for share in &mut self.shares {
            share.backups.sort_by_key(name);
        }
    }

    fn record(&self, number: usize) -> Option<&BackupRecord> {
        self.backups.get(number.checked_sub(1)?)?.as_ref()
    }

    /// The share directories shown: those with a backup left.
    fn visible_shares(&self) -> impl Iterator<Item = (usize, &Share)> {
        self.shares
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.backups.is_empty())
    }
}

/// The read-only view of a vault's backups.
pub struct VaultBrowser {
    /// Written only to install a reloaded index, which a refresh that found new backups reads
    /// aside first (the lock is not held while the vault is read).
    vault: RwLock<Vault>,
    catalog: RwLock<Catalog>,
    /// When the catalog was last read; held while a refresh runs, so that concurrent requests
    /// wait for it rather than each reading the vault again.
    refreshed: Mutex<Instant>,
    /// [`REFRESH_AFTER`], but for tests.
    refresh_after: Duration,
    /// Owner of the synthetic directories: who mounted.
    owner: (u32, u32),
    /// The inodes inside backups the kernel holds.
    held: RwLock<HeldInodes<Node>>,
    trees: Mutex<LruCache<ObjectId, Object>>,
    data: Mutex<LruCache<ChunkId, Vec<u8>>>,
}

fn backup_ino(number: usize, link_id: u64) -> InodeNo {
    InodeNo(((number as u64) << LINK_BITS) | (link_id & LINK_MASK))
}

/// The backup number (1-based) an inode is inside of, if any.
fn backup_of(ino: InodeNo) -> Option<usize> {
    let number = (ino.0 >> LINK_BITS) as usize;
    (number > 0).then_some(number)
}

/// The name a share's directory has: its id as `vault list` shows it.
pub fn share_dir_name(share_hex: &str) -> String {
    share_hex.get(..12).unwrap_or(share_hex).to_owned()
}

impl VaultBrowser {
    /// A view of the backups `vault` lists now, and of those made later (see
    /// [`REFRESH_AFTER`]); `cache_bytes` bounds what is kept of the objects read. `owner` owns
    /// the synthetic directories.
    pub fn new(vault: Vault, cache_bytes: u64, owner: (u32, u32)) -> Result<Self, VaultError> {
        let browser = VaultBrowser {
            vault: RwLock::new(vault),
            catalog: RwLock::new(Catalog::default()),
            refreshed: Mutex::new(Instant::now()),
            refresh_after: REFRESH_AFTER,
            owner,
            held: RwLock::new(HeldInodes::default()),
            trees: Mutex::new(LruCache::new(cache_bytes / TREE_SHARE)),
            data: Mutex::new(LruCache::new(cache_bytes - cache_bytes / TREE_SHARE)),
        };
        browser.read_catalog()?;
        Ok(browser)
    }

    /// Reads the vault's backup list again if it is older than [`REFRESH_AFTER`]. A vault that
    /// cannot be read now leaves the list as it was (and a warning in the log): what the
    /// mount shows stays readable.
    fn refresh(&self) {
        let mut refreshed = self.refreshed.lock();
        if refreshed.elapsed() < self.refresh_after {
            return;
        }
        if let Err(err) = self.read_catalog() {
            tracing::warn!("cannot read the vault's backup list again: {err}");
        }
        *refreshed = Instant::now();
    }

    /// Lists the vault's backups and reads the records of new ones. Their objects are in index
    /// files stored before their records, so the index is reloaded (when there are new
    /// backups) before they are shown.
    fn read_catalog(&self) -> Result<(), VaultError> {
        let vault = self.vault.read();
        let listed = vault.backup_ids()?;
        let unknown: Vec<BackupId> = {
            let catalog = self.catalog.read();
            listed
                .iter()
                .filter(|id| !catalog.numbers.contains_key(id))
                .copied()
                .collect()
        };
        let mut found = Vec::new();
        for id in unknown {
            if let Some(record) = vault.listed_record(id)? {
                found.push((id, record));
            }
        }
        found.sort_by(|a, b| (a.1.created, &a.1.name).cmp(&(b.1.created, &b.1.name)));
        let index = match found.is_empty() {
            true => None,
            false => Some(vault.read_index()?),
        };
        drop(vault);
        if let Some(index) = index {
            self.vault.write().install_index(index);
        }
        self.catalog
            .write()
            .update(found, &listed.into_iter().collect());
        Ok(())
    }

    /// The block size of the backup an inode is in (the store's it came from).
    pub fn block_size(&self, ino: InodeNo) -> u32 {
        backup_of(ino)
            .and_then(|b| self.catalog.read().record(b).map(|r| r.block_size))
            .unwrap_or(4096)
    }

    /// How many inodes inside backups the kernel holds now.
    pub fn held_count(&self) -> usize {
        self.held.read().len()
    }

    fn synthetic(&self, ino: InodeNo, parent: InodeNo, nlink: u32, time: Timestamp) -> Node {
        Node {
            ino,
            parent,
            record: InodeRecord {
                kind: InodeKind::Directory,
                perm: 0o555,
                uid: self.owner.0,
                gid: self.owner.1,
                nlink,
                rdev: 0,
                size: 0,
                atime: time,
                mtime: time,
                ctime: time,
                symlink_target: Vec::new(),
            },
            object: None,
            xattrs: Vec::new(),
        }
    }

    fn share_node(&self, catalog: &Catalog, index: usize) -> Node {
        let backups = catalog.shares.get(index).map_or(0, |s| s.backups.len());
        self.synthetic(
            InodeNo(2 + index as u64),
            TOP,
            2 + backups as u32,
            catalog.newest,
        )
    }

    /// The index of the share whose directory is `ino`.
    fn share_index(catalog: &Catalog, ino: InodeNo) -> Option<usize> {
        let index = ino.0.checked_sub(2)? as usize;
        (backup_of(ino).is_none() && index < catalog.shares.len()).then_some(index)
    }

    /// The root directory of backup number `number`, as `.snapshots/NAME` shows a snapshot's.
    fn backup_root(catalog: &Catalog, number: usize) -> Option<Node> {
        let record = catalog.record(number)?;
        let share = catalog
            .shares
            .iter()
            .position(|s| s.backups.contains(&(number - 1)))?;
        let as_snapshot = SnapshotRecord {
            number: number as u64,
            root: record.root,
            created: record.created,
            origin: Origin::Manual,
            root_perm: record.root_perm,
            root_uid: record.root_uid,
            root_gid: record.root_gid,
            hold: Hold::None,
            deleted: None,
        };
        Some(Node {
            ino: backup_ino(number, InodeNo::ROOT.0),
            parent: InodeNo(2 + share as u64),
            record: as_snapshot.root_record(),
            object: Some(record.root),
            xattrs: Vec::new(),
        })
    }

    /// A name in the top directory (a share) or in a share's directory (a backup), looked up
    /// in the catalog as it is; `None` if `parent` is neither.
    fn lookup_listed(&self, parent: InodeNo, name: &[u8]) -> Option<Result<Node, BrowseError>> {
        let catalog = self.catalog.read();
        if parent == TOP {
            let found = catalog
                .visible_shares()
                .find(|(_, s)| s.name.as_bytes() == name)
                .map(|(index, _)| self.share_node(&catalog, index));
            return Some(found.ok_or(BrowseError::NotFound));
        }
        let index = Self::share_index(&catalog, parent)?;
        let found = catalog.shares[index].backups.iter().find(|b| {
            catalog.backups[**b]
                .as_ref()
                .is_some_and(|r| r.name.as_bytes() == name)
        });
        Some(
            found
                .and_then(|b| Self::backup_root(&catalog, b + 1))
                .ok_or(BrowseError::NotFound),
        )
    }

    /// The entries of the top directory or of a share's directory; `None` if `ino` is neither.
    fn list_listed(&self, ino: InodeNo) -> Option<Entries> {
        let catalog = self.catalog.read();
        if ino == TOP {
            let entries = catalog
                .visible_shares()
                .map(|(i, share)| {
                    let name = share.name.clone().into_bytes();
                    (name, InodeNo(2 + i as u64), InodeKind::Directory)
                })
                .collect();
            return Some(entries);
        }
        let index = Self::share_index(&catalog, ino)?;
        let entries = catalog.shares[index]
            .backups
            .iter()
            .filter_map(|b| {
                let name = catalog.backups[*b].as_ref()?.name.clone().into_bytes();
                Some((
                    name,
                    backup_ino(b + 1, InodeNo::ROOT.0),
                    InodeKind::Directory,
                ))
            })
            .collect();
        Some(entries)
    }

    /// The inode `ino`, if the kernel may know it.
    pub fn node(&self, ino: InodeNo) -> Result<Node, BrowseError> {
        {
            let catalog = self.catalog.read();
            if ino == TOP {
                let shares = catalog.visible_shares().count() as u32;
                return Ok(self.synthetic(TOP, TOP, 2 + shares, catalog.newest));
            }
            if let Some(index) = Self::share_index(&catalog, ino) {
                return Ok(self.share_node(&catalog, index));
            }
            let number = backup_of(ino).ok_or(BrowseError::NotFound)?;
            if ino == backup_ino(number, InodeNo::ROOT.0) {
                return Self::backup_root(&catalog, number).ok_or(BrowseError::NotFound);
            }
        }
        self.held
            .read()
            .get(ino)
            .cloned()
            .ok_or(BrowseError::NotFound)
    }

    /// Looks `name` up in the directory `parent`. An entry inside a backup is remembered
    /// until the kernel forgets it: each successful lookup is one reference the kernel holds.
    /// A share or backup not found may have been made since the last refresh.
    pub fn lookup(&self, parent: InodeNo, name: &[u8]) -> Result<Node, BrowseError> {
        if let Some(found) = self.lookup_listed(parent, name) {
            if !matches!(found, Err(BrowseError::NotFound)) {
                return found;
            }
            self.refresh();
            return self
                .lookup_listed(parent, name)
                .unwrap_or(Err(BrowseError::NotFound));
        }
        let dir = self.node(parent)?;
        let number = backup_of(parent).ok_or(BrowseError::NotFound)?;
        let object = self.directory(&dir)?;
        let Object::Directory(DirectoryObject { entries }) = &*object else {
            return Err(BrowseError::NotDirectory);
        };
        let at = entries
            .binary_search_by(|entry| entry.name.as_slice().cmp(name))
            .map_err(|_| BrowseError::NotFound)?;
        let entry = &entries[at];
        let ino = backup_ino(number, entry.link_id);
        let mut held = self.held.write();
        let node = held.look_up(ino, || Node {
            ino,
            parent,
            record: entry.record.clone(),
            object: entry.object,
            xattrs: entry.xattrs.clone(),
        });
        Ok(node.clone())
    }

    /// The kernel gives back `count` lookups of `ino`; with none left, it is forgotten.
    pub fn forget(&self, ino: InodeNo, count: u64) {
        self.held.write().forget(ino, count);
    }

    /// The entries of a directory, and its parent.
    /// Listing the top or a share's directory shows the backups made since the last refresh.
    pub fn list(&self, ino: InodeNo) -> Result<(InodeNo, Entries), BrowseError> {
        if self.list_listed(ino).is_some() {
            self.refresh();
            if let Some(entries) = self.list_listed(ino) {
                return Ok((TOP, entries));
            }
        }
        let dir = self.node(ino)?;
        let number = backup_of(ino).ok_or(BrowseError::NotFound)?;
        let object = self.directory(&dir)?;
        let Object::Directory(DirectoryObject { entries }) = &*object else {
            return Err(BrowseError::NotDirectory);
        };
        let entries = entries
            .iter()
            .map(|e| (e.name.clone(), backup_ino(number, e.link_id), e.record.kind))
            .collect();
        Ok((dir.parent, entries))
    }

    /// Reads up to `len` bytes at `offset` of a file inside a backup: only the chunks the
    /// range covers are fetched (each with one ranged read), holes read as zeros.
    pub fn read(&self, ino: InodeNo, offset: u64, len: u32) -> Result<Vec<u8>, BrowseError> {
        let node = self.node(ino)?;
        if node.record.kind != InodeKind::File {
            return Err(BrowseError::NotFile);
        }
        let id = node.object.ok_or(BrowseError::NotFile)?;
        let object = self.tree_object(&id)?;
        let Object::File(file) = &*object else {
            return Err(self.damaged(id, "a file entry whose object is not a file"));
        };
        read_file(
            file,
            offset,
            len,
            self.block_size(ino),
            |segment| self.tree_object(segment),
            |segment| self.damaged(*segment, "a file's segment that is not a segment"),
            |chunk, in_block, out| {
                // A stored block may be shorter than the block size: the rest reads as zeros,
                // as in the snapshot view.
                let data = self.data_chunk(chunk)?;
                let available = data.get(in_block..).unwrap_or_default();
                let n = available.len().min(out.len());
                out[..n].copy_from_slice(&available[..n]);
                Ok(())
            },
        )
    }

    fn damaged(&self, object: ObjectId, reason: &str) -> BrowseError {
        BrowseError::Object {
            object,
            pack: self.vault.read().locate(&object),
            source: Box::new(VaultError::Damaged(format!("object {object}: {reason}"))),
        }
    }

    fn object_error(&self, object: ObjectId, source: VaultError) -> BrowseError {
        BrowseError::Object {
            object,
            pack: self.vault.read().locate(&object),
            source: Box::new(source),
        }
    }

    /// The directory object of a directory node.
    fn directory(&self, node: &Node) -> Result<Arc<Object>, BrowseError> {
        if node.record.kind != InodeKind::Directory {
            return Err(BrowseError::NotDirectory);
        }
        let id = node.object.ok_or(BrowseError::NotDirectory)?;
        let object = self.tree_object(&id)?;
        match &*object {
            Object::Directory(_) => Ok(object),
            _ => Err(self.damaged(id, "a directory entry whose object is not a directory")),
        }
    }

    /// A decoded tree object (a multipart one reassembled), from the cache or the vault.
    fn tree_object(&self, id: &ObjectId) -> Result<Arc<Object>, BrowseError> {
        if let Some(object) = self.trees.lock().get(id) {
            return Ok(object);
        }
        // Fetched outside the lock: other reads go on meanwhile (two may fetch one object).
        let node =
            tree::read_node(&self.vault.read(), id).map_err(|err| self.object_error(*id, err))?;
        let weight = node.bytes.len() as u64
            + node
                .parts
                .iter()
                .map(|(_, part)| part.len() as u64)
                .sum::<u64>();
        let object = Arc::new(node.object);
        self.trees.lock().insert(*id, object.clone(), weight);
        Ok(object)
    }

    /// A chunk of file data, from the cache or the vault.
    fn data_chunk(&self, id: &ChunkId) -> Result<Arc<Vec<u8>>, BrowseError> {
        if let Some(data) = self.data.lock().get(id) {
            return Ok(data);
        }
        let data = Arc::new(
            self.vault
                .read()
                .read_object(id)
                .map_err(|err| self.object_error(*id, err))?,
        );
        self.data
            .lock()
            .insert(*id, data.clone(), data.len() as u64);
        Ok(data)
    }

    /// Bytes of objects the caches hold now (tree objects, file data).
    pub fn cached_bytes(&self) -> (u64, u64) {
        (self.trees.lock().weight(), self.data.lock().weight())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;
    use crate::blob::{BlobBackend, BlobKey, RemoteStore};
    use crate::testing::{close, mkdir, new_store, noise, snapshots_of, write_file};
    use crate::vault::tests::{Shared, TEST_KDF, Wrapping};
    use crate::vault::{PACKS, Secret, backup, init};

    /// A backend that counts the bytes read from packs.
    struct Counting {
        inner: Shared,
        pack_bytes: Arc<AtomicU64>,
    }

    impl Wrapping for Counting {
        fn inner(&self) -> &Shared {
            &self.inner
        }
        fn after_read(&self, key: &BlobKey, len: usize) {
            if key.as_str().starts_with(PACKS) {
                self.pack_bytes.fetch_add(len as u64, Ordering::Relaxed);
            }
        }
    }

    /// Backups made and deleted while the vault is mounted show up and go; the inodes of the
    /// others keep their numbers, and the new backup's objects (in index files stored after
    /// the mount) are readable.
    #[test]
    fn the_backup_list_follows_the_vault_while_mounted() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (_store, live) = new_store(tmp.path(), "store");
        let snapshots = snapshots_of(&live);
        write_file(&live, "f", b"first");
        snapshots
            .create("one", crate::format::catalog::Origin::Manual)
            .expect("snapshot");
        let source = Shared(Arc::new(RemoteStore::in_memory()));
        init::init(&source, &Secret::None, TEST_KDF).expect("init");
        let open = || Vault::open_backend(Box::new(source.clone()), &Secret::None).expect("open");
        let share = live.share_id().expect("share id");
        backup::backup(
            &mut open(),
            &snapshots,
            "one",
            share,
            &crate::progress::Progress::new(),
        )
        .expect("backup");

        let mut browser = VaultBrowser::new(open(), 1 << 20, (0, 0)).expect("browser");
        browser.refresh_after = Duration::ZERO;
        let (_, shares) = browser.list(TOP).expect("top");
        let share_dir = browser.lookup(TOP, &shares[0].0).expect("share");
        let one = browser.lookup(share_dir.ino, b"one").expect("one");
        let names = |browser: &VaultBrowser| -> Vec<Vec<u8>> {
            let (_, entries) = browser.list(share_dir.ino).expect("list");
            entries.into_iter().map(|(name, _, _)| name).collect()
        };
        assert_eq!(names(&browser), [b"one".to_vec()]);

        write_file(&live, "f", b"second, made while mounted");
        snapshots
            .create("two", crate::format::catalog::Origin::Manual)
            .expect("snapshot");
        backup::backup(
            &mut open(),
            &snapshots,
            "two",
            share,
            &crate::progress::Progress::new(),
        )
        .expect("backup");
        // Looked up before any listing: a name not known is looked for again.
        let two = browser.lookup(share_dir.ino, b"two").expect("two");
        let f = browser.lookup(two.ino, b"f").expect("f in two");
        assert_eq!(
            browser.read(f.ino, 0, 100).expect("read"),
            b"second, made while mounted"
        );
        assert_eq!(names(&browser), [b"one".to_vec(), b"two".to_vec()]);

        super::super::retention::delete(&open(), &["one".to_owned()]).expect("delete one");
        assert_eq!(names(&browser), [b"two".to_vec()]);
        assert!(matches!(
            browser.lookup(share_dir.ino, b"one"),
            Err(BrowseError::NotFound)
        ));
        assert!(matches!(browser.node(one.ino), Err(BrowseError::NotFound)));
        assert_eq!(
            browser.lookup(share_dir.ino, b"two").expect("two").ino,
            two.ino,
            "a backup keeps its number"
        );
        drop(snapshots);
        close(live);
    }

    /// Reading one file fetches its own objects, not the packs they are in; the caches stay
    /// within their budget however much is read; inodes go when the kernel forgets them.
    #[test]
    fn reads_fetch_only_what_they_need_and_memory_stays_bounded() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (_store, live) = new_store(tmp.path(), "store");
        let snapshots = snapshots_of(&live);
        mkdir(&live, "d");
        let files: Vec<Vec<u8>> = (0..40).map(|i| noise(100_000, i + 1)).collect();
        for (i, data) in files.iter().enumerate() {
            write_file(&live, &format!("d/f{i:02}"), data);
        }
        snapshots
            .create("s", crate::format::catalog::Origin::Manual)
            .expect("snapshot");
        let source = Shared(Arc::new(RemoteStore::in_memory()));
        init::init(&source, &Secret::None, TEST_KDF).expect("init");
        let mut writer =
            Vault::open_backend(Box::new(source.clone()), &Secret::None).expect("open");
        let share = live.share_id().expect("share id");
        backup::backup(
            &mut writer,
            &snapshots,
            "s",
            share,
            &crate::progress::Progress::new(),
        )
        .expect("backup");
        drop(snapshots);
        close(live);
        let packs: u64 = source
            .list(PACKS)
            .expect("list")
            .iter()
            .map(|meta| meta.size)
            .sum();

        let pack_bytes = Arc::new(AtomicU64::new(0));
        let counting = Counting {
            inner: source,
            pack_bytes: pack_bytes.clone(),
        };
        let vault = Vault::open_backend(Box::new(counting), &Secret::None).expect("open");
        let budget = 1 << 20;
        let browser = VaultBrowser::new(vault, budget, (0, 0)).expect("browser");
        let (_, shares) = browser.list(TOP).expect("top");
        assert_eq!(shares.len(), 1);
        let share_dir = browser.lookup(TOP, &shares[0].0).expect("share");
        let root = browser.lookup(share_dir.ino, b"s").expect("backup");
        let d = browser.lookup(root.ino, b"d").expect("d");

        let f = browser.lookup(d.ino, b"f07").expect("f07");
        let before = pack_bytes.load(Ordering::Relaxed);
        assert_eq!(browser.read(f.ino, 0, 200_000).expect("read"), files[7]);
        let one_file = pack_bytes.load(Ordering::Relaxed) - before;
        assert!(
            one_file < 2 * 100_000 && one_file * 10 < packs,
            "one file of 100 kB fetched {one_file} bytes of {packs} in packs"
        );
        // Read again: from the cache.
        let before = pack_bytes.load(Ordering::Relaxed);
        assert_eq!(
            browser.read(f.ino, 1000, 10).expect("read"),
            &files[7][1000..1010]
        );
        assert_eq!(pack_bytes.load(Ordering::Relaxed), before);
        browser.forget(f.ino, 1);

        for (i, data) in files.iter().enumerate() {
            let f = browser
                .lookup(d.ino, format!("f{i:02}").as_bytes())
                .expect("file");
            assert_eq!(&browser.read(f.ino, 0, 200_000).expect("read"), data);
            let (trees, file_data) = browser.cached_bytes();
            assert!(
                trees + file_data <= budget,
                "{trees} + {file_data} > {budget}"
            );
        }
        // 40 files and `d` are held; given back, none is.
        assert_eq!(browser.held_count(), 41);
        for i in 0..files.len() {
            let f = browser
                .lookup(d.ino, format!("f{i:02}").as_bytes())
                .expect("file");
            browser.forget(f.ino, 2);
        }
        browser.forget(d.ino, 1);
        assert_eq!(browser.held_count(), 0);
        assert!(matches!(browser.node(d.ino), Err(BrowseError::NotFound)));
    }
}
