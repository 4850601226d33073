//! GMT-stamped aliases of snapshots, for Samba's `vfs_shadow_copy2` (Windows' Previous
//! Versions): with `snapfs mount --gmt-names`, `.snapshots/.gmt/` lists one directory per
//! snapshot creation second, named `@GMT-YYYY.MM.DD-HH.MM.SS` in UTC, Samba's default
//! `shadow:format`. Each is the same snapshot view as `.snapshots/NAME` (same objects, same
//! cache, same held inodes), seen under inode numbers of its own (see [`view`](super::view)),
//! because the kernel allows a directory only one name at a time.
//!
//! **One alias per second.** Snapshot times are whole seconds, so two snapshots can share one.
//! The alias of a second names the snapshot of that second with the lowest number, that is
//! the first created: an alias, once listed, keeps naming the same snapshot until that snapshot
//! is deleted, whatever is created later. The others of that second have no alias while it
//! exists; deleting it hands the alias to the next of the same second.
//!
//! Everything here is computed from the catalog when asked, so the aliases follow every
//! create and delete (commands, schedules, retention) without anything to keep in step.

use crate::format::catalog::SnapshotRecord;

/// The strftime form of an alias, as `shadow:format` takes it (Samba's default).
pub const SHADOW_FORMAT: &str = "@GMT-%Y.%m.%d-%H.%M.%S";

/// `@GMT-2026.11.21-03.00.00`: 24 bytes.
const NAME_LEN: usize = 24;

/// The alias of a snapshot created at `secs` (unix seconds, UTC); `None` outside the years
/// 1 to 9999, which the name cannot spell.
pub fn alias_name(secs: i64) -> Option<String> {
    let time = jiff::tz::Offset::UTC.to_datetime(jiff::Timestamp::from_second(secs).ok()?);
    if time.year() < 1 {
        return None;
    }
    Some(format!(
        "@GMT-{:04}.{:02}.{:02}-{:02}.{:02}.{:02}",
        time.year(),
        time.month(),
        time.day(),
        time.hour(),
        time.minute(),
        time.second()
    ))
}

/// The second an alias names: the inverse of [`alias_name`], and only of it (one spelling per
/// second: no other width, sign, or out-of-range field is accepted).
pub fn parse_alias(name: &[u8]) -> Option<i64> {
    let name = std::str::from_utf8(name).ok()?;
    if name.len() != NAME_LEN || !name.is_ascii() {
        return None;
    }
    let field = |at: usize, len: usize| -> Option<i16> {
        let digits = &name[at..at + len];
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    };
    let punctuation = [
        (0, "@GMT-"),
        (9, "."),
        (12, "."),
        (15, "-"),
        (18, "."),
        (21, "."),
    ];
    if punctuation
        .iter()
        .any(|(at, p)| !name[*at..].starts_with(p))
    {
        return None;
    }
    let (year, month, day) = (field(5, 4)?, field(10, 2)?, field(13, 2)?);
    let (hour, minute, second) = (field(16, 2)?, field(19, 2)?, field(22, 2)?);
    if year < 1 {
        return None;
    }
    // Two digits fit an i8; `new` refuses a day or time that does not exist.
    let date = jiff::civil::Date::new(year, month as i8, day as i8).ok()?;
    let time = jiff::civil::Time::new(hour as i8, minute as i8, second as i8, 0).ok()?;
    let stamp = jiff::tz::Offset::UTC
        .to_timestamp(date.to_datetime(time))
        .ok()?;
    Some(stamp.as_second())
}

/// The snapshot the alias of second `secs` names, among `snapshots`: the lowest-numbered one
/// created in that second.
pub fn owner_of(
    snapshots: &[(String, SnapshotRecord)],
    secs: i64,
) -> Option<&(String, SnapshotRecord)> {
    snapshots
        .iter()
        .filter(|(_, record)| record.created.secs == secs)
        .min_by_key(|(_, record)| record.number)
}

/// Every alias of `snapshots` with the snapshot it names, oldest first: one per creation
/// second that has a name (see [`owner_of`]).
pub fn aliases(snapshots: &[(String, SnapshotRecord)]) -> Vec<(String, &(String, SnapshotRecord))> {
    let mut owners: Vec<&(String, SnapshotRecord)> = snapshots.iter().collect();
    owners.sort_by_key(|(_, record)| (record.created.secs, record.number));
    owners.dedup_by_key(|(_, record)| record.created.secs);
    owners
        .into_iter()
        .filter_map(|owner| Some((alias_name(owner.1.created.secs)?, owner)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::catalog::{Hold, Origin};
    use crate::format::inode::Timestamp;
    use crate::id::ChunkId;

    fn record(number: u64, secs: i64) -> (String, SnapshotRecord) {
        (
            format!("s{number}"),
            SnapshotRecord {
                number,
                root: ChunkId([number as u8; 32]),
                created: Timestamp { secs, nanos: 0 },
                origin: Origin::Manual,
                root_perm: 0o755,
                root_uid: 0,
                root_gid: 0,
                hold: Hold::None,
                deleted: None,
            },
        )
    }

    /// 2026-11-21T03:00:00Z.
    const T: i64 = 1_795_230_000;

    #[test]
    fn names_are_samba_default_format_in_utc() {
        assert_eq!(alias_name(T).as_deref(), Some("@GMT-2026.11.21-03.00.00"));
        assert_eq!(alias_name(0).as_deref(), Some("@GMT-1970.01.01-00.00.00"));
        assert_eq!(
            alias_name(T + 86_399).as_deref(),
            Some("@GMT-2026.11.22-02.59.59")
        );
        // Before 1970 still spells a name; outside what the name can spell, none.
        assert_eq!(alias_name(-1).as_deref(), Some("@GMT-1969.12.31-23.59.59"));
        assert_eq!(alias_name(i64::MAX), None);
        assert_eq!(alias_name(i64::MIN), None);
        // What `shadow:format` is told matches what is formatted.
        let formatted = jiff::Timestamp::from_second(T)
            .unwrap()
            .strftime(SHADOW_FORMAT)
            .to_string();
        assert_eq!(alias_name(T), Some(formatted));
    }

    #[test]
    fn a_name_parses_back_to_its_second_and_nothing_else_parses() {
        for secs in [0, T, T + 1, T + 86_399, -1, 253_400_000_000] {
            let name = alias_name(secs).expect("in range");
            assert_eq!(parse_alias(name.as_bytes()), Some(secs), "{name}");
        }
        for bad in [
            "",
            "@GMT-2026.11.21-03.00.0",
            "@GMT-2026.11.21-03.00.000",
            "@GMT-2026.11.21-03.00.60",
            "@GMT-2026.13.21-03.00.00",
            "@GMT-2026.02.30-03.00.00",
            "@GMT-2026.11.21-24.00.00",
            "@GMT-2026.11.21_03.00.00",
            "@GMT-2026.11.21-03:00:00",
            "@gmt-2026.11.21-03.00.00",
            "@GMT-+026.11.21-03.00.00",
            "@GMT-2026.1.021-03.00.00",
            "@GMT-0000.01.01-00.00.00",
            "@GMT-2026.11.21-03.00.0\u{e9}",
            "s1",
        ] {
            assert_eq!(parse_alias(bad.as_bytes()), None, "{bad:?}");
        }
    }

    /// Two snapshots in one second: the first created (lowest number) names the alias, what
    /// order the catalog lists them in; deleting it hands the alias to the other.
    #[test]
    fn the_first_snapshot_of_a_second_owns_its_alias() {
        let list = vec![
            record(7, T),
            record(3, T - 60),
            record(5, T),
            record(9, T + 1),
        ];
        let names: Vec<(String, u64)> = aliases(&list)
            .into_iter()
            .map(|(alias, (_, r))| (alias, r.number))
            .collect();
        assert_eq!(
            names,
            [
                ("@GMT-2026.11.21-02.59.00".to_owned(), 3),
                ("@GMT-2026.11.21-03.00.00".to_owned(), 5),
                ("@GMT-2026.11.21-03.00.01".to_owned(), 9),
            ]
        );
        assert_eq!(owner_of(&list, T).map(|(_, r)| r.number), Some(5));
        assert_eq!(owner_of(&list, T + 2), None);
        // Snapshot 5 deleted: 7 takes the alias over.
        let rest: Vec<_> = list.into_iter().filter(|(_, r)| r.number != 5).collect();
        assert_eq!(owner_of(&rest, T).map(|(_, r)| r.number), Some(7));
        assert_eq!(aliases(&rest).len(), 3);
        // Every listed alias looks up to the snapshot it was listed with.
        for (alias, (name, _)) in aliases(&rest) {
            let secs = parse_alias(alias.as_bytes()).expect("parses");
            assert_eq!(owner_of(&rest, secs).map(|(n, _)| n), Some(name));
        }
    }
}
