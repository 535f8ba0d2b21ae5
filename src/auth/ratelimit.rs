//! Login rate limiting, designed so that guessing is capped but a stranger
//! cannot lock a legitimate user out:
//!
//! - per (user name, client address): a few free failures, then each
//!   further attempt must wait a delay that doubles up to a cap;
//! - per client address: a cap on failures across all names in a window,
//!   so one address cannot spray many accounts;
//! - per user name: once a name has many failures from anywhere (a guessing
//!   campaign from many addresses), the free failures per address shrink to
//!   one. The name is never locked as such: its owner, from an address
//!   with no failures of its own, can always try.
//!
//! An attempt is *reserved* (counted as a failure) before the password is
//! checked, in the same step as the check of the limits, so concurrent
//! attempts cannot all pass the check before any is counted; a success
//! gives the reservation back.
//!
//! Kept in memory: a restart resets the counts, which costs an attacker a
//! restart per window and is not worth a database write per failure.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::clock::NS_PER_SEC;

/// Limits for [`LoginLimiter`].
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Failures per (user, address) before delays start.
    pub pair_free: u32,
    /// First delay; each further failure doubles it.
    pub base_delay_ns: i64,
    /// Longest delay.
    pub max_delay_ns: i64,
    /// Failures allowed per client address per window (higher than per
    /// pair: offices share NAT).
    pub per_addr: u32,
    /// Failures of one name from anywhere in a window after which every
    /// address gets only one free failure for it.
    pub per_user: u32,
    /// Window length; a pair is forgotten this long after its last failure.
    pub window_ns: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            pair_free: 3,
            base_delay_ns: NS_PER_SEC,
            max_delay_ns: 15 * 60 * NS_PER_SEC,
            per_addr: 20,
            per_user: 20,
            window_ns: 15 * 60 * NS_PER_SEC,
        }
    }
}

/// Entries kept before expired ones are swept; bounds memory when an
/// attacker sprays random user names.
const MAX_ENTRIES: usize = 100_000;

#[derive(Clone, Copy, Debug)]
struct Entry {
    /// Start of the window (addr, user) or time of the last failure (pair).
    start_ns: i64,
    failures: u32,
}

/// A counted attempt: a failure unless given back with [`LoginLimiter::success`]
/// or [`LoginLimiter::cancel`].
#[derive(Debug)]
#[must_use = "a reservation is a failure unless given back"]
pub struct Reservation {
    user: String,
    addr: String,
}

/// Failure counters.
#[derive(Debug)]
pub struct LoginLimiter {
    limits: Limits,
    counts: Mutex<HashMap<String, Entry>>,
}

impl LoginLimiter {
    /// A limiter with `limits`.
    pub fn new(limits: Limits) -> Self {
        LoginLimiter {
            limits,
            counts: Mutex::new(HashMap::new()),
        }
    }

    fn keys(user: &str, addr: &str) -> [String; 3] {
        // Case-folded so `Admin` and `admin` share a budget.
        let user = user.to_ascii_lowercase();
        [
            format!("p:{addr}|{user}"),
            format!("a:{addr}"),
            format!("u:{user}"),
        ]
    }

    fn delay(&self, failures_past_free: u32) -> i64 {
        let shift = failures_past_free.min(40);
        self.limits
            .base_delay_ns
            .saturating_mul(1i64 << shift)
            .min(self.limits.max_delay_ns)
    }

    /// Checks the limits for an attempt by `user` from `addr` and, if it
    /// may go ahead, counts it as a failure at once. `Err(seconds)` says how
    /// long to wait.
    pub fn begin(&self, user: &str, addr: &str, now_ns: i64) -> Result<Reservation, u64> {
        let l = self.limits;
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if counts.len() >= MAX_ENTRIES {
            counts.retain(|_, w| now_ns - w.start_ns < l.window_ns);
        }
        let [pair_k, addr_k, user_k] = Self::keys(user, addr);
        let live = |e: Option<&Entry>| {
            e.copied()
                .filter(|e| now_ns - e.start_ns < l.window_ns)
                .unwrap_or(Entry {
                    start_ns: now_ns,
                    failures: 0,
                })
        };
        let pair = live(counts.get(&pair_k));
        let by_addr = live(counts.get(&addr_k));
        let by_user = live(counts.get(&user_k));
        let mut wait = 0i64;
        if by_addr.failures >= l.per_addr {
            wait = wait.max(by_addr.start_ns + l.window_ns - now_ns);
        }
        let free = if by_user.failures >= l.per_user {
            1
        } else {
            l.pair_free
        };
        if pair.failures >= free {
            let until = pair.start_ns + self.delay(pair.failures - free);
            wait = wait.max(until - now_ns);
        }
        if wait > 0 {
            // Round up so a client that waits exactly this long gets in.
            return Err(((wait + NS_PER_SEC - 1) / NS_PER_SEC) as u64);
        }
        counts.insert(
            pair_k,
            Entry {
                start_ns: now_ns,
                failures: pair.failures + 1,
            },
        );
        for (k, e) in [(addr_k, by_addr), (user_k, by_user)] {
            counts.insert(
                k,
                Entry {
                    failures: e.failures + 1,
                    ..e
                },
            );
        }
        Ok(Reservation {
            user: user.to_owned(),
            addr: addr.to_owned(),
        })
    }

    /// The password was right: the name's and the pair's counts are
    /// cleared; the address keeps its other failures (one valid account
    /// must not launder guesses against others) but not this attempt.
    pub fn success(&self, r: Reservation) {
        let [pair_k, addr_k, user_k] = Self::keys(&r.user, &r.addr);
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.remove(&pair_k);
        counts.remove(&user_k);
        if let Some(e) = counts.get_mut(&addr_k) {
            e.failures = e.failures.saturating_sub(1);
        }
    }

    /// The password was never checked (the server was too busy): the
    /// attempt is not counted.
    pub fn cancel(&self, r: Reservation) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        for k in Self::keys(&r.user, &r.addr) {
            if let Some(e) = counts.get_mut(&k) {
                e.failures = e.failures.saturating_sub(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = NS_PER_SEC;

    #[test]
    fn pair_gets_free_failures_then_doubling_delays() {
        let l = LoginLimiter::new(Limits::default());
        let t0 = 1_000 * S;
        for i in 0..3 {
            let _ = l
                .begin("alice", "1.1.1.1", t0)
                .unwrap_or_else(|w| panic!("{i}: {w}"));
        }
        assert_eq!(l.begin("ALICE", "1.1.1.1", t0).unwrap_err(), 1);
        let _ = l.begin("alice", "1.1.1.1", t0 + S).unwrap();
        assert_eq!(l.begin("alice", "1.1.1.1", t0 + S).unwrap_err(), 2);
        let _ = l.begin("alice", "1.1.1.1", t0 + 3 * S).unwrap();
        assert_eq!(l.begin("alice", "1.1.1.1", t0 + 3 * S).unwrap_err(), 4);
        // Another address, and another user, are not affected.
        assert!(l.begin("alice", "2.2.2.2", t0).is_ok());
        assert!(l.begin("bob", "1.1.1.1", t0).is_ok());
    }

    #[test]
    fn concurrent_attempts_are_counted_before_checking() {
        // 40 attempts "at once" (no success or failure reported in between):
        // only the free ones go ahead.
        let l = LoginLimiter::new(Limits::default());
        let ok = (0..40)
            .filter_map(|_| l.begin("alice", "1.1.1.1", 0).ok())
            .count();
        assert_eq!(ok, 3);
    }

    #[test]
    fn a_stranger_cannot_lock_out_the_owner() {
        let l = LoginLimiter::new(Limits::default());
        // Many addresses fail for admin: the name is under attack.
        for i in 0..40 {
            let _ = l.begin("admin", &format!("10.0.0.{i}"), 0);
        }
        // The owner, from a clean address, still gets a try, and after a
        // typo another one a second later.
        let r = l.begin("admin", "192.168.1.5", 0).unwrap();
        drop(r);
        assert!(l.begin("admin", "192.168.1.5", 0).is_err());
        let r = l.begin("admin", "192.168.1.5", S).unwrap();
        l.success(r);
        assert!(l.begin("admin", "192.168.1.5", S).is_ok());
    }

    #[test]
    fn per_addr_limit_spans_user_names_and_success_gives_back_one() {
        let l = LoginLimiter::new(Limits::default());
        for i in 0..20 {
            let _ = l.begin(&format!("user{i}"), "6.6.6.6", 0).unwrap();
        }
        assert_eq!(l.begin("fresh", "6.6.6.6", 0).unwrap_err(), 900);
        assert!(l.begin("fresh", "7.7.7.7", 0).is_ok());
        // After the window, the address may try again.
        assert!(l.begin("fresh", "6.6.6.6", 900 * S).is_ok());

        let l = LoginLimiter::new(Limits::default());
        for _ in 0..25 {
            let r = l.begin("ok", "5.5.5.5", 0).unwrap();
            l.success(r);
        }
        let r = l.begin("ok", "5.5.5.5", 0).unwrap();
        l.cancel(r);
    }
}
