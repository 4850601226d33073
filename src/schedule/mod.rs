//! Automatic snapshots: when to take them and which to expire. Pure logic, no FUSE and no
//! I/O: the daemon supplies the time (through a [`Clock`]), the policy and the catalog, and
//! acts on the answers.
//!
//! # Scheduling
//!
//! All instants are unix seconds (UTC). A [`Policy`] names a time zone (`timezone`, UTC unless
//! set); its slots and retention buckets follow that zone's clock and calendar, daylight saving
//! included, and the machine's own zone never matters. A policy defines *slots*, the instants
//! at which an automatic snapshot is due:
//! - `hourly`: every hh:00:00 on the zone's clock (one per elapsed hour, also across a
//!   daylight-saving change);
//! - `daily_at = Some(m)`: every local day at `m` minutes after midnight, exactly once even
//!   when that time is skipped or repeated that day (see [`slots`]);
//! - both: the union of the two, one slot per instant (a daily time on the hour adds nothing
//!   to an hourly schedule).
//!
//! A policy has slots only when automatic snapshots are enabled: a schedule is set *and* at
//! least one keep count is positive. Retention 0 therefore disables automatic snapshots
//! rather than taking snapshots that nothing would expire.
//!
//! The daemon persists `last_handled_slot`. It wakes on start and then at each slot
//! ([`slots::next_slot_after`] the current time); each time, [`slots::due`] gives the latest
//! slot in `(last_handled_slot, now]`, if any, and the daemon takes one snapshot, named
//! [`slots::auto_snapshot_name`] of that slot, records the slot as handled, and applies
//! retention. Hence:
//! - a daemon that was down across many slots takes one snapshot on start, not one per missed
//!   slot (they would all capture the same state);
//! - a new policy is stored with `last_handled_slot = now`, so a policy set at 14:25 takes its
//!   first snapshot at 15:00, not at once for 14:00;
//! - a clock stepped back takes nothing until it passes the last handled slot again.
//!
//! The name of an automatic snapshot carries its slot; its catalog `created` time is when it
//! was actually taken, which is what retention looks at.
//!
//! # Retention
//!
//! Retention decides among *automatic* snapshots only. Manual snapshots never expire, are not
//! candidates, and do not fill buckets. The rules are those of `restic forget --keep-*`:
//!
//! 1. Order the candidates newest first by `created`; equal times are ordered by name,
//!    descending, so the outcome does not depend on the order of the input.
//! 2. There are five buckets, each counting one kind of calendar period of the policy's zone:
//!    `hourly` (a clock hour; the hour a fall-back repeats counts twice), `daily` (a calendar
//!    day), `weekly` (an ISO 8601 week, Monday to Sunday),
//!    `monthly` (a calendar month) and `yearly` (a calendar year). For a bucket with count
//!    `n > 0`: among the periods of its kind that contain at least one candidate, take the `n`
//!    most recent, and keep the newest candidate (first in the order of rule 1) of each.
//!    Periods without candidates are skipped, not counted: `daily = 7` keeps the newest
//!    snapshot of each of the 7 most recent days *that have snapshots*, which after downtime
//!    can reach back more than 7 calendar days.
//! 3. A held candidate is always kept (reason `held`). It also takes part in rule 2 like any
//!    other candidate, so it can be the snapshot a bucket keeps.
//! 4. A candidate kept by any rule is kept, with every reason that applies; all others expire.
//! 5. When every count is 0, retention is off and nothing expires (and, by the rule above, no
//!    automatic snapshots are taken).
//!
//! Retention is idempotent: applied to what it kept, it expires nothing. Applied after every
//! new snapshot, as the daemon does, it leaves the same set as one application to the whole
//! history, because each new snapshot is the newest and the newest candidate of every
//! period that still counts is never expired.
//!
//! # Modules
//!
//! - [`backup_policy`]: the backup schedule (vaults, slots, key file) the daemon follows.
//! - [`calendar`]: the time [`calendar::Zone`] of a policy, and parsing/formatting of times,
//!   durations and times of day (the calendar itself is `jiff`'s).
//! - [`clock`]: the injectable clock.
//! - [`policy`]: the stored policy and its changes.
//! - [`slots`]: scheduled instants and the catch-up rule.
//! - [`retention`]: the keep/expire plan.

pub mod backup_policy;
pub mod calendar;
pub mod clock;
pub mod policy;
pub mod retention;
pub mod slots;

pub use clock::{Clock, ManualClock, SystemClock};
pub use policy::{Keep, Policy, PolicyChange};
pub use retention::{Candidate, Reason, Selection, select};
