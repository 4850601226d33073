//! Group commit: one background thread turns the changes of many operations into one durable
//! redb transaction. `fsync` callers wait for the next commit instead of each paying for their
//! own, and when nobody asks, a commit runs every `commit_interval`.
//!
//! Order of a commit (the crash analysis in docs/ARCHITECTURE.md relies on it):
//! 1. store the buffered blocks of every changed file (no namespace lock held); then, under the
//!    namespace read lock, take the namespace changes and each dirty file's size, times and
//!    block changes, storing whatever was buffered meanwhile: a committed size or time never
//!    comes from after data the commit does not hold (every chunk the block changes name is
//!    published by then);
//! 2. stage those, then the published chunk locations and pack lengths, in one transaction;
//! 3. fsync the packs; 4. commit the transaction durably (or, for a snapshot, not: its
//!    catalog's durable commit follows at once and makes both durable together).

use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use super::LiveFs;
use super::error::{FsError, FsResult};
use crate::id::InodeNo;
use crate::meta::CommitBatch;

struct QueueState {
    requested: u64,
    completed: u64,
    failed: bool,
    stopped: bool,
}

pub struct CommitQueue {
    state: Mutex<QueueState>,
    wake: Condvar,
    done: Condvar,
    interval: Duration,
    /// Held from taking a batch of changes until it is committed: a file's block map may be
    /// dropped from memory (and later loaded from the database) only when no commit holds
    /// changes taken from it but not yet written.
    committing: Mutex<()>,
    /// The committer thread, joined by `stop`: once the share is shut down, no thread of its
    /// own holds it (and with it the store lock), so the store can be opened again at once.
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl CommitQueue {
    pub fn new(interval: Duration) -> Self {
        CommitQueue {
            state: Mutex::new(QueueState {
                requested: 0,
                completed: 0,
                failed: false,
                stopped: true,
            }),
            wake: Condvar::new(),
            done: Condvar::new(),
            interval,
            committing: Mutex::new(()),
            thread: Mutex::new(None),
        }
    }

    /// Starts the committer thread. It holds only a weak reference, so dropping the filesystem
    /// ends it.
    pub fn start(fs: &Arc<LiveFs>) {
        fs.commits.state.lock().stopped = false;
        let weak: Weak<LiveFs> = Arc::downgrade(fs);
        let thread = std::thread::Builder::new()
            .name("snapfs-commit".into())
            .spawn(move || committer(weak))
            .expect("spawning the commit thread");
        *fs.commits.thread.lock() = Some(thread);
    }

    /// Whether no commit is between taking changes and writing them (and none can start while
    /// the guard lives).
    pub fn idle(&self) -> Option<parking_lot::MutexGuard<'_, ()>> {
        self.committing.try_lock()
    }

    /// Waits for a commit under way to end; none can start while the guard lives. Take it
    /// before the namespace lock: a commit takes that lock while it holds this one.
    pub fn wait_idle(&self) -> parking_lot::MutexGuard<'_, ()> {
        self.committing.lock()
    }

    /// Stops the committer thread and waits for it to end (the committer never calls this).
    pub fn stop(&self) {
        {
            let mut state = self.state.lock();
            state.stopped = true;
            self.wake.notify_all();
            // A caller of `commit_now` waiting for the committer commits on its own thread.
            self.done.notify_all();
        }
        if let Some(thread) = self.thread.lock().take()
            && thread.join().is_err()
        {
            tracing::error!("the commit thread panicked");
        }
    }
}

fn committer(weak: Weak<LiveFs>) {
    loop {
        let Some(fs) = weak.upgrade() else { return };
        let target = {
            let mut state = fs.commits.state.lock();
            if state.stopped {
                return;
            }
            if state.requested == state.completed {
                fs.commits.wake.wait_for(&mut state, fs.commits.interval);
            }
            if state.stopped {
                return;
            }
            state.requested
        };
        let result = fs.commit_once(redb::Durability::Immediate);
        {
            let mut state = fs.commits.state.lock();
            state.completed = state.completed.max(target);
            state.failed |= result.is_err();
            fs.commits.done.notify_all();
        }
        fs.evict_after_commit();
    }
}

impl LiveFs {
    /// Commits everything changed so far and returns once it is durable. Concurrent callers
    /// share one commit.
    pub fn commit_now(&self) -> FsResult<()> {
        let mut state = self.commits.state.lock();
        if state.stopped {
            // No committer thread (opening, or shut down): commit on this thread.
            drop(state);
            return self.commit_once(redb::Durability::Immediate);
        }
        state.requested += 1;
        let target = state.requested;
        self.commits.wake.notify_one();
        while state.completed < target && !state.stopped {
            self.commits.done.wait(&mut state);
        }
        if state.completed < target {
            // The committer stopped first (the share is being shut down).
            drop(state);
            return self.commit_once(redb::Durability::Immediate);
        }
        drop(state);
        self.check_writable()
    }

    /// How many commits were asked of the committer (`commit_now`) since the mount.
    #[cfg(test)]
    pub(crate) fn commits_asked(&self) -> u64 {
        self.commits.state.lock().requested
    }

    /// Commits everything changed so far, on this thread, for a caller that makes its own
    /// durable commit right after (a snapshot, whose catalog change follows): the packs are
    /// synced, so the transaction names only data on disk, but the database is not, and the
    /// commit becomes durable with the next durable one, which it precedes. Never through the
    /// committer: an `fsync` waiting on that must not take this commit for a durable one.
    pub fn commit_before_durable(&self) -> FsResult<()> {
        self.commit_once(redb::Durability::None)
    }

    fn commit_once(&self, durability: redb::Durability) -> FsResult<()> {
        self.check_writable()?;
        let _committing = self.commits.committing.lock();
        let started = std::time::Instant::now();
        self.store_buffered_data();
        let batch = self.collect_batch();
        let result = self.write_batch(&batch, durability);
        if result.is_ok() {
            self.metrics.commit_done(started);
            self.drop_committed_block_maps(&batch);
        }
        if let Err(err) = &result {
            tracing::error!("commit failed, refusing further changes until remount: {err}");
            self.poisoned
                .store(true, std::sync::atomic::Ordering::Release);
        }
        result
    }

    /// Stores the buffered blocks of every file changed since the last commit, before the
    /// commit takes the namespace lock: the bulk of the hashing and compressing a commit needs
    /// (see [`super::content::ContentState::take_changes`]) happens here, holding one file at
    /// a time. Failures are left for `take_changes`, which handles them. A freeze calls it
    /// too, before its capture, for the same reason.
    pub(super) fn store_buffered_data(&self) {
        let files: Vec<_> = self.changed.lock().since_commit.iter().copied().collect();
        let contents: Vec<_> = {
            let tree = self.tree.read();
            files
                .iter()
                .filter_map(|ino| tree.nodes.get(ino)?.content.clone())
                .collect()
        };
        let ctx = self.data_context();
        for content in contents {
            let mut state = content.lock();
            if state.has_buffers() {
                let _ = state.seal_all(content.ino, &ctx);
            }
        }
    }

    fn collect_batch(&self) -> CommitBatch {
        let tree = self.tree.read();
        let dirt = std::mem::take(&mut *self.dirt.lock());
        // Taken together: a data write marks both sets at once.
        let (files, newly_frozen, newly_thawed) = {
            let mut changed = self.changed.lock();
            let files = std::mem::take(&mut changed.since_commit);
            let newly_frozen = std::mem::take(&mut changed.newly_frozen);
            let mut newly_thawed = thaw_chains(&tree, &mut changed);
            // Those of a freeze's capture that it has not recorded yet (see `Changed`).
            newly_thawed.append(&mut changed.captured_thaw);
            newly_thawed.sort_unstable();
            newly_thawed.dedup();
            (files, newly_frozen, newly_thawed)
        };
        let ctx = self.data_context();
        // Files whose buffered data could not all be stored: the next commit tries again.
        let mut retry = Vec::new();
        let mut batch = CommitBatch {
            next_inode: tree.next_inode,
            ..CommitBatch::default()
        };
        for ino in dirt.inodes.union(&files) {
            if dirt.removed.contains(ino) {
                continue;
            }
            let Some(node) = tree.nodes.get(ino) else {
                continue;
            };
            let mut record = node.record.clone();
            if let Some(content) = &node.content {
                let mut state = content.lock();
                let changes = state.take_changes(*ino, &ctx);
                if state.has_buffers() {
                    retry.push(*ino);
                }
                drop(state);
                record.size = changes.size;
                record.mtime = changes.mtime;
                record.ctime = changes.ctime;
                if changes.blocks.dropped_from.is_some() || !changes.blocks.set.is_empty() {
                    batch.blocks.push((*ino, changes.blocks));
                }
            }
            batch.inodes.push((*ino, record));
        }
        self.changed.lock().since_commit.extend(retry);
        // What the freezes since the last commit encoded is persisted; then every inode changed
        // since the last freeze (a superset of this batch's changes made after it), with every
        // directory above it, loses its persisted frozen object (`meta`'s `frozen` table). A
        // change made before the freeze is in the freeze's objects.
        batch.frozen = newly_frozen;
        batch.thawed = newly_thawed;
        batch.removed_inodes = dirt.removed.into_iter().collect();
        batch.dirents = dirt
            .dirents
            .into_iter()
            .map(|((parent, name), child)| (parent, name, child))
            .collect();
        for ino in dirt.xattrs {
            if let Some(node) = tree.nodes.get(&ino) {
                batch.xattrs.push((ino, node.xattrs.clone()));
            }
        }
        batch
    }

    /// Drops the block maps this commit wrote of the files nobody has open: they load again
    /// from the database when needed, so a share's written files do not each keep a map in
    /// memory until their inode is evicted. Still under `committing`, so no later commit holds
    /// changes of theirs yet; a file written again since is dirty and keeps its map.
    fn drop_committed_block_maps(&self, batch: &CommitBatch) {
        let tree = self.tree.read();
        for (ino, _) in &batch.blocks {
            if let Some(node) = tree.nodes.get(ino)
                && node.open_handles.load(std::sync::atomic::Ordering::Acquire) == 0
                && let Some(content) = &node.content
            {
                content.lock().evict();
            }
        }
    }

    fn write_batch(&self, batch: &CommitBatch, durability: redb::Durability) -> FsResult<()> {
        let db = self.meta.database();
        let mut txn = db.begin_write().map_err(meta_err)?;
        txn.set_durability(durability)
            .map_err(|e| meta_err(redb::Error::from(e)))?;
        // The index first: accounting reads the sizes of the chunks the block maps now name.
        let staged = self.store.stage_commit(&txn)?;
        self.meta.stage(&txn, batch, staged.stored)?;
        self.store.sync()?;
        txn.commit().map_err(meta_err)?;
        self.store.committed(&staged.ids);
        if !batch.is_empty() || !staged.ids.is_empty() {
            self.changing_commits
                .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        }
        Ok(())
    }
}

/// The inodes whose persisted frozen object the next commit removes: every inode changed since
/// the last freeze, and every directory above it (each directory holding it, and theirs, up to
/// the root), but none a commit since that freeze already removed (`thaw_persisted`, which
/// holds whole chains: a directory in it has every directory above it in it too, or a change
/// of entries that moved it put its new parent in `since_freeze`). All of them are in memory
/// (the namespace's invariant), so the walk needs no database read.
pub(super) fn thaw_chains(
    tree: &super::namespace::Namespace,
    changed: &mut super::Changed,
) -> Vec<InodeNo> {
    let mut pending: Vec<InodeNo> = changed.thaws_to_persist().collect();
    let mut thawed = Vec::new();
    while let Some(ino) = pending.pop() {
        if changed.thaw_persisted.insert(ino) {
            thawed.push(ino);
            pending.extend(tree.containing_dirs(ino));
        }
    }
    thawed.sort_unstable();
    thawed
}

fn meta_err(err: impl Into<redb::Error>) -> FsError {
    FsError::Meta(crate::meta::MetaError::Db(err.into()))
}

#[cfg(test)]
mod tests {
    use crate::format::catalog::Origin;
    use crate::id::InodeNo;
    use crate::testing::{ROOT_USER, close, new_store, read_file, snapshots_of, write_file};

    /// Whether the file `ino` has its block map in memory.
    fn map_loaded(live: &super::LiveFs, ino: InodeNo) -> bool {
        let tree = live.tree.read();
        let content = tree.nodes[&ino].content.as_ref().expect("a file");
        content.lock().has_block_map()
    }

    #[test]
    fn committed_files_nobody_has_open_keep_no_block_map() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (_store, live) = new_store(tmp.path(), "store");
        let closed = write_file(&live, "closed", &[1; 3 * 4096]);
        let (attr, fh) = live
            .create(InodeNo::ROOT, b"open", 0o644, ROOT_USER)
            .expect("create");
        live.write(fh, 0, &[2; 3 * 4096]).expect("write");
        assert!(map_loaded(&live, closed), "written, not yet committed");
        live.commit_now().expect("commit");
        assert!(!map_loaded(&live, closed), "in the database now");
        assert!(map_loaded(&live, attr.ino), "still open");
        // Walks over the share (verify, tier recall) read the maps they need, keeping none.
        assert_eq!(
            live.file_chunks(closed).expect("chunks").len(),
            3,
            "a block each"
        );
        assert!(!map_loaded(&live, closed));
        assert!(read_file(&live, "closed") == [1; 3 * 4096]);
        // A freeze reads the maps it needs without keeping them.
        write_file(&live, "closed", &[3; 3 * 4096]);
        live.commit_now().expect("commit");
        snapshots_of(&live)
            .create("s", Origin::Manual)
            .expect("snapshot");
        assert!(!map_loaded(&live, closed));
        live.release(fh).expect("release");
        assert!(read_file(&live, "closed") == [3; 3 * 4096]);
        close(live);
    }

    /// A caller of `commit_now` that is waiting for the committer when the committer stops
    /// (a signal's forced unmount racing the end of the session) commits on its own thread
    /// instead of waiting for a commit that will never come.
    #[test]
    fn a_commit_waiting_when_the_committer_stops_is_made_by_its_caller() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (_store, live) = new_store(tmp.path(), "store");
        // The committer has gone, but has not yet said so: a request now waits for it.
        live.commits.stop();
        live.commits.state.lock().stopped = false;
        write_file(&live, "f", &[5; 3 * 4096]);
        let (done, finished) = std::sync::mpsc::channel();
        let waiter = {
            let live = live.clone();
            std::thread::spawn(move || done.send(live.commit_now()).expect("send"))
        };
        while {
            let state = live.commits.state.lock();
            state.requested == state.completed
        } {
            std::thread::yield_now();
        }
        live.commits.stop();
        let result = finished
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("commit_now returned once the committer stopped");
        result.expect("committed");
        waiter.join().expect("waiter");
        assert!(live.changed.lock().since_commit.is_empty(), "nothing left");
        close(live);
    }

    /// A file closed while a commit is between taking its changes and committing them keeps
    /// its block map: loaded again from the database then, it would be the old one.
    #[test]
    fn a_file_closed_during_a_commit_keeps_its_new_data() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (_store, live) = new_store(tmp.path(), "store");
        write_file(&live, "f", &[1; 3 * 4096]);
        live.commit_now().expect("commit");
        write_file(&live, "f", &[2; 3 * 4096]);
        {
            let _committing = live.commits.committing.lock();
            let batch = live.collect_batch();
            // The last close of the file, while the batch is not yet written; then a new open.
            assert!(read_file(&live, "f") == [2; 3 * 4096]);
            assert!(
                read_file(&live, "f") == [2; 3 * 4096],
                "the old data came back"
            );
            live.write_batch(&batch, redb::Durability::Immediate)
                .expect("write");
        }
        assert!(read_file(&live, "f") == [2; 3 * 4096]);
        close(live);
    }
}
