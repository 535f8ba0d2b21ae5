//! `cleannvr-bench thumbs`: what the playback timeline's thumbnails cost while N cameras
//! record (issue 13's target: under 1 % of one core for 16 cameras).
//!
//! cleannvr records N cameras of GStreamer's RTSP server (`tests/peers/gst_rtsp_server.py`,
//! `/h264aac`: 640x360 25 fps H.264, a key frame every second, AAC). Once every camera
//! has a finished segment, the UI's requests are played against it over HTTP: every
//! `--every` seconds, for every camera, a thumbnail for each `--every`-second point of
//! the last `--visible` seconds of indexed footage (a timeline showing one thumbnail per
//! interval, redrawn as footage arrives). Points seen before are served from the disk
//! cache; each new one is decoded once. A first untimed round makes the backlog, so the
//! window sees the steady state: N new thumbnails per interval.
//!
//! Figures, from one run: cleannvr's own thumbnail CPU (`cleannvr_thumbnail_cpu_seconds_total`
//! in `/metrics`, thread CPU time around the work) per thumbnail made and per cache hit,
//! and as a share of one core over the window; cleannvr's whole-process CPU in a window
//! without the requests and one with them (the difference includes HTTP, sessions and
//! audit); and the peer: `ffmpeg` extracting the same key frames at the same width from
//! the same segment files, one process per thumbnail as a script would, CPU from
//! `getrusage(RUSAGE_CHILDREN)`.

use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use crate::procstat::{cpu_seconds, loadavg};
use crate::recorders::Running;

const NS: i64 = 1_000_000_000;
const USER: &str = "bench";
const PASSWORD: &str = "bench thumbnails password";

/// One HTTP/1.1 exchange on a fresh connection: (status, lower-case headers, body).
fn http(
    addr: &str,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    body: Option<&str>,
) -> anyhow::Result<(u16, HashMap<String, String>, Vec<u8>)> {
    let mut s = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(c) = cookie {
        req.push_str(&format!("Cookie: {c}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body.unwrap_or(""));
    s.write_all(req.as_bytes())?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)?;
    let end = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no end of headers")?;
    let head = String::from_utf8_lossy(&resp[..end]).into_owned();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .context("no status")?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    // Bodies here are small and sent whole (Content-Length), never chunked.
    Ok((status, headers, resp[end + 4..].to_vec()))
}

/// The finished segments of `camera`: (start ns, end ns).
fn segments(addr: &str, cookie: &str, camera: &str) -> anyhow::Result<Vec<(i64, i64)>> {
    let (status, _, body) = http(
        addr,
        "GET",
        &format!("/api/cameras/{camera}/recordings"),
        Some(cookie),
        None,
    )?;
    anyhow::ensure!(status == 200, "recordings of {camera}: {status}");
    let v: serde_json::Value = serde_json::from_slice(&body)?;
    Ok(v["segments"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| {
                    Some((
                        cleannvr::clock::parse_rfc3339(s["start"].as_str()?)?,
                        cleannvr::clock::parse_rfc3339(s["end"].as_str()?)?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default())
}

/// cleannvr's thumbnail counters: (made, cached, made CPU-s, cached CPU-s).
fn counters(addr: &str, cookie: &str) -> anyhow::Result<(f64, f64, f64, f64)> {
    let (status, _, body) = http(addr, "GET", "/metrics", Some(cookie), None)?;
    anyhow::ensure!(status == 200, "/metrics: {status}");
    let page = String::from_utf8(body)?;
    let get = |name: &str| -> f64 {
        page.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or(0.0)
    };
    Ok((
        get("cleannvr_thumbnails_made_total"),
        get("cleannvr_thumbnails_cached_total"),
        get("cleannvr_thumbnail_cpu_seconds_total{result=\"made\"}"),
        get("cleannvr_thumbnail_cpu_seconds_total{result=\"cached\"}"),
    ))
}

/// A thumbnail made during the window: where its key frame is, for the peer.
struct Made {
    camera: String,
    segment_start: i64,
    frame_ns: i64,
}

/// One round of the UI's requests: every camera, every `every` seconds of the last
/// `visible` seconds of indexed footage. Returns (requests, thumbnails new to this run).
fn round(
    addr: &str,
    cookie: &str,
    cameras: usize,
    every: i64,
    visible: i64,
    seen: &mut BTreeSet<(String, i64)>,
    made: &mut Vec<Made>,
) -> anyhow::Result<(usize, usize)> {
    let (mut requests, mut new) = (0, 0);
    for i in 1..=cameras {
        let camera = format!("cam{i}");
        let segs = segments(addr, cookie, &camera)?;
        let Some(&(_, newest)) = segs.last() else {
            continue;
        };
        let from = (newest - visible * NS).div_euclid(every * NS) * every * NS;
        let mut t = from;
        while t < newest {
            if let Some(&(start, _)) = segs.iter().find(|(s, e)| *s <= t && t < *e) {
                let path = format!(
                    "/api/cameras/{camera}/thumbnail?t={}",
                    cleannvr::clock::rfc3339(t)
                );
                let (status, headers, body) = http(addr, "GET", &path, Some(cookie), None)?;
                requests += 1;
                if status != 200 || !body.starts_with(&[0xff, 0xd8]) {
                    bail!("{path}: {status} {}", String::from_utf8_lossy(&body));
                }
                if seen.insert((camera.clone(), t)) {
                    new += 1;
                    let frame_ns = headers
                        .get("x-frame-time")
                        .and_then(|v| cleannvr::clock::parse_rfc3339(v))
                        .context("no X-Frame-Time")?;
                    made.push(Made {
                        camera: camera.clone(),
                        segment_start: start,
                        frame_ns,
                    });
                }
            }
            t += every * NS;
        }
    }
    Ok((requests, new))
}

/// CPU-seconds of reaped children so far (user + system).
fn children_cpu() -> f64 {
    // SAFETY: getrusage writes into the struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// The peer: `ffmpeg` extracting each key frame of `made` at `width` from its segment
/// file, one process per thumbnail. Returns (thumbnails, CPU-s).
fn ffmpeg_peer(data: &Path, made: &[Made], width: u32, out: &Path) -> anyhow::Result<(usize, f64)> {
    let cpu0 = children_cpu();
    let mut n = 0;
    for m in made {
        let seg = data.join(cleannvr::store::segment_rel_path(
            &m.camera,
            m.segment_start,
        ));
        let offset = (m.frame_ns - m.segment_start) as f64 / NS as f64;
        let jpg = out.join(format!("{n}.jpg"));
        let status = Command::new("ffmpeg")
            .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-ss"])
            .arg(format!("{offset:.3}"))
            .arg("-i")
            .arg(&seg)
            .args(["-frames:v", "1", "-vf"])
            .arg(format!("scale={width}:-2"))
            .args(["-q:v", "5", "-y"])
            .arg(&jpg)
            .stdin(Stdio::null())
            .status()
            .context("running ffmpeg")?;
        anyhow::ensure!(status.success(), "ffmpeg failed on {}", seg.display());
        anyhow::ensure!(
            std::fs::metadata(&jpg).is_ok_and(|m| m.len() > 0),
            "ffmpeg wrote no picture for {}",
            seg.display()
        );
        n += 1;
    }
    Ok((n, children_cpu() - cpu0))
}

/// Runs the figure and prints a Markdown table.
pub fn run(
    cleannvr: &Path,
    gst_script: &Path,
    cameras: usize,
    window: u64,
    every: i64,
    visible: i64,
    dir: &Path,
) -> anyhow::Result<()> {
    let load_before = loadavg();
    let gst = crate::g711::start_gst(gst_script)?;
    let url = format!("rtsp://127.0.0.1:{}/h264aac", gst.port);
    let urls = vec![url; cameras];
    let nvr_dir = dir.join("thumbs");
    let nvr = Running::start_with_user(cleannvr, &urls, &nvr_dir, USER, PASSWORD)?;
    let data = nvr_dir.join("data");
    let deadline = Instant::now() + Duration::from_secs(60);
    let addr = loop {
        if let Some(a) = nvr.web_addr().filter(|a| !a.is_empty()) {
            break a;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "cleannvr did not listen within 60 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let body = serde_json::json!({ "username": USER, "password": PASSWORD }).to_string();
    let (status, headers, _) = http(&addr, "POST", "/api/login", None, Some(&body))?;
    anyhow::ensure!(status == 200, "login: {status}");
    let cookie = headers
        .get("set-cookie")
        .and_then(|c| c.split(';').next())
        .context("no session cookie")?
        .to_owned();
    eprintln!("thumbs: {cameras} cameras recording; waiting for a finished segment of each");
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let mut ready = 0;
        for i in 1..=cameras {
            if !segments(&addr, &cookie, &format!("cam{i}"))?.is_empty() {
                ready += 1;
            }
        }
        if ready == cameras {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {ready} of {cameras} cameras finished a segment in 240 s (logs under {})",
            nvr_dir.display()
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    let pid = nvr.pids()[0];
    let cpu = || cpu_seconds(pid).unwrap_or(0.0);

    // Window 1: recording only.
    eprintln!("thumbs: window 1 ({window} s), recording only");
    let (c0, t0) = (cpu(), Instant::now());
    std::thread::sleep(Duration::from_secs(window));
    let (rec_cpu, rec_secs) = (cpu() - c0, t0.elapsed().as_secs_f64());

    // The backlog, untimed: every point recorded so far is made once.
    let mut seen = BTreeSet::new();
    let mut backlog = Vec::new();
    let (_, first) = round(
        &addr,
        &cookie,
        cameras,
        every,
        visible,
        &mut seen,
        &mut backlog,
    )?;
    eprintln!("thumbs: backlog of {first} thumbnails made; window 2 ({window} s), recording and the UI's requests");

    // Window 2: recording and the UI's requests.
    let before = counters(&addr, &cookie)?;
    let (c0, t0) = (cpu(), Instant::now());
    let mut made = Vec::new();
    let mut requests = 0;
    let mut rounds = 0;
    while t0.elapsed() < Duration::from_secs(window) {
        let round_start = Instant::now();
        let (r, _) = round(
            &addr, &cookie, cameras, every, visible, &mut seen, &mut made,
        )?;
        requests += r;
        rounds += 1;
        let next = round_start + Duration::from_secs(every as u64);
        let end = t0 + Duration::from_secs(window);
        std::thread::sleep(next.min(end).saturating_duration_since(Instant::now()));
    }
    let (ui_cpu, ui_secs) = (cpu() - c0, t0.elapsed().as_secs_f64());
    let after = counters(&addr, &cookie)?;
    nvr.stop(Duration::from_secs(10))?;
    drop(gst);

    let made_n = after.0 - before.0;
    let cached_n = after.1 - before.1;
    let made_cpu = after.2 - before.2;
    let cached_cpu = after.3 - before.3;
    let thumb_share = (made_cpu + cached_cpu) / ui_secs;
    let per_made = made_cpu / made_n.max(1.0);
    let per_hit = cached_cpu / cached_n.max(1.0);

    // The peer on the same key frames of the same files.
    let out = dir.join("ffmpeg-thumbs");
    std::fs::create_dir_all(&out)?;
    let (ff_n, ff_cpu) = ffmpeg_peer(&data, &made, cleannvr::web::media::THUMB_WIDTH, &out)?;
    let per_ff = ff_cpu / ff_n.max(1) as f64;
    let load_after = loadavg();

    println!(
        "\n{cameras} cameras (GStreamer /h264aac 640x360 25 fps, key frame every 1 s), \
         thumbnails every {every} s of the last {visible} s, a round every {every} s; \
         windows {rec_secs:.0} s and {ui_secs:.0} s; 1-min load {load_before:.2} -> {load_after:.2}\n"
    );
    println!("| figure | cleannvr | peer, same run | ratio |");
    println!("|---|---:|---:|---:|");
    println!(
        "| CPU-ms per thumbnail made (decode, scale, JPEG, cache write) | {:.2} ({made_n:.0} made) | ffmpeg one process per thumbnail: {:.2} ({ff_n}) | **{:.3}×** ffmpeg |",
        per_made * 1e3,
        per_ff * 1e3,
        per_made / per_ff
    );
    println!(
        "| CPU-ms per thumbnail from the disk cache | {:.3} ({cached_n:.0} hits) | – | {:.3}× a thumbnail made |",
        per_hit * 1e3,
        per_hit / per_made.max(1e-9)
    );
    println!(
        "| thumbnail CPU, share of one core, {cameras} cameras | **{:.3} %** ({requests} requests in {rounds} rounds, {made_n:.0} made) | ffmpeg making the same: {:.3} % | {:.3}× |",
        100.0 * thumb_share,
        100.0 * ff_cpu / ui_secs,
        thumb_share / (ff_cpu / ui_secs).max(1e-9)
    );
    println!(
        "| cleannvr whole process, share of one core | recording only: {:.2} %; recording + requests: {:.2} % (difference {:+.2} points, HTTP and audit included) | – | – |",
        100.0 * rec_cpu / rec_secs,
        100.0 * ui_cpu / ui_secs,
        100.0 * (ui_cpu / ui_secs - rec_cpu / rec_secs)
    );
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}
