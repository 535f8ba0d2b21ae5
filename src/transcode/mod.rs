//! Transcode: the only place video is decoded, with ffmpeg-next. Snapshots decode one key
//! frame to JPEG ([`snapshot`]); [`h264`] converts recorded H.265 to H.264 on demand for
//! browsers that cannot decode H.265 (Chromium on Linux, Firefox), and [`live`] does the
//! same for live view, one shared transcoder per camera stream.
//!
//! For exports, [`convert`] makes the H.264 working copy of a native master, and the
//! redacted copy, with the local date and time burned in ([`burn`], [`redact`]) and muted
//! sound as an AAC track of silence ([`aac`]), on bounded low-priority workers
//! ([`background`]).
//!
//! Recording never comes here: it copies the camera's bytes. Transcodes are CPU-heavy, so
//! they are counted against a [`Limiter`] and reported in `/metrics`.

pub mod aac;
pub mod background;
pub mod burn;
pub mod convert;
pub mod flight;
mod frames;
pub mod h264;
pub mod live;
pub mod meter;
pub mod redact;
pub mod snapshot;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Once};

use anyhow::{bail, Context as _};
use ffmpeg_next as ffmpeg;

/// Environment variable fixing the number of concurrent H.264 transcodes (default: sized by
/// the CPU budget over the measured cost of one, see [`Limiter`]).
pub const MAX_ENV: &str = "CLEANNVR_MAX_TRANSCODES";

/// Initializes ffmpeg once and keeps its per-call logging (decoder banners, libx264
/// statistics) out of the server log unless someone raised the level deliberately.
pub fn init() -> anyhow::Result<()> {
    static ONCE: Once = Once::new();
    ffmpeg::init().context("initializing ffmpeg")?;
    ONCE.call_once(|| {
        if matches!(ffmpeg::log::get_level(), Ok(ffmpeg::log::Level::Info)) {
            ffmpeg::log::set_level(ffmpeg::log::Level::Error);
        }
    });
    Ok(())
}

#[cfg(test)]
use crate::mp4::codec::VISUAL_ENTRY_FIXED;
pub use crate::mp4::decoder_config;

/// Opens a decoder for the video described by a sample entry (`avc1`/`hvc1` and their
/// in-band variants), fed with length-prefixed samples as stored in MP4.
pub fn open_decoder(entry: &[u8], threads: usize) -> anyhow::Result<ffmpeg::decoder::Video> {
    init()?;
    let Some((fourcc, record)) = decoder_config(entry) else {
        bail!("unsupported or malformed video sample entry");
    };
    let id = if fourcc.starts_with(b"avc") {
        ffmpeg::codec::Id::H264
    } else {
        ffmpeg::codec::Id::HEVC
    };
    let codec = ffmpeg::decoder::find(id).context("decoder not available in this FFmpeg")?;
    let mut ctx = ffmpeg::codec::context::Context::new_with_codec(codec);
    set_extradata(&mut ctx, record)?;
    let mut threading = ffmpeg::threading::Config::kind(ffmpeg::threading::Type::Frame);
    threading.count = threads;
    ctx.set_threading(threading);
    ctx.decoder().video().context("opening decoder")
}

/// Copies `data` into the codec context's extradata (libav frees it with the context).
fn set_extradata(ctx: &mut ffmpeg::codec::context::Context, data: &[u8]) -> anyhow::Result<()> {
    let pad = ffmpeg::ffi::AV_INPUT_BUFFER_PADDING_SIZE as usize;
    let len = i32::try_from(data.len()).context("extradata too large")?;
    // SAFETY: the context is freshly allocated and owned by `ctx`; the buffer comes from
    // av_mallocz (as libav requires, since it frees it) with the zeroed padding decoders
    // read past the end, and exactly `data.len()` bytes are copied into it.
    unsafe {
        let p = ffmpeg::ffi::av_mallocz(data.len() + pad) as *mut u8;
        if p.is_null() {
            bail!("out of memory for extradata");
        }
        std::ptr::copy_nonoverlapping(data.as_ptr(), p, data.len());
        let c = ctx.as_mut_ptr();
        (*c).extradata = p;
        (*c).extradata_size = len;
    }
    Ok(())
}

/// Process-wide transcode counters (for `/metrics`).
#[derive(Debug, Default)]
pub struct Counters {
    /// Transcodes running now.
    pub active: AtomicU64,
    /// Transcodes started since start-up.
    pub started: AtomicU64,
    /// Requests refused because the limit was reached.
    pub refused: AtomicU64,
    /// Snapshots decoded (cache misses).
    pub snapshots: AtomicU64,
    /// Live transcoders running now (each also counts in `active`).
    pub live_active: AtomicU64,
    /// Viewers watching a live transcoder now; more than `live_active` means sharing.
    pub live_viewers: AtomicU64,
    /// Timeline thumbnails decoded and cached on disk.
    pub thumbnails_made: AtomicU64,
    /// Timeline thumbnails served from the disk cache (or shared with a request for
    /// the same one that made it at the same time).
    pub thumbnails_cached: AtomicU64,
    /// CPU time of the thumbnails made (index lookup, decode, scale, JPEG encode, cache
    /// write), ns of the threads that did it.
    pub thumbnail_made_cpu_ns: AtomicU64,
    /// CPU time of the thumbnails served from the cache (index lookup, file read), ns.
    pub thumbnail_cached_cpu_ns: AtomicU64,
    /// Playbacks near the live edge served from a running live transcoder.
    pub shared: AtomicU64,
}

/// The counters.
pub fn counters() -> &'static Counters {
    static C: Counters = Counters {
        active: AtomicU64::new(0),
        started: AtomicU64::new(0),
        refused: AtomicU64::new(0),
        snapshots: AtomicU64::new(0),
        live_active: AtomicU64::new(0),
        live_viewers: AtomicU64::new(0),
        thumbnails_made: AtomicU64::new(0),
        thumbnails_cached: AtomicU64::new(0),
        thumbnail_made_cpu_ns: AtomicU64::new(0),
        thumbnail_cached_cpu_ns: AtomicU64::new(0),
        shared: AtomicU64::new(0),
    };
    &C
}

/// The process-wide transcode limiter. Global on purpose: the resource it guards is the
/// machine's CPU, shared by every router and request in the process.
pub fn limiter() -> &'static Limiter {
    static L: std::sync::OnceLock<Limiter> = std::sync::OnceLock::new();
    L.get_or_init(Limiter::from_env)
}

/// Appends the transcode series in the Prometheus text format.
pub fn render_metrics(out: &mut String) {
    let limit = limiter().max();
    let c = counters();
    let series: [(&str, &str, &str, u64); 9] = [
        (
            "cleannvr_transcodes_active",
            "gauge",
            "H.265 to H.264 transcodes running",
            c.active.load(Ordering::Relaxed),
        ),
        (
            "cleannvr_transcodes_limit",
            "gauge",
            "Most transcodes allowed at once (the converter pool: budget over cost)",
            limit as u64,
        ),
        (
            "cleannvr_transcodes_started_total",
            "counter",
            "Transcodes started",
            c.started.load(Ordering::Relaxed),
        ),
        (
            "cleannvr_transcodes_refused_total",
            "counter",
            "Transcodes refused at the limit",
            c.refused.load(Ordering::Relaxed),
        ),
        (
            "cleannvr_live_transcodes_active",
            "gauge",
            "Live H.265 to H.264 transcoders running (one per camera stream, shared)",
            c.live_active.load(Ordering::Relaxed),
        ),
        (
            "cleannvr_live_transcode_viewers",
            "gauge",
            "Live viewers watching a transcoder",
            c.live_viewers.load(Ordering::Relaxed),
        ),
        (
            "cleannvr_snapshots_decoded_total",
            "counter",
            "Snapshot key frames decoded",
            c.snapshots.load(Ordering::Relaxed),
        ),
        (
            "cleannvr_thumbnails_made_total",
            "counter",
            "Timeline thumbnails decoded and cached on disk",
            c.thumbnails_made.load(Ordering::Relaxed),
        ),
        (
            "cleannvr_thumbnails_cached_total",
            "counter",
            "Timeline thumbnails served from the disk cache or a decode shared with a request at the same time",
            c.thumbnails_cached.load(Ordering::Relaxed),
        ),
    ];
    for (name, kind, help, v) in series {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"
        ));
    }
    let secs = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64 / 1e9;
    out.push_str(&format!(
        "# HELP cleannvr_thumbnail_cpu_seconds_total CPU time spent serving timeline thumbnails, \
         made (decoded and cached) or read from the cache\n\
         # TYPE cleannvr_thumbnail_cpu_seconds_total counter\n\
         cleannvr_thumbnail_cpu_seconds_total{{result=\"made\"}} {:.6}\n\
         cleannvr_thumbnail_cpu_seconds_total{{result=\"cached\"}} {:.6}\n",
        secs(&c.thumbnail_made_cpu_ns),
        secs(&c.thumbnail_cached_cpu_ns),
    ));
    let l = limiter();
    let gauges: [(&str, &str, f64); 4] = [
        (
            "cleannvr_transcode_cost_cores",
            "Cores one H.265 to H.264 conversion takes here (measured, else assumed)",
            l.cost(),
        ),
        (
            "cleannvr_transcode_cost_measured",
            "1 once the cost of a conversion has been measured on this machine",
            f64::from(u8::from(l.cost_measured())),
        ),
        (
            "cleannvr_transcode_cpu_budget_cores",
            "Cores the converter pool may use (server.transcode_cpu_budget)",
            l.budget(),
        ),
        (
            "cleannvr_transcodes_shared_total",
            "Playbacks served from a running live conversion instead of a new one",
            c.shared.load(Ordering::Relaxed) as f64,
        ),
    ];
    for (name, help, v) in gauges {
        let kind = if name.ends_with("_total") {
            "counter"
        } else {
            "gauge"
        };
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"
        ));
    }
}

/// Cores one conversion is assumed to take until one has been measured: a 1080p libx264
/// encode takes most of a core on a small server, so this errs on the side of recording.
pub const ASSUMED_COST: f64 = 1.0;

/// The converter pool: bounds concurrent transcodes by CPU. Its size is the configured
/// budget (cores, `[server] transcode_cpu_budget`) over what one conversion costs here,
/// measured from the conversions that run ([`meter`]), and at least one; [`MAX_ENV`]
/// fixes it instead. Each conversion holds a [`Permit`] for as long as it runs.
#[derive(Clone, Debug)]
pub struct Limiter {
    inner: Arc<Pool>,
}

#[derive(Debug)]
struct Pool {
    /// Permits held now.
    active: AtomicUsize,
    /// A fixed size (tests, or an operator who wants one), overriding the budget.
    fixed: Option<usize>,
    /// Budget in thousandths of a core.
    budget_milli: AtomicU64,
    /// Measured cost of one conversion, thousandths of a core; 0 until measured.
    cost_milli: AtomicU64,
}

/// A running transcode's claim; dropping it frees the slot and updates the gauge.
#[derive(Debug)]
pub struct Permit {
    pool: Arc<Pool>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.pool.active.fetch_sub(1, Ordering::Relaxed);
        counters().active.fetch_sub(1, Ordering::Relaxed);
    }
}

fn milli(cores: f64) -> u64 {
    (cores * 1000.0).round().max(1.0) as u64
}

impl Limiter {
    /// Exactly `max` at once (at least one), whatever conversions cost.
    pub fn new(max: usize) -> Limiter {
        Limiter::with(Some(max.max(1)), default_budget())
    }

    /// Sized by `budget` cores over the measured cost of a conversion.
    pub fn budgeted(budget: f64) -> Limiter {
        Limiter::with(None, budget)
    }

    fn with(fixed: Option<usize>, budget: f64) -> Limiter {
        Limiter {
            inner: Arc::new(Pool {
                active: AtomicUsize::new(0),
                fixed,
                budget_milli: AtomicU64::new(milli(budget)),
                cost_milli: AtomicU64::new(0),
            }),
        }
    }

    /// A fixed size from [`MAX_ENV`], else sized by half the machine's cores (until the
    /// configured budget is set with [`Limiter::set_budget`]).
    pub fn from_env() -> Limiter {
        match std::env::var(MAX_ENV).ok().and_then(|v| v.parse().ok()) {
            Some(n) => Limiter::new(n),
            None => Limiter::budgeted(default_budget()),
        }
    }

    /// Sets the CPU budget (cores) the pool is sized by.
    pub fn set_budget(&self, cores: f64) {
        self.inner
            .budget_milli
            .store(milli(cores), Ordering::Relaxed);
        tracing::info!(
            budget_cores = cores,
            size = self.max(),
            cost_cores = self.cost(),
            fixed = self.inner.fixed.is_some(),
            "converter pool"
        );
    }

    /// The CPU budget, cores.
    pub fn budget(&self) -> f64 {
        self.inner.budget_milli.load(Ordering::Relaxed) as f64 / 1000.0
    }

    /// Cores one conversion takes: measured, or [`ASSUMED_COST`] before any was.
    pub fn cost(&self) -> f64 {
        match self.inner.cost_milli.load(Ordering::Relaxed) {
            0 => ASSUMED_COST,
            m => m as f64 / 1000.0,
        }
    }

    /// Whether [`Limiter::cost`] has been measured here.
    pub fn cost_measured(&self) -> bool {
        self.inner.cost_milli.load(Ordering::Relaxed) != 0
    }

    /// Folds in a measured cost (cores per conversion) from [`meter`].
    pub fn measured(&self, cores: f64) {
        if !cores.is_finite() || cores <= 0.0 {
            return;
        }
        let before = self.max();
        let old = self.cost_measured().then(|| self.cost());
        self.inner
            .cost_milli
            .store(milli(meter::blend(old, cores)), Ordering::Relaxed);
        let after = self.max();
        if after != before || old.is_none() {
            tracing::info!(
                cost_cores = self.cost(),
                budget_cores = self.budget(),
                size = after,
                "converter pool resized from the measured cost of a conversion"
            );
        }
    }

    /// The pool's size now: fixed, or the budget over the cost (at least one).
    pub fn max(&self) -> usize {
        if let Some(n) = self.inner.fixed {
            return n;
        }
        let budget = self.inner.budget_milli.load(Ordering::Relaxed);
        let cost = milli(self.cost());
        ((budget / cost) as usize).max(1)
    }

    /// Permits held now.
    pub fn active(&self) -> usize {
        self.inner.active.load(Ordering::Relaxed)
    }

    /// A slot now, or `None` if all are taken (the caller answers 503 rather than queue:
    /// a browser would time out anyway).
    pub fn try_acquire(&self) -> Option<Permit> {
        let max = self.max();
        let took = self
            .inner
            .active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok();
        if took {
            counters().active.fetch_add(1, Ordering::Relaxed);
            counters().started.fetch_add(1, Ordering::Relaxed);
            Some(Permit {
                pool: self.inner.clone(),
            })
        } else {
            counters().refused.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// Half the machine's cores: recording must keep the rest.
pub fn default_budget() -> f64 {
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    (cpus as f64 / 2.0).max(0.5)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mp4::{avc1_sample_entry, avcc_from_parameter_sets};

    #[test]
    fn finds_the_decoder_record_in_a_sample_entry() {
        let avcc = avcc_from_parameter_sets(&[0x67, 0x42, 0, 0x1e], &[0x68, 0xce]);
        let e = avc1_sample_entry(320, 240, &avcc);
        assert_eq!(decoder_config(&e), Some((*b"avc1", &avcc[..])));
        assert_eq!(decoder_config(&e[..40]), None);
        let mut bad = e.clone();
        bad[VISUAL_ENTRY_FIXED + 3] = 0xff; // child size past the end
        assert_eq!(decoder_config(&bad), None);
        let mut mp4a = e;
        mp4a[4..8].copy_from_slice(b"mp4a");
        assert_eq!(decoder_config(&mp4a), None);
    }

    #[test]
    fn limiter_refuses_past_the_limit_and_frees_on_drop() {
        let l = Limiter::new(1);
        let p = l.try_acquire().unwrap();
        assert!(l.try_acquire().is_none());
        drop(p);
        assert!(l.try_acquire().is_some());
    }

    #[test]
    fn pool_is_the_budget_over_the_measured_cost() {
        let l = Limiter::budgeted(1.0);
        assert_eq!(l.max(), 1, "assumed a core each until measured");
        assert!(!l.cost_measured());
        l.measured(0.3);
        assert!(l.cost_measured());
        assert_eq!(l.max(), 3, "1 core / 0.3");
        let held: Vec<_> = (0..3).map(|_| l.try_acquire().unwrap()).collect();
        assert!(l.try_acquire().is_none(), "the fourth is refused");
        l.set_budget(2.0);
        assert_eq!(l.max(), 6);
        assert!(l.try_acquire().is_some());
        drop(held);
        assert_eq!(l.active(), 0);
        // A costlier camera shrinks it, but never below one.
        l.measured(10.0);
        assert_eq!(l.max(), 1);
        assert_eq!(Limiter::new(4).max(), 4, "fixed size ignores the cost");
    }
}
