//! The vault's index in memory: the union of every pack's index file, less what gc
//! retirement lists take out. An index file is written only after its pack, so every entry
//! loaded here names stored bytes; packs without an index (a backup killed between the two)
//! are not loaded, and a later backup sends their objects again into new packs.
//!
//! A retirement list (`gc/<plan id>`, [`Retirement`]) is applied by every reader: the entries
//! of its retired packs and its dropped entries of kept packs do not count, whether or not the
//! gc that wrote it got as far as deleting them.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::{GC, INDEX, Vault, VaultError, listed_id};
use crate::blob::BlobKey;
use crate::format::vault_gc::Retirement;
use crate::format::vault_index::{PackIndex, PackKind, PackSlice};
use crate::id::{ChunkId, GcPlanId, VaultPackId};

/// Every index file and retirement list of a vault, each read on its own: a damaged one is an
/// error of its own, so verify can name it and go on.
pub(super) struct Scan {
    pub indexes: Vec<(VaultPackId, Result<PackIndex, VaultError>)>,
    pub plans: Vec<(BlobKey, Result<Retirement, VaultError>)>,
    /// The stored size of each index file listed.
    sizes: HashMap<VaultPackId, u64>,
}

/// Index files read before, with their stored sizes. An index file is written once, and
/// changed afterwards only by gc dropping entries from it, which makes it smaller: a listed
/// file of the size read before is the same file, and need not be read again (with an object
/// store, a backup's reload costs one listing, not a get per pack).
#[derive(Default)]
pub(super) struct IndexFiles {
    files: HashMap<VaultPackId, (u64, PackIndex)>,
    /// Every file listed was read whole and no retirement list was listed: the index built
    /// from the scan is exactly what these files give ([`IndexFiles::still_listed`]).
    complete: bool,
}

impl IndexFiles {
    /// The index files a scan read whole.
    pub fn of(scan: &Scan) -> IndexFiles {
        let files: HashMap<_, _> = scan
            .indexes
            .iter()
            .filter_map(|(pack, index)| {
                Some((
                    *pack,
                    (*scan.sizes.get(pack)?, index.as_ref().ok()?.clone()),
                ))
            })
            .collect();
        IndexFiles {
            complete: scan.plans.is_empty() && files.len() == scan.sizes.len(),
            files,
        }
    }

    /// Whether the vault lists now exactly these index files, at the sizes read, and no
    /// retirement list: then reading it again would build the same index, and a reload can
    /// keep the one in memory (at 100,000 files, rebuilding it took a backup 120-190 ms).
    pub fn still_listed(&self, vault: &Vault) -> Result<bool, VaultError> {
        if !self.complete {
            return Ok(false);
        }
        let mut listed = 0;
        for meta in vault.backend.list(INDEX)? {
            let Some(pack) = listed_id(&meta.key, INDEX, VaultPackId::from_hex) else {
                continue;
            };
            if self.files.get(&pack).map(|(size, _)| *size) != Some(meta.size) {
                return Ok(false);
            }
            listed += 1;
        }
        Ok(listed == self.files.len() && vault.backend.list(GC)?.is_empty())
    }
}

/// What the index says once every retirement list is applied.
pub(super) struct Visible {
    /// Each pack's index file as stored (pack → its entries), damaged ones left out.
    pub files: BTreeMap<VaultPackId, Vec<(ChunkId, PackSlice)>>,
    /// Each pack's entries that count, for packs that are not retired.
    pub packs: BTreeMap<VaultPackId, Vec<(ChunkId, PackSlice)>>,
    /// The retirement lists found (an interrupted gc's, to finish).
    pub plans: Vec<(BlobKey, Retirement)>,
    /// The packs whose index file says they hold chunk-store frames ([`PackKind::Frames`]).
    pub frame_packs: HashSet<VaultPackId>,
}

fn read_index(vault: &Vault, key: &BlobKey, pack: VaultPackId) -> Result<PackIndex, VaultError> {
    let what = || format!("index of pack {pack}");
    let sealed = vault.backend.get(key)?;
    let plain = vault.open_sealed(&sealed, &what)?;
    let index = PackIndex::decode(&plain).map_err(|source| VaultError::Decode {
        what: what(),
        source,
    })?;
    if index.pack != pack {
        return Err(VaultError::Damaged(format!(
            "{} (it indexes pack {})",
            what(),
            index.pack
        )));
    }
    Ok(index)
}

/// Index files read at once: each is small, and from an object store each read is a round
/// trip, so they are read side by side, not one after another.
const PARALLEL_READS: usize = 8;

/// Reads the index files `wanted`, [`PARALLEL_READS`] at a time, in the order given.
fn read_indexes(
    vault: &Vault,
    wanted: &[(VaultPackId, BlobKey)],
) -> Vec<(VaultPackId, Result<PackIndex, VaultError>)> {
    let read_part = |part: &[(VaultPackId, BlobKey)]| -> Vec<_> {
        part.iter()
            .map(|(pack, key)| (*pack, read_index(vault, key, *pack)))
            .collect()
    };
    if wanted.len() < 2 {
        return read_part(wanted);
    }
    let per_thread = wanted.len().div_ceil(PARALLEL_READS);
    std::thread::scope(|scope| {
        let readers: Vec<_> = wanted
            .chunks(per_thread)
            .map(|part| scope.spawn(move || read_part(part)))
            .collect();
        readers
            .into_iter()
            .flat_map(|reader| {
                reader
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

fn read_plan(vault: &Vault, key: &BlobKey) -> Result<Retirement, VaultError> {
    let what = || format!("gc retirement list {key}");
    let sealed = vault.backend.get(key)?;
    let plain = vault.open_sealed(&sealed, &what)?;
    Retirement::decode(&plain).map_err(|source| VaultError::Decode {
        what: what(),
        source,
    })
}

impl Scan {
    /// Reads everything; fails only if the backend cannot list.
    pub fn read(vault: &Vault) -> Result<Scan, VaultError> {
        Scan::read_reusing(vault, &IndexFiles::default())
    }

    /// Reads everything but the index files `known` holds unchanged.
    pub fn read_reusing(vault: &Vault, known: &IndexFiles) -> Result<Scan, VaultError> {
        // Every reader that uses the index holds a lock (`vault::lock`), so no gc changes it
        // meanwhile. Were one to, reading the lists after the index files is the better order:
        // a list outlives every change its gc makes to index files.
        let mut indexes = Vec::new();
        let mut sizes = HashMap::new();
        let mut unread = Vec::new();
        for meta in vault.backend.list(INDEX)? {
            let Some(pack) = listed_id(&meta.key, INDEX, VaultPackId::from_hex) else {
                continue;
            };
            sizes.insert(pack, meta.size);
            match known
                .files
                .get(&pack)
                .filter(|(size, _)| *size == meta.size)
            {
                Some((_, index)) => indexes.push((pack, Ok(index.clone()))),
                None => unread.push((pack, meta.key)),
            }
        }
        for (pack, index) in read_indexes(vault, &unread) {
            match index {
                // Deleted since the listing (gc): it no longer counts.
                Err(VaultError::Blob(crate::blob::BlobError::NotFound(_))) => {}
                index => indexes.push((pack, index)),
            }
        }
        let mut plans = Vec::new();
        for meta in vault.backend.list(GC)? {
            if listed_id(&meta.key, GC, GcPlanId::from_hex).is_none() {
                continue;
            }
            let plan = read_plan(vault, &meta.key);
            plans.push((meta.key, plan));
        }
        Ok(Scan {
            indexes,
            plans,
            sizes,
        })
    }

    /// Applies the retirement lists to what could be read.
    pub fn visible(&self) -> Visible {
        let plans: Vec<(BlobKey, Retirement)> = self
            .plans
            .iter()
            .filter_map(|(key, plan)| Some((key.clone(), plan.as_ref().ok()?.clone())))
            .collect();
        let retired: HashSet<VaultPackId> = plans
            .iter()
            .flat_map(|(_, plan)| plan.retired.iter().copied())
            .collect();
        let dropped: HashSet<(VaultPackId, ChunkId)> = plans
            .iter()
            .flat_map(|(_, plan)| &plan.dropped)
            .flat_map(|(pack, ids)| ids.iter().map(|id| (*pack, *id)))
            .collect();
        let mut files = BTreeMap::new();
        let mut packs = BTreeMap::new();
        let mut frame_packs = HashSet::new();
        for (pack, index) in &self.indexes {
            let Ok(index) = index else { continue };
            files.insert(*pack, index.entries.clone());
            if index.kind == PackKind::Frames {
                frame_packs.insert(*pack);
            }
            if retired.contains(pack) {
                continue;
            }
            let entries: Vec<_> = index
                .entries
                .iter()
                .filter(|(id, _)| !dropped.contains(&(*pack, *id)))
                .copied()
                .collect();
            packs.insert(*pack, entries);
        }
        Visible {
            files,
            packs,
            plans,
            frame_packs,
        }
    }

    /// The visible index, or the first thing that could not be read.
    pub fn strict(self) -> Result<Visible, VaultError> {
        let visible = self.visible();
        for (_, plan) in self.plans {
            plan?;
        }
        for (_, index) in self.indexes {
            index?;
        }
        Ok(visible)
    }
}

impl Visible {
    /// Where each object is (one place, if several packs hold it).
    pub fn locations(&self) -> HashMap<ChunkId, (VaultPackId, PackSlice)> {
        let mut out = HashMap::new();
        for (pack, entries) in &self.packs {
            for (id, slice) in entries {
                out.insert(*id, (*pack, *slice));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::blob::{BlobBackend, RemoteStore};
    use crate::vault::pack_writer::PackWriter;
    use crate::vault::tests::{Shared, TEST_KDF};
    use crate::vault::{Secret, index_key, init};

    #[test]
    fn a_reload_reads_an_index_file_again_once_gc_has_dropped_entries_from_it() {
        let memory = Shared(Arc::new(RemoteStore::in_memory()));
        init::init(&memory, &Secret::None, TEST_KDF).expect("init");
        let mut vault = Vault::open_backend(Box::new(memory.clone()), &Secret::None).expect("open");
        let mut writer = PackWriter::new().expect("writer");
        let objects: Vec<Vec<u8>> = (0..3u8).map(|n| vec![n; 1000]).collect();
        for bytes in &objects {
            writer
                .add(&mut vault, ChunkId::of(bytes), bytes)
                .expect("add");
        }
        writer.flush(&mut vault).expect("flush");
        vault.reload_index().expect("reload");
        let ids: Vec<ChunkId> = objects.iter().map(|b| ChunkId::of(b)).collect();
        assert!(ids.iter().all(|id| vault.contains(id)));

        // What gc does to a kept pack: its index file rewritten without a dropped entry.
        let pack = writer.packs[0];
        let mut entries: Vec<(ChunkId, PackSlice)> =
            ids[..2].iter().map(|id| (*id, vault.index[id].1)).collect();
        entries.sort_by_key(|(id, _)| *id);
        let index = PackIndex {
            pack,
            kind: PackKind::Sealed,
            entries,
        };
        let sealed = vault
            .seal(&index.encode(), &|| "index".into())
            .expect("seal");
        memory.put(&index_key(pack), &sealed).expect("put");

        vault.reload_index().expect("reload");
        assert!(vault.contains(&ids[0]) && vault.contains(&ids[1]));
        assert!(
            !vault.contains(&ids[2]),
            "the rewritten index file was read again"
        );
    }

    /// A reload that lists the same index files as before keeps the index in memory; one new
    /// index file, or a retirement list, makes it build the index again.
    #[test]
    fn a_reload_keeps_the_index_while_nothing_listed_changed() {
        let memory = Shared(Arc::new(RemoteStore::in_memory()));
        init::init(&memory, &Secret::None, TEST_KDF).expect("init");
        let mut vault = Vault::open_backend(Box::new(memory.clone()), &Secret::None).expect("open");
        let store = |vault: &mut Vault, bytes: &[u8]| {
            let mut writer = PackWriter::new().expect("writer");
            writer.add(vault, ChunkId::of(bytes), bytes).expect("add");
            writer.flush(vault).expect("flush");
        };
        store(&mut vault, &[1; 1000]);
        vault.reload_index().expect("reload");
        let first = ChunkId::of(&[1; 1000]);
        assert!(vault.contains(&first));

        // Taken out of memory only: a reload that kept the index does not bring it back.
        vault.index.remove(&first);
        vault.reload_index().expect("reload");
        assert!(!vault.contains(&first), "nothing listed changed: kept");

        store(&mut vault, &[2; 1000]);
        vault.reload_index().expect("reload");
        assert!(vault.contains(&first) && vault.contains(&ChunkId::of(&[2; 1000])));

        vault.index.remove(&first);
        memory
            .put(
                &crate::vault::gc_key(crate::id::GcPlanId::random().expect("id")),
                b"not read here",
            )
            .expect("put");
        assert!(!vault.index_files.still_listed(&vault).expect("list"));
    }
}
