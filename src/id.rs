//! Identifier newtypes. Every identifier that crosses a module boundary has its own type, so a
//! chunk hash can never be passed where an inode number is expected.

use std::fmt;

/// `bytes` as lower-case hex. By table rather than a `format!` per byte: a status of a thousand
/// snapshots shows a thousand ids.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    out
}

/// The blake3 hash of a chunk's uncompressed bytes: its name in the chunk store.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkId(pub [u8; 32]);

impl ChunkId {
    /// Hashes `data` to the id it is stored under.
    pub fn of(data: &[u8]) -> Self {
        ChunkId(*blake3::hash(data).as_bytes())
    }

    /// Lower-case hex, as shown to users in reports and logs.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }
}

impl fmt::Debug for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChunkId({})", &self.to_hex()[..16])
    }
}

impl fmt::Display for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// The number of a pack file (`packs/NNNNNNNN.pack`). Packs are numbered from 1 upwards and a
/// number is never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PackId(pub u32);

impl fmt::Display for PackId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08}", self.0)
    }
}

/// An inode number of the live share. Allocated from a counter that only grows, so a number is
/// never reused within a store (the kernel may still hold a forgotten one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InodeNo(pub u64);

impl InodeNo {
    /// The root directory of the live share, as FUSE numbers it.
    pub const ROOT: InodeNo = InodeNo(1);
}

impl fmt::Display for InodeNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Writes 16 random bytes as lower-case hex, and parses them back.
macro_rules! random_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; 16]);

        impl $name {
            /// A new id from the operating system's random source.
            pub fn random() -> std::io::Result<Self> {
                let mut bytes = [0u8; 16];
                getrandom::getrandom(&mut bytes)
                    .map_err(|err| std::io::Error::other(err.to_string()))?;
                Ok($name(bytes))
            }

            /// 32 lower-case hex digits.
            pub fn to_hex(&self) -> String {
                $crate::id::hex(&self.0)
            }

            /// Parses what [`Self::to_hex`] writes; `None` for anything else.
            pub fn from_hex(text: &str) -> Option<Self> {
                if text.len() != 32 || !text.is_ascii() {
                    return None;
                }
                let mut bytes = [0u8; 16];
                for (i, byte) in bytes.iter_mut().enumerate() {
                    *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
                }
                Some($name(bytes))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }
    };
}

random_id!(
    /// The stable identity of a store's share, assigned at init (or at the upgrade of an older
    /// store): backups in a vault are grouped by it, whatever the store directory is called.
    ShareId
);
random_id!(
    /// A vault's identity, chosen at `vault init`.
    VaultId
);
random_id!(
    /// The name of a pack in a vault: random, so the name says nothing about what is inside.
    VaultPackId
);
random_id!(
    /// The name of a backup record in a vault: random, for the same reason.
    BackupId
);
random_id!(
    /// The name of a lock object in a vault (`locks/<id>`): each holder makes its own.
    VaultLockId
);
random_id!(
    /// The name of a gc's retirement list in a vault (`gc/<id>`).
    GcPlanId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_round_trip_through_hex() {
        let id = ShareId::random().expect("random");
        assert_eq!(ShareId::from_hex(&id.to_hex()), Some(id));
        assert_ne!(ShareId::random().expect("random"), id);
        assert_eq!(ShareId::from_hex("00"), None);
        assert_eq!(ShareId::from_hex(&"g".repeat(32)), None);
        assert_eq!(ShareId::from_hex(&"é".repeat(16)), None);
    }

    #[test]
    fn hex_is_what_format_writes() {
        let bytes: Vec<u8> = (0..=255).collect();
        let formatted: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex(&bytes), formatted);
        assert_eq!(hex(&[]), "");
    }
}
