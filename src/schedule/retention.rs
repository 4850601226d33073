//! Retention: which automatic snapshots to keep and which to expire, by the
//! grandfather-father-son rules stated in the [`super`] module documentation.
//!
//! [`select`] only plans: it reads a list of candidates and returns the decision with a reason
//! for every snapshot kept, so a dry run costs nothing and the daemon deletes exactly what
//! was shown. It sorts once and then walks the candidates once per bucket: O(n log n).
//!
//! Buckets are periods of the policy's [`Zone`]'s calendar: a snapshot taken at 23:30 UTC on
//! a summer day belongs to the next day in Europe/Berlin. An hour is an hour of elapsed time
//! that starts at hh:00 on the zone's clock, so the hour a fall-back repeats is two hours,
//! as it is two hourly slots; a day, ISO week, month or year is the zone's local one, whatever
//! its length in seconds.

use serde::Serialize;

use super::calendar::Zone;
use super::policy::Keep;

/// An automatic snapshot that retention may expire. Manual snapshots never expire and are
/// not passed (nor do they fill buckets). Names are unique.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub name: String,
    /// When the snapshot was taken, unix seconds UTC (the catalog's `created`).
    pub created: i64,
    /// A hold protects the snapshot from expiry, whatever the counts say.
    pub held: bool,
}

/// Why a snapshot is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Reason {
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Yearly,
    Held,
}

/// The outcome of [`select`]. Both lists are newest first and together hold every candidate
/// exactly once. Reasons are listed in the order hourly, daily, weekly, monthly, yearly,
/// held; a kept snapshot has no reason only when retention is off (every count 0).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Selection {
    pub keep: Vec<(String, Vec<Reason>)>,
    pub expire: Vec<String>,
}

/// The buckets, in the order of [`periods`], of [`counts`] and of the reasons in a
/// [`Selection`].
const BUCKETS: [Reason; 5] = [
    Reason::Hourly,
    Reason::Daily,
    Reason::Weekly,
    Reason::Monthly,
    Reason::Yearly,
];

fn counts(keep: &Keep) -> [u32; 5] {
    [
        keep.hourly,
        keep.daily,
        keep.weekly,
        keep.monthly,
        keep.yearly,
    ]
}

/// The hour, day, week, month and year of `zone` that `created` falls in, each numbered so
/// that the number grows with time: walking candidates newest first, a new number is a new
/// period. (Local dates never run backwards in the zones snapfs is tested with; a zone whose
/// clock fell back across midnight would split that day's bucket in two, never merge two.)
/// An instant outside jiff's years counts as the first or last one it represents.
fn periods(created: i64, zone: &Zone) -> [i64; 5] {
    let local = zone.at_clamped(created);
    let date = local.date();
    let iso = date.iso_week_date();
    // The hour is numbered by the instant it starts: hh:00 on the clock with the offset in
    // force at `created`, so the two hours a fall-back repeats stay apart.
    let hour_start = local
        .timestamp()
        .as_second()
        .saturating_sub(i64::from(local.minute()) * 60 + i64::from(local.second()));
    let day =
        i64::from(date.year()) * 10_000 + i64::from(date.month()) * 100 + i64::from(date.day());
    [
        hour_start,
        day,
        // An ISO 8601 week (Monday to Sunday) belongs to the year of its Thursday.
        i64::from(iso.year()) * 100 + i64::from(iso.week()),
        i64::from(date.year()) * 12 + i64::from(date.month()),
        i64::from(date.year()),
    ]
}

/// Decides which candidates to keep under `keep` and which to expire, with buckets in the
/// calendar of `zone`.
pub fn select(candidates: &[Candidate], keep: &Keep, zone: &Zone) -> Selection {
    let mut newest_first: Vec<&Candidate> = candidates.iter().collect();
    // Equal times are ordered by name, descending, so that the outcome never depends on the
    // order of the input.
    newest_first.sort_unstable_by(|a, b| (b.created, &b.name).cmp(&(a.created, &a.name)));
    let periods: Vec<[i64; 5]> = newest_first
        .iter()
        .map(|c| periods(c.created, zone))
        .collect();

    let mut reasons = vec![Vec::new(); newest_first.len()];
    for (bucket, (reason, count)) in BUCKETS.into_iter().zip(counts(keep)).enumerate() {
        let mut left = count;
        let mut current_period = None;
        for (index, candidate_periods) in periods.iter().enumerate() {
            if left == 0 {
                break;
            }
            let period = candidate_periods[bucket];
            // The first candidate seen in a period is its newest.
            if current_period != Some(period) {
                current_period = Some(period);
                reasons[index].push(reason);
                left -= 1;
            }
        }
    }

    let retention_off = keep.is_off();
    let mut selection = Selection::default();
    for (candidate, mut reasons) in newest_first.into_iter().zip(reasons) {
        if candidate.held {
            reasons.push(Reason::Held);
        }
        if reasons.is_empty() && !retention_off {
            selection.expire.push(candidate.name.clone());
        } else {
            selection.keep.push((candidate.name.clone(), reasons));
        }
    }
    selection
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::calendar::{SECS_PER_DAY, SECS_PER_HOUR, parse_instant};
    use crate::schedule::slots::auto_snapshot_name;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet, HashSet};

    fn at(text: &str) -> i64 {
        parse_instant(text, 0).expect("a valid time")
    }

    fn zone(name: &str) -> Zone {
        Zone::parse(name).expect("a known zone")
    }

    /// [`super::select`] in UTC, the zone of the tests written before zones.
    fn select(candidates: &[Candidate], keep: &Keep) -> Selection {
        super::select(candidates, keep, &Zone::utc())
    }

    /// A snapshot at 23:30 UTC on a summer day is the next day in Berlin: the buckets follow
    /// the policy's zone, not UTC.
    #[test]
    fn days_are_the_zones_days() {
        let list = candidates(&[
            "2026-07-10T21:00Z",
            "2026-07-10T23:30Z",
            "2026-07-11T12:00Z",
        ]);
        let keep = Keep {
            daily: 2,
            ..Keep::default()
        };
        assert_eq!(
            select(&list, &keep),
            Selection {
                keep: kept(&[
                    ("2026-07-11T12:00Z", &[Reason::Daily]),
                    ("2026-07-10T23:30Z", &[Reason::Daily]),
                ]),
                expire: names(&["2026-07-10T21:00Z"]),
            }
        );
        assert_eq!(
            super::select(&list, &keep, &zone("Europe/Berlin")),
            Selection {
                keep: kept(&[
                    ("2026-07-11T12:00Z", &[Reason::Daily]),
                    ("2026-07-10T21:00Z", &[Reason::Daily]),
                ]),
                expire: names(&["2026-07-10T23:30Z"]),
            }
        );
    }

    /// Berlin falls back on 2026-10-25: its clock reads 02:10 at 00:10 UTC and again at 01:10
    /// UTC. Those are two hours (as they are two hourly slots), not one.
    #[test]
    fn a_repeated_hour_is_two_hours() {
        let list = candidates(&[
            "2026-10-25T00:10Z",
            "2026-10-25T00:50Z",
            "2026-10-25T01:10Z",
        ]);
        let keep = Keep {
            hourly: 2,
            ..Keep::default()
        };
        for name in ["Europe/Berlin", "UTC"] {
            assert_eq!(
                super::select(&list, &keep, &zone(name)),
                Selection {
                    keep: kept(&[
                        ("2026-10-25T01:10Z", &[Reason::Hourly]),
                        ("2026-10-25T00:50Z", &[Reason::Hourly]),
                    ]),
                    expire: names(&["2026-10-25T00:10Z"]),
                },
                "{name}"
            );
        }
        // The day itself is one day of 25 hours.
        let daily = Keep {
            daily: 5,
            ..Keep::default()
        };
        let day = candidates(&["2026-10-24T22:30Z", "2026-10-25T22:50Z"]);
        assert_eq!(
            super::select(&day, &daily, &zone("Europe/Berlin")).expire,
            names(&["2026-10-24T22:30Z"])
        );
    }

    /// New York springs forward on 2026-03-08, a day of 23 hours: 00:30 EST and 23:30 EDT are
    /// the same day, 00:30 EDT the next. And 22:00 EST on New Year's Eve is still the old
    /// year, month and ISO week there, though it is the new one in UTC.
    #[test]
    fn new_york_days_weeks_months_and_years() {
        let new_york = zone("America/New_York");
        let list = candidates(&[
            "2026-03-08T05:30Z",
            "2026-03-09T03:30Z",
            "2026-03-09T04:30Z",
        ]);
        let daily = Keep {
            daily: 2,
            ..Keep::default()
        };
        assert_eq!(
            super::select(&list, &daily, &new_york),
            Selection {
                keep: kept(&[
                    ("2026-03-09T04:30Z", &[Reason::Daily]),
                    ("2026-03-09T03:30Z", &[Reason::Daily]),
                ]),
                expire: names(&["2026-03-08T05:30Z"]),
            }
        );
        // 2027-01-01T03:00Z is Thursday 2026-12-31 22:00 in New York: 2026-W53, December,
        // 2026. 2026-12-31T12:00Z is the same day there.
        let eve = candidates(&["2026-12-31T12:00Z", "2027-01-01T03:00Z"]);
        for keep in [
            Keep {
                weekly: 2,
                ..Keep::default()
            },
            Keep {
                monthly: 2,
                ..Keep::default()
            },
            Keep {
                yearly: 2,
                ..Keep::default()
            },
        ] {
            assert_eq!(
                super::select(&eve, &keep, &new_york).expire,
                names(&["2026-12-31T12:00Z"]),
                "{keep:?}"
            );
        }
        // In UTC they are different years and months (but the same ISO week, 2026-W53).
        let yearly = Keep {
            yearly: 2,
            ..Keep::default()
        };
        assert!(select(&eve, &yearly).expire.is_empty());
    }

    /// Candidates named by their time, as the daemon names them.
    fn candidates(times: &[&str]) -> Vec<Candidate> {
        times
            .iter()
            .map(|time| {
                let created = at(time);
                Candidate {
                    name: auto_snapshot_name(created),
                    created,
                    held: false,
                }
            })
            .collect()
    }

    fn name(time: &str) -> String {
        auto_snapshot_name(at(time))
    }

    fn kept(pairs: &[(&str, &[Reason])]) -> Vec<(String, Vec<Reason>)> {
        pairs
            .iter()
            .map(|(time, reasons)| (name(time), reasons.to_vec()))
            .collect()
    }

    fn names(times: &[&str]) -> Vec<String> {
        times.iter().map(|time| name(time)).collect()
    }

    #[test]
    fn hourly_keeps_the_newest_of_each_recent_hour() {
        let list = candidates(&[
            "2026-11-21T10:05Z",
            "2026-11-21T12:30Z",
            "2026-11-21T11:10Z",
            "2026-11-21T10:40Z",
            "2026-11-21T11:50Z",
        ]);
        let keep = Keep {
            hourly: 2,
            ..Keep::default()
        };
        assert_eq!(
            select(&list, &keep),
            Selection {
                keep: kept(&[
                    ("2026-11-21T12:30Z", &[Reason::Hourly]),
                    ("2026-11-21T11:50Z", &[Reason::Hourly]),
                ]),
                expire: names(&[
                    "2026-11-21T11:10Z",
                    "2026-11-21T10:40Z",
                    "2026-11-21T10:05Z"
                ]),
            }
        );
    }

    #[test]
    fn periods_without_snapshots_are_not_counted() {
        // Days 1, 2, 5 and 9: keep daily 3 reaches back over the gaps to day 2.
        let list = candidates(&[
            "2026-03-01T08:00Z",
            "2026-03-02T08:00Z",
            "2026-03-02T20:00Z",
            "2026-03-05T08:00Z",
            "2026-03-09T23:59Z",
        ]);
        let keep = Keep {
            daily: 3,
            ..Keep::default()
        };
        assert_eq!(
            select(&list, &keep),
            Selection {
                keep: kept(&[
                    ("2026-03-09T23:59Z", &[Reason::Daily]),
                    ("2026-03-05T08:00Z", &[Reason::Daily]),
                    ("2026-03-02T20:00Z", &[Reason::Daily]),
                ]),
                expire: names(&["2026-03-02T08:00Z", "2026-03-01T08:00Z"]),
            }
        );
    }

    #[test]
    fn weeks_run_monday_to_sunday_across_new_year() {
        // Thursday 2026-01-01 is in the week of Monday 2025-12-29 (2026-W01); Sunday
        // 2025-12-28 ends 2025-W52.
        let list = candidates(&[
            "2025-12-22T00:00Z",
            "2025-12-27T12:00Z",
            "2025-12-28T23:59Z",
            "2025-12-29T00:00Z",
            "2026-01-01T09:00Z",
        ]);
        let keep = Keep {
            weekly: 2,
            ..Keep::default()
        };
        assert_eq!(
            select(&list, &keep),
            Selection {
                keep: kept(&[
                    ("2026-01-01T09:00Z", &[Reason::Weekly]),
                    ("2025-12-28T23:59Z", &[Reason::Weekly]),
                ]),
                expire: names(&[
                    "2025-12-29T00:00Z",
                    "2025-12-27T12:00Z",
                    "2025-12-22T00:00Z"
                ]),
            }
        );
    }

    #[test]
    fn months_and_years_follow_the_calendar() {
        let list = candidates(&[
            "2023-12-31T23:59Z",
            "2024-01-01T00:00Z",
            "2024-01-31T23:59Z",
            "2024-02-01T00:00Z",
            "2024-02-29T12:00Z",
            "2024-03-01T00:00Z",
        ]);
        let monthly = Keep {
            monthly: 2,
            ..Keep::default()
        };
        assert_eq!(
            select(&list, &monthly),
            Selection {
                keep: kept(&[
                    ("2024-03-01T00:00Z", &[Reason::Monthly]),
                    ("2024-02-29T12:00Z", &[Reason::Monthly]),
                ]),
                expire: names(&[
                    "2024-02-01T00:00Z",
                    "2024-01-31T23:59Z",
                    "2024-01-01T00:00Z",
                    "2023-12-31T23:59Z"
                ]),
            }
        );
        let yearly = Keep {
            yearly: 5,
            ..Keep::default()
        };
        assert_eq!(
            select(&list, &yearly).keep,
            kept(&[
                ("2024-03-01T00:00Z", &[Reason::Yearly]),
                ("2023-12-31T23:59Z", &[Reason::Yearly]),
            ])
        );
    }

    #[test]
    fn every_reason_is_listed() {
        let list = candidates(&["2026-11-21T10:00Z", "2026-11-21T11:00Z"]);
        let keep = Keep {
            hourly: 1,
            daily: 1,
            weekly: 1,
            monthly: 1,
            yearly: 1,
        };
        let mut held = list.clone();
        held[1].held = true;
        assert_eq!(
            select(&held, &keep),
            Selection {
                keep: kept(&[(
                    "2026-11-21T11:00Z",
                    &[
                        Reason::Hourly,
                        Reason::Daily,
                        Reason::Weekly,
                        Reason::Monthly,
                        Reason::Yearly,
                        Reason::Held
                    ]
                )]),
                expire: names(&["2026-11-21T10:00Z"]),
            }
        );
    }

    #[test]
    fn held_snapshots_never_expire() {
        let mut list = candidates(&[
            "2020-05-05T05:05Z",
            "2026-11-21T10:00Z",
            "2026-11-21T11:00Z",
        ]);
        list[0].held = true;
        let keep = Keep {
            hourly: 1,
            ..Keep::default()
        };
        assert_eq!(
            select(&list, &keep),
            Selection {
                keep: kept(&[
                    ("2026-11-21T11:00Z", &[Reason::Hourly]),
                    ("2020-05-05T05:05Z", &[Reason::Held]),
                ]),
                expire: names(&["2026-11-21T10:00Z"]),
            }
        );
    }

    #[test]
    fn retention_off_expires_nothing() {
        let mut list = candidates(&["2026-11-21T10:00Z", "2026-11-21T11:00Z"]);
        list[0].held = true;
        assert_eq!(
            select(&list, &Keep::default()),
            Selection {
                keep: kept(&[
                    ("2026-11-21T11:00Z", &[]),
                    ("2026-11-21T10:00Z", &[Reason::Held])
                ]),
                expire: vec![],
            }
        );
        assert_eq!(select(&[], &Keep::default()), Selection::default());
    }

    #[test]
    fn equal_times_are_ordered_by_name() {
        let created = at("2026-11-21T10:00Z");
        let snapshot = |name: &str| Candidate {
            name: name.into(),
            created,
            held: false,
        };
        let keep = Keep {
            hourly: 1,
            ..Keep::default()
        };
        let expected = Selection {
            keep: vec![("b".into(), vec![Reason::Hourly])],
            expire: vec!["a".into()],
        };
        assert_eq!(select(&[snapshot("a"), snapshot("b")], &keep), expected);
        assert_eq!(select(&[snapshot("b"), snapshot("a")], &keep), expected);
    }

    #[test]
    fn serialises_reasons_in_lower_case() {
        let selection = Selection {
            keep: vec![("a".into(), vec![Reason::Weekly, Reason::Held])],
            expire: vec!["b".into()],
        };
        assert_eq!(
            serde_json::to_string(&selection).expect("serialises"),
            r#"{"keep":[["a",["weekly","held"]]],"expire":["b"]}"#
        );
    }

    /// A year of hourly snapshots, expired after each one as the daemon does, leaves exactly
    /// the set that the calendar says it must.
    #[test]
    fn a_year_of_hourly_snapshots() {
        let keep = Keep {
            hourly: 24,
            daily: 7,
            weekly: 4,
            monthly: 12,
            yearly: 3,
        };
        let start = at("2025-01-01T00:00Z");
        let mut live: Vec<Candidate> = Vec::new();
        let mut last_selection = Selection::default();
        for hour in 0..365 * 24 {
            let created = start + hour * SECS_PER_HOUR;
            live.push(Candidate {
                name: auto_snapshot_name(created),
                created,
                held: false,
            });
            last_selection = select(&live, &keep);
            let expired: HashSet<&str> = last_selection.expire.iter().map(String::as_str).collect();
            live.retain(|candidate| !expired.contains(candidate.name.as_str()));
            assert!(
                live.len() <= 24 + 7 + 4 + 12 + 3,
                "{} at hour {hour}",
                live.len()
            );
        }

        // The last snapshot is Wednesday 2025-12-31T23:00Z.
        let mut expected = BTreeSet::new();
        // hourly 24: the 24 snapshots of 2025-12-31.
        for hour in 0..24 {
            expected.insert(name(&format!("2025-12-31T{hour:02}:00Z")));
        }
        // daily 7: the 23:00 snapshot of each of the six days before it.
        for day in 25..=30 {
            expected.insert(name(&format!("2025-12-{day}T23:00Z")));
        }
        // weekly 4: the newest snapshot of ISO weeks 2026-W01 (Monday 29 December to
        // Wednesday 31 December 23:00, kept already), 2025-W52 (Sunday 28 December 23:00, kept
        // already by daily), 2025-W51 and 2025-W50 (the Sundays before, at 23:00).
        expected.insert(name("2025-12-21T23:00Z"));
        expected.insert(name("2025-12-14T23:00Z"));
        // monthly 12: 23:00 on the last day of each month of 2025 (December's is kept already).
        for (month, last_day) in [
            (1, 31),
            (2, 28),
            (3, 31),
            (4, 30),
            (5, 31),
            (6, 30),
            (7, 31),
            (8, 31),
            (9, 30),
            (10, 31),
            (11, 30),
        ] {
            expected.insert(name(&format!("2025-{month:02}-{last_day}T23:00Z")));
        }
        // yearly 3: only 2025 has snapshots; its newest, 31 December 23:00, is kept already.
        assert_eq!(expected.len(), 24 + 6 + 2 + 11);

        let survivors: BTreeSet<String> = live.iter().map(|c| c.name.clone()).collect();
        assert_eq!(survivors, expected);

        let reasons: BTreeMap<String, Vec<Reason>> = last_selection.keep.iter().cloned().collect();
        let reasons_of = |time: &str| reasons[&name(time)].clone();
        assert_eq!(
            reasons_of("2025-12-31T23:00Z"),
            [
                Reason::Hourly,
                Reason::Daily,
                Reason::Weekly,
                Reason::Monthly,
                Reason::Yearly
            ]
        );
        assert_eq!(reasons_of("2025-12-31T00:00Z"), [Reason::Hourly]);
        assert_eq!(reasons_of("2025-12-30T23:00Z"), [Reason::Daily]);
        assert_eq!(
            reasons_of("2025-12-28T23:00Z"),
            [Reason::Daily, Reason::Weekly]
        );
        assert_eq!(reasons_of("2025-12-14T23:00Z"), [Reason::Weekly]);
        assert_eq!(reasons_of("2025-01-31T23:00Z"), [Reason::Monthly]);

        // Applied to its own outcome, select expires nothing and gives the same reasons.
        assert_eq!(
            select(&live, &keep),
            Selection {
                keep: last_selection.keep,
                expire: vec![],
            }
        );
    }

    /// The rules, implemented the obvious way: group by the zone's calendar periods, keep the
    /// newest of each of the n most recent periods. A local hour is told apart from its
    /// repetition by its offset, which is larger the first time (hence its negation, so that
    /// keys order chronologically).
    fn model(candidates: &[Candidate], keep: &Keep, zone: &Zone) -> BTreeMap<String, Vec<Reason>> {
        type Period = (i16, i8, i8, i8, i32);
        type PeriodOf = fn(&jiff::ZonedDateTime) -> Period;
        let buckets: [(Reason, u32, PeriodOf); 5] = [
            (Reason::Hourly, keep.hourly, |t| {
                (
                    t.year(),
                    t.month(),
                    t.day(),
                    t.hour(),
                    -t.offset().seconds(),
                )
            }),
            (Reason::Daily, keep.daily, |t| {
                (t.year(), t.month(), t.day(), 0, 0)
            }),
            (Reason::Weekly, keep.weekly, |t| {
                let w = t.iso_week_date();
                (w.year(), w.week(), 0, 0, 0)
            }),
            (Reason::Monthly, keep.monthly, |t| {
                (t.year(), t.month(), 0, 0, 0)
            }),
            (Reason::Yearly, keep.yearly, |t| (t.year(), 0, 0, 0, 0)),
        ];
        let mut reasons: BTreeMap<String, Vec<Reason>> = BTreeMap::new();
        for (reason, count, period_of) in buckets {
            let mut newest = BTreeMap::new();
            for c in candidates {
                let local = zone.at(c.created).expect("in range");
                let entry = newest.entry(period_of(&local)).or_insert(c);
                if (c.created, &c.name) > (entry.created, &entry.name) {
                    *entry = c;
                }
            }
            for c in newest.values().rev().take(count as usize) {
                reasons.entry(c.name.clone()).or_default().push(reason);
            }
        }
        for c in candidates {
            if c.held {
                reasons
                    .entry(c.name.clone())
                    .or_default()
                    .push(Reason::Held);
            } else if keep.is_off() {
                reasons.entry(c.name.clone()).or_default();
            }
        }
        reasons
    }

    fn any_zone() -> impl Strategy<Value = Zone> {
        proptest::sample::select(vec![
            "UTC",
            "Europe/Berlin",
            "America/New_York",
            "Asia/Kolkata",
        ])
        .prop_map(zone)
    }

    fn any_keep() -> impl Strategy<Value = Keep> {
        [0u32..4, 0..4, 0..4, 0..4, 0..4].prop_map(|[hourly, daily, weekly, monthly, yearly]| {
            Keep {
                hourly,
                daily,
                weekly,
                monthly,
                yearly,
            }
        })
    }

    /// Snapshots from 2024 on, each list drawn in one of four ways: over three years (sparse
    /// periods, gaps), over two weeks at whole hours (crowded periods, many equal times, to
    /// exercise the name order), mixing both, or every quarter hour across the autumn
    /// daylight-saving changes.
    fn any_candidates() -> impl Strategy<Value = Vec<Candidate>> {
        let base = at("2024-01-01");
        let sparse = || 0..3 * 365 * SECS_PER_DAY;
        let crowded = || (0..14 * 24i64).prop_map(|hour| hour * SECS_PER_HOUR);
        // Quarter hours over the two weeks from 2024-10-27, when Berlin and then New York
        // fall back.
        let autumn = || (0..14 * 24 * 4i64).prop_map(|quarter| 300 * SECS_PER_DAY + quarter * 900);
        let offsets = prop_oneof![
            proptest::collection::vec(sparse(), 0..40),
            proptest::collection::vec(crowded(), 0..40),
            proptest::collection::vec(prop_oneof![sparse(), crowded()], 0..40),
            proptest::collection::vec(autumn(), 0..40),
        ];
        offsets
            .prop_flat_map(|offsets| {
                let held = proptest::collection::vec(proptest::bool::weighted(0.1), offsets.len());
                (Just(offsets), held)
            })
            .prop_map(move |(offsets, held)| {
                offsets
                    .into_iter()
                    .zip(held)
                    .enumerate()
                    .map(|(index, (offset, held))| Candidate {
                        name: format!("s{index:02}"),
                        created: base + offset,
                        held,
                    })
                    .collect()
            })
    }

    proptest! {
        #[test]
        fn matches_the_model(list in any_candidates(), keep in any_keep(), zone in any_zone()) {
            let selection = super::select(&list, &keep, &zone);
            let kept: BTreeMap<String, Vec<Reason>> = selection.keep.iter().cloned().collect();
            prop_assert_eq!(&kept, &model(&list, &keep, &zone));
            let mut all: Vec<&String> =
                selection.keep.iter().map(|(name, _)| name).chain(&selection.expire).collect();
            all.sort();
            all.dedup();
            prop_assert_eq!(all.len(), list.len());
        }

        #[test]
        fn is_idempotent(list in any_candidates(), keep in any_keep()) {
            let selection = select(&list, &keep);
            let kept: HashSet<&str> = selection.keep.iter().map(|(name, _)| name.as_str()).collect();
            let survivors: Vec<Candidate> =
                list.iter().filter(|c| kept.contains(c.name.as_str())).cloned().collect();
            prop_assert_eq!(select(&survivors, &keep), Selection { expire: vec![], ..selection });
        }

        /// Expiring after every new snapshot, as the daemon does, leaves what one selection
        /// over the whole history would.
        #[test]
        fn incremental_equals_batch(list in any_candidates(), keep in any_keep()) {
            let mut arrivals: Vec<i64> = list.iter().map(|c| c.created).collect();
            arrivals.sort_unstable();
            // Names grow with arrival, so each arrival is the newest in select's order.
            let history: Vec<Candidate> = arrivals
                .iter()
                .zip(&list)
                .enumerate()
                .map(|(index, (&created, c))| Candidate {
                    name: format!("s{index:02}"),
                    created,
                    held: c.held,
                })
                .collect();
            let mut live: Vec<Candidate> = Vec::new();
            for candidate in &history {
                live.push(candidate.clone());
                let expired: HashSet<String> = select(&live, &keep).expire.into_iter().collect();
                live.retain(|c| !expired.contains(&c.name));
            }
            let batch: BTreeSet<String> =
                select(&history, &keep).keep.into_iter().map(|(name, _)| name).collect();
            let incremental: BTreeSet<String> = live.into_iter().map(|c| c.name).collect();
            prop_assert_eq!(incremental, batch);
        }
    }
}
