//! `backup`: copies one snapshot into a vault, sending only what the vault lacks.
//!
//! The tree is walked depth first with an explicit stack (a snapshot may be arbitrarily deep),
//! children before their parent (post-order): a subtree whose root object the vault already
//! holds is skipped unread, because the vault's invariant says its whole subtree is there.
//! Missing chunks and objects go into packs; the last pack and its index are stored before the
//! record, so the order of every backup is data → index → record:
//!
//! 1. killed while filling or storing a pack: that pack is lost (or stored without an index,
//!    and never used); every earlier pack has its index, and the next run skips what they hold;
//! 2. killed after the last index, before the record: everything is there, the next run sends
//!    nothing and writes the record;
//! 3. the record is one atomic put: the backup is listed whole, or not at all.
//!
//! The whole backup holds a shared vault lock (`vault::lock`), so no gc deletes what the walk
//! skipped because the index listed it. From a tiered store, the packs the object store can
//! copy into the vault itself are copied first (`server_copy`), and the walk skips their
//! chunks as it skips anything the vault holds.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::lock::{LockKind, VaultLock};
use super::pack_writer::{self, PackWriter};
use super::{Vault, VaultError, backup_key, server_copy, size};
use crate::chunk_store::ChunkStore;
use crate::format::backup_record::BackupRecord;
use crate::format::object::{Object, ObjectId};
use crate::id::{BackupId, ChunkId, ShareId};
use crate::live::DataWorkers;
use crate::progress::{Progress, Unit};
use crate::snapshot::Snapshots;
use crate::tree_objects::TreeObjects;

/// What a backup did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupReport {
    pub name: String,
    pub share: String,
    /// Objects (chunks and tree objects) sent.
    pub objects_sent: u64,
    /// Bytes stored in the vault (packs and indexes).
    pub bytes_added: u64,
    /// Bytes of file data the backup holds.
    pub size: u64,
    /// The vault already held this backup: nothing was sent.
    pub already_there: bool,
    /// Packs of the tiered store the object store copied into the vault (see
    /// `server_copy`), and their bytes (part of `bytes_added`, none of which passed through
    /// this host).
    #[serde(default)]
    pub packs_copied: u64,
    #[serde(default)]
    pub bytes_copied: u64,
}

/// A step of the walk.
pub(super) enum Step {
    /// Send this tree object's subtree, then the object itself.
    Tree(ObjectId),
    /// Every child of this tree object is in the vault: send the object.
    Emit(ObjectId),
    /// A chunk of file data (or a part of a multipart object): a leaf.
    Data(ChunkId),
}

/// Backs up the snapshot `name` of the share `share` into `vault`.
pub fn backup(
    vault: &mut Vault,
    snapshots: &Snapshots,
    name: &str,
    share: ShareId,
    progress: &Progress,
) -> Result<BackupReport, VaultError> {
    // Pinned: the snapshot cannot be deleted (nor its chunks collected) while it is read.
    let pin = snapshots.pin(name)?;
    let mut phases = crate::phases::Phases::start();
    // No gc from here to the record: the walk skips what the index lists, and gc could
    // delete it. The index is read again under the lock, after any gc that ran before.
    let _lock = VaultLock::acquire(vault, LockKind::Shared, "backup")?;
    phases.lap("lock");
    vault.reload_index()?;
    phases.lap("index");
    let records = vault.records()?;
    phases.lap("records");
    let existing = records
        .iter()
        .find(|(_, record)| record.share == share && record.name == name);
    if let Some((_, record)) = &existing {
        if record.root != pin.record.root {
            return Err(VaultError::NameTaken(name.to_owned()));
        }
        return Ok(BackupReport {
            name: name.to_owned(),
            share: share.to_hex(),
            size: record.size,
            already_there: true,
            ..BackupReport::default()
        });
    }
    let objects = snapshots.objects();
    let mut writer = PackWriter::new()?;
    progress.stage("sending to the vault", Unit::Bytes, None);
    let copied = match snapshots.live().tier() {
        Some(tier) => {
            server_copy::copy_tier_packs(vault, objects, tier, pin.record.root, progress)?
        }
        None => server_copy::Copied::default(),
    };
    phases.lap("server-side copies");
    send_tree(
        vault,
        objects,
        snapshots.live().workers(),
        &mut writer,
        pin.record.root,
        progress,
    )?;
    phases.lap("send");
    writer.flush(vault)?;
    phases.lap("flush");
    // The newest backup of this share: the size is counted from it (records are oldest first).
    let base = records
        .iter()
        .rev()
        .find(|(_, record)| record.share == share)
        .map(|(_, record)| size::Base {
            root: record.root,
            size: record.size,
        });
    let size = size::tree_size(vault, objects, pin.record.root, base)?;
    phases.lap("size");
    let record = BackupRecord {
        share,
        name: name.to_owned(),
        created: pin.record.created,
        root: pin.record.root,
        root_perm: pin.record.root_perm,
        root_uid: pin.record.root_uid,
        root_gid: pin.record.root_gid,
        block_size: snapshots.live().block_size(),
        size,
        bytes_added: writer.uploaded + copied.bytes,
        hold: crate::format::catalog::Hold::None,
    };
    let sealed = vault
        .sealer
        .seal(&record.encode())
        .map_err(|source| VaultError::Crypto {
            what: format!("sealing the record of {name}"),
            source,
        })?;
    let id = BackupId::random().map_err(|err| VaultError::Io(err.to_string()))?;
    vault.backend.put_if_absent(&backup_key(id), &sealed)?;
    phases.lap("record");
    let report = BackupReport {
        name: name.to_owned(),
        share: share.to_hex(),
        objects_sent: writer.objects + copied.objects,
        bytes_added: writer.uploaded + copied.bytes,
        size,
        already_there: false,
        packs_copied: copied.packs,
        bytes_copied: copied.bytes,
    };
    tracing::info!(vault = vault.describe(), ?report, "backed up");
    tracing::debug!(phases = %phases, "where the backup's time went");
    Ok(report)
}

/// Objects sealed at once on the data workers: enough to keep every core busy, few enough
/// that their bytes (at most this many blocks) stay small.
const SEAL_BATCH: usize = 32;
/// Batches handed to the sealing thread and not yet appended: while the workers seal one, the
/// walk gathers the next and the packs take the one before.
const BATCHES_IN_FLIGHT: usize = 2;

/// An object on its way into a pack.
#[derive(Clone, Copy)]
enum Outgoing {
    /// A chunk, sent as the chunk store keeps it.
    Stored(ChunkId),
    /// A tree object, compressed for the vault (the parts of a multipart one are chunks).
    Object(ChunkId),
}

impl Outgoing {
    fn id(&self) -> ChunkId {
        match self {
            Outgoing::Stored(id) | Outgoing::Object(id) => *id,
        }
    }
}

/// A batch as the sealing thread hands it back, in the order it was given.
type Sealed = Vec<(ChunkId, Result<Vec<u8>, VaultError>)>;

/// Sends every object of the tree at `root` that the vault lacks, children first.
///
/// Three stages overlap: this thread walks and queues what must be sent in the order it finds
/// it; a sealing thread has each batch read, verified and sealed on the data workers; this
/// thread appends sealed batches to the packs in that same order (so a tree object never
/// lands in an earlier pack than what lies below it), and the pack writer's threads store
/// full packs.
fn send_tree(
    vault: &mut Vault,
    objects: &TreeObjects,
    workers: &DataWorkers,
    writer: &mut PackWriter,
    root: ObjectId,
    progress: &Progress,
) -> Result<(), VaultError> {
    let chunks = objects.chunks();
    let sealer = vault.sealer.clone();
    std::thread::scope(|scope| {
        let (to_seal, batches) = std::sync::mpsc::channel::<Vec<Outgoing>>();
        let (to_append, sealed) = std::sync::mpsc::channel::<Sealed>();
        std::thread::Builder::new()
            .name("vault-seal".into())
            .spawn_scoped(scope, move || {
                for batch in batches {
                    let out = workers.map(&batch, |item| {
                        let sealed = match *item {
                            Outgoing::Stored(id) => chunks
                                .with_stored(&id, |stored| {
                                    pack_writer::seal_stored(&sealer, id, stored)
                                })
                                .map_err(VaultError::from)
                                .and_then(|sealed| sealed),
                            Outgoing::Object(id) => chunks
                                .get(&id)
                                .map_err(VaultError::from)
                                .and_then(|raw| pack_writer::seal_object(&sealer, id, &raw)),
                        };
                        (item.id(), sealed)
                    });
                    if to_append.send(out).is_err() {
                        return;
                    }
                }
            })
            .map_err(|err| VaultError::Io(format!("starting the sealing thread: {err}")))?;
        let mut pipeline = Pipeline {
            to_seal,
            sealed,
            in_flight: 0,
            queued: HashSet::new(),
        };
        walk(vault, objects, writer, root, progress, &mut pipeline)?;
        pipeline.drain(vault, writer, progress, 0)
    })
}

/// The walk's side of the sealing thread: what it was handed and has not given back.
struct Pipeline {
    to_seal: std::sync::mpsc::Sender<Vec<Outgoing>>,
    sealed: std::sync::mpsc::Receiver<Sealed>,
    in_flight: usize,
    /// Chunks handed over and not yet appended (the writer holds them from then on).
    queued: HashSet<ChunkId>,
}

impl Pipeline {
    fn send(&mut self, chunks: &ChunkStore, batch: Vec<Outgoing>) -> Result<(), VaultError> {
        // The chunks are read while the batches before are sealed.
        let stored: Vec<ChunkId> = batch
            .iter()
            .filter_map(|item| match item {
                Outgoing::Stored(id) => Some(*id),
                Outgoing::Object(_) => None,
            })
            .collect();
        chunks.read_ahead(&stored)?;
        self.to_seal
            .send(batch)
            .map_err(|_| VaultError::Io("the sealing thread stopped".into()))?;
        self.in_flight += 1;
        Ok(())
    }

    /// Appends sealed batches, in order, until at most `keep` are in flight.
    fn drain(
        &mut self,
        vault: &mut Vault,
        writer: &mut PackWriter,
        progress: &Progress,
        keep: usize,
    ) -> Result<(), VaultError> {
        while self.in_flight > keep {
            let batch = self
                .sealed
                .recv()
                .map_err(|_| VaultError::Io("the sealing thread stopped".into()))?;
            self.in_flight -= 1;
            for (id, sealed) in batch {
                let sealed = sealed?;
                writer.add_sealed(vault, id, &sealed)?;
                self.queued.remove(&id);
                progress.add(sealed.len() as u64);
            }
        }
        Ok(())
    }
}

/// Pushes what lies under the tree object `id` onto a walk's stack: the parts of a multipart
/// object as leaves, then the children of the whole.
pub(super) fn push_children(
    objects: &TreeObjects,
    id: ObjectId,
    stack: &mut Vec<Step>,
) -> Result<(), VaultError> {
    for part in objects.object_chunks(&id)?.into_iter().skip(1) {
        stack.push(Step::Data(part));
    }
    match objects.get(&id)? {
        Object::Directory(dir) => {
            stack.extend(dir.entries.iter().filter_map(|e| e.object.map(Step::Tree)));
        }
        Object::File(file) => {
            stack.extend(file.segments.iter().map(|(_, seg)| Step::Tree(*seg)));
        }
        Object::Segment(segment) => {
            stack.extend(segment.blocks.iter().map(|(_, chunk)| Step::Data(*chunk)));
        }
        Object::Multipart(_) => {
            return Err(VaultError::Damaged(format!(
                "object {id}: nested multipart"
            )));
        }
    }
    Ok(())
}

/// The walk itself: queues in `pipeline` every object of the tree at `root` that neither the
/// vault nor the writer holds, children before their parent.
fn walk(
    vault: &mut Vault,
    objects: &TreeObjects,
    writer: &mut PackWriter,
    root: ObjectId,
    progress: &Progress,
    pipeline: &mut Pipeline,
) -> Result<(), VaultError> {
    // Tree objects already expanded in this run (a subtree may appear many times in a tree).
    let mut expanded: HashSet<ObjectId> = HashSet::new();
    let mut batch: Vec<Outgoing> = Vec::with_capacity(SEAL_BATCH);
    let mut stack = vec![Step::Tree(root)];
    while let Some(step) = stack.pop() {
        match step {
            Step::Data(id) => {
                if !vault.contains(&id) && !writer.holds(&id) && pipeline.queued.insert(id) {
                    batch.push(Outgoing::Stored(id));
                }
            }
            Step::Emit(id) => batch.push(Outgoing::Object(id)),
            Step::Tree(id) => {
                if vault.contains(&id) || writer.holds(&id) || !expanded.insert(id) {
                    continue;
                }
                stack.push(Step::Emit(id));
                push_children(objects, id, &mut stack)?;
            }
        }
        if batch.len() >= SEAL_BATCH {
            pipeline.send(
                objects.chunks(),
                std::mem::replace(&mut batch, Vec::with_capacity(SEAL_BATCH)),
            )?;
            pipeline.drain(vault, writer, progress, BATCHES_IN_FLIGHT)?;
        }
    }
    if !batch.is_empty() {
        pipeline.send(objects.chunks(), batch)?;
    }
    Ok(())
}
