//! `snapfs attach LOCATION STORE`: disaster recovery on a new host. The store is made from the
//! newest checkpoint alone (the namespace and everything else a mount needs); its packs are
//! holes of the right length, filled from the object store as they are read.
//!
//! Attaching takes the share's writer lease first: refused while another host holds it,
//! unless forced. The checkpoint it starts from is then published again under the new lease
//! (a fence): from that moment the newest checkpoint is the new writer's, whatever the old one
//! still publishes.

use std::path::Path;

use serde::Serialize;

use super::layout::CheckpointId;
use super::{TierError, checkpoint, layout, lease, uploaded};
use crate::chunk_store::{PACK_DIR, PackFile};
use crate::format::store_config::{STORE_CONFIG_FILE, StoreConfig, TierConfig};
use crate::progress::{Progress, Unit};
use crate::storage::durable;

/// What `attach` made.
#[derive(Clone, Debug, Serialize)]
pub struct AttachReport {
    pub share_id: String,
    /// The share's writer lease the new store holds.
    pub lease: u64,
    /// The checkpoint the store starts from, as published again under its lease.
    pub checkpoint: u64,
    pub checkpoint_bytes: u64,
    pub packs: u64,
    /// Bytes of pack data left in the object store, fetched when read.
    pub tiered_bytes: u64,
}

/// Makes a new store in `dir` (missing or empty) from the newest checkpoint of the tiered
/// share at `config.location`. The store gets an epoch of its own and the share's writer
/// lease; `force` takes the lease from a host that still holds it.
pub fn attach(
    config: TierConfig,
    dir: &Path,
    force: bool,
    progress: &Progress,
) -> Result<AttachReport, TierError> {
    let backend = super::open_backend(&config)?;
    let marker = super::read_marker(&*backend)?;
    if checkpoint::all(&*backend)?.is_empty() {
        return Err(TierError::Invalid(format!(
            "{} holds no checkpoint yet (the share's first one is published within a second \
             of its first mount)",
            backend.describe()
        )));
    }
    let exists = match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(TierError::Invalid(format!(
                    "{} is not empty; attach makes a new store",
                    dir.display()
                )));
            }
            true
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => false,
        Err(err) => return Err(err.into()),
    };
    lease::check_server(&*backend, config.single_host)?;
    let epoch = uploaded::new_epoch()?;
    let generation = lease::take(
        &*backend,
        &lease::Holder::this_process(epoch, config.lease_timeout_secs),
        force,
    )?;
    if !exists && let Err(err) = durable::create_dir(dir) {
        let _ = lease::release(&*backend, generation);
        return Err(err.into());
    }
    let made = populate(&*backend, &marker, config, dir, epoch, generation, progress);
    if made.is_err() {
        // Nothing was attached: the directory is empty again, and the share free at once
        // rather than after the lease's timeout.
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                let _ = std::fs::remove_dir_all(entry.path())
                    .or_else(|_| std::fs::remove_file(entry.path()));
            }
        }
        let _ = lease::release(&*backend, generation);
    }
    let report = made?;
    if marker.is_outdated() {
        backend.put(&layout::marker_key(), &marker.upgraded().encode())?;
    }
    Ok(report)
}

/// Makes the store in the empty directory `dir` from the newest checkpoint, under lease
/// `generation`, and publishes the fence.
fn populate(
    backend: &dyn crate::blob::BlobBackend,
    marker: &layout::ShareMarker,
    config: TierConfig,
    dir: &Path,
    epoch: u64,
    generation: u64,
    progress: &Progress,
) -> Result<AttachReport, TierError> {
    let published = checkpoint::all(backend)?;
    let newest = *published
        .last()
        .ok_or_else(|| TierError::Invalid("the share's checkpoints vanished".into()))?;
    let meta = dir.join("meta.redb");
    let bytes = checkpoint::download(backend, newest, &meta, progress)?;
    let fence = CheckpointId {
        lease: generation,
        seq: published.iter().map(|id| id.seq).max().unwrap_or(0) + 1,
    };
    let packs = {
        let db = redb::Database::open(&meta)?;
        let view = redb::ReadableDatabase::begin_read(&db)?;
        let named = crate::chunk_store::index::pack_lengths(&view)?;
        let recorded = uploaded::read(&view)?;
        drop(view);
        uploaded::set_epoch(&db, epoch)?;
        uploaded::set_lease(&db, generation)?;
        durable::create_dir(&dir.join(PACK_DIR))?;
        progress.stage("making the packs", Unit::Items, Some(named.len() as u64));
        for (id, len) in &named {
            progress.add(1);
            if !recorded.contains_key(id) {
                return Err(TierError::Invalid(format!(
                    "checkpoint {newest} names pack {id}, which it does not record as uploaded"
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
    backend.put_if_absent(&layout::checkpoint_key(fence), &bytes)?;
    Ok(AttachReport {
        share_id: marker.share_id.clone(),
        lease: generation,
        checkpoint: fence.seq,
        checkpoint_bytes: bytes.len() as u64,
        packs: packs.len() as u64,
        tiered_bytes: packs.iter().map(|(_, len)| len).sum(),
    })
}
