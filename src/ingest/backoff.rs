//! Capped exponential reconnect delay with jitter, so a site full of cameras
//! that lost power together does not reconnect in lockstep.

use std::time::Duration;

/// Reconnect delay policy: 1 s doubling to 30 s, ±20 % jitter.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    min: Duration,
    max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(Duration::from_secs(1), Duration::from_secs(30))
    }
}

impl Backoff {
    /// A policy starting at `min` and capped at `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            next: min,
            min,
            max,
        }
    }

    /// The delay before the next attempt (jittered), advancing the policy.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        let jitter = rand::random::<f64>() * 0.4 + 0.8;
        base.mul_f64(jitter)
    }

    /// Rejected credentials will not fix themselves within seconds: wait the
    /// cap straight away, so a locked-out camera is not hammered.
    pub fn auth_failed_delay(&mut self) -> Duration {
        self.next = self.max;
        self.next_delay()
    }

    /// Called once a session delivered frames: the next failure starts small again.
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_cap_with_bounded_jitter() {
        let mut b = Backoff::default();
        let d: Vec<f64> = (0..8).map(|_| b.next_delay().as_secs_f64()).collect();
        let bases = [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0];
        for (got, base) in d.iter().zip(bases) {
            assert!(
                *got >= base * 0.8 - 1e-9 && *got <= base * 1.2 + 1e-9,
                "{got} vs {base}"
            );
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(1200));
    }

    #[test]
    fn auth_failure_waits_the_cap() {
        let mut b = Backoff::default();
        assert!(b.auth_failed_delay() >= Duration::from_secs(24));
    }
}
