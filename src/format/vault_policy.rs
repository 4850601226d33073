//! A vault's retention policy, the object `policy`: how many backups `vault prune` keeps of
//! each share, and the minimum retention (the vault lock) under which no backup may be
//! deleted by anyone. Sealed like every other object but `config`. Absent until `vault policy
//! set` writes it; `vault prune` refuses a vault without one.
//!
//! ```text
//! version 2: "SVPL" | 2 u8 | last u32 | daily u32 | weekly u32 | monthly u32 | yearly u32
//!                   | min_retention_secs u64
//! version 1: "SVPL" | 1 u8 | last u32 | daily u32 | weekly u32 | monthly u32 | yearly u32
//! ```
//!
//! Version 2 added `min_retention_secs` (0: none). Version 1 still decodes, as a policy without
//! a minimum retention; this build writes version 2 only. A build that reads only version 1
//! refuses a version-2 policy, so it cannot prune past a lock it does not understand.

use super::DecodeError;
use super::cursor::Cursor;

const MAGIC: &[u8; 4] = b"SVPL";
/// The version this build writes.
const VERSION: u8 = 2;
/// The version before `min_retention_secs`, still read.
const VERSION_1: u8 = 1;

/// How many backups of each share to keep: the newest `last`, and the newest of each of the
/// last `daily` days, `weekly` ISO weeks, `monthly` months and `yearly` years (UTC) that
/// have a backup. All counts zero keeps everything.
///
/// `min_retention_secs`: no backup younger than this (by its snapshot's time) may be deleted,
/// by `vault delete`, `vault prune` or anything else; the value can only be raised (a
/// compliance-mode lock, checked by `vault::prune::set_policy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct VaultPolicy {
    pub last: u32,
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
    pub yearly: u32,
    pub min_retention_secs: u64,
}

impl VaultPolicy {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(33);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        for count in [
            self.last,
            self.daily,
            self.weekly,
            self.monthly,
            self.yearly,
        ] {
            out.extend_from_slice(&count.to_le_bytes());
        }
        out.extend_from_slice(&self.min_retention_secs.to_le_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut cur = Cursor::new(bytes);
        if cur.take(MAGIC.len())? != MAGIC {
            return Err(DecodeError::BadMagic);
        }
        let version = cur.u8()?;
        if version != VERSION && version != VERSION_1 {
            return Err(DecodeError::UnsupportedVersion(version.into()));
        }
        let mut policy = VaultPolicy {
            last: cur.u32()?,
            daily: cur.u32()?,
            weekly: cur.u32()?,
            monthly: cur.u32()?,
            yearly: cur.u32()?,
            min_retention_secs: 0,
        };
        if version == VERSION {
            policy.min_retention_secs = cur.u64()?;
        }
        cur.finish()?;
        Ok(policy)
    }

    /// True when every count is 0: pruning keeps every backup (whatever the minimum retention).
    pub fn keeps_everything(&self) -> bool {
        VaultPolicy {
            min_retention_secs: 0,
            ..*self
        } == VaultPolicy::default()
    }

    /// When a backup whose snapshot was taken at `created` may first be deleted, if the
    /// minimum retention protects it at `now`.
    pub fn locked_until(&self, created: i64, now: i64) -> Option<i64> {
        let until = created.saturating_add_unsigned(self.min_retention_secs);
        (self.min_retention_secs > 0 && until > now).then_some(until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn golden_bytes() {
        let policy = VaultPolicy {
            last: 3,
            daily: 7,
            weekly: 4,
            monthly: 12,
            yearly: 0x0102_0304,
            min_retention_secs: 30 * 86_400,
        };
        let bytes = policy.encode();
        let mut expected = b"SVPL\x02".to_vec();
        expected.extend_from_slice(&[3, 0, 0, 0, 7, 0, 0, 0, 4, 0, 0, 0, 12, 0, 0, 0]);
        expected.extend_from_slice(&[4, 3, 2, 1]);
        expected.extend_from_slice(&[0x00, 0x8d, 0x27, 0, 0, 0, 0, 0]);
        assert_eq!(bytes, expected);
        assert_eq!(VaultPolicy::decode(&bytes), Ok(policy));
        for len in 0..bytes.len() {
            assert!(VaultPolicy::decode(&bytes[..len]).is_err(), "prefix {len}");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(VaultPolicy::decode(&extra).is_err());
        let mut future = bytes;
        future[4] = 3;
        assert_eq!(
            VaultPolicy::decode(&future),
            Err(DecodeError::UnsupportedVersion(3))
        );
    }

    /// A version-1 policy, as the build before the minimum retention wrote it
    /// (`tests/fixtures/vault-policy-v1.bin`, the unsealed bytes), still reads: without a
    /// minimum retention.
    #[test]
    fn reads_version_1() {
        let v1 = include_bytes!("../../tests/fixtures/vault-policy-v1.bin");
        let policy = VaultPolicy::decode(v1).expect("version 1 decodes");
        assert_eq!(
            policy,
            VaultPolicy {
                last: 3,
                daily: 7,
                weekly: 4,
                monthly: 12,
                yearly: 0x0102_0304,
                min_retention_secs: 0,
            }
        );
        // A version-1 header with a version-2 body is damage, not a policy.
        let mut longer = v1.to_vec();
        longer.extend_from_slice(&[0; 8]);
        assert!(VaultPolicy::decode(&longer).is_err());
        // Rewritten, it becomes version 2.
        assert_eq!(policy.encode()[4], 2);
    }

    #[test]
    fn the_lock_counts_from_the_snapshot_time() {
        let policy = VaultPolicy {
            min_retention_secs: 100,
            ..VaultPolicy::default()
        };
        assert_eq!(policy.locked_until(1_000, 1_050), Some(1_100));
        assert_eq!(policy.locked_until(1_000, 1_100), None);
        assert_eq!(VaultPolicy::default().locked_until(1_000, 1_000), None);
        assert_eq!(
            policy.locked_until(i64::MAX - 1, 0),
            Some(i64::MAX),
            "saturates"
        );
        assert!(policy.keeps_everything());
    }

    proptest! {
        #[test]
        fn round_trips(counts in any::<[u32; 5]>(), min in any::<u64>()) {
            let [last, daily, weekly, monthly, yearly] = counts;
            let policy = VaultPolicy { last, daily, weekly, monthly, yearly, min_retention_secs: min };
            prop_assert_eq!(VaultPolicy::decode(&policy.encode()), Ok(policy));
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..60)) {
            let _ = VaultPolicy::decode(&bytes);
        }
    }
}
