//! The space history: the store's space figures over time, so that `snapfs report` can show
//! where the space went (live share, snapshots, soft-deleted snapshots).
//!
//! Table `space_history`: unix seconds (i64) → a [`SpaceSample`] (`format::space_sample`). The
//! service writes one after each snapshot create, delete, expiry, undelete, purge and rollback
//! and after each gc (`Service::sample_space`), and the scheduler's tick writes one when the
//! newest is [`TICK_INTERVAL`] old or older, so a share that only changes by writes still
//! has its curve. Two samples in the same second keep the later.
//!
//! **Bounded.** Every write thins the table ([`thin`]): every sample of the last
//! [`KEEP_ALL_SECS`] (two days) stays; older ones keep the newest sample of each UTC day; and
//! past [`MAX_SAMPLES`] rows the oldest go. So the table holds at most 4,000 rows of 41 bytes:
//! a decade of days beyond the last two days' detail (only a burst of thousands of snapshot
//! changes within two days would push the oldest days out). A write reads the keys older than
//! two days (at most [`MAX_SAMPLES`]) to thin them: microseconds beside the fsync.
//!
//! A store made before this table existed simply starts with it empty: the table is created by
//! its first sample, and readers treat a missing table as an empty history. It is copied into
//! tier checkpoints with the job log (`copy_store_tables`).

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::format::space_sample::SpaceSample;
use crate::gc::usage::Usage;

const HISTORY: TableDefinition<i64, &[u8]> = TableDefinition::new("space_history");

/// Samples younger than this (two days) are all kept.
pub const KEEP_ALL_SECS: i64 = 2 * DAY;
/// Older samples keep one per UTC day.
const DAY: i64 = 86_400;
/// At most this many rows: two days of detail plus about eleven years of days.
pub const MAX_SAMPLES: usize = 4_000;
/// The scheduler adds a sample when the newest is at least this old (an hour).
pub const TICK_INTERVAL: i64 = 3_600;

/// Why the space history could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SpaceHistoryError {
    #[error("space history: {0}")]
    Db(redb::Error),
}

crate::storage::from_redb_errors!(SpaceHistoryError, SpaceHistoryError::Db);

/// Copies the space history's table (for a checkpoint).
pub fn copy_tables(
    from: &redb::ReadTransaction,
    to: &redb::WriteTransaction,
) -> Result<(), redb::Error> {
    crate::storage::table_copy::copy_table(from, to, HISTORY)
}

/// The sample of `usage`'s totals.
pub fn sample_of(usage: &Usage) -> SpaceSample {
    SpaceSample {
        live_bytes: usage.live_bytes,
        snapshot_bytes: usage.snapshot_bytes,
        deleted_snapshot_bytes: usage.deleted_snapshot_bytes,
        stored_bytes: usage.stored_bytes,
        reclaimable_bytes: usage.reclaimable_bytes,
    }
}

/// Records `sample` at `secs` and thins the table, in one transaction, durable with the
/// share's next commit (a sample lost to a crash is a point missing from a chart).
pub fn record(db: &Database, secs: i64, sample: &SpaceSample) -> Result<(), SpaceHistoryError> {
    let mut txn = db.begin_write()?;
    txn.set_durability(redb::Durability::None)?;
    {
        let mut table = txn.open_table(HISTORY)?;
        table.insert(secs, sample.encode().as_slice())?;
        let mut old = Vec::new();
        for entry in table.range(..secs.saturating_sub(KEEP_ALL_SECS))? {
            old.push(entry?.0.value());
        }
        let rows = usize::try_from(table.len()?).unwrap_or(usize::MAX);
        let mut remove = thin(&old);
        // Past the cap, the oldest go, whichever part of the history they are in.
        let remaining = rows.saturating_sub(remove.len());
        if remaining > MAX_SAMPLES {
            let excess = remaining - MAX_SAMPLES;
            let mut oldest = Vec::with_capacity(excess);
            for entry in table.iter()? {
                if oldest.len() == excess {
                    break;
                }
                let key = entry?.0.value();
                if remove.binary_search(&key).is_err() {
                    oldest.push(key);
                }
            }
            remove.extend(oldest);
        }
        for key in remove {
            table.remove(key)?;
        }
    }
    txn.commit()?;
    Ok(())
}

/// Which of `old` (the keys older than [`KEEP_ALL_SECS`], ascending) to remove: all but the
/// newest of each UTC day. Sorted ascending (the cap is [`record`]'s, after).
fn thin(old: &[i64]) -> Vec<i64> {
    let mut out = Vec::new();
    for pair in old.windows(2) {
        if let [earlier, later] = pair
            && earlier.div_euclid(DAY) == later.div_euclid(DAY)
        {
            out.push(*earlier);
        }
    }
    out
}

/// When the newest sample was taken, if any.
pub fn newest(db: &Database) -> Result<Option<i64>, SpaceHistoryError> {
    let txn = db.begin_read()?;
    let Some(table) = crate::storage::open_if_exists(&txn, HISTORY)? else {
        return Ok(None);
    };
    Ok(table.last()?.map(|(secs, _)| secs.value()))
}

/// Every sample, oldest first. An undecodable row is skipped with a warning: a damaged sample
/// loses one point of a picture, never the picture.
pub fn read(db: &Database) -> Result<Vec<(i64, SpaceSample)>, SpaceHistoryError> {
    let txn = db.begin_read()?;
    let Some(table) = crate::storage::open_if_exists(&txn, HISTORY)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for entry in table.iter()? {
        let (secs, bytes) = entry?;
        match SpaceSample::decode(bytes.value()) {
            Ok(sample) => out.push((secs.value(), sample)),
            Err(err) => tracing::warn!(
                secs = secs.value(),
                "skipping an unreadable space history sample: {err}"
            ),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(stored: u64) -> SpaceSample {
        SpaceSample {
            stored_bytes: stored,
            ..SpaceSample::default()
        }
    }

    fn database(dir: &tempfile::TempDir) -> Database {
        Database::create(dir.path().join("db.redb")).expect("database")
    }

    #[test]
    fn a_missing_table_is_an_empty_history() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = database(&dir);
        assert_eq!(read(&db).expect("read"), Vec::new());
        assert_eq!(newest(&db).expect("newest"), None);
    }

    #[test]
    fn old_samples_keep_the_newest_of_each_day_and_recent_ones_all() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = database(&dir);
        let start = 100 * DAY;
        // Every hour for ten days.
        let hours = 10 * 24;
        for hour in 0..hours {
            record(&db, start + hour * 3_600, &sample(hour as u64)).expect("record");
        }
        let now = start + (hours - 1) * 3_600;
        let kept = read(&db).expect("read");
        let recent: Vec<_> = kept
            .iter()
            .filter(|(secs, _)| *secs >= now - KEEP_ALL_SECS)
            .collect();
        assert_eq!(recent.len(), 49, "every hour of the last two days");
        let old: Vec<i64> = kept
            .iter()
            .map(|(secs, _)| *secs)
            .filter(|secs| *secs < now - KEEP_ALL_SECS)
            .collect();
        // One per day, the day's last hour, for the days wholly before the window; the day the
        // window starts in keeps its newest sample before the window too.
        let days: Vec<i64> = old.iter().map(|secs| secs.div_euclid(DAY)).collect();
        let mut unique = days.clone();
        unique.dedup();
        assert_eq!(days, unique, "one per day: {old:?}");
        assert_eq!(old.len(), 8, "{old:?}");
        assert_eq!(old[0], start + 23 * 3_600, "the newest of the first day");
        // What a sample says survives thinning.
        let (secs, first) = kept[0];
        assert_eq!(first.stored_bytes, ((secs - start) / 3_600) as u64);
        assert_eq!(newest(&db).expect("newest"), Some(now));
    }

    #[test]
    fn the_table_never_holds_more_than_the_cap() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = database(&dir);
        // A burst: more samples within two days than the cap, one a second.
        let total = MAX_SAMPLES as i64 + 50;
        for secs in 0..total {
            record(&db, secs, &sample(secs as u64)).expect("record");
        }
        let kept = read(&db).expect("read");
        assert_eq!(kept.len(), MAX_SAMPLES);
        assert_eq!(kept[0].0, 50, "the oldest went");
        assert_eq!(kept.last().map(|(secs, _)| *secs), Some(total - 1));
    }

    #[test]
    fn a_damaged_row_is_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = database(&dir);
        record(&db, 10, &sample(1)).expect("record");
        let txn = db.begin_write().expect("write");
        txn.open_table(HISTORY)
            .expect("table")
            .insert(20, &b"\x09garbage"[..])
            .expect("insert");
        txn.commit().expect("commit");
        record(&db, 30, &sample(3)).expect("record");
        let kept: Vec<i64> = read(&db).expect("read").iter().map(|(s, _)| *s).collect();
        assert_eq!(kept, vec![10, 30]);
    }
}
