//! A vault's `config` object: its identity, and how its contents are sealed. The only object of
//! a vault that is never encrypted, since it holds what is needed to unlock the rest: for an
//! encrypted vault, one or more key slots, each the vault's random master key wrapped by a key
//! derived with Argon2id from a passphrase or a key file. Adding or removing a slot changes who
//! can open the vault without re-encrypting anything.
//!
//! ```text
//! offset 0   "SNAPVALT"                 8 bytes
//!        8   version = 1                u32
//!       12   vault_id                   16 bytes
//!       28   cipher                     u8   0 = none, 1 = XChaCha20-Poly1305
//!       29   slot_count                 u8   0 if cipher = 0, else 1..=MAX_SLOTS
//!       30   slot*
//! slot:  kind u8 (1 passphrase, 2 key file) | m_cost_kib u32 | t_cost u32 | p_cost u32
//!        | salt [16] | nonce [24] | wrapped_key [48] (32-byte master key + 16-byte tag)
//! ```

use super::cursor::Cursor;
use super::{DecodeError, invalid};
use crate::id::VaultId;

const MAGIC: &[u8; 8] = b"SNAPVALT";
pub const VAULT_CONFIG_VERSION: u32 = 1;
/// Enough for a few people and a recovery key; bounded so the config stays small.
pub const MAX_SLOTS: usize = 16;
/// Bounds on Argon2id parameters read from a config: a config from an untrusted store must not
/// make us allocate gigabytes or spin for hours before the key check fails.
pub const MAX_M_COST_KIB: u32 = 1 << 20;
pub const MAX_T_COST: u32 = 64;
pub const MAX_P_COST: u32 = 16;

/// How a vault's objects are sealed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cipher {
    /// Stored as they are, integrity by hash only.
    None,
    XChaCha20Poly1305,
}

/// What a key slot's key is derived from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotKind {
    Passphrase,
    KeyFile,
}

/// Argon2id cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    pub m_cost_kib: u32,
    pub t_cost: u32,
    pub p_cost: u32,
}

/// The master key, wrapped by a key derived from one secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySlot {
    pub kind: SlotKind,
    pub kdf: KdfParams,
    pub salt: [u8; 16],
    pub nonce: [u8; 24],
    pub wrapped_key: [u8; 48],
}

/// The decoded `config` object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VaultConfig {
    pub vault_id: VaultId,
    pub cipher: Cipher,
    /// Empty if and only if `cipher` is `None`.
    pub slots: Vec<KeySlot>,
}

impl VaultConfig {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(30 + self.slots.len() * 101);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VAULT_CONFIG_VERSION.to_le_bytes());
        out.extend_from_slice(&self.vault_id.0);
        out.push(match self.cipher {
            Cipher::None => 0,
            Cipher::XChaCha20Poly1305 => 1,
        });
        out.push(self.slots.len() as u8);
        for slot in &self.slots {
            out.push(match slot.kind {
                SlotKind::Passphrase => 1,
                SlotKind::KeyFile => 2,
            });
            out.extend_from_slice(&slot.kdf.m_cost_kib.to_le_bytes());
            out.extend_from_slice(&slot.kdf.t_cost.to_le_bytes());
            out.extend_from_slice(&slot.kdf.p_cost.to_le_bytes());
            out.extend_from_slice(&slot.salt);
            out.extend_from_slice(&slot.nonce);
            out.extend_from_slice(&slot.wrapped_key);
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut cur = Cursor::new(bytes);
        if cur.take(MAGIC.len())? != MAGIC {
            return Err(DecodeError::BadMagic);
        }
        let version = cur.u32()?;
        if version != VAULT_CONFIG_VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let vault_id = VaultId(cur.array()?);
        let cipher = match cur.u8()? {
            0 => Cipher::None,
            1 => Cipher::XChaCha20Poly1305,
            other => return Err(invalid("cipher", other.into())),
        };
        let count = cur.u8()?;
        let expected_some = cipher != Cipher::None;
        if usize::from(count) > MAX_SLOTS || (count > 0) != expected_some {
            return Err(invalid("slot_count", count.into()));
        }
        let mut slots = Vec::with_capacity(count.into());
        for _ in 0..count {
            let kind = match cur.u8()? {
                1 => SlotKind::Passphrase,
                2 => SlotKind::KeyFile,
                other => return Err(invalid("slot kind", other.into())),
            };
            let kdf = KdfParams {
                m_cost_kib: cur.u32()?,
                t_cost: cur.u32()?,
                p_cost: cur.u32()?,
            };
            if !(8..=MAX_M_COST_KIB).contains(&kdf.m_cost_kib) {
                return Err(invalid("m_cost_kib", kdf.m_cost_kib.into()));
            }
            if !(1..=MAX_T_COST).contains(&kdf.t_cost) {
                return Err(invalid("t_cost", kdf.t_cost.into()));
            }
            if !(1..=MAX_P_COST).contains(&kdf.p_cost) {
                return Err(invalid("p_cost", kdf.p_cost.into()));
            }
            slots.push(KeySlot {
                kind,
                kdf,
                salt: cur.array()?,
                nonce: cur.array()?,
                wrapped_key: cur.array()?,
            });
        }
        cur.finish()?;
        Ok(VaultConfig {
            vault_id,
            cipher,
            slots,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encrypted() -> VaultConfig {
        VaultConfig {
            vault_id: VaultId([7; 16]),
            cipher: Cipher::XChaCha20Poly1305,
            slots: vec![KeySlot {
                kind: SlotKind::Passphrase,
                kdf: KdfParams {
                    m_cost_kib: 19 * 1024,
                    t_cost: 2,
                    p_cost: 1,
                },
                salt: [1; 16],
                nonce: [2; 24],
                wrapped_key: [3; 48],
            }],
        }
    }

    #[test]
    fn golden_bytes_of_a_plain_vault() {
        let config = VaultConfig {
            vault_id: VaultId([0xab; 16]),
            cipher: Cipher::None,
            slots: vec![],
        };
        let mut expected = b"SNAPVALT\x01\x00\x00\x00".to_vec();
        expected.extend_from_slice(&[0xab; 16]);
        expected.extend_from_slice(&[0, 0]);
        assert_eq!(config.encode(), expected);
        assert_eq!(VaultConfig::decode(&expected), Ok(config));
    }

    #[test]
    fn round_trips_and_refuses_damage() {
        let config = encrypted();
        let bytes = config.encode();
        assert_eq!(bytes.len(), 30 + 101);
        assert_eq!(VaultConfig::decode(&bytes), Ok(config));
        for len in 0..bytes.len() {
            assert!(VaultConfig::decode(&bytes[..len]).is_err(), "prefix {len}");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(VaultConfig::decode(&extra).is_err());
        let mut huge_memory = bytes.clone();
        huge_memory[31..35].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(VaultConfig::decode(&huge_memory).is_err());
        let mut no_slots = bytes;
        no_slots[29] = 0;
        assert!(VaultConfig::decode(&no_slots).is_err());
    }

    proptest::proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = VaultConfig::decode(&bytes);
        }
    }
}
