//! `vault key add|list|remove|passwd`: who can open an encrypted vault.
//!
//! Every change rewrites the whole `config` object with one `put`, which the blob layer makes
//! atomic (a local directory writes a temporary file, syncs it and renames it over the old one;
//! an S3 PUT replaces an object whole). A crash therefore leaves the old config or the new
//! one, never a mixture: after an interrupted `passwd` either the old or the new passphrase
//! opens the vault, never neither. Nothing else changes: the master key, and so every sealed
//! object, stays as it was.
//!
//! The config is read, changed and written back under the vault's exclusive lock, so that two
//! key changes never overwrite each other (a change made from a stale copy would silently
//! drop the other's slot). Two rules keep the vault openable: a change never leaves zero
//! slots, and the slot the caller unlocked with is never removed (to remove it, unlock with
//! another slot), so whoever runs a key command can still open the vault afterwards.

use serde::Serialize;

use super::crypto::{self, MasterKey};
use super::lock::{LockKind, VaultLock};
use super::{CONFIG_KEY, Secret, Vault, VaultError, key};
use crate::format::vault_config::{KdfParams, MAX_SLOTS, SlotKind, VaultConfig};

/// One key slot, as `vault key list` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SlotEntry {
    /// Its position in the config, the number `vault key remove` takes.
    pub slot: usize,
    /// `passphrase` or `key-file`.
    pub kind: &'static str,
    pub m_cost_kib: u32,
    pub t_cost: u32,
    pub p_cost: u32,
    /// Whether this run's secret opened it.
    pub unlocked: bool,
}

fn kind_name(kind: SlotKind) -> &'static str {
    match kind {
        SlotKind::Passphrase => "passphrase",
        SlotKind::KeyFile => "key-file",
    }
}

/// The key slots of the vault (none for an unencrypted one).
pub fn list(vault: &Vault) -> Vec<SlotEntry> {
    let unlocked = vault.unlocked.as_ref().map(|(slot, _)| *slot);
    vault
        .config
        .slots
        .iter()
        .enumerate()
        .map(|(at, slot)| SlotEntry {
            slot: at,
            kind: kind_name(slot.kind),
            m_cost_kib: slot.kdf.m_cost_kib,
            t_cost: slot.kdf.t_cost,
            p_cost: slot.kdf.p_cost,
            unlocked: unlocked == Some(at),
        })
        .collect()
}

fn refused(vault: &Vault, why: impl std::fmt::Display) -> VaultError {
    VaultError::Refused(format!("{}: {why}", vault.describe()))
}

/// The master key and the slot that opened it, or an error for an unencrypted vault.
fn unlocked(vault: &Vault) -> Result<(usize, MasterKey), VaultError> {
    vault
        .unlocked
        .clone()
        .ok_or_else(|| refused(vault, "the vault is not encrypted; it has no keys"))
}

fn slot_kind(vault: &Vault, secret: &Secret) -> Result<(SlotKind, Vec<u8>), VaultError> {
    match secret {
        Secret::None => Err(refused(
            vault,
            "no new secret: give it in SNAPFS_NEW_PASSPHRASE or with --new-key-file",
        )),
        Secret::Passphrase(bytes) => Ok((SlotKind::Passphrase, bytes.clone())),
        Secret::KeyFile(bytes) => Ok((SlotKind::KeyFile, bytes.clone())),
    }
}

/// Reads the config afresh under the lock (another process may have changed it since the
/// vault was opened), lets `change` edit it, writes it back whole and checks what was stored.
/// The slot this run unlocked with must still be where it was (else the caller's slot
/// numbers are stale): `change` gets the slot's position in the fresh config.
fn rewrite(
    vault: &mut Vault,
    op: &str,
    change: impl FnOnce(&mut VaultConfig, usize) -> Result<(), VaultError>,
) -> Result<(), VaultError> {
    let (mine, _) = unlocked(vault)?;
    let _lock = VaultLock::acquire(vault, LockKind::Exclusive, op)?;
    let config_key = key(CONFIG_KEY);
    let what = || format!("{}: vault config", vault.describe());
    let fresh = VaultConfig::decode(&vault.backend.get(&config_key)?).map_err(|source| {
        VaultError::Decode {
            what: what(),
            source,
        }
    })?;
    if fresh.slots.get(mine) != vault.config.slots.get(mine)
        || fresh.vault_id != vault.config.vault_id
    {
        return Err(refused(
            vault,
            "the key slots changed since the vault was opened; run the command again",
        ));
    }
    let mut next = fresh;
    change(&mut next, mine)?;
    // Never written: the decoder refuses both, and a vault without a slot is lost.
    if next.slots.is_empty() || next.slots.len() > MAX_SLOTS {
        return Err(refused(vault, "a vault keeps between 1 and 16 key slots"));
    }
    let bytes = next.encode();
    vault.backend.put(&config_key, &bytes)?;
    if vault.backend.get(&config_key)? != bytes {
        return Err(refused(
            vault,
            "the config read back differs from the one written (another writer?); check it \
             with `snapfs vault key list`",
        ));
    }
    vault.config = next;
    Ok(())
}

/// Adds a slot that opens the vault with `new`; returns its number.
pub fn add(vault: &mut Vault, new: &Secret, kdf: KdfParams) -> Result<usize, VaultError> {
    let (_, master) = unlocked(vault)?;
    let (kind, bytes) = slot_kind(vault, new)?;
    if let Ok((slot, _)) = crypto::unlock_slot(&vault.config, &bytes) {
        return Err(refused(
            vault,
            format!("that secret already opens slot {slot}"),
        ));
    }
    let crypto_err = |source| VaultError::Crypto {
        what: vault.describe(),
        source,
    };
    let slot =
        crypto::new_slot(vault.config.vault_id, &master, kind, &bytes, kdf).map_err(crypto_err)?;
    let mut added = 0;
    rewrite(vault, "key add", |config, _| {
        config.slots.push(slot);
        added = config.slots.len() - 1;
        Ok(())
    })?;
    tracing::info!(vault = vault.describe(), slot = added, "key slot added");
    Ok(added)
}

/// Removes slot `slot`. Refuses the slot this run unlocked with (unlock with another one to
/// remove it), and so never removes the last.
pub fn remove(vault: &mut Vault, slot: usize) -> Result<(), VaultError> {
    let describe = vault.describe();
    rewrite(vault, "key remove", |config, mine| {
        if slot >= config.slots.len() {
            return Err(VaultError::Refused(format!(
                "{describe}: no key slot {slot} (it has {})",
                config.slots.len()
            )));
        }
        if slot == mine {
            return Err(VaultError::Refused(format!(
                "{describe}: slot {slot} is the one this secret opens; unlock with another \
                 slot's secret to remove it"
            )));
        }
        config.slots.remove(slot);
        Ok(())
    })?;
    tracing::info!(vault = describe, slot, "key slot removed");
    Ok(())
}

/// Replaces the slot this run unlocked with by one opened by `new`, in the same place: the
/// old secret stops opening the vault. Returns the slot's number.
pub fn passwd(vault: &mut Vault, new: &Secret, kdf: KdfParams) -> Result<usize, VaultError> {
    let (mine, master) = unlocked(vault)?;
    let (kind, bytes) = slot_kind(vault, new)?;
    if let Ok((slot, _)) = crypto::unlock_slot(&vault.config, &bytes) {
        return Err(refused(
            vault,
            format!("that secret already opens slot {slot}"),
        ));
    }
    let slot =
        crypto::new_slot(vault.config.vault_id, &master, kind, &bytes, kdf).map_err(|source| {
            VaultError::Crypto {
                what: vault.describe(),
                source,
            }
        })?;
    rewrite(vault, "key passwd", |config, at| {
        config.slots[at] = slot;
        Ok(())
    })?;
    tracing::info!(
        vault = vault.describe(),
        slot = mine,
        "key slot secret changed"
    );
    Ok(mine)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::blob::LocalDir;
    use crate::vault::tests::{Fixture, Shared, TEST_KDF};

    fn pass(text: &str) -> Secret {
        Secret::Passphrase(text.as_bytes().to_vec())
    }

    fn open_with(fixture: &Fixture, secret: &Secret) -> Result<Vault, VaultError> {
        Vault::open_backend(Box::new(fixture.backend()), secret)
    }

    /// A vault in a local directory, with the fixture's two backups in it.
    fn local_fixture(secret: Secret) -> (tempfile::TempDir, Fixture) {
        let dir = tempfile::tempdir().expect("tempdir");
        let backend = LocalDir::open(&dir.path().join("vault")).expect("open");
        let fixture = Fixture::new(Shared(Arc::new(backend)), secret);
        (dir, fixture)
    }

    #[test]
    fn a_second_key_opens_the_vault_and_the_first_can_then_be_removed() {
        let (_dir, fixture) = local_fixture(pass("first"));
        let mut vault = fixture.vault();
        assert_eq!(list(&vault).len(), 1);
        assert_eq!(add(&mut vault, &pass("second"), TEST_KDF).expect("add"), 1);
        let err = add(&mut vault, &pass("second"), TEST_KDF).expect_err("twice");
        assert!(matches!(err, VaultError::Refused(_)), "{err}");

        let mut by_second = open_with(&fixture, &pass("second")).expect("second opens");
        assert!(
            open_with(&fixture, &pass("first")).is_ok(),
            "first still opens"
        );
        let slots = list(&by_second);
        assert_eq!(
            slots.iter().map(|s| s.unlocked).collect::<Vec<_>>(),
            [false, true]
        );

        let err = remove(&mut by_second, 1).expect_err("own slot");
        assert!(matches!(err, VaultError::Refused(_)), "{err}");
        let err = remove(&mut by_second, 5).expect_err("no such slot");
        assert!(matches!(err, VaultError::Refused(_)), "{err}");
        remove(&mut by_second, 0).expect("remove first");

        let err = open_with(&fixture, &pass("first"))
            .err()
            .expect("first refused");
        assert!(
            matches!(
                err,
                VaultError::Crypto {
                    source: crypto::CryptoError::WrongKey,
                    ..
                }
            ),
            "{err}"
        );
        let vault = open_with(&fixture, &pass("second")).expect("second opens");
        assert_eq!(list(&vault).len(), 1);
        // The same master key: every backup restores.
        fixture.check_restores(&vault, "old");
        fixture.check_restores(&vault, "new");
        // The last slot is the caller's own, so it cannot go.
        let mut vault = vault;
        let err = remove(&mut vault, 0).expect_err("last slot");
        assert!(matches!(err, VaultError::Refused(_)), "{err}");
    }

    #[test]
    fn passwd_replaces_the_secret_of_the_slot_that_opened_the_vault() {
        let (_dir, fixture) = local_fixture(pass("first"));
        let mut vault = fixture.vault();
        add(&mut vault, &pass("other"), TEST_KDF).expect("add");
        let mut by_first = open_with(&fixture, &pass("first")).expect("open");
        assert_eq!(
            passwd(&mut by_first, &pass("changed"), TEST_KDF).expect("passwd"),
            0
        );
        assert!(open_with(&fixture, &pass("first")).is_err());
        let vault = open_with(&fixture, &pass("changed")).expect("changed opens");
        assert_eq!(list(&vault).len(), 2);
        assert!(list(&vault)[0].unlocked);
        assert!(
            open_with(&fixture, &pass("other")).is_ok(),
            "other slot kept"
        );
        fixture.check_restores(&vault, "new");
    }

    #[test]
    fn key_commands_refuse_an_unencrypted_vault_and_stale_slot_numbers() {
        let fixture = Fixture::in_memory();
        let mut plain = fixture.vault();
        assert!(list(&plain).is_empty());
        assert!(add(&mut plain, &pass("x"), TEST_KDF).is_err());

        let (_dir, fixture) = local_fixture(pass("first"));
        let mut one = fixture.vault();
        let mut two = fixture.vault();
        add(&mut one, &pass("second"), TEST_KDF).expect("add");
        let mut by_second = open_with(&fixture, &pass("second")).expect("open");
        remove(&mut by_second, 0).expect("remove first");
        // `two` opened before slot 0 went: its picture is stale, so it changes nothing.
        let err = add(&mut two, &pass("third"), TEST_KDF).expect_err("stale");
        assert!(matches!(err, VaultError::Refused(_)), "{err}");
        assert_eq!(
            list(&open_with(&fixture, &pass("second")).expect("open")).len(),
            1
        );
    }

    #[test]
    fn a_crash_before_the_config_put_leaves_the_old_keys() {
        use crate::vault::tests::{Crashing, clone_backend};
        use std::sync::atomic::AtomicUsize;
        let (_dir, fixture) = local_fixture(pass("first"));
        // Fail the config put (the lock's put is allowed).
        let copy = clone_backend(&fixture.backend());
        let crashing = Crashing {
            inner: copy.clone(),
            allowed: AtomicUsize::new(1),
            counts: "",
        };
        let mut vault =
            Vault::open_backend(Box::new(crashing), &pass("first")).expect("open crashing");
        assert!(passwd(&mut vault, &pass("changed"), TEST_KDF).is_err());
        let reopened = Vault::open_backend(Box::new(copy.clone()), &pass("first"));
        assert!(reopened.is_ok(), "the old passphrase still opens it");
        assert!(Vault::open_backend(Box::new(copy), &pass("changed")).is_err());
    }
}
