//! The vault's index in memory: the union of every pack's index file. An index file is written
//! only after its pack, so every entry loaded here names stored bytes; packs without an index
//! (a backup killed between the two) are not loaded, and a later backup sends their objects
//! again into new packs.

use std::collections::HashMap;

use super::{INDEX, Vault, VaultError};
use crate::format::vault_index::{PackIndex, PackSlice};
use crate::id::{ChunkId, VaultPackId};

pub(super) fn load(
    vault: &Vault,
) -> Result<HashMap<ChunkId, (VaultPackId, PackSlice)>, VaultError> {
    let mut out = HashMap::new();
    for meta in vault.backend.list(INDEX)? {
        let Some(pack) = meta
            .key
            .as_str()
            .strip_prefix("index/")
            .and_then(VaultPackId::from_hex)
        else {
            continue;
        };
        let what = || format!("index of pack {pack}");
        let sealed = vault.backend.get(&meta.key)?;
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
        for (id, slice) in index.entries {
            out.insert(id, (pack, slice));
        }
    }
    Ok(out)
}
