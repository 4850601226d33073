//! Vaults the daemon has opened, kept for the next backup or restore that names the same vault
//! with the same secret and S3 settings. Opening costs reading every index file (tens of
//! milliseconds for a vault of a few GiB, more from S3) where a kept handle reloads only the
//! index files that changed since; a scheduled or scripted backup every few minutes pays the
//! open once.
//!
//! Invariants:
//! - An entry is found only by a request that gives the same vault, secret and S3 settings:
//!   entries are keyed by a hash of them keyed with a random per-process key, so neither the
//!   secrets nor a guessable digest of them are kept here (the handle itself holds the
//!   unwrapped vault key, as any open vault does while it is used).
//! - An entry is used again only while the vault's config is unchanged
//!   ([`Vault::config_unchanged`]): after `vault key remove` or `passwd` the secret is checked
//!   anew, so a revoked passphrase stops working in the daemon too.
//! - At most [`KEEP`] entries, the least recently used going first; a handle is taken out while
//!   it is used (two requests never share one) and kept again only after success.

use parking_lot::Mutex;

use super::ServiceError;
use super::request::VaultAccess;
use crate::vault::Vault;

/// Vaults kept open.
const KEEP: usize = 4;

/// Which request a kept vault serves.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct VaultKey([u8; 32]);

pub struct OpenVaults {
    hash_key: [u8; 32],
    /// Least recently used first.
    kept: Mutex<Vec<(VaultKey, Vault)>>,
}

impl OpenVaults {
    pub fn new() -> Self {
        let mut hash_key = [0u8; 32];
        // Without randomness the key is zero: entries still match only the same request.
        let _ = getrandom::getrandom(&mut hash_key);
        OpenVaults {
            hash_key,
            kept: Mutex::new(Vec::new()),
        }
    }

    /// The vault `to` for a request with `access`: a kept handle whose vault's config is
    /// unchanged, else one opened by `open`.
    pub fn take(
        &self,
        to: &str,
        access: &VaultAccess,
        open: impl FnOnce() -> Result<Vault, ServiceError>,
    ) -> Result<(VaultKey, Vault), ServiceError> {
        let key = self.key(to, access)?;
        let kept = {
            let mut kept = self.kept.lock();
            let found = kept.iter().position(|(k, _)| *k == key);
            found.map(|at| kept.remove(at).1)
        };
        if let Some(vault) = kept
            && vault.config_unchanged().unwrap_or(false)
        {
            return Ok((key, vault));
        }
        Ok((key, open()?))
    }

    /// Keeps `vault` for the next request with the same key.
    pub fn keep(&self, key: VaultKey, vault: Vault) {
        let mut kept = self.kept.lock();
        kept.retain(|(k, _)| *k != key);
        kept.push((key, vault));
        if kept.len() > KEEP {
            kept.remove(0);
        }
    }

    fn key(&self, to: &str, access: &VaultAccess) -> Result<VaultKey, ServiceError> {
        let mut hasher = blake3::Hasher::new_keyed(&self.hash_key);
        hasher.update(to.as_bytes());
        hasher.update(&[0]);
        hasher.update(&serde_json::to_vec(access).map_err(ServiceError::io)?);
        Ok(VaultKey(*hasher.finalize().as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::{BlobBackend, BlobKey, LocalDir};
    use crate::format::vault_config::VaultConfig;
    use crate::vault::Secret;

    #[test]
    fn a_kept_vault_serves_only_the_same_request_and_only_while_its_config_is_unchanged() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let backend = LocalDir::open(tmp.path()).expect("dir");
        // Unencrypted: no key derivation, so the KDF parameters do not matter.
        crate::vault::init::init(&backend, &Secret::None, crate::vault::crypto::DEFAULT_KDF)
            .expect("init");
        let open_vaults = OpenVaults::new();
        let to = tmp.path().to_str().expect("utf-8");
        let access = VaultAccess::default();
        let opens = std::cell::Cell::new(0);
        let open = || {
            opens.set(opens.get() + 1);
            let backend = LocalDir::open(tmp.path()).expect("dir");
            Ok(Vault::open_backend(Box::new(backend), &Secret::None)?)
        };
        let (key, vault) = open_vaults.take(to, &access, open).expect("take");
        open_vaults.keep(key, vault);
        let (key, vault) = open_vaults.take(to, &access, open).expect("again");
        assert_eq!(opens.get(), 1, "kept and used again");
        open_vaults.keep(key, vault);

        let other = VaultAccess {
            passphrase: Some("another secret".into()),
            ..VaultAccess::default()
        };
        let (other_key, other_vault) = open_vaults.take(to, &other, open).expect("other");
        assert_eq!(opens.get(), 2, "another secret never finds it");
        open_vaults.keep(other_key, other_vault);

        // The config changes (as `vault key remove` changes it): opened anew.
        let config_key = BlobKey::new("config").expect("key");
        let mut changed =
            VaultConfig::decode(&backend.get(&config_key).expect("config")).expect("decode");
        changed.vault_id.0[0] ^= 1;
        backend.put(&config_key, &changed.encode()).expect("put");
        let _ = open_vaults.take(to, &access, open);
        assert_eq!(opens.get(), 3, "a changed config is checked anew");
    }
}
