//! `snapfs attach LOCATION STORE`: disaster recovery on a new host. The store is made from the
//! newest checkpoint alone (the namespace and everything else a mount needs); its packs are
//! holes of the right length, filled from the object store as they are read.

use std::path::Path;

use serde::Serialize;

use super::{TierError, checkpoint, layout, uploaded};
use crate::chunk_store::{PACK_DIR, PackFile};
use crate::format::store_config::{STORE_CONFIG_FILE, StoreConfig, TierConfig};
use crate::storage::durable;

/// What `attach` made.
#[derive(Clone, Debug, Serialize)]
pub struct AttachReport {
    pub share_id: String,
    pub checkpoint: u64,
    pub checkpoint_bytes: u64,
    pub packs: u64,
    /// Bytes of pack data left in the object store, fetched when read.
    pub tiered_bytes: u64,
}

/// Makes a new store in `dir` (missing or empty) from the newest checkpoint of the tiered
/// share at `config.location`. The store gets an epoch of its own.
pub fn attach(config: TierConfig, dir: &Path) -> Result<AttachReport, TierError> {
    let backend = super::open_backend(&config)?;
    let marker = match backend.get(&layout::marker_key()) {
        Ok(bytes) => layout::ShareMarker::decode(&bytes).map_err(TierError::Invalid)?,
        Err(crate::blob::BlobError::NotFound(_)) => {
            return Err(TierError::Invalid(format!(
                "{} holds no tiered snapfs share",
                backend.describe()
            )));
        }
        Err(err) => return Err(err.into()),
    };
    let seq = checkpoint::all(&*backend)?.last().copied().ok_or_else(|| {
        TierError::Invalid(format!(
            "{} holds no checkpoint yet (the share's first one is published within a second \
             of its first mount)",
            backend.describe()
        ))
    })?;
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(TierError::Invalid(format!(
                    "{} is not empty; attach makes a new store",
                    dir.display()
                )));
            }
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => durable::create_dir(dir)?,
        Err(err) => return Err(err.into()),
    }
    let meta = dir.join("meta.redb");
    checkpoint::download(&*backend, seq, &meta)?;
    let checkpoint_bytes = backend
        .head(&layout::checkpoint_key(seq))?
        .unwrap_or_default();
    let packs = {
        let db = redb::Database::open(&meta)?;
        let view = redb::ReadableDatabase::begin_read(&db)?;
        let named = crate::chunk_store::index::pack_lengths(&view)?;
        let recorded = uploaded::read(&view)?;
        drop(view);
        uploaded::set_epoch(&db, uploaded::new_epoch()?)?;
        durable::create_dir(&dir.join(PACK_DIR))?;
        for (id, len) in &named {
            if !recorded.contains_key(id) {
                return Err(TierError::Invalid(format!(
                    "checkpoint {seq} names pack {id}, which it does not record as uploaded"
                )));
            }
            PackFile::create_uncached(&dir.join(PACK_DIR), *id, *len)?;
        }
        named
    };
    std::fs::File::open(dir.join(PACK_DIR))?.sync_all()?;
    let mut store =
        StoreConfig::new(marker.block_size).map_err(|err| TierError::Invalid(err.to_string()))?;
    store.share_id = Some(marker.share_id.clone());
    store.tier = Some(config);
    durable::write_new_file(&dir.join(STORE_CONFIG_FILE), &store.encode())?;
    Ok(AttachReport {
        share_id: marker.share_id,
        checkpoint: seq,
        checkpoint_bytes,
        packs: packs.len() as u64,
        tiered_bytes: packs.iter().map(|(_, len)| len).sum(),
    })
}
