//! Bounded, low-priority workers for long conversions (export working copies and redacted
//! copies): at most [`MAX_ENV`] at once (default 1), each on its own thread at nice
//! [`NICE`], so libx264 and the decoder (whose threads inherit the niceness) yield the CPU
//! to ingest and recording, which never wait for them.
//!
//! Separate from the on-demand [`Limiter`](super::Limiter): an export may wait minutes for
//! a slot, where a browser's transcode is refused at once.

use std::sync::{Condvar, Mutex, OnceLock};

/// Environment variable bounding concurrent export conversions (default 1).
pub const MAX_ENV: &str = "CLEANNVR_MAX_EXPORT_CONVERSIONS";
/// Niceness of conversion threads (0 is normal, 19 the lowest priority).
pub const NICE: i32 = 10;

struct Slots {
    used: Mutex<usize>,
    freed: Condvar,
    max: usize,
}

fn slots() -> &'static Slots {
    static S: OnceLock<Slots> = OnceLock::new();
    S.get_or_init(|| Slots {
        used: Mutex::new(0),
        freed: Condvar::new(),
        max: std::env::var(MAX_ENV)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1usize)
            .max(1),
    })
}

/// Runs `f` once a slot is free, on a new thread at nice [`NICE`], and returns its result.
/// Blocking (waits for the slot and the work).
pub fn run<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    let s = slots();
    {
        let mut used = s.used.lock().unwrap_or_else(|e| e.into_inner());
        while *used >= s.max {
            used = s.freed.wait(used).unwrap_or_else(|e| e.into_inner());
        }
        *used += 1;
    }
    struct Release;
    impl Drop for Release {
        fn drop(&mut self) {
            let s = slots();
            *s.used.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
            s.freed.notify_one();
        }
    }
    let _release = Release;
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            lower_priority();
            f()
        })?
        .join()
        .map_err(|_| anyhow::anyhow!("{name}: the conversion thread panicked"))?
}

/// Lowers the calling thread's priority (Linux: niceness is per thread, and threads it
/// starts inherit it). A failure only costs priority, so it is logged, not returned.
fn lower_priority() {
    // SAFETY: plain syscalls on the calling thread's own id.
    let rc = unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, NICE)
    };
    if rc != 0 {
        tracing::warn!(error = %std::io::Error::last_os_error(), "could not lower a conversion thread's priority");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_at_lower_priority_and_returns_the_result() {
        let nice = run("test", || {
            // SAFETY: reads the calling thread's niceness.
            let n = unsafe {
                let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
                libc::getpriority(libc::PRIO_PROCESS, tid)
            };
            Ok(n)
        })
        .unwrap();
        assert!(nice >= NICE, "niceness {nice}");
        assert!(run("test", || -> anyhow::Result<()> { anyhow::bail!("no") }).is_err());
    }
}
