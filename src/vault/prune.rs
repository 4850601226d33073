//! `vault policy set|show` and `vault prune`: deleting the backups a retention policy no
//! longer keeps.
//!
//! The policy is one sealed object, `policy` ([`VaultPolicy`]), replaced whole by `policy set`
//! (an atomic put: a crash leaves the old policy or the new one).
//!
//! Prune is a plan computed first and executed second, so `--dry-run` shows exactly what a
//! real run deletes. For each share on its own, the backups are ranked newest first by the
//! time their snapshot was taken: the newest `last` are kept, and the newest backup of each of
//! the last `daily` days, `weekly` ISO weeks, `monthly` months and `yearly` years (of the
//! policy's time zone, UTC unless `policy set --timezone` named one) that have one (the bucket rules of snapshot retention, [`crate::schedule::retention`]). A held
//! backup is always kept. The rest are deleted as `vault delete` deletes: under the exclusive
//! lock, records and their holds only; `vault gc` (or `--gc`) frees their data afterwards.
//! A crash part way leaves some backups deleted and the others listed, each whole: running
//! prune again finishes the work.
//!
//! The policy's minimum retention (the vault lock) overrides the counts: a backup younger than
//! it is kept (reason `min-retention`), never deleted, and `policy set` refuses to lower it.

use std::collections::BTreeMap;

use serde::Serialize;

use super::lock::{LockKind, VaultLock};
use super::{Vault, VaultError, backup_key, hold_key, key, unix_now};
use crate::blob::BlobError;
use crate::format::vault_policy::VaultPolicy;
use crate::id::{BackupId, ShareId};
use crate::schedule::calendar::{Zone, format_duration};
use crate::schedule::policy::Keep;
use crate::schedule::retention::{self, Candidate, Reason};

/// The key of the vault's policy object.
const POLICY_KEY: &str = "policy";

/// Stores `counts` as the vault's retention policy, replacing any earlier one, with the
/// minimum retention `min_retention_secs` and the time zone `timezone` if given, else the
/// ones already stored (UTC when there are none). The minimum
/// retention can only be raised: a lower one is refused ([`VaultError::Refused`]), since a
/// lock that whoever holds the key can lift protects nothing against them. Returns what was
/// stored.
///
/// Two `policy set`s at once may both read the old policy; the later put wins. Each was
/// checked against the policy it read, so neither lowers what it saw.
pub fn set_policy(
    vault: &Vault,
    counts: &VaultPolicy,
    min_retention_secs: Option<u64>,
    timezone: Option<&Zone>,
) -> Result<VaultPolicy, VaultError> {
    let stored = policy(vault)?;
    let current = stored.as_ref().map_or(0, |p| p.min_retention_secs);
    let timezone = match timezone {
        Some(zone) if zone.is_utc() => None,
        Some(zone) => Some(zone.name().to_owned()),
        None => stored.and_then(|p| p.timezone),
    };
    let min_retention_secs = min_retention_secs.unwrap_or(current);
    if min_retention_secs < current {
        return Err(VaultError::Refused(format!(
            "{}: the minimum retention is {} and can only be raised, not lowered to {} (it is a \
             vault lock: no one may shorten it)",
            vault.describe(),
            format_duration(current),
            format_duration(min_retention_secs)
        )));
    }
    let policy = VaultPolicy {
        min_retention_secs,
        timezone,
        ..counts.clone()
    };
    let sealed = vault.seal(&policy.encode(), &|| "sealing the policy".to_owned())?;
    vault.backend.put(&key(POLICY_KEY), &sealed)?;
    tracing::info!(vault = vault.describe(), ?policy, "policy set");
    Ok(policy)
}

/// The vault's minimum retention in seconds (0 without a policy or a lock).
pub fn min_retention(vault: &Vault) -> Result<u64, VaultError> {
    Ok(policy(vault)?.map_or(0, |p| p.min_retention_secs))
}

/// The vault's retention policy, `None` if none was ever set.
pub fn policy(vault: &Vault) -> Result<Option<VaultPolicy>, VaultError> {
    let sealed = match vault.backend.get(&key(POLICY_KEY)) {
        Ok(sealed) => sealed,
        Err(BlobError::NotFound(_)) => return Ok(None),
        Err(err) => return Err(err.into()),
    };
    let what = || format!("{}: policy", vault.describe());
    let plain = vault.open_sealed(&sealed, &what)?;
    VaultPolicy::decode(&plain)
        .map(Some)
        .map_err(|source| VaultError::Decode {
            what: what(),
            source,
        })
}

/// The zone whose calendar `policy`'s buckets follow. A zone this machine's time zone database
/// does not know refuses the prune rather than bucket by another calendar.
pub fn zone_of(vault: &Vault, policy: &VaultPolicy) -> Result<Zone, VaultError> {
    match &policy.timezone {
        None => Ok(Zone::utc()),
        Some(name) => Zone::parse(name).map_err(|_| {
            VaultError::Refused(format!(
                "{}: the retention policy's time zone {name:?} is not in this machine's time \
                 zone database (update its tzdata, or set the policy again with --timezone)",
                vault.describe()
            ))
        }),
    }
}

/// One backup in a prune plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PrunedBackup {
    /// `SHARE/NAME`, which names it unambiguously.
    pub backup: String,
    /// Unix seconds when its snapshot was taken.
    pub created: i64,
    /// Why it is kept (`last`, `daily`, ..., `held`); empty for a removed one.
    pub reasons: Vec<String>,
    #[serde(skip)]
    id: BackupId,
}

/// What prune keeps and removes (newest first within each share) and did or would do.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PruneReport {
    pub dry_run: bool,
    pub policy: VaultPolicy,
    pub kept: Vec<PrunedBackup>,
    pub removed: Vec<PrunedBackup>,
    /// Bytes the removed backups added when they were made (at most what gc can free).
    pub bytes_added: u64,
}

fn reason_name(reason: Reason) -> &'static str {
    match reason {
        Reason::Hourly => "hourly",
        Reason::Daily => "daily",
        Reason::Weekly => "weekly",
        Reason::Monthly => "monthly",
        Reason::Yearly => "yearly",
        Reason::Held => "held",
    }
}

/// What the plan needs of one backup.
struct Listed {
    id: BackupId,
    name: String,
    created: i64,
    /// Orders backups taken within one second.
    nanos: u32,
    held: bool,
    /// Inside the minimum retention at the time of the plan.
    locked: bool,
    bytes_added: u64,
}

/// The plan for one share's backups.
fn plan_share(
    share: ShareId,
    backups: &[Listed],
    policy: &VaultPolicy,
    zone: &Zone,
    report: &mut PruneReport,
) {
    // Candidates are named by backup id: names must be unique, and one share's backups are.
    let candidates: Vec<Candidate> = backups
        .iter()
        .map(|listed| Candidate {
            name: listed.id.to_hex(),
            created: listed.created,
            held: listed.held,
        })
        .collect();
    let keep = Keep {
        hourly: 0,
        daily: policy.daily,
        weekly: policy.weekly,
        monthly: policy.monthly,
        yearly: policy.yearly,
    };
    // With only `last` set the buckets are all off, and `select` would keep everything.
    let selection = if keep.is_off() {
        None
    } else {
        Some(retention::select(&candidates, &keep, zone))
    };
    let mut newest_first: Vec<_> = backups.iter().collect();
    newest_first.sort_by(|a, b| (b.created, b.nanos, &b.id.0).cmp(&(a.created, a.nanos, &a.id.0)));
    for (rank, listed) in newest_first.into_iter().enumerate() {
        let hex = listed.id.to_hex();
        let mut reasons = Vec::new();
        if (rank as u64) < u64::from(policy.last) {
            reasons.push("last".to_owned());
        }
        if let Some(selection) = &selection
            && let Some((_, why)) = selection.keep.iter().find(|(name, _)| *name == hex)
        {
            reasons.extend(why.iter().map(|r| reason_name(*r).to_owned()));
        } else if listed.held {
            reasons.push("held".to_owned());
        }
        if listed.locked {
            reasons.push("min-retention".to_owned());
        }
        let entry = PrunedBackup {
            backup: format!("{}/{}", share.to_hex(), listed.name),
            created: listed.created,
            reasons,
            id: listed.id,
        };
        if entry.reasons.is_empty() {
            report.bytes_added += listed.bytes_added;
            report.removed.push(entry);
        } else {
            report.kept.push(entry);
        }
    }
}

/// Applies the vault's policy: plans, and unless `dry_run` deletes what the plan removes.
pub fn prune(vault: &Vault, dry_run: bool) -> Result<PruneReport, VaultError> {
    let policy = policy(vault)?.ok_or_else(|| {
        VaultError::Refused(format!(
            "{}: no retention policy; set one with `snapfs vault policy set`",
            vault.describe()
        ))
    })?;
    let now = unix_now();
    if policy.keeps_everything() {
        return Err(VaultError::Refused(format!(
            "{}: the policy keeps every backup (every count is 0); nothing to prune",
            vault.describe()
        )));
    }
    let zone = zone_of(vault, &policy)?;
    // The plan is made under the lock too: a backup made after it is not in it, and a hold
    // set between plan and delete is seen.
    let _lock = if dry_run {
        None
    } else {
        Some(VaultLock::acquire(vault, LockKind::Exclusive, "prune")?)
    };
    let holds = vault.holds()?;
    let mut shares: BTreeMap<ShareId, Vec<Listed>> = BTreeMap::new();
    for (id, record) in vault.records()? {
        let held = Vault::hold_of(&holds, id, &record).protects_at(now);
        shares.entry(record.share).or_default().push(Listed {
            id,
            name: record.name,
            created: record.created.secs,
            nanos: record.created.nanos,
            held,
            locked: policy.locked_until(record.created.secs, now).is_some(),
            bytes_added: record.bytes_added,
        });
    }
    let mut report = PruneReport {
        dry_run,
        policy: policy.clone(),
        ..PruneReport::default()
    };
    for (share, backups) in &shares {
        plan_share(*share, backups, &policy, &zone, &mut report);
    }
    if dry_run {
        return Ok(report);
    }
    for entry in &report.removed {
        match vault.backend.delete(&backup_key(entry.id)) {
            Ok(()) | Err(BlobError::NotFound(_)) => {}
            Err(err) => return Err(err.into()),
        }
        // An expired dated hold may be left behind; it protects nothing and goes with it.
        vault.backend.delete(&hold_key(entry.id))?;
        tracing::info!(vault = vault.describe(), backup = entry.backup, "pruned");
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::backup_record::BackupRecord;
    use crate::format::catalog::Hold;
    use crate::format::inode::Timestamp;
    use crate::id::ChunkId;
    use crate::schedule::calendar::parse_instant;
    use crate::vault::list::list;
    use crate::vault::retention::{delete, hold};
    use crate::vault::tests::Fixture;

    /// Writes a record of a backup of `share` taken at `time`, as the backup code would (the
    /// tree it names need not exist: prune reads records only).
    fn record_at(vault: &Vault, share: u8, name: &str, time: &str) {
        let record = BackupRecord {
            share: ShareId([share; 16]),
            name: name.to_owned(),
            created: Timestamp {
                secs: parse_instant(time, 0).expect("time"),
                nanos: 0,
            },
            root: ChunkId::of(name.as_bytes()),
            root_perm: 0o755,
            root_uid: 0,
            root_gid: 0,
            block_size: 4096,
            size: 1,
            bytes_added: 10,
            hold: Hold::None,
        };
        let id = BackupId::random().expect("id");
        let sealed = vault
            .seal(&record.encode(), &|| "record".into())
            .expect("seal");
        vault.backend.put(&backup_key(id), &sealed).expect("put");
    }

    fn names(entries: &[PrunedBackup]) -> Vec<&str> {
        entries
            .iter()
            .map(|e| e.backup.split_once('/').expect("share/name").1)
            .collect()
    }

    #[test]
    fn prune_keeps_what_the_policy_selects_per_share_and_every_held_backup() {
        let fixture = Fixture::in_memory();
        let vault = fixture.vault();
        // The fixture's two real backups are of another share, taken now: kept by `last`.
        for (name, time) in [
            ("a-jan1", "2025-01-01T10:00:00Z"),
            ("a-jan2-early", "2025-01-02T08:00:00Z"),
            ("a-jan2-late", "2025-01-02T20:00:00Z"),
            ("a-jan3", "2025-01-03T10:00:00Z"),
            ("a-feb", "2025-02-10T10:00:00Z"),
            ("a-mar", "2025-03-10T10:00:00Z"),
        ] {
            record_at(&vault, 1, name, time);
        }
        record_at(&vault, 2, "b-old", "2024-06-01T00:00:00Z");
        record_at(&vault, 2, "b-new", "2024-06-02T00:00:00Z");
        hold(&vault, "a-jan1").expect("hold");
        set_policy(
            &vault,
            &VaultPolicy {
                last: 2,
                daily: 2,
                monthly: 2,
                ..VaultPolicy::default()
            },
            None,
            None,
        )
        .expect("policy");

        let plan = prune(&vault, true).expect("dry run");
        // Share 1: last, daily and monthly = a-mar, a-feb; held: a-jan1. Share 2 and the
        // fixture's share count on their own: their two newest are kept.
        let removed = names(&plan.removed);
        assert_eq!(removed, ["a-jan3", "a-jan2-late", "a-jan2-early"]);
        let kept = names(&plan.kept);
        for stays in ["a-jan1", "a-feb", "a-mar", "b-old", "b-new", "old", "new"] {
            assert!(kept.contains(&stays), "{stays} kept: {kept:?}");
        }
        let held = plan
            .kept
            .iter()
            .find(|e| e.backup.ends_with("/a-jan1"))
            .expect("a-jan1");
        assert_eq!(held.reasons, ["held"]);
        assert_eq!(
            list(&vault).expect("list").len(),
            10,
            "a dry run deletes nothing"
        );

        let done = prune(&vault, false).expect("prune");
        assert_eq!(done.removed, plan.removed);
        assert_eq!(done.bytes_added, 30);
        let left: Vec<String> = list(&vault)
            .expect("list")
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(left.len(), 7, "{left:?}");
        assert!(prune(&vault, false).expect("again").removed.is_empty());
        // The real backups still restore.
        fixture.check_restores(&vault, "old");
    }

    #[test]
    fn prune_refuses_without_a_policy_and_policy_round_trips_sealed() {
        let fixture = Fixture::in_memory();
        let vault = fixture.vault();
        assert_eq!(policy(&vault).expect("read"), None);
        assert!(prune(&vault, true).is_err());
        set_policy(&vault, &VaultPolicy::default(), None, None).expect("set");
        assert!(
            prune(&vault, true).is_err(),
            "an all-zero policy prunes nothing"
        );
        let policy_set = VaultPolicy {
            weekly: 4,
            ..VaultPolicy::default()
        };
        set_policy(&vault, &policy_set, None, None).expect("set");
        assert_eq!(policy(&vault).expect("read"), Some(policy_set.clone()));
        // A zone, once set, stays when the counts change without one; UTC is stored as none.
        let berlin = Zone::parse("Europe/Berlin").expect("known");
        let zoned = set_policy(&vault, &policy_set, None, Some(&berlin)).expect("set");
        assert_eq!(zoned.timezone.as_deref(), Some("Europe/Berlin"));
        let kept = set_policy(
            &vault,
            &VaultPolicy {
                daily: 1,
                ..VaultPolicy::default()
            },
            None,
            None,
        )
        .expect("set");
        assert_eq!(kept.timezone.as_deref(), Some("Europe/Berlin"));
        assert_eq!(policy(&vault).expect("read"), Some(kept));
        let utc = set_policy(&vault, &policy_set, None, Some(&Zone::utc())).expect("set");
        assert_eq!(utc.timezone, None);
    }

    /// Daily buckets are the days of the policy's zone: 21:00 and 23:30 UTC on a summer day
    /// are two days in Berlin (the second is 01:30 the next morning), one day in UTC.
    #[test]
    fn prune_buckets_follow_the_policys_zone() {
        let fixture = Fixture::in_memory();
        let vault = fixture.vault();
        for (name, time) in [
            ("evening", "2025-07-10T21:00:00Z"),
            ("night", "2025-07-10T23:30:00Z"),
            ("noon", "2025-07-11T12:00:00Z"),
        ] {
            record_at(&vault, 5, name, time);
        }
        let daily = VaultPolicy {
            daily: 2,
            ..VaultPolicy::default()
        };
        set_policy(&vault, &daily, None, None).expect("utc");
        let plan = prune(&vault, true).expect("plan");
        let in_utc = names(&plan.removed);
        assert!(
            in_utc.contains(&"evening") && !in_utc.contains(&"night"),
            "{in_utc:?}"
        );
        let berlin = Zone::parse("Europe/Berlin").expect("known");
        set_policy(&vault, &daily, None, Some(&berlin)).expect("berlin");
        let plan = prune(&vault, true).expect("plan");
        let in_berlin = names(&plan.removed);
        assert!(
            in_berlin.contains(&"night") && !in_berlin.contains(&"evening"),
            "{in_berlin:?}"
        );
        // A zone this machine does not know refuses the prune rather than guess.
        let unknown = VaultPolicy {
            timezone: Some("Nowhere/Land".into()),
            ..daily
        };
        let sealed = vault
            .seal(&unknown.encode(), &|| "policy".into())
            .expect("seal");
        vault.backend.put(&key(POLICY_KEY), &sealed).expect("put");
        let err = prune(&vault, true).expect_err("unknown zone");
        assert!(err.to_string().contains("\"Nowhere/Land\""), "{err}");
    }

    #[test]
    fn min_retention_protects_young_backups_from_delete_and_prune_and_only_rises() {
        let fixture = Fixture::in_memory();
        let vault = fixture.vault();
        // The fixture's backups ("old", "new") were taken now; these two a year ago.
        record_at(&vault, 1, "year-old-a", "2025-01-01T10:00:00Z");
        record_at(&vault, 1, "year-old-b", "2025-01-02T10:00:00Z");
        record_at(&vault, 1, "year-old-c", "2025-01-03T10:00:00Z");
        let counts = VaultPolicy {
            last: 1,
            ..VaultPolicy::default()
        };
        let stored = set_policy(&vault, &counts, Some(30 * 86_400), None).expect("lock");
        assert_eq!(stored.min_retention_secs, 30 * 86_400);

        // Delete: refused inside the window, naming the backup and when it may go.
        let err = delete(&vault, &["old".to_owned()]).expect_err("locked");
        let message = err.to_string();
        assert!(
            matches!(&err, VaultError::RetentionLocked { backup, .. } if backup == "old"),
            "{message}"
        );
        assert!(message.contains("30d"), "{message}");
        let year = crate::schedule::calendar::format_rfc3339(unix_now())
            .get(..4)
            .expect("a year")
            .to_owned();
        assert!(message.contains("may be deleted from"), "{message}");
        assert!(
            message.contains(&year) || message.contains("-01-"),
            "{message}"
        );
        // All or nothing: with a locked backup in the list, nothing goes.
        let both = ["year-old-a".to_owned(), "new".to_owned()];
        assert!(delete(&vault, &both).is_err());
        assert_eq!(list(&vault).expect("list").len(), 5);
        // Older than the window: deleted as before.
        delete(&vault, &["year-old-a".to_owned()]).expect("old enough");

        // Prune keeps the young ones past its counts, saying why, and removes the old one that
        // `last` (per share) does not keep.
        let report = prune(&vault, false).expect("prune");
        assert_eq!(names(&report.removed), ["year-old-b"]);
        for young in ["old", "new"] {
            let entry = report
                .kept
                .iter()
                .find(|e| e.backup.ends_with(&format!("/{young}")))
                .expect("kept");
            assert!(
                entry.reasons.contains(&"min-retention".to_owned()),
                "{young}: {:?}",
                entry.reasons
            );
        }

        // Lowering is refused, leaving it as it was; leaving it out keeps it; raising works.
        let err = set_policy(&vault, &counts, Some(86_400), None).expect_err("lowering");
        assert!(err.to_string().contains("only be raised"), "{err}");
        let kept = set_policy(&vault, &counts, None, None).expect("counts only");
        assert_eq!(kept.min_retention_secs, 30 * 86_400);
        assert_eq!(
            policy(&vault).expect("read").map(|p| p.min_retention_secs),
            Some(30 * 86_400)
        );
        let raised = set_policy(&vault, &counts, Some(60 * 86_400), None).expect("raising");
        assert_eq!(raised.min_retention_secs, 60 * 86_400);
        assert!(set_policy(&vault, &counts, Some(30 * 86_400), None).is_err());

        // gc frees nothing a locked backup needs: both still restore after it. (The records
        // written by hand name trees that do not exist, which gc would rightly refuse.)
        delete(&vault, &["year-old-c".to_owned()]).expect("old enough");
        let mut vault = vault;
        crate::vault::gc::gc(&mut vault, false).expect("gc");
        fixture.check_restores(&vault, "old");
        fixture.check_restores(&vault, "new");
    }
}
