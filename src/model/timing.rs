//! When a schedule fires: standard cron (5 fields: minute hour day-of-month month
//! day-of-week, day of week 0–7 with 0 and 7 = Sunday, names allowed, day-of-month OR
//! day-of-week when both are restricted) or 6 fields with seconds first, evaluated in an IANA
//! time zone. The `cron` crate wants seconds first, numbers Sunday as 1 and ANDs the two day
//! fields, so expressions are translated here, and the OR rule is two schedules whose earliest
//! next time wins.
//!
//! DST rules: a local time that does not exist on a spring-forward day is skipped (the
//! schedule next fires at its next existing time); a local time that occurs twice on a
//! fall-back day fires once, at its first occurrence.

use super::Invalid;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// A parsed cron expression, ready to compute fire times.
#[derive(Debug, Clone)]
pub struct CronSpec {
    schedules: Vec<cron::Schedule>,
}

const DAY_NAMES: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
const MONTH_NAMES: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

/// Parses a time zone name (`America/New_York`); the error names it.
pub fn parse_zone(name: &str) -> Result<Tz, Invalid> {
    Tz::from_str(name)
        .map_err(|_| Invalid(format!("timezone '{name}' is not an IANA time zone name")))
}

/// Expands one cron field (lists, ranges, steps, names) into the set of values it allows.
fn expand(
    field: &str,
    min: u32,
    max: u32,
    names: &[&str],
    name_base: u32,
) -> Result<Vec<u32>, Invalid> {
    let value = |s: &str| -> Result<u32, Invalid> {
        let lower = s.to_ascii_lowercase();
        if let Some(i) = names.iter().position(|n| *n == lower) {
            return Ok(i as u32 + name_base);
        }
        s.parse::<u32>()
            .ok()
            .filter(|v| (min..=max).contains(v))
            .ok_or_else(|| Invalid(format!("'{s}' is out of range {min}-{max}")))
    };
    let mut out = Vec::new();
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("bad step in '{part}'"))?,
            ),
            None => (part, 1),
        };
        let (lo, hi) = match range {
            "*" => (min, max),
            r => match r.split_once('-') {
                Some((a, b)) => (value(a)?, value(b)?),
                None if step > 1 => (value(r)?, max),
                None => (value(r)?, value(r)?),
            },
        };
        if lo > hi {
            return Err(format!("range '{range}' runs backwards").into());
        }
        out.extend((lo..=hi).step_by(step as usize));
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

fn list(values: &[u32]) -> String {
    values
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

impl CronSpec {
    /// Parses a 5-field (standard) or 6-field (seconds first) expression.
    pub fn parse(expr: &str) -> Result<Self, Invalid> {
        let fields: Vec<&str> = expr.split_whitespace().collect();
        let (seconds, rest) = match fields.len() {
            5 => ("0".to_owned(), &fields[..]),
            6 => (list(&expand(fields[0], 0, 59, &[], 0)?), &fields[1..]),
            n => {
                return Err(format!(
                    "cronExpression must have 5 fields (minute hour day month weekday) or 6 with seconds first; it has {n}"
                ).into());
            }
        };
        let field = |what: &str, r: Result<Vec<u32>, Invalid>| {
            r.map_err(|e| format!("cronExpression {what}: {e}"))
        };
        let minutes = field("minute", expand(rest[0], 0, 59, &[], 0))?;
        let hours = field("hour", expand(rest[1], 0, 23, &[], 0))?;
        let days = field("day of month", expand(rest[2], 1, 31, &[], 0))?;
        let months = field("month", expand(rest[3], 1, 12, &MONTH_NAMES, 1))?;
        // Standard weekdays: 0-7, 0 and 7 = Sunday; the cron crate numbers Sunday as 1.
        let weekdays: Vec<u32> = field("day of week", expand(rest[4], 0, 7, &DAY_NAMES, 0))?
            .into_iter()
            .map(|d| d % 7 + 1)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let dom_restricted = rest[2] != "*" && rest[2] != "?";
        let dow_restricted = rest[4] != "*" && rest[4] != "?";
        let head = format!("{seconds} {} {} ", list(&minutes), list(&hours));
        let month = list(&months);
        let exprs = match (dom_restricted, dow_restricted) {
            (true, true) => vec![
                format!("{head}{} {month} *", list(&days)),
                format!("{head}* {month} {}", list(&weekdays)),
            ],
            (true, false) => vec![format!("{head}{} {month} *", list(&days))],
            (false, true) => vec![format!("{head}* {month} {}", list(&weekdays))],
            (false, false) => vec![format!("{head}* {month} *")],
        };
        let schedules = exprs
            .iter()
            .map(|e| cron::Schedule::from_str(e).map_err(|err| format!("cronExpression: {err}")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { schedules })
    }

    /// The next `n` fire times strictly after `after`, evaluated in `zone`.
    pub fn upcoming(&self, zone: Tz, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        std::iter::successors(self.next_after(zone, after), |t| self.next_after(zone, *t))
            .take(n)
            .collect()
    }

    /// The first fire time strictly after `after`, evaluated in `zone`.
    pub fn next_after(&self, zone: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&zone);
        let mut best: Option<DateTime<Tz>> = None;
        for schedule in &self.schedules {
            for candidate in schedule.after(&local).take(4) {
                // On a fall-back day a local time occurs twice; the second occurrence (the
                // one an hour after an identical wall-clock time) is skipped.
                let earlier = candidate - chrono::Duration::hours(1);
                if earlier.naive_local() == candidate.naive_local() {
                    continue;
                }
                if best.is_none_or(|b| candidate < b) {
                    best = Some(candidate);
                }
                break;
            }
        }
        best.map(|t| t.with_timezone(&Utc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn next(expr: &str, zone: &str, after: &str) -> String {
        let spec = CronSpec::parse(expr).unwrap();
        spec.next_after(parse_zone(zone).unwrap(), utc(after))
            .unwrap()
            .to_rfc3339()
    }

    #[test]
    fn weekday_1_means_monday_and_0_or_7_sunday() {
        // 2026-11-23 is a Monday.
        assert_eq!(
            next("0 9 * * 1", "UTC", "2026-11-22T12:00:00Z"),
            "2026-11-23T09:00:00+00:00"
        );
        assert_eq!(
            next("0 9 * * 0", "UTC", "2026-11-23T12:00:00Z"),
            "2026-11-29T09:00:00+00:00"
        );
        assert_eq!(
            next("0 9 * * 7", "UTC", "2026-11-23T12:00:00Z"),
            "2026-11-29T09:00:00+00:00"
        );
        assert_eq!(
            next("0 9 * * MON-FRI", "UTC", "2026-11-27T12:00:00Z"),
            "2026-11-30T09:00:00+00:00"
        );
        assert_eq!(
            next("0 9 * * 5-7", "UTC", "2026-11-23T12:00:00Z"),
            "2026-11-27T09:00:00+00:00"
        );
    }

    #[test]
    fn day_of_month_or_day_of_week_when_both_are_restricted() {
        // The 1st of the month OR any Monday: after Tue 2026-11-24 comes Mon 11-30, then 12-01.
        assert_eq!(
            next("0 0 1 * 1", "UTC", "2026-11-24T00:00:00Z"),
            "2026-11-30T00:00:00+00:00"
        );
        assert_eq!(
            next("0 0 1 * 1", "UTC", "2026-11-30T00:00:00Z"),
            "2026-12-01T00:00:00+00:00"
        );
    }

    #[test]
    fn six_fields_take_seconds_first() {
        assert_eq!(
            next("*/10 * * * * *", "UTC", "2026-11-23T12:00:03Z"),
            "2026-11-23T12:00:10+00:00"
        );
    }

    #[test]
    fn new_york_nine_am_stays_nine_am_across_dst() {
        // Before the 2026-03-08 spring-forward, 09:00 EST is 14:00 UTC; after, 09:00 EDT is 13:00.
        assert_eq!(
            next("0 9 * * *", "America/New_York", "2026-03-07T15:00:00Z"),
            "2026-03-08T13:00:00+00:00"
        );
        assert_eq!(
            next("0 9 * * *", "America/New_York", "2026-03-06T15:00:00Z"),
            "2026-03-07T14:00:00+00:00"
        );
        // Fall back on 2026-11-01: 09:00 EST is 14:00 UTC again.
        assert_eq!(
            next("0 9 * * *", "America/New_York", "2026-10-31T14:00:00Z"),
            "2026-11-01T14:00:00+00:00"
        );
    }

    #[test]
    fn a_time_that_does_not_exist_is_skipped_and_a_repeated_one_fires_once() {
        // 02:30 does not exist in New York on 2026-03-08: the next fire is 02:30 on 03-09.
        assert_eq!(
            next("30 2 * * *", "America/New_York", "2026-03-08T05:00:00Z"),
            "2026-03-09T06:30:00+00:00"
        );
        // 01:30 happens twice on 2026-11-01 (EDT, then EST): it fires at the first only.
        let first = next("30 1 * * *", "America/New_York", "2026-11-01T04:00:00Z");
        assert_eq!(first, "2026-11-01T05:30:00+00:00");
        assert_eq!(
            next("30 1 * * *", "America/New_York", &first),
            "2026-11-02T06:30:00+00:00"
        );
    }

    #[test]
    fn bad_expressions_and_zones_are_refused_with_the_field_named() {
        for (expr, needle) in [
            ("* * *", "5 fields"),
            ("60 * * * *", "minute"),
            ("* 24 * * *", "hour"),
            ("* * 0 * *", "day of month"),
            ("* * * 13 *", "month"),
            ("* * * * 8", "day of week"),
            ("* * * * FUNDAY", "day of week"),
            ("5-1 * * * *", "minute"),
        ] {
            let err = CronSpec::parse(expr).unwrap_err().0;
            assert!(err.contains(needle), "{expr}: {err}");
        }
        assert!(parse_zone("Mars/Olympus").is_err());
        assert!(parse_zone("Europe/Berlin").is_ok());
    }
}
