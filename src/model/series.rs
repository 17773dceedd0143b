//! An endpoint's attempts over time: counted per hour and latency bucket as they are recorded
//! (so a chart never counts rows), and read back as a series of points with their success
//! rate and latency percentiles.

use super::UnixMs;
use super::counts::Change;

/// Milliseconds in an hour: the series' finest step.
pub const HOUR_MS: i64 = 3_600_000;

/// Upper bounds (inclusive, ms) of the latency buckets; the last bucket holds everything
/// slower. A percentile is reported as the upper bound of the bucket it falls in.
pub const LATENCY_BOUNDS_MS: [u32; 11] = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];

/// How many hours of counts are kept (the longest window shown is seven days).
pub const HOURS_KEPT: i64 = 8 * 24;

/// The latency bucket of an attempt that took `ms`.
pub fn bucket(ms: u32) -> usize {
    LATENCY_BOUNDS_MS
        .iter()
        .position(|bound| ms <= *bound)
        .unwrap_or(LATENCY_BOUNDS_MS.len())
}

/// The hour (since the epoch) an attempt at `at` counts in.
pub fn hour_of(at: UnixMs) -> i64 {
    at.div_euclid(HOUR_MS)
}

/// Attempts counted in one (endpoint, hour, latency bucket).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Attempts that succeeded.
    pub succeeded: i64,
    /// Attempts that failed.
    pub failed: i64,
}

impl Tally {
    /// One attempt.
    pub fn one(succeeded: bool) -> Self {
        Self {
            succeeded: i64::from(succeeded),
            failed: i64::from(!succeeded),
        }
    }
}

impl Change for Tally {
    fn then(&mut self, later: Self) {
        self.succeeded += later.succeeded;
        self.failed += later.failed;
    }

    fn is_none(&self) -> bool {
        *self == Self::default()
    }
}

/// The windows a chart shows: the last day in hours, the last week in six-hour steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// 24 points of an hour.
    Day,
    /// 28 points of six hours.
    Week,
}

impl Window {
    /// Reads `24h` or `7d`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "24h" => Some(Self::Day),
            "7d" => Some(Self::Week),
            _ => None,
        }
    }

    /// Its API form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Day => "24h",
            Self::Week => "7d",
        }
    }

    /// Hours per point.
    pub fn step_hours(self) -> i64 {
        match self {
            Self::Day => 1,
            Self::Week => 6,
        }
    }

    /// Seconds per point.
    pub fn step_seconds(self) -> i64 {
        self.step_hours() * HOUR_MS / 1000
    }

    /// Points in the window.
    pub fn points(self) -> i64 {
        match self {
            Self::Day => 24,
            Self::Week => 28,
        }
    }

    /// The first hour of the window that ends with the hour of `now` (the current, partial
    /// step is the last point).
    pub fn first_hour(self, now: UnixMs) -> i64 {
        let step = self.step_hours();
        let last = hour_of(now).div_euclid(step) * step;
        last - (self.points() - 1) * step
    }
}

/// One point of a series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Point {
    /// When the step starts.
    pub at: UnixMs,
    /// Attempts that succeeded in it.
    pub succeeded: u64,
    /// Attempts that failed in it.
    pub failed: u64,
    /// The latency half the attempts were at or under (a bucket's upper bound; `None` for
    /// none, or past the last bound).
    pub p50_ms: Option<u32>,
    /// The latency 99 of 100 attempts were at or under.
    pub p99_ms: Option<u32>,
}

/// Folds stored counts `(hour, bucket, tally)` into the window's points, oldest first, with
/// a point for every step (empty ones too).
pub fn series(window: Window, now: UnixMs, rows: &[(i64, usize, Tally)]) -> Vec<Point> {
    let first = window.first_hour(now);
    let step = window.step_hours();
    let mut points: Vec<(Tally, [u64; LATENCY_BOUNDS_MS.len() + 1])> =
        vec![(Tally::default(), [0; LATENCY_BOUNDS_MS.len() + 1]); window.points() as usize];
    for (hour, b, tally) in rows {
        let i = (hour - first).div_euclid(step);
        let (Ok(i), true) = (usize::try_from(i), *b <= LATENCY_BOUNDS_MS.len()) else {
            continue;
        };
        if let Some((sum, buckets)) = points.get_mut(i) {
            sum.then(*tally);
            buckets[*b] += (tally.succeeded + tally.failed).max(0) as u64;
        }
    }
    points
        .into_iter()
        .enumerate()
        .map(|(i, (sum, buckets))| Point {
            at: (first + i as i64 * step) * HOUR_MS,
            succeeded: sum.succeeded.max(0) as u64,
            failed: sum.failed.max(0) as u64,
            p50_ms: percentile(&buckets, 50),
            p99_ms: percentile(&buckets, 99),
        })
        .collect()
}

/// The upper bound of the bucket the `q`th percentile falls in; `None` without attempts, or
/// when it falls past the last bound.
pub fn percentile(buckets: &[u64], q: u64) -> Option<u32> {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    // The smallest count that covers q% of the attempts.
    let wanted = (total * q).div_ceil(100).max(1);
    let mut seen = 0;
    for (i, n) in buckets.iter().enumerate() {
        seen += n;
        if seen >= wanted {
            return LATENCY_BOUNDS_MS.get(i).copied();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attempt_counts_in_the_bucket_its_latency_is_at_or_under() {
        let cases = [
            (0, 0),
            (5, 0),
            (6, 1),
            (100, 4),
            (101, 5),
            (10_000, 10),
            (10_001, 11),
        ];
        for (ms, want) in cases {
            assert_eq!(bucket(ms), want, "{ms} ms");
        }
    }

    #[test]
    fn percentiles_are_the_bound_of_the_bucket_they_fall_in() {
        let mut buckets = [0u64; 12];
        assert_eq!(percentile(&buckets, 50), None);
        buckets[2] = 98; // ≤ 25 ms
        buckets[7] = 2; // ≤ 1000 ms
        assert_eq!(percentile(&buckets, 50), Some(25));
        assert_eq!(percentile(&buckets, 99), Some(1000));
        buckets[11] = 10; // slower than the last bound
        assert_eq!(percentile(&buckets, 99), None);
    }

    #[test]
    fn a_series_has_a_point_per_step_and_folds_hours_into_steps() {
        let now = 1_000 * HOUR_MS + 1_234;
        let day = series(
            Window::Day,
            now,
            &[
                (1_000, 1, Tally::one(true)),
                (1_000, 3, Tally::one(false)),
                (977, 0, Tally::one(true)),
                (976, 0, Tally::one(true)),
            ],
        );
        assert_eq!(day.len(), 24);
        assert_eq!(
            day[23].at,
            1_000 * HOUR_MS,
            "the current hour is the last point"
        );
        assert_eq!((day[23].succeeded, day[23].failed), (1, 1));
        assert_eq!((day[23].p50_ms, day[23].p99_ms), (Some(10), Some(50)));
        assert_eq!(day[0].succeeded, 1, "hour 977 is the first of the day");
        assert_eq!(
            day.iter().map(|p| p.succeeded).sum::<u64>(),
            2,
            "hour 976 is before the window"
        );
        let week = series(
            Window::Week,
            now,
            &[(1_000, 0, Tally::one(true)), (997, 0, Tally::one(false))],
        );
        assert_eq!(week.len(), 28);
        // Hour 1,000 is in the step from 996 (a multiple of 6) with 997.
        assert_eq!(week[27].at, 996 * HOUR_MS);
        assert_eq!((week[27].succeeded, week[27].failed), (1, 1));
    }
}
