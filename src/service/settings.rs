//! The store's lifecycle settings in the metadata database: the snapshot policy and the
//! scheduler's progress.
//!
//! Table `settings`: `"policy"` → the encoded [`Policy`] (`schedule::policy`);
//! `"last_handled_slot"` → i64 (little-endian): the newest scheduled time the daemon has
//! taken (or decided to skip) a snapshot for, so a restart neither repeats nor bursts.

use redb::{Database, ReadableDatabase, TableDefinition};

use crate::schedule::policy::Policy;

const SETTINGS: TableDefinition<&str, &[u8]> = TableDefinition::new("settings");
const POLICY: &str = "policy";
const LAST_HANDLED_SLOT: &str = "last_handled_slot";

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
    let last_handled_slot = table
        .get(LAST_HANDLED_SLOT)
        .map_err(db_err)?
        .and_then(|v| v.value().try_into().ok().map(i64::from_le_bytes));
    Ok(Settings {
        policy,
        last_handled_slot,
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
        match settings.last_handled_slot {
            Some(slot) => {
                table
                    .insert(LAST_HANDLED_SLOT, slot.to_le_bytes().as_slice())
                    .map_err(db_err)?;
            }
            None => {
                table.remove(LAST_HANDLED_SLOT).map_err(db_err)?;
            }
        }
    }
    txn.commit().map_err(db_err)?;
    Ok(())
}
