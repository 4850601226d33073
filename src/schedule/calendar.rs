//! UTC calendar arithmetic on unix seconds, and the text forms of times and durations that
//! users type and read.
//!
//! The calendar is the proleptic Gregorian one, without leap seconds (unix time has none) and
//! without time zones: every slot and every retention bucket in snapfs is UTC, so neither the
//! machine's zone nor a daylight-saving change can move a snapshot or change which one is kept.
//!
//! Every function here is total: any `i64` of seconds converts to a date (years far outside
//! 0000–9999 included), and text that cannot be parsed is a [`ParseError`] that says why and
//! what is expected, never a panic.

pub const SECS_PER_MINUTE: i64 = 60;
pub const SECS_PER_HOUR: i64 = 3_600;
pub const SECS_PER_DAY: i64 = 86_400;
pub const SECS_PER_WEEK: i64 = 7 * SECS_PER_DAY;
pub const MINUTES_PER_DAY: u32 = 24 * 60;

/// Days from 0000-03-01 to 1970-01-01. The conversions count from a March 1st, so that the
/// leap day is the last day of its year and month lengths follow a fixed pattern.
const EPOCH_FROM_MARCH_0000: i64 = 719_468;
/// Days in 400 Gregorian years: the calendar repeats exactly after each such era.
const DAYS_PER_ERA: i64 = 146_097;

/// A UTC date and time of day, to the second. Fields are ordered from most to least
/// significant, so the derived ordering is chronological.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Civil {
    pub year: i64,
    /// 1 = January … 12 = December.
    pub month: u32,
    /// 1 to the length of the month.
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    /// 0 to 59: there are no leap seconds in unix time.
    pub second: u32,
}

impl Civil {
    /// The date and time `secs` seconds after 1970-01-01T00:00:00Z (before it if negative).
    pub fn from_unix(secs: i64) -> Civil {
        let (year, month, day) = civil_from_days(secs.div_euclid(SECS_PER_DAY));
        // In 0..86_400, so the casts below are lossless.
        let second_of_day = secs.rem_euclid(SECS_PER_DAY) as u32;
        Civil {
            year,
            month,
            day,
            hour: second_of_day / 3_600,
            minute: second_of_day % 3_600 / 60,
            second: second_of_day % 60,
        }
    }

    /// The unix seconds of this date and time; `None` if a field is out of range (month 13,
    /// February 30th, hour 24, ...) or the instant does not fit in an `i64`.
    pub fn to_unix(&self) -> Option<i64> {
        let valid = (1..=12).contains(&self.month)
            && (1..=days_in_month(self.year, self.month)).contains(&self.day)
            && self.hour < 24
            && self.minute < 60
            && self.second < 60;
        if !valid {
            return None;
        }
        // i128 throughout: a year near i64::MAX has a day count far beyond i64.
        let secs = days_from_civil(self.year, self.month, self.day) * i128::from(SECS_PER_DAY)
            + i128::from(self.hour * 3_600 + self.minute * 60 + self.second);
        i64::try_from(secs).ok()
    }
}

/// Gregorian leap years: every fourth year, except centuries not divisible by 400.
pub fn is_leap_year(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

/// The number of days in `month` (1–12) of `year`; 0 for a month that does not exist.
pub fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Year, month and day of the day `days` after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`): split the day count into 400-year eras, then count years from March 1st.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // |days| <= i64::MAX / 86_400, so none of this overflows.
    let from_march_0000 = days + EPOCH_FROM_MARCH_0000;
    let era = from_march_0000.div_euclid(DAYS_PER_ERA);
    let day_of_era = from_march_0000.rem_euclid(DAYS_PER_ERA); // 0..=146_096
    // Remove the leap days of the era's 4-, 100- and 400-year cycles before dividing by 365.
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    // Months from March: their lengths 31 30 31 30 31 31 30 31 30 31 31 (29|28) repeat a
    // five-month pattern of 153 days, which this linear formula inverts.
    let month_from_march = (5 * day_of_year + 2) / 153; // 0..=11
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    // January and February belong to the year that began the previous March.
    let year = era * 400 + year_of_era + i64::from(month <= 2);
    // month is in 1..=12 and day in 1..=31.
    (year, month as u32, day as u32)
}

/// Days from 1970-01-01 to `year-month-day` (Hinnant's `days_from_civil`, the inverse of
/// [`civil_from_days`]). `month` must be 1–12; `day` past the month's end counts on.
fn days_from_civil(year: i64, month: u32, day: u32) -> i128 {
    let march_year = i128::from(year) - i128::from(month <= 2);
    let era = march_year.div_euclid(400);
    let year_of_era = march_year.rem_euclid(400);
    let month_from_march = i128::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i128::from(day) - 1;
    let day_of_era = 365 * year_of_era + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * i128::from(DAYS_PER_ERA) + day_of_era - i128::from(EPOCH_FROM_MARCH_0000)
}

/// The ISO 8601 day of the week of the instant `secs`: 1 = Monday … 7 = Sunday.
pub fn iso_weekday(secs: i64) -> u32 {
    weekday_of_day(secs.div_euclid(SECS_PER_DAY))
}

fn weekday_of_day(days: i64) -> u32 {
    // 1970-01-01 was a Thursday (4). The result is in 1..=7.
    ((days + 3).rem_euclid(7) + 1) as u32
}

/// An ISO 8601 week: weeks run Monday to Sunday, and week 1 of a year is the week holding its
/// first Thursday, so the days around New Year can belong to the neighbouring year's weeks
/// (2024-12-30 is in 2025-W01, 2021-01-03 in 2020-W53). The derived ordering is chronological.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IsoWeek {
    pub year: i64,
    /// 1 to 52, or 53 in long years.
    pub week: u32,
}

/// The ISO 8601 week the instant `secs` falls in.
pub fn iso_week(secs: i64) -> IsoWeek {
    let day = secs.div_euclid(SECS_PER_DAY);
    // A week belongs to the year of its Thursday.
    let thursday = day - i64::from(weekday_of_day(day)) + 4;
    let (year, _, _) = civil_from_days(thursday);
    let day_of_year = i128::from(thursday) - days_from_civil(year, 1, 1); // 0..=365
    IsoWeek {
        year,
        week: (day_of_year / 7 + 1) as u32,
    }
}

/// RFC 3339 in UTC, to the second: `2026-11-21T03:00:00Z`. A year outside 0000–9999 (which
/// RFC 3339 cannot express) is written with its sign and all its digits.
pub fn format_rfc3339(secs: i64) -> String {
    let t = Civil::from_unix(secs);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

/// Why a time, duration or time of day typed by a user was refused. The message names the
/// input, the problem, and the forms that are accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error(
        "{input:?} is not a duration: {problem}; write a whole number and a unit: 90s, 15m, 12h, 14d or 2w"
    )]
    Duration { input: String, problem: String },
    #[error(
        "{input:?} is not a time: {problem}; write 2026-12-31T00:00:00Z, 2026-12-31T00:00Z or 2026-12-31 (all UTC), or a duration from now such as 30d"
    )]
    Instant { input: String, problem: String },
    #[error("{input:?} is not a time of day: {problem}; write HH:MM (UTC), from 00:00 to 23:59")]
    TimeOfDay { input: String, problem: String },
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

/// Parses the instant a user means, for holds and expiry dates: `2026-12-31T00:00:00Z`,
/// `2026-12-31T00:00Z`, `2026-12-31` (midnight UTC), or a duration after `now` (`30d`, see
/// [`parse_duration`]). Only UTC is accepted: a time without `Z` or with an offset is refused
/// rather than guessed.
pub fn parse_instant(text: &str, now: i64) -> Result<i64, ParseError> {
    let trimmed = text.trim();
    let error = |problem: String| ParseError::Instant {
        input: text.to_owned(),
        problem,
    };
    let bytes = trimmed.as_bytes();
    let looks_like_date =
        bytes.len() > 4 && bytes[..4].iter().all(u8::is_ascii_digit) && bytes[4] == b'-';
    if looks_like_date {
        return utc_instant(trimmed).map_err(error);
    }
    if !trimmed.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(error("it is neither a UTC date nor a duration".into()));
    }
    let secs = duration_secs(trimmed).map_err(error)?;
    i64::try_from(secs)
        .ok()
        .and_then(|secs| now.checked_add(secs))
        .ok_or_else(|| error("it is too far in the future".into()))
}

/// `YYYY-MM-DD`, then nothing or `THH:MMZ` or `THH:MM:SSZ`.
fn utc_instant(text: &str) -> Result<i64, String> {
    const DATE_FORM: &str = "the date must be written YYYY-MM-DD";
    let date = text.get(..10).ok_or(DATE_FORM)?;
    if date.as_bytes()[4] != b'-' || date.as_bytes()[7] != b'-' {
        return Err(DATE_FORM.into());
    }
    let year = number_field(date, 0..4, "the year must be four digits")?;
    let month = number_field(date, 5..7, "the month must be two digits")?;
    let day = number_field(date, 8..10, "the day must be two digits")?;
    let rest = &text[10..];
    let (hour, minute, second) = if rest.is_empty() {
        (0, 0, 0)
    } else {
        let clock = rest
            .strip_prefix('T')
            .ok_or("the date must be followed by nothing or by T and a time")?;
        let clock = clock
            .strip_suffix('Z')
            .ok_or("the time must end in Z: only UTC is accepted")?;
        let (hour, minute) = hour_minute(clock.get(..5).unwrap_or(clock))?;
        let second = match clock.get(5..) {
            Some("") => 0,
            Some(seconds) if seconds.len() == 3 && seconds.starts_with(':') => {
                number_field(seconds, 1..3, "the seconds must be two digits")?
            }
            _ => return Err("the time must be HH:MM or HH:MM:SS".into()),
        };
        if second > 59 {
            return Err(format!(
                "second {second} does not exist (00 to 59; leap seconds are not accepted)"
            ));
        }
        (hour, minute, second)
    };
    if !(1..=12).contains(&month) {
        return Err(format!("month {month} does not exist"));
    }
    let year = i64::from(year);
    let month_days = days_in_month(year, month);
    if !(1..=month_days).contains(&day) {
        return Err(format!("{year:04}-{month:02} has days 01 to {month_days}"));
    }
    let civil = Civil {
        year,
        month,
        day,
        hour,
        minute,
        second,
    };
    // Every field was checked and a four-digit year is well within range.
    civil.to_unix().ok_or_else(|| "it is out of range".into())
}

/// Parses a daily time `HH:MM` (UTC), `00:00` to `23:59`, into minutes after midnight.
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

    fn at(year: i64, month: u32, day: u32, hour: u32, minute: u32, second: u32) -> i64 {
        Civil {
            year,
            month,
            day,
            hour,
            minute,
            second,
        }
        .to_unix()
        .expect("a valid date")
    }

    #[test]
    fn known_dates() {
        assert_eq!(at(1970, 1, 1, 0, 0, 0), 0);
        assert_eq!(at(2000, 2, 29, 0, 0, 0), 951_782_400);
        assert_eq!(at(2026, 11, 21, 23, 28, 34), 1_795_303_714);
        assert_eq!(at(1969, 12, 31, 23, 59, 59), -1);
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(-1), "1969-12-31T23:59:59Z");
        assert_eq!(format_rfc3339(1_795_303_714), "2026-11-21T23:28:34Z");
        assert_eq!(format_rfc3339(253_402_300_799), "9999-12-31T23:59:59Z");
        assert_eq!(format_rfc3339(253_402_300_800), "10000-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(-62_167_219_200), "0000-01-01T00:00:00Z");
    }

    #[test]
    fn leap_years() {
        assert!(is_leap_year(2000) && is_leap_year(2024) && is_leap_year(0));
        assert!(!is_leap_year(1900) && !is_leap_year(2025) && !is_leap_year(2100));
        assert!(is_leap_year(-4) && !is_leap_year(-100));
        assert_eq!(days_in_month(2024, 2), 29);
        assert_eq!(days_in_month(2100, 2), 28);
        assert_eq!(days_in_month(2025, 13), 0);
    }

    #[test]
    fn to_unix_refuses_impossible_fields() {
        let valid = Civil::from_unix(0);
        for invalid in [
            Civil { month: 0, ..valid },
            Civil { month: 13, ..valid },
            Civil {
                year: 2025,
                month: 2,
                day: 29,
                ..valid
            },
            Civil { day: 0, ..valid },
            Civil { hour: 24, ..valid },
            Civil {
                minute: 60,
                ..valid
            },
            Civil {
                second: 60,
                ..valid
            },
            Civil {
                year: i64::MAX,
                ..valid
            },
        ] {
            assert_eq!(invalid.to_unix(), None, "{invalid:?}");
        }
        let edges = [i64::MIN, i64::MAX];
        for secs in edges {
            assert_eq!(Civil::from_unix(secs).to_unix(), Some(secs));
        }
    }

    #[test]
    fn weekdays_and_iso_weeks() {
        assert_eq!(iso_weekday(0), 4, "1970-01-01 was a Thursday");
        assert_eq!(iso_weekday(at(2025, 1, 1, 12, 0, 0)), 3, "a Wednesday");
        assert_eq!(iso_weekday(at(2026, 11, 22, 0, 0, 0)), 7, "a Sunday");
        assert_eq!(iso_weekday(at(1969, 12, 29, 0, 0, 0)), 1, "a Monday");
        let week = |year, week| IsoWeek { year, week };
        for ((y, m, d), expected) in [
            ((2020, 12, 31), week(2020, 53)),
            ((2021, 1, 3), week(2020, 53)),
            ((2021, 1, 4), week(2021, 1)),
            ((2024, 12, 29), week(2024, 52)),
            ((2024, 12, 30), week(2025, 1)),
            ((2025, 12, 28), week(2025, 52)),
            ((2025, 12, 29), week(2026, 1)),
            ((2026, 1, 1), week(2026, 1)),
            ((2026, 12, 31), week(2026, 53)),
            ((2027, 1, 3), week(2026, 53)),
            ((1970, 1, 1), week(1970, 1)),
        ] {
            assert_eq!(iso_week(at(y, m, d, 23, 59, 59)), expected, "{y}-{m}-{d}");
            assert_eq!(iso_week(at(y, m, d, 0, 0, 0)), expected, "{y}-{m}-{d}");
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
            ("0000-01-01", -62_167_219_200),
            ("30d", now + 30 * SECS_PER_DAY),
            ("90s", now + 90),
        ] {
            assert_eq!(parse_instant(text, now), Ok(expected), "{text}");
        }
        for (text, problem) in [
            (
                "2026-12-31T00:00",
                "the time must end in Z: only UTC is accepted",
            ),
            (
                "2026-12-31T00:00+02:00",
                "the time must end in Z: only UTC is accepted",
            ),
            (
                "2026-12-31 00:00Z",
                "the date must be followed by nothing or by T and a time",
            ),
            ("2026-13-01", "month 13 does not exist"),
            ("2025-02-29", "2025-02 has days 01 to 28"),
            ("2026-04-31", "2026-04 has days 01 to 30"),
            ("2026-12-00", "2026-12 has days 01 to 31"),
            ("2026-12-31T24:00Z", "hour 24 does not exist (00 to 23)"),
            ("2026-12-31T23:60Z", "minute 60 does not exist (00 to 59)"),
            (
                "2026-12-31T23:59:60Z",
                "second 60 does not exist (00 to 59; leap seconds are not accepted)",
            ),
            ("2026-12-31T23:59:5Z", "the time must be HH:MM or HH:MM:SS"),
            (
                "2026-12-31T3:00Z",
                "the time must be HH:MM, two digits each",
            ),
            ("2026-1-31", "the date must be written YYYY-MM-DD"),
            ("2026-12/31", "the date must be written YYYY-MM-DD"),
            ("2026-+1-31", "the month must be two digits"),
            (
                "2026-12-31é",
                "the date must be followed by nothing or by T and a time",
            ),
            ("2026-12-3é", "the date must be written YYYY-MM-DD"),
            ("tomorrow", "it is neither a UTC date nor a duration"),
            ("", "it is neither a UTC date nor a duration"),
            ("30", "it has no unit (for seconds, write 30s)"),
            ("9223372036854775807s", "it is too far in the future"),
            ("10000000000000000000s", "it is too far in the future"),
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

    /// The day after `date`, by the rules a person would apply.
    fn next_day((year, month, day): (i64, u32, u32)) -> (i64, u32, u32) {
        if day < days_in_month(year, month) {
            (year, month, day + 1)
        } else if month < 12 {
            (year, month + 1, 1)
        } else {
            (year + 1, 1, 1)
        }
    }

    proptest! {
        #[test]
        fn every_second_round_trips(secs: i64) {
            let civil = Civil::from_unix(secs);
            prop_assert_eq!(civil.to_unix(), Some(secs));
            prop_assert!((1..=12).contains(&civil.month));
            prop_assert!((1..=days_in_month(civil.year, civil.month)).contains(&civil.day));
        }

        #[test]
        fn every_civil_time_round_trips(
            year in -100_000i64..100_000,
            month in 1u32..=12,
            day in 1u32..=31,
            hour in 0u32..24,
            minute in 0u32..60,
            second in 0u32..60,
        ) {
            let day = day.min(days_in_month(year, month));
            let civil = Civil { year, month, day, hour, minute, second };
            let secs = civil.to_unix().expect("valid");
            prop_assert_eq!(Civil::from_unix(secs), civil);
        }

        #[test]
        fn consecutive_days_follow_the_calendar(days in -100_000_000i64..100_000_000) {
            let date = |days| {
                let civil = Civil::from_unix(days * SECS_PER_DAY);
                (civil.year, civil.month, civil.day)
            };
            prop_assert_eq!(date(days + 1), next_day(date(days)));
            prop_assert_eq!(weekday_of_day(days + 1), weekday_of_day(days) % 7 + 1);
        }

        #[test]
        fn iso_weeks_are_consecutive_monday_to_sunday(days in -10_000_000i64..10_000_000) {
            let secs = days * SECS_PER_DAY;
            let week = iso_week(secs);
            prop_assert!((1..=53).contains(&week.week));
            let monday = secs - i64::from(iso_weekday(secs) - 1) * SECS_PER_DAY;
            prop_assert_eq!(iso_weekday(monday), 1);
            prop_assert_eq!(iso_week(monday), week);
            prop_assert_eq!(iso_week(monday + SECS_PER_WEEK - 1), week);
            let next = iso_week(monday + SECS_PER_WEEK);
            let expected = if next.year == week.year {
                IsoWeek { year: week.year, week: week.week + 1 }
            } else {
                IsoWeek { year: week.year + 1, week: 1 }
            };
            prop_assert_eq!(next, expected);
            // A year's last ISO week is 52 or 53, never less.
            if next.year != week.year {
                prop_assert!(week.week >= 52);
            }
        }

        #[test]
        fn rfc3339_round_trips(secs in -62_167_219_200i64..253_402_300_800) {
            prop_assert_eq!(parse_instant(&format_rfc3339(secs), 0), Ok(secs));
        }

        #[test]
        fn durations_round_trip(secs: u64) {
            prop_assert_eq!(parse_duration(&format_duration(secs)), Ok(secs));
        }

        #[test]
        fn parsing_never_panics(text in "\\PC{0,24}", now: i64) {
            let _ = parse_instant(&text, now);
            let _ = parse_duration(&text);
            let _ = parse_time_of_day(&text);
        }
    }
}
