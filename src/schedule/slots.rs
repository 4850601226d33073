//! Slots: the instants at which a policy wants an automatic snapshot, and the catch-up rule
//! that turns "now" and the last slot handled into at most one snapshot to take.
//!
//! Hourly slots are every hh:00:00 UTC; the daily slot is each day at `daily_at` minutes after
//! midnight UTC; with both, the slots are the union (an instant that is both is one slot). A
//! policy with automatic snapshots disabled has no slots at all.
//!
//! The functions are total: within a day of the ends of `i64`, where the start of the
//! instant's day or the slot itself may not be representable, the answer may be `None`.

use super::calendar::{Civil, SECS_PER_DAY, SECS_PER_HOUR, SECS_PER_MINUTE};
use super::policy::Policy;

/// When something recurs: every hh:00 UTC, and/or once a day at a minute after midnight UTC.
/// The snapshot policy and the backup schedule (`schedule::backup_policy`) both define their
/// slots with one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Schedule {
    pub hourly: bool,
    pub daily_at: Option<u32>,
}

impl Policy {
    /// The snapshot slots, if automatic snapshots are enabled.
    fn schedule(&self) -> Option<Schedule> {
        self.automatic_enabled().then_some(Schedule {
            hourly: self.hourly,
            daily_at: self.daily_at,
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
    let hourly = schedule
        .hourly
        .then(|| period_start(t, SECS_PER_HOUR))
        .flatten();
    let daily = schedule.daily_at.and_then(|minute| {
        let slot = period_start(t, SECS_PER_DAY)?.checked_add(daily_offset(minute))?;
        if slot <= t {
            Some(slot)
        } else {
            slot.checked_sub(SECS_PER_DAY)
        }
    });
    // `None` orders below every `Some`, so this is the later of the slots that exist.
    hourly.max(daily)
}

/// The earliest slot of `schedule` strictly after `t`.
pub fn next_of(schedule: &Schedule, t: i64) -> Option<i64> {
    let hourly = schedule
        .hourly
        .then(|| period_start(t, SECS_PER_HOUR)?.checked_add(SECS_PER_HOUR))
        .flatten();
    let daily = schedule.daily_at.and_then(|minute| {
        let slot = period_start(t, SECS_PER_DAY)?.checked_add(daily_offset(minute))?;
        if slot > t {
            Some(slot)
        } else {
            slot.checked_add(SECS_PER_DAY)
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

/// The name of the automatic snapshot for `slot`: `auto-2026-11-21T0300Z` (UTC, to the minute,
/// which is the resolution of slots, so distinct slots have distinct names). It sorts
/// chronologically and is a valid snapshot name.
pub fn auto_snapshot_name(slot: i64) -> String {
    let t = Civil::from_unix(slot);
    format!(
        "auto-{:04}-{:02}-{:02}T{:02}{:02}Z",
        t.year, t.month, t.day, t.hour, t.minute
    )
}

/// The start of the period of length `period` (a divisor of a day) that holds `t`.
fn period_start(t: i64, period: i64) -> Option<i64> {
    t.div_euclid(period).checked_mul(period)
}

/// Seconds from midnight to the daily slot. A validated policy has `minute < 1440`; the
/// reduction keeps the slot within its day, and so the functions above within their
/// contracts, even for a policy built by hand that skipped validation.
fn daily_offset(minute: u32) -> i64 {
    i64::from(minute) * SECS_PER_MINUTE % SECS_PER_DAY
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::catalog::check_snapshot_name;
    use crate::schedule::calendar::MINUTES_PER_DAY;
    use crate::schedule::policy::Keep;
    use proptest::prelude::*;

    fn at(text: &str) -> i64 {
        crate::schedule::calendar::parse_instant(text, 0).expect("a valid time")
    }

    fn policy(hourly: bool, daily_at: Option<u32>) -> Policy {
        Policy {
            hourly,
            daily_at,
            keep: Keep {
                daily: 7,
                ..Keep::default()
            },
            soft_delete_secs: None,
        }
    }

    /// Whether `t` is a slot, straight from the definition.
    fn is_slot(policy: &Policy, t: i64) -> bool {
        let time = Civil::from_unix(t);
        let minute_of_day = time.hour * 60 + time.minute;
        policy.automatic_enabled()
            && time.second == 0
            && ((policy.hourly && time.minute == 0) || policy.daily_at == Some(minute_of_day))
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
        assert_eq!(next_slot_after(&both, i64::MAX), None);
        assert_eq!(last_slot_at_or_before(&both, i64::MIN), None);
        for t in [i64::MIN + 2 * SECS_PER_DAY, i64::MAX - 2 * SECS_PER_DAY] {
            let last = last_slot_at_or_before(&both, t).expect("representable");
            let next = next_slot_after(&both, t).expect("representable");
            assert!(last <= t && t < next);
        }
        // A hand-built policy with an impossible daily time still keeps the contracts.
        let unvalidated = policy(false, Some(u32::MAX));
        let t = at("2026-11-21T14:25Z");
        let last = last_slot_at_or_before(&unvalidated, t).expect("enabled");
        let next = next_slot_after(&unvalidated, t).expect("enabled");
        assert!(last <= t && t < next && next - last == SECS_PER_DAY);
    }

    fn any_policy() -> impl Strategy<Value = Policy> {
        (any::<bool>(), proptest::option::of(0..MINUTES_PER_DAY)).prop_map(|(h, d)| policy(h, d))
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
            prop_assert!(next - last <= SECS_PER_DAY);
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
