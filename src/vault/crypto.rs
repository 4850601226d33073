//! Keys and sealing for encrypted vaults.
//!
//! - The **master key** is 32 random bytes made at `vault init`. It never leaves memory
//!   unwrapped.
//! - A **key slot** wraps it: Argon2id (memory-hard, so guessing passphrases is slow) turns a
//!   passphrase or a key file and a random salt into a wrapping key, which seals the master
//!   key with XChaCha20-Poly1305, the vault id as associated data. A wrong secret fails the
//!   tag check: [`CryptoError::WrongKey`], never garbage.
//! - **Objects** are sealed with a subkey derived from the master key (blake3 `derive_key`,
//!   so the master key itself never encrypts data): `nonce [24] | ciphertext | tag [16]`, with
//!   a random 192-bit nonce per object (XChaCha's nonce is long enough that random nonces never
//!   repeat in practice, so no counter has to survive crashes).
//! - An unencrypted vault uses [`Sealer::Plain`]: objects are stored as they are, and their
//!   integrity rests on the blake3 ids checked on every read.

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, AeadInPlace, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::format::vault_config::{KdfParams, KeySlot, SlotKind, VaultConfig};
use crate::id::VaultId;

const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// Associated data of every sealed object: ties ciphertexts to their purpose.
const OBJECT_AD: &[u8] = b"snapfs vault object v1";
const OBJECT_KEY_CONTEXT: &str = "snapfs vault 2026 object sealing key v1";

/// Argon2id costs for new key slots: 64 MiB and 3 passes (RFC 9106's second recommended
/// setting), about a quarter second on a current core.
pub const DEFAULT_KDF: KdfParams = KdfParams {
    m_cost_kib: 64 * 1024,
    t_cost: 3,
    p_cost: 1,
};

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("wrong passphrase or key file for this vault")]
    WrongKey,
    #[error("sealed object failed authentication (damaged or tampered with)")]
    Damaged,
    #[error("invalid key derivation parameters: {0}")]
    Kdf(String),
    #[error("no random numbers from the operating system: {0}")]
    Random(String),
}

fn random<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut out = [0u8; N];
    getrandom::getrandom(&mut out).map_err(|err| CryptoError::Random(err.to_string()))?;
    Ok(out)
}

/// The vault's master key (32 random bytes).
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    pub fn generate() -> Result<Self, CryptoError> {
        Ok(MasterKey(random()?))
    }
}

/// How many derived keys a process remembers: a daemon backing up to a few vaults with a few
/// secrets needs a handful.
const REMEMBERED_KEYS: usize = 16;

/// What a derivation depends on: the secret (as a keyed hash under a random key of this
/// process, so the secret itself is never kept), the salt and the cost parameters.
#[derive(PartialEq, Eq)]
struct Derivation {
    secret: [u8; 32],
    salt: [u8; 16],
    kdf: KdfParams,
}

/// Keys derived by this process, newest last. Argon2id is slow by design (a quarter of a
/// second with the default parameters), and a daemon opens the same vault with the same
/// secret for every backup: the derivation is a function of [`Derivation`] alone, so a
/// remembered key is exactly the one it would compute again. Slots are still opened against
/// the vault's config as it is now, so a removed or changed slot is refused as before.
static DERIVED: std::sync::Mutex<Vec<(Derivation, [u8; 32])>> = std::sync::Mutex::new(Vec::new());

fn wrapping_key(secret: &[u8], salt: &[u8; 16], kdf: KdfParams) -> Result<[u8; 32], CryptoError> {
    static PROCESS_KEY: std::sync::OnceLock<Option<[u8; 32]>> = std::sync::OnceLock::new();
    let Some(process_key) = *PROCESS_KEY.get_or_init(|| random().ok()) else {
        return derive(secret, salt, kdf);
    };
    let derivation = Derivation {
        secret: *blake3::keyed_hash(&process_key, secret).as_bytes(),
        salt: *salt,
        kdf,
    };
    let mut derived = DERIVED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, key)) = derived.iter().find(|(known, _)| *known == derivation) {
        return Ok(*key);
    }
    drop(derived);
    let key = derive(secret, salt, kdf)?;
    derived = DERIVED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if derived.len() >= REMEMBERED_KEYS {
        derived.remove(0);
    }
    derived.push((derivation, key));
    Ok(key)
}

/// Argon2id over the secret and the slot's salt: the key that wraps the master key.
fn derive(secret: &[u8], salt: &[u8; 16], kdf: KdfParams) -> Result<[u8; 32], CryptoError> {
    let params = Params::new(kdf.m_cost_kib, kdf.t_cost, kdf.p_cost, Some(32))
        .map_err(|err| CryptoError::Kdf(err.to_string()))?;
    let mut key = [0u8; 32];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(secret, salt, &mut key)
        .map_err(|err| CryptoError::Kdf(err.to_string()))?;
    Ok(key)
}

/// A new slot that opens `master` with `secret`.
pub fn new_slot(
    vault: VaultId,
    master: &MasterKey,
    kind: SlotKind,
    secret: &[u8],
    kdf: KdfParams,
) -> Result<KeySlot, CryptoError> {
    let salt = random()?;
    let nonce: [u8; NONCE_LEN] = random()?;
    let cipher = XChaCha20Poly1305::new(&wrapping_key(secret, &salt, kdf)?.into());
    let wrapped = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: &master.0,
                aad: &vault.0,
            },
        )
        .map_err(|_| CryptoError::Damaged)?;
    let wrapped_key = wrapped.try_into().map_err(|_| CryptoError::Damaged)?;
    Ok(KeySlot {
        kind,
        kdf,
        salt,
        nonce,
        wrapped_key,
    })
}

/// The master key, from the first slot `secret` opens.
pub fn unlock(config: &VaultConfig, secret: &[u8]) -> Result<MasterKey, CryptoError> {
    unlock_slot(config, secret).map(|(_, master)| master)
}

/// The position of the first slot `secret` opens, and the master key it holds.
pub fn unlock_slot(config: &VaultConfig, secret: &[u8]) -> Result<(usize, MasterKey), CryptoError> {
    for (at, slot) in config.slots.iter().enumerate() {
        let cipher = XChaCha20Poly1305::new(&wrapping_key(secret, &slot.salt, slot.kdf)?.into());
        if let Ok(key) = cipher.decrypt(
            XNonce::from_slice(&slot.nonce),
            Payload {
                msg: &slot.wrapped_key,
                aad: &config.vault_id.0,
            },
        ) && let Ok(key) = <[u8; 32]>::try_from(key)
        {
            return Ok((at, MasterKey(key)));
        }
    }
    Err(CryptoError::WrongKey)
}

/// Seals and opens a vault's objects.
pub enum Sealer {
    /// An unencrypted vault.
    Plain,
    Sealed(Box<XChaCha20Poly1305>),
}

impl Sealer {
    pub fn new(master: &MasterKey) -> Self {
        let key = blake3::derive_key(OBJECT_KEY_CONTEXT, &master.0);
        Sealer::Sealed(Box::new(XChaCha20Poly1305::new(&key.into())))
    }

    /// How many bytes sealing adds to an object.
    pub fn overhead(&self) -> usize {
        match self {
            Sealer::Plain => 0,
            Sealer::Sealed(_) => NONCE_LEN + TAG_LEN,
        }
    }

    pub fn seal(&self, plain: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut out = Vec::with_capacity(plain.len() + self.overhead());
        self.seal_appending(&mut out, |out| out.extend_from_slice(plain))?;
        Ok(out)
    }

    /// Appends to `out` the sealed form of what `write_plain` appends: the nonce, those bytes
    /// encrypted where they lie, the tag. The layout of [`Sealer::seal`], with no copy of the
    /// plaintext: a pack is built by sealing each entry in place. On failure `out` is as it
    /// was.
    pub fn seal_appending(
        &self,
        out: &mut Vec<u8>,
        write_plain: impl FnOnce(&mut Vec<u8>),
    ) -> Result<(), CryptoError> {
        match self {
            Sealer::Plain => {
                write_plain(out);
                Ok(())
            }
            Sealer::Sealed(cipher) => {
                let nonce: [u8; NONCE_LEN] = random()?;
                let before = out.len();
                out.extend_from_slice(&nonce);
                let start = out.len();
                write_plain(out);
                match cipher.encrypt_in_place_detached(
                    XNonce::from_slice(&nonce),
                    OBJECT_AD,
                    &mut out[start..],
                ) {
                    Ok(tag) => {
                        out.extend_from_slice(&tag);
                        Ok(())
                    }
                    Err(_) => {
                        out.truncate(before);
                        Err(CryptoError::Damaged)
                    }
                }
            }
        }
    }

    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        match self {
            Sealer::Plain => Ok(sealed.to_vec()),
            Sealer::Sealed(cipher) => {
                if sealed.len() < NONCE_LEN + TAG_LEN {
                    return Err(CryptoError::Damaged);
                }
                let (nonce, body) = sealed.split_at(NONCE_LEN);
                cipher
                    .decrypt(
                        XNonce::from_slice(nonce),
                        Payload {
                            msg: body,
                            aad: OBJECT_AD,
                        },
                    )
                    .map_err(|_| CryptoError::Damaged)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::vault_config::Cipher;

    /// Cheap costs: the tests check the construction, not Argon2's strength.
    const TEST_KDF: KdfParams = KdfParams {
        m_cost_kib: 64,
        t_cost: 1,
        p_cost: 1,
    };

    fn config(master: &MasterKey) -> VaultConfig {
        let vault_id = VaultId([5; 16]);
        VaultConfig {
            vault_id,
            cipher: Cipher::XChaCha20Poly1305,
            slots: vec![
                new_slot(
                    vault_id,
                    master,
                    SlotKind::Passphrase,
                    b"correct horse",
                    TEST_KDF,
                )
                .expect("slot"),
                new_slot(
                    vault_id,
                    master,
                    SlotKind::KeyFile,
                    b"key file bytes",
                    TEST_KDF,
                )
                .expect("slot"),
            ],
        }
    }

    #[test]
    fn every_slot_opens_the_vault_and_nothing_else_does() {
        let master = MasterKey::generate().expect("key");
        let config = config(&master);
        for secret in [&b"correct horse"[..], b"key file bytes"] {
            assert_eq!(unlock(&config, secret).expect("unlocks").0, master.0);
        }
        assert!(matches!(
            unlock(&config, b"wrong"),
            Err(CryptoError::WrongKey)
        ));
        let mut other_vault = config.clone();
        other_vault.vault_id = VaultId([6; 16]);
        assert!(
            matches!(
                unlock(&other_vault, b"correct horse"),
                Err(CryptoError::WrongKey)
            ),
            "a slot copied into another vault does not open it"
        );
    }

    #[test]
    fn remembered_derivations_are_the_derivations_and_change_nothing_a_config_says() {
        let salt = [7; 16];
        let kdf = KdfParams {
            t_cost: 2,
            ..TEST_KDF
        };
        let fresh = derive(b"remembered secret", &salt, kdf).expect("derive");
        let key = |secret: &[u8], salt: &[u8; 16]| wrapping_key(secret, salt, kdf).expect("key");
        assert_eq!(key(b"remembered secret", &salt), fresh);
        assert_eq!(key(b"remembered secret", &salt), fresh, "remembered");
        assert_ne!(key(b"another secret", &salt), fresh);
        assert_ne!(key(b"remembered secret", &[8; 16]), fresh);

        // A secret that opened a slot opens nothing once that slot is gone, and a wrong one
        // stays wrong after a right one.
        let master = MasterKey::generate().expect("key");
        let mut config = config(&master);
        assert!(unlock(&config, b"correct horse").is_ok());
        assert!(matches!(
            unlock(&config, b"correct horsE"),
            Err(CryptoError::WrongKey)
        ));
        config.slots.remove(0);
        assert!(matches!(
            unlock(&config, b"correct horse"),
            Err(CryptoError::WrongKey)
        ));
    }

    #[test]
    fn sealed_objects_hide_their_bytes_and_detect_tampering() {
        let master = MasterKey::generate().expect("key");
        let sealer = Sealer::new(&master);
        let plain = b"chunk bytes, chunk bytes, chunk bytes".to_vec();
        let sealed = sealer.seal(&plain).expect("seal");
        assert_eq!(sealed.len(), plain.len() + sealer.overhead());
        assert!(!sealed.windows(11).any(|w| w == b"chunk bytes"));
        assert_ne!(sealer.seal(&plain).expect("seal"), sealed, "fresh nonce");
        assert_eq!(sealer.open(&sealed).expect("open"), plain);
        for at in [0, 30, sealed.len() - 1] {
            let mut bad = sealed.clone();
            bad[at] ^= 1;
            assert!(matches!(sealer.open(&bad), Err(CryptoError::Damaged)));
        }
        assert!(sealer.open(&sealed[..10]).is_err());
        let other = Sealer::new(&MasterKey::generate().expect("key"));
        assert!(other.open(&sealed).is_err(), "another vault's key");
    }
}
