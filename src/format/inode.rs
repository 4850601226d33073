//! The persisted form of an inode of the live share (the value of the `inodes` table).
//!
//! ```text
//! record := version: u8 = 1 | kind: u8 | perm: u16 | uid: u32 | gid: u32 | nlink: u32
//!           | rdev: u32 | size: u64 | atime | mtime | ctime | target_len: u32 | target
//! time   := secs: i64 | nanos: u32
//! ```
//! `perm` holds the twelve permission bits (setuid, setgid, sticky, rwx×3); the file type lives
//! in `kind`. `target` is a symlink's target and empty for every other kind.

use super::DecodeError;
use super::cursor::Cursor;

const RECORD_VERSION: u8 = 1;
/// Longest symlink target accepted, as Linux's PATH_MAX.
pub const MAX_SYMLINK_TARGET: usize = 4096;

/// The type of an inode. Its serde form (`"file"`, `"directory"`, ...) is for JSON reports;
/// the persisted form is the number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InodeKind {
    File = 1,
    Directory = 2,
    Symlink = 3,
    Fifo = 4,
    Socket = 5,
    CharDevice = 6,
    BlockDevice = 7,
}

impl InodeKind {
    fn from_u8(value: u8) -> Result<Self, DecodeError> {
        Ok(match value {
            1 => InodeKind::File,
            2 => InodeKind::Directory,
            3 => InodeKind::Symlink,
            4 => InodeKind::Fifo,
            5 => InodeKind::Socket,
            6 => InodeKind::CharDevice,
            7 => InodeKind::BlockDevice,
            other => {
                return Err(DecodeError::InvalidField {
                    field: "kind",
                    value: other.into(),
                });
            }
        })
    }
}

/// A point in time as seconds and nanoseconds since the Unix epoch (seconds may be negative).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Timestamp {
    pub secs: i64,
    pub nanos: u32,
}

impl Timestamp {
    pub fn now() -> Self {
        Self::from_system_time(std::time::SystemTime::now())
    }

    pub fn from_system_time(time: std::time::SystemTime) -> Self {
        match time.duration_since(std::time::UNIX_EPOCH) {
            Ok(after) => Timestamp {
                secs: after.as_secs() as i64,
                nanos: after.subsec_nanos(),
            },
            Err(before) => {
                let before = before.duration();
                let (secs, nanos) = (before.as_secs() as i64, before.subsec_nanos());
                if nanos == 0 {
                    Timestamp { secs: -secs, nanos }
                } else {
                    Timestamp {
                        secs: -secs - 1,
                        nanos: 1_000_000_000 - nanos,
                    }
                }
            }
        }
    }

    pub fn to_system_time(self) -> std::time::SystemTime {
        let nanos = std::time::Duration::from_nanos(u64::from(self.nanos));
        if self.secs >= 0 {
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(self.secs as u64) + nanos
        } else {
            std::time::UNIX_EPOCH - std::time::Duration::from_secs(self.secs.unsigned_abs()) + nanos
        }
    }
}

/// Everything `stat` reports about an inode, plus a symlink's target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InodeRecord {
    pub kind: InodeKind,
    pub perm: u16,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub rdev: u32,
    pub size: u64,
    pub atime: Timestamp,
    pub mtime: Timestamp,
    pub ctime: Timestamp,
    pub symlink_target: Vec<u8>,
}

impl InodeRecord {
    /// A new, empty directory owned by `uid:gid`, stamped now.
    pub fn new_directory(perm: u16, uid: u32, gid: u32) -> Self {
        let now = Timestamp::now();
        InodeRecord {
            kind: InodeKind::Directory,
            perm,
            uid,
            gid,
            nlink: 2,
            rdev: 0,
            size: 0,
            atime: now,
            mtime: now,
            ctime: now,
            symlink_target: Vec::new(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.symlink_target.len());
        out.push(RECORD_VERSION);
        out.push(self.kind as u8);
        out.extend_from_slice(&self.perm.to_le_bytes());
        for value in [self.uid, self.gid, self.nlink, self.rdev] {
            out.extend_from_slice(&value.to_le_bytes());
        }
        out.extend_from_slice(&self.size.to_le_bytes());
        for time in [self.atime, self.mtime, self.ctime] {
            out.extend_from_slice(&time.secs.to_le_bytes());
            out.extend_from_slice(&time.nanos.to_le_bytes());
        }
        out.extend_from_slice(&(self.symlink_target.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.symlink_target);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut cursor = Cursor::new(bytes);
        let version = cursor.u8()?;
        if version != RECORD_VERSION {
            return Err(DecodeError::UnsupportedVersion(version.into()));
        }
        let kind = InodeKind::from_u8(cursor.u8()?)?;
        let perm = cursor.u16()?;
        if perm > 0o7777 {
            return Err(DecodeError::InvalidField {
                field: "perm",
                value: perm.into(),
            });
        }
        let (uid, gid, nlink, rdev) = (cursor.u32()?, cursor.u32()?, cursor.u32()?, cursor.u32()?);
        let size = cursor.u64()?;
        let (atime, mtime, ctime) = (
            cursor.timestamp()?,
            cursor.timestamp()?,
            cursor.timestamp()?,
        );
        let target_len = cursor.u32()? as usize;
        if target_len > MAX_SYMLINK_TARGET {
            return Err(DecodeError::InvalidField {
                field: "target_len",
                value: target_len as u64,
            });
        }
        let symlink_target = cursor.take(target_len)?.to_vec();
        cursor.finish()?;
        Ok(InodeRecord {
            kind,
            perm,
            uid,
            gid,
            nlink,
            rdev,
            size,
            atime,
            mtime,
            ctime,
            symlink_target,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn any_time() -> impl Strategy<Value = Timestamp> {
        (any::<i64>(), 0..1_000_000_000u32).prop_map(|(secs, nanos)| Timestamp { secs, nanos })
    }

    fn any_record() -> impl Strategy<Value = InodeRecord> {
        (
            1..=7u8,
            0..=0o7777u16,
            any::<[u32; 4]>(),
            any::<u64>(),
            [any_time(), any_time(), any_time()],
            proptest::collection::vec(any::<u8>(), 0..64),
        )
            .prop_map(
                |(kind, perm, [uid, gid, nlink, rdev], size, [atime, mtime, ctime], target)| {
                    InodeRecord {
                        kind: InodeKind::from_u8(kind).expect("kind in range"),
                        perm,
                        uid,
                        gid,
                        nlink,
                        rdev,
                        size,
                        atime,
                        mtime,
                        ctime,
                        symlink_target: target,
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn round_trips(record in any_record()) {
            prop_assert_eq!(InodeRecord::decode(&record.encode()), Ok(record));
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = InodeRecord::decode(&bytes);
        }

        #[test]
        fn truncation_is_an_error(record in any_record(), cut in 1..20usize) {
            let bytes = record.encode();
            let cut = cut.min(bytes.len());
            prop_assert!(InodeRecord::decode(&bytes[..bytes.len() - cut]).is_err());
        }

        #[test]
        fn timestamps_round_trip_through_system_time(time in (-(1i64 << 40)..(1i64 << 40), 0..1_000_000_000u32)) {
            let time = Timestamp { secs: time.0, nanos: time.1 };
            prop_assert_eq!(Timestamp::from_system_time(time.to_system_time()), time);
        }
    }
}
