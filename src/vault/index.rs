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
use crate::format::vault_index::{PackIndex, PackSlice};
use crate::id::{ChunkId, GcPlanId, VaultPackId};

/// Every index file and retirement list of a vault, each read on its own: a damaged one is an
/// error of its own, so verify can name it and go on.
pub(super) struct Scan {
    pub indexes: Vec<(VaultPackId, Result<PackIndex, VaultError>)>,
    pub plans: Vec<(BlobKey, Result<Retirement, VaultError>)>,
}

/// What the index says once every retirement list is applied.
pub(super) struct Visible {
    /// Each pack's index file as stored (pack → its entries), damaged ones left out.
    pub files: BTreeMap<VaultPackId, Vec<(ChunkId, PackSlice)>>,
    /// Each pack's entries that count, for packs that are not retired.
    pub packs: BTreeMap<VaultPackId, Vec<(ChunkId, PackSlice)>>,
    /// The retirement lists found (an interrupted gc's, to finish).
    pub plans: Vec<(BlobKey, Retirement)>,
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
        // Every reader that uses the index holds a lock (`vault::lock`), so no gc changes it
        // meanwhile. Were one to, reading the lists after the index files is the better order:
        // a list outlives every change its gc makes to index files.
        let mut indexes = Vec::new();
        for meta in vault.backend.list(INDEX)? {
            let Some(pack) = listed_id(&meta.key, INDEX, VaultPackId::from_hex) else {
                continue;
            };
            match read_index(vault, &meta.key, pack) {
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
        Ok(Scan { indexes, plans })
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
        for (pack, index) in &self.indexes {
            let Ok(index) = index else { continue };
            files.insert(*pack, index.entries.clone());
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
