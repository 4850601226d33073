//! What a tiered share looks like in its object store:
//!
//! ```text
//! snapfs-tier.json                          the share's identity (ShareMarker)
//! packs/EEEEEEEEEEEEEEEE/NNNNNNNN.pack       a sealed pack, byte for byte as on the local disk
//! checkpoints/LLLLLLLLLLLLLLLL-SSSSSSSSSSSSSSSS.redb.zst
//!                                           the metadata database at one commit, compressed
//! leases/LLLLLLLLLLLLLLLL.json               who took the writer's lease `L` (see `lease`)
//! leases/LLLLLLLLLLLLLLLL.alive              rewritten by that writer while it holds it
//! readers/RRRRRRRRRRRRRRRR.json              a follower's lease: the oldest checkpoint it serves
//! ```
//!
//! `E` is the writer's epoch: a random number each store that writes to the share draws when it
//! is created or attached, so two stores numbering packs alike never replace each other's. A
//! checkpoint is published only after every pack its pack table names was uploaded, and it
//! carries the epoch of each. Its name starts with the lease generation of the writer that
//! published it: checkpoints order by (lease, sequence), so the newest checkpoint is always one
//! of the newest lease's holder, and a fenced writer's late checkpoints are never chosen.
//!
//! Format history: version 1 had no leases and named checkpoints `SSSSSSSSSSSSSSSS.redb.zst`;
//! those read as lease 0. Version 3 added readers' leases, which the writer's gc honours (see
//! `readers`): an older writer would delete packs under a follower, so followers need version 3,
//! and a marker at version 3 keeps older writers out (they refuse a newer format). A writer
//! rewrites an older marker as the current version when it takes its lease.

use serde::{Deserialize, Serialize};

use crate::blob::BlobKey;
use crate::id::PackId;

pub const MARKER: &str = "snapfs-tier.json";
pub const CHECKPOINTS: &str = "checkpoints";
const MARKER_MAGIC: &str = "snapfs-tier";
pub const LEASES: &str = "leases";
const OLDEST_MARKER_VERSION: u32 = 1;
const MARKER_VERSION: u32 = 3;
/// The first version whose writers honour readers' leases.
pub const FOLLOWABLE_VERSION: u32 = 3;
pub const READERS: &str = "readers";

/// The share a bucket prefix holds, so that `attach` knows what it attaches and `init --tier`
/// refuses a prefix that holds another share.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareMarker {
    pub magic: String,
    pub version: u32,
    pub share_id: String,
    pub block_size: u32,
}

impl ShareMarker {
    pub fn new(share_id: String, block_size: u32) -> Self {
        ShareMarker {
            magic: MARKER_MAGIC.into(),
            version: MARKER_VERSION,
            share_id,
            block_size,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("a plain struct serialises")
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let marker: ShareMarker = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if marker.magic != MARKER_MAGIC {
            return Err("not a snapfs tier marker".into());
        }
        if !(OLDEST_MARKER_VERSION..=MARKER_VERSION).contains(&marker.version) {
            return Err(format!(
                "tier format version {} is not supported by this snapfs (it reads up to {})",
                marker.version, MARKER_VERSION
            ));
        }
        Ok(marker)
    }

    /// Whether this marker was written by an older format (and should be rewritten as the
    /// current one by the writer that takes the share's lease).
    pub fn is_outdated(&self) -> bool {
        self.version < MARKER_VERSION
    }

    /// This marker at the current version.
    pub fn upgraded(&self) -> Self {
        ShareMarker::new(self.share_id.clone(), self.block_size)
    }
}

/// A published checkpoint: the lease generation of the writer that published it, and its
/// sequence number. Ordered by both, in that order (see the module comment).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CheckpointId {
    pub lease: u64,
    pub seq: u64,
}

impl std::fmt::Display for CheckpointId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{} (lease {})", self.seq, self.lease)
    }
}

pub fn marker_key() -> BlobKey {
    BlobKey::new(MARKER).expect("a valid key")
}

pub fn pack_key(epoch: u64, id: PackId) -> BlobKey {
    BlobKey::new(&format!("packs/{epoch:016x}/{id}.pack")).expect("a valid key")
}

pub fn checkpoint_key(id: CheckpointId) -> BlobKey {
    let name = if id.lease == 0 {
        // Published before leases (format 1): found under its old name.
        format!("{CHECKPOINTS}/{:016}.redb.zst", id.seq)
    } else {
        format!("{CHECKPOINTS}/{:016}-{:016}.redb.zst", id.lease, id.seq)
    };
    BlobKey::new(&name).expect("a valid key")
}

/// Sixteen decimal digits, as every number in a key is written.
fn parse_number(digits: &str) -> Option<u64> {
    (digits.len() == 16 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// The checkpoint a key names (either format), or `None` for any other key.
pub fn parse_checkpoint_key(key: &str) -> Option<CheckpointId> {
    let name = key.strip_prefix(CHECKPOINTS)?.strip_prefix('/')?;
    let stem = name.strip_suffix(".redb.zst")?;
    match stem.split_once('-') {
        Some((lease, seq)) => Some(CheckpointId {
            lease: parse_number(lease).filter(|&lease| lease > 0)?,
            seq: parse_number(seq)?,
        }),
        None => Some(CheckpointId {
            lease: 0,
            seq: parse_number(stem)?,
        }),
    }
}

/// The record of who took lease `generation` (created once, never replaced).
pub fn lease_key(generation: u64) -> BlobKey {
    BlobKey::new(&format!("{LEASES}/{generation:016}.json")).expect("a valid key")
}

/// The object the holder of lease `generation` rewrites to show it is alive.
pub fn lease_alive_key(generation: u64) -> BlobKey {
    BlobKey::new(&format!("{LEASES}/{generation:016}.alive")).expect("a valid key")
}

/// Rewritten by whoever reads the leases, so that the listing carries the server's "now".
pub fn lease_clock_key() -> BlobKey {
    BlobKey::new(&format!("{LEASES}/clock")).expect("a valid key")
}

/// The lease of follower `reader` (a random number it draws at mount).
pub fn reader_key(reader: u64) -> BlobKey {
    BlobKey::new(&format!("{READERS}/{reader:016x}.json")).expect("a valid key")
}

/// Rewritten by whoever reads the readers' leases, so that the listing carries the server's
/// "now".
pub fn readers_clock_key() -> BlobKey {
    BlobKey::new(&format!("{READERS}/clock")).expect("a valid key")
}

/// The follower a key under `readers/` is the lease of.
pub fn parse_reader_key(key: &str) -> Option<u64> {
    let name = key.strip_prefix(READERS)?.strip_prefix('/')?;
    let stem = name.strip_suffix(".json")?;
    (stem.len() == 16)
        .then(|| u64::from_str_radix(stem, 16).ok())
        .flatten()
}

/// What a key under `leases/` is: a lease record or a liveness object, of which generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseObject {
    Record(u64),
    Alive(u64),
}

pub fn parse_lease_key(key: &str) -> Option<LeaseObject> {
    let name = key.strip_prefix(LEASES)?.strip_prefix('/')?;
    if let Some(stem) = name.strip_suffix(".json") {
        return parse_number(stem).map(LeaseObject::Record);
    }
    parse_number(name.strip_suffix(".alive")?).map(LeaseObject::Alive)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_keys_round_trip_and_order_by_lease_then_number() {
        let id = |lease, seq| CheckpointId { lease, seq };
        for id in [id(0, 42), id(3, 42), id(12, 1)] {
            assert_eq!(parse_checkpoint_key(checkpoint_key(id).as_str()), Some(id));
        }
        // Format 1's names read as lease 0.
        assert_eq!(
            parse_checkpoint_key("checkpoints/0000000000000007.redb.zst"),
            Some(id(0, 7))
        );
        assert!(id(1, 2) < id(2, 1) && id(2, 1) < id(2, 3));
        assert!(checkpoint_key(id(2, 9)).as_str() < checkpoint_key(id(2, 10)).as_str());
        for wrong in [
            "checkpoints/42.redb.zst",
            "checkpoints/0000000000000000-0000000000000001.redb.zst",
            "checkpoints/0000000000000001-1.redb.zst",
            "packs/0000000000000042.redb.zst",
        ] {
            assert_eq!(parse_checkpoint_key(wrong), None, "{wrong}");
        }
    }

    #[test]
    fn lease_keys_round_trip() {
        assert_eq!(
            parse_lease_key(lease_key(5).as_str()),
            Some(LeaseObject::Record(5))
        );
        assert_eq!(
            parse_lease_key(lease_alive_key(5).as_str()),
            Some(LeaseObject::Alive(5))
        );
        assert_eq!(parse_lease_key(lease_clock_key().as_str()), None);
        assert_eq!(parse_lease_key("leases/5.json"), None);
        assert_eq!(parse_reader_key(reader_key(0xab).as_str()), Some(0xab));
        assert_eq!(parse_reader_key(readers_clock_key().as_str()), None);
        assert_eq!(parse_reader_key("readers/ab.json"), None);
    }

    #[test]
    fn markers_are_checked() {
        let marker = ShareMarker::new("ab".repeat(16), 131072);
        assert_eq!(ShareMarker::decode(&marker.encode()), Ok(marker.clone()));
        assert!(!marker.is_outdated());
        let old = ShareMarker::decode(
            &std::fs::read(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/tier-v1/snapfs-tier.json"
            ))
            .expect("the format-1 fixture"),
        )
        .expect("format 1 is read");
        assert!(old.is_outdated());
        assert_eq!(old.upgraded().version, MARKER_VERSION);
        assert_eq!(old.upgraded().share_id, old.share_id);
        // Version 2 (writer leases, no readers' leases): read, and upgraded by its next writer
        // before anyone may follow it.
        let v2 = ShareMarker::decode(
            &std::fs::read(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/tier-v2/snapfs-tier.json"
            ))
            .expect("the format-2 fixture"),
        )
        .expect("format 2 is read");
        assert!(v2.is_outdated() && v2.version < FOLLOWABLE_VERSION);
        assert!(v2.upgraded().version >= FOLLOWABLE_VERSION);
        assert!(
            ShareMarker::decode(
                br#"{"magic":"snapfs-tier","version":4,"share_id":"","block_size":1}"#
            )
            .is_err()
        );
        assert!(ShareMarker::decode(b"{}").is_err());
        assert!(
            ShareMarker::decode(br#"{"magic":"x","version":1,"share_id":"","block_size":1}"#)
                .is_err()
        );
    }
}
