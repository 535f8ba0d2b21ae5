//! End-to-end recording against a real third-party RTSP server (GStreamer's
//! gst-rtsp-server): H.264 and H.265 with AAC, G.711 converted to AAC, digest auth, server restarts,
//! and `kill -9` mid-segment.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use cleannvr::store::{SegmentRecord, Store};
use common::*;

const FRAME_NS: i64 = 40_000_000; // 25 fps

fn index(dir: &Path, camera: &str) -> Vec<SegmentRecord> {
    let store = Store::open(&dir.join("data")).unwrap();
    store.iter_camera(camera).map(|r| r.unwrap()).collect()
}

fn camera(id: &str, url: &str, extra: &str) -> String {
    format!("[[camera]]\nid = \"{id}\"\nurl = \"{url}\"\n{extra}\n")
}

fn assert_contiguous_playable(rows: &[SegmentRecord], dir: &Path, codecs_wanted: &[&str]) {
    for r in rows {
        let file = dir.join("data").join(&r.path);
        let errors = decode_errors(&file);
        assert!(
            errors.is_empty(),
            "{} does not decode cleanly: {errors}",
            r.path
        );
        assert_eq!(codecs(&file), codecs_wanted, "{}", r.path);
        assert!(
            starts_with_key_frame(&file),
            "{} does not start on a key frame",
            r.path
        );
        // The file's video on its own lasts as long as the index claims. (Not the
        // container's duration: that is the longer track's, and a loaded peer's audio
        // may run a little past the segment's last video frame.)
        let [(v0, v1), _] = spans(&file);
        let secs = v1 - v0;
        let indexed = (r.end_ns - r.start_ns) as f64 / 1e9;
        assert!(
            (secs - indexed).abs() < 0.1,
            "{}: ffprobe's video {v0}..{v1} s, index {indexed} s",
            r.path
        );
    }
    for w in rows.windows(2) {
        let gap = w[1].start_ns - w[0].end_ns;
        assert!(
            gap.abs() <= FRAME_NS,
            "gap of {gap} ns between {} and {}",
            w[0].path,
            w[1].path
        );
    }
}

/// The index's RFC 6381 codec string agrees with what ffprobe reads from the
/// file's sample entry: the four-character code, profile and level.
fn assert_codec_matches_ffprobe(r: &SegmentRecord, file: &Path) {
    let v = ffprobe(
        file,
        &[
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_tag_string,profile,level",
        ],
    );
    let s = &v["streams"][0];
    let (tag, profile, level) = (
        s["codec_tag_string"].as_str().unwrap(),
        s["profile"].as_str().unwrap(),
        s["level"].as_i64().unwrap(),
    );
    let parts: Vec<&str> = r.codec.split('.').collect();
    assert_eq!(parts[0], tag, "{}: {} vs ffprobe {v}", r.path, r.codec);
    let (want_profile, want_level) = match tag {
        // avc1.PPCCLL: profile_idc, constraint flags, level_idc in hex.
        "avc1" => {
            let hex = |i: usize| i64::from_str_radix(&parts[1][i..i + 2], 16).unwrap();
            let name = match (hex(0), hex(2) & 0x40 != 0) {
                (66, true) => "Constrained Baseline",
                (66, false) => "Baseline",
                (77, _) => "Main",
                (100, _) => "High",
                (p, _) => panic!("{}: unexpected profile_idc {p}", r.codec),
            };
            (name, hex(4))
        }
        // hvc1.P.C.Lxx.B0: general_profile_idc, compatibility, tier and level.
        "hvc1" | "hev1" => {
            let name = match parts[1].trim_start_matches(['A', 'B', 'C']) {
                "1" => "Main",
                "2" => "Main 10",
                p => panic!("{}: unexpected profile {p}", r.codec),
            };
            (name, parts[3][1..].parse().unwrap())
        }
        t => panic!("{}: unexpected sample entry {t}", r.path),
    };
    assert_eq!(
        (profile, level),
        (want_profile, want_level),
        "{}: index says {}, ffprobe {v}",
        r.path,
        r.codec
    );
}

/// The NAL unit type of the first picture in an H.265 file, as ffmpeg's HEVC
/// decoder logs it at debug level (e.g. 21 for CRA_NUT).
fn first_hevc_picture_nal_type(file: &Path) -> u32 {
    let out = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-v", "debug", "-i"])
        .arg(file)
        .args(["-frames:v", "1", "-f", "null", "-"])
        .output()
        .expect("running ffmpeg");
    let log = String::from_utf8_lossy(&out.stderr);
    log.split("nal_unit_type: ")
        .skip(1)
        .filter_map(|rest| rest.split('(').next()?.parse::<u32>().ok())
        .find(|t| *t < 32) // VCL (picture) NAL units; 32.. are parameter sets and SEI
        .unwrap_or_else(|| panic!("no picture NAL unit in {}", file.display()))
}

/// A file's `hvc1` sample entry box (size, type, and its `hvcC` inside), as written.
fn sample_entry_of(file: &Path) -> Vec<u8> {
    let bytes = std::fs::read(file).unwrap();
    let at = memchr::memmem::find(&bytes, b"hvc1")
        .unwrap_or_else(|| panic!("no hvc1 sample entry in {}", file.display()));
    let size = u32::from_be_bytes(bytes[at - 4..at].try_into().unwrap()) as usize;
    bytes[at - 4..at - 4 + size].to_vec()
}

#[test]
fn records_h264_and_h265_with_aac_in_playable_contiguous_segments() {
    let gst = GstServer::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    // `h265` goes through retina's demuxer (it has sound), `hevc` through
    // our own H.265 reassembly (video only): both must write the same.
    let cams = camera("h264", &gst.url("h264aac"), "")
        + &camera("h265", &gst.url("h265aac"), "")
        + &camera("hevc", &gst.url("h265"), "");
    // Taken before the server starts: it may record before `run` returns.
    let started = Instant::now();
    let mut nvr = Nvr::run(dir.path(), &config(dir.path(), 2, &cams));
    wait_segments(&nvr, None, "h264", 3);
    wait_segments(&nvr, None, "h265", 3);
    wait_segments(&nvr, None, "hevc", 3);
    nvr.stop();
    let wall = started.elapsed().as_secs_f64();

    for (cam, tracks) in [
        ("h264", &["h264", "aac"][..]),
        ("h265", &["hevc", "aac"]),
        ("hevc", &["hevc"]),
    ] {
        let rows = index(dir.path(), cam);
        assert!(rows.len() >= 3, "{cam}: {rows:#?}");
        assert!(
            rows.iter().all(|r| r.has_audio == (tracks.len() == 2)),
            "{cam}: AAC is recorded as a second track"
        );
        assert_contiguous_playable(&rows, dir.path(), tracks);
        // Never more footage than the wall time the recording ran (plus one
        // second of rounding). No lower bound: how soon recording starts is a
        // matter of load, and contiguity is checked above.
        let total: f64 = rows
            .iter()
            .map(|r| (r.end_ns - r.start_ns) as f64 / 1e9)
            .sum();
        let span = (rows.last().unwrap().end_ns - rows[0].start_ns) as f64 / 1e9;
        assert!(
            (total - span).abs() < 0.1,
            "{cam}: {total} s recorded over {span} s"
        );
        assert!(total <= wall + 1.0, "{cam}: {total} s recorded in {wall} s");
        assert!(rows.iter().all(|r| r.width == 640 && r.height == 360));
        // A sound track must hold sound: past the first segment (sound may join
        // after the first pictures) and before the last (cut by the stop), the
        // sound runs as long as the picture.
        if tracks.len() == 2 {
            for r in &rows[1..rows.len() - 1] {
                let [(v0, v1), (a0, a1)] = spans(&dir.path().join("data").join(&r.path));
                assert!(
                    a1 - a0 >= 0.8 * (v1 - v0),
                    "{cam} {}: sound {a0:.2}..{a1:.2} s against picture {v0:.2}..{v1:.2} s",
                    r.path
                );
            }
        }
    }

    // x265 (the GStreamer peer's encoder) marks its key frames after the first
    // as CRA, not IDR; retina flags only IDR. Segments after the first start on
    // a CRA, so those were taken as key frames.
    for cam in ["h265", "hevc"] {
        let starts: Vec<u32> = index(dir.path(), cam)
            .iter()
            .map(|r| first_hevc_picture_nal_type(&dir.path().join("data").join(&r.path)))
            .collect();
        assert!(
            starts.iter().all(|t| (16..=21).contains(t)),
            "{cam}: every H.265 segment starts on an IRAP picture: {starts:?}"
        );
        assert!(
            starts[1..].contains(&21),
            "{cam}: the peer sent CRA key frames and segments start on them: {starts:?}"
        );
    }
    // The two paths write the same MP4 structure: the same boxes down to
    // the sample entry (`hvcC` and all), from the same encoder settings.
    let first = |cam: &str| {
        dir.path()
            .join("data")
            .join(&index(dir.path(), cam)[0].path)
    };
    assert_eq!(
        sample_entry_of(&first("h265")),
        sample_entry_of(&first("hevc")),
        "the hvc1 sample entry differs between retina's path and ours"
    );

    // The index is a cache of the files: lose it, and `check --repair` rebuilds
    // the same rows (drift is the one thing only the live recorder knew).
    let before: Vec<_> = ["h264", "h265", "hevc"]
        .iter()
        .flat_map(|c| index(dir.path(), c))
        .map(|r| SegmentRecord { drift_ms: 0, ..r })
        .collect();
    std::fs::remove_dir_all(dir.path().join("data/index")).unwrap();
    let (ok, out) = cli(&nvr.config, &["check"], "");
    assert!(!ok && out.contains("not in the index"), "{out}");
    let (ok, out) = cli(&nvr.config, &["check", "--repair"], "");
    assert!(ok, "{out}");
    let after: Vec<_> = ["h264", "h265", "hevc"]
        .iter()
        .flat_map(|c| index(dir.path(), c))
        .collect();
    assert_eq!(before, after);
    // Both are also what an outside reader finds in the files.
    for r in &after {
        assert_codec_matches_ffprobe(r, &dir.path().join("data").join(&r.path));
    }
    let (ok, out) = cli(&nvr.config, &["check"], "");
    assert!(ok && out.contains(" 0 problems"), "{out}");
}

/// `[start, end]` in seconds of a file's video and audio packets (`[video, audio]`).
fn spans(file: &Path) -> [(f64, f64); 2] {
    let v = ffprobe(
        file,
        &["-show_entries", "packet=codec_type,pts_time,duration_time"],
    );
    let mut out = [(f64::INFINITY, f64::NEG_INFINITY); 2];
    for p in v["packets"].as_array().unwrap() {
        let t = |k: &str| p[k].as_str().and_then(|s| s.parse::<f64>().ok());
        // ffprobe gives no duration for a segment's first audio packet.
        let Some(pts) = t("pts_time") else {
            continue;
        };
        let d = t("duration_time").unwrap_or(0.0);
        let i = usize::from(p["codec_type"] == "audio");
        out[i] = (out[i].0.min(pts), out[i].1.max(pts + d));
    }
    out
}

/// The file's audio is AAC-LC at 8 kHz mono (G.711's rate, kept), starts with the video
/// (never before it, at most 1 s after) and lasts as long within 1 s or 10 %; a segment
/// that is not `whole` (cut by the stop) only has the track checked.
///
/// How late the sound may start: one AAC frame (128 ms at 8 kHz) for where the first
/// frame falls, plus how far apart GStreamer's `RTP-Info` puts the two streams' zero
/// (each stream's last timestamp sent, so up to a couple of packets apart: up to 0.2 s
/// when the peer is idle, more when its encoders are starved on a loaded 2-core machine),
/// which is what relates audio to video time until RTCP sender reports are used for it.
/// The bounds leave room for that load; a stream out of sync by seconds still fails.
fn assert_g711_aac_in_sync(file: &Path, whole: bool) {
    let a = ffprobe(
        file,
        &[
            "-select_streams",
            "a:0",
            "-show_entries",
            "stream=codec_name,profile,sample_rate,channels",
        ],
    );
    let s = &a["streams"][0];
    // ffprobe learns the profile by decoding a frame: the last segment, cut by the
    // stop, may end before its first sound came out of the converter (128 ms behind
    // the video), and then has the track but no frame to tell the profile by.
    let no_sound = !whole && spans(file)[1].0.is_infinite();
    let lc = if no_sound {
        serde_json::Value::Null
    } else {
        "LC".into()
    };
    assert_eq!(
        (
            &s["codec_name"],
            &s["profile"],
            &s["sample_rate"],
            &s["channels"]
        ),
        (&"aac".into(), &lc, &"8000".into(), &1.into()),
        "{}",
        file.display()
    );
    if !whole {
        return; // cut short by the stop: it may end before any of its sound came out
    }
    let [(v0, v1), (a0, a1)] = spans(file);
    let (v, au) = (v1 - v0, a1 - a0);
    eprintln!(
        "{}: audio starts {:.3} s after video, {au:.3} s of audio for {v:.3} s of video",
        file.display(),
        a0 - v0
    );
    assert!(
        (-0.01..=1.0).contains(&(a0 - v0)),
        "{}: audio starts at {a0} s, video at {v0} s",
        file.display()
    );
    // Up to about 0.3 s goes missing at each segment's end (its last sound comes out of
    // the converter after the next segment has begun) plus the RTP-Info offset above:
    // 1 s under load, or 10 % of a longer segment.
    assert!(
        (au - v).abs() <= 1.0_f64.max(0.1 * v),
        "{}: {au} s of audio for {v} s of video",
        file.display()
    );
}

#[test]
fn g711_cameras_record_aac_in_sync_that_plays_back_and_exports() {
    let gst = GstServer::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let cams = camera("cam", &gst.url("h264pcmu"), "") + &camera("pcma", &gst.url("h264pcma"), "");
    let cfg = dir.path().join("cleannvr.toml");
    // 6 s segments: each loses up to about 0.4 s of sound at its end (the audio of the
    // last moments arrives after the next segment started, see recorder::place_audio).
    std::fs::write(&cfg, config(dir.path(), 6, &cams)).unwrap();
    add_user(&cfg, "root", "admin", "admin pass 12345");
    let mut nvr = Nvr::start(cfg.clone(), &["run"]);
    wait_segments(&nvr, None, "cam", 3);
    wait_segments(&nvr, None, "pcma", 3);

    let cookie = login(&nvr.http, "root", "admin pass 12345");
    let (status, body) = get(&nvr.http, "/api/cameras", &cookie);
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let audio: Vec<(&str, &str)> = v["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["id"].as_str().unwrap(), c["audio"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(audio, [("cam", "pcmu → aac"), ("pcma", "pcma → aac")]);

    // Playback across two segment boundaries keeps the converted audio.
    let (status, body) = get(&nvr.http, "/api/cameras/cam/recordings", &cookie);
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let segs = v["segments"].as_array().unwrap();
    assert!(segs.len() >= 3, "{v}");
    let ns = |s: &serde_json::Value| cleannvr::clock::parse_rfc3339(s.as_str().unwrap()).unwrap();
    let (start, end) = (ns(&segs[0]["start"]), ns(&segs[2]["end"]));
    let range = format!(
        "start={}&end={}",
        cleannvr::clock::rfc3339(start + 500_000_000),
        cleannvr::clock::rfc3339(end - 500_000_000)
    );
    let (status, body) = get(
        &nvr.http,
        &format!("/api/cameras/cam/video.mp4?{range}"),
        &cookie,
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let played = dir.path().join("played.mp4");
    std::fs::write(&played, body).unwrap();
    assert_eq!(codecs(&played), ["h264", "aac"]);
    assert_eq!(decode_errors(&played), "");
    let [(v0, v1), (a0, a1)] = spans(&played);
    assert!(
        ((a1 - a0) - (v1 - v0)).abs() <= 0.1 * (v1 - v0),
        "playback: audio {a0}..{a1} s, video {v0}..{v1} s"
    );
    nvr.stop();
    assert_eq!(nvr.log.count("recording audio"), 2, "{}", nvr.log.text());

    for cam in ["cam", "pcma"] {
        let rows = index(dir.path(), cam);
        assert!(rows.iter().all(|r| r.has_audio), "{cam}: {rows:#?}");
        assert_contiguous_playable(&rows, dir.path(), &["h264", "aac"]);
        // The last segment, cut short by the stop, is checked for its audio track only.
        for (i, r) in rows.iter().enumerate() {
            assert_g711_aac_in_sync(&dir.path().join("data").join(&r.path), i + 1 < rows.len());
        }
    }

    // Export copies the AAC track too.
    let out = dir.path().join("export");
    let (ok, msg) = cli(
        &cfg,
        &[
            "export",
            "--camera",
            "cam",
            "--start",
            &cleannvr::clock::rfc3339(start),
            "--end",
            &cleannvr::clock::rfc3339(end),
            "--out",
            out.to_str().unwrap(),
        ],
        "",
    );
    assert!(ok, "{msg}");
    let exported = files(&out, ".mp4");
    assert!(!exported.is_empty(), "{msg}");
    for f in &exported {
        assert_eq!(codecs(f), ["h264", "aac"], "{}", f.display());
        assert_eq!(decode_errors(f), "", "{}", f.display());
        assert_g711_aac_in_sync(f, true);
    }
}

#[test]
fn other_audio_is_reported_once_and_video_recorded() {
    let gst = GstServer::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cleannvr.toml");
    let cams = camera("l16", &gst.url("h264l16"), "");
    std::fs::write(&cfg, config(dir.path(), 2, &cams)).unwrap();
    add_user(&cfg, "root", "admin", "admin pass 12345");
    let mut nvr = Nvr::start(cfg, &["run"]);
    wait_segments(&nvr, None, "l16", 2);
    let cookie = login(&nvr.http, "root", "admin pass 12345");
    let (_, body) = get(&nvr.http, "/api/cameras", &cookie);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["cameras"][0]["audio"], "unsupported: L16", "{v}");
    nvr.stop();
    assert_eq!(
        nvr.log.count("audio cannot be recorded"),
        1,
        "{}",
        nvr.log.text()
    );
    let rows = index(dir.path(), "l16");
    assert!(rows.iter().all(|r| !r.has_audio));
    assert_contiguous_playable(&rows, dir.path(), &["h264"]);
}

/// Wrong credentials are retried every 24–30 s (so a camera that locks accounts
/// is not hammered), not on the 0.5–2 s outage schedule, and `/api/cameras` says
/// `auth_failed`. The attempts are timestamped on the wire by our own relay in
/// front of GStreamer. The spacing does not grow: the wait after a 401 is the
/// cap straight away. Costs one real 24–30 s wait; the whole schedule is in the
/// simulated-clock tests of `ingest::session`.
#[test]
fn digest_auth_right_password_records_wrong_password_is_reported_and_retried_slowly() {
    let gst = GstServer::start(&["--user", "nvr", "--password", "s3cret!", "--auth", "digest"]);
    let relay = RtspRelay::start(gst.port);
    let dir = tempfile::tempdir().unwrap();
    let url = gst.url("h264aac");
    let bad_url = format!("rtsp://127.0.0.1:{}/h264aac", relay.port);
    let cams = camera("good", &url, "username = \"nvr\"\npassword = \"s3cret!\"")
        + &camera(
            "bad",
            &bad_url,
            "username = \"nvr\"\npassword = \"wrong-password\"",
        );
    let (mut nvr, admin) = run_with_admin(dir.path(), &config(dir.path(), 2, &cams));
    let first = wait_for(Duration::from_secs(120), "auth failure report", || {
        nvr.log.find("authentication failed")
    });
    assert!(
        first.contains("bad"),
        "the failure names the camera: {first}"
    );
    let status = wait_for(Duration::from_secs(90), "state auth_failed", || {
        let c = camera_status(&nvr.http, &admin, "bad");
        (c["state"] == "auth_failed").then_some(c)
    });
    let err = status["last_error"].as_str().unwrap_or_default();
    assert!(err.contains("authentication failed"), "{status}");
    // The next attempt is scheduled far off; the outage schedule would say ≤ 2 s.
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let next_attempt = status["next_attempt"].as_str().expect("next_attempt");
    let next_in = cleannvr::clock::parse_rfc3339(next_attempt).unwrap() - now_ns;
    assert!(
        next_in > 10_000_000_000,
        "next attempt in {next_in} ns: {status}"
    );

    // Two attempts, each a connection with its DESCRIBE (unauthenticated, then
    // with the digest response), at least 24 s apart.
    let conns = wait_for(Duration::from_secs(120), "the second attempt", || {
        let c = relay.connections();
        (c.len() >= 2).then_some(c)
    });
    let spacing = conns[1] - conns[0];
    assert!(
        spacing >= Duration::from_millis(23_500),
        "wrong credentials retried after {spacing:?}"
    );
    let describes = wait_for(Duration::from_secs(90), "DESCRIBE on the retry", || {
        let d = relay.describes();
        d.iter().any(|t| *t >= conns[1]).then_some(d)
    });
    assert!(
        describes.iter().filter(|t| **t < conns[1]).count() >= 1,
        "{describes:?}"
    );
    // Still auth_failed after the retry, still not streaming.
    let status = wait_for(
        Duration::from_secs(90),
        "auth_failed after the retry",
        || {
            let c = camera_status(&nvr.http, &admin, "bad");
            (c["state"] == "auth_failed" && c["reconnects"].as_u64() >= Some(2)).then_some(c)
        },
    );
    assert_eq!(status["frames"], 0, "{status}");
    wait_segments(&nvr, Some(&admin), "good", 2);
    nvr.stop();
    let log = nvr.log.text();
    assert!(
        !log.contains("wrong-password") && !log.contains("s3cret!"),
        "credentials leaked into the log"
    );
    assert!(index(dir.path(), "bad").is_empty());
    assert_contiguous_playable(&index(dir.path(), "good"), dir.path(), &["h264", "aac"]);
}

#[test]
fn reconnects_after_server_restart_and_the_gap_shows_in_the_index() {
    let mut gst = GstServer::start(&[]);
    let port = gst.port;
    let dir = tempfile::tempdir().unwrap();
    let mut nvr = Nvr::run(
        dir.path(),
        &config(dir.path(), 2, &camera("cam", &gst.url("h264aac"), "")),
    );
    wait_segments(&nvr, None, "cam", 2);
    let wall_ns = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i64
    };
    gst.kill();
    let (down, down_ns) = (Instant::now(), wall_ns());
    wait_for(Duration::from_secs(60), "the session to end", || {
        nvr.log.find("session ended")
    });
    std::thread::sleep(Duration::from_secs(2).saturating_sub(down.elapsed()));
    let before = files(&dir.path().join("data/cam"), ".mp4").len();
    let up_ns = wall_ns();
    let _gst = GstServer::start_on(port, &[]);
    wait_segments(&nvr, None, "cam", before + 2);
    nvr.stop();
    let rows = index(dir.path(), "cam");
    // Gaps longer than the 1.5 s no segment boundary comes near (segments of one
    // session are contiguous to a frame), as (from, to) wall times.
    let big: Vec<(i64, i64)> = rows
        .windows(2)
        .map(|w| (w[0].end_ns, w[1].start_ns))
        .filter(|(a, b)| b - a > 1_500_000_000)
        .collect();
    let explain = format!(
        "gaps over 1.5 s {big:?}, outage from {down_ns} to {up_ns}\nlog:\n{}",
        nvr.log.text()
    );
    // Exactly one gap covers the outage (the camera was down at least 2 s)...
    let outage: Vec<_> = big
        .iter()
        .filter(|(a, b)| *a <= up_ns && *b >= down_ns)
        .collect();
    assert_eq!(outage.len(), 1, "one gap for the outage: {explain}");
    // ...and the session before it, which ran undisturbed, left none. (A loaded
    // machine may drop and resume the new session, which is a real gap too.)
    assert!(
        big.iter().all(|(_, b)| *b >= down_ns),
        "a gap before the outage: {explain}"
    );
    for r in &rows {
        assert!(decode_errors(&dir.path().join("data").join(&r.path)).is_empty());
    }
}

/// Where the last whole `moof`+`mdat` pair of a fragmented MP4 ends, and where
/// that pair starts, by walking top-level boxes (our own reading of ISO/IEC 14496-12;
/// the recovery code under test has its own parser, ffprobe judges the result).
fn last_whole_fragment(bytes: &[u8]) -> (usize, usize) {
    let (mut pos, mut whole_end, mut frag_start, mut last_start) = (0usize, 0, 0, 0);
    while pos + 8 <= bytes.len() {
        let size32 = u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        let kind = &bytes[pos + 4..pos + 8];
        let size = if size32 == 1 && pos + 16 <= bytes.len() {
            u64::from_be_bytes(bytes[pos + 8..pos + 16].try_into().unwrap()) as usize
        } else {
            size32
        };
        if size < 8 || pos + size > bytes.len() {
            break;
        }
        match kind {
            b"moof" => frag_start = pos,
            b"mdat" => {
                whole_end = pos + size;
                last_start = frag_start;
            }
            b"ftyp" | b"moov" => whole_end = pos + size,
            _ => {}
        }
        pos += size;
    }
    (whole_end, last_start)
}

/// Video frames ffprobe decodes from a file.
fn probed_frames(file: &Path) -> u64 {
    let v = ffprobe(
        file,
        &[
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames",
        ],
    );
    v["streams"][0]["nb_read_frames"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn kill_9_mid_segment_is_repaired_on_restart_and_check_passes() {
    let gst = GstServer::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let toml = config(dir.path(), 60, &camera("cam", &gst.url("h264aac"), ""));
    let mut nvr = Nvr::run(dir.path(), &toml);
    let data = dir.path().join("data");
    // Wait for a few fragments (one per key frame, every second) in the open segment.
    wait_for(Duration::from_secs(150), "a growing segment", || {
        let part = files(&data, ".part").pop()?;
        (std::fs::metadata(&part).ok()?.len() > 150_000).then_some(())
    });
    nvr.kill9();
    let part = files(&data, ".part")
        .pop()
        .expect("the open segment is left as .part");
    // Each fragment is written whole, so kill -9 rarely tears one: tear the tail
    // ourselves by appending the first half of the last whole fragment (a power
    // cut mid-write leaves exactly that: a moof and part of its mdat).
    let killed = std::fs::read(&part).unwrap();
    let (whole_len, last_frag) = last_whole_fragment(&killed);
    assert!(last_frag > 0, "no whole fragment in {}", part.display());
    let reference = dir.path().join("reference.mp4");
    std::fs::write(&reference, &killed[..whole_len]).unwrap();
    let want_frames = probed_frames(&reference);
    assert!(
        want_frames >= 25,
        "only {want_frames} frames before the kill"
    );
    let half = &killed[last_frag..last_frag + (whole_len - last_frag) / 2];
    let mut torn = killed[..whole_len].to_vec();
    torn.extend_from_slice(half);
    std::fs::write(&part, &torn).unwrap();
    assert_ne!(
        decode_errors(&part),
        "",
        "the torn tail must be visible to ffmpeg"
    );

    // Restart: recovery runs before recording resumes.
    let mut nvr = Nvr::start(nvr.config.clone(), &["run"]);
    wait_for(Duration::from_secs(20), "recovery", || {
        nvr.log.find("recovered unfinished segment")
    });
    nvr.stop();
    let done = part.with_extension("");
    assert!(done.exists() && !part.exists());
    // Cut back exactly to the last whole fragment: every whole frame kept, the torn one gone.
    let repaired = std::fs::read(&done).unwrap();
    assert_eq!(
        repaired.len(),
        whole_len,
        "repaired length (torn file was {} bytes)",
        torn.len()
    );
    assert!(
        repaired == killed[..whole_len],
        "recovery changed whole fragments"
    );
    assert_eq!(decode_errors(&done), "");
    assert!(starts_with_key_frame(&done));
    assert_eq!(probed_frames(&done), want_frames);
    let rows = index(dir.path(), "cam");
    let row = rows
        .iter()
        .find(|r| data.join(&r.path) == done)
        .expect("recovered file is indexed");
    assert_eq!(row.frames, want_frames, "indexed frame count");

    let (ok, out) = cli(&nvr.config, &["check"], "");
    assert!(ok, "check failed: {out}");
    assert!(out.contains(" 0 problems"), "{out}");
}

#[test]
fn records_over_udp_when_configured() {
    let gst = GstServer::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let cams = camera("udp", &gst.url("h264aac"), "transport = \"udp\"");
    let mut nvr = Nvr::run(dir.path(), &config(dir.path(), 2, &cams));
    wait_segments(&nvr, None, "udp", 2);
    nvr.stop();
    let rows = index(dir.path(), "udp");
    assert!(rows.len() >= 2);
    for r in &rows {
        let file = dir.path().join("data").join(&r.path);
        assert_eq!(decode_errors(&file), "", "{}", r.path);
        assert!(starts_with_key_frame(&file));
    }
}

/// Issue 9: no sound is lost or doubled where one segment ends and the next
/// begins. For each pair of contiguous segments (AAC from the camera, and
/// G.711 converted to AAC), the time from the first segment's last sound to
/// its last picture's end, plus the time from the next segment's first
/// picture to its first sound, is what went missing at the rollover
/// (negative: doubled). Before the recorder kept the frame that straddles a
/// rollover, one AAC frame went missing at every one: 21.3 ms at 48 kHz,
/// 128 ms at 8 kHz.
#[test]
fn sound_goes_on_across_segment_rollovers() {
    let gst = GstServer::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let cams = camera("aac", &gst.url("h264aac"), "") + &camera("pcmu", &gst.url("h264pcmu"), "");
    let mut nvr = Nvr::run(dir.path(), &config(dir.path(), 2, &cams));
    wait_segments(&nvr, None, "aac", 5);
    wait_segments(&nvr, None, "pcmu", 5);
    nvr.stop();
    for cam in ["aac", "pcmu"] {
        let rows = index(dir.path(), cam);
        let spans: Vec<[(f64, f64); 2]> = rows
            .iter()
            .map(|r| spans(&dir.path().join("data").join(&r.path)))
            .collect();
        let mut missing_ms = Vec::new();
        for (i, w) in rows.windows(2).enumerate() {
            if w[0].end_ns != w[1].start_ns {
                continue; // a gap in the recording, not a rollover
            }
            let ([(_, v_end), (_, a_end)], [(v0, _), (a0, _)]) = (spans[i], spans[i + 1]);
            if i + 2 == rows.len() && !a0.is_finite() {
                // The last segment was closed by the shutdown before its first
                // sound arrived (converted G.711 comes 128 ms behind): no rollover.
                continue;
            }
            missing_ms.push(((v_end - a_end) + (a0 - v0)) * 1000.0);
        }
        eprintln!("{cam}: sound missing at each rollover, ms: {missing_ms:?}");
        assert!(missing_ms.len() >= 3, "{cam}: {rows:#?}");
        assert!(
            missing_ms.iter().all(|m| m.abs() < 2.0),
            "{cam}: sound lost (or doubled, negative) at rollovers, ms: {missing_ms:?}\n{}",
            nvr.log.text()
        );
    }
}
