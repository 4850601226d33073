//! `vault restore VAULT BACKUP NEW_STORE`: a new store whose live share is a backup. Every
//! object the backup's tree needs is fetched (each checked against its id by
//! [`Vault::read_object`]) and stored in the new store's chunk store, children after their
//! parent so the walk needs no recursion; then the tree is grafted at the new root by the same
//! path a clone takes (`snapshot::graft_stored_tree`), which reads and checks the whole tree
//! again before the share changes. A restore that fails removes what it created.
//!
//! `vault restore VAULT BACKUP --path PATH --mount M`: one entry of a backup (a file, a tree)
//! put back into a running share by its daemon, as `snapfs restore` does from a snapshot. The
//! paths are checked, the entry found in the vault and the destination checked first, so bad
//! input fetches nothing; then the directories on the path and everything under the entry are
//! fetched into the share's chunk store (stored once, deduplicated against what it holds), and
//! the entry is grafted by the snapshot restore's own path (`Snapshots::restore_tree`: one
//! atomic, committed change). Until the graft, nothing refers to the fetched objects, so the
//! graft runs holding the catalog (no gc can start) after checking that a gc that ran while
//! they were fetched left them all (what it took is fetched again).

use std::collections::HashSet;
use std::path::Path;

use serde::Serialize;

use super::lock::{LockKind, VaultLock};
use super::tree;
use super::{Vault, VaultError, fetch};
use crate::chunk_store::ChunkStore;
use crate::format::backup_record::BackupRecord;
use crate::format::catalog::{Hold, Origin, SnapshotRecord};
use crate::format::inode::InodeKind;
use crate::format::object::{DirEntryObject, Object, ObjectId};
use crate::history::path::escape_path;
use crate::id::{ChunkId, InodeNo};
use crate::live::{DataWorkers, LiveFs};
use crate::progress::{Progress, Unit};
use crate::snapshot::{
    RestoreError, Snapshots, TreeCounts, graft_stored_tree, new_store_with, restore_paths,
};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct VaultRestoreReport {
    pub restored: TreeCounts,
    /// Objects fetched from the vault (chunks and tree objects), each once.
    pub objects_fetched: u64,
    /// Their bytes, uncompressed.
    pub bytes_fetched: u64,
}

/// Restores the backup `name` into a new store at `new_store`.
pub fn restore(
    vault: &Vault,
    name: &str,
    new_store: &Path,
    progress: &Progress,
) -> Result<VaultRestoreReport, VaultError> {
    // No gc while the objects are fetched.
    let _lock = VaultLock::acquire(vault, LockKind::Shared, "restore")?;
    let (_, backup) = vault.find(name)?;
    let record = as_snapshot(&backup);
    let report = new_store_with(
        new_store,
        backup.block_size,
        backup.root_uid,
        backup.root_gid,
        |live: &LiveFs| -> Result<VaultRestoreReport, VaultError> {
            let started = std::time::Instant::now();
            let (fetched, bytes_fetched) = fetch_tree(
                vault,
                &live.chunk_store(),
                live.workers(),
                backup.root,
                progress,
            )?;
            let objects_fetched = fetched.len() as u64;
            tracing::debug!(elapsed = ?started.elapsed(), "restore: every object fetched");
            let restored = graft_stored_tree(live, &record, progress)?;
            tracing::debug!(elapsed = ?started.elapsed(), "restore: the tree grafted");
            Ok(VaultRestoreReport {
                restored,
                objects_fetched,
                bytes_fetched,
            })
        },
    )?;
    tracing::info!(vault = vault.describe(), backup = name, store = %new_store.display(), ?report, "restored");
    Ok(report)
}

/// The catalog record a graft reads a backup's root attributes from.
fn as_snapshot(backup: &BackupRecord) -> SnapshotRecord {
    SnapshotRecord {
        number: 0,
        root: backup.root,
        created: backup.created,
        origin: Origin::Manual,
        root_perm: backup.root_perm,
        root_uid: backup.root_uid,
        root_gid: backup.root_gid,
        hold: Hold::None,
        deleted: None,
    }
}

/// Tree objects read at once by the workers, while a level of the tree is walked.
const TREE_BATCH: usize = 1024;
/// File chunks gathered before they are fetched: bounds the list, and is large enough that
/// most of a pack's entries are fetched together.
const DATA_BATCH: usize = 64 * 1024;

/// Copies every object of the tree at `root` from the vault into the chunk store; returns
/// the ids stored (tree objects, their parts, file data) and their bytes, counted into
/// `progress` (a stage of its own) as they arrive.
///
/// The tree is walked a level at a time (no recursion, however deep), each level's objects
/// read on the data workers; the file data is gathered and fetched by [`fetch::fetch_into`],
/// entries close together in a pack with one read.
fn fetch_tree(
    vault: &Vault,
    chunks: &ChunkStore,
    workers: &DataWorkers,
    root: ObjectId,
    progress: &Progress,
) -> Result<(HashSet<ObjectId>, u64), VaultError> {
    progress.stage("fetching from the vault", Unit::Bytes, None);
    let mut fetched: HashSet<ObjectId> = HashSet::from([root]);
    let mut bytes = 0u64;
    let mut level = vec![root];
    let mut data: Vec<ChunkId> = Vec::new();
    while !level.is_empty() {
        let mut next = Vec::new();
        for batch in level.chunks(TREE_BATCH) {
            let nodes = workers.map(batch, |id| -> Result<tree::Node, VaultError> {
                let node = tree::read_node(vault, id)?;
                chunks.put(&node.bytes)?;
                for (_, part) in &node.parts {
                    chunks.put(part)?;
                }
                Ok(node)
            });
            for node in nodes {
                let node = node?;
                let before = bytes;
                bytes += node.bytes.len() as u64;
                for (part, part_bytes) in &node.parts {
                    if fetched.insert(*part) {
                        bytes += part_bytes.len() as u64;
                    }
                }
                progress.add(bytes - before);
                for child in tree::children(&node.object) {
                    match child {
                        tree::Child::Tree(id, _) | tree::Child::Segment(id) => {
                            if fetched.insert(id) {
                                next.push(id);
                            }
                        }
                        tree::Child::Data(id) => {
                            if fetched.insert(id) {
                                data.push(id);
                            }
                        }
                    }
                }
                if data.len() >= DATA_BATCH {
                    bytes += fetch::fetch_into(vault, chunks, workers, &data, progress)?;
                    data.clear();
                }
            }
        }
        level = next;
    }
    bytes += fetch::fetch_into(vault, chunks, workers, &data, progress)?;
    Ok((fetched, bytes))
}

/// What a restore of one entry of a backup into a running share did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct VaultPathReport {
    pub restored: TreeCounts,
    /// Objects fetched from the vault (chunks and tree objects), each once.
    pub objects_fetched: u64,
    /// Their bytes, uncompressed (the share's store keeps only those it lacked).
    pub bytes_fetched: u64,
}

/// Restores the entry at `path` of the backup `name` to `dest` (by default the same path) in
/// the live share of `snapshots`; an existing destination is refused unless `overwrite`.
pub fn restore_path(
    vault: &mut Vault,
    snapshots: &Snapshots,
    name: &str,
    path: &[u8],
    dest: Option<&[u8]>,
    overwrite: bool,
    progress: &Progress,
) -> Result<VaultPathReport, VaultError> {
    let names = restore_paths(path, dest).map_err(VaultError::Restore)?;
    let shown_path = escape_path(path);
    // No gc while the objects are fetched.
    let _lock = VaultLock::acquire(vault, LockKind::Shared, "restore")?;
    vault.reload_index()?;
    let (_, backup) = vault.find(name)?;
    let not_found = || {
        VaultError::Restore(RestoreError::NotInSnapshot {
            snapshot: name.to_owned(),
            path: shown_path.clone(),
        })
    };
    // The entry, and the directory objects from the root to it (the graft walks them again).
    let mut path_dirs = vec![backup.root];
    let mut entry: Option<DirEntryObject> = None;
    for (i, wanted) in names.iter().enumerate() {
        let dir = *path_dirs.last().unwrap_or(&backup.root);
        let node = tree::read_node(vault, &dir)?;
        let Object::Directory(listing) = node.object else {
            return Err(VaultError::Damaged(format!(
                "tree object {dir}: a directory entry whose object is not a directory"
            )));
        };
        let found = listing
            .entries
            .into_iter()
            .find(|e| e.name.as_slice() == *wanted)
            .ok_or_else(not_found)?;
        if i + 1 < names.len() {
            if found.record.kind != InodeKind::Directory {
                return Err(VaultError::Restore(RestoreError::NotDirectory(
                    shown_path.clone(),
                )));
            }
            path_dirs.push(found.object.ok_or_else(|| {
                VaultError::Damaged(format!("tree object {dir}: an entry without its object"))
            })?);
        } else {
            entry = Some(found);
        }
    }
    let entry = entry.ok_or_else(not_found)?;
    let live = snapshots.live();
    check_destination(live, dest.unwrap_or(path), overwrite)?;

    let chunks = live.chunk_store();
    let mut fetched: HashSet<ObjectId> = HashSet::new();
    let mut bytes_fetched = 0u64;
    for dir in &path_dirs {
        for (id, data) in object_and_parts(vault, dir)? {
            bytes_fetched += data.len() as u64;
            chunks.put(&data)?;
            fetched.insert(id);
        }
    }
    if let Some(object) = entry.object {
        let (below, bytes) = fetch_tree(vault, &chunks, live.workers(), object, progress)?;
        fetched.extend(below);
        bytes_fetched += bytes;
    }
    let report = {
        // From here to the graft's commit nothing may collect what was fetched.
        let _catalog = snapshots.hold_catalog();
        let swept: Vec<ObjectId> = fetched
            .iter()
            .filter(|id| chunks.check_present(id).is_err())
            .copied()
            .collect();
        for id in &swept {
            chunks.put(&vault.read_object(id)?)?;
        }
        snapshots.restore_tree(&as_snapshot(&backup), name, path, dest, overwrite, progress)?
    };
    let report = VaultPathReport {
        restored: report.restored,
        objects_fetched: fetched.len() as u64,
        bytes_fetched,
    };
    tracing::info!(
        vault = vault.describe(),
        backup = name,
        path = shown_path,
        ?report,
        "restored from a vault"
    );
    Ok(report)
}

/// A tree object as stored: itself, and its parts if it is multipart, each with its bytes.
fn object_and_parts(vault: &Vault, id: &ObjectId) -> Result<Vec<(ObjectId, Vec<u8>)>, VaultError> {
    let node = tree::read_node(vault, id)?;
    let mut out = vec![(*id, node.bytes)];
    out.extend(node.parts);
    Ok(out)
}

/// Refuses an existing destination (unless `overwrite`) or one without a parent directory
/// before anything is fetched; the graft checks again, atomically.
fn check_destination(live: &LiveFs, dest: &[u8], overwrite: bool) -> Result<(), VaultError> {
    let shown = escape_path(dest);
    let names = crate::live::split_path(dest).map_err(|_| {
        VaultError::Restore(RestoreError::InvalidPath {
            path: shown.clone(),
            reason: "names are 1 to 255 bytes, without NUL, and not . or ..",
        })
    })?;
    let Some((last, parents)) = names.split_last() else {
        return Ok(());
    };
    let mut dir = InodeNo::ROOT;
    for name in parents {
        match live.lookup(dir, name) {
            Ok(attr) if attr.record.kind == InodeKind::Directory => dir = attr.ino,
            Ok(_) => return Err(VaultError::Restore(RestoreError::NotDirectory(shown))),
            Err(_) => return Err(VaultError::Restore(RestoreError::NoParent(shown))),
        }
    }
    if !overwrite && live.lookup(dir, last).is_ok() {
        return Err(VaultError::Restore(RestoreError::Exists(shown)));
    }
    Ok(())
}
