//! The snapshot catalog record: what the `snapshots` table keeps for each snapshot name.
//!
//! ```text
//! record := version: u8 = 1 | number: u64 | root: [u8; 32] | created: (secs: i64, nanos: u32)
//!           | origin: u8 (0 manual, 1 automatic) | root_perm: u16 | root_uid: u32 | root_gid: u32
//! ```
//! `number` is unique for the store's life (never reused), which keeps the inode numbers of
//! snapshot contents unique across the mount; `root` is the id of the snapshot's root
//! directory object.

use super::DecodeError;
use super::cursor::Cursor;
use super::inode::{InodeKind, InodeRecord, Timestamp};
use super::object::ObjectId;

const VERSION: u8 = 1;

/// How a snapshot came to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    Manual,
    Automatic,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotRecord {
    pub number: u64,
    pub root: ObjectId,
    pub created: Timestamp,
    pub origin: Origin,
    /// Permissions and owner of the share's root when the snapshot was taken.
    pub root_perm: u16,
    pub root_uid: u32,
    pub root_gid: u32,
}

impl SnapshotRecord {
    pub const ENCODED_LEN: usize = 1 + 8 + 32 + 12 + 1 + 10;

    /// The share root's attributes as the catalog keeps them: permissions and owner. The root's
    /// own times are not recorded, so every timestamp is the snapshot's creation time.
    pub fn root_record(&self) -> InodeRecord {
        InodeRecord {
            kind: InodeKind::Directory,
            perm: self.root_perm,
            uid: self.root_uid,
            gid: self.root_gid,
            nlink: 2,
            rdev: 0,
            size: 0,
            atime: self.created,
            mtime: self.created,
            ctime: self.created,
            symlink_target: Vec::new(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::ENCODED_LEN);
        out.push(VERSION);
        out.extend_from_slice(&self.number.to_le_bytes());
        out.extend_from_slice(&self.root.0);
        out.extend_from_slice(&self.created.secs.to_le_bytes());
        out.extend_from_slice(&self.created.nanos.to_le_bytes());
        out.push(match self.origin {
            Origin::Manual => 0,
            Origin::Automatic => 1,
        });
        out.extend_from_slice(&self.root_perm.to_le_bytes());
        out.extend_from_slice(&self.root_uid.to_le_bytes());
        out.extend_from_slice(&self.root_gid.to_le_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut cursor = Cursor::new(bytes);
        let version = cursor.u8()?;
        if version != VERSION {
            return Err(DecodeError::UnsupportedVersion(version.into()));
        }
        let number = cursor.u64()?;
        let root = crate::id::ChunkId(cursor.array()?);
        let created = cursor.timestamp()?;
        let origin = match cursor.u8()? {
            0 => Origin::Manual,
            1 => Origin::Automatic,
            other => {
                return Err(DecodeError::InvalidField {
                    field: "origin",
                    value: other.into(),
                });
            }
        };
        let root_perm = cursor.u16()? & 0o7777;
        let root_uid = cursor.u32()?;
        let root_gid = cursor.u32()?;
        cursor.finish()?;
        Ok(SnapshotRecord {
            number,
            root,
            created,
            origin,
            root_perm,
            root_uid,
            root_gid,
        })
    }
}

/// Checks a snapshot name: 1 to 255 bytes of UTF-8, no '/', no NUL, not starting with '.'.
pub fn check_snapshot_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("a snapshot name may not be empty");
    }
    if name.len() > 255 {
        return Err("a snapshot name may be at most 255 bytes");
    }
    if name.starts_with('.') {
        return Err("a snapshot name may not start with '.'");
    }
    if name.contains('/') || name.contains('\0') {
        return Err("a snapshot name may not contain '/' or NUL");
    }
    if name.chars().any(char::is_control) {
        return Err("a snapshot name may not contain control characters");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names() {
        assert!(check_snapshot_name("before-deploy").is_ok());
        assert!(check_snapshot_name("nightly 2026-11-21 ü").is_ok());
        assert!(check_snapshot_name("").is_err());
        assert!(check_snapshot_name(".hidden").is_err());
        assert!(check_snapshot_name("a/b").is_err());
        assert!(check_snapshot_name("a\nb").is_err());
        assert!(check_snapshot_name(&"x".repeat(256)).is_err());
        assert!(check_snapshot_name(&"x".repeat(255)).is_ok());
    }

    proptest! {
        #[test]
        fn round_trips(number: u64, root: [u8; 32], secs: i64, nanos in 0..1_000_000_000u32, auto: bool, perm in 0..0o7777u16, uid: u32, gid: u32) {
            let record = SnapshotRecord {
                number,
                root: crate::id::ChunkId(root),
                created: Timestamp { secs, nanos },
                origin: if auto { Origin::Automatic } else { Origin::Manual },
                root_perm: perm,
                root_uid: uid,
                root_gid: gid,
            };
            let bytes = record.encode();
            prop_assert_eq!(bytes.len(), SnapshotRecord::ENCODED_LEN);
            prop_assert_eq!(SnapshotRecord::decode(&bytes), Ok(record));
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = SnapshotRecord::decode(&bytes);
        }
    }
}
