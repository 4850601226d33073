//! `vault restore VAULT BACKUP NEW_STORE`: a new store whose live share is a backup. Every
//! object the backup's tree needs is fetched (each checked against its id by
//! [`Vault::read_object`]) and stored in the new store's chunk store, children after their
//! parent so the walk needs no recursion; then the tree is grafted at the new root by the same
//! path a clone takes (`snapshot::graft_stored_tree`), which reads and checks the whole tree
//! again before the share changes. A restore that fails removes what it created.

use std::collections::HashSet;
use std::path::Path;

use serde::Serialize;

use super::lock::{LockKind, VaultLock};
use super::{Vault, VaultError};
use crate::format::catalog::{Hold, Origin, SnapshotRecord};
use crate::format::object::{Object, ObjectId};
use crate::live::LiveFs;
use crate::snapshot::{TreeCounts, graft_stored_tree, new_store_with};
use crate::tree_objects::TreeObjects;

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
) -> Result<VaultRestoreReport, VaultError> {
    // No gc while the objects are fetched.
    let _lock = VaultLock::acquire(vault, LockKind::Shared, "restore")?;
    let (_, backup) = vault.find(name)?;
    // The catalog record the graft reads the root's attributes from.
    let record = SnapshotRecord {
        number: 0,
        root: backup.root,
        created: backup.created,
        origin: Origin::Manual,
        root_perm: backup.root_perm,
        root_uid: backup.root_uid,
        root_gid: backup.root_gid,
        hold: Hold::None,
        deleted: None,
    };
    let report = new_store_with(
        new_store,
        backup.block_size,
        backup.root_uid,
        backup.root_gid,
        |live: &LiveFs| -> Result<VaultRestoreReport, VaultError> {
            let (objects_fetched, bytes_fetched) = fetch_tree(vault, live, backup.root)?;
            let restored = graft_stored_tree(live, &record)?;
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

/// Copies every object of the tree at `root` from the vault into `live`'s chunk store.
fn fetch_tree(vault: &Vault, live: &LiveFs, root: ObjectId) -> Result<(u64, u64), VaultError> {
    let chunks = live.chunk_store();
    let objects = TreeObjects::new(chunks.clone());
    let mut fetched: HashSet<ObjectId> = HashSet::new();
    let mut bytes = 0u64;
    let mut fetch = |id: ObjectId, bytes: &mut u64| -> Result<bool, VaultError> {
        if !fetched.insert(id) {
            return Ok(false);
        }
        let data = vault.read_object(&id)?;
        *bytes += data.len() as u64;
        chunks.put(&data)?;
        Ok(true)
    };
    // (object id, whether it is a tree object rather than a chunk of data)
    let mut stack = vec![(root, true)];
    while let Some((id, tree)) = stack.pop() {
        if !fetch(id, &mut bytes)? || !tree {
            continue;
        }
        let raw = chunks.get(&id)?;
        if let Ok(Object::Multipart(multipart)) = Object::decode(&raw) {
            for part in multipart.parts {
                fetch(part, &mut bytes)?;
            }
        }
        match objects.get(&id)? {
            Object::Directory(dir) => {
                stack.extend(
                    dir.entries
                        .iter()
                        .filter_map(|e| e.object.map(|o| (o, true))),
                );
            }
            Object::File(file) => stack.extend(file.segments.iter().map(|(_, s)| (*s, true))),
            Object::Segment(segment) => {
                stack.extend(segment.blocks.iter().map(|(_, c)| (*c, false)));
            }
            Object::Multipart(_) => {
                return Err(VaultError::Damaged(format!(
                    "object {id}: nested multipart"
                )));
            }
        }
    }
    Ok((fetched.len() as u64, bytes))
}
