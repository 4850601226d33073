//! Checkpoints: the metadata database as of one commit, as a database file of its own,
//! compressed, in the object store. With the packs it names (uploaded first), a checkpoint is
//! everything a new host needs to mount the share: namespace, block maps, chunk index, snapshot
//! catalog, accounting, policies and job log.
//!
//! A checkpoint is taken from a redb read transaction, a consistent view that commits going on
//! meanwhile do not change, so taking one holds nothing the share needs: writers and commits
//! carry on while its rows are copied. The copy costs time in proportion to the metadata.

use std::io::{Read, Write};
use std::path::Path;

use redb::{Database, ReadTransaction, WriteTransaction};

use super::TierError;
use super::layout::{self, CheckpointId};
use super::uploaded::Uploaded;
use crate::blob::BlobBackend;
use crate::id::PackId;
use crate::progress::{Progress, Unit};

/// Copies every table a mount needs from one view of the metadata database into another
/// database (given by the layer that knows all of them: see `service::copy_store_tables`).
pub type CopyTables = std::sync::Arc<
    dyn Fn(&ReadTransaction, &WriteTransaction) -> Result<(), redb::Error> + Send + Sync,
>;

/// zstd level for checkpoints: metadata compresses well, and this runs in the background.
const ZSTD_LEVEL: i32 = 3;

/// Builds a checkpoint from `view`: its tables, with `tier_packs` replaced by `uploaded` (where
/// each pack `view` names now is in the object store), as a compressed database file. `scratch`
/// (a file path inside the store) holds the database meanwhile and is removed afterwards.
pub fn build(
    view: &ReadTransaction,
    copy: &CopyTables,
    uploaded: &[(PackId, Uploaded)],
    scratch: &Path,
) -> Result<Vec<u8>, TierError> {
    let _ = std::fs::remove_file(scratch);
    let result = (|| {
        {
            let db = Database::create(scratch)?;
            let txn = db.begin_write()?;
            copy(view, &txn)?;
            super::uploaded::record_in(&txn, uploaded)?;
            txn.commit()?;
        }
        let mut file = std::fs::File::open(scratch)?;
        let mut encoder = zstd::Encoder::new(Vec::new(), ZSTD_LEVEL)?;
        std::io::copy(&mut file, &mut encoder)?;
        Ok::<_, TierError>(encoder.finish()?)
    })();
    let _ = std::fs::remove_file(scratch);
    result
}

/// Every published checkpoint, oldest first (see `layout::CheckpointId` for the order).
pub fn all(backend: &dyn BlobBackend) -> Result<Vec<CheckpointId>, TierError> {
    let mut ids: Vec<CheckpointId> = backend
        .list(layout::CHECKPOINTS)?
        .iter()
        .filter_map(|meta| layout::parse_checkpoint_key(meta.key.as_str()))
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

/// Downloads checkpoint `id` into a new database file at `to`, made durable; returns the
/// compressed bytes as published. `progress` follows the download, then the compressed bytes
/// unpacked.
pub fn download(
    backend: &dyn BlobBackend,
    id: CheckpointId,
    to: &Path,
    progress: &Progress,
) -> Result<Vec<u8>, TierError> {
    progress.stage("downloading the checkpoint", Unit::Bytes, None);
    let compressed = backend.get(&layout::checkpoint_key(id))?;
    progress.set(compressed.len() as u64);
    progress.stage(
        "unpacking the checkpoint",
        Unit::Bytes,
        Some(compressed.len() as u64),
    );
    let mut decoder = zstd::Decoder::new(Counted {
        bytes: &compressed[..],
        progress,
    })?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(to)?;
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = decoder.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        file.write_all(&buffer[..n])?;
    }
    file.sync_all()?;
    Ok(compressed)
}

/// A reader that counts what is read from it into a [`Progress`].
struct Counted<'a> {
    bytes: &'a [u8],
    progress: &'a Progress,
}

impl Read for Counted<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.bytes.read(buf)?;
        self.progress.add(n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::ReadableDatabase;

    /// Every table of a store with files, snapshots, a policy and jobs is in its checkpoint:
    /// a table added later without being added to `service::copy_store_tables` fails here.
    #[test]
    fn a_checkpoint_holds_every_table_and_every_row() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("store");
        crate::store::Store::init(&dir, 4096, 0, 0).expect("init");
        let live = crate::testing::open(&dir);
        crate::testing::mkdir(&live, "a");
        crate::testing::write_file(&live, "a/file", b"contents");
        let snapshots = std::sync::Arc::new(crate::testing::snapshots_of(&live));
        snapshots
            .create("one", crate::format::catalog::Origin::Manual)
            .expect("snapshot");
        // The service's tables (settings, jobs, space history) too.
        let service =
            crate::service::Service::open(snapshots.clone(), Default::default()).expect("service");
        service
            .create("two", crate::format::catalog::Origin::Manual, false)
            .expect("snapshot through the service");
        live.commit_now().expect("commit");
        let db = live.database();
        let copy: CopyTables = std::sync::Arc::new(crate::service::copy_store_tables);
        let view = db.begin_read().expect("view");
        let bytes = build(&view, &copy, &[], &tmp.path().join("scratch")).expect("build");
        let restored = tmp.path().join("restored.redb");
        std::fs::write(&restored, zstd::decode_all(&bytes[..]).expect("decompress"))
            .expect("write");
        let copy_db = Database::open(&restored).expect("open");
        let names = |txn: &ReadTransaction| -> Vec<(String, u64)> {
            let mut out: Vec<(String, u64)> = txn
                .list_tables()
                .expect("tables")
                .map(|t| {
                    let name = redb::TableHandle::name(&t).to_owned();
                    let rows = redb::ReadableTableMetadata::len(
                        &txn.open_untyped_table(t).expect("table"),
                    )
                    .expect("len");
                    (name, rows)
                })
                .filter(|(name, _)| !name.starts_with("tier_"))
                .collect();
            out.sort();
            out
        };
        let original = names(&view);
        assert!(original.len() > 15, "{original:?}");
        assert_eq!(names(&copy_db.begin_read().expect("view")), original);
        drop((view, service, snapshots));
        crate::testing::close(live);
    }
}
