//! The backup schedule: into which vaults the mounted daemon backs the share up, when, and
//! with which key file. One per store, kept in the store beside the snapshot policy (its own
//! settings key, so the snapshot policy's stored form and its readers are unchanged) and
//! changed by `snapfs policy set --backup-*`.
//!
//! # Stored form
//!
//! Compact JSON, one object, every field present and no others:
//! ```text
//! {"version":2,"vaults":["/srv/vault","s3://bucket/prefix"],"hourly":false,"daily_at":120,
//!  "key_file":"/etc/snapfs/vault.key","timezone":"Europe/Berlin"}
//! ```
//! - `vaults`: vault locations as `snapfs backup --to` takes them (local paths absolute).
//! - `hourly`, `daily_at`: the slots, as in the snapshot policy (minutes after midnight on the
//!   clock of `timezone`).
//! - `key_file`: a path, or `null` for unencrypted vaults. The daemon reads the file at each
//!   backup, so the secret itself is never stored in the store (the admin keeps it in a file
//!   only root can read, as `restic --password-file` or a kopia config does).
//!
//! - `timezone`: the IANA name of the zone the slots follow (`"UTC"` by default); one this
//!   machine does not know is refused, not read as UTC.
//!
//! Version 1 (before zones) had every field but `timezone` and still decodes, in UTC; this
//! build writes version 2. Unknown fields and versions are refused, as for the snapshot
//! policy: a field this build does not understand could change where data goes.

use serde::{Deserialize, Serialize};

use super::calendar::{MINUTES_PER_DAY, Zone, format_time_of_day};
use super::slots::Schedule;

/// The stored format this build writes.
pub const BACKUP_POLICY_VERSION: u32 = 2;
/// The format before time zones, still read (as UTC).
const BACKUP_POLICY_VERSION_1: u32 = 1;
/// At most this many vaults: every one is backed up in turn at each slot.
pub const MAX_VAULTS: usize = 16;

/// Scheduled backups. The default backs up nothing.
///
/// Invariants, checked by [`BackupPolicy::validate`]: `daily_at < 1440`; at most
/// [`MAX_VAULTS`] vaults, none given twice, none empty.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupPolicy {
    pub vaults: Vec<String>,
    pub hourly: bool,
    pub daily_at: Option<u32>,
    pub key_file: Option<String>,
    /// The zone whose clock the slots follow (UTC unless set).
    pub timezone: Zone,
}

/// A change, as `policy set` gathers it: `None` leaves a setting as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BackupPolicyChange {
    /// `Some(vec![])` removes every vault (scheduled backups stop).
    pub vaults: Option<Vec<String>>,
    pub hourly: Option<bool>,
    /// `Some(None)` turns the daily backup off.
    pub daily_at: Option<Option<u32>>,
    /// `Some(None)` forgets the key file.
    pub key_file: Option<Option<String>>,
    pub timezone: Option<Zone>,
}

/// Why a backup policy breaks one of its invariants.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidBackupPolicy {
    #[error("the daily backup time must be a minute of the day (0 to 1439), not {0}")]
    DailyAtOutOfRange(u32),
    #[error("at most {MAX_VAULTS} vaults can be backed up on a schedule, not {0}")]
    TooManyVaults(usize),
    #[error("the vault {0} is given twice")]
    Duplicate(String),
    #[error("a vault location cannot be empty")]
    Empty,
}

/// Why stored backup-policy bytes could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BackupPolicyDecodeError {
    #[error("not a snapfs backup policy: {0}")]
    Malformed(String),
    #[error(
        "backup policy format version {found} is not supported by this snapfs (it reads versions {BACKUP_POLICY_VERSION_1} and {BACKUP_POLICY_VERSION})"
    )]
    UnsupportedVersion { found: u64 },
    #[error(
        "the stored backup policy's time zone {0:?} is not in this machine's time zone database (update its tzdata)"
    )]
    UnknownZone(String),
    #[error("stored backup policy is invalid: {0}")]
    Invalid(#[from] InvalidBackupPolicy),
}

/// The stored form, apart from [`BackupPolicy`] so that it cannot change by accident.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredV2 {
    version: u32,
    vaults: Vec<String>,
    hourly: bool,
    daily_at: Option<u32>,
    key_file: Option<String>,
    timezone: String,
}

/// Version 1, before time zones: read only.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredV1 {
    #[allow(dead_code, reason = "checked by the probe; present in the record")]
    version: u32,
    vaults: Vec<String>,
    hourly: bool,
    daily_at: Option<u32>,
    key_file: Option<String>,
}

impl BackupPolicy {
    /// The backup slots, if scheduled backups are on: at least one vault and a schedule.
    pub fn schedule(&self) -> Option<Schedule> {
        (!self.vaults.is_empty() && (self.hourly || self.daily_at.is_some())).then(|| Schedule {
            hourly: self.hourly,
            daily_at: self.daily_at,
            zone: self.timezone.clone(),
        })
    }

    pub fn validate(&self) -> Result<(), InvalidBackupPolicy> {
        if let Some(minute) = self.daily_at
            && minute >= MINUTES_PER_DAY
        {
            return Err(InvalidBackupPolicy::DailyAtOutOfRange(minute));
        }
        if self.vaults.len() > MAX_VAULTS {
            return Err(InvalidBackupPolicy::TooManyVaults(self.vaults.len()));
        }
        for (at, vault) in self.vaults.iter().enumerate() {
            if vault.is_empty() {
                return Err(InvalidBackupPolicy::Empty);
            }
            if self
                .vaults
                .get(..at)
                .is_some_and(|before| before.contains(vault))
            {
                return Err(InvalidBackupPolicy::Duplicate(vault.clone()));
            }
        }
        Ok(())
    }

    /// This policy with `change` applied, if the result is valid.
    pub fn apply(&self, change: &BackupPolicyChange) -> Result<BackupPolicy, InvalidBackupPolicy> {
        let policy = BackupPolicy {
            vaults: change.vaults.clone().unwrap_or_else(|| self.vaults.clone()),
            hourly: change.hourly.unwrap_or(self.hourly),
            daily_at: change.daily_at.unwrap_or(self.daily_at),
            key_file: change
                .key_file
                .clone()
                .unwrap_or_else(|| self.key_file.clone()),
            timezone: change
                .timezone
                .clone()
                .unwrap_or_else(|| self.timezone.clone()),
        };
        policy.validate()?;
        Ok(policy)
    }

    pub fn encode(&self) -> Vec<u8> {
        let stored = StoredV2 {
            version: BACKUP_POLICY_VERSION,
            vaults: self.vaults.clone(),
            hourly: self.hourly,
            daily_at: self.daily_at,
            key_file: self.key_file.clone(),
            timezone: self.timezone.name().to_owned(),
        };
        serde_json::to_vec(&stored).expect("a struct of plain fields serialises")
    }

    pub fn decode(bytes: &[u8]) -> Result<BackupPolicy, BackupPolicyDecodeError> {
        #[derive(Deserialize)]
        struct Probe {
            version: u64,
        }
        let malformed =
            |err: serde_json::Error| BackupPolicyDecodeError::Malformed(err.to_string());
        let probe: Probe = serde_json::from_slice(bytes).map_err(malformed)?;
        let policy = if probe.version == u64::from(BACKUP_POLICY_VERSION) {
            let stored: StoredV2 = serde_json::from_slice(bytes).map_err(malformed)?;
            BackupPolicy {
                vaults: stored.vaults,
                hourly: stored.hourly,
                daily_at: stored.daily_at,
                key_file: stored.key_file,
                timezone: Zone::parse(&stored.timezone)
                    .map_err(|_| BackupPolicyDecodeError::UnknownZone(stored.timezone))?,
            }
        } else if probe.version == u64::from(BACKUP_POLICY_VERSION_1) {
            let stored: StoredV1 = serde_json::from_slice(bytes).map_err(malformed)?;
            BackupPolicy {
                vaults: stored.vaults,
                hourly: stored.hourly,
                daily_at: stored.daily_at,
                key_file: stored.key_file,
                timezone: Zone::utc(),
            }
        } else {
            return Err(BackupPolicyDecodeError::UnsupportedVersion {
                found: probe.version,
            });
        };
        policy.validate()?;
        Ok(policy)
    }

    /// The schedule for people, one setting per line, as `policy show` prints it.
    pub fn describe(&self) -> String {
        let vaults = if self.vaults.is_empty() {
            "none".to_owned()
        } else {
            self.vaults.join(", ")
        };
        let zone = &self.timezone;
        let daily = self
            .daily_at
            .map(|minute| format!("every day at {} {zone}", format_time_of_day(minute)));
        let schedule = match (self.hourly, daily) {
            (false, None) => "none".to_owned(),
            (true, None) => format!("every hour at hh:00 {zone}"),
            (false, Some(daily)) => daily,
            (true, Some(daily)) => format!("every hour at hh:00 {zone}, and {daily}"),
        };
        let key = self.key_file.as_deref().unwrap_or("none");
        let state = match (self.vaults.is_empty(), self.schedule().is_some()) {
            (_, true) => "enabled",
            (true, false) => "disabled (no vault is set)",
            (false, false) => "disabled (no backup schedule is set)",
        };
        format!(
            "backup to: {vaults}\n\
             backup schedule: {schedule}\n\
             backup key file: {key}\n\
             scheduled backups: {state}\n"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> BackupPolicy {
        BackupPolicy {
            vaults: vec!["/srv/vault".into(), "s3://bucket/p".into()],
            hourly: false,
            daily_at: Some(120),
            key_file: Some("/etc/snapfs/vault.key".into()),
            timezone: Zone::utc(),
        }
    }

    #[test]
    fn stored_form_is_fixed() {
        let in_new_york = BackupPolicy {
            timezone: Zone::parse("America/New_York").expect("known"),
            ..example()
        };
        let golden = br#"{"version":2,"vaults":["/srv/vault","s3://bucket/p"],"hourly":false,"daily_at":120,"key_file":"/etc/snapfs/vault.key","timezone":"America/New_York"}"#;
        assert_eq!(in_new_york.encode(), golden);
        assert_eq!(BackupPolicy::decode(golden), Ok(in_new_york.clone()));
        assert!(
            in_new_york
                .describe()
                .contains("backup schedule: every day at 02:00 America/New_York\n")
        );
        assert_eq!(
            BackupPolicy::decode(&BackupPolicy::default().encode()),
            Ok(BackupPolicy::default())
        );
    }

    /// A version-1 backup policy, as the build before time zones wrote it
    /// (`tests/fixtures/backup-policy-v1.json`), still reads, in UTC.
    #[test]
    fn reads_version_1_as_utc() {
        let v1 = include_bytes!("../../tests/fixtures/backup-policy-v1.json");
        let policy = BackupPolicy::decode(v1.trim_ascii_end()).expect("version 1 decodes");
        assert_eq!(policy, example());
        assert!(policy.encode().starts_with(br#"{"version":2,"#));
        let unknown = br#"{"version":2,"vaults":[],"hourly":false,"daily_at":null,"key_file":null,"timezone":"Nowhere/Land"}"#;
        assert_eq!(
            BackupPolicy::decode(unknown),
            Err(BackupPolicyDecodeError::UnknownZone("Nowhere/Land".into()))
        );
    }

    #[test]
    fn decode_refuses_what_it_does_not_understand() {
        assert_eq!(
            BackupPolicy::decode(br#"{"version":3}"#),
            Err(BackupPolicyDecodeError::UnsupportedVersion { found: 3 })
        );
        for bad in [
            &br#"{"version":1,"vaults":[],"hourly":false,"daily_at":null,"key_file":null,"x":1}"#[..],
            br#"{"version":1,"vaults":[]}"#,
            b"",
            b"\xff",
        ] {
            assert!(
                matches!(
                    BackupPolicy::decode(bad),
                    Err(BackupPolicyDecodeError::Malformed(_))
                ),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let invalid =
            br#"{"version":1,"vaults":["a","a"],"hourly":false,"daily_at":null,"key_file":null}"#;
        assert!(matches!(
            BackupPolicy::decode(invalid),
            Err(BackupPolicyDecodeError::Invalid(_))
        ));
    }

    #[test]
    fn enabled_needs_a_vault_and_a_schedule_and_changes_apply() {
        assert_eq!(BackupPolicy::default().schedule(), None);
        let policy = example();
        assert_eq!(
            policy.schedule(),
            Some(Schedule {
                hourly: false,
                daily_at: Some(120),
                zone: Zone::utc(),
            })
        );
        let cleared = policy
            .apply(&BackupPolicyChange {
                vaults: Some(vec![]),
                ..BackupPolicyChange::default()
            })
            .expect("valid");
        assert_eq!(cleared.schedule(), None);
        assert_eq!(cleared.daily_at, Some(120), "the rest stays");
        assert!(cleared.describe().contains("disabled (no vault is set)"));
        assert!(
            policy
                .apply(&BackupPolicyChange {
                    daily_at: Some(Some(1440)),
                    ..BackupPolicyChange::default()
                })
                .is_err()
        );
        assert!(policy.describe().contains("every day at 02:00 UTC"));
    }
}
