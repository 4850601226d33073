//! Server-side copies: a backup of a tiered store into an unencrypted vault in the same object
//! store (the same bucket of the same endpoint; or, for directories, any file system of this
//! host) has the object store copy the tier's uploaded packs into the vault whole, instead of
//! downloading their chunks (or reading them from the local cache) and uploading them again.
//!
//! Before the walk that sends, a first walk gathers the file data chunks the vault lacks, finds
//! the pack each lies in, and copies a pack when those chunks take at least half of it (what
//! vault gc keeps as it is; a pack needed less would bring more dead bytes than it saves). The
//! copy is indexed as a pack of chunk-store frames ([`PackKind::Frames`]), naming only the
//! chunks this backup needs; the walk that follows skips them as it skips anything the vault
//! holds.
//!
//! Only file data chunks, which have nothing under them, are indexed from copies, and every
//! copy's index is stored before the walk stores its first pack: so the vault's index stays
//! closed (a tree object is listed only with its subtree) at every moment, as for any backup.
//! Killed between a copy and its index, the copy is a pack without an index, which the next
//! `vault gc` deletes.
//!
//! An encrypted vault never takes copies: its entries must be sealed with its key, which the
//! object store does not have. The bytes copied are not read here; they were verified when the
//! tier uploaded them, and are verified as every entry is when read back (restore, mount,
//! `vault verify --read-data`).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::backup::{Step, push_children};
use super::{Vault, VaultError, index_key, pack_key};
use crate::blob::{BlobBackend, ObjectAddress};
use crate::format::location::ChunkLocation;
use crate::format::object::ObjectId;
use crate::format::vault_index::{PackIndex, PackKind, PackSlice};
use crate::id::{ChunkId, PackId, VaultPackId};
use crate::progress::Progress;
use crate::tier::Tier;
use crate::tree_objects::TreeObjects;

/// Copies made at once: each is the server's work, and a server copies several faster than one
/// after another.
const PARALLEL_COPIES: usize = 4;

/// What the copies added to the vault.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Copied {
    pub packs: u64,
    /// The copies' bytes and their index files'.
    pub bytes: u64,
    /// Chunks indexed from the copies.
    pub objects: u64,
}

/// A pack worth copying: where the tier keeps it, its length, and the chunks needed from it.
struct Candidate {
    source: ObjectAddress,
    len: u64,
    chunks: Vec<(ChunkId, ChunkLocation)>,
}

/// Copies into `vault` the tier's packs that hold most of what the tree at `root` needs and
/// the vault lacks; the vault's index then lists their needed chunks.
pub fn copy_tier_packs(
    vault: &mut Vault,
    objects: &TreeObjects,
    tier: &Tier,
    root: ObjectId,
    progress: &Progress,
) -> Result<Copied, VaultError> {
    let mut copied = Copied::default();
    let reached = tier
        .address()
        .is_some_and(|tier| vault.backend.reaches(&tier));
    if vault.is_encrypted() || !reached {
        return Ok(copied);
    }
    let needed = unsent_data(vault, objects, root)?;
    let candidates = candidates(objects, tier, &needed)?;
    let Some((first, rest)) = candidates.split_first() else {
        return Ok(copied);
    };
    // One copy first: if the server refuses it (permissions, say), the others are not tried.
    match copy_one(&*vault.backend, first, progress) {
        Ok(Some(done)) => add(vault, &mut copied, done),
        Ok(None) => return Ok(copied),
        Err(err) => {
            tracing::warn!(%err, "server-side copies failed; sending instead");
            return Ok(copied);
        }
    }
    for result in copy_all(&*vault.backend, rest, progress) {
        match result {
            Ok(Some(done)) => add(vault, &mut copied, done),
            Ok(None) => {}
            // Its chunks are sent the ordinary way.
            Err(err) => tracing::warn!(%err, "a server-side copy failed; sending instead"),
        }
    }
    tracing::info!(
        vault = vault.describe(),
        packs = copied.packs,
        bytes = copied.bytes,
        "copied packs of the tiered store server-side"
    );
    Ok(copied)
}

/// [`copy_one`] for each of `candidates`, [`PARALLEL_COPIES`] at a time.
fn copy_all(
    backend: &dyn BlobBackend,
    candidates: &[Candidate],
    progress: &Progress,
) -> Vec<Result<Option<Done>, VaultError>> {
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..PARALLEL_COPIES.min(candidates.len()))
            .map(|_| {
                let next = &next;
                scope.spawn(move || {
                    let mut out = Vec::new();
                    while let Some(candidate) = candidates.get(next.fetch_add(1, Ordering::Relaxed))
                    {
                        out.push(copy_one(backend, candidate, progress));
                    }
                    out
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// A copy made and indexed: its pack, its index's entries, and the bytes both took.
struct Done {
    pack: VaultPackId,
    entries: Vec<(ChunkId, PackSlice)>,
    bytes: u64,
}

fn add(vault: &mut Vault, copied: &mut Copied, done: Done) {
    copied.packs += 1;
    copied.bytes += done.bytes;
    copied.objects += done.entries.len() as u64;
    vault.frame_packs.insert(done.pack);
    for (id, slice) in done.entries {
        vault.index.insert(id, (done.pack, slice));
    }
}

/// Has `backend` copy `candidate` in as a new pack, then stores its index (never sealed: only
/// an unencrypted vault takes copies), and counts its bytes in `progress`. `None` if the
/// backend cannot reach the tier's objects.
fn copy_one(
    backend: &dyn BlobBackend,
    candidate: &Candidate,
    progress: &Progress,
) -> Result<Option<Done>, VaultError> {
    let pack =
        VaultPackId::random().map_err(|err| VaultError::Io(format!("random pack id: {err}")))?;
    let mut entries = Vec::with_capacity(candidate.chunks.len());
    for (id, at) in &candidate.chunks {
        let Ok(offset) = u32::try_from(at.offset) else {
            return Ok(None); // a pack past 4 GiB: never written by snapfs
        };
        entries.push((
            *id,
            PackSlice {
                offset,
                len: at.frame_len,
            },
        ));
    }
    entries.sort_by_key(|(id, _)| *id);
    if !backend.copy_in(&candidate.source, &pack_key(pack))? {
        return Ok(None);
    }
    // The bytes are the server's to copy; their length at least is checked here.
    let stored = backend.head(&pack_key(pack))?;
    if stored != Some(candidate.len) {
        let _ = backend.delete(&pack_key(pack));
        return Err(VaultError::Damaged(format!(
            "the copy of a tier pack into {pack} holds {stored:?} bytes, not {}",
            candidate.len
        )));
    }
    let index = PackIndex {
        pack,
        kind: PackKind::Frames,
        entries,
    };
    let encoded = index.encode();
    backend.put(&index_key(pack), &encoded)?;
    progress.add(candidate.len);
    Ok(Some(Done {
        pack,
        entries: index.entries,
        bytes: candidate.len + encoded.len() as u64,
    }))
}

/// The file data chunks (and parts of multipart objects) of the tree at `root` that the vault
/// lacks, each once: a walk as the backup's, reading tree objects only.
fn unsent_data(
    vault: &Vault,
    objects: &TreeObjects,
    root: ObjectId,
) -> Result<Vec<ChunkId>, VaultError> {
    let mut expanded: HashSet<ObjectId> = HashSet::new();
    let mut data: HashSet<ChunkId> = HashSet::new();
    let mut stack = vec![Step::Tree(root)];
    while let Some(step) = stack.pop() {
        match step {
            Step::Data(id) => {
                if !vault.contains(&id) {
                    data.insert(id);
                }
            }
            Step::Emit(_) => {}
            Step::Tree(id) => {
                if !vault.contains(&id) && expanded.insert(id) {
                    push_children(objects, id, &mut stack)?;
                }
            }
        }
    }
    Ok(data.into_iter().collect())
}

/// The uploaded packs from which `needed` takes at least half the bytes, largest share first.
fn candidates(
    objects: &TreeObjects,
    tier: &Tier,
    needed: &[ChunkId],
) -> Result<Vec<Candidate>, VaultError> {
    let locations = objects.chunks().locate_all(needed)?;
    let mut by_pack: HashMap<PackId, Vec<(ChunkId, ChunkLocation)>> = HashMap::new();
    for (id, at) in needed.iter().zip(locations) {
        if let Some(at) = at {
            by_pack.entry(at.pack).or_default().push((*id, at));
        }
    }
    let mut out: Vec<(u64, Candidate)> = Vec::new();
    for (pack, chunks) in by_pack {
        let Some((source, len)) = tier.uploaded_pack(pack) else {
            continue;
        };
        // Frames past the uploaded length are not in the object (never the case for a sealed
        // pack, whose whole length is uploaded; checked all the same).
        let chunks: Vec<_> = chunks
            .into_iter()
            .filter(|(_, at)| at.offset + u64::from(at.frame_len) <= len)
            .collect();
        let needed_bytes: u64 = chunks.iter().map(|(_, at)| u64::from(at.frame_len)).sum();
        if needed_bytes * 2 >= len && len > 0 {
            out.push((
                needed_bytes * 1000 / len,
                Candidate {
                    source,
                    len,
                    chunks,
                },
            ));
        }
    }
    out.sort_by_key(|(share, _)| std::cmp::Reverse(*share));
    Ok(out.into_iter().map(|(_, candidate)| candidate).collect())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::blob::RemoteStore;
    use crate::format::pack::{Codec, FrameHeader, encode_pack_header};
    use crate::vault::tests::{Shared, TEST_KDF};
    use crate::vault::{Secret, init};

    /// A chunk-store pack holding `chunks` as raw frames, and where each frame lies.
    fn pack_of(chunks: &[&[u8]]) -> (Vec<u8>, Vec<(ChunkId, PackSlice)>) {
        let mut bytes = encode_pack_header().to_vec();
        let mut entries = Vec::new();
        for chunk in chunks {
            let id = ChunkId::of(chunk);
            let header = FrameHeader {
                codec: Codec::Raw,
                raw_len: chunk.len() as u32,
                stored_len: chunk.len() as u32,
                chunk_id: id,
            };
            let offset = bytes.len() as u32;
            bytes.extend_from_slice(&header.encode());
            bytes.extend_from_slice(chunk);
            let len = bytes.len() as u32 - offset;
            entries.push((id, PackSlice { offset, len }));
        }
        entries.sort_by_key(|(id, _)| *id);
        (bytes, entries)
    }

    /// Stores a pack of frames and its index in `vault`, as a copy would.
    fn store_frames(vault: &Vault, bytes: &[u8], entries: Vec<(ChunkId, PackSlice)>) {
        let pack = VaultPackId::random().expect("id");
        vault.backend.put(&pack_key(pack), bytes).expect("pack");
        let index = PackIndex {
            pack,
            kind: PackKind::Frames,
            entries,
        };
        let sealed = vault
            .seal(&index.encode(), &|| "index".into())
            .expect("seal");
        vault.backend.put(&index_key(pack), &sealed).expect("index");
    }

    #[test]
    fn a_pack_of_frames_reads_back_verified_and_a_wrong_frame_is_damage() {
        let memory = Shared(Arc::new(RemoteStore::in_memory()));
        init::init(&memory, &Secret::None, TEST_KDF).expect("init");
        let mut vault = Vault::open_backend(Box::new(memory.clone()), &Secret::None).expect("open");
        let (one, two) = (vec![1u8; 5000], vec![2u8; 7000]);
        let (bytes, mut entries) = pack_of(&[&one, &two]);
        // A third entry names a chunk the pack does not hold, at the place of another frame.
        let stranger = ChunkId::of(b"not in the pack");
        entries.push((stranger, entries[0].1));
        entries.sort_by_key(|(id, _)| *id);
        store_frames(&vault, &bytes, entries);
        vault.reload_index().expect("reload");
        assert_eq!(vault.read_object(&ChunkId::of(&one)).expect("one"), one);
        assert_eq!(vault.read_object(&ChunkId::of(&two)).expect("two"), two);
        assert!(matches!(
            vault.read_object(&stranger),
            Err(VaultError::Damaged(_))
        ));
    }

    #[test]
    fn an_encrypted_vault_refuses_a_pack_of_frames() {
        let memory = Shared(Arc::new(RemoteStore::in_memory()));
        let secret = Secret::Passphrase(b"a long passphrase".to_vec());
        init::init(&memory, &secret, TEST_KDF).expect("init");
        let mut vault = Vault::open_backend(Box::new(memory.clone()), &secret).expect("open");
        let (bytes, entries) = pack_of(&[&[3u8; 100]]);
        store_frames(&vault, &bytes, entries);
        let err = vault.reload_index().expect_err("refused");
        assert!(err.to_string().contains("unsealed frames"), "{err}");
    }
}
