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
//! 4. sweep: the index as it was before the marking is read through, and entries that were
//!    neither marked nor reused meanwhile are removed, in transactions of up to
//!    [`SWEEP_BATCH`], each while dedup checks wait;
//! 5. compaction: a sealed pack whose live frames fill less than half of it has them copied to
//!    the active pack; once that move is committed, the pack is forgotten and deleted.
//!
//! Memory: the marked set keeps the walk's part of the metadata budget in memory and spills
//! the rest to a scratch file (`storage::spill_set`); the index is read through, never held;
//! a sweep batch and the frames of the packs moved at once are bounded. So a collection of any
//! store takes bounded memory, and one that fits its budget never touches the scratch file.
//!
//! The space accounting (`meta::accounting`) forgets the swept chunks in the sweep's
//! transaction, so a collection costs the accounting what it sweeps.
//!
//! A crash at any point leaves garbage at worst, never a reference to a removed chunk: removal
//! (4) and the move (5) are each one durable transaction, and a pack file is deleted only after
//! no committed index entry names it.

pub mod usage;

use std::collections::HashMap;

use crate::chunk_store::{ChunkStore, ChunkStoreError};
use crate::format::location::ChunkLocation;
use crate::id::{ChunkId, PackId};
use crate::live::{FsError, LiveFs};
use crate::meta::accounting::{AccountingError, Ledger};
use crate::progress::{Progress, Unit};
use crate::snapshot::Snapshots;
use crate::storage::spill_set::{SpillError, SpillSet};
pub use crate::tree_objects::{try_walk_tree, walk_tree};

/// A pack is rewritten when its live frames fill less than this share of it.
const COMPACT_BELOW: f64 = 0.5;

/// Garbage chunks removed per sweep transaction (32 bytes of memory each). Small in unit
/// tests, so that theirs sweep in several.
#[cfg(not(test))]
const SWEEP_BATCH: usize = 65_536;
#[cfg(test)]
const SWEEP_BATCH: usize = 100;

/// Memory a frame to move takes in a compaction's list (an id and its location).
const FRAME_BYTES: u64 = 64;

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
    #[error("marking: {0}")]
    Marking(#[from] SpillError),
}

impl From<crate::meta::MetaError> for GcError {
    fn from(err: crate::meta::MetaError) -> Self {
        GcError::Meta(err.to_string())
    }
}

/// What a collection did.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct GcReport {
    /// Chunks in the index found in use.
    pub chunks_marked: u64,
    pub chunks_removed: u64,
    pub packs_rewritten: u64,
    /// Bytes of pack files deleted, less the bytes their live frames took in the active pack.
    pub bytes_freed: u64,
    /// Chunks that failed verification while being moved (left where they were, reported).
    pub damaged: Vec<String>,
}

/// Every chunk in use by the live share or a snapshot, in a set within the walk's part of the
/// metadata budget (past it, on disk). Call with the chunk store recording reuse
/// (`LiveFs::begin_gc`).
pub fn mark(snapshots: &Snapshots, progress: &Progress) -> Result<SpillSet, GcError> {
    let live = snapshots.live();
    live.commit_now()?;
    let mut marked = SpillSet::new(live.store_dir(), live.metadata_budget().walk());
    // Whether a chunk was marked before matters only for an object: a walk skips the subtree
    // of one it has seen.
    let mut mark = |id: ChunkId, object: bool| -> Result<bool, GcError> {
        Ok(match object {
            true => marked.insert(&id.0)?,
            false => {
                marked.add(&id.0);
                true
            }
        })
    };
    live.for_each_chunk_in_memory(|id| mark(id, false).map(drop))?;
    live.for_each_committed_block_chunk(|id| mark(id, false).map(drop))?;
    let roots = snapshots.roots_in_use();
    progress.stage("marking trees", Unit::Items, Some(roots.len() as u64));
    for root in roots {
        try_walk_tree(snapshots.objects(), root, &mut mark)?;
        progress.add(1);
    }
    // After the snapshots: what the live share froze to last is mostly their objects, so
    // most of these walks stop at once.
    live.for_each_frozen_object(|object| try_walk_tree(snapshots.objects(), object, &mut mark))?;
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
        let candidates = chunks.committed_index()?;
        let marked = mark(snapshots, progress)?;
        drop(no_freeze);
        let mut report = GcReport::default();
        let mut garbage = Vec::new();
        // The index is read in the order of chunk ids, so the marked set is read alongside.
        let mut is_marked = marked.ascending();
        candidates.for_each(|id, _| -> Result<(), GcError> {
            if is_marked.contains(&id.0)? {
                report.chunks_marked += 1;
                return Ok(());
            }
            garbage.push(id);
            if garbage.len() == SWEEP_BATCH {
                report.chunks_removed += sweep(&chunks, &garbage)?;
                garbage.clear();
            }
            Ok(())
        })?;
        report.chunks_removed += sweep(&chunks, &garbage)?;
        drop(is_marked);
        if marked.spills() > 0 {
            tracing::info!(
                chunks = report.chunks_marked,
                spills = marked.spills(),
                "the marking outgrew its memory and used a scratch file"
            );
        }
        drop(marked);
        drop(candidates);
        compact(live, progress, &mut report)?;
        Ok(report)
    })();
    chunks.end_gc();
    // What the marking took goes back to the system.
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

/// Removes the chunks of `garbage` that no writer reused meanwhile, in one durable transaction
/// that also takes them out of the accounting; returns how many went.
fn sweep(chunks: &ChunkStore, garbage: &[ChunkId]) -> Result<u64, GcError> {
    if garbage.is_empty() {
        return Ok(0);
    }
    let removed = chunks.sweep(garbage, |txn, gone| -> Result<(), GcError> {
        let account = || -> Result<(), AccountingError> {
            if let Some(mut ledger) = Ledger::open(txn)? {
                ledger.swept(gone)?;
                ledger.finish()?;
            }
            Ok(())
        };
        account().map_err(GcError::Accounting)
    })?;
    Ok(removed.len() as u64)
}

/// Rewrites each sealed pack whose live frames fill less than half of it.
///
/// The packs come first: a sealed pack with no frame in flight and no uncommitted chunk can
/// gain no entry, so an index read after it lists every chunk still in it. The index is read
/// once to sum each pack's live frames, then once for each group of packs to move, whose
/// frames' list fits the walk's memory.
fn compact(live: &LiveFs, progress: &Progress, report: &mut GcReport) -> Result<(), GcError> {
    let chunks = live.chunk_store();
    let sealed = chunks.sealed_packs();
    // Per pack: live frames and their bytes.
    let mut filled: HashMap<PackId, (u64, u64)> =
        sealed.iter().map(|(p, _)| (*p, (0, 0))).collect();
    chunks.committed_index()?.for_each(|_, location| {
        if let Some((frames, bytes)) = filled.get_mut(&location.pack) {
            *frames += 1;
            *bytes += u64::from(location.frame_len);
        }
        Ok::<_, GcError>(())
    })?;
    let compact: Vec<(PackId, u64, u64)> = sealed
        .into_iter()
        .filter_map(|(pack, size)| {
            let (frames, bytes) = filled.get(&pack).copied().unwrap_or_default();
            (size > 0 && (bytes as f64) < size as f64 * COMPACT_BELOW)
                .then_some((pack, frames, bytes))
        })
        .collect();
    let moving = compact.iter().map(|(_, _, bytes)| bytes).sum();
    progress.stage("compacting packs", Unit::Bytes, Some(moving));
    let frames_at_once = (live.metadata_budget().walk() / FRAME_BYTES).max(1);
    let mut rest = compact.as_slice();
    while !rest.is_empty() {
        // At least one pack, then as many as fit.
        let mut take = 1;
        let mut frames = rest[0].1;
        while take < rest.len() && frames + rest[take].1 <= frames_at_once {
            frames += rest[take].1;
            take += 1;
        }
        let (group, after) = rest.split_at(take);
        rest = after;
        let mut moved: HashMap<PackId, Vec<(ChunkId, ChunkLocation)>> = group
            .iter()
            .map(|(pack, _, _)| (*pack, Vec::new()))
            .collect();
        chunks.committed_index()?.for_each(|id, location| {
            if let Some(frames) = moved.get_mut(&location.pack) {
                frames.push((id, location));
            }
            Ok::<_, GcError>(())
        })?;
        for (pack, _, live_bytes) in group {
            let frames = moved.remove(pack).unwrap_or_default();
            let damaged = chunks.relocate(&frames)?;
            progress.add(*live_bytes);
            if !damaged.is_empty() {
                // Keep the pack: its damaged chunks are still referenced from it.
                report.damaged.extend(damaged.iter().map(|id| id.to_hex()));
                continue;
            }
            live.commit_now()?;
            let deleted = chunks.drop_pack(*pack)?;
            report.packs_rewritten += 1;
            report.bytes_freed += deleted.saturating_sub(*live_bytes);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::catalog::Origin;
    use crate::id::InodeNo;
    use crate::live::LiveOptions;
    use crate::metadata_budget::MetadataBudget;
    use crate::snapshot::DeleteMode;
    use crate::storage::spill_set::SpillSet;
    use crate::testing::{
        BLOCK_SIZE, DEEP, chain, chain_bottom, mkdir, new_store, noise, on_small_stack, open_with,
        read_file, read_in, snapshots_of, write_file, write_in,
    };

    /// Files, a snapshot, half the files rewritten and one deleted, a second snapshot, the
    /// first deleted, and a collection, on a store opened with `budget`; returns the report,
    /// and checks that every file still reads and nothing more is reclaimable. The files are
    /// spread over directories small enough to be one chunk each: a bigger directory's object
    /// is cut into parts by its content, timestamps included, so two runs could count
    /// different numbers of chunks.
    fn collect_with_budget(budget: MetadataBudget) -> GcReport {
        const FILES: usize = 1500;
        let tmp = tempfile::tempdir().expect("tempdir");
        let (path, live) = new_store(tmp.path(), "store");
        crate::testing::close(live);
        let options = LiveOptions {
            metadata: budget,
            ..LiveOptions::default()
        };
        let live = open_with(&path, options);
        let snapshots = snapshots_of(&live);
        const DIRS: usize = 4;
        for d in 0..DIRS {
            mkdir(&live, &format!("/d{d}"));
        }
        let file = |n: usize| format!("/d{}/f{n}", n % DIRS);
        let block = BLOCK_SIZE as usize;
        for n in 0..FILES {
            write_file(&live, &file(n), &noise(3 * block, n as u64));
        }
        snapshots.create("s1", Origin::Manual).expect("snapshot");
        for n in (0..FILES).step_by(2) {
            write_file(&live, &file(n), &noise(3 * block, (FILES + n) as u64));
        }
        snapshots.create("s2", Origin::Manual).expect("snapshot");
        snapshots.delete("s1", DeleteMode::Now).expect("delete");
        let report = collect(&snapshots, &Progress::new()).expect("gc");
        for n in 0..FILES {
            let seed = if n % 2 == 0 { FILES + n } else { n };
            assert_eq!(read_file(&live, &file(n)), noise(3 * block, seed as u64));
        }
        assert_eq!(
            usage::usage(&snapshots).expect("usage").reclaimable_bytes,
            0
        );
        report
    }

    #[test]
    fn a_collection_past_its_memory_budget_removes_what_one_within_it_does() {
        let roomy = collect_with_budget(MetadataBudget::DEFAULT);
        let tight = collect_with_budget(MetadataBudget::new(0));
        // The tight marking held more ids than its smallest set takes in memory, so it spilled.
        let in_memory = SpillSet::new(std::path::Path::new("."), 0).capacity() as u64;
        assert!(tight.chunks_marked > 2 * in_memory, "{tight:?}");
        assert_eq!(tight.chunks_marked, roomy.chunks_marked);
        assert_eq!(tight.chunks_removed, roomy.chunks_removed);
        assert!(roomy.chunks_removed >= 1500 / 2 * 3, "{roomy:?}");
    }

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
