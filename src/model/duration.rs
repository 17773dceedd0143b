//! Durations as people write them in settings and retry schedules: `250ms`, `10s`, `5m`,
//! `2h`, `1d`.

use super::Invalid;
use std::time::Duration;

/// The units a duration is written in, with their length in milliseconds.
pub const UNITS: [(&str, u64); 5] = [
    ("ms", 1),
    ("s", 1_000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
];

/// The longest duration [`parse`] takes: 366 days.
pub const LONGEST: Duration = Duration::from_secs(366 * 86_400);

/// Parses `<digits><unit>` with unit `ms`, `s`, `m`, `h` or `d`.
pub fn parse(s: &str) -> Result<Duration, Invalid> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    if digits.is_empty() {
        return Err(format!(
            "'{s}' is not a duration: write a number and a unit, like 250ms, 10s, 5m, 2h or 1d"
        )
        .into());
    }
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("'{s}' is not a duration: the number is too large"))?;
    let Some((_, unit_ms)) = UNITS.iter().find(|(name, _)| *name == unit) else {
        return Err(
            format!("'{s}' is not a duration: the unit must be one of ms, s, m, h, d").into(),
        );
    };
    n.checked_mul(*unit_ms)
        .filter(|ms| u128::from(*ms) <= LONGEST.as_millis())
        .map(Duration::from_millis)
        .ok_or_else(|| Invalid(format!("'{s}' is too long: the most is 366d")))
}

/// Formats a duration in the largest unit that divides it exactly (`90000ms` → `90s`).
pub fn format(d: Duration) -> String {
    let ms = d.as_millis() as u64;
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms > 0 && ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit() {
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse("1d"), Ok(Duration::from_secs(86400)));
    }

    #[test]
    fn rejects_bad_durations() {
        for bad in [
            "",
            "s",
            "10",
            "10x",
            "-1s",
            "1.5s",
            "400d",
            "99999999999999999999s",
        ] {
            assert!(parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn formats_in_the_largest_exact_unit() {
        assert_eq!(format(Duration::from_secs(60)), "1m");
        assert_eq!(format(Duration::from_secs(90)), "90s");
        assert_eq!(format(Duration::from_millis(250)), "250ms");
        assert_eq!(format(Duration::from_secs(86400)), "1d");
    }
}
