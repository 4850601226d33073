//! The snapshot side of incremental space accounting (`meta::accounting`): how the references
//! of a new snapshot's tree differ from those of the previous newest tree, and the one full
//! rebuild of the tables for a store that has none (or whose tables went stale).
//!
//! References are counted with multiplicity: a chunk named by two files counts twice, so that
//! removing one of them does not make it leave the snapshot. The diff pairs the two trees
//! position by position (entry name, segment number, block index) and skips every pair of
//! equal ids unread, so it costs what changed; it keeps its own stack (trees are as deep as
//! users make them).

use std::collections::{BTreeMap, HashMap};

use redb::{ReadableTable, WriteTransaction};

use crate::chunk_store::ChunkStoreError;
use crate::format::catalog::SnapshotRecord;
use crate::format::object::{Object, ObjectId};
use crate::format::usage::{ChunkUsage, Class, OPEN};
use crate::id::ChunkId;
use crate::meta::accounting::{self, AccountingError, Rebuilt, States};
use crate::tree_objects::TreeObjects;

/// One side of a pair being compared: an object (decoded to find what it names) or a data
/// chunk (a leaf, never read).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Node {
    Object(ObjectId),
    Data(ChunkId),
}

/// The children of one object, keyed by their position in it.
enum Children {
    Directory(BTreeMap<Vec<u8>, ObjectId>),
    File(BTreeMap<u64, ObjectId>),
    Segment(BTreeMap<u16, ChunkId>),
    None,
}

fn children(object: Object) -> Children {
    match object {
        Object::Directory(dir) => Children::Directory(
            dir.entries
                .into_iter()
                .filter_map(|e| Some((e.name, e.object?)))
                .collect(),
        ),
        Object::File(file) => Children::File(file.segments.into_iter().collect()),
        Object::Segment(segment) => Children::Segment(segment.blocks.into_iter().collect()),
        Object::Multipart(_) => Children::None,
    }
}

/// Pairs the entries of two sorted maps by key; either side may be missing.
fn merge<K: Ord, V: Copy>(
    old: BTreeMap<K, V>,
    new: BTreeMap<K, V>,
    wrap: impl Fn(V) -> Node,
    out: &mut Vec<(Option<Node>, Option<Node>)>,
) {
    let mut new = new;
    for (key, old_value) in old {
        let new_value = new.remove(&key);
        out.push((Some(wrap(old_value)), new_value.map(&wrap)));
    }
    for (_, new_value) in new {
        out.push((None, Some(wrap(new_value))));
    }
}

/// The change in references per chunk from tree `old` to tree `new` (either may be none).
pub fn reference_deltas(
    objects: &TreeObjects,
    old: Option<ObjectId>,
    new: Option<ObjectId>,
) -> Result<HashMap<ChunkId, i64>, ChunkStoreError> {
    let mut deltas: HashMap<ChunkId, i64> = HashMap::new();
    let mut pending = vec![(old.map(Node::Object), new.map(Node::Object))];
    while let Some((a, b)) = pending.pop() {
        if a == b {
            continue;
        }
        let mut expand = |node: Option<Node>, sign: i64| -> Result<Children, ChunkStoreError> {
            match node {
                None => Ok(Children::None),
                Some(Node::Data(id)) => {
                    *deltas.entry(id).or_default() += sign;
                    Ok(Children::None)
                }
                Some(Node::Object(id)) => {
                    let (object, parts) = objects.get_with_parts(&id)?;
                    for chunk in std::iter::once(id).chain(parts) {
                        *deltas.entry(chunk).or_default() += sign;
                    }
                    Ok(children(object))
                }
            }
        };
        let old_children = expand(a, -1)?;
        let new_children = expand(b, 1)?;
        match (old_children, new_children) {
            (Children::Directory(x), Children::Directory(y)) => {
                merge(x, y, Node::Object, &mut pending)
            }
            (Children::File(x), Children::File(y)) => merge(x, y, Node::Object, &mut pending),
            (Children::Segment(x), Children::Segment(y)) => merge(x, y, Node::Data, &mut pending),
            // Different kinds (or one side absent): nothing to pair.
            (x, y) => {
                for (side, children) in [(true, x), (false, y)] {
                    let mut list = Vec::new();
                    match children {
                        Children::Directory(c) => {
                            merge(c, BTreeMap::new(), Node::Object, &mut list)
                        }
                        Children::File(c) => merge(c, BTreeMap::new(), Node::Object, &mut list),
                        Children::Segment(c) => merge(c, BTreeMap::new(), Node::Data, &mut list),
                        Children::None => {}
                    }
                    for (node, _) in list {
                        pending.push(if side { (node, None) } else { (None, node) });
                    }
                }
            }
        }
    }
    deltas.retain(|_, delta| *delta != 0);
    Ok(deltas)
}

/// Recomputes every accounting table from the catalog, the block maps and the trees, inside
/// `txn` (whose other writers are thereby kept out, so the block maps read are the ones the
/// tables then describe). Costs the oldest snapshot's tree, what each later one changed, the
/// block maps and the index: done once per store, and whenever the tables were found
/// inconsistent.
pub fn rebuild(
    txn: &WriteTransaction,
    objects: &TreeObjects,
    active: &[(String, SnapshotRecord)],
    deleted: &[(String, SnapshotRecord)],
) -> Result<(), RebuildError> {
    let mut states = States::default();
    let mut existing: Vec<(u64, ObjectId)> = Vec::new();
    for (_, record) in active {
        states.listed.insert(record.number);
        existing.push((record.number, record.root));
    }
    for (_, record) in deleted {
        states.deleted.insert(record.number);
        existing.push((record.number, record.root));
    }
    existing.sort_by_key(|(number, _)| *number);

    // Intervals over the existing snapshots: a chunk in consecutive existing snapshots stays in
    // one interval (the numbers between them belong to no snapshot any more). Each snapshot is
    // diffed against the one before it, so a subtree they share is not read again: the walk
    // costs the first tree and then what changed, where walking every tree whole cost the
    // snapshots times the data. `refs` is what the previous tree names, with multiplicity; a
    // chunk is in a snapshot while it is above zero.
    let mut records: HashMap<ChunkId, ChunkUsage> = HashMap::new();
    let mut refs: HashMap<ChunkId, u64> = HashMap::new();
    let mut previous = None;
    for (number, root) in &existing {
        for (id, delta) in reference_deltas(objects, previous, Some(*root))? {
            let before = refs.get(&id).copied().unwrap_or(0);
            let after = before.saturating_add_signed(delta);
            if after == 0 {
                refs.remove(&id);
            } else {
                refs.insert(id, after);
            }
            let record = records.entry(id).or_insert_with(|| ChunkUsage {
                size: 0,
                newest_refs: 0,
                class: Class::Free,
                intervals: Vec::new(),
            });
            if before == 0 && after > 0 {
                record.intervals.push((*number, OPEN));
            } else if before > 0
                && after == 0
                && let Some(last) = record.intervals.last_mut()
            {
                last.1 = *number;
            }
        }
        previous = Some(*root);
    }
    // What is left is the newest tree's references.
    for (id, count) in refs {
        if let Some(record) = records.get_mut(&id) {
            record.newest_refs = count;
        }
    }
    let newest = existing.last().copied();

    let mut live_refs: HashMap<ChunkId, u64> = HashMap::new();
    for id in crate::meta::block_chunks_in(txn)? {
        *live_refs.entry(id).or_default() += 1;
    }
    let mut stored = 0u64;
    let mut live_sizes = HashMap::new();
    {
        let index = txn
            .open_table(crate::chunk_store::index::CHUNKS)
            .map_err(AccountingError::from)?;
        for entry in index.iter().map_err(AccountingError::from)? {
            let (id, value) = entry.map_err(AccountingError::from)?;
            let id = ChunkId(*id.value());
            let len = crate::format::location::ChunkLocation::decode(value.value())
                .map_or(0, |l| l.frame_len);
            stored += u64::from(len);
            if let Some(record) = records.get_mut(&id) {
                record.size = len;
            } else if live_refs.contains_key(&id) {
                live_sizes.insert(id, len);
            }
        }
    }
    accounting::replace(
        txn,
        Rebuilt {
            records,
            live_refs,
            states,
            newest,
            live_sizes,
            stored,
        },
    )?;
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("cannot read a snapshot tree: {0}")]
    Chunks(#[from] ChunkStoreError),
    #[error(transparent)]
    Accounting(#[from] AccountingError),
    #[error(transparent)]
    Meta(#[from] crate::meta::MetaError),
}
