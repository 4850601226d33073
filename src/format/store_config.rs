//! The store's identity file, `snapfs-store.json`: written once by `snapfs init`, read first by
//! every command, so that a directory which is not a store, or a store of a format this build
//! does not know, is refused before anything else is touched.

use serde::{Deserialize, Serialize};

/// The file name inside the store directory.
pub const STORE_CONFIG_FILE: &str = "snapfs-store.json";
/// The store layout this build reads and writes. Bumped on any incompatible change.
pub const STORE_FORMAT_VERSION: u32 = 1;
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
}

const MAGIC: &str = "snapfs-store";

impl StoreConfig {
    pub fn new(block_size: u32) -> Result<Self, StoreConfigError> {
        let config = StoreConfig {
            magic: MAGIC.to_owned(),
            format_version: STORE_FORMAT_VERSION,
            block_size,
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), StoreConfigError> {
        if self.magic != MAGIC {
            return Err(StoreConfigError::Malformed("wrong magic".into()));
        }
        if self.format_version != STORE_FORMAT_VERSION {
            return Err(StoreConfigError::UnsupportedVersion {
                found: self.format_version,
            });
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
        if probe.format_version != STORE_FORMAT_VERSION {
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
    fn refuses_bad_block_size() {
        assert!(StoreConfig::new(3000).is_err());
        assert!(StoreConfig::new(2 << 20).is_err());
    }
}
