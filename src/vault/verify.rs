//! `vault verify VAULT [--read-data]`: checks a vault and names every problem it finds.
//!
//! Always (structure): the config decodes and unlocks (at open); every index file and gc
//! retirement list decodes, every index names a pack that exists and locates its objects
//! inside it; every backup record and hold decodes; every object reachable from every
//! backup's tree is listed in the index, in a pack that exists, and every tree object reads
//! back and decodes. The walk uses an explicit stack and visits an object shared by several
//! backups (or several times in one) once.
//!
//! With `--read-data`, every pack is read whole and every entry its index lists is unsealed,
//! decompressed and checked against its id (blake3).
//!
//! A problem names what it is about (backup, path, object, pack); verify goes on after one, so
//! one run lists them all. Packs without an index (left by an interrupted backup, removed by
//! the next gc) are notes, not problems.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::Serialize;

use super::index::{Scan, Visible};
use super::lock::{LockKind, VaultLock};
use super::tree::{Child, read_node};
use super::{
    BACKUPS, HOLDS, PACKS, Vault, VaultError, backup_key, listed_id, listed_pack, pack_key,
};
use crate::format::pack as chunk_pack;
use crate::format::vault_hold::HoldRecord;
use crate::format::vault_pack::{self, EntryCodec};
use crate::id::{BackupId, ChunkId, VaultPackId};
use crate::progress::{Progress, Unit};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub backups: u64,
    pub packs: u64,
    /// Distinct objects reachable from the backups.
    pub objects: u64,
    /// Objects read and checked against their ids (tree objects always; all with
    /// `--read-data`).
    pub objects_read: u64,
    /// Bytes of packs read with `--read-data`.
    pub pack_bytes_read: u64,
    /// Everything wrong, one line each.
    pub problems: Vec<String>,
    /// Things worth knowing that are not wrong.
    pub notes: Vec<String>,
}

/// A step of the walk: an object, whether it is a tree object, and the path it was reached by.
struct Step {
    id: ChunkId,
    tree: bool,
    path: Arc<str>,
}

pub fn verify(
    vault: &mut Vault,
    read_data: bool,
    progress: &Progress,
) -> Result<VerifyReport, VaultError> {
    let _lock = VaultLock::acquire(vault, LockKind::Shared, "verify")?;
    let mut report = VerifyReport::default();

    // Packs, as stored.
    let mut pack_sizes: BTreeMap<VaultPackId, u64> = BTreeMap::new();
    for meta in vault.backend.list(PACKS)? {
        match listed_pack(&meta.key) {
            Some(pack) => {
                pack_sizes.insert(pack, meta.size);
            }
            None => report
                .notes
                .push(format!("{}: not a pack name; ignored", meta.key)),
        }
    }
    report.packs = pack_sizes.len() as u64;

    // Indexes and retirement lists.
    let scan = Scan::read(vault)?;
    for (key, plan) in &scan.plans {
        match plan {
            Ok(_) => report.notes.push(format!(
                "{key}: an unfinished gc; the next `snapfs vault gc` finishes it"
            )),
            Err(err) => report.problems.push(format!("{key}: {err}")),
        }
    }
    for (pack, index) in &scan.indexes {
        if let Err(err) = index {
            report.problems.push(format!("index/{pack}: {err}"));
        }
    }
    let visible = scan.visible();
    if let Err(err) = vault.check_frame_packs(&visible) {
        report.problems.push(err.to_string());
    }
    let mut broken_packs: HashMap<VaultPackId, String> = HashMap::new();
    for (pack, entries) in &visible.packs {
        let Some(&size) = pack_sizes.get(pack) else {
            report.problems.push(format!(
                "index/{pack} names pack {pack}, which is missing ({} objects lost)",
                entries.len()
            ));
            broken_packs.insert(*pack, "missing".into());
            continue;
        };
        let header_len = pack_header_len(&visible, pack);
        for (id, slice) in entries {
            let start = u64::from(slice.offset);
            let end = start + u64::from(slice.len);
            if start < header_len || end > size {
                report.problems.push(format!(
                    "index/{pack}: object {id} at bytes {start}..{end} lies outside pack {pack} \
                     ({size} bytes)"
                ));
                broken_packs.insert(*pack, "shorter than its index says".into());
            }
        }
    }
    for pack in pack_sizes.keys() {
        if !visible.files.contains_key(pack) {
            report.notes.push(format!(
                "pack {pack} has no index (an interrupted backup or gc left it; \
                 `snapfs vault gc` removes it)"
            ));
        }
    }
    vault.use_visible(&visible);

    // Records and holds.
    let mut records = Vec::new();
    for meta in vault.backend.list(BACKUPS)? {
        let Some(id) = listed_id(&meta.key, BACKUPS, BackupId::from_hex) else {
            report
                .notes
                .push(format!("{}: not a backup name; ignored", meta.key));
            continue;
        };
        match vault.record(id) {
            Ok(record) => records.push((id, record)),
            Err(err) => report.problems.push(format!("{}: {err}", backup_key(id))),
        }
    }
    records.sort_by(|a, b| (a.1.created.secs, &a.1.name).cmp(&(b.1.created.secs, &b.1.name)));
    report.backups = records.len() as u64;
    for meta in vault.backend.list(HOLDS)? {
        let Some(id) = listed_id(&meta.key, HOLDS, BackupId::from_hex) else {
            continue;
        };
        match vault.hold_record(&meta.key) {
            Ok(HoldRecord { backup, .. }) if backup != id => report
                .problems
                .push(format!("{}: names backup {backup}", meta.key)),
            Ok(_) if !records.iter().any(|(other, _)| *other == id) => report
                .notes
                .push(format!("{}: the hold of a backup that is gone", meta.key)),
            Ok(_) => {}
            Err(err) => report.problems.push(format!("{}: {err}", meta.key)),
        }
    }

    // Reachability: every backup's tree, each object once across all of them. `needed_by`
    // remembers the first backup that reached each object, for the data check's messages.
    let mut needed_by: HashMap<ChunkId, usize> = HashMap::new();
    progress.stage("walking backups", Unit::Items, Some(records.len() as u64));
    for (number, (id, record)) in records.iter().enumerate() {
        progress.set(number as u64);
        let backup = format!("backup {} (share {}, {id})", record.name, record.share);
        let mut stack = vec![Step {
            id: record.root,
            tree: true,
            path: Arc::from("/"),
        }];
        while let Some(step) = stack.pop() {
            if needed_by.contains_key(&step.id) {
                continue;
            }
            needed_by.insert(step.id, number);
            let at = |what: &str| format!("{backup}: {}: {what}", step.path);
            let Some((pack, _)) = vault.index.get(&step.id) else {
                report.problems.push(at(&format!(
                    "object {} is not in the vault's index",
                    step.id
                )));
                continue;
            };
            if let Some(why) = broken_packs.get(pack) {
                report.problems.push(at(&format!(
                    "object {} is in pack {pack}, which is {why}",
                    step.id
                )));
                continue;
            }
            if !step.tree {
                continue;
            }
            let node = match read_node(vault, &step.id) {
                Ok(node) => node,
                Err(err) => {
                    report.problems.push(at(&err.to_string()));
                    continue;
                }
            };
            report.objects_read += 1 + node.parts.len() as u64;
            for (part, _) in &node.parts {
                needed_by.entry(*part).or_insert(number);
            }
            for child in super::tree::children(&node.object) {
                stack.push(match child {
                    Child::Tree(id, name) => {
                        let name = String::from_utf8_lossy(name);
                        let path = if &*step.path == "/" {
                            format!("/{name}")
                        } else {
                            format!("{}/{name}", step.path)
                        };
                        Step {
                            id,
                            tree: true,
                            path: Arc::from(path),
                        }
                    }
                    Child::Segment(id) => Step {
                        id,
                        tree: true,
                        path: step.path.clone(),
                    },
                    Child::Data(id) => Step {
                        id,
                        tree: false,
                        path: step.path.clone(),
                    },
                });
            }
        }
    }
    report.objects = needed_by.len() as u64;

    if read_data {
        let readable = |pack: &VaultPackId| !broken_packs.contains_key(pack);
        let total = visible
            .files
            .keys()
            .filter(|pack| readable(pack))
            .filter_map(|pack| pack_sizes.get(pack))
            .sum();
        progress.stage("reading packs", Unit::Bytes, Some(total));
        for (pack, entries) in &visible.files {
            if !readable(pack) || !pack_sizes.contains_key(pack) {
                continue;
            }
            let bytes = match vault.backend.get(&pack_key(*pack)) {
                Ok(bytes) => bytes,
                Err(err) => {
                    report.problems.push(format!("pack {pack}: {err}"));
                    continue;
                }
            };
            report.pack_bytes_read += bytes.len() as u64;
            progress.add(pack_sizes.get(pack).copied().unwrap_or_default());
            if visible.frame_packs.contains(pack) {
                if let Err(err) = chunk_pack::decode_pack_header(&bytes) {
                    report
                        .problems
                        .push(format!("pack {pack}: bad header: {err}"));
                }
            } else {
                match vault_pack::decode_header(&bytes) {
                    Ok(named) if named == *pack => {}
                    Ok(named) => report
                        .problems
                        .push(format!("pack {pack}: its header names pack {named}")),
                    Err(err) => report
                        .problems
                        .push(format!("pack {pack}: bad header: {err}")),
                }
            }
            for (id, slice) in entries {
                let start = slice.offset as usize;
                let Some(sealed) = bytes.get(start..start + slice.len as usize) else {
                    continue; // reported above
                };
                report.objects_read += 1;
                if let Err(reason) = check_entry(vault, id, *pack, sealed) {
                    let user = match needed_by.get(id) {
                        Some(&number) => format!(
                            "needed by backup {}",
                            records.get(number).map_or("?", |(_, r)| r.name.as_str())
                        ),
                        None => "needed by no backup".to_owned(),
                    };
                    report.problems.push(format!(
                        "pack {pack}: object {id} is damaged ({reason}; {user})"
                    ));
                }
            }
        }
    }
    tracing::info!(
        vault = vault.describe(),
        problems = report.problems.len(),
        "verified"
    );
    Ok(report)
}

/// Where the first entry of `pack` may start: after the header of its kind.
fn pack_header_len(visible: &Visible, pack: &VaultPackId) -> u64 {
    if visible.frame_packs.contains(pack) {
        chunk_pack::PACK_HEADER_LEN as u64
    } else {
        vault_pack::PACK_HEADER_LEN as u64
    }
}

/// Unseals, decompresses and hashes one entry of `pack` (a frame, in a pack of frames).
pub(super) fn check_entry(
    vault: &Vault,
    id: &ChunkId,
    pack: VaultPackId,
    sealed: &[u8],
) -> Result<(), String> {
    if vault.frame_packs.contains(&pack) {
        return crate::chunk_store::verify_frame_copy(*id, sealed, |_, _| ())
            .map_err(|err| err.to_string());
    }
    let entry = vault.sealer.open(sealed).map_err(|err| err.to_string())?;
    let (codec, raw_len, payload) =
        vault_pack::decode_entry(&entry).map_err(|err| err.to_string())?;
    let raw = match codec {
        EntryCodec::Raw => payload.to_vec(),
        EntryCodec::Zstd => zstd::bulk::decompress(payload, raw_len as usize)
            .map_err(|err| format!("decompression failed: {err}"))?,
    };
    if raw.len() != raw_len as usize || ChunkId::of(&raw) != *id {
        return Err("its bytes do not match its id".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::BlobBackend;
    use crate::vault::tests::{Fixture, clone_backend};
    use crate::vault::{INDEX, index_key};

    fn problems(fixture: &Fixture, read_data: bool) -> Vec<String> {
        let mut vault = Vault::unlock(Box::new(fixture.backend()), &fixture.secret).expect("open");
        verify(&mut vault, read_data, &crate::progress::Progress::new())
            .expect("verify")
            .problems
    }

    #[test]
    fn verify_names_a_damaged_pack_a_missing_pack_and_a_missing_index() {
        let fixture = Fixture::in_memory();
        let original = fixture.backend();
        let mut vault = fixture.vault();
        let clean = verify(&mut vault, true, &crate::progress::Progress::new()).expect("verify");
        assert!(clean.problems.is_empty(), "{:?}", clean.problems);
        assert!(clean.notes.is_empty(), "{:?}", clean.notes);
        assert_eq!(clean.backups, 2);
        assert!(clean.objects > 500, "{clean:?}");
        assert!(clean.objects_read >= clean.objects, "{clean:?}");
        let packs = original.list(PACKS).expect("list");
        let (biggest, _) = packs
            .iter()
            .map(|meta| (meta.key.clone(), meta.size))
            .max_by_key(|(_, size)| *size)
            .expect("a pack");
        let pack = listed_pack(&biggest).expect("a pack key");

        // A flipped byte in a pack: found by reading the data, naming the pack and object.
        let copy = clone_backend(&original);
        let mut bytes = copy.get(&biggest).expect("get");
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x40;
        copy.put(&biggest, &bytes).expect("tamper");
        fixture.set_backend(copy);
        let found = problems(&fixture, true);
        assert!(!found.is_empty());
        assert!(
            found
                .iter()
                .any(|p| p.contains(&format!("pack {pack}: object")) && p.contains("damaged")),
            "{found:?}"
        );

        // A pack gone: its index names it, and so does every backup that needs it.
        let copy = clone_backend(&original);
        copy.delete(&biggest).expect("delete");
        fixture.set_backend(copy);
        let found = problems(&fixture, false);
        assert!(
            found
                .iter()
                .any(|p| p.contains(&format!("names pack {pack}, which is missing"))),
            "{found:?}"
        );
        assert!(
            found.iter().any(|p| p.starts_with("backup ")
                && p.contains(&format!("is in pack {pack}, which is missing"))),
            "{found:?}"
        );

        // An index gone: the objects it listed are missing from the backups that need them.
        let copy = clone_backend(&original);
        copy.delete(&index_key(pack)).expect("delete");
        fixture.set_backend(copy);
        let found = problems(&fixture, false);
        assert!(
            found
                .iter()
                .any(|p| p.starts_with("backup ") && p.contains("is not in the vault's index")),
            "{found:?}"
        );

        // An index that does not decode is named.
        let copy = clone_backend(&original);
        copy.put(&index_key(pack), b"not an index").expect("put");
        fixture.set_backend(copy);
        let found = problems(&fixture, false);
        assert!(
            found
                .iter()
                .any(|p| p.starts_with(&format!("{INDEX}/{pack}"))),
            "{found:?}"
        );
        fixture.set_backend(original);
    }
}
