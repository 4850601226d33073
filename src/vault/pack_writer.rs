//! Gathers objects into packs and stores them in order: the pack, then its index, then the
//! objects become part of the vault's index in memory. Packs are cut at [`PACK_TARGET`], large
//! enough that a backup is a few large uploads, small enough that a killed backup loses little.
//!
//! Each entry is encoded and sealed in place at the end of the pack being filled (no copy of
//! its bytes but the one into the pack), and a full pack is stored by a thread of the writer's
//! own while the caller fills the next one, so reading and sealing overlap the upload (or the
//! write and fsync of a local vault). That thread stores packs one at a time, in the order they
//! were cut, and stops at its first failure: an index is stored only after its pack and after
//! every earlier pack and index, which is what lets a tree object's pack rely on the packs of
//! the objects below it. [`PackWriter::flush`] waits for every pack cut so far.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, channel, sync_channel};
use std::thread::JoinHandle;

use super::{Vault, VaultError, index_key, pack_key};
use crate::blob::BlobBackend;
use crate::chunk_store::StoredChunk;
use crate::format::pack::Codec;
use crate::format::vault_index::{MAX_PACK_OBJECTS, PackIndex, PackSlice};
use crate::format::vault_pack::{self, EntryCodec};
use crate::id::{ChunkId, VaultPackId};

/// A pack is stored once it holds this many bytes: 16 MiB.
pub(super) const PACK_TARGET: usize = 16 << 20;
/// zstd level for tree objects: a little more effort than the store's, they are sent once.
/// (File data arrives compressed by the store, or known not to compress.)
const ZSTD_LEVEL: i32 = 3;

/// A full pack on its way to the backend, with its sealed index.
struct Upload {
    pack: VaultPackId,
    bytes: Vec<u8>,
    /// The pack's length (its bytes are dropped once stored).
    pack_len: u64,
    index: Vec<u8>,
    entries: Vec<(ChunkId, PackSlice)>,
}

/// What the upload thread reports for each pack, in order.
type Stored = Result<Upload, VaultError>;

/// The thread that stores full packs, and the channels to it.
struct Uploader {
    /// Room for one pack waiting while another is stored: at most three packs in memory.
    to_store: Option<SyncSender<Upload>>,
    stored: Receiver<Stored>,
    thread: Option<JoinHandle<()>>,
    /// Packs handed over whose outcome has not been collected.
    outstanding: usize,
}

impl Uploader {
    fn start(backend: Arc<dyn BlobBackend>) -> Result<Self, VaultError> {
        let (to_store, incoming) = sync_channel::<Upload>(1);
        let (report, stored) = channel::<Stored>();
        let thread = std::thread::Builder::new()
            .name("vault-upload".into())
            .spawn(move || {
                for mut upload in incoming {
                    let result = backend
                        .put(&pack_key(upload.pack), &upload.bytes)
                        .and_then(|()| backend.put(&index_key(upload.pack), &upload.index));
                    let failed = result.is_err();
                    upload.bytes = Vec::new();
                    if report
                        .send(result.map(|()| upload).map_err(Into::into))
                        .is_err()
                    {
                        return;
                    }
                    if failed {
                        // Later packs' indexes may name objects whose children were in this
                        // one: nothing after a failure is stored.
                        return;
                    }
                }
            })
            .map_err(|err| VaultError::Io(format!("starting the upload thread: {err}")))?;
        Ok(Uploader {
            to_store: Some(to_store),
            stored,
            thread: Some(thread),
            outstanding: 0,
        })
    }
}

impl Drop for Uploader {
    fn drop(&mut self) {
        // The thread finishes the pack it is storing, sees the channel closed, and ends: a
        // failed backup leaves nothing running against the vault once its lock is released.
        self.to_store.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The pack being filled, and the packs on their way.
pub(super) struct PackWriter {
    id: VaultPackId,
    buf: Vec<u8>,
    entries: Vec<(ChunkId, PackSlice)>,
    /// Objects in this pack or in a pack not yet stored.
    pending: HashSet<ChunkId>,
    compressor: zstd::bulk::Compressor<'static>,
    uploader: Option<Uploader>,
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
        let compressor = zstd::bulk::Compressor::new(ZSTD_LEVEL)
            .map_err(|err| VaultError::Io(format!("zstd: {err}")))?;
        Ok(PackWriter {
            id,
            buf: vault_pack::encode_header(id),
            entries: Vec::new(),
            pending: HashSet::new(),
            compressor,
            uploader: None,
            uploaded: 0,
            objects: 0,
            packs: Vec::new(),
        })
    }

    /// Whether `id` is in the pack being filled or in one on its way.
    pub fn holds(&self, id: &ChunkId) -> bool {
        self.pending.contains(id)
    }

    /// Adds an object (its bytes are `raw`, its id their blake3), compressed if that pays;
    /// stores the pack if full.
    pub fn add(&mut self, vault: &mut Vault, id: ChunkId, raw: &[u8]) -> Result<(), VaultError> {
        if vault.contains(&id) || self.pending.contains(&id) {
            return Ok(());
        }
        let compressed = self.compressor.compress(raw).ok();
        let (codec, payload) = match &compressed {
            Some(small) if small.len() < raw.len() => (EntryCodec::Zstd, small.as_slice()),
            _ => (EntryCodec::Raw, raw),
        };
        self.append(vault, id, codec, raw.len() as u32, payload)
    }

    /// Adds a chunk as the chunk store keeps it (verified by the store on the way out): a
    /// compressed chunk goes in as it is, without compressing it again.
    pub fn add_stored(
        &mut self,
        vault: &mut Vault,
        id: ChunkId,
        stored: StoredChunk<'_>,
    ) -> Result<(), VaultError> {
        if vault.contains(&id) || self.pending.contains(&id) {
            return Ok(());
        }
        let codec = match stored.codec {
            Codec::Raw => EntryCodec::Raw,
            Codec::Zstd => EntryCodec::Zstd,
        };
        self.append(vault, id, codec, stored.raw_len, stored.payload)
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
        let offset = self.buf.len();
        self.buf.extend_from_slice(sealed);
        self.entry_added(vault, id, offset)
    }

    /// Encodes an entry at the end of the pack and seals it where it lies.
    fn append(
        &mut self,
        vault: &mut Vault,
        id: ChunkId,
        codec: EntryCodec,
        raw_len: u32,
        payload: &[u8],
    ) -> Result<(), VaultError> {
        let offset = self.buf.len();
        vault
            .sealer
            .seal_appending(&mut self.buf, |out| {
                vault_pack::append_entry(out, codec, raw_len, payload)
            })
            .map_err(|source| VaultError::Crypto {
                what: format!("sealing object {id}"),
                source,
            })?;
        self.entry_added(vault, id, offset)
    }

    fn entry_added(
        &mut self,
        vault: &mut Vault,
        id: ChunkId,
        offset: usize,
    ) -> Result<(), VaultError> {
        let slice = PackSlice {
            offset: offset as u32,
            len: (self.buf.len() - offset) as u32,
        };
        self.entries.push((id, slice));
        self.pending.insert(id);
        if self.buf.len() >= PACK_TARGET || self.entries.len() >= MAX_PACK_OBJECTS as usize {
            self.cut(vault)?;
            self.collect(vault, false)?;
        }
        Ok(())
    }

    /// Hands the pack being filled to the upload thread and starts a new one.
    fn cut(&mut self, vault: &mut Vault) -> Result<(), VaultError> {
        if self.entries.is_empty() {
            return Ok(());
        }
        let mut entries = std::mem::take(&mut self.entries);
        entries.sort_by_key(|(id, _)| *id);
        let index = PackIndex {
            pack: self.id,
            entries,
        };
        let pack = self.id;
        let sealed_index = vault.seal(&index.encode(), &|| {
            format!("sealing the index of pack {pack}")
        })?;
        let next = new_id()?;
        let bytes = std::mem::replace(&mut self.buf, vault_pack::encode_header(next));
        let upload = Upload {
            pack,
            pack_len: bytes.len() as u64,
            bytes,
            index: sealed_index,
            entries: index.entries,
        };
        self.id = next;
        if self.uploader.is_none() {
            self.uploader = Some(Uploader::start(vault.backend.clone())?);
        }
        let uploader = self.uploader.as_mut().expect("just started");
        let sender = uploader.to_store.as_ref().expect("open until dropped");
        if sender.send(upload).is_ok() {
            uploader.outstanding += 1;
            return Ok(());
        }
        // The thread stopped at a failure, which it reported: collecting returns it.
        self.collect(vault, true)?;
        Err(VaultError::Io("the upload thread stopped".into()))
    }

    /// Takes in the outcome of stored packs: their objects join the vault's index. With
    /// `wait`, until every pack handed over is stored. The first failure is returned.
    fn collect(&mut self, vault: &mut Vault, wait: bool) -> Result<(), VaultError> {
        let Some(uploader) = self.uploader.as_mut() else {
            return Ok(());
        };
        while uploader.outstanding > 0 {
            let stored = if wait {
                uploader.stored.recv().ok()
            } else {
                match uploader.stored.try_recv() {
                    Ok(stored) => Some(stored),
                    Err(TryRecvError::Empty) => return Ok(()),
                    Err(TryRecvError::Disconnected) => None,
                }
            };
            let Some(stored) = stored else {
                return Err(VaultError::Io("the upload thread stopped".into()));
            };
            uploader.outstanding -= 1;
            let upload = stored?;
            self.uploaded += upload.pack_len + upload.index.len() as u64;
            self.objects += upload.entries.len() as u64;
            self.packs.push(upload.pack);
            for (id, slice) in upload.entries {
                self.pending.remove(&id);
                vault.index.insert(id, (upload.pack, slice));
            }
        }
        Ok(())
    }

    /// Stores the pack being filled and waits until every pack is stored with its index;
    /// from then on their objects are in the vault.
    pub fn flush(&mut self, vault: &mut Vault) -> Result<(), VaultError> {
        self.cut(vault)?;
        self.collect(vault, true)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::blob::{BlobError, RemoteStore};
    use crate::vault::tests::{Crashing, Shared, TEST_KDF};
    use crate::vault::{Secret, init};

    fn object(n: u64) -> (ChunkId, Vec<u8>) {
        let bytes = crate::testing::noise(1 << 20, n);
        (ChunkId::of(&bytes), bytes)
    }

    #[test]
    fn packs_and_indexes_are_stored_in_order_and_nothing_after_a_failure() {
        let memory = Shared(Arc::new(RemoteStore::in_memory()));
        init::init(&memory, &Secret::None, TEST_KDF).expect("init");
        // Two puts (the first pack and its index) succeed, then every put fails.
        let failing = Crashing {
            inner: memory.clone(),
            allowed: AtomicUsize::new(2),
        };
        let mut vault = Vault::open_backend(Box::new(failing), &Secret::None).expect("open");
        let mut writer = PackWriter::new().expect("writer");
        let mut added = Vec::new();
        let mut failure = None;
        for n in 0..64 {
            let (id, bytes) = object(n);
            if let Err(err) = writer.add(&mut vault, id, &bytes) {
                failure = Some(err);
                break;
            }
            added.push(id);
        }
        let failure = failure.or_else(|| writer.flush(&mut vault).err());
        assert!(
            matches!(
                failure,
                Some(VaultError::Blob(BlobError::Unreachable { .. }))
            ),
            "{failure:?}"
        );
        drop(writer);
        let indexes = memory.list("index/").expect("list");
        assert_eq!(indexes.len(), 1, "only the first pack's index: {indexes:?}");
        let packs = memory.list("packs/").expect("list");
        assert_eq!(packs.len(), 1, "no pack after the failure: {packs:?}");

        // The objects of the stored pack are in the index of a vault opened afterwards; a
        // writer that works stores the rest, and every object reads back.
        let mut vault = Vault::open_backend(Box::new(memory.clone()), &Secret::None).expect("open");
        let first_pack = added.iter().filter(|id| vault.contains(id)).count();
        assert!(first_pack >= 15, "{first_pack}");
        let mut writer = PackWriter::new().expect("writer");
        for n in 0..64 {
            let (id, bytes) = object(n);
            writer.add(&mut vault, id, &bytes).expect("add");
        }
        writer.flush(&mut vault).expect("flush");
        assert_eq!(writer.objects, 64 - first_pack as u64);
        for n in 0..64 {
            let (id, bytes) = object(n);
            assert_eq!(vault.read_object(&id).expect("read"), bytes);
        }
    }
}
