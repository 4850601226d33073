//! The snapshot policy: when automatic snapshots are taken, how many of them are kept, and
//! whether deleting a snapshot frees its space at once. One policy per store, kept in the
//! store and changed by `snapfs policy set`.
//!
//! # Stored form
//!
//! Compact JSON, one object, with every field present and no others:
//! ```text
//! {"version":2,"hourly":true,"daily_at":180,
//!  "keep":{"hourly":24,"daily":7,"weekly":4,"monthly":12,"yearly":3},
//!  "soft_delete_secs":1209600,"timezone":"Europe/Berlin"}
//! ```
//! - `version`: 2. Read first, so that a policy written by a newer snapfs is reported as a
//!   version this build does not know rather than as garbage; bumped on any change of fields
//!   or meaning.
//! - `hourly`: bool. `daily_at`: minutes after midnight on the zone's clock, 0–1439, or
//!   `null`.
//! - `keep.*`: u32 counts. `soft_delete_secs`: u64 > 0, or `null` (off).
//! - `timezone`: the IANA name of the zone whose clock the slots and retention buckets follow
//!   (`"UTC"` by default). A name this machine's time zone database does not know is refused
//!   ([`PolicyDecodeError::UnknownZone`]) rather than read as UTC: it would move every slot.
//!
//! Version 1 (before zones) had every field but `timezone`; it still decodes, as a policy in
//! UTC, which is what it meant. This build writes version 2 only; a build that reads only
//! version 1 refuses a version-2 policy rather than running it in the wrong zone.
//!
//! JSON rather than a binary record because the policy is tiny, read once per mount and
//! changed by hand-run commands, and being able to read it in a hex dump of the metadata
//! database is worth more than the bytes. Unknown fields are refused rather than ignored: a
//! field this build does not understand could change what gets deleted.

use serde::{Deserialize, Serialize};

use super::calendar::{MINUTES_PER_DAY, Zone, format_duration, format_time_of_day};

/// The stored format this build writes.
pub const POLICY_VERSION: u32 = 2;
/// The format before time zones, still read (as UTC).
const POLICY_VERSION_1: u32 = 1;

/// When automatic snapshots are taken and which are kept. The default schedules nothing,
/// keeps nothing by count and deletes at once: automatic snapshots are off.
///
/// Invariants, checked by [`Policy::validate`] (and so by [`Policy::apply`] and
/// [`Policy::decode`]): `daily_at < 1440`; `soft_delete_secs != Some(0)`.
///
/// The serde form (without a version) is for reports such as JSON output; the stored form is
/// [`Policy::encode`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// A snapshot at the start of every hour (hh:00:00 on the zone's clock).
    pub hourly: bool,
    /// And/or once a day at this minute after midnight on the zone's clock.
    pub daily_at: Option<u32>,
    /// Retention counts for automatic snapshots.
    pub keep: Keep,
    /// `None`: deleting a snapshot frees its space at once. `Some(d)`: a deleted snapshot stays
    /// recoverable for `d` seconds.
    pub soft_delete_secs: Option<u64>,
    /// The zone whose clock the slots and retention buckets follow, and in which times are
    /// shown (UTC unless set).
    pub timezone: Zone,
}

/// How many automatic snapshots each retention bucket keeps; the rules are in the
/// [`super`] module documentation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Keep {
    pub hourly: u32,
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
    pub yearly: u32,
}

impl Keep {
    /// True when every count is 0: retention is off, nothing expires, and no automatic
    /// snapshots are taken.
    pub fn is_off(&self) -> bool {
        *self == Keep::default()
    }
}

/// A change to a policy, as `snapfs policy set` gathers it from its options: `None` leaves a
/// setting as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyChange {
    pub hourly: Option<bool>,
    /// `Some(None)` turns the daily snapshot off.
    pub daily_at: Option<Option<u32>>,
    pub keep_hourly: Option<u32>,
    pub keep_daily: Option<u32>,
    pub keep_weekly: Option<u32>,
    pub keep_monthly: Option<u32>,
    pub keep_yearly: Option<u32>,
    /// `Some(None)` turns soft delete off.
    pub soft_delete_secs: Option<Option<u64>>,
    pub timezone: Option<Zone>,
}

/// Why a policy breaks one of its invariants.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidPolicy {
    #[error("the daily snapshot time must be a minute of the day (0 to 1439), not {0}")]
    DailyAtOutOfRange(u32),
    #[error(
        "a soft-delete period must be longer than 0s; to free deleted snapshots at once, turn soft delete off"
    )]
    ZeroSoftDelete,
}

/// Why stored policy bytes could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyDecodeError {
    #[error("not a snapfs policy record: {0}")]
    Malformed(String),
    #[error(
        "policy format version {found} is not supported by this snapfs (it reads versions {POLICY_VERSION_1} and {POLICY_VERSION})"
    )]
    UnsupportedVersion { found: u64 },
    #[error(
        "the stored policy's time zone {0:?} is not in this machine's time zone database (update its tzdata)"
    )]
    UnknownZone(String),
    #[error("stored policy is invalid: {0}")]
    Invalid(#[from] InvalidPolicy),
}

/// The stored form, spelled out apart from [`Policy`] so that the format is visible in one
/// place and cannot change by accident when the in-memory type does.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredV2 {
    version: u32,
    hourly: bool,
    daily_at: Option<u32>,
    keep: Keep,
    soft_delete_secs: Option<u64>,
    timezone: String,
}

/// Version 1, before time zones: read only.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredV1 {
    #[allow(dead_code, reason = "checked by the probe; present in the record")]
    version: u32,
    hourly: bool,
    daily_at: Option<u32>,
    keep: Keep,
    soft_delete_secs: Option<u64>,
}

impl Policy {
    /// True when automatic snapshots are taken: a schedule is set and at least one keep count
    /// is positive. Retention 0 disables automatic snapshots, rather than taking snapshots that
    /// nothing would ever expire.
    pub fn automatic_enabled(&self) -> bool {
        self.has_schedule() && !self.keep.is_off()
    }

    fn has_schedule(&self) -> bool {
        self.hourly || self.daily_at.is_some()
    }

    pub fn validate(&self) -> Result<(), InvalidPolicy> {
        if let Some(minute) = self.daily_at
            && minute >= MINUTES_PER_DAY
        {
            return Err(InvalidPolicy::DailyAtOutOfRange(minute));
        }
        if self.soft_delete_secs == Some(0) {
            return Err(InvalidPolicy::ZeroSoftDelete);
        }
        Ok(())
    }

    /// This policy with `change` applied, if the result is valid.
    pub fn apply(&self, change: &PolicyChange) -> Result<Policy, InvalidPolicy> {
        let policy = Policy {
            hourly: change.hourly.unwrap_or(self.hourly),
            daily_at: change.daily_at.unwrap_or(self.daily_at),
            keep: Keep {
                hourly: change.keep_hourly.unwrap_or(self.keep.hourly),
                daily: change.keep_daily.unwrap_or(self.keep.daily),
                weekly: change.keep_weekly.unwrap_or(self.keep.weekly),
                monthly: change.keep_monthly.unwrap_or(self.keep.monthly),
                yearly: change.keep_yearly.unwrap_or(self.keep.yearly),
            },
            soft_delete_secs: change.soft_delete_secs.unwrap_or(self.soft_delete_secs),
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
            version: POLICY_VERSION,
            hourly: self.hourly,
            daily_at: self.daily_at,
            keep: self.keep,
            soft_delete_secs: self.soft_delete_secs,
            timezone: self.timezone.name().to_owned(),
        };
        serde_json::to_vec(&stored).expect("a struct of plain fields serialises")
    }

    pub fn decode(bytes: &[u8]) -> Result<Policy, PolicyDecodeError> {
        #[derive(Deserialize)]
        struct Probe {
            version: u64,
        }
        let malformed = |err: serde_json::Error| PolicyDecodeError::Malformed(err.to_string());
        let probe: Probe = serde_json::from_slice(bytes).map_err(malformed)?;
        let policy = if probe.version == u64::from(POLICY_VERSION) {
            let stored: StoredV2 = serde_json::from_slice(bytes).map_err(malformed)?;
            Policy {
                hourly: stored.hourly,
                daily_at: stored.daily_at,
                keep: stored.keep,
                soft_delete_secs: stored.soft_delete_secs,
                timezone: Zone::parse(&stored.timezone)
                    .map_err(|_| PolicyDecodeError::UnknownZone(stored.timezone))?,
            }
        } else if probe.version == u64::from(POLICY_VERSION_1) {
            let stored: StoredV1 = serde_json::from_slice(bytes).map_err(malformed)?;
            Policy {
                hourly: stored.hourly,
                daily_at: stored.daily_at,
                keep: stored.keep,
                soft_delete_secs: stored.soft_delete_secs,
                timezone: Zone::utc(),
            }
        } else {
            return Err(PolicyDecodeError::UnsupportedVersion {
                found: probe.version,
            });
        };
        policy.validate()?;
        Ok(policy)
    }

    /// The policy for people, as `snapfs policy show` prints it: one setting per line.
    pub fn describe(&self) -> String {
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
        let Keep {
            hourly,
            daily,
            weekly,
            monthly,
            yearly,
        } = self.keep;
        let soft_delete = match self.soft_delete_secs {
            None => "off (deleting a snapshot frees its space at once)".to_owned(),
            Some(secs) => {
                let period = format_duration(secs);
                format!("{period} (a deleted snapshot stays recoverable for {period})")
            }
        };
        let automatic = match (self.has_schedule(), self.keep.is_off()) {
            (true, false) => "enabled",
            (false, false) => "disabled (no schedule is set)",
            (true, true) => "disabled (every keep count is 0)",
            (false, true) => "disabled (no schedule is set and every keep count is 0)",
        };
        format!(
            "schedule: {schedule}\n\
             keep hourly: {hourly}\n\
             keep daily: {daily}\n\
             keep weekly: {weekly}\n\
             keep monthly: {monthly}\n\
             keep yearly: {yearly}\n\
             soft delete: {soft_delete}\n\
             automatic snapshots: {automatic}\n"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn example() -> Policy {
        Policy {
            hourly: true,
            daily_at: Some(180),
            keep: Keep {
                hourly: 24,
                daily: 7,
                weekly: 4,
                monthly: 12,
                yearly: 3,
            },
            soft_delete_secs: Some(14 * 86_400),
            timezone: Zone::utc(),
        }
    }

    fn berlin() -> Zone {
        Zone::parse("Europe/Berlin").expect("a known zone")
    }

    #[test]
    fn default_takes_no_snapshots() {
        let policy = Policy::default();
        assert!(!policy.hourly);
        assert_eq!(policy.daily_at, None);
        assert!(policy.keep.is_off());
        assert_eq!(policy.soft_delete_secs, None);
        assert!(!policy.automatic_enabled());
    }

    #[test]
    fn automatic_needs_a_schedule_and_a_keep_count() {
        let keep_one = Keep {
            monthly: 1,
            ..Keep::default()
        };
        let cases = [
            (false, None, Keep::default(), false),
            (true, None, Keep::default(), false),
            (false, Some(0), Keep::default(), false),
            (false, None, keep_one, false),
            (true, None, keep_one, true),
            (false, Some(0), keep_one, true),
        ];
        for (hourly, daily_at, keep, enabled) in cases {
            let policy = Policy {
                hourly,
                daily_at,
                keep,
                soft_delete_secs: None,
                timezone: Zone::utc(),
            };
            assert_eq!(policy.automatic_enabled(), enabled, "{policy:?}");
        }
    }

    #[test]
    fn stored_form_is_fixed() {
        let in_berlin = Policy {
            timezone: berlin(),
            ..example()
        };
        let golden = br#"{"version":2,"hourly":true,"daily_at":180,"keep":{"hourly":24,"daily":7,"weekly":4,"monthly":12,"yearly":3},"soft_delete_secs":1209600,"timezone":"Europe/Berlin"}"#;
        assert_eq!(in_berlin.encode(), golden);
        assert_eq!(Policy::decode(golden), Ok(in_berlin));
        let default = br#"{"version":2,"hourly":false,"daily_at":null,"keep":{"hourly":0,"daily":0,"weekly":0,"monthly":0,"yearly":0},"soft_delete_secs":null,"timezone":"UTC"}"#;
        assert_eq!(Policy::default().encode(), default);
        assert_eq!(Policy::decode(default), Ok(Policy::default()));
    }

    /// A version-1 policy, as the build before time zones wrote it
    /// (`tests/fixtures/policy-v1.json`), still reads: in UTC, which is what it meant. Written
    /// again, it becomes version 2.
    #[test]
    fn reads_version_1_as_utc() {
        let v1 = include_bytes!("../../tests/fixtures/policy-v1.json");
        let policy = Policy::decode(v1.trim_ascii_end()).expect("version 1 decodes");
        assert_eq!(policy, example());
        assert!(policy.timezone.is_utc());
        assert!(policy.encode().starts_with(br#"{"version":2,"#));
        // A version-1 record with a zone is damage, not a policy.
        let with_zone = br#"{"version":1,"hourly":false,"daily_at":null,"keep":{"hourly":0,"daily":0,"weekly":0,"monthly":0,"yearly":0},"soft_delete_secs":null,"timezone":"UTC"}"#;
        assert!(matches!(
            Policy::decode(with_zone),
            Err(PolicyDecodeError::Malformed(_))
        ));
    }

    #[test]
    fn an_unknown_stored_zone_is_refused() {
        let mars = br#"{"version":2,"hourly":false,"daily_at":null,"keep":{"hourly":0,"daily":0,"weekly":0,"monthly":0,"yearly":0},"soft_delete_secs":null,"timezone":"Mars/Olympus_Mons"}"#;
        assert_eq!(
            Policy::decode(mars),
            Err(PolicyDecodeError::UnknownZone("Mars/Olympus_Mons".into()))
        );
    }

    #[test]
    fn decode_refuses_what_it_does_not_understand() {
        let newer = br#"{"version":3,"hourly":true,"every_minute":true}"#;
        assert_eq!(
            Policy::decode(newer),
            Err(PolicyDecodeError::UnsupportedVersion { found: 3 })
        );
        let refused = [
            &br#"{"hourly":true}"#[..],
            br#"{"version":1,"hourly":false,"daily_at":null,"keep":{"hourly":0,"daily":0,"weekly":0,"monthly":0,"yearly":0},"soft_delete_secs":null,"extra":1}"#,
            br#"{"version":1,"hourly":false,"daily_at":null,"keep":{"hourly":0,"daily":0,"weekly":0,"monthly":0,"yearly":0,"minutely":5},"soft_delete_secs":null}"#,
            br#"{"version":1,"hourly":false,"daily_at":null,"keep":{"hourly":0},"soft_delete_secs":null}"#,
            br#"{"version":1,"hourly":false,"daily_at":-1,"keep":{"hourly":0,"daily":0,"weekly":0,"monthly":0,"yearly":0},"soft_delete_secs":null}"#,
            b"",
            b"[1]",
            b"\xff",
        ];
        for bytes in refused {
            assert!(
                matches!(Policy::decode(bytes), Err(PolicyDecodeError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(bytes)
            );
        }
        let late = br#"{"version":1,"hourly":false,"daily_at":1440,"keep":{"hourly":0,"daily":0,"weekly":0,"monthly":0,"yearly":0},"soft_delete_secs":null}"#;
        assert_eq!(
            Policy::decode(late),
            Err(InvalidPolicy::DailyAtOutOfRange(1440).into())
        );
    }

    #[test]
    fn apply_changes_only_what_is_given() {
        let policy = example();
        assert_eq!(policy.apply(&PolicyChange::default()), Ok(policy.clone()));
        let changed = policy
            .apply(&PolicyChange {
                hourly: Some(false),
                daily_at: Some(None),
                keep_weekly: Some(0),
                soft_delete_secs: Some(None),
                ..PolicyChange::default()
            })
            .expect("valid");
        assert_eq!(
            changed,
            Policy {
                hourly: false,
                daily_at: None,
                keep: Keep {
                    weekly: 0,
                    ..policy.keep
                },
                soft_delete_secs: None,
                timezone: Zone::utc(),
            }
        );
        let every_field = PolicyChange {
            hourly: Some(true),
            daily_at: Some(Some(1_439)),
            keep_hourly: Some(1),
            keep_daily: Some(2),
            keep_weekly: Some(3),
            keep_monthly: Some(4),
            keep_yearly: Some(5),
            soft_delete_secs: Some(Some(60)),
            timezone: Some(berlin()),
        };
        assert_eq!(
            Policy::default().apply(&every_field),
            Ok(Policy {
                hourly: true,
                daily_at: Some(1_439),
                keep: Keep {
                    hourly: 1,
                    daily: 2,
                    weekly: 3,
                    monthly: 4,
                    yearly: 5,
                },
                soft_delete_secs: Some(60),
                timezone: berlin(),
            })
        );
        assert_eq!(
            policy.apply(&PolicyChange {
                daily_at: Some(Some(1_440)),
                ..PolicyChange::default()
            }),
            Err(InvalidPolicy::DailyAtOutOfRange(1_440))
        );
        assert_eq!(
            policy.apply(&PolicyChange {
                soft_delete_secs: Some(Some(0)),
                ..PolicyChange::default()
            }),
            Err(InvalidPolicy::ZeroSoftDelete)
        );
    }

    #[test]
    fn describes_itself() {
        assert_eq!(
            example().describe(),
            "schedule: every hour at hh:00 UTC, and every day at 03:00 UTC\n\
             keep hourly: 24\n\
             keep daily: 7\n\
             keep weekly: 4\n\
             keep monthly: 12\n\
             keep yearly: 3\n\
             soft delete: 14d (a deleted snapshot stays recoverable for 14d)\n\
             automatic snapshots: enabled\n"
        );
        assert_eq!(
            Policy::default().describe(),
            "schedule: none\n\
             keep hourly: 0\n\
             keep daily: 0\n\
             keep weekly: 0\n\
             keep monthly: 0\n\
             keep yearly: 0\n\
             soft delete: off (deleting a snapshot frees its space at once)\n\
             automatic snapshots: disabled (no schedule is set and every keep count is 0)\n"
        );
        let hourly_only = Policy {
            hourly: true,
            ..Policy::default()
        };
        assert!(
            hourly_only
                .describe()
                .starts_with("schedule: every hour at hh:00 UTC\n")
        );
        assert!(
            hourly_only
                .describe()
                .ends_with("automatic snapshots: disabled (every keep count is 0)\n")
        );
        let unscheduled = Policy {
            keep: example().keep,
            ..Policy::default()
        };
        assert!(
            unscheduled
                .describe()
                .ends_with("automatic snapshots: disabled (no schedule is set)\n")
        );
        let daily_only = Policy {
            daily_at: Some(23 * 60 + 5),
            ..Policy::default()
        };
        assert!(
            daily_only
                .describe()
                .starts_with("schedule: every day at 23:05 UTC\n")
        );
        let in_berlin = Policy {
            timezone: berlin(),
            ..example()
        };
        assert!(in_berlin.describe().starts_with(
            "schedule: every hour at hh:00 Europe/Berlin, and every day at 03:00 Europe/Berlin\n"
        ));
    }

    fn valid_policy() -> impl Strategy<Value = Policy> {
        (
            any::<bool>(),
            proptest::option::of(0..MINUTES_PER_DAY),
            any::<[u32; 5]>(),
            proptest::option::of(1..=u64::MAX),
            proptest::sample::select(vec!["UTC", "Europe/Berlin", "America/New_York"]),
        )
            .prop_map(|(hourly, daily_at, keep, soft_delete_secs, zone)| Policy {
                hourly,
                daily_at,
                keep: Keep {
                    hourly: keep[0],
                    daily: keep[1],
                    weekly: keep[2],
                    monthly: keep[3],
                    yearly: keep[4],
                },
                soft_delete_secs,
                timezone: Zone::parse(zone).expect("a known zone"),
            })
    }

    proptest! {
        #[test]
        fn round_trips(policy in valid_policy()) {
            prop_assert_eq!(Policy::decode(&policy.encode()), Ok(policy));
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Policy::decode(&bytes);
        }

        #[test]
        fn damaged_records_never_panic(
            policy in valid_policy(),
            at in any::<proptest::sample::Index>(),
            byte: u8,
            cut in any::<proptest::sample::Index>(),
        ) {
            let mut bytes = policy.encode();
            let at = at.index(bytes.len());
            bytes[at] = byte;
            let _ = Policy::decode(&bytes);
            bytes.truncate(cut.index(bytes.len()));
            let _ = Policy::decode(&bytes);
        }
    }
}
