//! `vault init`: a new vault's config, written create-only so that two inits never both
//! succeed and an existing vault is never overwritten.

use super::crypto::{self, MasterKey};
use super::{CONFIG_KEY, Secret, VaultError, key};
use crate::blob::{BlobBackend, BlobError};
use crate::format::vault_config::{Cipher, KdfParams, SlotKind, VaultConfig};
use crate::id::VaultId;

/// Creates a vault in `backend`: unencrypted if `secret` is [`Secret::None`], else sealed with
/// a new master key in one slot opened by `secret`.
pub fn init(
    backend: &dyn BlobBackend,
    secret: &Secret,
    kdf: KdfParams,
) -> Result<VaultId, VaultError> {
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
