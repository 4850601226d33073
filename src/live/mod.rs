//! The live, writable share, independent of FUSE: every POSIX operation as a method of
//! [`LiveFs`], in one file per group of operations. The FUSE adapter only routes requests here.
//!
//! Concurrency: the namespace (names and attributes) is one reader-writer lock, taken for
//! writing only by operations that change names or attributes. File data is locked per file,
//! and reads and writes go through open handles without touching the namespace lock, so I/O on
//! different files never waits on one lock.
//!
//! Durability: changes are applied in memory and committed in groups (see `commit`): every few
//! seconds, and whenever `fsync` asks. A commit is one redb transaction, so a crash leaves the
//! state of some commit: never half an operation.

mod attr;
mod commit;
mod content;
mod create;
mod dir;
mod encode_committed;
pub mod error;
mod evict;
mod freeze;
mod graft;
mod handles;
mod io;
mod load;
mod namespace;
mod privileges;
mod remove;
mod rename;
mod walk;
mod workers;
mod xattr;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use parking_lot::{Mutex, RwLock};

pub use attr::{Attr, SetAttr};
use commit::CommitQueue;
pub use content::MAX_FILE_SIZE;
use content::{DataContext, DirtyBudget};
pub use create::NewInode;
pub use dir::DirEntry;
pub use error::{FsError, FsResult};
pub use freeze::Frozen;
pub use graft::{GraftPoint, Subtree, SubtreeNode};
use handles::Handles;
pub use io::FsStats;
use namespace::{Dirt, Namespace};
pub use namespace::{NAME_MAX, split_path};
pub use privileges::Modification;
pub use rename::RenameMode;
pub(crate) use workers::DataWorkers;
pub use xattr::{XattrFlags, XattrReply, refused_xattr};

use crate::chunk_store::ChunkStore;
use crate::id::InodeNo;
use crate::meta::MetaStore;
use crate::metadata_budget::MetadataBudget;
use crate::metrics::ShareMetrics;
use crate::storage::lock::StoreLock;
use crate::store::Store;

/// How many inodes of a listing one hold of the namespace write lock puts in memory (see
/// [`LiveFs::list_stored`]): 3-6 ms of the lock.
pub(crate) const LISTING_ROUND: usize = 4096;

/// How many times a change reads the listings of the directories it changes before it lists
/// them under the lock (see [`LiveFs::write_listed`]).
const LISTING_READS: usize = 3;

/// The kernel's caches of names and attributes, for changes the share makes on its own rather
/// than in answer to a kernel request (a restore, a rollback): the kernel is told to forget
/// what they replaced, or it would go on showing the old entries until their cache time ends.
pub trait KernelCache: Send + Sync {
    fn forget_entry(&self, parent: InodeNo, name: &[u8]);
    fn forget_attributes(&self, ino: InodeNo);
    /// Whether the kernel holds written data back (its writeback cache), so that a write(2)
    /// can return before its data reaches the share.
    fn holds_writes(&self) -> bool {
        false
    }
    /// Makes the kernel hand over, and waits until the share has, every write it holds for
    /// these files (inode, path from the root). Only called when [`Self::holds_writes`].
    fn hand_over_writes(&self, _files: &[(InodeNo, Vec<u8>)]) {}
}

/// Entries (directory, name) the kernel is to forget, on their way to the notifier thread.
type ForgetQueue = std::sync::mpsc::Sender<Notice>;

/// What the kernel notifier thread is asked to do, in order.
enum Notice {
    /// Have the kernel forget the entry `name` of directory `parent`.
    Forget(InodeNo, Vec<u8>),
    /// Every notice queued before this one was sent: say so.
    Sent(std::sync::mpsc::Sender<()>),
}

/// Who asks for an operation: the owner of what it creates.
#[derive(Clone, Copy, Debug)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
}

/// Tunables of a mounted share.
#[derive(Clone, Debug)]
pub struct LiveOptions {
    /// Bytes of unsealed file data held in memory before writers seal their blocks early.
    pub dirty_limit: u64,
    /// How often changes are committed when nobody calls fsync.
    pub commit_interval: std::time::Duration,
    /// Memory for metadata (`--metadata-cache`): the namespace (inodes, entries, attributes)
    /// loaded from the metadata database gets half; past it, what was used least recently is
    /// evicted (see `evict`).
    pub metadata: MetadataBudget,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions {
            dirty_limit: 256 << 20,
            commit_interval: std::time::Duration::from_secs(2),
            metadata: MetadataBudget::DEFAULT,
        }
    }
}

/// Inodes changed since the last commit and since the last freeze: one lock for both, taken
/// once per change.
#[derive(Default)]
struct Changed {
    /// Files whose content, size or times changed.
    since_commit: std::collections::HashSet<InodeNo>,
    /// Any inode whose frozen object is stale, and directories whose entries changed.
    since_freeze: std::collections::HashSet<InodeNo>,
    /// What the last freezes encoded, for the next commit to persist.
    newly_frozen: Vec<(InodeNo, crate::format::object::ObjectId)>,
    /// Inodes whose persisted frozen object a commit already removed since the last freeze,
    /// each with every directory above it (so the next commits need not remove them again).
    /// Emptied by a freeze, with `since_freeze`.
    thaw_persisted: std::collections::HashSet<InodeNo>,
    /// The inodes whose persisted frozen object a freeze's capture found stale and no commit
    /// has removed yet (the changes it took from `since_freeze`, and every directory above
    /// them): the next commit removes them. Without this, a commit while the freeze encodes
    /// would write those changes with the old frozen objects still persisted, and a crash
    /// before the freeze's record is committed would leave them trusted. Emptied by the
    /// freeze's record, which persists their new objects instead (or leaves them to the
    /// thaw of what changed since).
    captured_thaw: Vec<InodeNo>,
}

impl Changed {
    /// The inodes changed since the last freeze whose persisted frozen objects no commit has
    /// removed yet (nor those of the directories above them).
    fn thaws_to_persist(&self) -> impl Iterator<Item = InodeNo> + '_ {
        self.since_freeze
            .iter()
            .filter(|ino| !self.thaw_persisted.contains(ino))
            .copied()
    }
}

pub struct LiveFs {
    store: Arc<ChunkStore>,
    /// The object store of a tiered store (see `crate::tier`).
    tier: Option<Arc<crate::tier::Tier>>,
    /// `--metadata-cache`: sizes the namespace (its half) and the snapshot view's table of
    /// inodes (its quarter; the database's page cache, an eighth, was sized at open).
    metadata: MetadataBudget,
    meta: MetaStore,
    block_size: u32,
    tree: RwLock<Namespace>,
    dirt: Mutex<Dirt>,
    /// Inodes changed since the last commit (files: their content) and since the last freeze.
    changed: Mutex<Changed>,
    /// Taken shared by every data write, and exclusively by a freeze's capture and record
    /// (brief: no hashing or storing): a snapshot holds every write that returned before its
    /// capture and none that started after.
    write_gate: RwLock<()>,
    /// Held by a freeze from its capture to its record, so freezes run one at a time, and by
    /// a gc while it marks (see `freeze`). Lock order: the snapshot catalog, then this, then
    /// the write gate, then the namespace.
    freezing: Mutex<()>,
    /// Set (under the namespace write lock) while a freeze is between its capture and its
    /// record: eviction waits meanwhile (see `evict`).
    freeze_in_flight: AtomicBool,
    /// How many changes are putting the inodes of a listing in memory a round at a time
    /// ([`LiveFs::list_stored`]): eviction waits meanwhile.
    listing_in_flight: AtomicUsize,
    /// Test hook: makes the next freeze wait after its capture (see `freeze::Pause`).
    #[cfg(test)]
    freeze_pause: Mutex<Option<freeze::Pause>>,
    /// Test hook: makes the next freeze wait after recording its first batch of inodes
    /// encoded from the database (see `freeze::LiveFs::record_below`).
    #[cfg(test)]
    batch_pause: Mutex<Option<freeze::Pause>>,
    budget: DirtyBudget,
    /// The threads whole blocks of write requests are hashed and compressed on.
    workers: DataWorkers,
    handles: Handles,
    commits: CommitQueue,
    /// Set when a commit failed: the on-disk state is then behind memory in a way that cannot
    /// be repaired in place, so further changes are refused rather than silently lost.
    poisoned: AtomicBool,
    store_dir: std::path::PathBuf,
    /// The share's stable identity (from the store's config; `None` never happens for a store
    /// opened by `Store::open`, which upgrades older configs).
    share_id: Option<crate::id::ShareId>,
    /// Set once mounted.
    kernel: std::sync::OnceLock<Arc<dyn KernelCache>>,
    /// Entries for the kernel to forget from the notifier thread (see
    /// [`LiveFs::forget_entry_later`]); set once mounted. The thread ends when this is dropped.
    forget_later: std::sync::OnceLock<ForgetQueue>,
    /// What the share counts for monitoring (`metrics.rs`).
    metrics: ShareMetrics,
    /// Commits that changed something (what the tier watches to checkpoint).
    changing_commits: AtomicU64,
    _lock: StoreLock,
}

impl LiveFs {
    /// Serves the live share of an open store (which stays locked while this lives).
    pub fn serve(store: Store, options: LiveOptions) -> FsResult<Arc<Self>> {
        let Store {
            dir,
            config,
            meta,
            chunks,
            tier,
            lock,
        } = store;
        let (namespace, orphans) = Namespace::open(
            meta.clone(),
            evict::max_inodes(options.metadata.namespace()),
        )?;
        let fs = Arc::new(LiveFs {
            store: chunks,
            tier,
            meta,
            block_size: config.block_size,
            share_id: config.share_id(),
            _lock: lock,
            tree: RwLock::new(namespace),
            metadata: options.metadata,
            dirt: Mutex::new(Dirt::default()),
            changed: Mutex::new(Changed::default()),
            write_gate: RwLock::new(()),
            freezing: Mutex::new(()),
            freeze_in_flight: AtomicBool::new(false),
            listing_in_flight: AtomicUsize::new(0),
            #[cfg(test)]
            freeze_pause: Mutex::new(None),
            #[cfg(test)]
            batch_pause: Mutex::new(None),
            budget: DirtyBudget::new(options.dirty_limit),
            workers: DataWorkers::start()?,
            handles: Handles::default(),
            commits: CommitQueue::new(options.commit_interval),
            poisoned: AtomicBool::new(false),
            store_dir: dir,
            kernel: std::sync::OnceLock::new(),
            forget_later: std::sync::OnceLock::new(),
            metrics: ShareMetrics::default(),
            changing_commits: AtomicU64::new(0),
        });
        if !orphans.is_empty() {
            tracing::info!(
                count = orphans.len(),
                "purging files deleted while open before a crash"
            );
            let mut tree = fs.tree.write();
            for ino in orphans {
                fs.purge(&mut tree, ino);
            }
        }
        fs.commit_now()?;
        CommitQueue::start(&fs);
        Ok(fs)
    }

    fn data_context(&self) -> DataContext<'_> {
        DataContext {
            store: &self.store,
            meta: &self.meta,
            budget: &self.budget,
            block_size: self.block_size,
        }
    }

    fn check_writable(&self) -> FsResult<()> {
        if self.poisoned.load(Ordering::Acquire) {
            Err(FsError::Poisoned)
        } else {
            Ok(())
        }
    }

    fn mark_inode(&self, ino: InodeNo) {
        self.dirt.lock().inodes.insert(ino);
        self.changed.lock().since_freeze.insert(ino);
    }

    fn mark_dirent(&self, parent: InodeNo, name: &[u8], child: Option<InodeNo>) {
        self.dirt
            .lock()
            .dirents
            .insert((parent, name.to_vec()), child);
        self.changed.lock().since_freeze.insert(parent);
    }

    fn mark_file_data(&self, ino: InodeNo) {
        let mut changed = self.changed.lock();
        changed.since_commit.insert(ino);
        changed.since_freeze.insert(ino);
    }

    /// Removes an inode nobody names or has open, and its data.
    fn purge(&self, tree: &mut Namespace, ino: InodeNo) {
        if let Some(node) = tree.forget(ino)
            && let Some(content) = &node.content
        {
            content.lock().discard(&self.data_context());
        }
        let mut dirt = self.dirt.lock();
        dirt.inodes.remove(&ino);
        dirt.xattrs.remove(&ino);
        dirt.removed.insert(ino);
        // Its directory was marked when the last name went, so nothing else needs it.
        let mut changed = self.changed.lock();
        changed.since_commit.remove(&ino);
        changed.since_freeze.remove(&ino);
    }

    /// The content of every regular file (taken out of the namespace lock, to be locked one at
    /// a time).
    fn file_contents(&self) -> Vec<Arc<content::FileContent>> {
        self.tree
            .read()
            .nodes
            .values()
            .filter_map(|node| node.content.clone())
            .collect()
    }

    /// Seals every file's buffered data and commits: called at unmount.
    pub fn shutdown(&self) -> FsResult<()> {
        let contents = self.file_contents();
        let ctx = self.data_context();
        for content in contents {
            let mut state = content.lock();
            if state.is_dirty() {
                state.seal_all(content.ino, &ctx)?;
                drop(state);
                self.mark_file_data(content.ino);
            }
        }
        let result = self.commit_now();
        self.commits.stop();
        result
    }

    pub fn block_size(&self) -> u32 {
        self.block_size
    }

    /// How many files and directories the kernel holds open on the share.
    pub fn open_handles(&self) -> usize {
        self.handles.count()
    }

    /// What the share counts for monitoring.
    /// The memory budget of metadata (`--metadata-cache`).
    pub fn metadata_budget(&self) -> MetadataBudget {
        self.metadata
    }

    /// The tier of a tiered store.
    pub fn tier(&self) -> Option<&Arc<crate::tier::Tier>> {
        self.tier.as_ref()
    }

    /// How many commits changed the share since it was served.
    pub fn changing_commits(&self) -> u64 {
        self.changing_commits
            .load(std::sync::atomic::Ordering::Acquire)
    }

    pub fn metrics(&self) -> &ShareMetrics {
        &self.metrics
    }

    /// File data written and not yet stored in the chunk store (in block buffers).
    pub fn dirty_bytes(&self) -> u64 {
        self.budget.bytes()
    }

    /// The share's stable identity, which backups in a vault are grouped by.
    pub fn share_id(&self) -> Option<crate::id::ShareId> {
        self.share_id
    }

    /// Connects the share to the kernel's caches of the mount serving it, and starts the one
    /// thread that sends the notices [`LiveFs::forget_entry_later`] defers.
    pub fn attach_kernel_cache(&self, cache: Arc<dyn KernelCache>) -> FsResult<()> {
        if self.kernel.set(cache.clone()).is_err() {
            tracing::warn!("the share is already attached to a mount");
            return Ok(());
        }
        let (sender, receiver) = std::sync::mpsc::channel::<Notice>();
        std::thread::Builder::new()
            .name("snapfs-kernel-notify".into())
            .spawn(move || {
                for notice in receiver {
                    match notice {
                        Notice::Forget(parent, name) => cache.forget_entry(parent, &name),
                        Notice::Sent(done) => {
                            let _ = done.send(());
                        }
                    }
                }
            })?;
        let _ = self.forget_later.set(sender);
        Ok(())
    }

    /// Before a freeze: with the kernel's writeback cache, a write(2) returns once its data is
    /// in the kernel's page cache, and a snapshot must still hold it. A closed file's data was
    /// handed over at its close (FUSE flushes then); for every file open for writing, the kernel
    /// is made to write it back and wait until the share has it. Nothing is locked meanwhile:
    /// the kernel's writes go through the usual write path.
    pub fn collect_kernel_writes(&self) {
        let Some(kernel) = self.kernel.get() else {
            return;
        };
        if !kernel.holds_writes() {
            return;
        }
        let open = self.handles.writable_inodes();
        if open.is_empty() {
            return;
        }
        let files: Vec<(InodeNo, Vec<u8>)> = {
            let mut tree = self.tree.write();
            open.into_iter()
                .filter_map(|ino| tree.path_of(ino).map(|path| (ino, path)))
                .collect()
        };
        kernel.hand_over_writes(&files);
    }

    /// Tells the kernel to forget `names` (entries of their directories) and the attributes of
    /// those directories.
    fn forget_in_kernel(&self, names: &[(InodeNo, Vec<u8>)]) {
        let Some(kernel) = self.kernel.get() else {
            return;
        };
        for (parent, name) in names {
            kernel.forget_entry(*parent, name);
        }
        let mut dirs: Vec<InodeNo> = names.iter().map(|(parent, _)| *parent).collect();
        dirs.dedup();
        for dir in dirs {
            kernel.forget_attributes(dir);
        }
    }

    /// Has the kernel forget the entry `name` of `parent`, from another thread: the caller may
    /// be serving a kernel request that holds `parent` locked (an `rmdir` in `.snapshots`),
    /// which the kernel needs to forget the entry.
    ///
    /// The notices go through one long-lived thread, in order: retention deleting many
    /// snapshots at once starts no thread per snapshot.
    pub fn forget_entry_later(&self, parent: InodeNo, name: &[u8]) {
        if let Some(sender) = self.forget_later.get()
            && sender.send(Notice::Forget(parent, name.to_vec())).is_err()
        {
            tracing::warn!("the kernel notifier thread is gone; an entry stays cached");
        }
    }

    /// Waits until every notice queued before this call has been sent to the kernel. A caller
    /// that queues many in rounds waits between them, so that the queue never holds more than
    /// one round: the snapshot view, whose next round would otherwise queue again the names
    /// the kernel has not been told of yet, without end while a walk outruns the notifier.
    pub fn wait_for_forgets(&self) {
        let Some(sender) = self.forget_later.get() else {
            return;
        };
        let (done, sent) = std::sync::mpsc::channel();
        if sender.send(Notice::Sent(done)).is_ok() {
            let _ = sent.recv();
        }
    }

    /// The store directory this share lives in.
    pub fn store_dir(&self) -> &std::path::Path {
        &self.store_dir
    }

    pub fn database(&self) -> Arc<redb::Database> {
        self.meta.database()
    }

    pub fn chunk_store(&self) -> Arc<ChunkStore> {
        self.store.clone()
    }

    /// The share's data workers, for bulk work on its data (a backup, a restore) that should
    /// spread over the cores as the share's own writes do.
    pub(crate) fn workers(&self) -> &DataWorkers {
        &self.workers
    }

    /// Calls `visit` with every chunk the committed block maps name (with repeats), holding
    /// none in memory.
    pub fn for_each_committed_block_chunk<E: From<crate::meta::MetaError>>(
        &self,
        visit: impl FnMut(crate::id::ChunkId) -> Result<(), E>,
    ) -> Result<(), E> {
        self.meta.for_each_block_chunk(visit)
    }

    /// Starts a collection: from now on the chunk store records every chunk a writer reuses.
    /// Taken under the write gate, so no write is between storing a chunk and recording it.
    ///
    /// The objects inodes froze to stay in use (gc marks them, [`LiveFs::for_each_frozen_object`]),
    /// so the next freeze may reuse them even after the snapshots holding them are gone.
    pub fn begin_gc(&self) {
        let _gate = self.write_gate.write();
        self.store.begin_gc();
    }

    /// Calls `visit` with every object an inode froze to and may reuse in the next freeze.
    /// Inodes changed since the last freeze are thawed first (the freeze would thaw them
    /// anyway), so that what they froze to before the change is not kept. (Mostly the newest
    /// snapshot's objects; a walk from them stops at once at what it saw.) Call with freezes
    /// held off (`hold_freezes`): no inode gains a frozen object meanwhile.
    ///
    /// Inodes in memory count with their objects there, taken under the namespace lock (as
    /// many as the namespace's budget allows). The others count with their persisted objects,
    /// read in batches after the lock is released, so memory does not grow with the share:
    /// unchanged since the mount, the next freeze reuses them, or (below a directory thawed
    /// since) their own. An inode loaded or evicted meanwhile is still counted: one loaded
    /// since counts with its persisted object, which it had when the lock was released or
    /// which is gone, and one evicted had its persisted object in memory.
    pub fn for_each_frozen_object<E: From<crate::meta::MetaError>>(
        &self,
        mut visit: impl FnMut(crate::format::object::ObjectId) -> Result<(), E>,
    ) -> Result<(), E> {
        /// Persisted rows read per transaction.
        const BATCH: usize = 4096;
        let (loaded, in_memory) = {
            let mut tree = self.tree.write();
            let stale: Vec<InodeNo> = self.changed.lock().since_freeze.iter().copied().collect();
            for ino in stale {
                tree.thaw(ino);
            }
            let loaded: HashSet<InodeNo> = tree.nodes.keys().copied().collect();
            let in_memory: Vec<_> = tree.nodes.values().filter_map(|node| node.frozen).collect();
            (loaded, in_memory)
        };
        for id in in_memory {
            visit(id)?;
        }
        let mut after = None;
        loop {
            let batch = self.meta.frozen_ids_after(after, BATCH)?;
            let Some(&(last, _)) = batch.last() else {
                return Ok(());
            };
            for (ino, id) in batch {
                if !loaded.contains(&ino) {
                    visit(id)?;
                }
            }
            after = Some(last);
        }
    }

    /// The namespace, read-locked, with `dir` listed (listing it under the write lock first if
    /// it is not: see [`LiveFs::write_listed`]).
    fn read_listed(&self, dir: InodeNo) -> FsResult<parking_lot::RwLockReadGuard<'_, Namespace>> {
        {
            let tree = self.tree.read();
            if tree.nodes.contains_key(&dir) && tree.is_listed(dir)? {
                tree.touch(dir);
                if !tree.over_budget() {
                    return Ok(tree);
                }
            }
        }
        let mut tree = self.write_listed(&[dir])?;
        tree.list(dir)?;
        tree.touch(dir);
        self.evict_if_needed(&mut tree, dir);
        Ok(parking_lot::RwLockWriteGuard::downgrade(tree))
    }

    /// The namespace, write-locked, with every directory of `dirs` that is in memory listed:
    /// what a change is about to change. The listings are read from the database, and their
    /// inodes made and put in memory a round at a time, before the lock is taken for the
    /// change, so that the lock is not held while the disk is read (a directory of 100 entries
    /// took 7 ms to list with cold caches, under 1 ms warm; one of 200,000, 0.56 s, and every
    /// other request waited meanwhile) nor for a whole directory at once. What was read is used
    /// only if no commit changed the database since: the namespace tables change only by
    /// commits, and a directory not listed has the entries the database has (load.rs). A busy
    /// share commits more often than a huge directory is read, so it is read again a few times
    /// (a share written to every millisecond spoiled the read of 200,000 entries nearly every
    /// time); then, or if reading failed, the caller's `Namespace::list` reads under the lock.
    pub(super) fn write_listed(
        &self,
        dirs: &[InodeNo],
    ) -> FsResult<parking_lot::RwLockWriteGuard<'_, Namespace>> {
        for _ in 0..LISTING_READS {
            let unlisted: Vec<InodeNo> = {
                let tree = self.tree.read();
                dirs.iter()
                    .copied()
                    .filter(|dir| {
                        tree.nodes
                            .get(dir)
                            .is_some_and(|node| node.is_dir() && node.entries.is_none())
                    })
                    .collect()
            };
            if unlisted.is_empty() {
                break;
            }
            let commits = self.changing_commits();
            let read = self.meta.read_namespace().and_then(|reader| {
                unlisted
                    .iter()
                    .map(|dir| load::StoredListing::read(&reader, *dir))
                    .collect::<Result<Vec<_>, _>>()
            });
            let Ok(listings) = read else {
                break;
            };
            if let Some(tree) = self.list_stored(commits, listings)? {
                return Ok(tree);
            }
        }
        Ok(self.tree.write())
    }

    /// Lists the directories of `listings`, read when `commits` changing commits had been
    /// made, and returns the write lock they were listed under; `None` if a commit changed the
    /// database meanwhile (the listings are stale). The inodes of a big listing go into memory
    /// [`LISTING_ROUND`] at a time first, each round under the write lock, handed to whoever
    /// waits for it between rounds: the lock is never held for a whole directory, however big
    /// (making one of 200,000 files listed by a change kept every other request waiting
    /// 0.13-0.29 s). What is left for the last hold is a look-up per entry and the entries'
    /// map. Eviction waits from the first round to the listing, or it could drop what the
    /// rounds put in memory (entries of a directory not listed yet): the database could then
    /// hold newer records than the listings, and a listed directory would name inodes not in
    /// memory.
    fn list_stored(
        &self,
        commits: u64,
        mut listings: Vec<load::StoredListing>,
    ) -> FsResult<Option<parking_lot::RwLockWriteGuard<'_, Namespace>>> {
        let left: usize = listings.iter().map(load::StoredListing::inodes_left).sum();
        let in_rounds = left > LISTING_ROUND;
        if in_rounds {
            self.listing_in_flight.fetch_add(1, Ordering::AcqRel);
            // The map of inodes grows once, now, rather than doubling during some round:
            // growing moves every node in memory (44 ms at 200,000).
            self.tree.write().nodes.reserve(left);
        }
        let list = || {
            if in_rounds {
                for listing in listings.iter_mut() {
                    loop {
                        let mut tree = self.tree.write();
                        if commits != self.changing_commits() {
                            return Ok(None);
                        }
                        if !tree.list_read_round(listing, LISTING_ROUND)? {
                            break;
                        }
                        parking_lot::RwLockWriteGuard::unlock_fair(tree);
                    }
                }
            }
            let mut tree = self.tree.write();
            if commits != self.changing_commits() {
                return Ok(None);
            }
            self.list_locked(&mut tree, commits, listings)?;
            Ok(Some(tree))
        };
        let listed = list();
        if in_rounds {
            self.listing_in_flight.fetch_sub(1, Ordering::AcqRel);
        }
        listed
    }

    /// Lists the directories of `listings` under the write lock if no commit changed the
    /// database since they were read (`commits` changing commits then); otherwise nothing.
    fn list_locked(
        &self,
        tree: &mut Namespace,
        commits: u64,
        listings: Vec<load::StoredListing>,
    ) -> FsResult<()> {
        if commits == self.changing_commits() {
            for listing in listings {
                tree.list_read(listing)?;
            }
        }
        Ok(())
    }

    /// The namespace, read-locked, with `ino` in memory (loading it by number under the write
    /// lock first if it is not).
    fn read_loaded(&self, ino: InodeNo) -> FsResult<parking_lot::RwLockReadGuard<'_, Namespace>> {
        {
            let tree = self.tree.read();
            if tree.nodes.contains_key(&ino) && !tree.over_budget() {
                return Ok(tree);
            }
        }
        let mut tree = self.tree.write();
        tree.load(ino)?;
        self.evict_if_needed(&mut tree, ino);
        Ok(parking_lot::RwLockWriteGuard::downgrade(tree))
    }

    /// The namespace, write-locked, with `ino` in memory.
    fn write_loaded(&self, ino: InodeNo) -> FsResult<parking_lot::RwLockWriteGuard<'_, Namespace>> {
        let mut tree = self.tree.write();
        tree.load(ino)?;
        Ok(tree)
    }

    /// Calls `visit` with every chunk the in-memory block maps name (including changes not yet
    /// committed), outside each file's lock.
    pub fn for_each_chunk_in_memory<E>(
        &self,
        mut visit: impl FnMut(crate::id::ChunkId) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut chunks = Vec::new();
        for content in self.file_contents() {
            content.lock().loaded_chunks(&mut chunks);
            for chunk in chunks.drain(..) {
                visit(chunk)?;
            }
        }
        Ok(())
    }

    /// Panics unless the namespace invariants hold (see `namespace`).
    #[cfg(test)]
    pub(crate) fn assert_consistent(&self) {
        self.tree.read().assert_consistent();
    }

    /// The owner of the share's root directory: who may use the snapshot controls.
    pub fn owner(&self) -> (u32, u32) {
        let tree = self.tree.read();
        tree.node(InodeNo::ROOT)
            .map(|root| (root.record.uid, root.record.gid))
            .unwrap_or((0, 0))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use parking_lot::Mutex;

    use super::KernelCache;
    use crate::id::InodeNo;
    use crate::testing::{close, new_store};

    /// Records which thread each notice arrived on.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<(Vec<u8>, Option<String>)>>);

    impl KernelCache for Recorder {
        fn forget_entry(&self, _parent: InodeNo, name: &[u8]) {
            let thread = std::thread::current().name().map(str::to_owned);
            self.0.lock().push((name.to_vec(), thread));
        }
        fn forget_attributes(&self, _ino: InodeNo) {}
    }

    /// Deferred notices arrive in order, all on the one notifier thread: none is a thread
    /// started for it.
    #[test]
    fn deferred_notices_run_on_one_long_lived_thread() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (_store, live) = new_store(tmp.path(), "store");
        let recorder = Arc::new(Recorder::default());
        live.attach_kernel_cache(recorder.clone()).expect("attach");
        for i in 0..100 {
            live.forget_entry_later(InodeNo::ROOT, format!("snap-{i}").as_bytes());
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while recorder.0.lock().len() < 100 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let seen = recorder.0.lock();
        assert_eq!(seen.len(), 100);
        for (i, (name, thread)) in seen.iter().enumerate() {
            assert!(*name == format!("snap-{i}").into_bytes(), "in order");
            assert_eq!(thread.as_deref(), Some("snapfs-kernel-notify"));
        }
        drop(seen);
        close(live);
    }
}
