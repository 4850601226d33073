//! A vault's retention policy, the object `policy`: how many backups `vault prune` keeps of
//! each share, and the minimum retention (the vault lock) under which no backup may be
//! deleted by anyone. Sealed like every other object but `config`. Absent until `vault policy
//! set` writes it; `vault prune` refuses a vault without one.
//!
//! ```text
//! version 3: "SVPL" | 3 u8 | last u32 | daily u32 | weekly u32 | monthly u32 | yearly u32
//!                   | min_retention_secs u64 | zone_len u8 | zone [zone_len] (ASCII)
//! version 2: "SVPL" | 2 u8 | last u32 | daily u32 | weekly u32 | monthly u32 | yearly u32
//!                   | min_retention_secs u64
//! version 1: "SVPL" | 1 u8 | last u32 | daily u32 | weekly u32 | monthly u32 | yearly u32
//! ```
//!
//! Version 3 added the time zone whose calendar the daily, weekly, monthly and yearly buckets
//! follow: an IANA name (`Europe/Berlin`), or `zone_len` 0 for UTC. Version 2 added
//! `min_retention_secs` (0: none). Versions 1 and 2 still decode, as policies in UTC (and
//! version 1 without a minimum retention); this build writes version 3 only. A build that
//! reads only older versions refuses a newer policy, so it cannot prune past a lock, or by a
//! calendar, it does not understand.
//!
//! The decoder checks only the zone name's form (printable ASCII, no `..`, as the IANA
//! database spells names); whether this machine's database knows it is checked where the
//! policy is used (`vault::prune`), since looking it up is I/O.

use super::DecodeError;
use super::cursor::Cursor;

const MAGIC: &[u8; 4] = b"SVPL";
/// The version this build writes.
const VERSION: u8 = 3;
/// The version before the time zone, still read (as UTC).
const VERSION_2: u8 = 2;
/// The version before `min_retention_secs`, still read.
const VERSION_1: u8 = 1;

/// How many backups of each share to keep: the newest `last`, and the newest of each of the
/// last `daily` days, `weekly` ISO weeks, `monthly` months and `yearly` years that
/// have a backup, by the calendar of `timezone` (UTC if `None`). All counts zero keeps
/// everything.
///
/// `min_retention_secs`: no backup younger than this (by its snapshot's time) may be deleted,
/// by `vault delete`, `vault prune` or anything else; the value can only be raised (a
/// compliance-mode lock, checked by `vault::prune::set_policy`).
///
/// `timezone`: an IANA zone name of at most 255 bytes of printable ASCII without `..`; `None`
/// is UTC (and `Some("UTC")` is never stored: `vault policy set` writes `None` for it).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct VaultPolicy {
    pub last: u32,
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
    pub yearly: u32,
    pub min_retention_secs: u64,
    pub timezone: Option<String>,
}

/// Whether `name` has the form of an IANA zone name (it may still be unknown to this machine).
pub fn zone_name_well_formed(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= usize::from(u8::MAX)
        && name.bytes().all(|b| b.is_ascii_graphic())
        && !name.contains("..")
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
        let zone = self.timezone.as_deref().unwrap_or("");
        // Set only through `vault policy set`, which checks the name against the time zone
        // database; a longer one cannot exist, and is written as UTC rather than cut.
        let zone = if zone.len() <= usize::from(u8::MAX) {
            zone
        } else {
            ""
        };
        out.push(zone.len() as u8);
        out.extend_from_slice(zone.as_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut cur = Cursor::new(bytes);
        if cur.take(MAGIC.len())? != MAGIC {
            return Err(DecodeError::BadMagic);
        }
        let version = cur.u8()?;
        if !matches!(version, VERSION | VERSION_2 | VERSION_1) {
            return Err(DecodeError::UnsupportedVersion(version.into()));
        }
        let mut policy = VaultPolicy {
            last: cur.u32()?,
            daily: cur.u32()?,
            weekly: cur.u32()?,
            monthly: cur.u32()?,
            yearly: cur.u32()?,
            min_retention_secs: 0,
            timezone: None,
        };
        if version >= VERSION_2 {
            policy.min_retention_secs = cur.u64()?;
        }
        if version >= VERSION {
            let len = cur.u8()?;
            let bytes = cur.take(usize::from(len))?;
            if len > 0 {
                let name = std::str::from_utf8(bytes)
                    .ok()
                    .filter(|name| zone_name_well_formed(name))
                    .ok_or(super::invalid("timezone", u64::from(len)))?;
                policy.timezone = Some(name.to_owned());
            }
        }
        cur.finish()?;
        Ok(policy)
    }

    /// True when every count is 0: pruning keeps every backup (whatever the minimum retention).
    pub fn keeps_everything(&self) -> bool {
        [
            self.last,
            self.daily,
            self.weekly,
            self.monthly,
            self.yearly,
        ] == [0; 5]
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
            timezone: Some("Europe/Berlin".into()),
        };
        let bytes = policy.encode();
        let mut expected = b"SVPL\x03".to_vec();
        expected.extend_from_slice(&[3, 0, 0, 0, 7, 0, 0, 0, 4, 0, 0, 0, 12, 0, 0, 0]);
        expected.extend_from_slice(&[4, 3, 2, 1]);
        expected.extend_from_slice(&[0x00, 0x8d, 0x27, 0, 0, 0, 0, 0]);
        expected.push(13);
        expected.extend_from_slice(b"Europe/Berlin");
        assert_eq!(bytes, expected);
        assert_eq!(VaultPolicy::decode(&bytes), Ok(policy.clone()));
        let utc = VaultPolicy {
            timezone: None,
            ..policy
        };
        assert_eq!(utc.encode().last(), Some(&0), "UTC is an empty name");
        assert_eq!(VaultPolicy::decode(&utc.encode()), Ok(utc));
        for bad_name in [&b"../../etc"[..], b"Europe/Ber lin", b"\xff\xfe"] {
            let mut bad = b"SVPL\x03".to_vec();
            bad.extend_from_slice(&[0; 28]);
            bad.push(bad_name.len() as u8);
            bad.extend_from_slice(bad_name);
            assert!(
                matches!(
                    VaultPolicy::decode(&bad),
                    Err(DecodeError::InvalidField {
                        field: "timezone",
                        ..
                    })
                ),
                "{bad_name:?}"
            );
        }
        for len in 0..bytes.len() {
            assert!(VaultPolicy::decode(&bytes[..len]).is_err(), "prefix {len}");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(VaultPolicy::decode(&extra).is_err());
        let mut future = bytes;
        future[4] = 4;
        assert_eq!(
            VaultPolicy::decode(&future),
            Err(DecodeError::UnsupportedVersion(4))
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
                timezone: None,
            }
        );
        // A version-1 header with a version-2 body is damage, not a policy.
        let mut longer = v1.to_vec();
        longer.extend_from_slice(&[0; 8]);
        assert!(VaultPolicy::decode(&longer).is_err());
        // Rewritten, it becomes version 3.
        assert_eq!(policy.encode()[4], 3);
    }

    /// A version-2 policy, as the build before time zones wrote it
    /// (`tests/fixtures/vault-policy-v2.bin`, the unsealed bytes), still reads: in UTC, with
    /// its minimum retention.
    #[test]
    fn reads_version_2_as_utc() {
        let v2 = include_bytes!("../../tests/fixtures/vault-policy-v2.bin");
        let policy = VaultPolicy::decode(v2).expect("version 2 decodes");
        assert_eq!(
            policy,
            VaultPolicy {
                last: 3,
                daily: 7,
                weekly: 4,
                monthly: 12,
                yearly: 0x0102_0304,
                min_retention_secs: 30 * 86_400,
                timezone: None,
            }
        );
        // A version-2 header with a version-3 body is damage, not a policy.
        let mut longer = v2.to_vec();
        longer.push(0);
        assert!(VaultPolicy::decode(&longer).is_err());
        assert_eq!(policy.encode()[4], 3);
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
        fn round_trips(
            counts in any::<[u32; 5]>(),
            min in any::<u64>(),
            zone in proptest::option::of("[A-Za-z_]{1,14}/[A-Za-z_+-]{1,14}"),
        ) {
            let [last, daily, weekly, monthly, yearly] = counts;
            let policy = VaultPolicy {
                last, daily, weekly, monthly, yearly, min_retention_secs: min, timezone: zone,
            };
            prop_assert_eq!(VaultPolicy::decode(&policy.encode()), Ok(policy));
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..60)) {
            let _ = VaultPolicy::decode(&bytes);
        }
    }
}
