//! Where the scheduler gets the time: an injectable clock, so that the daemon runs on the
//! system's and tests run on one they set and advance, without sleeping.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of the current time, in unix seconds, UTC. Callers must not assume it is
/// monotonic: the system clock can be stepped back, and the scheduler copes (see
/// [`super::slots::due`]).
pub trait Clock: Send + Sync {
    fn now(&self) -> i64;
}

/// The system's real-time clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(since) => i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
            // A clock set before 1970: negative, rounded toward the epoch.
            Err(before) => i64::try_from(before.duration().as_secs()).map_or(i64::MIN, |s| -s),
        }
    }
}

/// A clock that moves only when told to, for tests.
#[derive(Debug, Default)]
pub struct ManualClock {
    // Relaxed ordering suffices: the value publishes no other memory, and every thread still
    // sees the updates of this one atomic in a single order.
    now: AtomicI64,
}

impl ManualClock {
    pub fn new(now: i64) -> Self {
        ManualClock {
            now: AtomicI64::new(now),
        }
    }

    pub fn set(&self, now: i64) {
        self.now.store(now, Ordering::Relaxed);
    }

    /// Moves the clock by `secs`; a negative value steps it back, as an NTP correction can.
    pub fn advance(&self, secs: i64) {
        self.now.fetch_add(secs, Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.now.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(1_000);
        assert_eq!(clock.now(), 1_000);
        clock.advance(3_600);
        assert_eq!(clock.now(), 4_600);
        clock.advance(-600);
        assert_eq!(clock.now(), 4_000);
        clock.set(-5);
        assert_eq!(clock.now(), -5);
        let shared: &dyn Clock = &clock;
        assert_eq!(shared.now(), -5);
    }

    #[test]
    fn system_clock_is_unix_seconds() {
        // 2020-01-01T00:00:00Z: any machine running these tests is later than that, and a clock
        // in milliseconds or nanoseconds would be far beyond the bound on the right.
        let now = SystemClock.now();
        assert!((1_577_836_800..1_577_836_800 * 100).contains(&now), "{now}");
    }
}
