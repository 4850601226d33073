//! One sample of the space history (`service::space_history`): the store's space figures at
//! one moment, the value of table `space_history` (key: unix seconds).
//!
//! Layout, little-endian, 41 bytes:
//!
//! ```text
//! version u8 = 1 | live u64 | snapshot u64 | deleted u64 | stored u64 | reclaimable u64
//! ```
//!
//! The fields are `gc::usage::Usage`'s totals at that moment, in stored bytes: `live` the
//! chunks the live share uses, `snapshot` those only listed snapshots use, `deleted` those only
//! soft-deleted snapshots hold, `stored` every chunk in the index, `reclaimable` what nothing
//! uses. A new field means a new version; version 1 records keep decoding.

use super::DecodeError;
use super::cursor::Cursor;

const VERSION: u8 = 1;
/// The length of a version-1 record.
pub const LEN: usize = 41;

/// The space figures of a store at one moment, in stored bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SpaceSample {
    pub live_bytes: u64,
    pub snapshot_bytes: u64,
    pub deleted_snapshot_bytes: u64,
    pub stored_bytes: u64,
    pub reclaimable_bytes: u64,
}

impl SpaceSample {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(LEN);
        out.push(VERSION);
        for field in [
            self.live_bytes,
            self.snapshot_bytes,
            self.deleted_snapshot_bytes,
            self.stored_bytes,
            self.reclaimable_bytes,
        ] {
            out.extend_from_slice(&field.to_le_bytes());
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut cursor = Cursor::new(bytes);
        let version = cursor.u8()?;
        if version != VERSION {
            return Err(DecodeError::UnsupportedVersion(u32::from(version)));
        }
        let sample = SpaceSample {
            live_bytes: cursor.u64()?,
            snapshot_bytes: cursor.u64()?,
            deleted_snapshot_bytes: cursor.u64()?,
            stored_bytes: cursor.u64()?,
            reclaimable_bytes: cursor.u64()?,
        };
        cursor.finish()?;
        Ok(sample)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn golden_bytes() {
        let sample = SpaceSample {
            live_bytes: 1,
            snapshot_bytes: 0x0203,
            deleted_snapshot_bytes: 4,
            stored_bytes: u64::MAX,
            reclaimable_bytes: 5,
        };
        let mut expected = vec![1];
        expected.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
        expected.extend_from_slice(&[3, 2, 0, 0, 0, 0, 0, 0]);
        expected.extend_from_slice(&[4, 0, 0, 0, 0, 0, 0, 0]);
        expected.extend_from_slice(&[0xff; 8]);
        expected.extend_from_slice(&[5, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(sample.encode(), expected);
        assert_eq!(expected.len(), LEN);
        assert_eq!(SpaceSample::decode(&expected), Ok(sample));
    }

    #[test]
    fn other_versions_short_and_long_records_are_refused() {
        let mut bytes = SpaceSample::default().encode();
        bytes[0] = 2;
        assert_eq!(
            SpaceSample::decode(&bytes),
            Err(DecodeError::UnsupportedVersion(2))
        );
        let good = SpaceSample::default().encode();
        assert!(SpaceSample::decode(&good[..LEN - 1]).is_err());
        let mut long = good.clone();
        long.push(0);
        assert_eq!(
            SpaceSample::decode(&long),
            Err(DecodeError::TrailingBytes(1))
        );
        assert!(SpaceSample::decode(&[]).is_err());
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = SpaceSample::decode(&bytes);
        }

        #[test]
        fn round_trips(live: u64, snapshot: u64, deleted: u64, stored: u64, reclaimable: u64) {
            let sample = SpaceSample {
                live_bytes: live,
                snapshot_bytes: snapshot,
                deleted_snapshot_bytes: deleted,
                stored_bytes: stored,
                reclaimable_bytes: reclaimable,
            };
            prop_assert_eq!(SpaceSample::decode(&sample.encode()), Ok(sample));
        }
    }
}
