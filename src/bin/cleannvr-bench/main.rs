//! `cleannvr-bench`: reproducible benchmarks of cleannvr against the
//! recorders people would script instead (ffmpeg, GStreamer), on the same
//! synthetic streams in the same run. See `docs/BENCHMARKS.md`.
//!
//! ```text
//! cargo build --release
//! target/release/cleannvr-bench --quick          # < 5 min
//! target/release/cleannvr-bench                  # full run
//! ```
//!
//! Every recorder, and the synthetic camera, runs as its own process so its
//! CPU (utime + stime from `/proc/<pid>/stat`) and memory are measured
//! apart. Everything listens on 127.0.0.1 only.

mod camera;
mod drain;
mod g711;
mod index;
mod live;
mod procstat;
mod recorders;
mod thumbs;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use serde::Serialize;

use camera::Camera;
use procstat::{cpu_seconds, cpu_seconds_all, SysCpu};
use recorders::{Kind, Running};

/// Benchmarks cleannvr against ffmpeg and GStreamer on synthetic cameras.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// Short run (< 5 minutes): N = 1, 8, 32, 10 s windows, 30 s loss run at N = 100, 8 s live run.
    #[arg(long)]
    quick: bool,
    /// Scratch directory (recordings are deleted after each run).
    #[arg(long, default_value = "/tmp/cleannvr-bench")]
    dir: PathBuf,
    /// Write the Markdown report here.
    #[arg(long, default_value = "target/bench-report.md")]
    report: PathBuf,
    /// Write the raw figures as JSON here.
    #[arg(long, default_value = "target/bench-report.json")]
    json: PathBuf,
    /// Parts to run: any of cpu, loss, index, live.
    #[arg(long, value_delimiter = ',', default_value = "cpu,loss,index,live")]
    only: Vec<String>,
    /// Stream counts for the CPU figure (default: 1,8,32 quick; 1,8,32,64 full).
    #[arg(long, value_delimiter = ',')]
    streams: Option<Vec<usize>>,
    /// Measurement window per CPU run, seconds (default 10 quick, 60 full; 1.5× at N = 1).
    #[arg(long)]
    window: Option<u64>,
    /// Recorders for the CPU figure.
    #[arg(long, value_delimiter = ',', default_value = "cleannvr,ffmpeg,gst")]
    recorders: Vec<String>,
    /// Stream counts tried for the zero-loss figure, in order, until loss
    /// (default: 100 quick; 100,150,200,250 full).
    #[arg(long, value_delimiter = ',')]
    loss_streams: Option<Vec<usize>>,
    /// Seconds each zero-loss run streams (default 30 quick, 120 full).
    #[arg(long)]
    loss_seconds: Option<u64>,
    /// Peers also run at each zero-loss N (default: ffmpeg quick; ffmpeg,gst full;
    /// `null` adds retina readers that record nothing, the harness's own floor).
    #[arg(long, value_delimiter = ',')]
    loss_peers: Option<Vec<String>>,
    /// Segments per camera in the large index archive (43200 = 30 days of 1-minute segments).
    #[arg(long, default_value_t = 43_200)]
    index_per_camera: i64,
    /// Cameras for the live-latency figure (each with `--live-viewers` WebSockets).
    #[arg(long, default_value_t = 16)]
    live_cameras: usize,
    /// WebSocket viewers per camera for the live-latency figure.
    #[arg(long, default_value_t = 4)]
    live_viewers: usize,
    /// The cleannvr binary (default: next to this one).
    #[arg(long)]
    cleannvr: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Sub>,
}

#[derive(Subcommand, Debug)]
enum Sub {
    /// Internal: serve the synthetic camera (used by the benchmark itself).
    #[command(hide = true)]
    Camera {
        /// Streams served as /cam1../camN.
        #[arg(long, default_value_t = 1)]
        cameras: usize,
        /// `main` (1080p25, 4 Mbit/s) or `sub` (360p25, 512 kbit/s).
        #[arg(long, default_value = "main")]
        profile: String,
        /// Frames per session, then silence.
        #[arg(long)]
        frames: Option<u64>,
    },
    /// The cost of converting G.711 audio to AAC, against GStreamer's RTSP server and
    /// ffmpeg (run from the repository root; prints a Markdown table).
    G711 {
        /// Measurement window, seconds.
        #[arg(long, default_value_t = 120)]
        window: u64,
        /// The GStreamer RTSP server script.
        #[arg(long, default_value = "tests/peers/gst_rtsp_server.py")]
        gst_script: PathBuf,
    },
    /// The timeline thumbnails' CPU cost while N cameras of GStreamer's RTSP server
    /// record, with the UI's requests, against ffmpeg extracting the same thumbnails
    /// (run from the repository root; prints a Markdown table).
    Thumbs {
        /// Cameras recording (all from the peer's `/h264aac`).
        #[arg(long, default_value_t = 16)]
        cameras: usize,
        /// Length of each measurement window, seconds.
        #[arg(long, default_value_t = 120)]
        window: u64,
        /// One thumbnail per this many seconds of footage, and a round of requests as often.
        #[arg(long, default_value_t = 10)]
        every: i64,
        /// Seconds of footage (the newest) a round asks thumbnails for.
        #[arg(long, default_value_t = 300)]
        visible: i64,
        /// The GStreamer RTSP server script.
        #[arg(long, default_value = "tests/peers/gst_rtsp_server.py")]
        gst_script: PathBuf,
    },
    /// Internal: the `null` recorder (retina readers that count frames).
    #[command(hide = true)]
    Drain {
        /// Where to mark started streams and write `frames.json`.
        #[arg(long)]
        dir: PathBuf,
        /// Stream URLs, recorded as cam1..camN.
        urls: Vec<String>,
    },
}

/// One CPU/memory run.
#[derive(Clone, Debug, Serialize)]
struct CpuRun {
    recorder: String,
    streams: usize,
    window_s: f64,
    /// Streams that had started a file when measuring began.
    streams_writing: usize,
    cpu_s: f64,
    cpu_s_per_stream_hour: f64,
    camera_cpu_s_per_stream_hour: f64,
    rss_kib: u64,
    pss_kib: u64,
    /// Whole-machine busy fraction during the window (all processes, all agents).
    machine_busy: f64,
}

/// A recorder whose slowest stream ends further behind real time than this
/// did not keep up, even if TCP flow control saved every frame.
const MAX_BEHIND_S: f64 = 2.0;

/// One zero-loss run.
#[derive(Clone, Debug, Serialize)]
struct LossRun {
    recorder: String,
    streams: usize,
    seconds: f64,
    sessions: u64,
    sent: u64,
    recorded: u64,
    lost: i64,
    /// Streams with fewer frames recorded than the limit.
    streams_short: usize,
    /// How far behind real time the slowest stream's last frame was sent
    /// (the recorder read too slowly and TCP held the camera back), s.
    behind_s: f64,
    /// Recorder CPU as a share of all cores over the streaming window.
    cpu_share: f64,
    camera_cpu_share: f64,
    machine_busy: f64,
}

/// The live-latency run.
#[derive(Clone, Debug, Serialize)]
struct LiveRun {
    cameras: usize,
    viewers_per_camera: usize,
    window_s: f64,
    /// Camera send → WebSocket message received, through cleannvr.
    through_cleannvr: live::Latency,
    /// Camera send → frame out of a plain RTSP client (retina) reading the camera.
    direct: live::Latency,
    viewers_failed: usize,
    /// cleannvr CPU as a share of all cores while the viewers watched.
    cpu_share: f64,
}

#[derive(Debug, Default, Serialize)]
struct Report {
    machine: String,
    commit: String,
    mode: String,
    started: String,
    load_before: f64,
    load_after: f64,
    camera_profile: String,
    cpu: Vec<CpuRun>,
    loss: Vec<LossRun>,
    index: Vec<index::IndexFigures>,
    live: Option<LiveRun>,
    commands: Vec<(String, String)>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match &cli.command {
        Some(Sub::Camera {
            cameras,
            profile,
            frames,
        }) => return camera::run(*cameras, profile, *frames),
        Some(Sub::Drain { dir, urls }) => return drain::run(dir, urls),
        Some(Sub::G711 { .. }) | Some(Sub::Thumbs { .. }) | None => {}
    }
    let cleannvr = match &cli.cleannvr {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("exe has no directory")?
            .join("cleannvr"),
    };
    anyhow::ensure!(
        cleannvr.exists(),
        "{} not found: run `cargo build --release` first",
        cleannvr.display()
    );
    std::fs::create_dir_all(&cli.dir)?;
    if let Some(Sub::G711 { window, gst_script }) = &cli.command {
        return g711::run(&cleannvr, gst_script, *window, &cli.dir);
    }
    if let Some(Sub::Thumbs {
        cameras,
        window,
        every,
        visible,
        gst_script,
    }) = &cli.command
    {
        return thumbs::run(
            &cleannvr, gst_script, *cameras, *window, *every, *visible, &cli.dir,
        );
    }
    let started = Instant::now();
    let mut report = Report {
        machine: procstat::machine(),
        commit: git_commit(),
        mode: if cli.quick { "quick" } else { "full" }.into(),
        started: now_utc(),
        load_before: procstat::loadavg(),
        camera_profile: "bench_main: 1920x1080 25 fps, 4000 kbit/s, GOP 50, 10 s loop".into(),
        ..Default::default()
    };
    let wanted = |k: Kind| recorders::available(k);
    for k in [Kind::Cleannvr, Kind::Ffmpeg, Kind::Gst] {
        if wanted(k) {
            report
                .commands
                .push((k.to_string(), recorders::command_line(k, &cleannvr)));
        }
    }
    eprintln!(
        "machine: {}; load {:.2}",
        report.machine, report.load_before
    );

    if cli.only.iter().any(|s| s == "cpu") {
        cpu_phase(&cli, &cleannvr, &mut report)?;
        write_outputs(&cli, &mut report)?;
    }
    if cli.only.iter().any(|s| s == "loss") {
        loss_phase(&cli, &cleannvr, &mut report)?;
        write_outputs(&cli, &mut report)?;
    }
    if cli.only.iter().any(|s| s == "index") {
        index_phase(&cli, &mut report)?;
        write_outputs(&cli, &mut report)?;
    }
    if cli.only.iter().any(|s| s == "live") {
        live_phase(&cli, &cleannvr, &mut report)?;
    }
    report.load_after = procstat::loadavg();
    write_outputs(&cli, &mut report)?;
    eprintln!(
        "done in {:.0} s; report in {}",
        started.elapsed().as_secs_f64(),
        cli.report.display()
    );
    let _ = std::fs::remove_dir_all(&cli.dir);
    Ok(())
}

fn parse_kinds(names: &[String]) -> anyhow::Result<Vec<Kind>> {
    names
        .iter()
        .map(|n| match n.as_str() {
            "cleannvr" => Ok(Kind::Cleannvr),
            "ffmpeg" => Ok(Kind::Ffmpeg),
            "gst" | "gstreamer" => Ok(Kind::Gst),
            "null" => Ok(Kind::Null),
            o => anyhow::bail!("unknown recorder {o:?}"),
        })
        .filter(|k| k.as_ref().map_or(true, |k| recorders::available(*k)))
        .collect()
}

fn cpu_phase(cli: &Cli, cleannvr: &Path, report: &mut Report) -> anyhow::Result<()> {
    let ns = cli.streams.clone().unwrap_or(if cli.quick {
        vec![1, 8, 32]
    } else {
        vec![1, 8, 32, 64]
    });
    let window = cli.window.unwrap_or(if cli.quick { 10 } else { 60 });
    let kinds = parse_kinds(&cli.recorders)?;
    let max = ns.iter().copied().max().unwrap_or(1);
    let cam = Camera::start(max, "main", None, &cli.dir.join("camera-cpu.log"))?;
    for (round, &n) in ns.iter().enumerate() {
        let urls: Vec<String> = (1..=n).map(|i| cam.url(i)).collect();
        // Rotate the order so no recorder always runs first after a change of N.
        let mut order = kinds.clone();
        let len = order.len().max(1);
        order.rotate_left(round % len);
        let win = if n == 1 { window * 3 / 2 } else { window };
        for kind in order {
            eprintln!("cpu: {kind} x {n} for {win} s");
            let dir = cli.dir.join(format!("{kind}-{n}"));
            let mut rec = Running::start(kind, cleannvr, &urls, &dir)?;
            // Warm up: every stream connected and writing, start-up CPU excluded.
            let deadline = Instant::now() + Duration::from_secs(20);
            std::thread::sleep(Duration::from_secs(3));
            while rec.streams_writing() < n && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(200));
            }
            std::thread::sleep(Duration::from_secs(1));
            let writing = rec.streams_writing();
            if rec.exited() > 0 {
                eprintln!(
                    "  warning: {} process(es) exited early; see {}",
                    rec.exited(),
                    dir.join("logs").display()
                );
            }
            let pids = rec.pids();
            let (c0, k0, s0, t0) = (
                cpu_seconds_all(&pids),
                cpu_seconds(cam.pid()).unwrap_or(0.0),
                SysCpu::now(),
                Instant::now(),
            );
            std::thread::sleep(Duration::from_secs(win));
            let (c1, k1, s1, t1) = (
                cpu_seconds_all(&pids),
                cpu_seconds(cam.pid()).unwrap_or(0.0),
                SysCpu::now(),
                Instant::now(),
            );
            let rss = pids.iter().filter_map(|&p| procstat::rss_kib(p)).sum();
            let pss = pids.iter().filter_map(|&p| procstat::pss_kib(p)).sum();
            rec.stop(Duration::from_secs(30))?;
            let _ = std::fs::remove_dir_all(&dir);
            let secs = (t1 - t0).as_secs_f64();
            let stream_hours = n as f64 * secs / 3600.0;
            let run = CpuRun {
                recorder: kind.to_string(),
                streams: n,
                window_s: secs,
                streams_writing: writing,
                cpu_s: c1 - c0,
                cpu_s_per_stream_hour: (c1 - c0) / stream_hours,
                camera_cpu_s_per_stream_hour: (k1 - k0) / stream_hours,
                rss_kib: rss,
                pss_kib: pss,
                machine_busy: s1.busy_since(&s0),
            };
            eprintln!(
                "  {:.2} CPU-s/stream-hour ({} of {n} writing), RSS {} MiB, machine {:.0}% busy",
                run.cpu_s_per_stream_hour,
                writing,
                rss / 1024,
                run.machine_busy * 100.0
            );
            report.cpu.push(run);
        }
    }
    Ok(())
}

fn loss_phase(cli: &Cli, cleannvr: &Path, report: &mut Report) -> anyhow::Result<()> {
    let ladder = cli.loss_streams.clone().unwrap_or(if cli.quick {
        vec![100]
    } else {
        vec![100, 150, 200, 250]
    });
    let secs = cli.loss_seconds.unwrap_or(if cli.quick { 30 } else { 120 });
    let peers = cli.loss_peers.clone().unwrap_or(if cli.quick {
        vec!["ffmpeg".into()]
    } else {
        vec!["ffmpeg".into(), "gst".into()]
    });
    let mut alive: Vec<Kind> = std::iter::once(Kind::Cleannvr)
        .chain(
            parse_kinds(&peers)?
                .into_iter()
                .filter(|k| *k != Kind::Cleannvr),
        )
        .collect();
    let frames = secs * 25;
    let max = ladder.iter().copied().max().unwrap_or(1);
    let mut cam = Camera::start(max, "main", Some(frames), &cli.dir.join("camera-loss.log"))?;
    for &n in &ladder {
        let urls: Vec<String> = (1..=n).map(|i| cam.url(i)).collect();
        let mut next_alive = Vec::new();
        for &kind in &alive {
            eprintln!("loss: {kind} x {n} for {secs} s");
            let dir = cli.dir.join(format!("loss-{kind}-{n}"));
            cam.reset_late()?;
            let st0 = cam.stats()?;
            let (k0, s0, t0) = (
                cpu_seconds(cam.pid()).unwrap_or(0.0),
                SysCpu::now(),
                Instant::now(),
            );
            let rec = Running::start(kind, cleannvr, &urls, &dir)?;
            let pids = rec.pids();
            let deadline = t0 + Duration::from_secs(secs + 60);
            loop {
                std::thread::sleep(Duration::from_millis(250));
                let st = cam.stats()?.since(&st0);
                if st.finished >= n as u64 || Instant::now() > deadline {
                    break;
                }
            }
            let (c1, k1, s1, t1) = (
                cpu_seconds_all(&pids),
                cpu_seconds(cam.pid()).unwrap_or(0.0),
                SysCpu::now(),
                Instant::now(),
            );
            // Let the last frames drain out of socket buffers and queues.
            std::thread::sleep(Duration::from_secs(2));
            rec.stop(Duration::from_secs(60))?;
            let st = cam.stats()?.since(&st0);
            let per_stream = recorders::count_frames(kind, &dir, n)?;
            let recorded: u64 = per_stream.iter().sum();
            let wall = (t1 - t0).as_secs_f64();
            let run = LossRun {
                recorder: kind.to_string(),
                streams: n,
                seconds: wall,
                sessions: st.sessions,
                sent: st.frames,
                recorded,
                lost: st.frames as i64 - recorded as i64,
                streams_short: per_stream.iter().filter(|&&f| f < frames).count(),
                behind_s: st.late_max_us as f64 / 1e6,
                cpu_share: c1 / wall / procstat::cores(),
                camera_cpu_share: (k1 - k0) / wall / procstat::cores(),
                machine_busy: s1.busy_since(&s0),
            };
            eprintln!(
                "  sent {} recorded {} lost {} ({} streams short, {} sessions, {:.2} s behind), cpu {:.0}% of machine, camera {:.0}%",
                run.sent,
                run.recorded,
                run.lost,
                run.streams_short,
                run.sessions,
                run.behind_s,
                run.cpu_share * 100.0,
                run.camera_cpu_share * 100.0
            );
            // Real time: a camera holds a second or two of video, not more.
            if run.lost == 0
                && run.streams_short == 0
                && run.sessions == n as u64
                && run.behind_s < MAX_BEHIND_S
            {
                next_alive.push(kind);
            }
            report.loss.push(run);
            let _ = std::fs::remove_dir_all(&dir);
        }
        alive = next_alive;
        if alive.is_empty() {
            break;
        }
    }
    Ok(())
}

fn index_phase(cli: &Cli, report: &mut Report) -> anyhow::Result<()> {
    let cameras = 25;
    // 10 000 rows: the size-independence baseline; then the 30-day archive.
    for per_camera in [400, cli.index_per_camera] {
        eprintln!("index: {cameras} cameras x {per_camera} segments");
        let f = index::run(&cli.dir.join("index-bench"), cameras, per_camera, 2000)?;
        eprintln!(
            "  load {:.0} rows/s; query p50 {:.0} µs p99 {:.0} µs; insert p50 {:.0} µs; {} MiB",
            f.load_rows_per_sec,
            f.query_us.0,
            f.query_us.1,
            f.insert_us.0,
            f.disk_bytes >> 20
        );
        report.index.push(f);
    }
    let _ = std::fs::remove_dir_all(cli.dir.join("index-bench"));
    Ok(())
}

fn live_phase(cli: &Cli, cleannvr: &Path, report: &mut Report) -> anyhow::Result<()> {
    let (cams, viewers) = (cli.live_cameras, cli.live_viewers);
    let window = Duration::from_secs(if cli.quick { 8 } else { 30 });
    eprintln!(
        "live: {cams} cameras x {viewers} viewers for {} s",
        window.as_secs()
    );
    // Cameras 1..=cams feed cleannvr; the direct readers use the next `cams`.
    let mut cam = Camera::start(cams * 2, "main", None, &cli.dir.join("camera-live.log"))?;
    let urls: Vec<String> = (1..=cams).map(|i| cam.url(i)).collect();
    let dir = cli.dir.join("live");
    let (user, password) = ("bench", "bench-password");
    let rec = Running::start_with_user(cleannvr, &urls, &dir, user, password)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr = loop {
        match rec.web_addr() {
            Some(a) if rec.streams_writing() == cams => break a,
            _ if Instant::now() > deadline => {
                anyhow::bail!(
                    "cleannvr did not start streaming; see {}",
                    dir.join("logs").display()
                )
            }
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    let plays = cam.plays()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let cookie = rt.block_on(live::login(&addr, user, password))?;
    let pids = rec.pids();
    let warmup = Duration::from_secs(3);
    let c0 = cpu_seconds_all(&pids);
    let t0 = Instant::now();
    let (through, failed) = rt.block_on(live::measure_viewers(
        &addr, &cookie, &plays, cams, viewers, warmup, window,
    ))?;
    let cpu_share = (cpu_seconds_all(&pids) - c0) / t0.elapsed().as_secs_f64() / procstat::cores();
    rec.stop(Duration::from_secs(30))?;
    let _ = std::fs::remove_dir_all(&dir);
    let direct_urls: Vec<(usize, String)> =
        (cams + 1..=cams * 2).map(|i| (i, cam.url(i))).collect();
    let direct = rt.block_on(live::measure_direct(
        &direct_urls,
        || cam.plays(),
        Duration::from_secs(2),
        window,
    ))?;
    eprintln!(
        "  through cleannvr p50 {:.1} ms p99 {:.1} ms ({} frames); direct p50 {:.1} ms p99 {:.1} ms",
        through.p50_ms, through.p99_ms, through.samples, direct.p50_ms, direct.p99_ms
    );
    report.live = Some(LiveRun {
        cameras: cams,
        viewers_per_camera: viewers,
        window_s: window.as_secs_f64(),
        through_cleannvr: through,
        direct,
        viewers_failed: failed,
        cpu_share,
    });
    Ok(())
}

fn git_commit() -> String {
    std::process::Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn now_utc() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let d =
        time::OffsetDateTime::from_unix_timestamp(t).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        d.year(),
        d.month() as u8,
        d.day(),
        d.hour(),
        d.minute()
    )
}

fn write_outputs(cli: &Cli, report: &mut Report) -> anyhow::Result<()> {
    if let Some(p) = cli.json.parent() {
        std::fs::create_dir_all(p)?;
    }
    std::fs::write(&cli.json, serde_json::to_string_pretty(report)?)?;
    std::fs::write(&cli.report, markdown(report))?;
    Ok(())
}

fn ratio(a: f64, b: Option<f64>) -> String {
    match b {
        Some(b) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "–".into(),
    }
}

/// The report as Markdown tables.
fn markdown(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Run {} ({} mode) at commit `{}` on {}; 1-minute load {:.2} before, {:.2} after.\nStreams: {}.\n",
        r.started, r.mode, r.commit, r.machine, r.load_before, r.load_after, r.camera_profile
    );
    if !r.cpu.is_empty() {
        let _ = writeln!(s, "#### CPU-seconds per stream-hour recorded\n");
        let _ = writeln!(
            s,
            "| N | recorder | CPU-s / stream-hour | vs ffmpeg | vs GStreamer | RSS MiB | PSS MiB | camera CPU-s / stream-hour | machine busy | window |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|");
        let mut ns: Vec<usize> = r.cpu.iter().map(|c| c.streams).collect();
        ns.dedup();
        ns.sort();
        ns.dedup();
        for n in ns {
            let runs: Vec<&CpuRun> = r.cpu.iter().filter(|c| c.streams == n).collect();
            let of = |name: &str| {
                runs.iter()
                    .find(|c| c.recorder == name)
                    .map(|c| c.cpu_s_per_stream_hour)
            };
            for c in &runs {
                let _ = writeln!(
                    s,
                    "| {n} | {}{} | {:.1} | {} | {} | {:.1} | {:.1} | {:.1} | {:.0}% | {:.0} s |",
                    c.recorder,
                    if c.streams_writing < n {
                        format!(" ({} of {n} writing)", c.streams_writing)
                    } else {
                        String::new()
                    },
                    c.cpu_s_per_stream_hour,
                    ratio(c.cpu_s_per_stream_hour, of("ffmpeg")),
                    ratio(c.cpu_s_per_stream_hour, of("gstreamer")),
                    c.rss_kib as f64 / 1024.0,
                    c.pss_kib as f64 / 1024.0,
                    c.camera_cpu_s_per_stream_hour,
                    c.machine_busy * 100.0,
                    c.window_s
                );
            }
        }
        let _ = writeln!(s);
        // Memory per stream beyond the one-stream baseline.
        let mut mem = String::new();
        for name in ["cleannvr", "ffmpeg", "gstreamer"] {
            let runs: Vec<&CpuRun> = r.cpu.iter().filter(|c| c.recorder == name).collect();
            let (Some(lo), Some(hi)) = (
                runs.iter().min_by_key(|c| c.streams),
                runs.iter().max_by_key(|c| c.streams),
            ) else {
                continue;
            };
            if hi.streams == lo.streams {
                continue;
            }
            let per =
                |a: u64, b: u64| (a as f64 - b as f64) / 1024.0 / (hi.streams - lo.streams) as f64;
            let _ = writeln!(
                mem,
                "| {name} | {} → {} | {:.2} | {:.2} | {:.2} |",
                lo.streams,
                hi.streams,
                per(hi.rss_kib, lo.rss_kib),
                per(hi.pss_kib, lo.pss_kib),
                hi.pss_kib as f64 / 1024.0 / hi.streams as f64
            );
        }
        if !mem.is_empty() {
            let _ = writeln!(s, "#### Memory per stream\n");
            let _ = writeln!(
                s,
                "| recorder | N | RSS MiB / extra stream | PSS MiB / extra stream | PSS MiB / stream at the larger N |\n|---|---|---|---|---|\n{mem}"
            );
        }
    }
    if !r.loss.is_empty() {
        let _ = writeln!(s, "#### Streams recorded with zero frames lost\n");
        let _ = writeln!(
            s,
            "| N | recorder | seconds | sessions | frames sent | frames recorded | lost | streams short | behind real time, s | recorder CPU (share of all cores) | camera CPU | machine busy |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
        );
        for l in &r.loss {
            let _ = writeln!(
                s,
                "| {} | {} | {:.0} | {} | {} | {} | {} | {} | {:.2} | {:.1}% | {:.1}% | {:.0}% |",
                l.streams,
                l.recorder,
                l.seconds,
                l.sessions,
                l.sent,
                l.recorded,
                l.lost,
                l.streams_short,
                l.behind_s,
                l.cpu_share * 100.0,
                l.camera_cpu_share * 100.0,
                l.machine_busy * 100.0
            );
        }
        let _ = writeln!(s);
    }
    if !r.index.is_empty() {
        let _ = writeln!(s, "#### Index (sled, in-process through `Store`)\n");
        let _ = writeln!(
            s,
            "| segments | cameras | bulk load rows/s | insert+flush p50 / p99 µs | 1-hour query p50 / p99 / max µs | rows per query | full camera scan µs | on disk MiB | bytes / segment |\n|---|---|---|---|---|---|---|---|---|"
        );
        for f in &r.index {
            let _ = writeln!(
                s,
                "| {} | {} | {:.0} | {:.0} / {:.0} | {:.0} / {:.0} / {:.0} | {:.1} | {:.0} | {:.0} | {:.0} |",
                f.segments,
                f.cameras,
                f.load_rows_per_sec,
                f.insert_us.0,
                f.insert_us.1,
                f.query_us.0,
                f.query_us.1,
                f.query_us.2,
                f.rows_per_query,
                f.scan_us,
                f.disk_bytes as f64 / 1048576.0,
                f.disk_bytes as f64 / f.segments as f64
            );
        }
        if let [small, big] = &r.index[..] {
            let _ = writeln!(
                s,
                "\np99 query at {} segments vs {}: {}; a full scan of the camera's rows at {} segments takes {} the indexed query (p50).\n",
                big.segments,
                small.segments,
                ratio(big.query_us.1, Some(small.query_us.1)),
                big.segments,
                ratio(big.scan_us, Some(big.query_us.0)),
            );
        }
    }
    if let Some(l) = &r.live {
        let _ = writeln!(s, "#### Live latency (camera send → message received)\n");
        let _ = writeln!(
            s,
            "| path | frames | p50 ms | p99 ms | max ms |\n|---|---|---|---|---|"
        );
        for (name, x) in [
            (
                format!(
                    "through cleannvr: {} cameras × {} WebSocket viewers",
                    l.cameras, l.viewers_per_camera
                ),
                &l.through_cleannvr,
            ),
            (
                format!(
                    "direct: {} plain RTSP clients (retina) on the camera",
                    l.cameras
                ),
                &l.direct,
            ),
        ] {
            let _ = writeln!(
                s,
                "| {name} | {} | {:.2} | {:.2} | {:.2} |",
                x.samples, x.p50_ms, x.p99_ms, x.max_ms
            );
        }
        let _ = writeln!(
            s,
            "\ncleannvr adds {:.2} ms at p50 and {:.2} ms at p99 over reading the camera directly ({} vs direct at p99); {} viewer(s) failed; cleannvr used {:.1}% of all cores meanwhile ({:.0} s window).\n",
            l.through_cleannvr.p50_ms - l.direct.p50_ms,
            l.through_cleannvr.p99_ms - l.direct.p99_ms,
            ratio(l.through_cleannvr.p99_ms, Some(l.direct.p99_ms)),
            l.viewers_failed,
            l.cpu_share * 100.0,
            l.window_s
        );
    }
    if !r.commands.is_empty() {
        let _ = writeln!(
            s,
            "#### Commands (one process per stream for the peers)\n\n```"
        );
        for (k, c) in &r.commands {
            let _ = writeln!(s, "# {k}\n{c}");
        }
        let _ = writeln!(s, "```");
    }
    s
}
