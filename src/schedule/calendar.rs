//! Time zones, and the text forms of times and durations that users type and read. The
//! calendar itself (civil dates, ISO weeks, the IANA time zone database, daylight saving) is
//! `jiff`'s: nothing here counts days or leap years by hand.
//!
//! Instants are unix seconds (`i64`, UTC) everywhere in snapfs. A policy may name a [`Zone`]
//! in which its slots and retention buckets are computed and its times are shown; the default
//! is UTC, which is what every policy written before zones existed means.
//!
//! `jiff` represents about the years -9999 to 9999. An instant outside them (only a damaged or
//! hand-made record can hold one) is never a slot, falls in the first or last bucket, and is
//! written as plain unix seconds; parsing refuses it.
//!
//! Every function here is total: text that cannot be parsed is a [`ParseError`] that says why
//! and what is expected, never a panic.

use std::fmt;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ZonedDateTime};

pub const SECS_PER_MINUTE: i64 = 60;
pub const SECS_PER_HOUR: i64 = 3_600;
pub const SECS_PER_DAY: i64 = 86_400;
pub const MINUTES_PER_DAY: u32 = 24 * 60;

/// An IANA time zone (`Europe/Berlin`, `America/New_York`, `UTC`) in which a policy's slots,
/// retention buckets and displayed times are computed, resolved against the time zone
/// database (the system's, else the copy built into snapfs: see `docs/ARCHITECTURE.md`).
///
/// Invariant: `name` is the database's own spelling of the zone that `tz` is, so two zones are
/// equal exactly when their names are, and the name is what policies store. Only names are
/// accepted: a fixed offset (`+01:00`) or a POSIX TZ string would not follow the zone's
/// daylight-saving rules, which is the point of naming a zone.
#[derive(Clone)]
pub struct Zone {
    name: String,
    tz: TimeZone,
}

impl Zone {
    /// UTC: the zone of every policy that names none.
    pub fn utc() -> Zone {
        Zone {
            name: "UTC".to_owned(),
            tz: TimeZone::UTC,
        }
    }

    /// The zone named `name` in the IANA database (case does not matter), or an error that
    /// says it is not one.
    pub fn parse(name: &str) -> Result<Zone, ParseError> {
        let trimmed = name.trim();
        let error = |problem: &str| ParseError::Zone {
            input: name.to_owned(),
            problem: problem.to_owned(),
        };
        if trimmed.is_empty() {
            return Err(error("it is empty"));
        }
        // `TimeZone::get` looks names up in the database only: offsets and POSIX strings are
        // not names there, so they are refused here too.
        let tz = TimeZone::get(trimmed)
            .map_err(|_| error("it is not a time zone of the IANA time zone database"))?;
        let canonical = tz.iana_name().unwrap_or(trimmed).to_owned();
        if canonical == "UTC" {
            return Ok(Zone::utc());
        }
        Ok(Zone {
            name: canonical,
            tz,
        })
    }

    /// The zone's IANA name, as stored in policies and shown to people.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn is_utc(&self) -> bool {
        self.name == "UTC"
    }

    pub(crate) fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    /// The instant `secs` in this zone; `None` outside the years jiff represents.
    pub(crate) fn at(&self, secs: i64) -> Option<ZonedDateTime> {
        Timestamp::from_second(secs)
            .ok()
            .map(|ts| ts.to_zoned_datetime(self.tz.clone()))
    }

    /// Like [`Zone::at`], but an instant outside jiff's years is moved to the nearest one it
    /// represents: for bucketing, where every instant must land somewhere.
    pub(crate) fn at_clamped(&self, secs: i64) -> ZonedDateTime {
        let ts = Timestamp::from_second(secs).unwrap_or(if secs < 0 {
            Timestamp::MIN
        } else {
            Timestamp::MAX
        });
        ts.to_zoned_datetime(self.tz.clone())
    }
}

impl Default for Zone {
    fn default() -> Zone {
        Zone::utc()
    }
}

impl PartialEq for Zone {
    fn eq(&self, other: &Zone) -> bool {
        self.name == other.name
    }
}

impl Eq for Zone {}

impl fmt::Debug for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Zone({})", self.name)
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// In reports, a zone is its name.
impl serde::Serialize for Zone {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.name)
    }
}

impl<'de> serde::Deserialize<'de> for Zone {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Zone, D::Error> {
        let name = String::deserialize(deserializer)?;
        Zone::parse(&name).map_err(serde::de::Error::custom)
    }
}

/// RFC 3339 in UTC, to the second: `2026-11-21T03:00:00Z`.
pub fn format_rfc3339(secs: i64) -> String {
    match Timestamp::from_second(secs) {
        Ok(ts) => ts.to_string(),
        Err(_) => out_of_range(secs),
    }
}

/// RFC 3339 with the offset `zone` has at that instant: `2026-03-29T03:30:00+02:00` in
/// Europe/Berlin. In UTC this is [`format_rfc3339`] (`Z`, as before zones existed), so output
/// for policies without a zone is unchanged.
pub fn format_rfc3339_in(secs: i64, zone: &Zone) -> String {
    if zone.is_utc() {
        return format_rfc3339(secs);
    }
    match Timestamp::from_second(secs) {
        Ok(ts) => ts
            .display_with_offset(zone.time_zone().to_offset(ts))
            .to_string(),
        Err(_) => out_of_range(secs),
    }
}

fn out_of_range(secs: i64) -> String {
    format!("unix time {secs}s (outside about the years -9999 to 9999)")
}

/// Why a time, duration, time of day or time zone typed by a user was refused. The message
/// names the input, the problem, and the forms that are accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error(
        "{input:?} is not a duration: {problem}; write a whole number and a unit: 90s, 15m, 12h, 14d or 2w"
    )]
    Duration { input: String, problem: String },
    #[error(
        "{input:?} is not a time: {problem}; write 2026-12-31T00:00:00Z, 2026-12-31T01:00:00+01:00, 2026-12-31T00:00Z or 2026-12-31 (midnight UTC), or a duration from now such as 30d"
    )]
    Instant { input: String, problem: String },
    #[error(
        "{input:?} is not a time of day: {problem}; write HH:MM (in the policy's time zone), from 00:00 to 23:59"
    )]
    TimeOfDay { input: String, problem: String },
    #[error(
        "{input:?} is not a time zone: {problem}; write an IANA name such as UTC, Europe/Berlin or America/New_York"
    )]
    Zone { input: String, problem: String },
}

/// Parses a duration: a whole number and one unit, `s`econds, `m`inutes, `h`ours, `d`ays or
/// `w`eeks (`90s`, `15m`, `12h`, `14d`, `2w`). A bare number is refused rather than read as
/// seconds, because `snapfs policy set --soft-delete 14` meaning 14 seconds would be a trap.
pub fn parse_duration(text: &str) -> Result<u64, ParseError> {
    duration_secs(text.trim()).map_err(|problem| ParseError::Duration {
        input: text.to_owned(),
        problem,
    })
}

fn duration_secs(text: &str) -> Result<u64, String> {
    if text.is_empty() {
        return Err("it is empty".into());
    }
    let unit_start = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(unit_start);
    if number.is_empty() {
        return Err("it does not start with a whole number".into());
    }
    let unit_secs: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        "" => return Err(format!("it has no unit (for seconds, write {number}s)")),
        other => return Err(format!("{other:?} is not a unit")),
    };
    // `number` is all ASCII digits, so the only way to fail is to overflow.
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit_secs))
        .ok_or_else(|| "it is too long".into())
}

/// The shortest exact form of a duration, in the largest of days, hours, minutes and seconds
/// that divides it: `14d`, `36h`, `90s`. Weeks are accepted by [`parse_duration`] but never
/// written, since `14d` reads more directly than `2w`. The result parses back to `secs`.
pub fn format_duration(secs: u64) -> String {
    for (unit, unit_secs) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if secs != 0 && secs.is_multiple_of(unit_secs) {
            return format!("{}{unit}", secs / unit_secs);
        }
    }
    format!("{secs}s")
}

/// Parses the instant a user means, for holds and expiry dates: an RFC 3339 time with `Z` or
/// an offset (`2026-12-31T00:00:00Z`, `2026-12-31T01:00:00+01:00`, seconds optional), a date
/// alone (`2026-12-31`, midnight UTC), or a duration after `now` (`30d`, see
/// [`parse_duration`]). A time without `Z` or an offset is refused rather than guessed.
pub fn parse_instant(text: &str, now: i64) -> Result<i64, ParseError> {
    let trimmed = text.trim();
    let error = |problem: String| ParseError::Instant {
        input: text.to_owned(),
        problem,
    };
    let bytes = trimmed.as_bytes();
    let looks_like_date = bytes.len() > 4
        && bytes.iter().take(4).all(u8::is_ascii_digit)
        && bytes.get(4) == Some(&b'-');
    if looks_like_date {
        return absolute_instant(trimmed).map_err(error);
    }
    match duration_secs(trimmed) {
        Ok(secs) => i64::try_from(secs)
            .ok()
            .and_then(|secs| now.checked_add(secs))
            .filter(|&at| Timestamp::from_second(at).is_ok())
            .ok_or_else(|| error("it is too far in the future".into())),
        Err(problem) if trimmed.starts_with(|c: char| c.is_ascii_digit()) => Err(error(problem)),
        Err(_) => Err(error("it is neither a date nor a duration".into())),
    }
}

/// A date, or a date and time with its offset, as jiff parses RFC 3339.
fn absolute_instant(text: &str) -> Result<i64, String> {
    let Some(time) = text.get(10..).filter(|rest| !rest.is_empty()) else {
        // A date alone: midnight UTC.
        let date: Date = text
            .parse()
            .map_err(|err: jiff::Error| format!("it is not a date: {err}"))?;
        return date
            .to_zoned_datetime(TimeZone::UTC)
            .map(|midnight| midnight.timestamp().as_second())
            .map_err(|err| format!("it is out of range: {err}"));
    };
    // jiff would name the missing piece less plainly.
    if !time.contains(['Z', 'z', '+', '-']) {
        return Err(
            "a time must end in Z (UTC) or an offset such as +01:00: without one it is ambiguous"
                .into(),
        );
    }
    let ts: Timestamp = text
        .parse()
        .map_err(|err: jiff::Error| format!("it is not an RFC 3339 time: {err}"))?;
    if ts.subsec_nanosecond() != 0 {
        return Err("fractions of a second are not accepted".into());
    }
    Ok(ts.as_second())
}

/// Parses a daily time `HH:MM` (a wall-clock time in the policy's zone), `00:00` to `23:59`, into minutes after midnight.
pub fn parse_time_of_day(text: &str) -> Result<u32, ParseError> {
    hour_minute(text.trim())
        .map(|(hour, minute)| hour * 60 + minute)
        .map_err(|problem| ParseError::TimeOfDay {
            input: text.to_owned(),
            problem,
        })
}

/// `HH:MM` for a minute of the day (`0..1440`), as [`parse_time_of_day`] reads it.
pub fn format_time_of_day(minute_of_day: u32) -> String {
    format!("{:02}:{:02}", minute_of_day / 60, minute_of_day % 60)
}

fn hour_minute(text: &str) -> Result<(u32, u32), String> {
    const FORM: &str = "the time must be HH:MM, two digits each";
    if text.len() != 5 || text.as_bytes()[2] != b':' {
        return Err(FORM.into());
    }
    let hour = number_field(text, 0..2, FORM)?;
    let minute = number_field(text, 3..5, FORM)?;
    if hour > 23 {
        return Err(format!("hour {hour} does not exist (00 to 23)"));
    }
    if minute > 59 {
        return Err(format!("minute {minute} does not exist (00 to 59)"));
    }
    Ok((hour, minute))
}

/// The decimal number in `text[range]`, which must be ASCII digits only (no sign, no space).
fn number_field(text: &str, range: std::ops::Range<usize>, problem: &str) -> Result<u32, String> {
    match text.get(range) {
        Some(digits) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
            digits.parse().map_err(|_| problem.to_owned())
        }
        _ => Err(problem.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Unix seconds of a UTC date and time, through jiff.
    fn at(year: i16, month: i8, day: i8, hour: i8, minute: i8, second: i8) -> i64 {
        jiff::civil::datetime(year, month, day, hour, minute, second, 0)
            .to_zoned_datetime(TimeZone::UTC)
            .expect("a valid date")
            .timestamp()
            .as_second()
    }

    #[test]
    fn known_instants() {
        assert_eq!(at(1970, 1, 1, 0, 0, 0), 0);
        assert_eq!(at(2000, 2, 29, 0, 0, 0), 951_782_400);
        assert_eq!(at(2026, 11, 21, 23, 28, 34), 1_795_303_714);
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(-1), "1969-12-31T23:59:59Z");
        assert_eq!(format_rfc3339(1_795_303_714), "2026-11-21T23:28:34Z");
        assert_eq!(format_rfc3339(253_402_128_000), "9999-12-30T00:00:00Z");
        assert_eq!(format_rfc3339(-62_167_219_200), "0000-01-01T00:00:00Z");
        // Beyond jiff's years: still a string, never a panic.
        assert_eq!(
            format_rfc3339(i64::MAX),
            "unix time 9223372036854775807s (outside about the years -9999 to 9999)"
        );
        assert!(format_rfc3339(i64::MIN).starts_with("unix time -"));
    }

    #[test]
    fn zones_are_iana_names() {
        let berlin = Zone::parse("Europe/Berlin").expect("known");
        assert_eq!(berlin.name(), "Europe/Berlin");
        assert!(!berlin.is_utc());
        assert_eq!(Zone::parse(" europe/berlin ").expect("any case"), berlin);
        assert_eq!(Zone::parse("UTC").expect("utc"), Zone::utc());
        assert!(Zone::utc().is_utc() && Zone::default().is_utc());
        for bad in [
            "Europe/Atlantis",
            "",
            "+01:00",
            "CET-1CEST,M3.5.0,M10.5.0/3",
            "../etc",
        ] {
            let err = Zone::parse(bad).expect_err(bad);
            assert!(matches!(err, ParseError::Zone { .. }), "{bad}: {err}");
        }
        assert_eq!(
            Zone::parse("Europe/Atlantis")
                .expect_err("unknown")
                .to_string(),
            "\"Europe/Atlantis\" is not a time zone: it is not a time zone of the IANA time \
             zone database; write an IANA name such as UTC, Europe/Berlin or America/New_York"
        );
        assert_eq!(
            serde_json::to_string(&berlin).expect("serialises"),
            "\"Europe/Berlin\""
        );
        assert_eq!(
            serde_json::from_str::<Zone>("\"America/New_York\"").expect("parses"),
            Zone::parse("America/New_York").expect("known")
        );
        assert!(serde_json::from_str::<Zone>("\"Mars/Olympus\"").is_err());
    }

    #[test]
    fn times_in_a_zone_carry_its_offset() {
        let berlin = Zone::parse("Europe/Berlin").expect("known");
        let new_york = Zone::parse("America/New_York").expect("known");
        let winter = at(2026, 1, 15, 12, 0, 0);
        let summer = at(2026, 7, 15, 12, 0, 0);
        assert_eq!(
            format_rfc3339_in(winter, &berlin),
            "2026-01-15T13:00:00+01:00"
        );
        assert_eq!(
            format_rfc3339_in(summer, &berlin),
            "2026-07-15T14:00:00+02:00"
        );
        assert_eq!(
            format_rfc3339_in(winter, &new_york),
            "2026-01-15T07:00:00-05:00"
        );
        assert_eq!(
            format_rfc3339_in(summer, &new_york),
            "2026-07-15T08:00:00-04:00"
        );
        assert_eq!(
            format_rfc3339_in(summer, &Zone::utc()),
            "2026-07-15T12:00:00Z"
        );
        // What is written with an offset reads back as the same instant.
        for zone in [&berlin, &new_york] {
            assert_eq!(
                parse_instant(&format_rfc3339_in(summer, zone), 0),
                Ok(summer)
            );
        }
    }

    #[test]
    fn durations() {
        for (text, secs) in [
            ("90s", 90),
            ("15m", 900),
            ("12h", 43_200),
            ("14d", 1_209_600),
            ("2w", 1_209_600),
            (" 0s ", 0),
        ] {
            assert_eq!(parse_duration(text), Ok(secs), "{text}");
        }
        for (secs, text) in [
            (1_209_600, "14d"),
            (129_600, "36h"),
            (90, "90s"),
            (900, "15m"),
            (0, "0s"),
            (86_401, "86401s"),
        ] {
            assert_eq!(format_duration(secs), text);
        }
        for (text, problem) in [
            ("14", "it has no unit (for seconds, write 14s)"),
            ("", "it is empty"),
            ("d", "it does not start with a whole number"),
            ("-5d", "it does not start with a whole number"),
            ("5y", "\"y\" is not a unit"),
            ("1d12h", "\"d12h\" is not a unit"),
            ("5 d", "\" d\" is not a unit"),
            ("99999999999999999999s", "it is too long"),
            ("30500000000000000w", "it is too long"),
        ] {
            assert_eq!(
                parse_duration(text),
                Err(ParseError::Duration {
                    input: text.into(),
                    problem: problem.into()
                })
            );
        }
        assert_eq!(
            parse_duration("14").expect_err("no unit").to_string(),
            "\"14\" is not a duration: it has no unit (for seconds, write 14s); \
             write a whole number and a unit: 90s, 15m, 12h, 14d or 2w"
        );
    }

    #[test]
    fn instants() {
        let now = at(2026, 11, 21, 14, 25, 7);
        for (text, expected) in [
            ("2026-12-31T00:00:00Z", at(2026, 12, 31, 0, 0, 0)),
            ("2026-12-31T13:45Z", at(2026, 12, 31, 13, 45, 0)),
            ("2026-12-31", at(2026, 12, 31, 0, 0, 0)),
            ("2024-02-29T23:59:59Z", at(2024, 2, 29, 23, 59, 59)),
            ("2026-12-31T01:00:00+01:00", at(2026, 12, 31, 0, 0, 0)),
            ("2026-06-30T20:00:00-04:00", at(2026, 7, 1, 0, 0, 0)),
            ("0000-01-01", -62_167_219_200),
            ("30d", now + 30 * SECS_PER_DAY),
            ("90s", now + 90),
        ] {
            assert_eq!(parse_instant(text, now), Ok(expected), "{text}");
        }
        let ambiguous =
            "a time must end in Z (UTC) or an offset such as +01:00: without one it is ambiguous";
        for (text, problem) in [
            ("2026-12-31T00:00", ambiguous),
            ("2026-12-31T23:59:59", ambiguous),
            (
                "2026-12-31T00:00:00.5Z",
                "fractions of a second are not accepted",
            ),
            ("tomorrow", "it is neither a date nor a duration"),
            ("", "it is neither a date nor a duration"),
            ("30", "it has no unit (for seconds, write 30s)"),
            ("9223372036854775807s", "it is too far in the future"),
            ("10000000000000000000s", "it is too far in the future"),
            ("500000w", "it is too far in the future"),
        ] {
            assert_eq!(
                parse_instant(text, now),
                Err(ParseError::Instant {
                    input: text.into(),
                    problem: problem.into()
                }),
                "{text}"
            );
        }
        // Impossible dates and times are refused by jiff; the message names the input and
        // the forms accepted.
        for text in [
            "2026-13-01",
            "2025-02-29",
            "2026-04-31",
            "2026-12-00",
            "2026-12-31T24:00Z",
            "2026-12-31T23:60Z",
            "2026-12-31T23:59:5Z",
            "2026-12-31T3:00Z",
            "2026-1-31",
            "2026-12/31",
            "2026-+1-31",
            "2026-12-31é",
            "2026-12-3é",
            "2026-12-31T00:00+99:00",
        ] {
            let err = parse_instant(text, now).expect_err(text);
            assert!(matches!(err, ParseError::Instant { .. }), "{text}");
            let message = err.to_string();
            assert!(
                message.starts_with(&format!("{text:?} is not a time: "))
                    && message.ends_with("or a duration from now such as 30d"),
                "{message}"
            );
        }
    }

    #[test]
    fn times_of_day() {
        assert_eq!(parse_time_of_day("03:00"), Ok(180));
        assert_eq!(parse_time_of_day("00:00"), Ok(0));
        assert_eq!(parse_time_of_day("23:59"), Ok(1_439));
        assert_eq!(format_time_of_day(180), "03:00");
        assert_eq!(format_time_of_day(1_439), "23:59");
        for (text, problem) in [
            ("24:00", "hour 24 does not exist (00 to 23)"),
            ("12:60", "minute 60 does not exist (00 to 59)"),
            ("3:00", "the time must be HH:MM, two digits each"),
            ("03:00:00", "the time must be HH:MM, two digits each"),
            ("0300", "the time must be HH:MM, two digits each"),
            ("+3:00", "the time must be HH:MM, two digits each"),
            ("ab:cd", "the time must be HH:MM, two digits each"),
            ("", "the time must be HH:MM, two digits each"),
        ] {
            assert_eq!(
                parse_time_of_day(text),
                Err(ParseError::TimeOfDay {
                    input: text.into(),
                    problem: problem.into()
                })
            );
        }
    }

    proptest! {
        #[test]
        fn rfc3339_round_trips(secs in -62_167_219_200i64..253_402_128_000) {
            prop_assert_eq!(parse_instant(&format_rfc3339(secs), 0), Ok(secs));
        }

        /// Times in a zone round-trip through their offset form (from 1970: earlier, some
        /// zones kept local mean time, whose offsets have seconds that RFC 3339 cannot write).
        #[test]
        fn zoned_rfc3339_round_trips(secs in 0i64..4_102_444_800) {
            for name in ["Europe/Berlin", "America/New_York", "Asia/Kolkata"] {
                let zone = Zone::parse(name).expect("known");
                prop_assert_eq!(parse_instant(&format_rfc3339_in(secs, &zone), 0), Ok(secs));
            }
        }

        #[test]
        fn durations_round_trip(secs: u64) {
            prop_assert_eq!(parse_duration(&format_duration(secs)), Ok(secs));
        }

        #[test]
        fn parsing_never_panics(text in "\\PC{0,24}", now: i64, secs: i64) {
            let _ = parse_instant(&text, now);
            let _ = parse_duration(&text);
            let _ = parse_time_of_day(&text);
            let _ = Zone::parse(&text);
            let _ = format_rfc3339(secs);
            let _ = format_rfc3339_in(secs, &Zone::parse("America/New_York").expect("known"));
        }
    }
}
