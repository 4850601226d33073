//! What a tiered share looks like in its object store:
//!
//! ```text
//! snapfs-tier.json                          the share's identity (ShareMarker), written once
//! packs/EEEEEEEEEEEEEEEE/NNNNNNNN.pack       a sealed pack, byte for byte as on the local disk
//! checkpoints/SSSSSSSSSSSSSSSS.redb.zst     the metadata database at one commit, compressed
//! ```
//!
//! `E` is the writer's epoch: a random number each store that writes to the share draws when it
//! is created or attached, so two stores numbering packs alike never replace each other's. A
//! checkpoint is published only after every pack its pack table names was uploaded, and it
//! carries the epoch of each; its sequence number is created with `put_if_absent`, so two
//! writers cannot both publish the same one.

use serde::{Deserialize, Serialize};

use crate::blob::BlobKey;
use crate::id::PackId;

pub const MARKER: &str = "snapfs-tier.json";
pub const CHECKPOINTS: &str = "checkpoints";
const MARKER_MAGIC: &str = "snapfs-tier";
const MARKER_VERSION: u32 = 1;

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
        if marker.version != MARKER_VERSION {
            return Err(format!(
                "tier format version {} is not supported",
                marker.version
            ));
        }
        Ok(marker)
    }
}

pub fn marker_key() -> BlobKey {
    BlobKey::new(MARKER).expect("a valid key")
}

pub fn pack_key(epoch: u64, id: PackId) -> BlobKey {
    BlobKey::new(&format!("packs/{epoch:016x}/{id}.pack")).expect("a valid key")
}

pub fn checkpoint_key(seq: u64) -> BlobKey {
    BlobKey::new(&format!("{CHECKPOINTS}/{seq:016}.redb.zst")).expect("a valid key")
}

/// The sequence number of a checkpoint's key, or `None` for any other key.
pub fn parse_checkpoint_key(key: &str) -> Option<u64> {
    let name = key.strip_prefix(CHECKPOINTS)?.strip_prefix('/')?;
    let digits = name.strip_suffix(".redb.zst")?;
    (digits.len() == 16 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_keys_round_trip_and_order_by_number() {
        let key = checkpoint_key(42);
        assert_eq!(parse_checkpoint_key(key.as_str()), Some(42));
        assert!(checkpoint_key(9).as_str() < checkpoint_key(10).as_str());
        assert_eq!(parse_checkpoint_key("checkpoints/42.redb.zst"), None);
        assert_eq!(
            parse_checkpoint_key("packs/0000000000000042.redb.zst"),
            None
        );
    }

    #[test]
    fn markers_are_checked() {
        let marker = ShareMarker::new("ab".repeat(16), 131072);
        assert_eq!(ShareMarker::decode(&marker.encode()), Ok(marker));
        assert!(ShareMarker::decode(b"{}").is_err());
        assert!(
            ShareMarker::decode(br#"{"magic":"x","version":1,"share_id":"","block_size":1}"#)
                .is_err()
        );
    }
}
