//! The store's lifecycle settings in the metadata database: the snapshot policy and the
//! scheduler's progress.
//!
//! Table `settings`: `"policy"` → the encoded [`Policy`] (`schedule::policy`);
//! `"last_handled_slot"` → i64 (little-endian): the newest scheduled time the daemon has
//! taken (or decided to skip) a snapshot for, so a restart neither repeats nor bursts;
//! `"backup_policy"` → the encoded [`BackupPolicy`] (`schedule::backup_policy`), absent until
//! set; `"last_backup_slot"` → i64 (little-endian), the same for scheduled backups;
//! `"backup_status"` → JSON `{vault: {"last_success": {"name","time"} | null,
//! "last_failure": {"name","time","error"} | null}}`, what `status` shows per vault.

use redb::{Database, ReadableDatabase, TableDefinition};

use std::collections::BTreeMap;

use super::replies::VaultBackupState;
use crate::schedule::backup_policy::BackupPolicy;
use crate::schedule::policy::Policy;

const SETTINGS: TableDefinition<&str, &[u8]> = TableDefinition::new("settings");
const POLICY: &str = "policy";
const LAST_HANDLED_SLOT: &str = "last_handled_slot";
const BACKUP_POLICY: &str = "backup_policy";
const LAST_BACKUP_SLOT: &str = "last_backup_slot";
const BACKUP_STATUS: &str = "backup_status";

/// Copies the settings table (for a checkpoint).
pub fn copy_tables(
    from: &redb::ReadTransaction,
    to: &redb::WriteTransaction,
) -> Result<(), redb::Error> {
    crate::storage::table_copy::copy_table(from, to, SETTINGS)
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("settings: {0}")]
    Db(#[from] redb::Error),
    #[error("the stored policy is damaged: {0}")]
    Damaged(String),
}

/// What the settings table holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    pub policy: Policy,
    pub last_handled_slot: Option<i64>,
    pub backup_policy: BackupPolicy,
    pub last_backup_slot: Option<i64>,
    /// The last outcome of backups into each vault, by vault location.
    pub backup_status: BTreeMap<String, VaultBackupState>,
}

fn db_err(err: impl Into<redb::Error>) -> SettingsError {
    SettingsError::Db(err.into())
}

pub fn load(db: &Database) -> Result<Settings, SettingsError> {
    let txn = db.begin_read().map_err(db_err)?;
    let table = match txn.open_table(SETTINGS) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Settings::default()),
        Err(err) => return Err(db_err(err)),
    };
    let policy = match table.get(POLICY).map_err(db_err)? {
        Some(bytes) => {
            Policy::decode(bytes.value()).map_err(|e| SettingsError::Damaged(e.to_string()))?
        }
        None => Policy::default(),
    };
    let slot = |name: &str| -> Result<Option<i64>, SettingsError> {
        Ok(table
            .get(name)
            .map_err(db_err)?
            .and_then(|v| v.value().try_into().ok().map(i64::from_le_bytes)))
    };
    let last_handled_slot = slot(LAST_HANDLED_SLOT)?;
    let last_backup_slot = slot(LAST_BACKUP_SLOT)?;
    let backup_policy = match table.get(BACKUP_POLICY).map_err(db_err)? {
        Some(bytes) => BackupPolicy::decode(bytes.value())
            .map_err(|e| SettingsError::Damaged(e.to_string()))?,
        None => BackupPolicy::default(),
    };
    // What status shows only: a damaged entry is forgotten rather than stopping the mount.
    let backup_status = match table.get(BACKUP_STATUS).map_err(db_err)? {
        Some(bytes) => serde_json::from_slice(bytes.value()).unwrap_or_else(|err| {
            tracing::warn!("forgetting an unreadable backup status: {err}");
            BTreeMap::new()
        }),
        None => BTreeMap::new(),
    };
    Ok(Settings {
        policy,
        last_handled_slot,
        backup_policy,
        last_backup_slot,
        backup_status,
    })
}

/// Writes the settings durably.
pub fn store(db: &Database, settings: &Settings) -> Result<(), SettingsError> {
    let txn = db.begin_write().map_err(db_err)?;
    {
        let mut table = txn.open_table(SETTINGS).map_err(db_err)?;
        table
            .insert(POLICY, settings.policy.encode().as_slice())
            .map_err(db_err)?;
        for (name, slot) in [
            (LAST_HANDLED_SLOT, settings.last_handled_slot),
            (LAST_BACKUP_SLOT, settings.last_backup_slot),
        ] {
            match slot {
                Some(slot) => {
                    table
                        .insert(name, slot.to_le_bytes().as_slice())
                        .map_err(db_err)?;
                }
                None => {
                    table.remove(name).map_err(db_err)?;
                }
            }
        }
        // Written only once used, so a store without scheduled backups keeps exactly the
        // settings older builds wrote.
        if settings.backup_policy != BackupPolicy::default() {
            table
                .insert(BACKUP_POLICY, settings.backup_policy.encode().as_slice())
                .map_err(db_err)?;
        } else {
            table.remove(BACKUP_POLICY).map_err(db_err)?;
        }
        if !settings.backup_status.is_empty() {
            let json = serde_json::to_vec(&settings.backup_status)
                .map_err(|e| SettingsError::Damaged(e.to_string()))?;
            table
                .insert(BACKUP_STATUS, json.as_slice())
                .map_err(db_err)?;
        }
    }
    txn.commit().map_err(db_err)?;
    Ok(())
}
