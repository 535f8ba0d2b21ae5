//! What the conversion benchmarks share: one round of cleannvr's conversion against the
//! `ffmpeg` command doing the same work, each timed the same way (wall and CPU seconds).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use cleannvr::transcode::convert::{self, Converted, Options};

/// User plus system CPU seconds of `who` (`RUSAGE_SELF` or `RUSAGE_CHILDREN`).
pub fn cpu_seconds(who: i32) -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(who, &mut u) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Wall and CPU seconds of one run.
pub type Timed = (f64, f64);

/// One round: `input` converted by cleannvr into `ours`, then by `ffmpeg` with `args`
/// (which name its output; run in the Europe/London zone, as the options' time zone).
pub fn round(
    input: &Path,
    ours: &Path,
    opts: &Options,
    args: &[String],
) -> anyhow::Result<(Converted, Timed, Timed)> {
    let (t0, c0) = (Instant::now(), cpu_seconds(libc::RUSAGE_SELF));
    let mut f = std::fs::File::open(input)?;
    let len = f.metadata()?.len();
    let mut out = std::io::BufWriter::new(std::fs::File::create(ours)?);
    let conv = convert::convert(&mut f, len, &mut out, opts)?;
    drop(out);
    let ours_t = (
        t0.elapsed().as_secs_f64(),
        cpu_seconds(libc::RUSAGE_SELF) - c0,
    );
    let (t0, c0) = (Instant::now(), cpu_seconds(libc::RUSAGE_CHILDREN));
    let st = Command::new("ffmpeg")
        .args(args)
        .env("TZ", "Europe/London")
        .status()?;
    anyhow::ensure!(st.success(), "ffmpeg failed");
    let theirs_t = (
        t0.elapsed().as_secs_f64(),
        cpu_seconds(libc::RUSAGE_CHILDREN) - c0,
    );
    Ok((conv, ours_t, theirs_t))
}

/// Median over rounds of ours / theirs, for wall (0) and CPU (1) seconds.
pub fn median_ratio(ours: &[Timed], theirs: &[Timed], i: usize) -> f64 {
    let at = |t: &Timed| [t.0, t.1][i];
    median(
        ours.iter()
            .zip(theirs)
            .map(|(a, b)| at(a) / at(b))
            .collect(),
    )
}
