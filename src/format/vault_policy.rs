//! A vault's retention policy, the object `policy`: how many backups `vault prune` keeps of
//! each share. Sealed like every other object but `config`. Absent until `vault policy set`
//! writes it; `vault prune` refuses a vault without one.
//!
//! ```text
//! "SVPL" | version u8 = 1 | last u32 | daily u32 | weekly u32 | monthly u32 | yearly u32
//! ```

use super::DecodeError;
use super::cursor::Cursor;

const MAGIC: &[u8; 4] = b"SVPL";
const VERSION: u8 = 1;

/// How many backups of each share to keep: the newest `last`, and the newest of each of the
/// last `daily` days, `weekly` ISO weeks, `monthly` months and `yearly` years (UTC) that
/// have a backup. All zero keeps everything.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct VaultPolicy {
    pub last: u32,
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
    pub yearly: u32,
}

impl VaultPolicy {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(25);
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
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut cur = Cursor::new(bytes);
        cur.header(MAGIC, VERSION)?;
        let policy = VaultPolicy {
            last: cur.u32()?,
            daily: cur.u32()?,
            weekly: cur.u32()?,
            monthly: cur.u32()?,
            yearly: cur.u32()?,
        };
        cur.finish()?;
        Ok(policy)
    }

    /// True when every count is 0: the policy keeps every backup.
    pub fn keeps_everything(&self) -> bool {
        *self == VaultPolicy::default()
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
        };
        let bytes = policy.encode();
        let mut expected = b"SVPL\x01".to_vec();
        expected.extend_from_slice(&[3, 0, 0, 0, 7, 0, 0, 0, 4, 0, 0, 0, 12, 0, 0, 0]);
        expected.extend_from_slice(&[4, 3, 2, 1]);
        assert_eq!(bytes, expected);
        assert_eq!(VaultPolicy::decode(&bytes), Ok(policy));
        for len in 0..bytes.len() {
            assert!(VaultPolicy::decode(&bytes[..len]).is_err(), "prefix {len}");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(VaultPolicy::decode(&extra).is_err());
        let mut future = bytes;
        future[4] = 2;
        assert!(VaultPolicy::decode(&future).is_err());
    }

    proptest! {
        #[test]
        fn round_trips(counts in any::<[u32; 5]>()) {
            let [last, daily, weekly, monthly, yearly] = counts;
            let policy = VaultPolicy { last, daily, weekly, monthly, yearly };
            prop_assert_eq!(VaultPolicy::decode(&policy.encode()), Ok(policy));
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..60)) {
            let _ = VaultPolicy::decode(&bytes);
        }
    }
}
