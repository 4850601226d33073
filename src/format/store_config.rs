//! The store's identity file, `snapfs-store.json`: written once by `snapfs init`, read first by
//! every command, so that a directory which is not a store, or a store of a format this build
//! does not know, is refused before anything else is touched.
//!
//! Versions: 1 had no share id; 2 adds `share_id`, the share's stable identity (backups in a
//! vault are grouped by it); 3 keeps two things in the metadata database that every change
//! must keep true: space accounting (`meta::accounting`, updated by every block-map, index and
//! catalog change) and the `frozen` table (what each unchanged inode froze to, removed by every
//! change of it). A build that does not know them would change the share without updating
//! them, hence the bump, which makes version-2 builds refuse the store. An older store is
//! upgraded when it is next opened ([`StoreConfig::upgraded`]): a version-1 store is given a new
//! random share id, and the file is rewritten at the current version; the accounting tables are
//! built when the snapshots are first opened (`Snapshots::open`), guided by a marker inside the
//! database, and the `frozen` table starts empty, so the first snapshot encodes everything once.
//! 4 loads the namespace on demand: the database gains the `names` and `orphans` tables (kept
//! by every commit) and a stricter `frozen` table (a change removes the entries of every
//! directory above it), see `meta::namespace`. A version-3 build would commit without keeping
//! them. A version-3 store gets them when it is next opened, in one transaction guided by a
//! marker inside the database (`meta::namespace::ensure_tables`), its `frozen` table emptied.
//! 5 may tier the store to an object store (`tier`, see `crate::tier`): its packs may then be
//! holes that only the object store fills, and its database gains the `tier_packs` table. A
//! version-4 build would read those holes as damage and delete packs the object store's
//! checkpoints still name. A version-4 store is upgraded by rewriting this file; it stays
//! untiered.

use serde::{Deserialize, Serialize};

use crate::id::ShareId;

fn new_share_id() -> Result<ShareId, StoreConfigError> {
    ShareId::random().map_err(|err| StoreConfigError::Random(err.to_string()))
}

/// The file name inside the store directory.
pub const STORE_CONFIG_FILE: &str = "snapfs-store.json";
/// The store layout this build reads and writes. Bumped on any incompatible change.
pub const STORE_FORMAT_VERSION: u32 = 6;
/// The oldest version this build still opens (and upgrades).
pub const OLDEST_STORE_FORMAT_VERSION: u32 = 1;
pub const MIN_BLOCK_SIZE: u32 = 4096;
pub const MAX_BLOCK_SIZE: u32 = 1 << 20;
pub const DEFAULT_BLOCK_SIZE: u32 = 128 * 1024;

/// Settings fixed when the store is created.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreConfig {
    /// A constant tag, so that an unrelated JSON file is not mistaken for a store.
    pub magic: String,
    pub format_version: u32,
    /// File data is cut into blocks of this many bytes (a power of two).
    pub block_size: u32,
    /// The share's identity, 32 hex digits; present from version 2 on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_id: Option<String>,
    /// Where the store is tiered to, from version 5 on; absent for a store on local disk only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<TierConfig>,
}

/// A tiered store's settings: the object store is the authority, the local disk a bounded
/// cache of it (see `crate::tier`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierConfig {
    /// `s3://bucket/prefix`, or a local directory (another disk).
    pub location: String,
    /// Local disk space the packs may take, in bytes, once what is over it is uploaded.
    pub cache_size: u64,
    /// Evict also while the local file system has less than this percentage free.
    pub min_free_percent: u8,
    /// Seconds between checkpoints while there are changes.
    pub checkpoint_interval_secs: u64,
    /// Seconds without renewal after which this store's writer lease is free for another
    /// host (from version 6 on; version 5 stores read the default).
    #[serde(default = "default_lease_timeout")]
    pub lease_timeout_secs: u64,
    /// The admin vouches that only this host writes the share: allowed on an object store
    /// that does not enforce conditional writes, where the lease cannot (from version 6 on).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub single_host: bool,
}

fn default_lease_timeout() -> u64 {
    crate::tier::DEFAULT_LEASE_TIMEOUT_SECS
}

#[derive(Debug, thiserror::Error)]
pub enum StoreConfigError {
    #[error("not a snapfs store configuration: {0}")]
    Malformed(String),
    #[error(
        "store format version {found} is not supported by this snapfs (it reads version {STORE_FORMAT_VERSION})"
    )]
    UnsupportedVersion { found: u32 },
    #[error("invalid block size {0}: must be a power of two from 4 KiB to 1 MiB")]
    InvalidBlockSize(u32),
    #[error("no random numbers for a share id: {0}")]
    Random(String),
}

const MAGIC: &str = "snapfs-store";

impl StoreConfig {
    pub fn new(block_size: u32) -> Result<Self, StoreConfigError> {
        let config = StoreConfig {
            magic: MAGIC.to_owned(),
            format_version: STORE_FORMAT_VERSION,
            block_size,
            share_id: Some(new_share_id()?.to_hex()),
            tier: None,
        };
        config.validate()?;
        Ok(config)
    }

    /// The share's identity (`None` only for a version-1 config not yet upgraded).
    pub fn share_id(&self) -> Option<ShareId> {
        self.share_id.as_deref().and_then(ShareId::from_hex)
    }

    /// This config at the current version: one without a share id (version 1) gets a new one.
    pub fn upgraded(&self) -> Result<Self, StoreConfigError> {
        if self.format_version == STORE_FORMAT_VERSION {
            return Ok(self.clone());
        }
        let share_id = match &self.share_id {
            Some(id) => id.clone(),
            None => new_share_id()?.to_hex(),
        };
        Ok(StoreConfig {
            format_version: STORE_FORMAT_VERSION,
            share_id: Some(share_id),
            ..self.clone()
        })
    }

    fn validate(&self) -> Result<(), StoreConfigError> {
        if self.magic != MAGIC {
            return Err(StoreConfigError::Malformed("wrong magic".into()));
        }
        if !(OLDEST_STORE_FORMAT_VERSION..=STORE_FORMAT_VERSION).contains(&self.format_version) {
            return Err(StoreConfigError::UnsupportedVersion {
                found: self.format_version,
            });
        }
        // Version 1 has no share id; every later version has a valid one.
        if (self.format_version >= 2) != self.share_id().is_some()
            || (self.share_id.is_some() && self.share_id().is_none())
        {
            return Err(StoreConfigError::Malformed("share_id".into()));
        }
        if self.tier.is_some() && self.format_version < 5 {
            return Err(StoreConfigError::Malformed("tier before version 5".into()));
        }
        if let Some(tier) = &self.tier
            && (tier.min_free_percent > 90
                || tier.checkpoint_interval_secs == 0
                || tier.lease_timeout_secs == 0)
        {
            return Err(StoreConfigError::Malformed("tier settings".into()));
        }
        if !self.block_size.is_power_of_two()
            || !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&self.block_size)
        {
            return Err(StoreConfigError::InvalidBlockSize(self.block_size));
        }
        Ok(())
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).expect("a plain struct serialises");
        out.push(b'\n');
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, StoreConfigError> {
        // Read the version first, so that a future layout with other fields is reported as a
        // version mismatch rather than as garbage.
        #[derive(Deserialize)]
        struct Probe {
            magic: String,
            format_version: u32,
        }
        let probe: Probe = serde_json::from_slice(bytes)
            .map_err(|err| StoreConfigError::Malformed(err.to_string()))?;
        if probe.magic != MAGIC {
            return Err(StoreConfigError::Malformed("wrong magic".into()));
        }
        if !(OLDEST_STORE_FORMAT_VERSION..=STORE_FORMAT_VERSION).contains(&probe.format_version) {
            return Err(StoreConfigError::UnsupportedVersion {
                found: probe.format_version,
            });
        }
        let config: StoreConfig = serde_json::from_slice(bytes)
            .map_err(|err| StoreConfigError::Malformed(err.to_string()))?;
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let config = StoreConfig::new(DEFAULT_BLOCK_SIZE).expect("valid");
        assert_eq!(
            StoreConfig::decode(&config.encode()).expect("decodes"),
            config
        );
    }

    #[test]
    fn refuses_unknown_version() {
        let bytes = br#"{"magic":"snapfs-store","format_version":99,"whatever":1}"#;
        assert!(matches!(
            StoreConfig::decode(bytes),
            Err(StoreConfigError::UnsupportedVersion { found: 99 })
        ));
    }

    #[test]
    fn a_version_1_config_decodes_and_upgrades_with_a_new_share_id() {
        let v1 = br#"{"magic":"snapfs-store","format_version":1,"block_size":131072}"#;
        let config = StoreConfig::decode(v1).expect("version 1 still opens");
        assert_eq!(config.share_id(), None);
        let upgraded = config.upgraded().expect("upgrade");
        assert_eq!(upgraded.format_version, STORE_FORMAT_VERSION);
        assert_eq!(upgraded.block_size, 131072);
        let share = upgraded.share_id().expect("a share id");
        let reread = StoreConfig::decode(&upgraded.encode()).expect("decodes");
        assert_eq!(reread.share_id(), Some(share));
        assert_eq!(reread.upgraded().expect("noop").share_id(), Some(share));
    }

    #[test]
    fn a_version_2_config_upgrades_keeping_its_share_id() {
        let v2 = br#"{"magic":"snapfs-store","format_version":2,"block_size":4096,"share_id":"6c66f77617cdfdf5ebe2c315e27448cf"}"#;
        let config = StoreConfig::decode(v2).expect("version 2 still opens");
        let upgraded = config.upgraded().expect("upgrade");
        assert_eq!(upgraded.format_version, STORE_FORMAT_VERSION);
        assert_eq!(upgraded.share_id, config.share_id);
    }

    #[test]
    fn a_version_4_config_upgrades_untiered_and_a_tier_round_trips() {
        let v4 = br#"{"magic":"snapfs-store","format_version":4,"block_size":131072,"share_id":"773caed32d162fb0fbbbbd763f0239d3"}"#;
        let upgraded = StoreConfig::decode(v4)
            .expect("v4")
            .upgraded()
            .expect("upgrade");
        assert_eq!(upgraded.format_version, STORE_FORMAT_VERSION);
        assert_eq!(upgraded.tier, None);
        let mut tiered = upgraded.clone();
        tiered.tier = Some(TierConfig {
            location: "s3://bucket/share".into(),
            cache_size: 1 << 30,
            min_free_percent: 10,
            checkpoint_interval_secs: 60,
            lease_timeout_secs: 60,
            single_host: false,
        });
        assert_eq!(
            StoreConfig::decode(&tiered.encode()).expect("decodes"),
            tiered
        );
        let tier_in_v4 = br#"{"magic":"snapfs-store","format_version":4,"block_size":131072,"share_id":"773caed32d162fb0fbbbbd763f0239d3","tier":{"location":"x","cache_size":1,"min_free_percent":10,"checkpoint_interval_secs":60}}"#;
        assert!(StoreConfig::decode(tier_in_v4).is_err());
    }

    /// `tests/fixtures/store-v5-tiered`'s config, written by the version-5 release: its tier
    /// settings read with the lease defaults (timeout 60 s, not single-host).
    #[test]
    fn a_version_5_tiered_config_upgrades_with_lease_defaults() {
        let v5 = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/store-v5-tiered/snapfs-store.json"
        ))
        .expect("fixture");
        let config = StoreConfig::decode(&v5).expect("version 5 still opens");
        assert_eq!(config.format_version, 5);
        let upgraded = config.upgraded().expect("upgrade");
        assert_eq!(upgraded.format_version, STORE_FORMAT_VERSION);
        let tier = upgraded.tier.expect("still tiered");
        assert_eq!(
            (
                tier.lease_timeout_secs,
                tier.single_host,
                tier.checkpoint_interval_secs
            ),
            (crate::tier::DEFAULT_LEASE_TIMEOUT_SECS, false, 60)
        );
    }

    #[test]
    fn share_ids_are_checked() {
        let missing = br#"{"magic":"snapfs-store","format_version":2,"block_size":131072}"#;
        assert!(StoreConfig::decode(missing).is_err());
        let bad =
            br#"{"magic":"snapfs-store","format_version":2,"block_size":131072,"share_id":"xyz"}"#;
        assert!(StoreConfig::decode(bad).is_err());
        let v1_with_id = br#"{"magic":"snapfs-store","format_version":1,"block_size":131072,"share_id":"00000000000000000000000000000000"}"#;
        assert!(StoreConfig::decode(v1_with_id).is_err());
    }

    #[test]
    fn refuses_bad_block_size() {
        assert!(StoreConfig::new(3000).is_err());
        assert!(StoreConfig::new(2 << 20).is_err());
    }
}
