//! Time behind a trait, so retention, rotation and the ingest reconnect
//! loop can be tested with a simulated clock instead of sleeps: wall time
//! for what is shown and stored, monotonic time and sleeps for timers
//! (reconnect delays, stall and no-media timeouts). A [`ManualClock`] only
//! moves when told to, and its sleeps return at once having moved it, so a
//! test runs hours of reconnects in milliseconds.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;

/// Source of wall-clock time, monotonic time and sleeps.
pub trait Clock: Send + Sync + 'static {
    /// Current wall time, nanoseconds since the Unix epoch.
    fn now_ns(&self) -> i64;

    /// Time since an arbitrary origin that never jumps with wall-clock
    /// changes; for timers and for how long a session ran.
    fn monotonic(&self) -> Duration;

    /// Waits until [`Clock::monotonic`] reaches `deadline`.
    fn sleep_until(&self, deadline: Duration) -> BoxFuture<'_, ()>;

    /// Waits `d`.
    fn sleep(&self, d: Duration) -> BoxFuture<'_, ()> {
        self.sleep_until(self.monotonic().saturating_add(d))
    }
}

/// The real system clock; timers are tokio's.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

/// The origin of [`SystemClock::monotonic`]: the first time anyone asked.
fn origin() -> tokio::time::Instant {
    static ORIGIN: OnceLock<tokio::time::Instant> = OnceLock::new();
    *ORIGIN.get_or_init(tokio::time::Instant::now)
}

/// Waits for the next multiple of `period` on a grid shared by the whole
/// process (counted from [`origin`]). The server's periodic jobs (config
/// poll, alarm watch, status board, index check, retention, …) wait with it
/// so that they fall due in the same timer turn: one wake-up of the runtime
/// for all of them, where sleeps of their own, each started when the last
/// round ended, drift apart and wake it once each. An idle server's wake-ups
/// were about a tenth of the CPU of recording one camera (docs/BENCHMARKS.md).
pub async fn tick(period: Duration) {
    tokio::time::sleep_until(next_tick_at(period)).await
}

/// The point of the grid [`tick`] waits for: the next multiple of `period`.
pub fn next_tick_at(period: Duration) -> tokio::time::Instant {
    next_tick(origin(), tokio::time::Instant::now(), period)
}

/// An interval on the same grid as [`tick`], for loops that keep one. Missed
/// ticks are skipped, so it stays on the grid.
pub fn interval(period: Duration) -> tokio::time::Interval {
    let start = next_tick(origin(), tokio::time::Instant::now(), period);
    let mut i = tokio::time::interval_at(start, period);
    i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    i
}

/// The first point of the `period` grid from `origin` strictly after `now`.
fn next_tick(
    origin: tokio::time::Instant,
    now: tokio::time::Instant,
    period: Duration,
) -> tokio::time::Instant {
    let p = period.as_nanos().max(1);
    let ticks = now.saturating_duration_since(origin).as_nanos() / p + 1;
    origin + Duration::from_nanos(u64::try_from(ticks * p).unwrap_or(u64::MAX))
}

impl Clock for SystemClock {
    fn now_ns(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0)
    }

    fn monotonic(&self) -> Duration {
        let origin = origin();
        tokio::time::Instant::now().saturating_duration_since(origin)
    }

    fn sleep_until(&self, deadline: Duration) -> BoxFuture<'_, ()> {
        Box::pin(tokio::time::sleep_until(origin() + deadline))
    }
}

/// A clock that only moves when told to, or when something sleeps on it; for tests.
#[derive(Debug, Default)]
pub struct ManualClock {
    wall_ns: AtomicI64,
    mono_ns: AtomicI64,
}

impl ManualClock {
    /// A clock stopped at wall time `ns` (monotonic time 0).
    pub fn new(ns: i64) -> Self {
        Self {
            wall_ns: AtomicI64::new(ns),
            mono_ns: AtomicI64::new(0),
        }
    }

    /// Moves wall time by `delta_ns`, forward or backward (a clock jump).
    /// Monotonic time follows forward moves only, as a real one would.
    pub fn advance(&self, delta_ns: i64) {
        self.wall_ns.fetch_add(delta_ns, Ordering::SeqCst);
        if delta_ns > 0 {
            self.mono_ns.fetch_add(delta_ns, Ordering::SeqCst);
        }
    }
}

impl Clock for ManualClock {
    fn now_ns(&self) -> i64 {
        self.wall_ns.load(Ordering::SeqCst)
    }

    fn monotonic(&self) -> Duration {
        Duration::from_nanos(self.mono_ns.load(Ordering::SeqCst).max(0) as u64)
    }

    /// Returns at once, having moved both clocks to `deadline` (when it is
    /// still ahead). The move happens when the future is first polled, so a
    /// timer that loses a race (a biased `select!`) never moves the clock.
    fn sleep_until(&self, deadline: Duration) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let target = i64::try_from(deadline.as_nanos()).unwrap_or(i64::MAX);
            let before = self.mono_ns.fetch_max(target, Ordering::SeqCst);
            if target > before {
                self.wall_ns.fetch_add(target - before, Ordering::SeqCst);
            }
        })
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

/// `ns` as local time in `tz` in words people read in a message: date, time to the
/// second and the zone's abbreviation, e.g. `2026-11-30 09:06:24 GMT`.
pub fn local_words(ns: i64, tz: &jiff::tz::TimeZone) -> String {
    let ts =
        jiff::Timestamp::from_nanosecond(i128::from(ns)).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    ts.to_zoned(tz.clone())
        .strftime("%Y-%m-%d %H:%M:%S %Z")
        .to_string()
}

/// The calendar day `ns` falls on in `tz`.
pub fn local_day(ns: i64, tz: &jiff::tz::TimeZone) -> jiff::civil::Date {
    let ts =
        jiff::Timestamp::from_nanosecond(i128::from(ns)).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    ts.to_zoned(tz.clone()).date()
}

/// Nanoseconds at the first instant of `day` in `tz` (midnight, or when a
/// daylight-saving jump makes the day start later).
pub fn day_start_ns(day: jiff::civil::Date, tz: &jiff::tz::TimeZone) -> Option<i64> {
    let z = day.to_zoned(tz.clone()).ok()?;
    i64::try_from(z.timestamp().as_nanosecond()).ok()
}

/// The IANA name of `tz`, or its current offset when it has none.
pub fn zone_name(tz: &jiff::tz::TimeZone) -> String {
    tz.iana_name().map(str::to_owned).unwrap_or_else(|| {
        let ts = jiff::Timestamp::now();
        ts.to_zoned(tz.clone()).strftime("%:z").to_string()
    })
}

/// Parses an RFC 3339 time (any offset) into nanoseconds since the epoch.
/// Times i64 nanoseconds cannot hold (before 1677 or after 2262) are refused:
/// a plain cast would wrap 2300 round to 1700.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos()).ok()
}

/// Nanoseconds in `ticks` of the 90 kHz video clock, saturating. A session's
/// tick count times 10^9 no longer fits i64 after 28.5 hours of stream, which
/// an RTSP session that runs for days reaches.
pub fn ticks_90k_to_ns(ticks: i64) -> i64 {
    let ns = i128::from(ticks) * i128::from(NS_PER_SEC) / 90_000;
    i64::try_from(ns).unwrap_or(if ns < 0 { i64::MIN } else { i64::MAX })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Jobs of different periods, whatever moment their last round ended,
    /// fall due together on the grid (one timer turn wakes them all), and a
    /// round that overran its period waits for the next grid point, not a
    /// whole period from its end.
    #[test]
    fn ticks_of_different_periods_fall_due_together() {
        let o = tokio::time::Instant::now();
        let at = |ms: u64| o + Duration::from_millis(ms);
        let (s1, s2, s60) = (
            Duration::from_secs(1),
            Duration::from_secs(2),
            Duration::from_secs(60),
        );
        // A 1 s job that ended at 3.2 s and a 2 s job that ended at 2.9 s.
        assert_eq!(next_tick(o, at(3_200), s1), at(4_000));
        assert_eq!(next_tick(o, at(2_900), s2), at(4_000));
        // On a grid point: the next one, never the same instant again.
        assert_eq!(next_tick(o, at(4_000), s1), at(5_000));
        assert_eq!(next_tick(o, at(4_000), s2), at(6_000));
        // A 2 s round that took 2.5 s (ended at 8.5 s) runs again at 10 s.
        assert_eq!(next_tick(o, at(8_500), s2), at(10_000));
        assert_eq!(next_tick(o, at(59_999), s60), at(60_000));
        // Before the origin (an instant taken earlier) counts from the origin.
        assert_eq!(next_tick(at(1_000), o, s1), at(2_000));
    }

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
        // Valid RFC 3339, but not an i64 of nanoseconds: refused, not wrapped to 1700.
        assert_eq!(parse_rfc3339("2300-01-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("1600-01-01T00:00:00Z"), None);
        assert!(parse_rfc3339("2262-04-11T23:47:16Z").is_some());
    }

    #[test]
    fn ticks_to_ns_past_a_day_of_stream() {
        assert_eq!(ticks_90k_to_ns(90_000), NS_PER_SEC);
        assert_eq!(ticks_90k_to_ns(-45_000), -NS_PER_SEC / 2);
        // 30 hours of 90 kHz ticks: ticks * 10^9 alone is past i64::MAX.
        let ticks = 30 * 3600 * 90_000;
        assert_eq!(ticks_90k_to_ns(ticks), 30 * 3600 * NS_PER_SEC);
        assert_eq!(ticks_90k_to_ns(i64::MAX), i64::MAX);
        assert_eq!(ticks_90k_to_ns(i64::MIN), i64::MIN);
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(5);
        assert_eq!(c.now_ns(), 5);
        c.advance(10);
        assert_eq!(c.now_ns(), 15);
        assert_eq!(c.monotonic(), Duration::from_nanos(10));
        // A wall-clock jump back leaves monotonic time alone.
        c.advance(-7);
        assert_eq!(c.now_ns(), 8);
        assert_eq!(c.monotonic(), Duration::from_nanos(10));
    }

    #[tokio::test]
    async fn manual_sleep_moves_the_clock_only_when_polled() {
        let c = ManualClock::new(0);
        let lost = c.sleep(Duration::from_secs(5));
        drop(lost);
        assert_eq!(c.monotonic(), Duration::ZERO);
        c.sleep(Duration::from_secs(5)).await;
        assert_eq!(c.monotonic(), Duration::from_secs(5));
        assert_eq!(c.now_ns(), 5 * NS_PER_SEC);
        // A deadline already passed returns without moving it back.
        c.sleep_until(Duration::from_secs(1)).await;
        assert_eq!(c.monotonic(), Duration::from_secs(5));
    }
}
