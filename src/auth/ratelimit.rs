//! Login rate limiting: failed attempts are counted per user name and per
//! client address in fixed windows. Once either count reaches its limit,
//! further attempts are refused without checking the password until the
//! window ends, so guessing is capped whatever the attacker's bandwidth.
//!
//! Kept in memory: a restart resets the counts, which costs an attacker a
//! restart per window and is not worth a database write per failure.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::clock::NS_PER_SEC;

/// Limits for [`LoginLimiter`].
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Failures allowed per user name per window.
    pub per_user: u32,
    /// Failures allowed per client address per window (higher: offices share NAT).
    pub per_addr: u32,
    /// Window length.
    pub window_ns: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            per_user: 5,
            per_addr: 20,
            window_ns: 15 * 60 * NS_PER_SEC,
        }
    }
}

/// Entries kept before expired ones are swept; bounds memory when an
/// attacker sprays random user names.
const MAX_ENTRIES: usize = 100_000;

#[derive(Clone, Copy, Debug)]
struct Window {
    start_ns: i64,
    failures: u32,
}

/// Failure counters.
#[derive(Debug)]
pub struct LoginLimiter {
    limits: Limits,
    counts: Mutex<HashMap<String, Window>>,
}

impl LoginLimiter {
    /// A limiter with `limits`.
    pub fn new(limits: Limits) -> Self {
        LoginLimiter {
            limits,
            counts: Mutex::new(HashMap::new()),
        }
    }

    fn user_key(user: &str) -> String {
        // Case-folded so `Admin` and `admin` share a budget.
        format!("u:{}", user.to_ascii_lowercase())
    }

    fn addr_key(addr: &str) -> String {
        format!("a:{addr}")
    }

    /// `Err(seconds)` if an attempt for `user` from `addr` must wait that long.
    pub fn check(&self, user: &str, addr: &str, now_ns: i64) -> Result<(), u64> {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let mut wait = 0i64;
        for (key, limit) in [
            (Self::user_key(user), self.limits.per_user),
            (Self::addr_key(addr), self.limits.per_addr),
        ] {
            if let Some(w) = counts.get(&key) {
                let ends = w.start_ns + self.limits.window_ns;
                if w.failures >= limit && now_ns < ends {
                    wait = wait.max(ends - now_ns);
                }
            }
        }
        if wait > 0 {
            // Round up so a client that waits exactly this long gets in.
            Err(((wait + NS_PER_SEC - 1) / NS_PER_SEC) as u64)
        } else {
            Ok(())
        }
    }

    /// Counts a failed attempt against both the name and the address.
    pub fn failure(&self, user: &str, addr: &str, now_ns: i64) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if counts.len() >= MAX_ENTRIES {
            let window = self.limits.window_ns;
            counts.retain(|_, w| now_ns - w.start_ns < window);
        }
        for key in [Self::user_key(user), Self::addr_key(addr)] {
            let w = counts.entry(key).or_insert(Window {
                start_ns: now_ns,
                failures: 0,
            });
            if now_ns - w.start_ns >= self.limits.window_ns {
                *w = Window {
                    start_ns: now_ns,
                    failures: 0,
                };
            }
            w.failures += 1;
        }
    }

    /// A successful login clears the user's count (not the address's: one
    /// valid account must not launder guesses against others).
    pub fn success(&self, user: &str) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.remove(&Self::user_key(user));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_user_limit_then_window_reset() {
        let l = LoginLimiter::new(Limits::default());
        let t0 = 1_000 * NS_PER_SEC;
        for i in 0..5 {
            assert!(l.check("alice", "1.1.1.1", t0).is_ok(), "attempt {i}");
            l.failure("alice", &format!("10.0.0.{i}"), t0);
        }
        assert_eq!(l.check("ALICE", "9.9.9.9", t0), Err(900));
        assert_eq!(
            l.check("alice", "9.9.9.9", t0 + 899 * NS_PER_SEC + 1),
            Err(1)
        );
        assert!(
            l.check("bob", "9.9.9.9", t0).is_ok(),
            "other users unaffected"
        );
        assert!(l.check("alice", "9.9.9.9", t0 + 900 * NS_PER_SEC).is_ok());
    }

    #[test]
    fn per_addr_limit_spans_user_names() {
        let l = LoginLimiter::new(Limits::default());
        for i in 0..20 {
            l.failure(&format!("user{i}"), "6.6.6.6", 0);
        }
        assert!(l.check("fresh", "6.6.6.6", 0).is_err());
        assert!(l.check("fresh", "7.7.7.7", 0).is_ok());
    }

    #[test]
    fn success_clears_user_but_not_address() {
        let l = LoginLimiter::new(Limits {
            per_user: 2,
            per_addr: 3,
            window_ns: 100,
        });
        l.failure("a", "x", 0);
        l.success("a");
        l.failure("a", "x", 0);
        assert!(l.check("a", "y", 0).is_ok());
        l.failure("b", "x", 0);
        assert!(l.check("c", "x", 0).is_err(), "address has 3 failures");
    }
}
