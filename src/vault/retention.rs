//! `vault hold`, `vault release` and `vault delete`: protecting backups and removing them.
//!
//! A backup record is immutable once written, so a hold is an object of its own,
//! `holds/<backup id>` ([`HoldRecord`]): written by `hold`, deleted by `release`. `delete`
//! removes backup records only; the space they used is freed by `vault gc`. Deleting takes the
//! vault's exclusive lock (a copy may be reading the record, a verify walking its tree), and
//! checks every named backup before it deletes any: a held one, or one inside the vault's
//! minimum retention (`format::vault_policy`), fails the whole command.

use serde::Serialize;

use super::lock::{LockKind, VaultLock};
use super::{Vault, VaultError, backup_key, hold_key, unix_now};
use crate::blob::BlobError;
use crate::format::catalog::Hold;
use crate::format::vault_hold::HoldRecord;
use crate::schedule::calendar::{format_duration, format_rfc3339};

/// Holds the backup `name` until released.
pub fn hold(vault: &Vault, name: &str) -> Result<(), VaultError> {
    let (id, _) = vault.find(name)?;
    let record = HoldRecord {
        backup: id,
        hold: Hold::Indefinite,
    };
    let sealed = vault.seal(&record.encode(), &|| format!("sealing the hold of {name}"))?;
    vault.backend.put(&hold_key(id), &sealed)?;
    tracing::info!(vault = vault.describe(), backup = name, "held");
    Ok(())
}

/// Releases the hold of the backup `name`; `false` if it had none.
pub fn release(vault: &Vault, name: &str) -> Result<bool, VaultError> {
    let (id, record) = vault.find(name)?;
    let key = hold_key(id);
    let had = match vault.backend.head(&key)? {
        Some(_) => {
            vault.backend.delete(&key)?;
            true
        }
        None => false,
    };
    if record.hold.protects_at(unix_now()) {
        // A record written with a hold inside it (none are today) keeps it.
        return Err(VaultError::Held(format!(
            "{name} (its record holds it, and records never change)"
        )));
    }
    tracing::info!(vault = vault.describe(), backup = name, had, "released");
    Ok(had)
}

/// What `delete` removed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DeleteReport {
    /// The backups deleted, as named.
    pub deleted: Vec<String>,
    /// Bytes those backups added when they were made (an upper bound on what gc can free
    /// for them).
    pub bytes_added: u64,
}

/// Deletes the backups `names`, all or none: a held, locked (minimum retention) or unknown one
/// fails before anything is deleted.
pub fn delete(vault: &Vault, names: &[String]) -> Result<DeleteReport, VaultError> {
    let _lock = VaultLock::acquire(vault, LockKind::Exclusive, "delete")?;
    // Read under the lock, like the holds: a policy raised before the lock was granted counts.
    let policy = super::prune::policy(vault)?.unwrap_or_default();
    let holds = vault.holds()?;
    let now = unix_now();
    let mut doomed = Vec::new();
    for name in names {
        let (id, record) = vault.find(name)?;
        if Vault::hold_of(&holds, id, &record).protects_at(now) {
            return Err(VaultError::Held(name.clone()));
        }
        if let Some(until) = policy.locked_until(record.created.secs, now) {
            return Err(VaultError::RetentionLocked {
                backup: name.clone(),
                min_retention: format_duration(policy.min_retention_secs),
                until: format_rfc3339(until),
            });
        }
        if !doomed.iter().any(|(other, _, _)| *other == id) {
            doomed.push((id, name.clone(), record.bytes_added));
        }
    }
    let mut report = DeleteReport::default();
    for (id, name, bytes_added) in doomed {
        match vault.backend.delete(&backup_key(id)) {
            Ok(()) | Err(BlobError::NotFound(_)) => {}
            Err(err) => return Err(err.into()),
        }
        // An expired dated hold may be left behind; it protects nothing and goes with it.
        vault.backend.delete(&hold_key(id))?;
        tracing::info!(vault = vault.describe(), backup = name, "deleted");
        report.deleted.push(name);
        report.bytes_added += bytes_added;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vault::list::list;
    use crate::vault::tests::Fixture;

    #[test]
    fn a_held_backup_cannot_be_deleted_until_released() {
        let fixture = Fixture::in_memory();
        let vault = fixture.vault();
        hold(&vault, "old").expect("hold");
        let listed = list(&vault).expect("list");
        let hold_of = |name: &str| {
            listed
                .iter()
                .find(|entry| entry.name == name)
                .map(|entry| entry.hold.clone())
        };
        assert_eq!(hold_of("old").as_deref(), Some("indefinite"));
        assert_eq!(hold_of("new").as_deref(), Some("none"));

        let both = ["new".to_owned(), "old".to_owned()];
        let err = delete(&vault, &both).expect_err("held");
        assert!(
            matches!(err, VaultError::Held(ref name) if name == "old"),
            "{err}"
        );
        assert_eq!(list(&vault).expect("list").len(), 2, "all or nothing");
        let err = delete(&vault, &["nope".to_owned()]).expect_err("unknown");
        assert!(matches!(err, VaultError::NoBackup(_)), "{err}");

        assert!(release(&vault, "old").expect("release"));
        assert!(!release(&vault, "old").expect("release twice"));
        let report = delete(&vault, &both).expect("delete");
        assert_eq!(report.deleted, both);
        assert!(list(&vault).expect("list").is_empty());
        assert!(
            vault
                .backend
                .list(super::super::HOLDS)
                .expect("list")
                .is_empty()
        );
    }
}
