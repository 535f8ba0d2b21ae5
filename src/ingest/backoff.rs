//! Reconnect delay as a pure function of the failure history, so the policy
//! is tested with made-up histories and jitter values instead of sleeps.
//!
//! The policy, and why:
//! - After a session that ran for a while (`LONG_SESSION`), the first retry
//!   comes within 0.5–1 s and the delay grows 1.5× per failure, so a camera
//!   that was rebooted or briefly unplugged is recording again within about
//!   3 s of answering.
//! - A camera that does not answer (connection refused, reset, timeout) is
//!   retried at most every `UNREACHABLE_CAP`: an attempt costs a TCP SYN,
//!   and every second of waiting past the camera's return is lost footage.
//! - A camera that answers but refuses us (4xx, a codec we cannot record)
//!   will not change its mind within seconds: the delay grows to 30 s.
//! - Wrong credentials wait 24–30 s straight away, so a camera that locks
//!   accounts after failed logins is not hammered.
//! - Jitter (a factor in 0.5–1.0, or 0.8–1.0 at the caps) spreads a site's
//!   cameras that failed together, so they do not reconnect in lockstep.
//! - Sessions shorter than `LONG_SESSION` count as failures: a camera that
//!   accepts and drops us every few seconds backs off like one that refuses.

use std::time::Duration;

/// A session that streamed at least this long resets the backoff.
pub const LONG_SESSION: Duration = Duration::from_secs(30);
/// First delay after a long session (before jitter).
pub const FIRST: Duration = Duration::from_secs(1);
/// Cap for a camera that does not answer.
pub const UNREACHABLE_CAP: Duration = Duration::from_secs(2);
/// Cap for a camera that answers with a refusal, and the delay after 401.
pub const REFUSED_CAP: Duration = Duration::from_secs(30);
/// How many attempts the caller needs to keep.
pub const HISTORY: usize = 16;

/// How an attempt ended, as far as the backoff cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The camera did not answer, or the session broke (network, stall, EOF).
    Unreachable,
    /// The camera answered with an error retrying soon will not fix.
    Refused,
    /// The camera rejected our credentials.
    AuthFailed,
}

/// One finished attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// How long it delivered video before it ended (zero if never).
    pub streamed: Duration,
    /// Why it ended.
    pub outcome: Outcome,
}

/// The delay before the next attempt, given the attempts so far (oldest
/// first; the last is the one that just ended) and `jitter` in `[0, 1)`.
pub fn delay(history: &[Attempt], jitter: f64) -> Duration {
    let Some(last) = history.last() else {
        return Duration::ZERO;
    };
    let jitter = jitter.clamp(0.0, 1.0);
    if last.outcome == Outcome::AuthFailed {
        return REFUSED_CAP.mul_f64(0.8 + 0.2 * jitter);
    }
    // Failures since the last long session; that session itself, if it is
    // the one that just ended, is failure 0.
    let failures = history
        .iter()
        .rev()
        .position(|a| a.streamed >= LONG_SESSION)
        .unwrap_or(history.len());
    let cap = match last.outcome {
        Outcome::Refused => REFUSED_CAP,
        _ => UNREACHABLE_CAP,
    };
    let base = FIRST.mul_f64(1.5f64.powi(failures.min(16) as i32));
    if base >= cap {
        cap.mul_f64(0.8 + 0.2 * jitter)
    } else {
        base.mul_f64(0.5 + 0.5 * jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(streamed_s: u64, outcome: Outcome) -> Attempt {
        Attempt {
            streamed: Duration::from_secs(streamed_s),
            outcome,
        }
    }

    #[test]
    fn first_retry_after_a_long_session_is_within_a_second() {
        let h = [a(3600, Outcome::Unreachable)];
        assert!(delay(&h, 0.0) >= Duration::from_millis(500));
        assert!(delay(&h, 0.999) <= Duration::from_secs(1));
    }

    #[test]
    fn an_outage_is_polled_often_so_recording_resumes_within_3_s() {
        let mut h = vec![a(3600, Outcome::Unreachable)];
        let mut total = Duration::ZERO;
        let mut delays = Vec::new();
        for _ in 0..40 {
            let d = delay(&h, 0.999);
            delays.push(d);
            total += d;
            h.push(a(0, Outcome::Unreachable));
        }
        // Growing at first, then never more than the cap.
        assert!(delays[1] > delays[0] && delays[2] > delays[1], "{delays:?}");
        assert!(delays.iter().all(|d| *d <= UNREACHABLE_CAP), "{delays:?}");
        // However long the outage, the next try comes ≤ 2 s after the
        // camera is back, leaving ~1 s for RTSP setup within 3 s.
        assert!(total > Duration::from_secs(60));
    }

    #[test]
    fn jitter_spreads_cameras_that_failed_together() {
        let h = [a(600, Outcome::Unreachable), a(0, Outcome::Unreachable)];
        let lo = delay(&h, 0.0);
        let hi = delay(&h, 0.999);
        assert!(hi > lo.mul_f64(1.8), "{lo:?} {hi:?}");
    }

    #[test]
    fn wrong_credentials_stay_slow() {
        let h = [a(3600, Outcome::Unreachable), a(0, Outcome::AuthFailed)];
        assert!(delay(&h, 0.0) >= Duration::from_secs(24));
        assert!(delay(&h, 0.999) <= REFUSED_CAP);
    }

    #[test]
    fn refusals_grow_to_30_s() {
        let mut h = vec![a(0, Outcome::Refused)];
        for _ in 0..12 {
            h.push(a(0, Outcome::Refused));
        }
        let d = delay(&h, 0.5);
        assert!(d >= Duration::from_secs(24) && d <= REFUSED_CAP, "{d:?}");
    }

    #[test]
    fn short_sessions_count_as_failures() {
        // A camera that drops us after 5 s, again and again, is not "back".
        let mut h = vec![a(3600, Outcome::Unreachable)];
        for _ in 0..6 {
            h.push(a(5, Outcome::Refused));
        }
        assert!(delay(&h, 0.5) > Duration::from_secs(5));
        // One long session resets it.
        h.push(a(120, Outcome::Refused));
        assert!(delay(&h, 0.999) <= Duration::from_secs(1));
    }

    #[test]
    fn no_history_means_no_wait() {
        assert_eq!(delay(&[], 0.5), Duration::ZERO);
    }
}
