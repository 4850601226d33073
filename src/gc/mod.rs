//! Garbage collection: mark every chunk the live share or a snapshot still uses, sweep the
//! rest from the index, then compact packs that are mostly garbage.
//!
//! A collection is planned from a consistent cut and executed so that concurrent writers are
//! never hurt:
//! 1. snapshot creates and deletes wait (the catalog cannot change under the marking);
//! 2. the chunk store starts recording chunks that writers reuse (`begin_gc`), then everything
//!    is committed;
//! 3. marking: the committed block maps, every block map in memory, every object reachable
//!    from a snapshot root, and every object a live inode froze to (the next snapshot reuses
//!    those of unchanged inodes);
//! 4. sweep: index entries that were neither marked nor reused meanwhile are removed, in one
//!    transaction, while dedup checks wait;
//! 5. compaction: a sealed pack whose live frames fill less than half of it has them copied to
//!    the active pack; once that move is committed, the pack is forgotten and deleted.
//!
//! The space accounting (`meta::accounting`) forgets the swept chunks in the sweep's
//! transaction, so a collection costs the accounting what it sweeps.
//!
//! A crash at any point leaves garbage at worst, never a reference to a removed chunk: removal
//! (4) and the move (5) are each one durable transaction, and a pack file is deleted only after
//! no committed index entry names it.

pub mod usage;

use std::collections::{BTreeMap, HashSet};

use crate::chunk_store::ChunkStoreError;
use crate::id::{ChunkId, PackId};
use crate::live::FsError;
use crate::meta::accounting::{AccountingError, Ledger};
use crate::progress::{Progress, Unit};
use crate::snapshot::Snapshots;
pub use crate::tree_objects::walk_tree;

/// A pack is rewritten when its live frames fill less than this share of it.
const COMPACT_BELOW: f64 = 0.5;

/// Why a collection stopped (it removed nothing it had not marked garbage).
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error("chunk store: {0}")]
    Chunks(#[from] ChunkStoreError),
    #[error("cannot commit the share: {0}")]
    Live(#[from] FsError),
    #[error("metadata: {0}")]
    Meta(String),
    #[error(transparent)]
    Accounting(#[from] AccountingError),
}

impl From<crate::meta::MetaError> for GcError {
    fn from(err: crate::meta::MetaError) -> Self {
        GcError::Meta(err.to_string())
    }
}

/// What a collection did.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct GcReport {
    pub chunks_marked: u64,
    pub chunks_removed: u64,
    pub packs_rewritten: u64,
    /// Bytes of pack files deleted, less the bytes their live frames took in the active pack.
    pub bytes_freed: u64,
    /// Chunks that failed verification while being moved (left where they were, reported).
    pub damaged: Vec<String>,
}

/// Every chunk in use by the live share or a snapshot. Call with the chunk store recording
/// reuse (`LiveFs::begin_gc`).
pub fn mark(snapshots: &Snapshots, progress: &Progress) -> Result<HashSet<ChunkId>, GcError> {
    let live = snapshots.live();
    live.commit_now()?;
    let mut marked = HashSet::new();
    live.mark_in_memory(&mut marked);
    for chunk in live
        .committed_block_chunks()
        .map_err(|e| GcError::Meta(e.to_string()))?
    {
        marked.insert(chunk);
    }
    let roots = snapshots.roots_in_use();
    progress.stage("marking trees", Unit::Items, Some(roots.len() as u64));
    for root in roots {
        walk_tree(snapshots.objects(), root, &mut |id| marked.insert(id))?;
        progress.add(1);
    }
    // After the snapshots: what the live share froze to last is mostly their objects, so
    // most of these walks stop at once.
    live.for_each_frozen_object(|object| -> Result<(), GcError> {
        walk_tree(snapshots.objects(), object, &mut |id| marked.insert(id))?;
        Ok(())
    })?;
    Ok(marked)
}

/// Runs a whole collection.
pub fn collect(snapshots: &Snapshots, progress: &Progress) -> Result<GcReport, GcError> {
    let catalog = snapshots.hold_catalog();
    // A deleted newest snapshot's tree, kept for the accounting's next diff, goes now, so
    // that this collection reclaims what only it held.
    if let Err(err) = snapshots.retire_deleted_newest(&catalog) {
        tracing::warn!("the deleted newest snapshot's tree is kept: {err}");
    }
    let live = snapshots.live();
    let chunks = live.chunk_store();
    // No freeze is between its capture and its record while this marks: the objects it has
    // put and the chunks its captured block maps name are in use before anything names them.
    // (A snapshot's freeze is kept out by the catalog, held above; this is for the freezes
    // that record no snapshot.) A freeze that captures after the marking names only chunks
    // in use since `begin_gc`, which the sweep keeps.
    let no_freeze = live.hold_freezes();
    live.begin_gc();
    // The pack being appended to becomes compactable like any other.
    chunks.seal_active_pack();
    let result = (|| -> Result<GcReport, GcError> {
        let candidates = chunks.committed_chunks()?;
        let marked = mark(snapshots, progress)?;
        drop(no_freeze);
        let garbage: Vec<ChunkId> = candidates
            .iter()
            .map(|(id, _)| *id)
            .filter(|id| !marked.contains(id))
            .collect();
        // The accounting forgets what is swept in the sweep's own transaction.
        let removed: HashSet<ChunkId> = chunks
            .sweep(&garbage, |txn, gone| -> Result<(), GcError> {
                let account = || -> Result<(), AccountingError> {
                    if let Some(mut ledger) = Ledger::open(txn)? {
                        ledger.swept(gone)?;
                        ledger.finish()?;
                    }
                    Ok(())
                };
                account().map_err(GcError::Accounting)
            })?
            .into_iter()
            .collect();
        let mut report = GcReport {
            chunks_marked: marked.len() as u64,
            chunks_removed: removed.len() as u64,
            ..GcReport::default()
        };
        // Compaction plan. The packs come first: a sealed pack with no frame in flight and no
        // uncommitted chunk can gain no entry, so the index read after it lists every chunk
        // still in it (some were committed after `candidates` was read).
        let sealed = chunks.sealed_packs();
        let mut live_frames: BTreeMap<PackId, Vec<_>> = BTreeMap::new();
        for (id, location) in chunks.committed_chunks()? {
            live_frames
                .entry(location.pack)
                .or_default()
                .push((id, location));
        }
        let mut compact = Vec::new();
        for (pack, size) in sealed {
            let frames = live_frames.remove(&pack).unwrap_or_default();
            let live_bytes: u64 = frames.iter().map(|(_, l)| u64::from(l.frame_len)).sum();
            if size > 0 && (live_bytes as f64) < size as f64 * COMPACT_BELOW {
                compact.push((pack, frames, live_bytes));
            }
        }
        let moving = compact.iter().map(|(_, _, live_bytes)| live_bytes).sum();
        progress.stage("compacting packs", Unit::Bytes, Some(moving));
        for (pack, frames, live_bytes) in compact {
            let damaged = chunks.relocate(&frames)?;
            progress.add(live_bytes);
            if !damaged.is_empty() {
                // Keep the pack: its damaged chunks are still referenced from it.
                report.damaged.extend(damaged.iter().map(|id| id.to_hex()));
                continue;
            }
            live.commit_now()?;
            let deleted = chunks.drop_pack(pack)?;
            report.packs_rewritten += 1;
            report.bytes_freed += deleted.saturating_sub(live_bytes);
        }
        Ok(report)
    })();
    chunks.end_gc();
    // What the marking took (a set of every chunk in use) goes back to the system.
    crate::heap::give_back_freed();
    let report = result?;
    tracing::info!(
        removed = report.chunks_removed,
        packs = report.packs_rewritten,
        bytes = report.bytes_freed,
        "garbage collection done"
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::catalog::Origin;
    use crate::id::InodeNo;
    use crate::snapshot::DeleteMode;
    use crate::testing::{
        DEEP, chain, chain_bottom, new_store, on_small_stack, read_in, snapshots_of, write_in,
    };

    #[test]
    fn a_deep_tree_is_marked_accounted_and_snapshotted_again() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (_store, live) = new_store(tmp.path(), "store");
        let snapshots = snapshots_of(&live);
        let bottom = chain(&live, InodeNo::ROOT, b"dir", DEEP);
        write_in(&live, bottom, b"leaf", b"first");
        snapshots.create("s1", Origin::Manual).expect("snapshot");
        write_in(&live, bottom, b"leaf", b"second");
        // The accounting's diff of s1's tree against s2's goes down the whole chain.
        on_small_stack(|| snapshots.create("s2", Origin::Manual)).expect("snapshot");
        snapshots.delete("s1", DeleteMode::Now).expect("delete");

        let report = on_small_stack(|| collect(&snapshots, &Progress::new())).expect("gc");
        assert!(report.chunks_marked > DEEP as u64, "{report:?}");
        assert!(
            report.chunks_removed >= DEEP as u64,
            "s1's directory objects went: {report:?}"
        );
        let usage = on_small_stack(|| usage::usage(&snapshots)).expect("usage");
        assert_eq!(usage.reclaimable_bytes, 0);
        let walked = on_small_stack(|| usage::full_walk(&snapshots)).expect("full walk");
        assert_eq!(usage, walked);
        // A collection keeps what the chain froze to (s2's objects): the next snapshot reuses
        // them, and they still read.
        let s3 =
            on_small_stack(|| snapshots.create("s3", Origin::Manual)).expect("snapshot after gc");
        assert_eq!(
            s3.root,
            snapshots.get("s2").expect("s2").root,
            "nothing re-encoded"
        );
        let bottom = chain_bottom(&live, InodeNo::ROOT, b"dir", DEEP);
        assert_eq!(read_in(&live, bottom, b"leaf"), b"second");
        let report = on_small_stack(|| collect(&snapshots, &Progress::new())).expect("gc again");
        assert_eq!(report.chunks_removed, 0, "{report:?}");
    }
}
