//! `vault copy VAULT OTHER_VAULT [BACKUP...]`: copies backups (all by default) into another
//! vault, which may have another key: each object is read from the source (unsealed, checked
//! against its id) and sealed again for the destination.
//!
//! Incremental the way a backup is: each backup's tree is walked with an explicit stack,
//! children before their parent, and every subtree whose root the destination's index lists
//! is skipped unread (the destination keeps the subtree-closure invariant too). Objects go
//! into packs, each stored before its index, and a backup's record is written after the last
//! index its tree needs: data → index → record, as for a backup, with the same crash analysis.
//! A copied backup keeps its backup id, so a backup the destination already holds (same id,
//! or same share, name and root) is skipped; holds are not copied (a hold protects a backup in
//! one vault).

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use super::lock::{LockKind, VaultLock};
use super::pack_writer::PackWriter;
use super::tree::{Child, read_node};
use super::{Vault, VaultError, backup_key};
use crate::blob::BlobError;
use crate::format::backup_record::BackupRecord;
use crate::format::catalog::Hold;
use crate::id::{BackupId, ChunkId};
use crate::progress::{Progress, Unit};

/// What a copy did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CopyReport {
    /// Backups copied, by name.
    pub copied: Vec<String>,
    /// Backups the destination already held.
    pub skipped: Vec<String>,
    /// Objects sent (chunks and tree objects).
    pub objects_sent: u64,
    /// Bytes stored in the destination (packs, indexes and records).
    pub bytes_added: u64,
}

enum Step {
    /// Send this tree object's subtree, then the object.
    Tree(ChunkId),
    /// Everything below is sent: send the object (its bytes as the source holds them).
    Emit(ChunkId, Vec<u8>),
    Data(ChunkId),
}

/// Copies the backups `names` (every backup if empty) from `source` into `dest`.
pub fn copy(
    source: &mut Vault,
    dest: &mut Vault,
    names: &[String],
    progress: &Progress,
) -> Result<CopyReport, VaultError> {
    let _source_lock = VaultLock::acquire(source, LockKind::Shared, "copy (source)")?;
    let _dest_lock = VaultLock::acquire(dest, LockKind::Shared, "copy")?;
    source.reload_index()?;
    dest.reload_index()?;
    let backups: Vec<(BackupId, BackupRecord)> = if names.is_empty() {
        source.records()?
    } else {
        let mut chosen = Vec::new();
        for name in names {
            let found = source.find(name)?;
            if !chosen.iter().any(|(id, _)| *id == found.0) {
                chosen.push(found);
            }
        }
        chosen
    };
    let there: HashMap<BackupId, BackupRecord> = dest.records()?.into_iter().collect();
    let mut report = CopyReport::default();
    let mut writer = PackWriter::new()?;
    let mut expanded: HashSet<ChunkId> = HashSet::new();
    progress.stage("copying to the vault", Unit::Bytes, None);
    for (id, record) in backups {
        let same = there
            .values()
            .find(|other| other.share == record.share && other.name == record.name);
        if there.contains_key(&id) || same.is_some_and(|other| other.root == record.root) {
            report.skipped.push(record.name);
            continue;
        }
        if same.is_some() {
            return Err(VaultError::NameTaken(record.name));
        }
        let before = writer.uploaded;
        send_tree(
            source,
            dest,
            &mut writer,
            &mut expanded,
            record.root,
            progress,
        )?;
        writer.flush(dest)?;
        let copied = BackupRecord {
            bytes_added: writer.uploaded - before,
            hold: Hold::None,
            ..record
        };
        let name = copied.name.clone();
        let sealed = dest.seal(&copied.encode(), &|| {
            format!("sealing the record of {name}")
        })?;
        match dest.backend.put_if_absent(&backup_key(id), &sealed) {
            // A concurrent copy of the same backup got there first.
            Ok(()) | Err(BlobError::AlreadyExists(_)) => {}
            Err(err) => return Err(err.into()),
        }
        report.bytes_added += sealed.len() as u64;
        tracing::info!(
            from = source.describe(),
            to = dest.describe(),
            backup = name,
            "copied"
        );
        report.copied.push(name);
    }
    report.objects_sent = writer.objects;
    report.bytes_added += writer.uploaded;
    Ok(report)
}

/// Sends every object of the tree at `root` that `dest` lacks, children first.
fn send_tree(
    source: &Vault,
    dest: &mut Vault,
    writer: &mut PackWriter,
    expanded: &mut HashSet<ChunkId>,
    root: ChunkId,
    progress: &Progress,
) -> Result<(), VaultError> {
    let mut stack = vec![Step::Tree(root)];
    while let Some(step) = stack.pop() {
        match step {
            Step::Data(id) => {
                if dest.contains(&id) || writer.holds(&id) {
                    continue;
                }
                let bytes = source.read_object(&id)?;
                writer.add(dest, id, &bytes)?;
                progress.add(bytes.len() as u64);
            }
            Step::Emit(id, bytes) => {
                writer.add(dest, id, &bytes)?;
                progress.add(bytes.len() as u64);
            }
            Step::Tree(id) => {
                if dest.contains(&id) || writer.holds(&id) || !expanded.insert(id) {
                    continue;
                }
                let node = read_node(source, &id)?;
                // A multipart object's parts are leaves, stored before the object.
                for (part, bytes) in &node.parts {
                    writer.add(dest, *part, bytes)?;
                    progress.add(bytes.len() as u64);
                }
                let children = super::tree::children(&node.object)
                    .into_iter()
                    .map(|child| match child {
                        Child::Tree(id, _) | Child::Segment(id) => Step::Tree(id),
                        Child::Data(id) => Step::Data(id),
                    })
                    .collect::<Vec<_>>();
                stack.push(Step::Emit(id, node.bytes));
                stack.extend(children);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::blob::{BlobBackend, RemoteStore};
    use crate::vault::tests::{Fixture, Shared, TEST_KDF};
    use crate::vault::verify::verify;
    use crate::vault::{Secret, init};

    #[test]
    fn a_copy_into_a_vault_with_another_key_restores_and_a_second_copy_sends_nothing() {
        let fixture = Fixture::in_memory();
        let mut source = fixture.vault();
        let other = Shared(Arc::new(RemoteStore::in_memory()));
        let key = Secret::KeyFile(b"another vault's key".to_vec());
        init::init(&other, &key, TEST_KDF).expect("init");
        let mut dest = Vault::open_backend(Box::new(other.clone()), &key).expect("open");

        let first = copy(
            &mut source,
            &mut dest,
            &["new".to_owned()],
            &Progress::new(),
        )
        .expect("copy new");
        assert_eq!(first.copied, ["new"]);
        assert!(first.bytes_added > 2_000_000, "{first:?}");
        let all = copy(&mut source, &mut dest, &[], &Progress::new()).expect("copy all");
        assert_eq!(all.copied, ["old"]);
        assert_eq!(all.skipped, ["new"]);
        assert!(
            all.bytes_added < 2_300_000,
            "old shares common with new: {all:?}"
        );
        let again = copy(&mut source, &mut dest, &[], &Progress::new()).expect("copy again");
        assert_eq!(again.copied.len(), 0);
        assert_eq!(again.bytes_added, 0);
        assert_eq!(again.objects_sent, 0);

        let listed: Vec<_> = dest.records().expect("records").into_iter().collect();
        let ids: Vec<_> = source.records().expect("records").into_iter().collect();
        assert_eq!(
            listed
                .iter()
                .map(|(id, r)| (*id, r.root))
                .collect::<Vec<_>>(),
            ids.iter().map(|(id, r)| (*id, r.root)).collect::<Vec<_>>(),
            "copies keep their backup ids"
        );
        fixture.check_restores(&dest, "new");
        fixture.check_restores(&dest, "old");
        let report = verify(&mut dest, true, &crate::progress::Progress::new()).expect("verify");
        assert!(report.problems.is_empty(), "{:?}", report.problems);

        // And back, into a vault that lost one backup: only that one is sent.
        crate::vault::retention::delete(&source, &["old".to_owned()]).expect("delete");
        crate::vault::gc::gc(&mut source, false).expect("gc");
        let back = copy(&mut dest, &mut source, &[], &Progress::new()).expect("copy back");
        assert_eq!(back.copied, ["old"]);
        fixture.check_restores(&source, "old");
        assert!(!other.list("backups").expect("list").is_empty());
    }
}
