//! Freezing the live share into a snapshot: an immutable Merkle tree of objects in the chunk
//! store. Each inode remembers the object it froze to until it changes, and a change thaws the
//! inode and every directory above it, so a freeze re-encodes only the changed paths: its cost
//! follows what changed since the previous freeze, not the size of the share. What is not in
//! memory has not changed since it was committed: a directory not listed stands for its subtree
//! by the frozen object persisted for it, or, if it has none, is listed and encoded, or, if
//! nothing below it is in memory either, encoded from the database (`encode_committed`).
//!
//! A freeze is three steps, so that writers wait only for the first and the last, and never for
//! hashing, compressing or storing:
//! 1. **Capture**, under the write gate and the namespace lock (exclusive): thaw what changed,
//!    and copy out what encoding needs of every thawed inode (a directory's entries with each
//!    child's record, xattrs and object; a file's size, block map and buffered bytes). This is
//!    the snapshot's point in time.
//! 2. **Encode**, with nothing locked: store the copied buffered blocks, then put every object,
//!    children before their directory.
//! 3. **Record**, under the write gate and the namespace lock again, briefly: each inode
//!    remembers its new object, except those changed since the capture and every directory
//!    above them (see [`LiveFs::record`]).
//!
//! Freezes run one at a time (`LiveFs::freezing`, held from capture to record), and a gc does
//! not mark while one is between capture and record (see [`LiveFs::hold_freezes`]).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::LiveFs;
use super::content::{CapturedBlock, CapturedContent, FileContent, store_block_data};
use super::encode_committed::{EncodedBelow, encode_committed};
use super::error::{FsError, FsResult};
use super::namespace::{Namespace, has_object};
use crate::format::inode::InodeRecord;
use crate::format::object::{
    DirEntryObject, DirectoryObject, FileObject, ObjectId, SEGMENT_BLOCKS, Segment,
};
use crate::id::{ChunkId, InodeNo};
use crate::meta::namespace::CommittedTree;
use crate::tree_objects::TreeObjects;

/// The most entries of a directory a capture copies rather than commit first (see
/// [`CapturePlan`]): copying them costs about 1 µs each.
const COPY_AT_MOST: usize = 4096;

/// The most inodes changed since the last freeze whose directories the capture's warm-up
/// looks for (see [`LiveFs::plan_capture`]).
const WARM_ABOVE_AT_MOST: usize = 4096;

/// What the capture is about to meet, planned before it with nothing but read locks held
/// ([`LiveFs::plan_capture`]).
struct CapturePlan {
    /// Whether it would copy a directory of more than [`COPY_AT_MOST`] entries: one with a
    /// change not yet committed below it (see `capture`). The freeze then commits first, and
    /// the capture finds that directory in the database, to be encoded from there with
    /// nothing locked. Copying the 200,000 entries of a directory where one file had just been
    /// created kept writers waiting 206 ms. A change made between that commit and the capture
    /// is copied as before.
    copies_a_big_directory: bool,
    /// The directories it will list: those in memory and not listed, with something
    /// uncommitted below them, that it reaches thawed. These are the thawed ones it reaches
    /// through listed thawed directories, and those still frozen in memory above a change,
    /// which it thaws first: after a remount every directory comes back frozen, and the first
    /// snapshot with 10 files changed kept writers waiting 160 ms while it listed a root of
    /// 1,000 directories from a cold disk. It leaves the others to be encoded from the
    /// database (see `capture`): reading them too cost 29 ms of listings at 300,000 new files.
    to_warm: Vec<InodeNo>,
}

/// What a freeze produced: the root directory's object and attributes.
pub struct Frozen {
    pub root: ObjectId,
    pub root_record: InodeRecord,
    /// How many files and directories it encoded: what changed since the previous freeze (or
    /// everything, the first time).
    pub encoded: usize,
    /// How many inodes its capture took, while writers waited: those it copied, and the
    /// directories whose subtrees it left to be encoded from the database.
    pub captured: usize,
}

/// What a capture took of the share: every thawed inode's encoding input, in post-order
/// (every inode after everything below it), so that encoding them in order finds each
/// child's object already made.
struct Capture {
    items: Vec<Captured>,
    /// The database as the capture saw it, if an item is to be encoded from it.
    committed: Option<CommittedTree>,
    /// The root's object: the last item, or its frozen object if nothing changed.
    root: ChildObject,
    root_record: InodeRecord,
    /// `Namespace::loads` at the end of the capture, if no inode encoded from the database was
    /// in memory then (see [`keep_below`]).
    loads: Option<u64>,
}

/// One thawed inode as the capture saw it.
enum Captured {
    File {
        ino: InodeNo,
        /// The file itself, to hand the stored copies of its buffered blocks back to.
        content: Arc<FileContent>,
        captured: CapturedContent,
    },
    Directory {
        ino: InodeNo,
        entries: Vec<CapturedEntry>,
    },
    /// A directory never frozen that was not in memory when the capture listed its parent,
    /// nor anything below it: encoded from the database (see `encode_committed`).
    Committed { ino: InodeNo },
}

impl Captured {
    fn ino(&self) -> InodeNo {
        match self {
            Captured::File { ino, .. }
            | Captured::Directory { ino, .. }
            | Captured::Committed { ino } => *ino,
        }
    }
}

/// A directory entry as the capture saw it: all of [`DirEntryObject`] but the child's object,
/// which may not be made yet.
struct CapturedEntry {
    name: Vec<u8>,
    child: InodeNo,
    record: InodeRecord,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    object: ChildObject,
}

/// Where an entry's object comes from.
#[derive(Clone, Copy)]
enum ChildObject {
    /// A kind with no object of its own (symbolic links, devices, FIFOs, sockets).
    None,
    /// Unchanged since an earlier freeze: the object it froze to then.
    Frozen(ObjectId),
    /// Thawed: the object made from [`Capture::items`] at this position.
    Captured(usize),
}

/// A test's handle on the next freeze: the freeze reports on `reached` once it gets where the
/// test asked (past its capture, its locks released; or past its first batch), then waits on
/// `resume`.
#[cfg(test)]
pub(crate) struct Pause {
    reached: std::sync::mpsc::Sender<()>,
    resume: std::sync::mpsc::Receiver<()>,
}

#[cfg(test)]
impl Pause {
    /// Puts a pause in `slot`: returns the receiver that hears when the freeze got there, and
    /// the sender that lets it go on.
    fn set(
        slot: &parking_lot::Mutex<Option<Pause>>,
    ) -> (std::sync::mpsc::Receiver<()>, std::sync::mpsc::Sender<()>) {
        let (reached, on_reach) = std::sync::mpsc::channel();
        let (go, resume) = std::sync::mpsc::channel();
        *slot.lock() = Some(Pause { reached, resume });
        (on_reach, go)
    }

    /// Waits as the test asked through `slot`, if it did.
    fn wait_here(slot: &parking_lot::Mutex<Option<Pause>>) {
        let pause = slot.lock().take();
        if let Some(pause) = pause {
            let _ = pause.reached.send(());
            let _ = pause.resume.recv();
        }
    }
}

impl LiveFs {
    /// Freezes the share as it is now. Every write that returned before this call is in the
    /// result and none that starts after its capture: data writes wait on the write gate, and
    /// every other change on the namespace lock, both held exclusively while the capture
    /// copies what encoding needs. The encoding itself (hashing, compressing, storing) runs
    /// after both are released; writers wait only for the capture and for the brief record.
    pub fn freeze(&self, objects: &TreeObjects) -> FsResult<Frozen> {
        self.check_writable()?;
        // One freeze at a time, from capture to record: a second capture would take the
        // changes the first one's record must see (`since_freeze`, `thaw_persisted`).
        let _freezing = self.freezing.lock();
        // Most buffered data is stored here, before anything is locked (as a commit's first
        // step does, moving it into the block maps so it is hashed once): the capture then
        // copies only what was buffered in the last moments.
        self.store_buffered_data();
        let mut phases = crate::phases::Phases::start();
        let mut plan = self.plan_capture();
        if plan.copies_a_big_directory {
            self.commit_now()?;
            phases.lap("commit first");
            plan = self.plan_capture();
        }
        self.warm_capture(plan.to_warm);
        phases.lap("warm");
        // A commit under way holds changes that are in neither memory's dirty sets nor the
        // database: the capture waits for it to end, holding nothing writers need, and no
        // commit starts until the capture ends. Copying every thawed inode instead, as the
        // capture did when it met a commit, copied 60,665 inodes under the locks at 60,000
        // new files, where it now copies 58.
        let no_commit = self.commits.wait_idle();
        phases.lap("a commit under way");
        let capture = match self.capture(no_commit) {
            Ok(capture) => capture,
            Err(err) => {
                self.freeze_failed(Vec::new());
                return Err(err);
            }
        };
        phases.lap("capture (writers wait)");
        #[cfg(test)]
        Pause::wait_here(&self.freeze_pause);
        let inos: Vec<InodeNo> = capture.items.iter().map(Captured::ino).collect();
        let loads_at_capture = capture.loads;
        let Encoded {
            root,
            ids,
            below,
            recorded,
        } = match self.encode(capture, objects) {
            Ok(encoded) => encoded,
            Err(err) => {
                self.freeze_failed(inos);
                return Err(err);
            }
        };
        phases.lap("encode");
        let encoded = inos.into_iter().zip(ids).collect::<Vec<_>>();
        let captured = encoded.len();
        let count = captured + recorded + below.len();
        self.record(encoded, below, loads_at_capture);
        phases.lap("record (writers wait)");
        tracing::debug!(phases = %phases, captured, encoded = count, "where the freeze's time went");
        Ok(Frozen {
            root: root.0,
            root_record: root.1,
            encoded: count,
            captured,
        })
    }

    /// Keeps every freeze from running between its capture and its record while the guard
    /// lives (a freeze already there is waited for). A gc holds it while it marks: the share
    /// may drop chunks right after a capture (a truncate, an unlink) that the captured block
    /// maps still name, and nothing marks those until the freeze records its objects. A freeze
    /// that captures after the marking names only chunks in use after the collection began,
    /// which the collection keeps (marked, or reused meanwhile). A snapshot's freeze is also
    /// kept from any collection by the catalog lock (`Snapshots::create` holds it from the
    /// freeze to the catalog entry); this covers freezes that record no snapshot (`diff`
    /// against the live share).
    pub fn hold_freezes(&self) -> parking_lot::MutexGuard<'_, ()> {
        self.freezing.lock()
    }

    /// Reads from the database, with no lock held, what the capture is about to list
    /// (`to_warm`: see [`LiveFs::plan_capture`]), the entries of each directory and the records
    /// of the inodes they name. The capture lists them under the write gate and the namespace
    /// lock, and now finds them in the page cache instead of waiting there for the disk: after
    /// a remount with cold caches, the first snapshot of a share never frozen kept writers
    /// waiting 146 ms at 200,000 files (7 ms per directory of 100 entries listed, against
    /// under 1 ms warm). Only a hint: what changes meanwhile is listed as before.
    fn warm_capture(&self, to_warm: Vec<InodeNo>) {
        if to_warm.is_empty() {
            return;
        }
        let warmed = self.meta.read_namespace().and_then(|reader| {
            for dir in to_warm {
                super::load::StoredListing::read(&reader, dir)?;
            }
            Ok(())
        });
        if let Err(err) = warmed {
            // The capture reads the same and reports what it finds.
            tracing::debug!("warming the capture's listings: {err}");
        }
    }

    /// What the capture is about to meet, as far as can be told before it, from one look at
    /// what is uncommitted (the capture's `unclean`, which costs what is uncommitted).
    fn plan_capture(&self) -> CapturePlan {
        let tree = self.tree.read();
        // What the capture's `thaw_chains` will find stale, walked up by `and_above`; and
        // enough of what changed to find the few directories above a few changes (past that,
        // the walk would cost what the capture's own thawing does).
        let (stale, changed): (Vec<InodeNo>, Vec<InodeNo>) = {
            let changed = self.changed.lock();
            (
                changed.thaws_to_persist().collect(),
                (changed.since_freeze.iter())
                    .take(WARM_ABOVE_AT_MOST)
                    .copied()
                    .collect(),
            )
        };
        let unclean = self.uncommitted_and_above(&tree, stale);
        let copies_a_big_directory = unclean.iter().any(|dir| {
            tree.nodes
                .get(dir)
                .and_then(|node| node.entries.as_ref())
                .is_some_and(|entries| entries.len() > COPY_AT_MOST)
        });
        let mut to_warm = tree.unlisted_thawed_dirs();
        to_warm.extend(and_above(&tree, changed).into_iter().filter(|dir| {
            tree.nodes
                .get(dir)
                .is_some_and(|node| node.is_dir() && node.entries.is_none())
        }));
        to_warm.sort_unstable();
        to_warm.dedup();
        to_warm.retain(|dir| unclean.contains(dir));
        CapturePlan {
            copies_a_big_directory,
            to_warm,
        }
    }

    /// Step 1: under the write gate and the namespace lock, thaws what changed since the last
    /// capture and copies out what encoding needs. Costs what changed (plus listing the thawed
    /// directories not in memory), never hashing or storing. A directory never frozen that the
    /// listing of its parent brought into memory is not listed: its subtree, none of it in
    /// memory, is encoded from the database as this capture sees it. Nor is a thawed directory
    /// with nothing uncommitted below it (the first snapshot of a share just written, once
    /// committed). The caller holds the committing lock (`no_commit`), which a commit holds
    /// from taking its changes until they are in the database, and which must be taken before
    /// the namespace lock.
    fn capture(&self, no_commit: parking_lot::MutexGuard<'_, ()>) -> FsResult<Capture> {
        let _no_commit = no_commit;
        let _gate = self.write_gate.write();
        let mut tree = self.tree.write();
        let (changed, stale) = {
            let mut changed = self.changed.lock();
            // The persisted frozen objects this capture makes stale, which the next commit
            // removes (it might run before the record: see `Changed::captured_thaw`).
            let stale = super::commit::thaw_chains(&tree, &mut changed);
            changed.captured_thaw = stale.clone();
            // From here, `since_freeze` and `thaw_persisted` hold what changed after this
            // capture: what the record must not trust the captured objects of.
            changed.thaw_persisted.clear();
            (std::mem::take(&mut changed.since_freeze), stale)
        };
        for ino in changed {
            tree.thaw(ino);
        }
        // With no commit under way, the database holds the share as it is now but for what is
        // uncommitted and the persisted frozen objects that made stale: a thawed directory in
        // memory with none of that below it is encoded from the database, as one not in memory
        // is, instead of being listed and copied here (see `uncommitted_and_above`).
        let unclean = self.uncommitted_and_above(&tree, stale);
        let mut in_memory_below = false;
        // Until the record: nothing captured leaves memory before it can be recorded.
        self.freeze_in_flight
            .store(true, std::sync::atomic::Ordering::Release);
        let ctx = self.data_context();
        let mut items = Vec::new();
        // Where each captured inode is in `items` (a file with several links is met once per
        // link, and captured the first time).
        let mut positions: HashMap<InodeNo, usize> = HashMap::new();
        let mut committed = None;
        // Depth first without recursion: users choose how deep the share is, so the walk keeps
        // its own stack (one [`Frame`] per pending inode) on the heap.
        let mut stack = vec![Frame::Enter(InodeNo::ROOT)];
        while let Some(frame) = stack.pop() {
            match frame {
                Frame::Enter(ino) => {
                    let node = tree.node(ino)?;
                    if node.frozen.is_some() || positions.contains_key(&ino) {
                        // Unchanged since the last freeze, or reached before by another link.
                        // A directory not listed is trusted by its own frozen object: every
                        // change below it removed that (`meta`'s `frozen` table).
                        continue;
                    }
                    if node.is_dir() && !unclean.contains(&ino) {
                        if committed.is_none() {
                            committed = Some(self.meta.read_committed_tree()?);
                        }
                        positions.insert(ino, items.len());
                        items.push(Captured::Committed { ino });
                        in_memory_below = true;
                        continue;
                    }
                    if node.is_dir() {
                        // Never frozen, or thawed since: its entries are needed to encode it.
                        for child in tree.list_loading(ino)? {
                            let child_node = tree.node(child)?;
                            if child_node.is_dir() && child_node.frozen.is_none() {
                                if committed.is_none() {
                                    committed = Some(self.meta.read_committed_tree()?);
                                }
                                positions.insert(child, items.len());
                                items.push(Captured::Committed { ino: child });
                            }
                        }
                    }
                    let node = tree.node(ino)?;
                    match &node.entries {
                        Some(entries) => {
                            stack.push(Frame::Exit(ino));
                            for child in entries.values() {
                                let child_node = tree.node(*child)?;
                                if child_node.frozen.is_none() && has_object(child_node) {
                                    stack.push(Frame::Enter(*child));
                                }
                            }
                        }
                        None => {
                            let Some(content) = node.content.clone() else {
                                return Err(unfrozen(
                                    ino,
                                    "an inode frozen as a file has no content",
                                ));
                            };
                            let captured = content.lock().capture(ino, &ctx)?;
                            if captured.blocks.is_none() && committed.is_none() {
                                committed = Some(self.meta.read_committed_tree()?);
                            }
                            positions.insert(ino, items.len());
                            items.push(Captured::File {
                                ino,
                                content,
                                captured,
                            });
                        }
                    }
                }
                Frame::Exit(dir) => {
                    let entries = capture_entries(&tree, dir, &positions)?;
                    positions.insert(dir, items.len());
                    items.push(Captured::Directory { ino: dir, entries });
                }
            }
        }
        let root = child_object(&tree, InodeNo::ROOT, &positions)?;
        let root_record = tree.node(InodeNo::ROOT)?.current_record();
        Ok(Capture {
            items,
            committed,
            root,
            root_record,
            loads: (!in_memory_below).then_some(tree.loads),
        })
    }

    /// Every inode the database may not hold as memory does, and every directory above one:
    /// those with a change not yet committed (a record, entries, xattrs, a file's content,
    /// size or times), and those whose persisted frozen object is stale (`stale`, whole
    /// chains already). A directory outside this set has its whole subtree in the database as
    /// it is in memory, frozen objects included, while no commit is under way (the caller holds
    /// the committing lock). Costs what is uncommitted.
    fn uncommitted_and_above(&self, tree: &Namespace, stale: Vec<InodeNo>) -> HashSet<InodeNo> {
        let mut pending = stale;
        {
            let dirt = self.dirt.lock();
            pending.extend(dirt.inodes.iter().chain(&dirt.xattrs).copied());
            pending.extend(dirt.dirents.keys().map(|(parent, _)| *parent));
        }
        pending.extend(self.changed.lock().since_commit.iter().copied());
        and_above(tree, pending)
    }

    /// Step 2, with nothing locked: stores the copied buffered blocks (spread over the data
    /// workers, and handed back to their files), then puts every captured inode's object in
    /// capture order, children first.
    fn encode(&self, capture: Capture, objects: &TreeObjects) -> FsResult<Encoded> {
        let Capture {
            items,
            committed,
            root,
            root_record,
            loads,
        } = capture;
        let mut sealed = self.store_captured_blocks(&items)?;
        let mut ids: Vec<ObjectId> = Vec::with_capacity(items.len());
        let mut below = EncodedBelow::default();
        let mut recorded = 0;
        let mut links = HashMap::new();
        for (position, item) in items.into_iter().enumerate() {
            let id = match item {
                Captured::File { ino, captured, .. } => {
                    let CapturedContent { size, blocks, .. } = captured;
                    let mut blocks = match (blocks, &committed) {
                        (Some(blocks), _) => blocks,
                        (None, Some(tree)) => tree.blocks(ino)?.into_iter().collect(),
                        (None, None) => {
                            return Err(unfrozen(ino, "no database view for a block map"));
                        }
                    };
                    for (index, chunk) in sealed.remove(&position).unwrap_or_default() {
                        let at = blocks.binary_search_by_key(&index, |(at, _)| *at);
                        match (chunk, at) {
                            (Some(chunk), Ok(at)) => blocks[at].1 = chunk,
                            (Some(chunk), Err(at)) => blocks.insert(at, (index, chunk)),
                            (None, Ok(at)) => {
                                blocks.remove(at);
                            }
                            (None, Err(_)) => {}
                        }
                    }
                    encode_file(objects, size, blocks)?
                }
                Captured::Directory { entries, .. } => {
                    let mut encoded = Vec::with_capacity(entries.len());
                    for entry in entries {
                        let object = match entry.object {
                            ChildObject::None => None,
                            ChildObject::Frozen(id) => Some(id),
                            ChildObject::Captured(at) => Some(
                                *ids.get(at)
                                    .ok_or_else(|| unfrozen(entry.child, "below a directory"))?,
                            ),
                        };
                        encoded.push(DirEntryObject {
                            name: entry.name,
                            link_id: entry.child.0,
                            record: entry.record,
                            object,
                            xattrs: entry.xattrs,
                        });
                    }
                    objects.put(&DirectoryObject { entries: encoded }.encode())?
                }
                Captured::Committed { ino } => {
                    let Some(tree) = &committed else {
                        return Err(unfrozen(
                            ino,
                            "no database view for a directory not in memory",
                        ));
                    };
                    let mut record = |batch: EncodedBelow| {
                        recorded += batch.len();
                        self.record_below(batch, loads)
                    };
                    encode_committed(tree, objects, ino, &mut below, &mut record, &mut links)?
                }
            };
            ids.push(id);
        }
        let root = match root {
            ChildObject::Frozen(id) => id,
            ChildObject::Captured(at) => *ids
                .get(at)
                .ok_or_else(|| unfrozen(InodeNo::ROOT, "the top of a freeze"))?,
            ChildObject::None => return Err(unfrozen(InodeNo::ROOT, "the top of a freeze")),
        };
        Ok(Encoded {
            root: (root, root_record),
            ids,
            below,
            recorded,
        })
    }

    /// Stores the captured copies of buffered blocks, on the data workers, and hands each one
    /// back to its file if the buffer did not change since (so the file does not store the
    /// same bytes again). Returns the chunks by position of the file in the capture.
    fn store_captured_blocks(&self, items: &[Captured]) -> FsResult<SealedBlocks> {
        let blocks: Vec<(usize, &CapturedBlock)> = items
            .iter()
            .enumerate()
            .filter_map(|(position, item)| match item {
                Captured::File { captured, .. } => Some((position, captured)),
                Captured::Directory { .. } | Captured::Committed { .. } => None,
            })
            .flat_map(|(position, captured)| {
                captured.buffered.iter().map(move |block| (position, block))
            })
            .collect();
        let mut sealed = SealedBlocks::new();
        if blocks.is_empty() {
            return Ok(sealed);
        }
        let chunks = self.workers.map(&blocks, |(_, block)| {
            store_block_data(&self.store, &block.bytes)
        });
        let ctx = self.data_context();
        for ((position, block), chunk) in blocks.into_iter().zip(chunks) {
            let chunk = chunk?;
            if let Some(Captured::File { ino, content, .. }) = items.get(position) {
                let adopted =
                    content
                        .lock()
                        .adopt_sealed(*ino, &ctx, block.index, block.stamp, chunk)?;
                if adopted {
                    self.changed.lock().since_commit.insert(*ino);
                }
            }
            sealed
                .entry(position)
                .or_default()
                .push((block.index, chunk));
        }
        Ok(sealed)
    }

    /// Step 3: under the write gate and the namespace lock, each captured inode remembers the
    /// object it was encoded to, in memory (`Node::frozen`) and for the next commit to persist
    /// (`newly_frozen`), unless it changed since the capture.
    ///
    /// What changed since the capture is `since_freeze` and `thaw_persisted` now (the capture
    /// emptied both): a change records its inode only, and the directories above it are
    /// thawed lazily, by the next freeze and the next commit (`thaw_chains`). A commit may
    /// already have removed the persisted frozen objects of those directories since the
    /// capture; recording their captured objects now would put back a stale one, trusted after
    /// a remount. So every captured inode that is, or holds (through its parent or any of its
    /// links, as `Namespace::thaw` walks), anything changed since the capture is skipped and
    /// stays thawed: the next freeze encodes it again. The walk up uses the namespace as it is
    /// now; a change that moved an inode (a rename, a link, an unlink) also changed the
    /// entries of the directories it left and joined, which are walked up from too.
    ///
    /// The write gate is taken because a data write changes a file before it records the
    /// change (under the gate): without it a write could be between the two now, and the
    /// file's old object would be recorded with its new data.
    ///
    /// An inode no longer in memory is skipped: purged (its record must not gain a `frozen`
    /// row), or evicted, which it can only be if the database has no frozen object for it
    /// either; loaded again, an inode without one thaws the directories above it.
    ///
    /// The inodes encoded from the database (`below`: the last batch of them, the others
    /// recorded already by [`LiveFs::record_below`]) had nothing uncommitted at the capture.
    /// One is kept unless it changed since (a change loads it and its directories first, so
    /// the walk up finds them), or it is not in memory and the directory it was found in
    /// changed: a purged inode left its last directory changed. One in memory remembers its
    /// object there too. When none was in memory at the capture and nothing was loaded since
    /// (`Namespace::loads` as it was then: `loads_at_capture`), every one of them is kept as
    /// it is, without a look at each: at 200,000 files, that look kept writers waiting 9-12 ms
    /// in the first snapshot.
    fn record(
        &self,
        encoded: Vec<(InodeNo, ObjectId)>,
        below: EncodedBelow,
        loads_at_capture: Option<u64>,
    ) {
        let _gate = self.write_gate.write();
        let mut tree = self.tree.write();
        let mut changed = self.changed.lock();
        // If no commit took them yet, the objects recorded below replace them; those not
        // recorded are above a change since the capture, which the next commit thaws anyway
        // (or, no longer in memory, were purged, or evicted with no persisted object).
        changed.captured_thaw.clear();
        self.freeze_in_flight
            .store(false, std::sync::atomic::Ordering::Release);
        let stale = keep_below(&mut tree, &mut changed, below, loads_at_capture);
        for (ino, id) in encoded {
            if stale.contains(&ino) {
                continue;
            }
            let Some(node) = tree.nodes.get_mut(&ino) else {
                continue;
            };
            node.frozen = Some(id);
            changed.newly_frozen.push((ino, id));
        }
    }

    /// After a failed capture or encoding: the captured inodes (`captured`) are given back
    /// their changes, so that the next commit removes their persisted frozen objects and the
    /// next freeze encodes them, and eviction may run again. (A capture that failed part way
    /// thawed what it took; every inode it thawed is in `captured_thaw`, or is purged.)
    fn freeze_failed(&self, captured: Vec<InodeNo>) {
        let _tree = self.tree.write();
        self.changed.lock().since_freeze.extend(captured);
        self.freeze_in_flight
            .store(false, std::sync::atomic::Ordering::Release);
    }

    /// Records a full batch of the inodes encoded from the database while the freeze still
    /// encodes, as [`LiveFs::record`] records the rest at its end, and commits it: the first
    /// freeze of a large share never frozen would otherwise hold the list of all it made, and
    /// then one commit's dirty pages of as many rows, until its end.
    ///
    /// Recording a batch early is recording a smaller freeze: an object kept now is that of an
    /// inode unchanged since the capture, and a change after this thaws it as a change after a
    /// record does (the next commit removes its row and those above it). Eviction still waits
    /// for the end of the freeze, which the record's argument about lost names needs.
    fn record_below(&self, batch: EncodedBelow, loads_at_capture: Option<u64>) -> FsResult<()> {
        let mut phases = crate::phases::Phases::start();
        {
            let _gate = self.write_gate.write();
            let mut tree = self.tree.write();
            let mut changed = self.changed.lock();
            keep_below(&mut tree, &mut changed, batch, loads_at_capture);
        }
        phases.lap("record (writers wait)");
        self.commit_now()?;
        phases.lap("commit");
        tracing::debug!(phases = %phases, "where a batch's time went");
        #[cfg(test)]
        Pause::wait_here(&self.batch_pause);
        Ok(())
    }

    /// Makes the next freeze pause between its capture and its encoding: returns the receiver
    /// that hears when it got there, and the sender that lets it go on.
    #[cfg(test)]
    pub(crate) fn pause_next_freeze(
        &self,
    ) -> (std::sync::mpsc::Receiver<()>, std::sync::mpsc::Sender<()>) {
        Pause::set(&self.freeze_pause)
    }

    /// Makes the next freeze pause once it has recorded and committed its first batch of
    /// inodes encoded from the database: as [`LiveFs::pause_next_freeze`].
    #[cfg(test)]
    pub(crate) fn pause_after_next_batch(
        &self,
    ) -> (std::sync::mpsc::Receiver<()>, std::sync::mpsc::Sender<()>) {
        Pause::set(&self.batch_pause)
    }
}

/// Keeps the objects of `below` a record may keep (see [`LiveFs::record`]) for the next commit
/// to persist (`newly_frozen`); each one in memory remembers its object. Returns what changed
/// since the capture (`since_freeze` and `thaw_persisted`, which the capture emptied) with
/// every directory above it: the inodes whose captured objects are stale.
fn keep_below(
    tree: &mut Namespace,
    changed: &mut super::Changed,
    below: EncodedBelow,
    loads_at_capture: Option<u64>,
) -> HashSet<InodeNo> {
    let stale = and_above(
        tree,
        changed
            .since_freeze
            .iter()
            .chain(&changed.thaw_persisted)
            .copied(),
    );
    let below = below.into_inner();
    // None of them was in memory at the capture, and nothing was loaded since: none is in
    // memory, so none changed or lost a name (a change loads what it changes, and the directory
    // it changes is listed, its entries loaded), and each keeps its object as it is.
    if loads_at_capture == Some(tree.loads) {
        changed
            .newly_frozen
            .extend(below.into_iter().map(|(ino, id, _)| (ino, id)));
        return stale;
    }
    let kept = below
        .into_iter()
        .filter(|&(ino, object, holder)| {
            // A directory whose entries changed since the capture was listed first, and
            // eviction waits for the record: an inode it held that its listing did not bring
            // into memory lost that name. A directory above a change alone may be unlisted:
            // its entries are as they were at the capture.
            let lost_name = !tree.nodes.contains_key(&ino)
                && stale.contains(&holder)
                && tree
                    .nodes
                    .get(&holder)
                    .is_some_and(|holder| holder.entries.is_some());
            if stale.contains(&ino) || lost_name {
                return false;
            }
            let node = tree.nodes.get_mut(&ino);
            if let Some(node) = node {
                node.frozen = Some(object);
            }
            true
        })
        .map(|(ino, id, _)| (ino, id));
    changed.newly_frozen.extend(kept);
    stale
}

/// Every inode of `inodes` and every directory holding one of them, up to the root (each
/// directory holding an inode: its parent, or each directory of its links). Without recursion,
/// each inode once. Holders of an inode in memory are in memory (the namespace's invariant);
/// `inodes` may name inodes since evicted, with whole chains above them.
fn and_above(tree: &Namespace, inodes: impl IntoIterator<Item = InodeNo>) -> HashSet<InodeNo> {
    let mut pending: Vec<InodeNo> = inodes.into_iter().collect();
    let mut found = HashSet::with_capacity(pending.len());
    while let Some(ino) = pending.pop() {
        if found.insert(ino) {
            pending.extend(tree.containing_dirs(ino));
        }
    }
    found
}

/// What an encoding made: the root's object and attributes, the object of each captured inode
/// in capture order, and those of the inodes encoded from the database that are not recorded
/// yet (the last batch), with how many were (the full batches).
struct Encoded {
    root: (ObjectId, InodeRecord),
    ids: Vec<ObjectId>,
    below: EncodedBelow,
    recorded: usize,
}

/// The chunks the captured copies of buffered blocks were stored as (block index, chunk;
/// `None` for a block of zeros), by position of their file in the capture.
type SealedBlocks = HashMap<usize, Vec<(u64, Option<ChunkId>)>>;

/// One step of the capture walk.
enum Frame {
    /// Capture this inode: a file at once; a directory after everything below it.
    Enter(InodeNo),
    /// Every thawed inode below this directory is captured: capture the directory itself.
    Exit(InodeNo),
}

/// Where the object of `ino` comes from, during a capture.
fn child_object(
    tree: &Namespace,
    ino: InodeNo,
    positions: &HashMap<InodeNo, usize>,
) -> FsResult<ChildObject> {
    let node = tree.node(ino)?;
    if !has_object(node) {
        return Ok(ChildObject::None);
    }
    if let Some(at) = positions.get(&ino) {
        return Ok(ChildObject::Captured(*at));
    }
    node.frozen
        .map(ChildObject::Frozen)
        .ok_or_else(|| unfrozen(ino, "below a directory"))
}

/// The entries of `dir`, whose thawed files and subdirectories are all captured.
fn capture_entries(
    tree: &Namespace,
    dir: InodeNo,
    positions: &HashMap<InodeNo, usize>,
) -> FsResult<Vec<CapturedEntry>> {
    let mut entries = Vec::new();
    for (name, child) in tree.dir(dir)? {
        let node = tree.node(*child)?;
        entries.push(CapturedEntry {
            name: name.clone(),
            child: *child,
            record: node.current_record(),
            xattrs: node
                .xattrs
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            object: child_object(tree, *child, positions)?,
        });
    }
    Ok(entries)
}

/// Stores a regular file's segments, from its block map in block order (`blocks`), and
/// returns the id of its file object.
pub(super) fn encode_file(
    objects: &TreeObjects,
    size: u64,
    blocks: impl IntoIterator<Item = (u64, ChunkId)>,
) -> FsResult<ObjectId> {
    let mut segments = Vec::new();
    let mut current: Option<(u64, Segment)> = None;
    for (index, chunk) in blocks {
        let number = index / SEGMENT_BLOCKS;
        if current.as_ref().is_some_and(|(n, _)| *n != number)
            && let Some((n, segment)) = current.take()
        {
            segments.push((n, objects.put(&segment.encode())?));
        }
        let (_, segment) = current.get_or_insert_with(|| (number, Segment::default()));
        segment
            .blocks
            .push(((index % SEGMENT_BLOCKS) as u16, chunk));
    }
    if let Some((n, segment)) = current {
        segments.push((n, objects.put(&segment.encode())?));
    }
    Ok(objects.put(&FileObject { size, segments }.encode())?)
}

/// A freeze found an inode not frozen where the walk order guarantees it is: a bug, reported
/// as an error rather than a snapshot that silently lacks part of the share.
fn unfrozen(ino: InodeNo, context: &str) -> FsError {
    tracing::error!(%ino, "freeze: {context}: not frozen");
    FsError::Io(std::io::Error::other(format!(
        "freeze: inode {ino} is not frozen ({context})"
    )))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::format::inode::InodeKind;
    use crate::format::object::Object;
    use crate::live::{RenameMode, SetAttr};
    use crate::testing::{
        DEEP, ROOT_USER as ROOT, chain, close, lookup, mkdir, new_store, on_small_stack, open,
        read_file, tree_dir, write_file, write_in,
    };

    /// Follows a chain of directories down from `root` to the first one holding a file: how
    /// many levels it passed, and that file's size.
    fn chain_depth(objects: &TreeObjects, root: ObjectId) -> (usize, u64) {
        let mut dir = root;
        let mut depth = 0;
        loop {
            let Ok(Object::Directory(directory)) = objects.get(&dir) else {
                panic!("a directory object at depth {depth}");
            };
            let [entry] = &directory.entries[..] else {
                panic!("one entry at depth {depth}");
            };
            let object = entry.object.expect("an object");
            if entry.record.kind == InodeKind::File {
                let Ok(Object::File(file)) = objects.get(&object) else {
                    panic!("a file object");
                };
                return (depth, file.size);
            }
            dir = object;
            depth += 1;
        }
    }

    #[test]
    fn a_deep_chain_freezes_without_recursion() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (path, live) = new_store(tmp.path(), "store");
        let bottom = chain(&live, InodeNo::ROOT, b"d", DEEP);
        write_in(&live, bottom, b"leaf", b"first");
        // Never frozen and not in memory after a remount: encoded from the database.
        live.commit_now().expect("commit");
        close(live);
        let live = open(&path);
        let objects = TreeObjects::new(live.chunk_store());
        let first = on_small_stack(|| live.freeze(&objects)).expect("freeze");
        assert_eq!(chain_depth(&objects, first.root), (DEEP, 5));
        assert_eq!(first.encoded, DEEP + 2, "the chain, the leaf and the root");

        write_in(&live, bottom, b"leaf", b"second");
        let second = on_small_stack(|| live.freeze(&objects)).expect("freeze again");
        assert_ne!(second.root, first.root, "the change thawed the whole chain");
        assert_eq!(chain_depth(&objects, second.root), (DEEP, 6));
        let unchanged = on_small_stack(|| live.freeze(&objects)).expect("freeze unchanged");
        assert_eq!(unchanged.root, second.root);
    }

    /// Writes directories `d0`..`d3`, each with `sub/f0`..`f3`; file `dD/sub/fF` holds "D/F".
    fn write_four_dirs(live: &LiveFs) {
        for d in 0..4 {
            mkdir(live, &format!("d{d}"));
            mkdir(live, &format!("d{d}/sub"));
            for f in 0..4 {
                write_file(
                    live,
                    &format!("d{d}/sub/f{f}"),
                    format!("{d}/{f}").as_bytes(),
                );
            }
        }
    }

    /// A new store `store` in `dir`, never frozen, with the directories of [`write_four_dirs`]
    /// committed and then `d2/sub/f1` written again ("uncommitted"), not committed.
    fn committed_but_one_file(dir: &std::path::Path) -> (std::path::PathBuf, Arc<LiveFs>) {
        let (path, live) = new_store(dir, "store");
        write_four_dirs(&live);
        live.commit_now().expect("commit");
        write_file(&live, "d2/sub/f1", b"uncommitted");
        (path, live)
    }

    /// A new store `store` in `dir` with directories `d0`..`d3`, each with `sub/f0`..`f3`, a
    /// file `top`, a hard link `d1/linked` to `d0/sub/f0` and a symbolic link `d2/sub/link`,
    /// never frozen; committed and closed. Returns its path.
    fn never_frozen_store(dir: &std::path::Path) -> std::path::PathBuf {
        let (path, live) = new_store(dir, "store");
        write_four_dirs(&live);
        write_file(&live, "top", b"top");
        let f0 = lookup(&live, "d0/sub/f0").expect("f0").ino;
        live.link(f0, lookup(&live, "d1").expect("d1").ino, b"linked")
            .expect("link");
        live.make(
            lookup(&live, "d2/sub").expect("sub").ino,
            b"link",
            super::super::create::NewInode::Symlink(b"f0"),
            0o777,
            ROOT,
        )
        .expect("symlink");
        live.commit_now().expect("commit");
        close(live);
        path
    }

    /// An inode encoded from the database and looked up (loaded, not changed) while the freeze
    /// encodes remembers its object in memory: the next freeze encodes nothing. (The record's
    /// quick way, which keeps every object without a look at each, is only for a freeze with
    /// no load since its capture.)
    #[test]
    fn an_inode_loaded_while_a_freeze_encodes_it_from_the_database_remembers_its_object() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = never_frozen_store(tmp.path());
        let live = open(&path);
        let objects = TreeObjects::new(live.chunk_store());
        freeze_around(&live, &objects, |live| {
            lookup(live, "d3/sub/f1").expect("f1");
        });
        for path in ["d3", "d3/sub", "d3/sub/f1"] {
            let ino = lookup(&live, path).expect("in the share").ino;
            assert!(
                live.tree
                    .read()
                    .node(ino)
                    .expect("in memory")
                    .frozen
                    .is_some(),
                "{path} remembers its object"
            );
        }
        assert_eq!(live.freeze(&objects).expect("freeze again").encoded, 0);
        drop(objects);
        close(live);
    }

    /// The capture's warm-up reads the directories the capture is about to list: those in
    /// memory, thawed and not listed, reached through listed thawed ones; none once frozen.
    #[test]
    fn the_capture_is_warmed_with_the_directories_it_will_list() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (path, live) = new_store(tmp.path(), "store");
        let a = mkdir(&live, "a");
        let b = mkdir(&live, "a/b");
        let c = mkdir(&live, "c");
        write_file(&live, "a/b/f", b"f");
        let g = write_file(&live, "c/g", b"g");
        close(live);
        let live = open(&path);
        let unlisted = |live: &LiveFs| {
            let mut dirs = live.tree.read().unlisted_thawed_dirs();
            dirs.sort();
            dirs
        };
        assert_eq!(unlisted(&live), [InodeNo::ROOT], "after the mount");
        assert_eq!(
            live.plan_capture().to_warm,
            [],
            "nothing uncommitted: none to list"
        );
        // A lookup lists nothing; a change in a directory lists it.
        lookup(&live, "a/b").expect("b");
        assert_eq!(unlisted(&live), [InodeNo::ROOT]);
        live.tree.write().list(InodeNo::ROOT).expect("list");
        assert_eq!(unlisted(&live), [a, c], "the root listed");
        live.tree.write().list(a).expect("list");
        assert_eq!(unlisted(&live), [b, c], "a listed");
        assert_eq!(live.plan_capture().to_warm, []);
        // A change by number below `c`, which stays unlisted: the capture lists `c` alone.
        let change = SetAttr {
            mode: Some(0o600),
            ..SetAttr::default()
        };
        live.setattr(g, change).expect("chmod");
        assert_eq!(unlisted(&live), [b, c]);
        assert_eq!(live.plan_capture().to_warm, [c]);
        let objects = TreeObjects::new(live.chunk_store());
        live.freeze(&objects).expect("freeze");
        assert_eq!(unlisted(&live), [], "every directory frozen");
        drop(objects);
        close(live);
    }

    /// After a remount every directory comes back frozen: the warm-up finds those above a
    /// change, which the capture thaws and then lists.
    #[test]
    fn after_a_remount_the_warm_up_finds_the_frozen_directories_above_a_change() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (path, live) = new_store(tmp.path(), "store");
        mkdir(&live, "a");
        mkdir(&live, "a/b");
        mkdir(&live, "c");
        write_file(&live, "a/b/f", b"f");
        write_file(&live, "c/g", b"g");
        let objects = TreeObjects::new(live.chunk_store());
        live.freeze(&objects).expect("freeze");
        live.commit_now().expect("commit");
        drop(objects);
        close(live);

        let live = open(&path);
        let f = lookup(&live, "a/b/f").expect("f").ino;
        let (a, b) = (
            lookup(&live, "a").expect("a").ino,
            lookup(&live, "a/b").expect("b").ino,
        );
        lookup(&live, "c/g").expect("g");
        assert_eq!(live.tree.read().unlisted_thawed_dirs(), [], "all frozen");
        assert_eq!(live.plan_capture().to_warm, [], "nothing changed");
        let change = SetAttr {
            mode: Some(0o600),
            ..SetAttr::default()
        };
        live.setattr(f, change).expect("chmod");
        let mut expected = vec![InodeNo::ROOT, a, b];
        expected.sort();
        assert_eq!(
            live.plan_capture().to_warm,
            expected,
            "c has nothing changed below it"
        );
        let objects = TreeObjects::new(live.chunk_store());
        live.freeze(&objects).expect("freeze");
        for dir in expected {
            assert!(
                live.tree.read().is_listed(dir).expect("dir"),
                "{dir} listed"
            );
        }
        drop(objects);
        close(live);
    }

    /// After a remount nothing below the root's entries is in memory. The first freeze of a
    /// share never frozen encodes those directories from the database, loads nothing below
    /// them, makes the very objects a freeze of the share loaded whole makes, and records every
    /// object it made: the next freeze after a remount encodes nothing. A file unlinked (its
    /// last name) while the freeze encodes gains no frozen row.
    #[test]
    fn a_share_never_frozen_is_encoded_from_the_database_without_loading_it() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = never_frozen_store(tmp.path());
        let copy = tmp.path().join("copy");
        let copied = std::process::Command::new("cp")
            .arg("-a")
            .arg(&path)
            .arg(&copy)
            .status()
            .expect("cp");
        assert!(copied.success());

        // The same share loaded whole first: every directory listed, nothing to read.
        let whole = open(&copy);
        whole
            .tree
            .write()
            .list_subtree(InodeNo::ROOT)
            .expect("list");
        let objects = TreeObjects::new(whole.chunk_store());
        let expected = whole.freeze(&objects).expect("freeze loaded whole");
        drop(objects);
        close(whole);

        let live = open(&path);
        let objects = TreeObjects::new(live.chunk_store());
        let gone = {
            let reader = live.meta.read_namespace().expect("reader");
            let d3 = reader.entries(InodeNo::ROOT).expect("root").into_iter();
            let d3 = d3
                .into_iter()
                .find(|(name, _)| name == b"d3")
                .expect("d3")
                .1;
            let sub = reader.entries(d3).expect("d3")[0].1;
            reader.entries(sub).expect("sub")[0].1
        };
        let frozen = freeze_around(&live, &objects, |live| {
            let sub = lookup(live, "d3/sub").expect("sub").ino;
            live.unlink(sub, b"f0").expect("unlink");
            live.commit_now().expect("commit while the freeze encodes");
        });
        // Root, 4 directories with a sub each, 16 files, top; the link and the hard link have
        // no object of their own.
        assert_eq!((frozen.encoded, frozen.root), (26, expected.root));
        assert_eq!(
            tree_dir(&live, &objects, frozen.root, &["d1"]).get("linked"),
            Some(&file(b"0/0"))
        );
        live.commit_now().expect("commit");
        let reader = live.meta.read_namespace().expect("reader");
        assert_eq!(
            reader.frozen(gone).expect("frozen"),
            None,
            "unlinked: no row"
        );
        let persisted = live
            .meta
            .frozen_ids_after(None, usize::MAX)
            .expect("frozen ids");
        // Read two at a time (as gc reads them, in larger batches), the same rows.
        let (mut paged, mut after) = (Vec::new(), None);
        loop {
            let batch = live.meta.frozen_ids_after(after, 2).expect("batch");
            let Some(&(last, _)) = batch.last() else {
                break;
            };
            paged.extend(batch);
            after = Some(last);
        }
        assert_eq!(paged, persisted);
        for (ino, _) in &persisted {
            assert!(reader.inode(*ino).expect("inode").is_some(), "{ino} exists");
        }
        // Everything but the file unlinked, and d3/sub, d3 and the root above it.
        assert_eq!(persisted.len(), 26 - 1 - 3);
        drop(reader);
        drop(objects);
        close(live);

        let live = open(&path);
        let objects = TreeObjects::new(live.chunk_store());
        let again = live.freeze(&objects).expect("freeze after a remount");
        assert_eq!(again.encoded, 3, "d3/sub, d3 and the root");
        // The root, with nothing uncommitted below it, was encoded from the database with
        // everything below it: nothing was loaded.
        assert_eq!(live.tree.read().nodes.len(), 1, "the root alone");
        drop(objects);
        close(live);
    }

    /// A first freeze records and commits what it encodes from the database in batches, while
    /// it encodes. A file changed after its batch was committed (and every directory above it)
    /// loses its row at the next commit, as after any record: the snapshot holds the file as
    /// captured, the freeze's last record keeps none of the directories above it, and the
    /// first freeze after a remount encodes that chain again, with the change.
    #[test]
    fn a_change_after_its_batch_was_recorded_thaws_it_and_what_is_above() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = never_frozen_store(tmp.path());
        let live = open(&path);
        let objects = TreeObjects::new(live.chunk_store());
        let (batch_done, go) = live.pause_after_next_batch();
        let frozen = std::thread::scope(|scope| {
            let freeze = scope.spawn(|| live.freeze(&objects));
            batch_done.recv().expect("the first batch is recorded");
            // The walk begins with d0: its first batch is d0/sub's four files.
            let reader = live.meta.read_namespace().expect("reader");
            let in_db = |path: &str| {
                let ino = lookup(&live, path).expect("in the share").ino;
                reader.frozen(ino).expect("frozen").is_some()
            };
            assert!((0..4).all(|f| in_db(&format!("d0/sub/f{f}"))));
            assert!(!in_db("d0/sub") && !in_db("d1/sub/f0"));
            drop(reader);
            write_file(&live, "d0/sub/f1", b"changed");
            live.commit_now().expect("commit while the freeze encodes");
            go.send(()).expect("resume");
            freeze.join().expect("freeze thread").expect("freeze")
        });
        assert_eq!(frozen.encoded, 26);
        let sub = tree_dir(&live, &objects, frozen.root, &["d0", "sub"]);
        assert_eq!(sub.get("f1"), Some(&file(b"0/1")), "as captured");
        live.commit_now().expect("commit");
        let reader = live.meta.read_namespace().expect("reader");
        for (path, kept) in [
            ("d0/sub/f0", true),
            ("d0/sub/f1", false),
            ("d0/sub", false),
            ("d0", false),
            ("d1/sub", true),
        ] {
            let ino = lookup(&live, path).expect("in the share").ino;
            assert_eq!(
                reader.frozen(ino).expect("frozen").is_some(),
                kept,
                "{path}"
            );
        }
        drop(reader);
        drop(objects);
        close(live);

        let live = open(&path);
        let objects = TreeObjects::new(live.chunk_store());
        let again = live.freeze(&objects).expect("freeze after a remount");
        assert_eq!(again.encoded, 4, "d0/sub/f1, d0/sub, d0 and the root");
        let sub = tree_dir(&live, &objects, again.root, &["d0", "sub"]);
        assert_eq!(sub.get("f1"), Some(&file(b"changed")));
        drop(objects);
        close(live);
    }

    /// The first freeze of a share just written, committed but for one file, copies under its
    /// locks only what is uncommitted and the directories above it: every other directory in
    /// memory has its subtree in the database as it is in memory, and is encoded from there.
    /// The snapshot holds everything, and every inode remembers its object, in memory and,
    /// after the next commit, in the database: after a remount, a freeze encodes nothing.
    #[test]
    fn a_share_just_written_is_copied_only_where_it_is_uncommitted() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (path, live) = committed_but_one_file(tmp.path());
        let objects = TreeObjects::new(live.chunk_store());
        let frozen = live.freeze(&objects).expect("freeze");
        // The root, d2, d2/sub and its four files copied; d0, d1 and d3 by position only.
        assert_eq!((frozen.captured, frozen.encoded), (10, 25));
        for d in 0..4 {
            let sub = tree_dir(&live, &objects, frozen.root, &[&format!("d{d}"), "sub"]);
            for f in 0..4 {
                let expected = match (d, f) {
                    (2, 1) => b"uncommitted".to_vec(),
                    _ => format!("{d}/{f}").into_bytes(),
                };
                assert_eq!(
                    sub.get(&format!("f{f}")),
                    Some(&Some(expected)),
                    "d{d}/sub/f{f}"
                );
            }
        }
        let f3 = lookup(&live, "d0/sub/f3").expect("f3").ino;
        let remembered = live.tree.read().node(f3).expect("in memory").frozen;
        assert!(remembered.is_some(), "in memory, its object remembered");
        live.commit_now().expect("commit");
        drop(objects);
        close(live);

        let live = open(&path);
        let objects = TreeObjects::new(live.chunk_store());
        assert_eq!(live.freeze(&objects).expect("after a remount").encoded, 0);
        drop(objects);
        close(live);
    }

    /// A capture that meets a commit under way waits for it to end, with nothing held that
    /// writers need, instead of copying everything thawed: a write meanwhile returns, is in
    /// the snapshot, and the capture copies only what is uncommitted and above it.
    #[test]
    fn a_capture_waits_for_a_commit_under_way_and_writers_do_not() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (_path, live) = committed_but_one_file(tmp.path());
        let objects = TreeObjects::new(live.chunk_store());
        let wait = std::time::Duration::from_secs(10);
        let (share, objs): (&LiveFs, &TreeObjects) = (&live, &objects);
        let frozen = std::thread::scope(|scope| {
            // What a commit between taking its batch and writing it holds.
            let commit_under_way = share.commits.wait_idle();
            let (done_tx, done) = std::sync::mpsc::channel();
            let freeze = scope.spawn(move || {
                let frozen = share.freeze(objs);
                let _ = done_tx.send(());
                frozen
            });
            assert!(
                done.recv_timeout(std::time::Duration::from_millis(300))
                    .is_err(),
                "the freeze went on while a commit was under way"
            );
            let (wrote_tx, wrote) = std::sync::mpsc::channel();
            scope.spawn(move || {
                write_file(share, "d1/sub/f0", b"while the freeze waited");
                let _ = wrote_tx.send(());
            });
            let written = wrote.recv_timeout(wait);
            drop(commit_under_way);
            assert!(written.is_ok(), "a writer waited for the waiting freeze");
            freeze.join().expect("freeze thread").expect("freeze")
        });
        // The root, d1 and d2 with their subdirectories and files; d0 and d3 by position.
        assert_eq!((frozen.captured, frozen.encoded), (15, 25));
        let d1 = tree_dir(&live, &objects, frozen.root, &["d1", "sub"]);
        assert_eq!(
            d1.get("f0"),
            Some(&Some(b"while the freeze waited".to_vec()))
        );
        let d2 = tree_dir(&live, &objects, frozen.root, &["d2", "sub"]);
        assert_eq!(d2.get("f1"), Some(&Some(b"uncommitted".to_vec())));
        drop(objects);
        close(live);
    }

    /// What each inode froze to outlives a remount: the first freeze after it encodes what
    /// changed, not the share; a change committed before the remount (and one made to a symbolic
    /// link, which has no object of its own) is not lost to a stale object.
    #[test]
    fn frozen_objects_survive_a_remount_and_changes_before_it_thaw_them() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (path, live) = new_store(tmp.path(), "store");
        for d in 0..10 {
            mkdir(&live, &format!("d{d}"));
            for f in 0..10 {
                write_file(&live, &format!("d{d}/f{f}"), format!("{d}/{f}").as_bytes());
            }
        }
        let objects = TreeObjects::new(live.chunk_store());
        let first = live.freeze(&objects).expect("freeze");
        assert_eq!(first.encoded, 111, "everything, the first time");
        live.commit_now().expect("commit");
        drop(objects);
        close(live);

        let live = open(&path);
        let objects = TreeObjects::new(live.chunk_store());
        let again = live.freeze(&objects).expect("freeze after remount");
        assert_eq!(
            (again.encoded, again.root),
            (0, first.root),
            "nothing changed"
        );
        // Changes, committed, then a remount before any freeze: a file's data, and the owner
        // of a symbolic link (which lives in its directory's entry only).
        write_file(&live, "d3/f4", b"changed");
        let link = live
            .make(
                crate::testing::lookup(&live, "d5").expect("d5").ino,
                b"link",
                super::super::create::NewInode::Symlink(b"f0"),
                0o777,
                super::super::Caller { uid: 0, gid: 0 },
            )
            .expect("symlink")
            .ino;
        live.commit_now().expect("commit");
        drop(objects);
        close(live);
        let live = open(&path);
        let objects = TreeObjects::new(live.chunk_store());
        let with_link = live.freeze(&objects).expect("freeze");
        assert_eq!(with_link.encoded, 4, "f4, d3, d5 and the root");
        live.commit_now().expect("commit");
        let change = super::super::attr::SetAttr {
            mode: None,
            uid: Some(1234),
            gid: None,
            size: None,
            atime: None,
            mtime: None,
        };
        live.setattr(link, change).expect("chown the link");
        drop(objects);
        close(live);

        let live = open(&path);
        let objects = TreeObjects::new(live.chunk_store());
        let after = live.freeze(&objects).expect("freeze after the chown");
        assert_eq!(after.encoded, 2, "the link's directory and the root");
        // As a snapshot does: d5, encoded from the database, is loaded with its object then.
        live.commit_now().expect("commit");
        let d5 = crate::testing::lookup(&live, "d5").expect("d5").ino;
        let Some(d5_object) = live.tree.read().node(d5).expect("d5").frozen else {
            panic!("d5 frozen");
        };
        let Ok(Object::Directory(dir)) = objects.get(&d5_object) else {
            panic!("a directory");
        };
        let entry = dir
            .entries
            .iter()
            .find(|e| e.name == b"link")
            .expect("the link");
        assert_eq!(entry.record.uid, 1234, "the new owner is in the snapshot");
        live.commit_now().expect("commit");
        drop(objects);
        close(live);
        let live = open(&path);
        let objects = TreeObjects::new(live.chunk_store());
        assert_eq!(live.freeze(&objects).expect("freeze").encoded, 0);
        drop(objects);
        close(live);
    }

    fn file(data: &[u8]) -> Option<Vec<u8>> {
        Some(data.to_vec())
    }

    /// Runs `during` on another thread while a freeze on this one is paused between its
    /// capture and its encoding, then lets the freeze finish. If `during` were blocked by the
    /// freeze (a lock held past the capture), the test fails after a minute instead of
    /// hanging: the minute is a deadlock detector, not a measurement.
    fn freeze_around(
        live: &Arc<LiveFs>,
        objects: &TreeObjects,
        during: impl FnOnce(&LiveFs) + Send,
    ) -> Frozen {
        let (captured, go) = live.pause_next_freeze();
        std::thread::scope(|scope| {
            let freeze = scope.spawn(|| live.freeze(objects));
            captured.recv().expect("the freeze captured");
            let (done, finished) = std::sync::mpsc::channel();
            scope.spawn(move || {
                during(live);
                done.send(()).expect("report");
            });
            finished
                .recv_timeout(std::time::Duration::from_secs(60))
                .expect("changes made while the freeze encodes were not blocked by it");
            go.send(()).expect("resume");
            freeze.join().expect("freeze thread").expect("freeze")
        })
    }

    /// While a freeze is between its capture and its record (encoding, with nothing locked),
    /// a write, a create, a rename and an unlink all complete; the snapshot holds the share as
    /// captured, without any of them; the next freeze holds them all.
    #[test]
    fn writers_are_not_blocked_while_a_freeze_encodes_and_stay_out_of_it() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (_store, live) = new_store(tmp.path(), "store");
        let objects = TreeObjects::new(live.chunk_store());
        mkdir(&live, "d");
        write_file(&live, "d/a", b"a before");
        write_file(&live, "d/b", b"b");
        write_file(&live, "d/gone", b"gone");
        write_file(&live, "other", b"other");
        let first = freeze_around(&live, &objects, |live| {
            write_file(live, "d/a", b"a after the capture");
            write_file(live, "d/new", b"new");
            let d = lookup(live, "d").expect("d").ino;
            live.rename(d, b"b", InodeNo::ROOT, b"b2", RenameMode::Replace)
                .expect("rename");
            live.unlink(d, b"gone").expect("unlink");
        });
        let captured: BTreeMap<String, Option<Vec<u8>>> = [
            ("a".to_owned(), file(b"a before")),
            ("b".to_owned(), file(b"b")),
            ("gone".to_owned(), file(b"gone")),
        ]
        .into_iter()
        .collect();
        assert_eq!(tree_dir(&live, &objects, first.root, &["d"]), captured);
        let root = tree_dir(&live, &objects, first.root, &[]);
        assert!(root.contains_key("other") && !root.contains_key("b2"));
        // What changed after the capture was not recorded as frozen: d and the root stay
        // thawed, other kept its object.
        {
            let tree = live.tree.read();
            let d = lookup(&live, "d").expect("d").ino;
            assert!(tree.node(d).expect("d").frozen.is_none());
            assert!(tree.node(InodeNo::ROOT).expect("root").frozen.is_none());
        }
        live.assert_consistent();

        let next = live.freeze(&objects).expect("next freeze");
        let now: BTreeMap<String, Option<Vec<u8>>> = [
            ("a".to_owned(), file(b"a after the capture")),
            ("new".to_owned(), file(b"new")),
        ]
        .into_iter()
        .collect();
        assert_eq!(tree_dir(&live, &objects, next.root, &["d"]), now);
        let root = tree_dir(&live, &objects, next.root, &[]);
        assert_eq!(root.get("b2"), Some(&file(b"b")));
        assert_eq!(root.get("other"), Some(&file(b"other")));
        let again = live.freeze(&objects).expect("unchanged");
        assert_eq!((again.encoded, again.root), (0, next.root));
    }

    /// The trap of recording after the locks were let go: a change below a captured directory
    /// made while the freeze encodes must not leave that directory's captured (now stale)
    /// object persisted, whether a commit ran in between (it removed the persisted objects
    /// above the change, which the record must not put back) or not. After a remount, a
    /// freeze holds the change. Covers a write, a truncate, an unlink, a rename in, and a
    /// write through a second hard link in another captured directory. Each also with a share
    /// never frozen, remounted or still in memory, whose directories the freeze encodes from
    /// the database (`encode_committed`) while the change loads (or finds) and changes them.
    #[test]
    fn a_change_while_a_freeze_encodes_is_in_the_next_snapshot_after_a_remount() {
        type Change = fn(&LiveFs);
        let changes: [(&str, Change, &str, Option<Vec<u8>>); 5] = [
            (
                "write",
                |live| {
                    write_file(live, "top/sub/f", b"changed");
                },
                "f",
                file(b"changed"),
            ),
            (
                "truncate",
                |live| {
                    let f = lookup(live, "top/sub/f").expect("f").ino;
                    let size = SetAttr {
                        mode: None,
                        uid: None,
                        gid: None,
                        size: Some(2),
                        atime: None,
                        mtime: None,
                    };
                    live.setattr(f, size).expect("truncate");
                },
                "f",
                file(b"ol"),
            ),
            (
                "unlink",
                |live| {
                    let sub = lookup(live, "top/sub").expect("sub").ino;
                    live.unlink(sub, b"f").expect("unlink");
                },
                "f",
                None,
            ),
            (
                "rename in",
                |live| {
                    let sub = lookup(live, "top/sub").expect("sub").ino;
                    live.rename(InodeNo::ROOT, b"outside", sub, b"in", RenameMode::Replace)
                        .expect("rename");
                },
                "in",
                file(b"outside"),
            ),
            (
                "write through a link",
                |live| {
                    write_file(live, "linked/f", b"through the other link");
                },
                "f",
                file(b"through the other link"),
            ),
        ];
        // (commit between, never frozen, remounted before the freeze): a share never frozen
        // and not remounted is in memory and committed, encoded from the database all the same.
        for (commit_between, never_frozen, remounted) in [
            (true, false, false),
            (false, false, false),
            (true, true, true),
            (false, true, true),
            (true, true, false),
            (false, true, false),
        ] {
            for (what, change, name, expected) in &changes {
                let tmp = tempfile::tempdir().expect("tempdir");
                let (path, mut live) = new_store(tmp.path(), "store");
                mkdir(&live, "top");
                mkdir(&live, "top/sub");
                mkdir(&live, "linked");
                let f = write_file(&live, "top/sub/f", b"old");
                live.link(f, lookup(&live, "linked").expect("linked").ino, b"f")
                    .expect("link");
                write_file(&live, "outside", b"outside");
                if never_frozen {
                    write_file(&live, "top/sub/g", b"g");
                    live.commit_now().expect("commit");
                    if remounted {
                        close(live);
                        live = open(&path);
                    }
                }
                let objects = TreeObjects::new(live.chunk_store());
                if !never_frozen {
                    live.freeze(&objects).expect("freeze");
                    live.commit_now().expect("commit");
                    // A change before the freeze, so that it captures sub, top and the root.
                    write_file(&live, "top/sub/g", b"g");
                }
                freeze_around(&live, &objects, |live| {
                    change(live);
                    if commit_between {
                        live.commit_now().expect("commit while the freeze encodes");
                    }
                });
                live.commit_now().expect("commit");
                drop(objects);
                close(live);

                let live = open(&path);
                let objects = TreeObjects::new(live.chunk_store());
                let after = live.freeze(&objects).expect("freeze after the remount");
                let sub = tree_dir(&live, &objects, after.root, &["top", "sub"]);
                assert_eq!(
                    sub.get(*name),
                    expected.is_some().then_some(expected),
                    "{what}, commit between: {commit_between}, never frozen: {never_frozen}, \
                     remounted: {remounted}"
                );
                assert_eq!(sub.get("g"), Some(&file(b"g")), "{what}");
                drop(objects);
                close(live);
            }
        }
    }

    /// A commit while a freeze encodes writes the changes the capture took: it must remove
    /// the persisted frozen objects they made stale (the changed file and every directory
    /// above it) in the same transaction, or a crash before the freeze's record is committed
    /// would leave the old objects trusted with the new data. The record's commit then
    /// persists the new ones.
    #[test]
    fn a_commit_while_a_freeze_encodes_removes_what_the_capture_made_stale() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (_store, live) = new_store(tmp.path(), "store");
        let objects = TreeObjects::new(live.chunk_store());
        let d = mkdir(&live, "d");
        let f = write_file(&live, "d/f", b"old");
        write_file(&live, "other", b"other");
        live.freeze(&objects).expect("freeze");
        live.commit_now().expect("commit");
        let persisted = |live: &LiveFs, ino: InodeNo| {
            live.meta
                .read_namespace()
                .expect("reader")
                .frozen(ino)
                .expect("frozen")
        };
        let other = lookup(&live, "other").expect("other").ino;
        assert!(persisted(&live, f).is_some() && persisted(&live, other).is_some());
        write_file(&live, "d/f", b"new");
        let frozen = freeze_around(&live, &objects, |live| {
            live.commit_now().expect("commit while the freeze encodes");
            for ino in [f, d, InodeNo::ROOT] {
                assert_eq!(persisted(live, ino), None, "{ino} is not trusted any more");
            }
            assert!(persisted(live, other).is_some(), "unchanged: kept");
        });
        live.commit_now().expect("commit");
        let tree = live.tree.read();
        for ino in [f, d, InodeNo::ROOT] {
            let node = tree.node(ino).expect("node");
            assert!(node.frozen.is_some(), "{ino} recorded");
            assert_eq!(persisted(&live, ino), node.frozen, "{ino} persisted");
        }
        drop(tree);
        assert_eq!(
            tree_dir(&live, &objects, frozen.root, &["d"]).get("f"),
            Some(&file(b"new"))
        );
    }

    /// The capture copies buffered blocks rather than storing them under the locks. The copy
    /// is what the snapshot holds, whatever is written to the block afterwards; stored after
    /// the capture, it is handed back to the file if the block did not change since (no second
    /// hashing), and left alone if it did.
    #[test]
    fn buffered_blocks_are_copied_at_the_capture_and_stored_once() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (path, live) = new_store(tmp.path(), "store");
        let objects = TreeObjects::new(live.chunk_store());
        let (kept, kept_fh) = live
            .create(InodeNo::ROOT, b"kept", 0o644, ROOT)
            .expect("create");
        let (moved, moved_fh) = live
            .create(InodeNo::ROOT, b"moved", 0o644, ROOT)
            .expect("create");
        // Partial blocks: buffered until sealed.
        live.write(kept_fh, 0, b"kept as captured").expect("write");
        live.write(moved_fh, 0, b"first").expect("write");
        let content = |ino: InodeNo| {
            live.tree
                .read()
                .node(ino)
                .expect("file")
                .content
                .clone()
                .expect("content")
        };
        assert!(content(kept.ino).lock().has_buffers());
        let capture = live.capture(live.commits.wait_idle()).expect("capture");
        live.write(moved_fh, 0, b"SECOND")
            .expect("write after the capture");
        let inos: Vec<InodeNo> = capture.items.iter().map(Captured::ino).collect();
        let loads = capture.loads;
        let Encoded {
            root: (root, _),
            ids,
            below,
            ..
        } = live.encode(capture, &objects).expect("encode");
        live.record(inos.into_iter().zip(ids).collect(), below, loads);
        let snapshot = tree_dir(&live, &objects, root, &[]);
        assert_eq!(snapshot.get("kept"), Some(&file(b"kept as captured")));
        assert_eq!(snapshot.get("moved"), Some(&file(b"first")));
        assert!(
            !content(kept.ino).lock().has_buffers(),
            "the stored copy was handed back"
        );
        assert!(
            content(moved.ino).lock().has_buffers(),
            "a block changed after the capture keeps its buffer"
        );
        live.release(kept_fh).expect("release");
        live.release(moved_fh).expect("release");
        assert!(read_file(&live, "moved") == b"SECOND");
        live.commit_now().expect("commit");
        drop(objects);
        close(live);
        let live = open(&path);
        assert!(read_file(&live, "kept") == b"kept as captured");
        assert!(read_file(&live, "moved") == b"SECOND");
        close(live);
    }

    /// A freeze holds the freeze lock from its capture to its record, which a gc takes to
    /// mark (`hold_freezes`): a collection never marks while captured objects are unrecorded.
    #[test]
    fn the_freeze_lock_is_held_while_a_freeze_encodes() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (_store, live) = new_store(tmp.path(), "store");
        let objects = TreeObjects::new(live.chunk_store());
        write_file(&live, "f", b"f");
        freeze_around(&live, &objects, |live| {
            assert!(live.freezing.try_lock().is_none());
        });
        assert!(live.freezing.try_lock().is_some());
    }

    /// A freeze that would copy a directory of more than `COPY_AT_MOST` entries, changed and
    /// not committed, commits first and encodes it from the database with nothing locked; a
    /// small directory changed is copied, with no commit. Both snapshots hold the change.
    #[test]
    fn a_big_directory_changed_is_committed_before_the_capture() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (_path, live) = new_store(tmp.path(), "store");
        let objects = TreeObjects::new(live.chunk_store());
        let big = mkdir(&live, "big");
        for i in 0..=COPY_AT_MOST {
            write_in(&live, big, format!("f{i:05}").as_bytes(), b"x");
        }
        let small = mkdir(&live, "small");
        live.commit_now().expect("commit");
        live.freeze(&objects).expect("first freeze");

        write_in(&live, big, b"new", b"new");
        let asked = live.commits_asked();
        let frozen = live.freeze(&objects).expect("freeze");
        assert_eq!(live.commits_asked(), asked + 1, "committed first");
        let listed = tree_dir(&live, &objects, frozen.root, &["big"]);
        assert_eq!(listed.len(), COPY_AT_MOST + 2);
        assert_eq!(listed.get("new"), Some(&file(b"new")));

        write_in(&live, small, b"new", b"new");
        let asked = live.commits_asked();
        let frozen = live.freeze(&objects).expect("freeze");
        assert_eq!(live.commits_asked(), asked, "copied, no commit");
        let listed = tree_dir(&live, &objects, frozen.root, &["small"]);
        assert_eq!(listed.get("new"), Some(&file(b"new")));
        drop(objects);
        close(live);
    }
}
