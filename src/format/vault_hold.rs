//! A backup's hold, `holds/<backup id>`: while it exists (and, for a dated hold, until its
//! time), the backup cannot be deleted. Backup records are immutable once written, so a hold
//! is an object of its own beside the record: `vault hold` writes it, `vault release` deletes
//! it. Sealed; it names its backup inside as well, so a hold cannot be moved to another backup
//! by renaming it (the provider cannot forge or move sealed objects; it can delete them).
//!
//! ```text
//! "SVHD" | version u8 = 1 | backup_id [16] | hold u8 (1 until, 2 indefinite) | until i64
//! ```

use super::catalog::Hold;
use super::cursor::Cursor;
use super::{DecodeError, invalid};
use crate::id::BackupId;

const MAGIC: &[u8; 4] = b"SVHD";
const VERSION: u8 = 1;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HoldRecord {
    pub backup: BackupId,
    /// Never [`Hold::None`]: no hold is no object.
    pub hold: Hold,
}

impl HoldRecord {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(30);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&self.backup.0);
        let (kind, until) = match self.hold {
            // Not written; encoded as an expired dated hold should it ever be.
            Hold::None => (1u8, i64::MIN),
            Hold::Until(until) => (1, until),
            Hold::Indefinite => (2, 0),
        };
        out.push(kind);
        out.extend_from_slice(&until.to_le_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut cur = Cursor::new(bytes);
        cur.header(MAGIC, VERSION)?;
        let backup = BackupId(cur.array()?);
        let hold = match (cur.u8()?, cur.i64()?) {
            (1, until) => Hold::Until(until),
            (2, _) => Hold::Indefinite,
            (other, _) => return Err(invalid("hold", other.into())),
        };
        cur.finish()?;
        Ok(HoldRecord { backup, hold })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn golden_bytes() {
        let hold = HoldRecord {
            backup: BackupId([3; 16]),
            hold: Hold::Indefinite,
        };
        let bytes = hold.encode();
        let mut expected = b"SVHD\x01".to_vec();
        expected.extend_from_slice(&[3; 16]);
        expected.push(2);
        expected.extend_from_slice(&[0; 8]);
        assert_eq!(bytes, expected);
        assert_eq!(HoldRecord::decode(&bytes), Ok(hold));
        for len in 0..bytes.len() {
            assert!(HoldRecord::decode(&bytes[..len]).is_err(), "prefix {len}");
        }
    }

    proptest! {
        #[test]
        fn round_trips(id in any::<[u8; 16]>(), until in any::<i64>(), dated in any::<bool>()) {
            let hold = if dated { Hold::Until(until) } else { Hold::Indefinite };
            let record = HoldRecord { backup: BackupId(id), hold };
            prop_assert_eq!(HoldRecord::decode(&record.encode()), Ok(record));
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..60)) {
            let _ = HoldRecord::decode(&bytes);
        }
    }
}
