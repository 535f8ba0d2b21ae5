//! `cleannvr-bench g711`: what converting a camera's G.711 audio to AAC costs.
//!
//! Three figures from one run, all as CPU-seconds per camera-hour:
//! * the converter alone, in this process: an hour of 8 kHz μ-law (20 ms packets of a
//!   tone) through `ingest::g711::G711ToAac`, timed on this thread;
//! * side by side for the same window, against GStreamer's RTSP server
//!   (`tests/peers/gst_rtsp_server.py`, 640x360 25 fps H.264 at 600 kbit/s):
//!   cleannvr recording `/h264pcmu` (video copied, G.711 converted), cleannvr recording
//!   `/h264aac` (the same video, AAC copied: the video path without conversion), and
//!   `ffmpeg -c:v copy -c:a aac` recording `/h264pcmu` (the do-it-yourself equivalent).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use crate::procstat::cpu_seconds;
use crate::recorders::{Kind, Running};

/// CPU time of the calling thread, seconds.
fn thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// CPU-seconds to convert one hour of G.711 (`seconds` of audio, scaled to an hour).
fn converter_per_hour(seconds: u64) -> anyhow::Result<f64> {
    use cleannvr::ingest::g711::{G711ToAac, Law};
    let mut conv = G711ToAac::new(Law::Mu, 8000, 1)?;
    // A 440 Hz tone, μ-law coded by the textbook formula (any realistic signal will do:
    // the AAC encoder's work hardly depends on it).
    let mulaw = |x: f64| -> u8 {
        let v = (x * 8000.0) as i32;
        let sign = if v < 0 { 0x80 } else { 0 };
        let m = v.unsigned_abs().min(32635) + 0x84;
        let exp = (31 - m.leading_zeros()).saturating_sub(7).min(7);
        let mant = (m >> (exp + 3)) & 0x0f;
        !(sign | (exp << 4) as u8 | mant as u8)
    };
    let period: Vec<u8> = (0..8000)
        .map(|i| mulaw((i as f64 / 8000.0 * 440.0 * std::f64::consts::TAU).sin()))
        .collect();
    let packets = seconds * 50;
    let mut out = Vec::new();
    let mut bytes = 0usize;
    let t0 = thread_cpu();
    for p in 0..packets {
        let at = (p * 160) as i64;
        let off = (p as usize * 160) % 8000;
        conv.push(at, &period[off..off + 160], &mut out)?;
        bytes += out.drain(..).map(|f| f.data.len()).sum::<usize>();
    }
    let cpu = thread_cpu() - t0;
    eprintln!(
        "converter: {seconds} s of audio in {cpu:.2} CPU-s, {:.1} kbit/s of AAC",
        bytes as f64 * 8.0 / seconds as f64 / 1000.0
    );
    Ok(cpu * 3600.0 / seconds as f64)
}

/// GStreamer's RTSP server (`tests/peers/gst_rtsp_server.py`), stopped when dropped.
pub struct Gst {
    child: Child,
    /// Its RTSP port on 127.0.0.1.
    pub port: u16,
}

impl Drop for Gst {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts GStreamer's RTSP server on a free port and waits for its `ready` line.
pub fn start_gst(script: &Path) -> anyhow::Result<Gst> {
    use std::io::BufRead as _;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut child = Command::new("/usr/bin/python3")
        .arg(script)
        .args(["--port", &port.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", script.display()))?;
    let stdout = child.stdout.take().context("piped")?;
    let mut line = String::new();
    std::io::BufReader::new(stdout).read_line(&mut line)?;
    let gst = Gst { child, port };
    if !line.starts_with("ready") {
        bail!("{} did not start: {line:?}", script.display());
    }
    Ok(gst)
}

/// Runs the figure and prints a Markdown table.
pub fn run(cleannvr: &Path, gst_script: &Path, window: u64, dir: &Path) -> anyhow::Result<()> {
    let conv = converter_per_hour(3600)?;
    let gst = start_gst(gst_script)?;
    let url = |m: &str| format!("rtsp://127.0.0.1:{}/{m}", gst.port);
    let nvr_g711 = Running::start(
        Kind::Cleannvr,
        cleannvr,
        &[url("h264pcmu")],
        &dir.join("g711"),
    )?;
    let nvr_aac = Running::start(
        Kind::Cleannvr,
        cleannvr,
        &[url("h264aac")],
        &dir.join("aac"),
    )?;
    let ff_dir = dir.join("ffmpeg");
    let _ = std::fs::remove_dir_all(&ff_dir);
    std::fs::create_dir_all(&ff_dir)?;
    let ff_out: PathBuf = ff_dir.join("cam1_%05d.mp4");
    let ff_args = ffmpeg_args(&url("h264pcmu"), ff_out.to_str().context("UTF-8 dir")?);
    let mut ff = Command::new("ffmpeg")
        .args(&ff_args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(ff_dir.join("ffmpeg.log"))?)
        .spawn()
        .context("starting ffmpeg")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while nvr_g711.streams_writing() < 1
        || nvr_aac.streams_writing() < 1
        || !ff_dir.join("cam1_00000.mp4").exists()
    {
        if Instant::now() > deadline {
            bail!(
                "recorders did not start writing within 60 s (logs under {})",
                dir.display()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let pids = [nvr_g711.pids()[0], nvr_aac.pids()[0], ff.id()];
    let before: Vec<f64> = pids
        .iter()
        .map(|p| cpu_seconds(*p).unwrap_or(0.0))
        .collect();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(window));
    let secs = t0.elapsed().as_secs_f64();
    let per_hour: Vec<f64> = pids
        .iter()
        .zip(&before)
        .map(|(p, b)| (cpu_seconds(*p).unwrap_or(0.0) - b) * 3600.0 / secs)
        .collect();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(ff.id() as libc::pid_t, libc::SIGINT) };
    let _ = ff.wait();
    nvr_g711.stop(Duration::from_secs(10))?;
    nvr_aac.stop(Duration::from_secs(10))?;
    drop(gst);
    let (g711, aac, ffmpeg) = (per_hour[0], per_hour[1], per_hour[2]);
    println!("| CPU-s per camera-hour ({secs:.0} s window) | value | ratio |");
    println!("|---|---:|---:|");
    println!("| G.711→AAC converter alone (1 h of audio in-process) | {conv:.1} | {:.3}× cleannvr's video path (H.264 + AAC copied) |", conv / aac);
    println!(
        "| cleannvr, H.264 + G.711 converted | {g711:.1} | {:.2}× ffmpeg |",
        g711 / ffmpeg
    );
    println!(
        "| cleannvr, H.264 + AAC copied (video path) | {aac:.1} | {:.2}× ffmpeg |",
        aac / ffmpeg
    );
    println!("| ffmpeg `-c:v copy -c:a aac`, H.264 + G.711 | {ffmpeg:.1} | 1 |");
    println!(
        "\nconversion share of cleannvr's G.711 camera: {:.0} % (converter alone ÷ cleannvr G.711)",
        100.0 * conv / g711
    );
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}

/// The peer: what someone would script to record a G.711 camera with sound in MP4.
fn ffmpeg_args(url: &str, out: &str) -> Vec<String> {
    [
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-rtsp_transport",
        "tcp",
        "-timeout",
        "5000000",
        "-i",
        url,
        "-map",
        "0",
        "-c:v",
        "copy",
        "-c:a",
        "aac",
        "-b:a",
        "32k",
        "-f",
        "segment",
        "-segment_time",
        "60",
        out,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}
