//! The snapshot catalog record: what the `snapshots` table keeps for each snapshot name.
//!
//! ```text
//! record := version: u8 = 2 | number: u64 | root: [u8; 32] | created: (secs: i64, nanos: u32)
//!           | origin: u8 (0 manual, 1 automatic) | root_perm: u16 | root_uid: u32 | root_gid: u32
//!           | hold: u8 (0 none, 1 until, 2 indefinite) | hold_until: i64
//!           | deleted: u8 (0 no, 1 yes) | deleted_at: i64 | purge_at: i64
//! ```
//! Version 1 records (without the hold and deletion fields) still decode, as not held and not
//! deleted. `number` is unique for the store's life (never reused), which keeps the inode
//! numbers of snapshot contents unique across the mount; `root` is the id of the snapshot's
//! root directory object. Times are unix seconds (UTC).

use super::DecodeError;
use super::cursor::Cursor;
use super::inode::{InodeKind, InodeRecord, Timestamp};
use super::object::ObjectId;

const VERSION: u8 = 2;
const V1_LEN: usize = 1 + 8 + 32 + 12 + 1 + 10;

/// How a snapshot came to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    Manual,
    Automatic,
}

/// A hold: while it lasts, nobody can delete the snapshot, by hand or by retention.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Hold {
    #[default]
    None,
    /// Until this time (unix seconds); expired holds protect nothing.
    Until(i64),
    /// Until released.
    Indefinite,
}

impl Hold {
    pub fn protects_at(&self, now: i64) -> bool {
        match self {
            Hold::None => false,
            Hold::Until(until) => *until > now,
            Hold::Indefinite => true,
        }
    }
}

/// A soft-deleted snapshot: hidden, but recoverable until `purge_at`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deletion {
    pub deleted_at: i64,
    pub purge_at: i64,
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
    pub hold: Hold,
    /// Set while the snapshot is soft-deleted.
    pub deleted: Option<Deletion>,
}

impl SnapshotRecord {
    pub const ENCODED_LEN: usize = V1_LEN + 9 + 17;

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
        let (tag, until) = match self.hold {
            Hold::None => (0u8, 0),
            Hold::Until(until) => (1, until),
            Hold::Indefinite => (2, 0),
        };
        out.push(tag);
        out.extend_from_slice(&until.to_le_bytes());
        let deletion = self.deleted.unwrap_or(Deletion {
            deleted_at: 0,
            purge_at: 0,
        });
        out.push(u8::from(self.deleted.is_some()));
        out.extend_from_slice(&deletion.deleted_at.to_le_bytes());
        out.extend_from_slice(&deletion.purge_at.to_le_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut cursor = Cursor::new(bytes);
        let version = cursor.u8()?;
        if version != 1 && version != VERSION {
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
        let (mut hold, mut deleted) = (Hold::None, None);
        if version >= 2 {
            let (tag, until) = (cursor.u8()?, cursor.i64()?);
            hold = match tag {
                0 => Hold::None,
                1 => Hold::Until(until),
                2 => Hold::Indefinite,
                other => {
                    return Err(DecodeError::InvalidField {
                        field: "hold",
                        value: other.into(),
                    });
                }
            };
            let (flag, deleted_at, purge_at) = (cursor.u8()?, cursor.i64()?, cursor.i64()?);
            deleted = match flag {
                0 => None,
                1 => Some(Deletion {
                    deleted_at,
                    purge_at,
                }),
                other => {
                    return Err(DecodeError::InvalidField {
                        field: "deleted",
                        value: other.into(),
                    });
                }
            };
        }
        cursor.finish()?;
        Ok(SnapshotRecord {
            number,
            root,
            created,
            origin,
            root_perm,
            root_uid,
            root_gid,
            hold,
            deleted,
        })
    }
}

/// What `diff` (and any command that takes either a snapshot or the share) calls the live share.
pub const LIVE: &str = "live";

/// Checks the name of a snapshot being created: 1 to 255 bytes of UTF-8, no '/', no NUL, no
/// control characters, and not a name that means something else:
/// - not starting with '.', which `.snapshots/` keeps for its own entries (`.control`,
///   `.history`) and which tree walks take for hidden;
/// - not starting with '-', which every command line reads as an option;
/// - not [`LIVE`], which names the live share where a snapshot could be named.
///
/// Only creation is checked: a snapshot that an earlier version let through (a `live`) stays
/// listable, readable and deletable by its name.
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
    if name.starts_with('-') {
        return Err("a snapshot name may not start with '-' (reserved: it reads as an option)");
    }
    if name == LIVE {
        return Err("\"live\" is reserved: it names the live share in diff");
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

    #[test]
    fn names_the_command_line_gives_a_meaning_are_reserved() {
        for reserved in ["live", "-x", "--help", "-", ".control", ".history"] {
            let refused = check_snapshot_name(reserved);
            assert!(refused.is_err(), "{reserved}");
        }
        assert!(check_snapshot_name("live").is_err_and(|why| why.contains("reserved")));
        for fine in ["Live", "live-2026", "a-", "x.live", "not live"] {
            assert_eq!(check_snapshot_name(fine), Ok(()), "{fine}");
        }
    }

    proptest! {
        #[test]
        fn round_trips(number: u64, root: [u8; 32], secs: i64, nanos in 0..1_000_000_000u32, auto: bool, perm in 0..0o7777u16, uid: u32, gid: u32, hold_tag in 0..3u8, until: i64, deleted: Option<(i64, i64)>) {
            let record = SnapshotRecord {
                number,
                root: crate::id::ChunkId(root),
                created: Timestamp { secs, nanos },
                origin: if auto { Origin::Automatic } else { Origin::Manual },
                root_perm: perm,
                root_uid: uid,
                root_gid: gid,
                hold: [Hold::None, Hold::Until(until), Hold::Indefinite][usize::from(hold_tag)],
                deleted: deleted.map(|(deleted_at, purge_at)| Deletion { deleted_at, purge_at }),
            };
            let bytes = record.encode();
            prop_assert_eq!(bytes.len(), SnapshotRecord::ENCODED_LEN);
            prop_assert_eq!(SnapshotRecord::decode(&bytes), Ok(record));
        }

        #[test]
        fn version_1_records_still_decode(number: u64, secs: i64) {
            let record = SnapshotRecord {
                number,
                root: crate::id::ChunkId([7; 32]),
                created: Timestamp { secs, nanos: 0 },
                origin: Origin::Manual,
                root_perm: 0o755,
                root_uid: 0,
                root_gid: 0,
                hold: Hold::None,
                deleted: None,
            };
            let mut bytes = record.encode();
            bytes.truncate(V1_LEN);
            bytes[0] = 1;
            prop_assert_eq!(SnapshotRecord::decode(&bytes), Ok(record));
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = SnapshotRecord::decode(&bytes);
        }
    }
}
