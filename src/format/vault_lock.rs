//! A vault lock, `locks/<lock id>`: who is working on the vault, and how. Backups, copies,
//! restores and verifies take **shared** locks; gc and delete take **exclusive** ones (see
//! `vault::lock` for the protocol). Sealed like everything else, so the provider does not learn
//! host names.
//!
//! ```text
//! "SVLK" | version u8 = 1 | kind u8 (1 shared, 2 exclusive) | time i64 (unix secs)
//!        | pid u32 | host_len u8 | host (UTF-8) | op_len u8 | op (UTF-8)
//! ```
//! `time` is when the holder last refreshed the lock; a lock older than the timeout is stale.

use super::cursor::Cursor;
use super::{DecodeError, invalid};

const MAGIC: &[u8; 4] = b"SVLK";
const VERSION: u8 = 1;

/// What a lock allows others to do meanwhile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockKind {
    /// Others may read and add (backup, copy, restore, verify); no gc or delete.
    Shared,
    /// Nobody else: gc and delete remove what others may rely on.
    Exclusive,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockRecord {
    pub kind: LockKind,
    /// Unix seconds of the last refresh.
    pub time: i64,
    pub pid: u32,
    /// At most 255 bytes (longer names are cut at a character boundary when encoded).
    pub host: String,
    /// The operation holding it (`backup`, `gc`, ...), at most 255 bytes.
    pub op: String,
}

/// `text` cut to at most 255 bytes, at a character boundary.
fn short(text: &str) -> &str {
    let mut end = text.len().min(255);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn string(cur: &mut Cursor<'_>, field: &'static str) -> Result<String, DecodeError> {
    let len = usize::from(cur.u8()?);
    std::str::from_utf8(cur.take(len)?)
        .map(str::to_owned)
        .map_err(|_| invalid(field, len as u64))
}

impl LockRecord {
    pub fn encode(&self) -> Vec<u8> {
        let host = short(&self.host);
        let op = short(&self.op);
        let mut out = Vec::with_capacity(20 + host.len() + op.len());
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.push(match self.kind {
            LockKind::Shared => 1,
            LockKind::Exclusive => 2,
        });
        out.extend_from_slice(&self.time.to_le_bytes());
        out.extend_from_slice(&self.pid.to_le_bytes());
        out.push(host.len() as u8);
        out.extend_from_slice(host.as_bytes());
        out.push(op.len() as u8);
        out.extend_from_slice(op.as_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut cur = Cursor::new(bytes);
        cur.header(MAGIC, VERSION)?;
        let kind = match cur.u8()? {
            1 => LockKind::Shared,
            2 => LockKind::Exclusive,
            other => return Err(invalid("kind", other.into())),
        };
        let time = cur.i64()?;
        let pid = cur.u32()?;
        let host = string(&mut cur, "host")?;
        let op = string(&mut cur, "op")?;
        cur.finish()?;
        Ok(LockRecord {
            kind,
            time,
            pid,
            host,
            op,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn golden_bytes() {
        let lock = LockRecord {
            kind: LockKind::Exclusive,
            time: 1,
            pid: 2,
            host: "h".into(),
            op: "gc".into(),
        };
        let bytes = lock.encode();
        assert_eq!(
            bytes,
            b"SVLK\x01\x02\x01\0\0\0\0\0\0\0\x02\0\0\0\x01h\x02gc".to_vec()
        );
        assert_eq!(LockRecord::decode(&bytes), Ok(lock));
        for len in 0..bytes.len() {
            assert!(LockRecord::decode(&bytes[..len]).is_err(), "prefix {len}");
        }
    }

    #[test]
    fn long_host_names_are_cut_at_a_character_boundary() {
        let lock = LockRecord {
            kind: LockKind::Shared,
            time: -5,
            pid: 7,
            host: "é".repeat(200),
            op: "backup".into(),
        };
        let back = LockRecord::decode(&lock.encode()).expect("decodes");
        assert_eq!(back.host, "é".repeat(127));
    }

    proptest! {
        #[test]
        fn round_trips(host in "[a-z0-9.-]{0,60}", op in "[a-z]{0,10}", time in any::<i64>(), pid in any::<u32>(), exclusive in any::<bool>()) {
            let kind = if exclusive { LockKind::Exclusive } else { LockKind::Shared };
            let lock = LockRecord { kind, time, pid, host, op };
            prop_assert_eq!(LockRecord::decode(&lock.encode()), Ok(lock));
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = LockRecord::decode(&bytes);
        }
    }
}
