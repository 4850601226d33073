//! Vault locks: who may work on a vault at the same time.
//!
//! A backup skips every object the vault's index lists, trusting that it (and its subtree)
//! stays; gc deletes what no backup record reaches. A backup that has not yet written its
//! record relies on objects no record reaches, so gc and backups must not overlap. The
//! protocol, with nothing but create-only puts, lists and deletes:
//!
//! 1. A holder puts `locks/<random id>` ([`LockRecord`]: kind, host, pid, op, time),
//!    **then** lists `locks/` and reads every other lock.
//! 2. A **shared** holder (backup, copy, restore, verify, a dry-run gc) gives up if it sees a
//!    fresh exclusive lock; an **exclusive** holder (gc, delete) gives up if it sees any other
//!    fresh lock. Giving up deletes its own lock first.
//! 3. Since each writes before it looks, of two conflicting holders at least one sees the
//!    other: both may give up, never both go on.
//! 4. A holder rewrites its lock with the current time every [`LOCK_REFRESH`]; a lock not
//!    refreshed for [`LOCK_TIMEOUT`] is stale (its holder was killed, or lost the vault) and
//!    counts for nothing; an exclusive holder deletes stale locks it sees. A holder whose
//!    refreshes have failed for half the timeout must stop before its next step that relies on
//!    the lock ([`VaultLock::check`]).
//! 5. A holder deletes its lock when done (also when it fails).
//!
//! What it assumes: the clocks of the machines that use one vault agree to within a few
//! minutes (well under the timeout), and a lock put is visible to the lists of others once
//! the put returns (S3 and local directories are read-after-write consistent).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::crypto::Sealer;
use super::{LOCKS, Vault, VaultError, listed_id, lock_key, unix_now};
use crate::blob::{BlobBackend, BlobError, BlobKey};
pub use crate::format::vault_lock::LockKind;
use crate::format::vault_lock::LockRecord;
use crate::id::VaultLockId;

/// A lock not refreshed for this long is stale: 15 minutes, far more than a refresh can take
/// (the S3 backend gives up retrying after one minute) and more than the clock skew between
/// machines that share a vault should ever be.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// How often a holder rewrites its lock: 1 minute, so a few failed refreshes in a row still
/// leave the lock fresh.
pub const LOCK_REFRESH: Duration = Duration::from_secs(60);

/// A lock this process holds on a vault: refreshed by a thread of its own, deleted on drop.
pub struct VaultLock {
    key: BlobKey,
    backend: Arc<dyn BlobBackend>,
    /// Unix seconds of the last successful write of the lock.
    last_written: Arc<AtomicI64>,
    stop: Option<mpsc::Sender<()>>,
    refresher: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for VaultLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VaultLock({})", self.key)
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned())
}

fn seal_lock(sealer: &Sealer, record: &LockRecord) -> Result<Vec<u8>, VaultError> {
    sealer
        .seal(&record.encode())
        .map_err(|source| VaultError::Crypto {
            what: "sealing a lock".into(),
            source,
        })
}

/// How a lock reads in messages.
fn describe(record: &LockRecord, now: i64) -> String {
    let kind = match record.kind {
        LockKind::Shared => "a shared",
        LockKind::Exclusive => "an exclusive",
    };
    format!(
        "{} holds {kind} lock (host {}, pid {}, refreshed {}s ago)",
        if record.op.is_empty() {
            "an operation"
        } else {
            &record.op
        },
        record.host,
        record.pid,
        now.saturating_sub(record.time)
    )
}

/// Whether a lock last refreshed at `time` is stale at `now`.
pub fn is_stale(time: i64, now: i64) -> bool {
    now.saturating_sub(time) > LOCK_TIMEOUT.as_secs() as i64
}

/// Every lock in the vault but `except`, as read (an unreadable lock is an error: it might be
/// anything, so nobody goes on until someone looks at it).
fn others(vault: &Vault, except: &BlobKey) -> Result<Vec<(BlobKey, LockRecord)>, VaultError> {
    let mut out = Vec::new();
    for meta in vault.backend.list(LOCKS)? {
        if &meta.key == except || listed_id(&meta.key, LOCKS, VaultLockId::from_hex).is_none() {
            continue;
        }
        let sealed = match vault.backend.get(&meta.key) {
            Ok(sealed) => sealed,
            Err(BlobError::NotFound(_)) => continue,
            Err(err) => return Err(err.into()),
        };
        let what = || format!("lock {}", meta.key);
        let plain = vault.open_sealed(&sealed, &what)?;
        let record = LockRecord::decode(&plain).map_err(|source| VaultError::Decode {
            what: format!("{} (delete it if nothing is running)", what()),
            source,
        })?;
        out.push((meta.key, record));
    }
    Ok(out)
}

/// Every lock in the vault, for messages and tests: (key, record).
pub fn list(vault: &Vault) -> Result<Vec<(BlobKey, LockRecord)>, VaultError> {
    others(vault, &super::key("locks"))
}

impl VaultLock {
    /// Takes a lock of `kind` for the operation `op`, or fails with [`VaultError::Locked`]
    /// naming who holds the conflicting one.
    pub fn acquire(vault: &Vault, kind: LockKind, op: &str) -> Result<VaultLock, VaultError> {
        let id = VaultLockId::random().map_err(|err| VaultError::Io(err.to_string()))?;
        let key = lock_key(id);
        let record = LockRecord {
            kind,
            time: unix_now(),
            pid: std::process::id(),
            host: host_name(),
            op: op.to_owned(),
        };
        // A plain put: the name is random, so nothing is there, and servers that do not
        // support conditional puts serve as well.
        vault
            .backend
            .put(&key, &seal_lock(&vault.sealer, &record)?)?;
        let conflict = (|| -> Result<Option<String>, VaultError> {
            let now = unix_now();
            for (other_key, other) in others(vault, &key)? {
                if is_stale(other.time, now) {
                    if kind == LockKind::Exclusive {
                        tracing::warn!(lock = %other_key, holder = describe(&other, now), "removing a stale lock");
                        vault.backend.delete(&other_key)?;
                    }
                    continue;
                }
                if kind == LockKind::Exclusive || other.kind == LockKind::Exclusive {
                    return Ok(Some(describe(&other, now)));
                }
            }
            Ok(None)
        })();
        match conflict {
            Ok(None) => {}
            Ok(Some(holder)) => {
                vault.backend.delete(&key)?;
                return Err(VaultError::Locked {
                    vault: vault.describe(),
                    holder,
                });
            }
            Err(err) => {
                let _ = vault.backend.delete(&key);
                return Err(err);
            }
        }
        let last_written = Arc::new(AtomicI64::new(record.time));
        let (stop, stopped) = mpsc::channel::<()>();
        let refresher = {
            let backend = vault.backend.clone();
            let sealer = vault.sealer.clone();
            let key = key.clone();
            let last_written = last_written.clone();
            let mut record = record;
            std::thread::Builder::new()
                .name("vault-lock".into())
                .spawn(move || {
                    while let Err(mpsc::RecvTimeoutError::Timeout) =
                        stopped.recv_timeout(LOCK_REFRESH)
                    {
                        record.time = unix_now();
                        let written = seal_lock(&sealer, &record)
                            .and_then(|sealed| Ok(backend.put(&key, &sealed)?));
                        match written {
                            Ok(()) => last_written.store(record.time, Ordering::SeqCst),
                            Err(err) => {
                                tracing::warn!(lock = %key, %err, "cannot refresh a vault lock")
                            }
                        }
                    }
                })
                .map_err(|err| VaultError::Io(format!("starting the lock refresher: {err}")))?
        };
        Ok(VaultLock {
            key,
            backend: vault.backend.clone(),
            last_written,
            stop: Some(stop),
            refresher: Some(refresher),
        })
    }

    /// Fails if the lock may have gone stale for others (its refreshes have failed for half
    /// the timeout): the holder must not take its next step.
    pub fn check(&self) -> Result<(), VaultError> {
        let age = unix_now().saturating_sub(self.last_written.load(Ordering::SeqCst));
        if age > LOCK_TIMEOUT.as_secs() as i64 / 2 {
            return Err(VaultError::Io(format!(
                "lost the vault lock {} (not refreshed for {age}s); stopping",
                self.key
            )));
        }
        Ok(())
    }
}

impl Drop for VaultLock {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(refresher) = self.refresher.take() {
            let _ = refresher.join();
        }
        if let Err(err) = self.backend.delete(&self.key) {
            tracing::warn!(lock = %self.key, %err, "cannot remove a vault lock; it goes stale in time");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::blob::RemoteStore;
    use crate::vault::tests::{Shared, TEST_KDF};
    use crate::vault::{Secret, init};

    fn vault() -> (Shared, Vault) {
        let backend = Shared(Arc::new(RemoteStore::in_memory()));
        let secret = Secret::Passphrase(b"locks".to_vec());
        init::init(&backend, &secret, TEST_KDF).expect("init");
        let vault = Vault::open_backend(Box::new(backend.clone()), &secret).expect("open");
        (backend, vault)
    }

    #[test]
    fn shared_locks_go_together_and_an_exclusive_one_goes_alone() {
        let (backend, vault) = vault();
        let one = VaultLock::acquire(&vault, LockKind::Shared, "backup").expect("shared");
        let two = VaultLock::acquire(&vault, LockKind::Shared, "copy").expect("shared too");
        assert_eq!(list(&vault).expect("list").len(), 2);
        let err = VaultLock::acquire(&vault, LockKind::Exclusive, "gc").expect_err("refused");
        assert!(matches!(err, VaultError::Locked { .. }), "{err}");
        assert_eq!(
            list(&vault).expect("list").len(),
            2,
            "the refused lock is gone"
        );
        drop(one);
        drop(two);
        assert!(
            backend.list(LOCKS).expect("list").is_empty(),
            "dropped, deleted"
        );

        let gc = VaultLock::acquire(&vault, LockKind::Exclusive, "gc").expect("exclusive");
        gc.check().expect("fresh");
        for kind in [LockKind::Shared, LockKind::Exclusive] {
            let err = VaultLock::acquire(&vault, kind, "other").expect_err("refused");
            assert!(
                err.to_string().contains("gc holds an exclusive lock"),
                "{err}"
            );
        }
        let (_, record) = list(&vault).expect("list").remove(0);
        assert_eq!(record.pid, std::process::id());
        assert_eq!(record.kind, LockKind::Exclusive);
    }

    #[test]
    fn an_unreadable_lock_stops_everyone_and_is_named() {
        let (backend, vault) = vault();
        let key = crate::vault::key("locks/0123456789abcdef0123456789abcdef");
        backend.put(&key, b"garbage").expect("put");
        let err = VaultLock::acquire(&vault, LockKind::Shared, "backup").expect_err("refused");
        assert!(err.to_string().contains(key.as_str()), "{err}");
        assert_eq!(
            backend.list(LOCKS).expect("list").len(),
            1,
            "its own is gone"
        );
        assert!(is_stale(0, LOCK_TIMEOUT.as_secs() as i64 + 1));
        assert!(!is_stale(10, 5), "a lock from a clock ahead is fresh");
    }
}
