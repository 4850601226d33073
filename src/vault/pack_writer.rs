//! Gathers objects into packs and stores them in order: the pack, then its index, then the
//! objects become part of the vault's index in memory. Packs are cut at [`PACK_TARGET`], large
//! enough that a backup is a few large uploads, small enough that a killed backup loses little.
//!
//! An entry is sealed by [`seal_stored`] or [`seal_object`], which need only the vault's
//! sealer, so a backup seals many at once on the data workers; the writer appends the sealed
//! entries in the order it is given them. A full pack is stored by a thread of the writer's
//! own while the caller fills the next one, so reading and sealing overlap the upload (or the
//! write and fsync of a local vault). That thread stores packs one at a time, in the order they
//! were cut, and stops at its first failure: an index is stored only after its pack and after
//! every earlier pack and index, which is what lets a tree object's pack rely on the packs of
//! the objects below it. [`PackWriter::flush`] waits for every pack cut so far.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, channel, sync_channel};

use parking_lot::Mutex;
use std::thread::JoinHandle;

use super::crypto::Sealer;
use super::{Vault, VaultError, index_key, pack_key};
use crate::blob::BlobBackend;
use crate::chunk_store::StoredChunk;
use crate::format::pack::Codec;
use crate::format::vault_index::{MAX_PACK_OBJECTS, PackIndex, PackKind, PackSlice};
use crate::format::vault_pack::{self, EntryCodec};
use crate::id::{ChunkId, VaultPackId};

/// A pack is stored once it holds this many bytes: 16 MiB.
pub(super) const PACK_TARGET: usize = 16 << 20;
/// zstd level for tree objects: a little more effort than the store's, they are sent once.
/// (File data arrives compressed by the store, or known not to compress.)
const ZSTD_LEVEL: i32 = 3;

/// Packs stored at once: a local disk or an object store takes several concurrent writes
/// much faster than one after another (measured on a local vault: 1 GiB in 16 MiB packs, each
/// written and synced, 5.5 s one at a time, 3.2 s four at a time).
const PARALLEL_PUTS: usize = 3;

/// A full pack on its way to the backend, with its sealed index.
struct Upload {
    /// Its place in the order packs were cut.
    seq: u64,
    pack: VaultPackId,
    bytes: Vec<u8>,
    /// The pack's length (its bytes are dropped once stored).
    pack_len: u64,
    index: Vec<u8>,
    entries: Vec<(ChunkId, PackSlice)>,
}

/// What the uploader reports for each pack, in the order they were cut.
type Stored = Result<Upload, VaultError>;

/// The threads that store full packs, and the channels to them: [`PARALLEL_PUTS`] threads
/// store packs as they come, and one more stores their index files strictly in order, each
/// only once its pack and every earlier pack and index are stored. After the first failure no
/// further index is stored (a pack stored meanwhile stays without one, unused).
///
/// At most `PARALLEL_PUTS + 1` packs are in memory besides the one being filled: one in each
/// put, and the one handed over (the hand-over waits for a free thread).
struct Uploader {
    to_store: Option<SyncSender<Upload>>,
    stored: Receiver<Stored>,
    threads: Vec<JoinHandle<()>>,
    /// Packs handed over whose outcome has not been collected.
    outstanding: usize,
    next_seq: u64,
}

impl Uploader {
    fn start(backend: Arc<dyn BlobBackend>) -> Result<Self, VaultError> {
        let (to_store, incoming) = sync_channel::<Upload>(0);
        let incoming = Arc::new(Mutex::new(incoming));
        let (to_index, packs_stored) = channel::<(u64, Stored)>();
        let (report, stored) = channel::<Stored>();
        // Set once a failure was reported: nothing more is worth storing.
        let stopped = Arc::new(AtomicBool::new(false));
        let spawn = |name: String, work: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name)
                .spawn(work)
                .map_err(|err| VaultError::Io(format!("starting the upload threads: {err}")))
        };
        let mut threads = Vec::new();
        for i in 0..PARALLEL_PUTS {
            let (backend, incoming, to_index, stopped) = (
                backend.clone(),
                incoming.clone(),
                to_index.clone(),
                stopped.clone(),
            );
            threads.push(spawn(
                format!("vault-upload-{i}"),
                Box::new(move || {
                    loop {
                        // The lock is held only while waiting for the next pack.
                        let next = incoming.lock().recv();
                        let Ok(mut upload) = next else { return };
                        if stopped.load(Ordering::Relaxed) {
                            return;
                        }
                        let put = backend.put(&pack_key(upload.pack), &upload.bytes);
                        upload.bytes = Vec::new();
                        let seq = upload.seq;
                        let stored = put.map(|()| upload).map_err(VaultError::from);
                        if to_index.send((seq, stored)).is_err() {
                            return;
                        }
                    }
                }),
            )?);
        }
        drop(to_index);
        threads.push(spawn(
            "vault-index".into(),
            Box::new(move || {
                let mut waiting: BTreeMap<u64, Stored> = BTreeMap::new();
                let mut next = 0u64;
                for (seq, stored) in packs_stored {
                    waiting.insert(seq, stored);
                    while let Some(stored) = waiting.remove(&next) {
                        next += 1;
                        let indexed = stored.and_then(|upload| {
                            backend.put(&index_key(upload.pack), &upload.index)?;
                            Ok(upload)
                        });
                        let failed = indexed.is_err();
                        if report.send(indexed).is_err() || failed {
                            // Later packs' indexes may name objects whose children were in
                            // this one: no index after a failure is stored.
                            stopped.store(true, Ordering::Relaxed);
                            return;
                        }
                    }
                }
            }),
        )?);
        Ok(Uploader {
            to_store: Some(to_store),
            stored,
            threads,
            outstanding: 0,
            next_seq: 0,
        })
    }
}

impl Drop for Uploader {
    fn drop(&mut self) {
        // The threads finish the packs they are storing, see the channel closed, and end: a
        // failed backup leaves nothing running against the vault once its lock is released.
        self.to_store.take();
        for thread in self.threads.drain(..) {
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
        Ok(PackWriter {
            id,
            buf: vault_pack::encode_header(id),
            entries: Vec::new(),
            pending: HashSet::new(),
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
        let sealed = seal_object(&vault.sealer, id, raw)?;
        self.add_sealed(vault, id, &sealed)
    }

    /// Adds an entry already sealed with this vault's key (by [`seal_stored`] or
    /// [`seal_object`], or gc moving a live object out of a pack it rewrites), whether or not
    /// the vault's index lists the object elsewhere.
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
            kind: PackKind::Sealed,
            entries,
        };
        let pack = self.id;
        let sealed_index = vault.seal(&index.encode(), &|| {
            format!("sealing the index of pack {pack}")
        })?;
        let next = new_id()?;
        let bytes = std::mem::replace(&mut self.buf, vault_pack::encode_header(next));
        let upload = Upload {
            seq: 0,
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
        let upload = Upload {
            seq: uploader.next_seq,
            ..upload
        };
        uploader.next_seq += 1;
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

thread_local! {
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
}

/// The sealed entry of a chunk as the chunk store keeps it (verified by the store on the way
/// out): a compressed chunk goes in as it is, without compressing it again.
pub(super) fn seal_stored(
    sealer: &Sealer,
    id: ChunkId,
    stored: StoredChunk<'_>,
) -> Result<Vec<u8>, VaultError> {
    let codec = match stored.codec {
        Codec::Raw => EntryCodec::Raw,
        Codec::Zstd => EntryCodec::Zstd,
    };
    seal_entry(sealer, id, codec, stored.raw_len, stored.payload)
}

/// The sealed entry of an object whose bytes are `raw`, compressed if that pays.
pub(super) fn seal_object(sealer: &Sealer, id: ChunkId, raw: &[u8]) -> Result<Vec<u8>, VaultError> {
    let compressed = COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = zstd::bulk::Compressor::new(ZSTD_LEVEL).ok();
        }
        slot.as_mut()?.compress(raw).ok()
    });
    match &compressed {
        Some(small) if small.len() < raw.len() => {
            seal_entry(sealer, id, EntryCodec::Zstd, raw.len() as u32, small)
        }
        _ => seal_entry(sealer, id, EntryCodec::Raw, raw.len() as u32, raw),
    }
}

/// Encodes an entry and seals it in place.
fn seal_entry(
    sealer: &Sealer,
    id: ChunkId,
    codec: EntryCodec,
    raw_len: u32,
    payload: &[u8],
) -> Result<Vec<u8>, VaultError> {
    let mut sealed =
        Vec::with_capacity(payload.len() + vault_pack::ENTRY_HEADER_LEN + sealer.overhead());
    sealer
        .seal_appending(&mut sealed, |out| {
            vault_pack::append_entry(out, codec, raw_len, payload)
        })
        .map_err(|source| VaultError::Crypto {
            what: format!("sealing object {id}"),
            source,
        })?;
    Ok(sealed)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    use super::*;

    use crate::blob::{BlobError, BlobKey, RemoteStore};
    use crate::vault::tests::{Crashing, Shared, TEST_KDF, Wrapping};
    use crate::vault::{Secret, init};

    fn object(n: u64) -> (ChunkId, Vec<u8>) {
        let bytes = crate::testing::noise(1 << 20, n);
        (ChunkId::of(&bytes), bytes)
    }

    #[test]
    fn no_index_is_stored_after_a_failure_and_what_was_indexed_is_not_sent_again() {
        let memory = Shared(Arc::new(RemoteStore::in_memory()));
        init::init(&memory, &Secret::None, TEST_KDF).expect("init");
        // Every pack put succeeds; the first index put too, the second fails.
        let failing = Crashing {
            inner: memory.clone(),
            allowed: AtomicUsize::new(1),
            counts: "index/",
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

        // The objects of the first pack are in the index of a vault opened afterwards, and
        // they were the first added; a writer that works stores the rest, and every object
        // reads back.
        let mut vault = Vault::open_backend(Box::new(memory.clone()), &Secret::None).expect("open");
        let first_pack = added.iter().take_while(|id| vault.contains(id)).count();
        assert!(first_pack >= 15, "{first_pack}");
        assert!(added[first_pack..].iter().all(|id| !vault.contains(id)));
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

    /// A backend whose put of the pack holding `slow` waits until another pack's put has
    /// ended (for at most a few seconds), and which notes the order in which puts end.
    struct SlowPack {
        inner: Shared,
        slow: Vec<u8>,
        ended: parking_lot::Mutex<Vec<String>>,
        another_pack: parking_lot::Condvar,
    }

    impl Wrapping for SlowPack {
        fn inner(&self) -> &Shared {
            &self.inner
        }
        fn put(&self, key: &BlobKey, data: &[u8]) -> Result<(), BlobError> {
            let pack = key.as_str().starts_with("packs/");
            if pack
                && data
                    .windows(self.slow.len())
                    .any(|w| w == self.slow.as_slice())
            {
                let mut ended = self.ended.lock();
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
                while !ended.iter().any(|k| k.starts_with("packs/")) {
                    if self
                        .another_pack
                        .wait_until(&mut ended, deadline)
                        .timed_out()
                    {
                        break;
                    }
                }
            }
            self.inner.put(key, data)?;
            self.ended.lock().push(key.as_str().to_owned());
            if pack {
                self.another_pack.notify_all();
            }
            Ok(())
        }
        fn enforces_create_only(&self) -> bool {
            true
        }
        fn describe(&self) -> String {
            "slow".into()
        }
    }

    #[test]
    fn packs_are_stored_side_by_side_and_their_indexes_strictly_in_order() {
        let memory = Shared(Arc::new(RemoteStore::in_memory()));
        init::init(&memory, &Secret::None, TEST_KDF).expect("init");
        let backend = Arc::new(SlowPack {
            inner: memory.clone(),
            slow: object(0).1[..64].to_vec(),
            ended: parking_lot::Mutex::new(Vec::new()),
            another_pack: parking_lot::Condvar::new(),
        });
        let mut vault =
            Vault::open_backend(Box::new(Shared(backend.clone())), &Secret::None).expect("open");
        let mut writer = PackWriter::new().expect("writer");
        for n in 0..64 {
            let (id, bytes) = object(n);
            writer.add(&mut vault, id, &bytes).expect("add");
        }
        writer.flush(&mut vault).expect("flush");
        let ended = backend.ended.lock().clone();
        let first = pack_key(writer.packs[0]).as_str().to_owned();
        let first_done = ended
            .iter()
            .position(|key| *key == first)
            .expect("first pack");
        // The first pack (held back until another one was stored) ended after a later one:
        // they were stored side by side.
        assert!(first_done > 0, "{ended:?}");
        // Each index ended after its own pack, in the order the packs were cut, and none
        // before the first pack was stored.
        let indexes: Vec<&String> = ended.iter().filter(|k| k.starts_with("index/")).collect();
        let expected: Vec<String> = writer
            .packs
            .iter()
            .map(|p| index_key(*p).as_str().to_owned())
            .collect();
        assert_eq!(indexes, expected.iter().collect::<Vec<_>>());
        for pack in &writer.packs {
            let at = |key: BlobKey| {
                ended
                    .iter()
                    .position(|k| k == key.as_str())
                    .expect("stored")
            };
            assert!(at(pack_key(*pack)) < at(index_key(*pack)));
            assert!(at(index_key(*pack)) > first_done);
        }
        for n in 0..64 {
            let (id, bytes) = object(n);
            assert_eq!(vault.read_object(&id).expect("read"), bytes);
        }
    }
}
