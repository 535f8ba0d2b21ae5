//! Wall-clock access behind a trait, so retention and rotation can be tested
//! with a simulated clock instead of sleeps.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Source of wall-clock time in nanoseconds since the Unix epoch (UTC).
pub trait Clock: Send + Sync + 'static {
    /// Current wall time, nanoseconds since the Unix epoch.
    fn now_ns(&self) -> i64;
}

/// The real system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ns(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0)
    }
}

/// A clock that only moves when told to; for tests.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock stopped at `ns`.
    pub fn new(ns: i64) -> Self {
        Self(AtomicI64::new(ns))
    }
    /// Moves the clock forward (or backward) by `delta_ns`.
    pub fn advance(&self, delta_ns: i64) {
        self.0.fetch_add(delta_ns, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ns(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Nanoseconds per second, for readable arithmetic.
pub const NS_PER_SEC: i64 = 1_000_000_000;

/// Formats nanoseconds since the epoch as RFC 3339 UTC with milliseconds.
pub fn rfc3339(ns: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ns as i128)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let f = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.format(&f).unwrap_or_default()
}

/// `ns` as local time in `tz` for people to read: RFC 3339 with the offset (so the
/// repeated hour when clocks go back is unambiguous) and the zone's abbreviation, e.g.
/// `2025-10-26T01:30:00.000+01:00 BST`.
pub fn local_time(ns: i64, tz: &jiff::tz::TimeZone) -> String {
    let ts =
        jiff::Timestamp::from_nanosecond(i128::from(ns)).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    ts.to_zoned(tz.clone())
        .strftime("%Y-%m-%dT%H:%M:%S%.3f%:z %Z")
        .to_string()
}

/// The IANA name of `tz`, or its current offset when it has none.
pub fn zone_name(tz: &jiff::tz::TimeZone) -> String {
    tz.iana_name().map(str::to_owned).unwrap_or_else(|| {
        let ts = jiff::Timestamp::now();
        ts.to_zoned(tz.clone()).strftime("%:z").to_string()
    })
}

/// Parses an RFC 3339 time (any offset) into nanoseconds since the epoch.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp_nanos() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_time_tells_the_two_october_01_30s_apart() {
        let london = jiff::tz::TimeZone::get("Europe/London").unwrap();
        // 2025-10-26: BST ends at 01:00 UTC, so 01:30 local happens twice.
        let first = parse_rfc3339("2025-10-26T00:30:00Z").unwrap();
        let second = parse_rfc3339("2025-10-26T01:30:00Z").unwrap();
        assert_eq!(
            local_time(first, &london),
            "2025-10-26T01:30:00.000+01:00 BST"
        );
        assert_eq!(
            local_time(second, &london),
            "2025-10-26T01:30:00.000+00:00 GMT"
        );
        let summer = parse_rfc3339("2025-06-01T12:00:00Z").unwrap();
        assert_eq!(
            local_time(summer, &london),
            "2025-06-01T13:00:00.000+01:00 BST"
        );
        assert_eq!(zone_name(&london), "Europe/London");
    }

    #[test]
    fn rfc3339_round_trip() {
        let ns = 1_795_000_000_123_000_000;
        let s = rfc3339(ns);
        assert!(s.ends_with(".123Z"), "{s}");
        assert_eq!(parse_rfc3339(&s), Some(ns));
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(5);
        assert_eq!(c.now_ns(), 5);
        c.advance(10);
        assert_eq!(c.now_ns(), 15);
    }
}
