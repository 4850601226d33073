//! A backup's record, `backups/<backup id>`: written last, after every object the backup needs
//! and their indexes, so a listed backup always restores. Immutable once written: a hold is an
//! object of its own ([`super::vault_hold`]), and `hold` here is written as none (it stays so
//! that a record with one still decodes and counts). Sealed like everything else: the provider sees neither the snapshot's name nor the
//! share it came from.
//!
//! ```text
//! "SVBR" | version u8 = 1 | share_id [16] | name_len u16 | name (UTF-8)
//!        | created (secs i64, nanos u32) | root [32]
//!        | root_perm u16 | root_uid u32 | root_gid u32 | block_size u32
//!        | size u64 | bytes_added u64 | hold u8 (0 none, 1 until, 2 indefinite) | hold_until i64
//! ```
//! `size` is the bytes of file data the backup's tree holds; `bytes_added` what this backup
//! uploaded (packs and indexes) that the vault did not hold before.

use super::catalog::Hold;
use super::cursor::Cursor;
use super::inode::Timestamp;
use super::{DecodeError, invalid};
use crate::format::object::ObjectId;
use crate::id::{ChunkId, ShareId};

const MAGIC: &[u8; 4] = b"SVBR";
const VERSION: u8 = 1;
const MAX_NAME: usize = 255;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupRecord {
    pub share: ShareId,
    /// The snapshot's name in its store.
    pub name: String,
    /// When the snapshot was taken.
    pub created: Timestamp,
    /// The snapshot's root directory object.
    pub root: ObjectId,
    pub root_perm: u16,
    pub root_uid: u32,
    pub root_gid: u32,
    /// The block size of the store it came from: the tree's block maps count in these blocks,
    /// so a restored store gets the same.
    pub block_size: u32,
    pub size: u64,
    pub bytes_added: u64,
    pub hold: Hold,
}

impl BackupRecord {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + self.name.len());
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&self.share.0);
        out.extend_from_slice(&(self.name.len() as u16).to_le_bytes());
        out.extend_from_slice(self.name.as_bytes());
        out.extend_from_slice(&self.created.secs.to_le_bytes());
        out.extend_from_slice(&self.created.nanos.to_le_bytes());
        out.extend_from_slice(&self.root.0);
        out.extend_from_slice(&self.root_perm.to_le_bytes());
        out.extend_from_slice(&self.root_uid.to_le_bytes());
        out.extend_from_slice(&self.root_gid.to_le_bytes());
        out.extend_from_slice(&self.block_size.to_le_bytes());
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&self.bytes_added.to_le_bytes());
        let (hold, until) = match self.hold {
            Hold::None => (0u8, 0i64),
            Hold::Until(until) => (1, until),
            Hold::Indefinite => (2, 0),
        };
        out.push(hold);
        out.extend_from_slice(&until.to_le_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut cur = Cursor::new(bytes);
        cur.header(MAGIC, VERSION)?;
        let share = ShareId(cur.array()?);
        let name_len = usize::from(cur.u16()?);
        if name_len == 0 || name_len > MAX_NAME {
            return Err(invalid("name_len", name_len as u64));
        }
        let name = std::str::from_utf8(cur.take(name_len)?)
            .map_err(|_| invalid("name", 0))?
            .to_owned();
        let created = cur.timestamp()?;
        let root = ChunkId(cur.array()?);
        let root_perm = cur.u16()?;
        if root_perm > 0o7777 {
            return Err(invalid("root_perm", root_perm.into()));
        }
        let root_uid = cur.u32()?;
        let root_gid = cur.u32()?;
        let block_size = cur.u32()?;
        if !block_size.is_power_of_two()
            || !(super::store_config::MIN_BLOCK_SIZE..=super::store_config::MAX_BLOCK_SIZE)
                .contains(&block_size)
        {
            return Err(invalid("block_size", block_size.into()));
        }
        let size = cur.u64()?;
        let bytes_added = cur.u64()?;
        let hold = match (cur.u8()?, cur.i64()?) {
            (0, _) => Hold::None,
            (1, until) => Hold::Until(until),
            (2, _) => Hold::Indefinite,
            (other, _) => return Err(invalid("hold", other.into())),
        };
        cur.finish()?;
        Ok(BackupRecord {
            share,
            name,
            created,
            root,
            root_perm,
            root_uid,
            root_gid,
            block_size,
            size,
            bytes_added,
            hold,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn record(name: String, hold: Hold) -> BackupRecord {
        BackupRecord {
            share: ShareId([4; 16]),
            name,
            created: Timestamp {
                secs: 1_700_000_000,
                nanos: 5,
            },
            root: ChunkId([8; 32]),
            root_perm: 0o755,
            root_uid: 1000,
            root_gid: 100,
            block_size: 131072,
            size: 1 << 30,
            bytes_added: 12345,
            hold,
        }
    }

    proptest! {
        #[test]
        fn round_trips(name in "[a-z0-9 ._-]{1,60}", until in any::<i64>(), kind in 0u8..3) {
            let hold = match kind { 0 => Hold::None, 1 => Hold::Until(until), _ => Hold::Indefinite };
            let record = record(name, hold);
            prop_assert_eq!(BackupRecord::decode(&record.encode()), Ok(record));
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = BackupRecord::decode(&bytes);
        }
    }

    #[test]
    fn every_truncation_is_refused() {
        let bytes = record("daily".into(), Hold::Indefinite).encode();
        for len in 0..bytes.len() {
            assert!(BackupRecord::decode(&bytes[..len]).is_err(), "prefix {len}");
        }
    }
}
