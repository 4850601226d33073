//! `vault list`: every backup in a vault, oldest first, as a user reads it or as JSON. A
//! backup's hold is its `holds/` object's (see `vault::retention`).

use serde::Serialize;

use super::{Vault, VaultError};
use crate::format::catalog::Hold;

/// One backup as listed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BackupEntry {
    pub name: String,
    /// The share it came from (hex id).
    pub share: String,
    /// When its snapshot was taken (unix seconds).
    pub created: i64,
    /// Bytes of file data it holds.
    pub size: u64,
    /// Bytes this backup added to the vault.
    pub bytes_added: u64,
    /// `none`, `indefinite` or `until:<unix seconds>`.
    pub hold: String,
}

pub fn list(vault: &Vault) -> Result<Vec<BackupEntry>, VaultError> {
    let holds = vault.holds()?;
    Ok(vault
        .records()?
        .into_iter()
        .map(|(id, record)| BackupEntry {
            hold: match Vault::hold_of(&holds, id, &record) {
                Hold::None => "none".to_owned(),
                Hold::Indefinite => "indefinite".to_owned(),
                Hold::Until(until) => format!("until:{until}"),
            },
            name: record.name,
            share: record.share.to_hex(),
            created: record.created.secs,
            size: record.size,
            bytes_added: record.bytes_added,
        })
        .collect())
}
