//! Gathers objects into packs and stores them in order: the pack, then its index, then the
//! objects become part of the vault's index in memory. Packs are cut at [`PACK_TARGET`], large
//! enough that a backup is a few large uploads, small enough that a killed backup loses little.

use std::collections::HashSet;

use super::{Vault, VaultError, index_key, pack_key};
use crate::format::vault_index::{MAX_PACK_OBJECTS, PackIndex, PackSlice};
use crate::format::vault_pack::{self, EntryCodec};
use crate::id::{ChunkId, VaultPackId};

/// A pack is stored once it holds this many bytes: 16 MiB.
pub(super) const PACK_TARGET: usize = 16 << 20;
/// zstd level for vault entries: a little more effort than the store's, data is sent once.
const ZSTD_LEVEL: i32 = 3;

/// The pack being filled.
pub(super) struct PackWriter {
    id: VaultPackId,
    buf: Vec<u8>,
    entries: Vec<(ChunkId, PackSlice)>,
    pending: HashSet<ChunkId>,
    /// Bytes stored so far (packs and indexes).
    pub uploaded: u64,
    pub objects: u64,
    /// The packs stored so far.
    pub packs: Vec<VaultPackId>,
}

fn new_id() -> Result<VaultPackId, VaultError> {
    VaultPackId::random().map_err(|err| VaultError::Io(format!("random pack id: {err}")))
}

impl PackWriter {
    pub fn new() -> Result<Self, VaultError> {
        let id = new_id()?;
        Ok(PackWriter {
            id,
            buf: vault_pack::encode_header(id),
            entries: Vec::new(),
            pending: HashSet::new(),
            uploaded: 0,
            objects: 0,
            packs: Vec::new(),
        })
    }

    /// Whether `id` is in the pack being filled.
    pub fn holds(&self, id: &ChunkId) -> bool {
        self.pending.contains(id)
    }

    /// Adds an object (its bytes are `raw`, its id their blake3); stores the pack if full.
    pub fn add(&mut self, vault: &mut Vault, id: ChunkId, raw: &[u8]) -> Result<(), VaultError> {
        if vault.contains(&id) || self.pending.contains(&id) {
            return Ok(());
        }
        let compressed = zstd::bulk::compress(raw, ZSTD_LEVEL).ok();
        let entry = match compressed {
            Some(small) if small.len() < raw.len() => {
                vault_pack::encode_entry(EntryCodec::Zstd, raw.len() as u32, &small)
            }
            _ => vault_pack::encode_entry(EntryCodec::Raw, raw.len() as u32, raw),
        };
        let sealed = vault.seal(&entry, &|| format!("sealing object {id}"))?;
        self.push(vault, id, &sealed)
    }

    /// Adds an entry already sealed with this vault's key (gc moving a live object out of a
    /// pack it rewrites), whether or not the vault's index lists the object elsewhere.
    pub fn add_sealed(
        &mut self,
        vault: &mut Vault,
        id: ChunkId,
        sealed: &[u8],
    ) -> Result<(), VaultError> {
        if self.pending.contains(&id) {
            return Ok(());
        }
        self.push(vault, id, sealed)
    }

    fn push(&mut self, vault: &mut Vault, id: ChunkId, sealed: &[u8]) -> Result<(), VaultError> {
        let slice = PackSlice {
            offset: self.buf.len() as u32,
            len: sealed.len() as u32,
        };
        self.buf.extend_from_slice(sealed);
        self.entries.push((id, slice));
        self.pending.insert(id);
        if self.buf.len() >= PACK_TARGET || self.entries.len() >= MAX_PACK_OBJECTS as usize {
            self.flush(vault)?;
        }
        Ok(())
    }

    /// Stores the pack, then its index; from then on its objects are in the vault.
    pub fn flush(&mut self, vault: &mut Vault) -> Result<(), VaultError> {
        if self.entries.is_empty() {
            return Ok(());
        }
        vault.backend.put(&pack_key(self.id), &self.buf)?;
        let mut entries = std::mem::take(&mut self.entries);
        entries.sort_by_key(|(id, _)| *id);
        let index = PackIndex {
            pack: self.id,
            entries,
        };
        let pack = self.id;
        let sealed = vault.seal(&index.encode(), &|| {
            format!("sealing the index of pack {pack}")
        })?;
        vault.backend.put(&index_key(self.id), &sealed)?;
        self.uploaded += (self.buf.len() + sealed.len()) as u64;
        self.objects += index.entries.len() as u64;
        self.packs.push(self.id);
        for (id, slice) in index.entries {
            vault.index.insert(id, (self.id, slice));
        }
        self.pending.clear();
        self.id = new_id()?;
        self.buf = vault_pack::encode_header(self.id);
        Ok(())
    }
}
