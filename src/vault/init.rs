//! `vault init`: a new vault's config, written create-only so that two inits never both
//! succeed and an existing vault is never overwritten.
//!
//! That relies on the server refusing a create-only put of an existing object; some
//! S3-compatible servers accept `If-None-Match` and ignore it, and on those a second `init`
//! would replace the config, making every backup already in the vault unreadable (its master
//! key is in the replaced config). So init first asks the server ([`probe`]); when it does not
//! enforce the condition, init refuses unless told `single_host` (the operator promises that
//! no other init runs at once), and then checks that no config exists before it writes one,
//! which protects against every mistake except two inits racing.
//!
//! Nothing else in a vault relies on the condition: locks, packs, indexes, records and gc
//! lists have random names that no other writer puts (see `lock.rs`).

use super::crypto::{self, MasterKey};
use super::{CONFIG_KEY, Secret, VaultError, key};
use crate::blob::{BlobBackend, BlobError, probe};
use crate::format::vault_config::{Cipher, KdfParams, SlotKind, VaultConfig};
use crate::id::VaultId;

/// Creates a vault in `backend`: unencrypted if `secret` is [`Secret::None`], else sealed with
/// a new master key in one slot opened by `secret`. Refuses a server that does not enforce
/// create-only puts (see the module documentation).
pub fn init(
    backend: &dyn BlobBackend,
    secret: &Secret,
    kdf: KdfParams,
) -> Result<VaultId, VaultError> {
    init_with(backend, secret, kdf, false)
}

/// [`init`], which with `single_host` accepts a server that does not enforce create-only puts:
/// it checks for an existing config first instead.
pub fn init_with(
    backend: &dyn BlobBackend,
    secret: &Secret,
    kdf: KdfParams,
    single_host: bool,
) -> Result<VaultId, VaultError> {
    if !probe::enforces_create_only(backend)? {
        if !single_host {
            return Err(VaultError::Refused(format!(
                "{}: the server does not enforce conditional writes (a second create-only put \
                 of an object replaced it instead of failing), so two `vault init` at once, or \
                 one over an existing vault, could replace its config and make its backups \
                 unreadable; if only this host creates vaults here, run again with --single-host",
                backend.describe()
            )));
        }
        tracing::warn!(
            vault = backend.describe(),
            "the server ignores conditional writes; checking for an existing vault instead"
        );
        if backend.head(&key(CONFIG_KEY))?.is_some() {
            return Err(VaultError::AlreadyAVault(backend.describe()));
        }
    }
    let vault_id = VaultId::random().map_err(|err| VaultError::Io(err.to_string()))?;
    let crypto_err = |source| VaultError::Crypto {
        what: backend.describe(),
        source,
    };
    let (cipher, slots) = match secret {
        Secret::None => (Cipher::None, vec![]),
        Secret::Passphrase(bytes) | Secret::KeyFile(bytes) => {
            let kind = match secret {
                Secret::KeyFile(_) => SlotKind::KeyFile,
                _ => SlotKind::Passphrase,
            };
            let master = MasterKey::generate().map_err(crypto_err)?;
            let slot = crypto::new_slot(vault_id, &master, kind, bytes, kdf).map_err(crypto_err)?;
            (Cipher::XChaCha20Poly1305, vec![slot])
        }
    };
    let config = VaultConfig {
        vault_id,
        cipher,
        slots,
    };
    match backend.put_if_absent(&key(CONFIG_KEY), &config.encode()) {
        Ok(()) => Ok(vault_id),
        Err(BlobError::AlreadyExists(_)) => Err(VaultError::AlreadyAVault(backend.describe())),
        Err(err) => Err(err.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::RemoteStore;
    use crate::blob::probe::tests::IgnoresCondition;
    use crate::vault::tests::TEST_KDF;

    #[test]
    fn a_server_that_ignores_conditional_writes_is_refused_unless_single_host() {
        let ignoring = IgnoresCondition(RemoteStore::in_memory());
        let err = init(&ignoring, &Secret::None, TEST_KDF).expect_err("refused");
        let message = err.to_string();
        assert!(
            message.contains("does not enforce conditional writes")
                && message.contains("--single-host"),
            "{message}"
        );
        assert_eq!(ignoring.head(&key(CONFIG_KEY)).expect("head"), None);
        assert!(ignoring.list("").expect("list").is_empty(), "nothing left");

        let id = init_with(&ignoring, &Secret::None, TEST_KDF, true).expect("single host");
        let config = ignoring.get(&key(CONFIG_KEY)).expect("config");
        // The create-only put would not stop a second init here; the check before it does.
        let err = init_with(&ignoring, &Secret::None, TEST_KDF, true).expect_err("exists");
        assert!(matches!(err, VaultError::AlreadyAVault(_)), "{err}");
        assert_eq!(ignoring.get(&key(CONFIG_KEY)).expect("config"), config);
        assert_eq!(
            VaultConfig::decode(&config).expect("decode").vault_id,
            id,
            "the first vault's config stays"
        );
    }

    #[test]
    fn an_enforcing_server_needs_no_promise() {
        let memory = RemoteStore::in_memory();
        init(&memory, &Secret::None, TEST_KDF).expect("init");
        let err = init(&memory, &Secret::None, TEST_KDF).expect_err("exists");
        assert!(matches!(err, VaultError::AlreadyAVault(_)), "{err}");
    }
}
