//! Backup and restore through the library, on a local directory and on the `object_store`
//! crate's in-memory store: round trips, incremental bytes, resuming after a failed upload,
//! encryption (wrong key, what the provider sees, tampering).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::blob::{BlobMeta, LocalDir, RemoteStore};
use crate::format::catalog::Origin;
use crate::format::vault_config::KdfParams;
use crate::live::LiveFs;
use crate::snapshot::Snapshots;
use crate::testing::{close, mkdir, new_store, noise, open, read_file, snapshots_of, write_file};

pub(super) const TEST_KDF: KdfParams = KdfParams {
    m_cost_kib: 64,
    t_cost: 1,
    p_cost: 1,
};

/// A backend shared between vault openings (the in-memory store lives as long as it does).
#[derive(Clone)]
pub(super) struct Shared(pub(super) Arc<dyn BlobBackend>);

impl BlobBackend for Shared {
    fn put(&self, key: &BlobKey, data: &[u8]) -> Result<(), BlobError> {
        self.0.put(key, data)
    }
    fn put_if_absent(&self, key: &BlobKey, data: &[u8]) -> Result<(), BlobError> {
        self.0.put_if_absent(key, data)
    }
    fn enforces_create_only(&self) -> bool {
        self.0.enforces_create_only()
    }
    fn get(&self, key: &BlobKey) -> Result<Vec<u8>, BlobError> {
        self.0.get(key)
    }
    fn get_range(&self, key: &BlobKey, range: std::ops::Range<u64>) -> Result<Vec<u8>, BlobError> {
        self.0.get_range(key, range)
    }
    fn head(&self, key: &BlobKey) -> Result<Option<u64>, BlobError> {
        self.0.head(key)
    }
    fn list(&self, prefix: &str) -> Result<Vec<BlobMeta>, BlobError> {
        self.0.list(prefix)
    }
    fn delete(&self, key: &BlobKey) -> Result<(), BlobError> {
        self.0.delete(key)
    }
    fn describe(&self) -> String {
        self.0.describe()
    }
}

fn populate(live: &Arc<LiveFs>) {
    mkdir(live, "d");
    mkdir(live, "d/deeper");
    write_file(live, "d/a", &noise(50_000, 1));
    write_file(live, "d/deeper/b", &noise(20_000, 2));
    write_file(live, "same1", &noise(8192, 3));
    write_file(live, "same2", &noise(8192, 3));
    write_file(live, "empty", b"");
}

fn check_restored(store: &std::path::Path) {
    let restored = open(store);
    assert_eq!(read_file(&restored, "d/a"), noise(50_000, 1));
    assert_eq!(read_file(&restored, "d/deeper/b"), noise(20_000, 2));
    assert_eq!(read_file(&restored, "same2"), noise(8192, 3));
    assert_eq!(read_file(&restored, "empty"), b"");
    restored.assert_consistent();
    close(restored);
}

fn share(live: &LiveFs) -> crate::id::ShareId {
    live.share_id().expect("a share id")
}

#[test]
fn a_backup_restores_into_a_new_store_after_the_original_is_gone() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (store, live) = new_store(tmp.path(), "store");
    let snapshots = snapshots_of(&live);
    populate(&live);
    snapshots.create("s1", Origin::Manual).expect("snapshot");
    let location = crate::blob::BlobLocation::Local(tmp.path().join("vault"));
    init::init(
        &*blob::open(&location).expect("backend"),
        &Secret::None,
        TEST_KDF,
    )
    .expect("init");
    let mut vault = Vault::open(&location, &Secret::None).expect("open");
    assert!(!vault.is_encrypted());

    let report = backup::backup(
        &mut vault,
        &snapshots,
        "s1",
        share(&live),
        &crate::progress::Progress::new(),
    )
    .expect("backup");
    assert!(!report.already_there);
    assert_eq!(report.size, 50_000 + 20_000 + 8192 * 2);
    let again = backup::backup(
        &mut vault,
        &snapshots,
        "s1",
        share(&live),
        &crate::progress::Progress::new(),
    )
    .expect("again");
    assert!(
        again.already_there,
        "a second backup of one snapshot is a no-op"
    );

    drop(snapshots);
    close(live);
    std::fs::remove_dir_all(&store).expect("destroy the store");

    let vault = Vault::open(&location, &Secret::None).expect("reopen");
    let listed = list::list(&vault).expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, "s1");
    assert_eq!(listed[0].bytes_added, report.bytes_added);
    let restored = tmp.path().join("restored");
    let report = restore::restore(&vault, "s1", &restored, &crate::progress::Progress::new())
        .expect("restore");
    assert_eq!(report.restored.files, 5);
    check_restored(&restored);
    assert!(matches!(
        restore::restore(
            &vault,
            "nope",
            &tmp.path().join("x"),
            &crate::progress::Progress::new()
        ),
        Err(VaultError::NoBackup(_))
    ));
    assert!(
        !tmp.path().join("x").exists(),
        "a failed restore leaves nothing"
    );
}

#[test]
fn an_incremental_backup_sends_what_changed_and_a_failed_one_resumes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_store, live) = new_store(tmp.path(), "store");
    let snapshots = snapshots_of(&live);
    for i in 0..20 {
        write_file(&live, &format!("f{i}"), &noise(100_000, i));
    }
    snapshots.create("full", Origin::Manual).expect("snapshot");
    let memory = Shared(Arc::new(RemoteStore::in_memory()));
    init::init(&memory, &Secret::None, TEST_KDF).expect("init");
    let mut vault = Vault::open_backend(Box::new(memory.clone()), &Secret::None).expect("open");
    let full = backup::backup(
        &mut vault,
        &snapshots,
        "full",
        share(&live),
        &crate::progress::Progress::new(),
    )
    .expect("backup");
    assert!(full.bytes_added > 2_000_000, "{full:?}");

    write_file(&live, "f3", &noise(100_000, 99));
    snapshots.create("next", Origin::Manual).expect("snapshot");
    let next = backup::backup(
        &mut vault,
        &snapshots,
        "next",
        share(&live),
        &crate::progress::Progress::new(),
    )
    .expect("backup");
    assert!(
        next.bytes_added < 130_000,
        "one changed file of 100 kB, not the share: {next:?}"
    );

    // A backup whose uploads fail after the first pack's index (packs are stored several at
    // a time, indexes in order): nothing is listed, and the next run does not send that
    // pack's objects again.
    for i in 0..40 {
        write_file(&live, &format!("g{i}"), &noise(600_000, 1000 + i));
    }
    snapshots.create("big", Origin::Manual).expect("snapshot");
    let failing = Crashing {
        inner: memory.clone(),
        allowed: AtomicUsize::new(1),
        counts: "index/",
    };
    let mut broken = Vault::open_backend(Box::new(failing), &Secret::None).expect("open");
    let err = backup::backup(
        &mut broken,
        &snapshots,
        "big",
        share(&live),
        &crate::progress::Progress::new(),
    )
    .expect_err("fails");
    assert!(
        matches!(err, VaultError::Blob(BlobError::Unreachable { .. })),
        "{err}"
    );
    let mut vault = Vault::open_backend(Box::new(memory.clone()), &Secret::None).expect("open");
    assert_eq!(
        list::list(&vault).expect("list").len(),
        2,
        "the failed backup is not listed"
    );
    let resumed = backup::backup(
        &mut vault,
        &snapshots,
        "big",
        share(&live),
        &crate::progress::Progress::new(),
    )
    .expect("resume");
    assert!(
        resumed.bytes_added < 24_000_000 - 12_000_000,
        "the pack that arrived is not sent again: {resumed:?}"
    );
    let restored = tmp.path().join("restored");
    restore::restore(&vault, "big", &restored, &crate::progress::Progress::new()).expect("restore");
    let back = open(&restored);
    assert_eq!(read_file(&back, "g17"), noise(600_000, 1017));
    assert_eq!(read_file(&back, "f3"), noise(100_000, 99));
    close(back);
    drop(snapshots);
    close(live);
}

#[test]
fn an_encrypted_vault_hides_chunk_ids_and_refuses_wrong_keys_and_tampering() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_store, live) = new_store(tmp.path(), "store");
    let snapshots: Snapshots = snapshots_of(&live);
    let data = b"a very recognisable plaintext line\n".repeat(200);
    write_file(&live, "secret.txt", &data);
    snapshots.create("s", Origin::Manual).expect("snapshot");
    let dir = tmp.path().join("vault");
    let backend = LocalDir::open(&dir).expect("backend");
    let passphrase = Secret::Passphrase(b"correct horse".to_vec());
    init::init(&backend, &passphrase, TEST_KDF).expect("init");
    assert!(matches!(
        init::init(&backend, &passphrase, TEST_KDF),
        Err(VaultError::AlreadyAVault(_))
    ));
    let location = crate::blob::BlobLocation::Local(dir.clone());
    assert!(matches!(
        Vault::open(&location, &Secret::None),
        Err(VaultError::NeedKey(_))
    ));
    let wrong = Vault::open(&location, &Secret::Passphrase(b"wrong".to_vec()));
    let err = wrong.err().expect("wrong key refused");
    assert!(err.to_string().contains("wrong passphrase"), "{err}");

    let mut vault = Vault::open(&location, &passphrase).expect("open");
    assert!(vault.is_encrypted());
    backup::backup(
        &mut vault,
        &snapshots,
        "s",
        share(&live),
        &crate::progress::Progress::new(),
    )
    .expect("backup");

    // What the provider sees: no chunk id, no plaintext, no snapshot name, in any object or key.
    let chunk_id = crate::id::ChunkId::of(&data[..4096]);
    let mut objects = 0;
    for meta in backend.list("").expect("list") {
        objects += 1;
        let key = meta.key.as_str();
        assert!(!key.contains(&chunk_id.to_hex()[..16]), "{key}");
        let bytes = backend.get(&meta.key).expect("get");
        assert!(!bytes.windows(32).any(|w| w == chunk_id.0), "{key}");
        assert!(!bytes.windows(20).any(|w| w == &data[..20]), "{key}");
        assert!(!bytes.windows(9).any(|w| w == b"secret.tx"), "{key}");
    }
    assert!(objects >= 4, "config, a pack, its index, a record");

    // Tampering with a pack is an error naming the object, never wrong bytes.
    let pack = backend.list("packs").expect("list").remove(0);
    let mut bytes = backend.get(&pack.key).expect("get");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    backend.put(&pack.key, &bytes).expect("tamper");
    let vault = Vault::open(&location, &passphrase).expect("open");
    let err = restore::restore(
        &vault,
        "s",
        &tmp.path().join("r"),
        &crate::progress::Progress::new(),
    )
    .expect_err("tampered");
    assert!(err.to_string().contains("failed authentication"), "{err}");
    assert!(!tmp.path().join("r").exists());
    drop(snapshots);
    close(live);
}

/// A share with two snapshots backed up into one vault: `old` and `new` share `common` and
/// `dir/deep/x`; each has a `big` file of its own (2 MB), so deleting one backup leaves a pack
/// that is mostly garbage.
pub(super) struct Fixture {
    pub tmp: tempfile::TempDir,
    live: Option<Arc<LiveFs>>,
    snapshots: Option<Snapshots>,
    backend: parking_lot::Mutex<Shared>,
    pub secret: Secret,
    restores: AtomicUsize,
    common_len: usize,
}

pub(super) fn big_of(name: &str) -> Vec<u8> {
    noise(2_000_000, if name == "old" { 11 } else { 12 })
}

impl Fixture {
    pub fn new(backend: Shared, secret: Secret) -> Self {
        Self::with_common(backend, secret, 300_000)
    }

    /// With `common` of `common_len` bytes: at 3 MB, `old`'s pack stays more than half live
    /// when `old` is deleted, so gc keeps it and drops entries from its index.
    pub fn with_common(backend: Shared, secret: Secret, common_len: usize) -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (_store, live) = new_store(tmp.path(), "store");
        let snapshots = snapshots_of(&live);
        mkdir(&live, "dir");
        mkdir(&live, "dir/deep");
        write_file(&live, "dir/deep/x", &noise(20_000, 13));
        write_file(&live, "common", &noise(common_len, 10));
        write_file(&live, "big", &big_of("old"));
        snapshots.create("old", Origin::Manual).expect("snapshot");
        write_file(&live, "big", &big_of("new"));
        snapshots.create("new", Origin::Manual).expect("snapshot");
        init::init(&backend, &secret, TEST_KDF).expect("init");
        let fixture = Fixture {
            tmp,
            live: Some(live),
            snapshots: Some(snapshots),
            backend: parking_lot::Mutex::new(backend),
            secret,
            restores: AtomicUsize::new(0),
            common_len,
        };
        fixture.backup("old").expect("backup old");
        fixture.backup("new").expect("backup new");
        fixture
    }

    pub fn in_memory() -> Self {
        Self::new(Shared(Arc::new(RemoteStore::in_memory())), Secret::None)
    }

    /// The vault's backend.
    pub fn backend(&self) -> Shared {
        self.backend.lock().clone()
    }

    /// Works on another vault from now on (a copy of this one, to crash it).
    pub fn set_backend(&self, backend: Shared) {
        *self.backend.lock() = backend;
    }

    pub fn vault(&self) -> Vault {
        Vault::open_backend(Box::new(self.backend()), &self.secret).expect("open vault")
    }

    /// Backs the snapshot `name` up (again).
    pub fn backup(&self, name: &str) -> Result<backup::BackupReport, VaultError> {
        let live = self.live.as_ref().expect("live");
        let snapshots = self.snapshots.as_ref().expect("snapshots");
        backup::backup(
            &mut self.vault(),
            snapshots,
            name,
            share(live),
            &crate::progress::Progress::new(),
        )
    }

    /// Restores `name` from `vault` into a new store and checks every file.
    pub fn check_restores(&self, vault: &Vault, name: &str) {
        let n = self.restores.fetch_add(1, Ordering::SeqCst);
        let dir = self.tmp.path().join(format!("restored-{n}"));
        restore::restore(vault, name, &dir, &crate::progress::Progress::new()).expect("restore");
        let back = open(&dir);
        assert_eq!(read_file(&back, "big"), big_of(name), "{name}");
        assert_eq!(read_file(&back, "common"), noise(self.common_len, 10));
        assert_eq!(read_file(&back, "dir/deep/x"), noise(20_000, 13));
        back.assert_consistent();
        close(back);
    }

    /// Bytes of packs in the vault.
    pub fn pack_bytes(&self) -> u64 {
        self.backend()
            .list(PACKS)
            .expect("list")
            .iter()
            .map(|meta| meta.size)
            .sum()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        drop(self.snapshots.take());
        if let Some(live) = self.live.take() {
            close(live);
        }
    }
}

/// A test backend that passes everything on to `inner`, with hooks: before each change (put,
/// create-only put, delete), which may fail it, and after each read. A type says only what it
/// does differently; the blanket `BlobBackend` below does the passing on.
pub(super) trait Wrapping: Send + Sync {
    fn inner(&self) -> &Shared;
    /// Before a put, a create-only put or a delete of `key`; an error fails it.
    fn before_change(&self, _key: &BlobKey) -> Result<(), BlobError> {
        Ok(())
    }
    /// After `len` bytes of `key` were read (whole or a range).
    fn after_read(&self, _key: &BlobKey, _len: usize) {}
    fn put(&self, key: &BlobKey, data: &[u8]) -> Result<(), BlobError> {
        self.before_change(key)?;
        self.inner().put(key, data)
    }
    fn enforces_create_only(&self) -> bool {
        self.inner().enforces_create_only()
    }
    fn describe(&self) -> String {
        self.inner().describe()
    }
}

impl<T: Wrapping> BlobBackend for T {
    fn put(&self, key: &BlobKey, data: &[u8]) -> Result<(), BlobError> {
        Wrapping::put(self, key, data)
    }
    fn put_if_absent(&self, key: &BlobKey, data: &[u8]) -> Result<(), BlobError> {
        self.before_change(key)?;
        self.inner().put_if_absent(key, data)
    }
    fn enforces_create_only(&self) -> bool {
        Wrapping::enforces_create_only(self)
    }
    fn get(&self, key: &BlobKey) -> Result<Vec<u8>, BlobError> {
        let data = self.inner().get(key)?;
        self.after_read(key, data.len());
        Ok(data)
    }
    fn get_range(&self, key: &BlobKey, range: std::ops::Range<u64>) -> Result<Vec<u8>, BlobError> {
        let data = self.inner().get_range(key, range)?;
        self.after_read(key, data.len());
        Ok(data)
    }
    fn head(&self, key: &BlobKey) -> Result<Option<u64>, BlobError> {
        self.inner().head(key)
    }
    fn list(&self, prefix: &str) -> Result<Vec<BlobMeta>, BlobError> {
        self.inner().list(prefix)
    }
    fn delete(&self, key: &BlobKey) -> Result<(), BlobError> {
        self.before_change(key)?;
        self.inner().delete(key)
    }
    fn describe(&self) -> String {
        Wrapping::describe(self)
    }
}

/// A copy of everything in `backend`, in a new in-memory store.
pub(super) fn clone_backend(backend: &dyn BlobBackend) -> Shared {
    let copy = Shared(Arc::new(RemoteStore::in_memory()));
    for meta in backend.list("").expect("list") {
        copy.put(&meta.key, &backend.get(&meta.key).expect("get"))
            .expect("put");
    }
    copy
}

/// Fails every change (put, create, delete) after the first `allowed`: a process killed, or
/// the server gone, at that point.
pub(super) struct Crashing {
    pub inner: Shared,
    pub allowed: AtomicUsize,
    /// Only changes of keys starting with this count (and fail); the others go through.
    pub counts: &'static str,
}

impl Crashing {
    fn step(&self, key: &BlobKey) -> Result<(), BlobError> {
        if !key.as_str().starts_with(self.counts) {
            return Ok(());
        }
        self.allowed
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .map(|_| ())
            .map_err(|_| BlobError::Unreachable {
                key: key.to_string(),
                message: "crashed".into(),
            })
    }
}

impl Wrapping for Crashing {
    fn inner(&self) -> &Shared {
        &self.inner
    }
    fn before_change(&self, key: &BlobKey) -> Result<(), BlobError> {
        self.step(key)
    }
    fn enforces_create_only(&self) -> bool {
        true
    }
    fn describe(&self) -> String {
        "crashing".into()
    }
}
