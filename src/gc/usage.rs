//! Space accounting: what each snapshot alone holds (the bytes deleting it would free once
//! collected), what the live share uses, and what is reclaimable now.

use std::collections::{HashMap, HashSet};

use super::{GcError, walk_tree};
use crate::id::ChunkId;
use crate::snapshot::Snapshots;

#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct Usage {
    /// Stored bytes of every chunk the live share uses.
    pub live_bytes: u64,
    /// Per snapshot name: stored bytes of the chunks no other snapshot and not the live share
    /// uses.
    pub unique_bytes: HashMap<String, u64>,
    /// Stored bytes of the chunks snapshots use and the live share does not.
    pub snapshot_bytes: u64,
    /// Stored bytes of the chunks only soft-deleted snapshots hold.
    pub deleted_snapshot_bytes: u64,
    /// Stored bytes of every chunk in the index.
    pub stored_bytes: u64,
    /// Stored bytes of chunks nothing uses (what `gc` would remove).
    pub reclaimable_bytes: u64,
}

pub fn usage(snapshots: &Snapshots) -> Result<Usage, GcError> {
    let live = snapshots.live();
    let chunks = live.chunk_store();
    live.commit_now()?;
    let sizes: HashMap<ChunkId, u64> = chunks
        .committed_chunks()?
        .into_iter()
        .map(|(id, l)| (id, u64::from(l.frame_len)))
        .collect();
    let size = |id: &ChunkId| sizes.get(id).copied().unwrap_or(0);
    let mut live_chunks = HashSet::new();
    live.mark_in_memory(&mut live_chunks);
    live_chunks.extend(
        live.committed_block_chunks()
            .map_err(|e| GcError::Meta(e.to_string()))?,
    );
    // How many snapshots use each chunk; and each snapshot's own chunks.
    let mut users: HashMap<ChunkId, u32> = HashMap::new();
    let mut per_snapshot = Vec::new();
    for (name, record) in snapshots.list() {
        let mut mine = HashSet::new();
        walk_tree(snapshots.objects(), record.root, &mut |id| mine.insert(id))?;
        for id in &mine {
            *users.entry(*id).or_default() += 1;
        }
        per_snapshot.push((name, mine));
    }
    // What soft-deleted snapshots hold beyond that.
    let mut deleted_only = HashSet::new();
    for (_, record) in snapshots.list_deleted() {
        walk_tree(snapshots.objects(), record.root, &mut |id| {
            !users.contains_key(&id) && !live_chunks.contains(&id) && deleted_only.insert(id)
        })?;
    }
    let mut usage = Usage {
        live_bytes: live_chunks.iter().map(size).sum(),
        snapshot_bytes: users
            .keys()
            .filter(|id| !live_chunks.contains(id))
            .map(size)
            .sum(),
        deleted_snapshot_bytes: deleted_only.iter().map(size).sum(),
        stored_bytes: sizes.values().sum(),
        ..Usage::default()
    };
    for (name, mine) in per_snapshot {
        let unique = mine
            .iter()
            .filter(|id| users.get(id) == Some(&1) && !live_chunks.contains(id))
            .map(size)
            .sum();
        usage.unique_bytes.insert(name, unique);
    }
    usage.reclaimable_bytes = sizes
        .iter()
        .filter(|(id, _)| {
            !users.contains_key(id) && !live_chunks.contains(id) && !deleted_only.contains(id)
        })
        .map(|(_, s)| s)
        .sum();
    Ok(usage)
}
