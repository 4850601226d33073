//! Slots: the instants at which a policy wants an automatic snapshot, and the catch-up rule
//! that turns "now" and the last slot handled into at most one snapshot to take.
//!
//! Slots are wall-clock times in the schedule's [`Zone`] (UTC unless the policy names one):
//! - hourly: every instant at which the zone's clock reads hh:00:00. Across a daylight-saving
//!   change this is still one slot per hour of elapsed time (the clock's hours are skipped or
//!   repeated, not the slots);
//! - daily at `HH:MM`: once per local date, at `HH:MM` on the zone's clock. On the day that
//!   time does not exist (clocks spring forward over it) the slot is at the same time after
//!   the gap (02:30 becomes 03:30 CEST); on the day it exists twice (clocks fall back) the
//!   slot is the first of them. Every local day therefore has exactly one daily slot: none is
//!   skipped, none doubled. This is jiff's "compatible" disambiguation, as RFC 5545 and
//!   Temporal define it;
//! - both: the union (an instant that is both is one slot).
//!
//! A policy with automatic snapshots disabled has no slots at all. The functions are total:
//! near the ends of the years jiff represents, where the slot may not exist, the answer is
//! `None`.

use jiff::civil::Date;

use super::calendar::{MINUTES_PER_DAY, SECS_PER_HOUR, Zone};
use super::policy::Policy;

/// When something recurs: every hh:00, and/or once a day at a minute after midnight, on the
/// clock of `zone`. The snapshot policy and the backup schedule
/// (`schedule::backup_policy`) both define their slots with one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Schedule {
    pub hourly: bool,
    pub daily_at: Option<u32>,
    pub zone: Zone,
}

impl Policy {
    /// The snapshot slots, if automatic snapshots are enabled.
    fn schedule(&self) -> Option<Schedule> {
        self.automatic_enabled().then(|| Schedule {
            hourly: self.hourly,
            daily_at: self.daily_at,
            zone: self.timezone.clone(),
        })
    }
}

/// The latest slot at or before `t`, if automatic snapshots are enabled.
pub fn last_slot_at_or_before(policy: &Policy, t: i64) -> Option<i64> {
    last_of(&policy.schedule()?, t)
}

/// The earliest slot strictly after `t`, if automatic snapshots are enabled: when the daemon
/// should next wake.
pub fn next_slot_after(policy: &Policy, t: i64) -> Option<i64> {
    next_of(&policy.schedule()?, t)
}

/// The latest slot of `schedule` at or before `t`.
pub fn last_of(schedule: &Schedule, t: i64) -> Option<i64> {
    let zone = &schedule.zone;
    let hourly = schedule.hourly.then(|| last_hourly(zone, t)).flatten();
    let daily = schedule.daily_at.and_then(|minute| {
        let date = zone.at(t)?.date();
        let slot = daily_slot(zone, date, minute)?;
        if slot <= t {
            Some(slot)
        } else {
            daily_slot(zone, date.yesterday().ok()?, minute)
        }
    });
    // `None` orders below every `Some`, so this is the later of the slots that exist.
    hourly.max(daily)
}

/// The earliest slot of `schedule` strictly after `t`.
pub fn next_of(schedule: &Schedule, t: i64) -> Option<i64> {
    let zone = &schedule.zone;
    let hourly = schedule.hourly.then(|| next_hourly(zone, t)).flatten();
    let daily = schedule.daily_at.and_then(|minute| {
        let date = zone.at(t)?.date();
        let slot = daily_slot(zone, date, minute)?;
        if slot > t {
            Some(slot)
        } else {
            daily_slot(zone, date.tomorrow().ok()?, minute)
        }
    });
    match (hourly, daily) {
        (Some(hourly), Some(daily)) => Some(hourly.min(daily)),
        (hourly, daily) => hourly.or(daily),
    }
}

/// The catch-up rule of [`due`] for any schedule: the latest slot in `(last_handled, now]`.
pub fn due_of(schedule: &Schedule, now: i64, last_handled: i64) -> Option<i64> {
    last_of(schedule, now).filter(|&slot| slot > last_handled)
}

/// The slot to take a snapshot for now: the latest slot in `(last_handled_slot, now]`, if
/// any. The daemon takes one snapshot for it and records it as the new `last_handled_slot`.
///
/// Only the latest slot counts, so a daemon that was down across many slots takes one
/// snapshot when it starts, not a burst of identical ones; a policy set at 14:25 with
/// `last_handled_slot = now` takes its first snapshot at 15:00, not at once for 14:00; and a
/// clock stepped back takes nothing until it passes the last handled slot again.
pub fn due(policy: &Policy, now: i64, last_handled_slot: i64) -> Option<i64> {
    last_slot_at_or_before(policy, now).filter(|&slot| slot > last_handled_slot)
}

/// The name of the automatic snapshot for `slot`: `auto-2026-11-21T0300Z`. Always UTC, to the
/// minute (the resolution of slots), whatever the policy's zone: so distinct slots have
/// distinct names even when a zone's clock repeats an hour, and names sort chronologically.
/// It is a valid snapshot name.
pub fn auto_snapshot_name(slot: i64) -> String {
    match jiff::Timestamp::from_second(slot) {
        Ok(ts) => ts.strftime("auto-%Y-%m-%dT%H%MZ").to_string(),
        // Slots come from jiff, so this is only a hand-made instant; still a valid name.
        Err(_) => format!("auto-{slot}"),
    }
}

/// Whether the zone's clock reads hh:00:00 at `t`.
fn on_the_hour(zone: &Zone, t: i64) -> bool {
    zone.at(t)
        .is_some_and(|local| local.minute() == 0 && local.second() == 0)
}

/// The latest instant at or before `t` at which the zone's clock reads hh:00:00.
fn last_hourly(zone: &Zone, t: i64) -> Option<i64> {
    let mut probe = t;
    // Truncating the clock to its hour keeps the offset `probe` has where that is valid
    // (jiff's preference), so in a repeated hour it stays in the right one. Only a transition
    // inside the hour by a fraction of an hour (Lord Howe's 30 minutes) can give a start that
    // is not on the hour or lies after `t`; then the hour began before it: look again just
    // before. Two steps suffice for every real zone; four leave room.
    for _ in 0..4 {
        let local = zone.at(probe)?;
        let start = local
            .with()
            .minute(0)
            .second(0)
            .subsec_nanosecond(0)
            .build()
            .ok()?
            .timestamp()
            .as_second();
        if start <= t && on_the_hour(zone, start) {
            return Some(start);
        }
        probe = start.min(probe).checked_sub(1)?;
    }
    None
}

/// The earliest instant after `t` at which the zone's clock reads hh:00:00: the last such
/// instant at or before a point a little later. Consecutive hourly slots are at most 90
/// minutes apart (a 30-minute spring-forward), so two hours ahead always holds one.
fn next_hourly(zone: &Zone, t: i64) -> Option<i64> {
    (1..=4).find_map(|halves: i64| {
        let ahead = t.checked_add(halves * SECS_PER_HOUR / 2)?;
        last_hourly(zone, ahead).filter(|&slot| slot > t)
    })
}

/// The daily slot of the local `date`: `minute` after midnight on the zone's clock, moved
/// past a gap by its length and taken at its first occurrence in a fold (compatible
/// disambiguation). A validated policy has `minute < 1440`; the reduction keeps a hand-built
/// one within its day.
fn daily_slot(zone: &Zone, date: Date, minute: u32) -> Option<i64> {
    let minute = minute % MINUTES_PER_DAY;
    // In 0..24 and 0..60, so the casts are lossless.
    let wall = date.at((minute / 60) as i8, (minute % 60) as i8, 0, 0);
    zone.time_zone()
        .to_ambiguous_timestamp(wall)
        .compatible()
        .ok()
        .map(|ts| ts.as_second())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::catalog::check_snapshot_name;
    use crate::schedule::calendar::{MINUTES_PER_DAY, SECS_PER_DAY, SECS_PER_MINUTE};
    use crate::schedule::policy::Keep;
    use proptest::prelude::*;

    fn at(text: &str) -> i64 {
        crate::schedule::calendar::parse_instant(text, 0).expect("a valid time")
    }

    fn policy(hourly: bool, daily_at: Option<u32>) -> Policy {
        zoned_policy(hourly, daily_at, "UTC")
    }

    fn zoned_policy(hourly: bool, daily_at: Option<u32>, zone: &str) -> Policy {
        Policy {
            hourly,
            daily_at,
            keep: Keep {
                daily: 7,
                ..Keep::default()
            },
            soft_delete_secs: None,
            timezone: Zone::parse(zone).expect("a known zone"),
        }
    }

    /// Whether `t` is a slot, straight from the definition: the zone's clock reads hh:00:00,
    /// or `t` is the daily slot of its local date (or, moved past a gap at midnight, of the
    /// date before).
    fn is_slot(policy: &Policy, t: i64) -> bool {
        let zone = &policy.timezone;
        let Some(local) = zone.at(t) else {
            return false;
        };
        let daily = policy.daily_at.is_some_and(|minute| {
            let date = local.date();
            daily_slot(zone, date, minute) == Some(t)
                || date
                    .yesterday()
                    .is_ok_and(|before| daily_slot(zone, before, minute) == Some(t))
        });
        policy.automatic_enabled()
            && ((policy.hourly && local.minute() == 0 && local.second() == 0) || daily)
    }

    /// Every slot in `[from, to)`, by walking `next_slot_after`.
    fn slots_between(policy: &Policy, from: i64, to: i64) -> Vec<i64> {
        let mut slots = Vec::new();
        let mut t = from - 1;
        while let Some(next) = next_slot_after(policy, t).filter(|&next| next < to) {
            slots.push(next);
            t = next;
        }
        slots
    }

    fn rfc3339_in(secs: &[i64], zone: &str) -> Vec<String> {
        let zone = Zone::parse(zone).expect("a known zone");
        secs.iter()
            .map(|&t| crate::schedule::calendar::format_rfc3339_in(t, &zone))
            .collect()
    }

    #[test]
    fn hourly_slots() {
        let hourly = policy(true, None);
        let t = at("2026-11-21T14:25:07Z");
        assert_eq!(
            last_slot_at_or_before(&hourly, t),
            Some(at("2026-11-21T14:00Z"))
        );
        assert_eq!(next_slot_after(&hourly, t), Some(at("2026-11-21T15:00Z")));
        let on_slot = at("2026-11-21T14:00Z");
        assert_eq!(last_slot_at_or_before(&hourly, on_slot), Some(on_slot));
        assert_eq!(
            next_slot_after(&hourly, on_slot),
            Some(at("2026-11-21T15:00Z"))
        );
        let new_year = at("2026-12-31T23:59:59Z");
        assert_eq!(next_slot_after(&hourly, new_year), Some(at("2027-01-01")));
    }

    #[test]
    fn daily_slots() {
        let daily = policy(false, Some(3 * 60));
        let t = at("2026-11-21T14:25:07Z");
        assert_eq!(
            last_slot_at_or_before(&daily, t),
            Some(at("2026-11-21T03:00Z"))
        );
        assert_eq!(next_slot_after(&daily, t), Some(at("2026-11-22T03:00Z")));
        let early = at("2026-11-21T02:59:59Z");
        assert_eq!(
            last_slot_at_or_before(&daily, early),
            Some(at("2026-11-20T03:00Z"))
        );
        assert_eq!(
            next_slot_after(&daily, early),
            Some(at("2026-11-21T03:00Z"))
        );
        let midnight = policy(false, Some(0));
        assert_eq!(
            last_slot_at_or_before(&midnight, at("2026-03-01")),
            Some(at("2026-03-01"))
        );
        assert_eq!(
            next_slot_after(&midnight, at("2026-02-28T12:00Z")),
            Some(at("2026-03-01"))
        );
    }

    #[test]
    fn both_schedules_are_the_union() {
        let both = policy(true, Some(3 * 60 + 30));
        let mut t = at("2026-11-21T02:10Z");
        let mut slots = Vec::new();
        for _ in 0..4 {
            t = next_slot_after(&both, t).expect("enabled");
            slots.push(t);
        }
        assert_eq!(
            slots,
            [
                at("2026-11-21T03:00Z"),
                at("2026-11-21T03:30Z"),
                at("2026-11-21T04:00Z"),
                at("2026-11-21T05:00Z")
            ]
        );
        assert_eq!(
            last_slot_at_or_before(&both, at("2026-11-21T03:45Z")),
            Some(at("2026-11-21T03:30Z"))
        );
        // A daily time on the hour coincides with an hourly slot: one slot, not two.
        let on_the_hour = policy(true, Some(3 * 60));
        assert_eq!(
            next_slot_after(&on_the_hour, at("2026-11-21T02:10Z")),
            Some(at("2026-11-21T03:00Z"))
        );
        assert_eq!(
            next_slot_after(&on_the_hour, at("2026-11-21T03:00Z")),
            Some(at("2026-11-21T04:00Z"))
        );
    }

    #[test]
    fn disabled_policies_have_no_slots() {
        let no_keep = Policy {
            hourly: true,
            daily_at: Some(0),
            ..Policy::default()
        };
        let no_schedule = policy(false, None);
        for disabled in [Policy::default(), no_keep, no_schedule] {
            assert_eq!(last_slot_at_or_before(&disabled, 1_000_000), None);
            assert_eq!(next_slot_after(&disabled, 1_000_000), None);
            assert_eq!(due(&disabled, 1_000_000, 0), None);
        }
    }

    #[test]
    fn catch_up_takes_one_snapshot_for_the_latest_slot() {
        let hourly = policy(true, None);
        // Down from Friday 10:00 to Monday 09:41: one snapshot, for 09:00.
        let last = at("2026-11-20T10:00Z");
        let now = at("2026-11-23T09:41:12Z");
        assert_eq!(due(&hourly, now, last), Some(at("2026-11-23T09:00Z")));
        // Once handled, nothing more until the next slot, which is due exactly at its time.
        let handled = at("2026-11-23T09:00Z");
        assert_eq!(due(&hourly, now, handled), None);
        assert_eq!(due(&hourly, at("2026-11-23T09:59:59Z"), handled), None);
        assert_eq!(
            due(&hourly, at("2026-11-23T10:00Z"), handled),
            Some(at("2026-11-23T10:00Z"))
        );
    }

    #[test]
    fn a_new_policy_waits_for_its_next_slot() {
        let set_at = at("2026-11-21T14:25Z");
        let hourly = policy(true, None);
        assert_eq!(due(&hourly, set_at, set_at), None);
        assert_eq!(due(&hourly, at("2026-11-21T14:59:59Z"), set_at), None);
        assert_eq!(
            due(&hourly, at("2026-11-21T15:00Z"), set_at),
            Some(at("2026-11-21T15:00Z"))
        );
    }

    #[test]
    fn a_clock_stepped_back_takes_nothing() {
        let hourly = policy(true, None);
        let handled = at("2026-11-21T15:00Z");
        assert_eq!(due(&hourly, at("2026-11-21T13:30Z"), handled), None);
        assert_eq!(due(&hourly, at("2026-11-21T15:30Z"), handled), None);
    }

    #[test]
    fn names() {
        let slot = at("2026-11-21T03:00Z");
        assert_eq!(auto_snapshot_name(slot), "auto-2026-11-21T0300Z");
        assert_eq!(
            auto_snapshot_name(at("1999-01-09T23:59Z")),
            "auto-1999-01-09T2359Z"
        );
        assert_eq!(check_snapshot_name(&auto_snapshot_name(slot)), Ok(()));
        assert!(auto_snapshot_name(slot) < auto_snapshot_name(slot + SECS_PER_HOUR));
    }

    #[test]
    fn extreme_times_do_not_overflow() {
        let both = policy(true, Some(MINUTES_PER_DAY - 1));
        for t in [i64::MIN, i64::MAX, 253_402_300_799, -377_705_116_800] {
            // Beyond or at the edge of jiff's years: an answer or None, never a panic.
            let _ = next_slot_after(&both, t);
            let _ = last_slot_at_or_before(&both, t);
        }
        assert_eq!(next_slot_after(&both, i64::MAX), None);
        assert_eq!(last_slot_at_or_before(&both, i64::MIN), None);
        // A hand-built policy with an impossible daily time still keeps the contracts.
        let unvalidated = policy(false, Some(u32::MAX));
        let t = at("2026-11-21T14:25Z");
        let last = last_slot_at_or_before(&unvalidated, t).expect("enabled");
        let next = next_slot_after(&unvalidated, t).expect("enabled");
        assert!(last <= t && t < next && next - last == SECS_PER_DAY);
    }

    /// Berlin springs forward on 2026-03-29 (02:00 CET becomes 03:00 CEST) and falls back on
    /// 2026-10-25 (03:00 CEST becomes 02:00 CET). A daily slot at 02:30 happens once on each
    /// day: after the gap on the first, at the first 02:30 on the second.
    #[test]
    fn a_daily_slot_in_berlin_across_both_changes() {
        let daily = zoned_policy(false, Some(2 * 60 + 30), "Europe/Berlin");
        let spring = slots_between(&daily, at("2026-03-27T00:00Z"), at("2026-03-31T00:00Z"));
        assert_eq!(
            rfc3339_in(&spring, "Europe/Berlin"),
            [
                "2026-03-27T02:30:00+01:00",
                "2026-03-28T02:30:00+01:00",
                "2026-03-29T03:30:00+02:00",
                "2026-03-30T02:30:00+02:00",
            ]
        );
        let autumn = slots_between(&daily, at("2026-10-23T00:00Z"), at("2026-10-27T00:00Z"));
        assert_eq!(
            rfc3339_in(&autumn, "Europe/Berlin"),
            [
                "2026-10-23T02:30:00+02:00",
                "2026-10-24T02:30:00+02:00",
                "2026-10-25T02:30:00+02:00",
                "2026-10-26T02:30:00+01:00",
            ]
        );
        // The second 02:30 of 25 October (CET) is not a slot: nothing is due for it.
        let first = at("2026-10-25T00:30Z");
        let second = at("2026-10-25T01:30Z");
        assert_eq!(last_slot_at_or_before(&daily, second), Some(first));
        assert_eq!(due(&daily, second, first), None);
        assert_eq!(
            next_slot_after(&daily, first),
            Some(at("2026-10-26T01:30Z"))
        );
        // In the spring gap, the daemon waiting at 01:59 CET wakes at 03:30 CEST.
        assert_eq!(
            next_slot_after(&daily, at("2026-03-29T00:59Z")),
            Some(at("2026-03-29T01:30Z"))
        );
        // A daily time outside the changed hours is simply 24 hours of the zone's clock.
        let at_seven = zoned_policy(false, Some(7 * 60), "Europe/Berlin");
        let days = slots_between(&at_seven, at("2026-03-28T00:00Z"), at("2026-03-30T12:00Z"));
        assert_eq!(
            rfc3339_in(&days, "Europe/Berlin"),
            [
                "2026-03-28T07:00:00+01:00",
                "2026-03-29T07:00:00+02:00",
                "2026-03-30T07:00:00+02:00",
            ]
        );
        assert_eq!(days[1] - days[0], 23 * SECS_PER_HOUR, "the short day");
    }

    /// New York springs forward on 2026-03-08 (02:00 EST becomes 03:00 EDT) and falls back on
    /// 2026-11-01 (02:00 EDT becomes 01:00 EST).
    #[test]
    fn a_daily_slot_in_new_york_across_both_changes() {
        let daily = zoned_policy(false, Some(2 * 60 + 30), "America/New_York");
        let spring = slots_between(&daily, at("2026-03-07T12:00Z"), at("2026-03-09T12:00Z"));
        assert_eq!(
            rfc3339_in(&spring, "America/New_York"),
            ["2026-03-08T03:30:00-04:00", "2026-03-09T02:30:00-04:00"]
        );
        let at_one_thirty = zoned_policy(false, Some(60 + 30), "America/New_York");
        let autumn = slots_between(
            &at_one_thirty,
            at("2026-10-31T12:00Z"),
            at("2026-11-02T12:00Z"),
        );
        assert_eq!(
            rfc3339_in(&autumn, "America/New_York"),
            ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"]
        );
    }

    /// Hourly slots follow elapsed hours: 23 on the short day, 25 on the long one, each an
    /// hour after the last, both in Berlin and New York.
    #[test]
    fn hourly_slots_across_both_changes() {
        for (zone, spring_day, autumn_day) in [
            ("Europe/Berlin", "2026-03-29", "2026-10-25"),
            ("America/New_York", "2026-03-08", "2026-11-01"),
        ] {
            let hourly = zoned_policy(true, None, zone);
            let tz = Zone::parse(zone).expect("known");
            let midnight = |day: &str| {
                let date: jiff::civil::Date = day.parse().expect("a date");
                date.to_zoned_datetime(tz.time_zone().clone())
                    .expect("valid")
                    .timestamp()
                    .as_second()
            };
            for (day, hours) in [(spring_day, 23), (autumn_day, 25)] {
                let start = midnight(day);
                let slots = slots_between(&hourly, start, start + hours * SECS_PER_HOUR);
                assert_eq!(slots.len(), hours as usize, "{zone} {day}");
                assert!(
                    slots
                        .windows(2)
                        .all(|pair| pair[1] - pair[0] == SECS_PER_HOUR),
                    "{zone} {day}"
                );
                assert_eq!(
                    next_slot_after(&hourly, slots[slots.len() - 1]),
                    Some(start + hours * SECS_PER_HOUR)
                );
            }
        }
        // In a zone half an hour off UTC, hh:00 on its clock is hh:30 UTC.
        let kolkata = zoned_policy(true, None, "Asia/Kolkata");
        assert_eq!(
            next_slot_after(&kolkata, at("2026-11-21T14:25Z")),
            Some(at("2026-11-21T14:30Z"))
        );
        // Lord Howe moves its clock by 30 minutes: 02:00 becomes 02:30 on 2026-10-04 and 02:00
        // comes back to 01:30 on 2026-04-05. Slots stay on its clock's whole hours.
        let lord_howe = zoned_policy(true, None, "Australia/Lord_Howe");
        let spring = slots_between(&lord_howe, at("2026-10-03T13:00Z"), at("2026-10-03T17:00Z"));
        assert_eq!(
            rfc3339_in(&spring, "Australia/Lord_Howe"),
            [
                "2026-10-04T00:00:00+10:30",
                "2026-10-04T01:00:00+10:30",
                "2026-10-04T03:00:00+11:00",
            ]
        );
        for slot in spring {
            assert!(is_slot(&lord_howe, slot));
        }
    }

    /// Policies in UTC and in zones with daylight saving, including one that moves its clock
    /// by half an hour and one half an hour off UTC.
    fn any_policy() -> impl Strategy<Value = Policy> {
        let zones = proptest::sample::select(vec![
            "UTC",
            "Europe/Berlin",
            "America/New_York",
            "Australia/Lord_Howe",
            "Asia/Kolkata",
        ]);
        (
            any::<bool>(),
            proptest::option::of(0..MINUTES_PER_DAY),
            zones,
        )
            .prop_map(|(h, d, zone)| zoned_policy(h, d, zone))
    }

    proptest! {
        /// The slot functions agree with the definition: `last <= t < next`, both are slots,
        /// and no minute strictly between them is one (slots fall on whole minutes).
        #[test]
        fn slots_match_the_definition(
            policy in any_policy(),
            t in -10_000_000_000i64..10_000_000_000,
        ) {
            let last = last_slot_at_or_before(&policy, t);
            let next = next_slot_after(&policy, t);
            if !policy.automatic_enabled() {
                prop_assert_eq!((last, next), (None, None));
                return Ok(());
            }
            let (last, next) = (last.expect("enabled"), next.expect("enabled"));
            prop_assert!(last <= t && t < next);
            prop_assert!(is_slot(&policy, last) && is_slot(&policy, next));
            prop_assert!(next - last <= SECS_PER_DAY + SECS_PER_HOUR, "a long day");
            let mut minute = last + SECS_PER_MINUTE;
            while minute < next {
                prop_assert!(!is_slot(&policy, minute), "{minute}");
                minute += SECS_PER_MINUTE;
            }
        }

        #[test]
        fn due_is_the_latest_unhandled_slot(
            policy in any_policy(),
            now in -10_000_000_000i64..10_000_000_000,
            behind in 0i64..10 * SECS_PER_DAY,
        ) {
            let handled = now - behind;
            match due(&policy, now, handled) {
                Some(slot) => {
                    prop_assert!(handled < slot && slot <= now && is_slot(&policy, slot));
                    prop_assert_eq!(next_slot_after(&policy, slot).map(|n| n > now), Some(true));
                }
                None => prop_assert!(
                    next_slot_after(&policy, handled).is_none_or(|next| next > now)
                ),
            }
        }
    }
}
