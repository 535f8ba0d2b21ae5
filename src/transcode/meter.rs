//! What one H.265 → H.264 conversion costs on this machine, measured from the conversions
//! that run, so the converter pool ([`super::Limiter`]) is sized by CPU rather than by a
//! fixed count: a 4K camera costs many times a 720p one, and a fast server many times
//! less than a small box.
//!
//! The cost is CPU-seconds per second of video converted, i.e. the cores one viewer
//! watching a conversion in real time keeps busy. The CPU comes from `/proc/self/task`:
//! every conversion runs on a thread whose name starts with [`THREAD_PREFIX`], and
//! Linux gives the decoder's and libx264's worker threads the name of the thread that
//! made them, so summing those threads counts all of a conversion's work and nothing
//! else's (recording, web). The seconds of video come from the conversions themselves
//! ([`converted`]). Samples are taken by the converting threads, at most every
//! [`SAMPLE_EVERY`], and only a sample over at least [`MIN_MEDIA_S`] of video counts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

/// Names of conversion threads begin with this (Linux allows 15 bytes in all).
pub const THREAD_PREFIX: &str = "tc-";
/// Least seconds of video a sample must cover to update the cost (shorter ones are noise:
/// the kernel counts CPU in 10 ms ticks, and encoders start with a burst).
const MIN_MEDIA_S: f64 = 4.0;
/// Shortest time between two samples.
const SAMPLE_EVERY: Duration = Duration::from_secs(2);
/// Weight of a new sample in the running estimate.
const WEIGHT: f64 = 0.3;

/// 90 kHz ticks of video converted by every conversion since start-up.
static MEDIA_TICKS: AtomicU64 = AtomicU64::new(0);
/// Conversions ended since start-up ([`Conversion`]).
static ENDED: AtomicU64 = AtomicU64::new(0);

/// Held by a conversion's thread for as long as it converts. A conversion that ends
/// between two samples takes its threads' CPU since the first with it (`/proc` no longer
/// lists them) while its video stays counted, so a sample across its end would make
/// conversions look nearly free (and the pool huge): such a sample is dropped instead.
/// Create it before the decoder and encoder, so it ends after their worker threads.
pub struct Conversion(());

impl Conversion {
    /// Marks the calling thread's conversion as running.
    pub fn start() -> Conversion {
        Conversion(())
    }
}

impl Drop for Conversion {
    fn drop(&mut self) {
        ENDED.fetch_add(1, Ordering::SeqCst);
    }
}

#[derive(Default)]
struct State {
    last_sample: Option<Instant>,
    /// CPU ticks of each conversion thread at the last sample, by thread id.
    threads: HashMap<u32, u64>,
    /// Media ticks at the last sample that counted.
    media: u64,
    /// CPU ticks counted since then (threads come and go between samples).
    cpu: u64,
    /// [`ENDED`] at the last sample.
    ended: u64,
}

static STATE: LazyLock<Mutex<State>> = LazyLock::new(Default::default);

/// Called by a conversion for each frame it produced (`ticks` of 90 kHz video); now and
/// then takes a sample and updates the pool's cost.
pub fn converted(ticks: i64) {
    MEDIA_TICKS.fetch_add(ticks.max(0) as u64, Ordering::Relaxed);
    // Another thread sampling now: this frame's ticks are in its next sample.
    let Ok(mut st) = STATE.try_lock() else {
        return;
    };
    if st.last_sample.is_some_and(|t| t.elapsed() < SAMPLE_EVERY) {
        return;
    }
    st.last_sample = Some(Instant::now());
    let Some(cost) = sample(&mut st) else {
        return;
    };
    super::limiter().measured(cost);
}

/// Reads the conversion threads' CPU; returns the cost over the video converted since the
/// last counted sample once that is long enough.
fn sample(st: &mut State) -> Option<f64> {
    let ended = ENDED.load(Ordering::SeqCst);
    let now = match conversion_threads() {
        Ok(t) => t,
        Err(e) => {
            tracing::debug!(error = %e, "cannot read the conversion threads' CPU time");
            return None;
        }
    };
    let ended_after = ENDED.load(Ordering::SeqCst);
    if ended != st.ended || ended_after != ended {
        // A conversion ended since the last sample (or while this one read): its CPU is
        // partly gone, its video is not. Start a new sample from here.
        st.ended = ended_after;
        st.threads = now;
        st.media = MEDIA_TICKS.load(Ordering::Relaxed);
        st.cpu = 0;
        return None;
    }
    for (tid, ticks) in &now {
        // A thread seen first now did all its work since the last sample.
        st.cpu += ticks.saturating_sub(st.threads.get(tid).copied().unwrap_or(0));
    }
    st.threads = now;
    let media = MEDIA_TICKS.load(Ordering::Relaxed);
    let media_s = (media - st.media) as f64 / 90_000.0;
    if media_s < MIN_MEDIA_S {
        return None;
    }
    let cpu_s = st.cpu as f64 / clock_ticks_per_second();
    st.media = media;
    st.cpu = 0;
    Some(cpu_s / media_s)
}

/// CPU ticks (user + system) of every thread of this process named like a conversion.
fn conversion_threads() -> std::io::Result<HashMap<u32, u64>> {
    let mut out = HashMap::new();
    for entry in std::fs::read_dir("/proc/self/task")? {
        let entry = entry?;
        let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        // A thread that ended since the listing is simply not counted.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if let Some((name, ticks)) = parse_stat(&stat) {
            if name.starts_with(THREAD_PREFIX) {
                out.insert(tid, ticks);
            }
        }
    }
    Ok(out)
}

/// The name and user + system CPU ticks from a `/proc/…/stat` line. The name sits in
/// parentheses and may itself hold spaces and parentheses, so fields count from the last
/// `)`: state is field 3, utime 14, stime 15 (proc(5)).
fn parse_stat(stat: &str) -> Option<(&str, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?;
    let mut fields = stat.get(close + 1..)?.split_ascii_whitespace();
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((name, utime + stime))
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// Folds a new sample into the running estimate (none yet: the sample is it).
pub fn blend(old: Option<f64>, sample: f64) -> f64 {
    match old {
        Some(o) => o + WEIGHT * (sample - o),
        None => sample,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_name_and_cpu_from_a_stat_line_whose_name_has_spaces() {
        let line = "4242 (tc-live (x) 1) S 1 1 1 0 -1 4194368 57 0 0 0 731 42 0 0 20 0 9 0 \
                    1000 1 1 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(parse_stat(line), Some(("tc-live (x) 1", 773)));
        assert_eq!(parse_stat("4242 (cut"), None);
    }

    #[test]
    fn this_threads_own_cpu_shows_under_its_name() {
        let spin = std::thread::Builder::new()
            .name(format!("{THREAD_PREFIX}meter-test"))
            .spawn(|| {
                let t = Instant::now();
                let mut x = 0u64;
                while t.elapsed() < Duration::from_millis(300) {
                    x = x.wrapping_mul(31).wrapping_add(7);
                }
                let threads = conversion_threads().unwrap();
                std::hint::black_box(x);
                threads
            })
            .unwrap();
        let threads = spin.join().unwrap();
        // 300 ms of spinning is about 30 ticks; a loaded machine may give it less.
        assert!(
            threads.values().any(|&t| t >= 5),
            "no busy conversion thread found: {threads:?}"
        );
    }

    #[test]
    fn blending_moves_part_way_to_each_sample() {
        assert_eq!(blend(None, 0.5), 0.5);
        assert!((blend(Some(0.5), 1.5) - 0.8).abs() < 1e-9);
    }
}
