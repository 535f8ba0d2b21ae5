//! Working copies and redacted copies, end to end on a real server recording the GStreamer
//! RTSP peer (H.265 + AAC and H.264 + AAC): outside tools judge the output (`ffprobe` names
//! the codec and counts frames, `ffmpeg` decodes pictures and measures the audio) and
//! `cleannvr export verify` checks the signed package.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{GstServer, HttpSession, Nvr};
use serde_json::{json, Value};

/// The peer's H.265 mount as camera `gate` and its H.264 mount as camera `door`, recorded
/// in 2 s segments, with an operator; the peer and directory live as long as the values.
fn two_cameras() -> (GstServer, tempfile::TempDir, PathBuf) {
    cameras(&[("gate", "Gate", "h265aac"), ("door", "Door", "h264aac")])
}

/// The peer's `mount`s as cameras `(id, name, mount)` in Europe/London, recorded in 2 s
/// segments, with an operator `op` and an admin `root`.
fn cameras(list: &[(&str, &str, &str)]) -> (GstServer, tempfile::TempDir, PathBuf) {
    let gst = GstServer::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("cleannvr.toml");
    let cameras: String = list
        .iter()
        .map(|(id, name, mount)| {
            format!(
                "[[camera]]\nid = \"{id}\"\nname = \"{name}\"\nurl = \"{}\"\n",
                gst.url(mount)
            )
        })
        .collect();
    let toml = common::config(tmp.path(), 2, &cameras).replacen(
        "[server]\n",
        "[server]\ntimezone = \"Europe/London\"\n",
        1,
    );
    std::fs::write(&cfg, toml).unwrap();
    common::add_user(&cfg, "op", "operator", "operator password 1");
    common::add_user(&cfg, "root", "admin", "admin password 12");
    (gst, tmp, cfg)
}

/// The start of a range of at least `min_ns` that every camera in `ids` has recorded.
fn recorded(nvr: &Nvr, who: &HttpSession, ids: &[&str], min_ns: i64) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let mut starts = Vec::new();
        let mut ends = Vec::new();
        for id in ids {
            let r = who.json(&format!("/api/cameras/{id}/recordings"));
            if let Some(first) = r["ranges"].as_array().and_then(|a| a.last()) {
                let p = |k: &str| cleannvr::clock::parse_rfc3339(first[k].as_str().unwrap());
                starts.push(p("start").unwrap());
                ends.push(p("end").unwrap());
            }
        }
        if starts.len() == ids.len() {
            let (s, e) = (*starts.iter().max().unwrap(), *ends.iter().min().unwrap());
            if e - s >= min_ns {
                return s;
            }
        }
        assert!(
            Instant::now() < deadline,
            "not recorded: {}",
            nvr.log.text()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Starts an export and waits (generously: conversions run at low priority on a loaded
/// machine) until it is done; returns its id and status.
fn export(nvr: &Nvr, op: &HttpSession, body: Value) -> (String, Value) {
    let (status, created) = op.send("POST", "/api/exports", &body);
    assert_eq!(status, 202, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let j = op.json(&format!("/api/exports/{id}"));
        match j["status"].as_str().unwrap() {
            "done" => return (id, j),
            "running" => {}
            other => panic!("export {other}: {j}\n{}", nvr.log.text()),
        }
        assert!(
            Instant::now() < deadline,
            "export did not finish: {j}\n{}",
            nvr.log.text()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn verify(dir: &Path) -> (bool, String) {
    let out = Command::new(common::bin())
        .args(["export", "verify"])
        .arg(dir)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// Frames ffprobe decodes from the first video stream (honouring the edit list).
fn decoded_frames(file: &Path) -> i64 {
    let v = common::ffprobe(
        file,
        &[
            "-select_streams",
            "v:0",
            "-count_frames",
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

/// Presented duration in seconds, per ffprobe.
fn duration(file: &Path) -> f64 {
    let v = common::ffprobe(file, &["-show_entries", "format=duration"]);
    v["format"]["duration"].as_str().unwrap().parse().unwrap()
}

/// Every decoded frame of `file` as 8-bit grey pictures (`w`×`h`), via ffmpeg.
fn grey_frames(file: &Path, w: usize, h: usize, max: usize) -> Vec<Vec<u8>> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(file)
        .args(["-frames:v", &max.to_string(), "-an", "-pix_fmt", "gray"])
        .args(["-f", "rawvideo", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout.chunks_exact(w * h).map(<[u8]>::to_vec).collect()
}

/// Every frame of `file` as 8-bit grey pictures (`w`×`h`), from its first sample (the key
/// frame the edit list's lead-in starts at) on, with its time after that first frame (s),
/// per ffmpeg's `showinfo` (the edit list ignored; frames passed through, none dropped or
/// repeated).
fn timed_grey_frames(file: &Path, w: usize, h: usize) -> Vec<(f64, Vec<u8>)> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-ignore_editlist", "1", "-i"])
        .arg(file)
        .args([
            "-an",
            "-vf",
            "showinfo",
            "-fps_mode",
            "passthrough",
            "-pix_fmt",
            "gray",
        ])
        .args(["-f", "rawvideo", "-loglevel", "info", "-"])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    let times: Vec<f64> = log
        .lines()
        .filter_map(|l| l.split("pts_time:").nth(1))
        .map(|t| t.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    let frames: Vec<Vec<u8>> = out.stdout.chunks_exact(w * h).map(<[u8]>::to_vec).collect();
    assert_eq!(times.len(), frames.len(), "{log}");
    times.iter().map(|t| t - times[0]).zip(frames).collect()
}

/// A region of a picture, `(x0, y0, x1, y1)`: `[x0, x1) × [y0, y1)` in pixels.
type Rect = (usize, usize, usize, usize);

/// Mean absolute difference of two pictures over `[x0, x1) × [y0, y1)`.
fn mad(a: &[u8], b: &[u8], w: usize, (x0, y0, x1, y1): Rect) -> f64 {
    let mut sum = 0u64;
    for y in y0..y1 {
        for x in x0..x1 {
            sum += u64::from(a[y * w + x].abs_diff(b[y * w + x]));
        }
    }
    sum as f64 / ((x1 - x0) * (y1 - y0)) as f64
}

/// The first audio track of `file` decoded by ffmpeg as mono 16-bit samples at its own
/// rate, and that track's duration (s) per ffprobe.
fn audio(file: &Path) -> (Vec<i16>, f64) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(file)
        .args(["-map", "0:a:0", "-ac", "1", "-f", "s16le", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pcm = out
        .stdout
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    let v = common::ffprobe(
        file,
        &["-select_streams", "a:0", "-show_entries", "stream=duration"],
    );
    (
        pcm,
        v["streams"][0]["duration"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap(),
    )
}

/// Checks that `muted`'s audio is digital silence as long as `orig`'s sound (which is not
/// silent).
fn assert_silent_like(muted: &Path, orig: &Path, what: &str) {
    let (pcm, dur) = audio(muted);
    let (opcm, odur) = audio(orig);
    let loud = opcm.iter().map(|v| v.unsigned_abs()).max().unwrap_or(0);
    assert!(
        loud > 1000,
        "{what}: the original's sound peaks at {loud} only"
    );
    assert!(
        pcm.len() as f64 >= opcm.len() as f64 * 0.95,
        "{what}: {} silent samples for {} recorded",
        pcm.len(),
        opcm.len()
    );
    let nonzero = pcm.iter().filter(|v| **v != 0).count();
    assert_eq!(
        nonzero, 0,
        "{what}: {nonzero} samples of the muted track are not 0"
    );
    assert!(
        (dur - odur).abs() <= 0.05,
        "{what}: the muted track lasts {dur} s, the recorded sound {odur} s"
    );
}

fn file<'a>(m: &'a Value, name: &str) -> &'a Value {
    m["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["files"].as_array().unwrap())
        .find(|f| f["file"] == name)
        .unwrap_or_else(|| panic!("{name} not in the manifest: {m}"))
}

#[test]
fn working_copies_are_h264_with_the_time_burned_in_and_verify() {
    let (_gst, tmp, cfg) = two_cameras();
    let nvr = Nvr::start(cfg, &["run"]);
    let op = HttpSession::login(&nvr.http, "op", "operator password 1");
    let start = recorded(&nvr, &op, &["gate", "door"], 4_000_000_000);
    let rfc = cleannvr::clock::rfc3339;
    let (id, job) = export(
        &nvr,
        &op,
        json!({ "cameras": ["gate", "door"], "start": rfc(start), "end": rfc(start + 3_000_000_000),
                "reason": "incident 7: working copy", "recipient": "Kent Police", "working_copy": true }),
    );
    let m = &job["manifest"];
    let dir = tmp.path().join("data/.exports").join(&id);

    for (cam, native) in [("gate", ["hvc1", "hev1"]), ("door", ["avc1", "avc3"])] {
        let master = file(m, &format!("{cam}.mp4"));
        let wc = file(m, &format!("{cam}-working-copy.mp4"));
        assert_eq!(master["role"], "master", "{m}");
        let codec = master["codec"].as_str().unwrap();
        assert!(native.iter().any(|n| codec.starts_with(n)), "{master}");
        assert_eq!(wc["role"], "working_copy", "{wc}");
        assert_eq!(wc["derived_from"], format!("{cam}.mp4"));
        assert!(wc["codec"].as_str().unwrap().starts_with("avc1"), "{wc}");
        let (mp, wp) = (
            dir.join(format!("{cam}.mp4")),
            dir.join(format!("{cam}-working-copy.mp4")),
        );
        assert_eq!(common::codecs(&wp), ["h264", "aac"], "{cam}");
        let (fm, fw) = (decoded_frames(&mp), decoded_frames(&wp));
        assert!(
            (fm - fw).abs() <= 2,
            "{cam}: master {fm} frames, working copy {fw}"
        );
        assert!(fm >= 50, "{cam}: only {fm} frames in 3 s at 25 fps");
        let (dm, dw) = (duration(&mp), duration(&wp));
        assert!(
            (dm - dw).abs() <= 0.08,
            "{cam}: master {dm} s, working copy {dw} s"
        );

        // The first picture: the band (top left) differs from the master, the rest is the
        // same picture within encoding tolerance.
        let (w, h) = (640, 360);
        let a = grey_frames(&mp, w, h, 1);
        let b = grey_frames(&wp, w, h, 1);
        let band = mad(&a[0], &b[0], w, (0, 0, 200, 20));
        assert!(band > 20.0, "{cam}: band differs by only {band}");
        assert_as_original(
            &b,
            &a,
            w,
            (0, 100, w, h),
            &format!("{cam}, outside the band"),
        );
    }

    let (ok, text) = verify(&dir);
    assert!(ok, "{text}");
    assert!(text.contains("gate-working-copy.mp4"), "{text}");
    // The working copy is covered by the signature: altering it fails verification.
    let wp = dir.join("gate-working-copy.mp4");
    let mut bytes = std::fs::read(&wp).unwrap();
    let n = bytes.len();
    bytes[n - 10] ^= 0xff;
    std::fs::write(&wp, bytes).unwrap();
    let (ok, text) = verify(&dir);
    assert!(!ok, "{text}");
    assert!(
        text.contains("gate-working-copy.mp4: SHA-256 mismatch"),
        "{text}"
    );
}

#[test]
fn redacted_copies_fill_blur_or_invert_the_boxes_mute_audio_verify_and_recording_goes_on() {
    let (_gst, tmp, cfg) = two_cameras();
    let nvr = Nvr::start(cfg, &["run"]);
    let op = HttpSession::login(&nvr.http, "op", "operator password 1");
    let start = recorded(&nvr, &op, &["gate", "door"], 4_000_000_000);
    let (s, e) = (
        cleannvr::clock::rfc3339(start),
        cleannvr::clock::rfc3339(start + 3_000_000_000),
    );
    // Over the peer's time overlay (top left), so the original has detail under the box.
    let redact = json!({ "mode": "fill", "boxes": [{ "x": 0.0, "y": 0.0, "w": 0.3, "h": 0.15 }],
                         "invert": false, "mute_audio": true });
    let t0 = now_ns();
    let (id, job) = export(
        &nvr,
        &op,
        json!({ "cameras": ["gate", "door"], "start": s, "end": e,
                "reason": "SAR 2026/14: requester only", "recipient": "the data subject", "redact": redact }),
    );
    let m = &job["manifest"];
    let dir = tmp.path().join("data/.exports").join(&id);

    // The manifest records the redaction; only redacted files are in the package.
    let r = &m["redaction"];
    assert_eq!(r["mode"], "fill", "{m}");
    assert_eq!(r["boxes"], redact["boxes"], "{m}");
    assert_eq!(r["mute_audio"], true);
    assert_eq!(r["by"], "op");
    assert_eq!(r["range"]["start"], s);
    assert!(!dir.join("gate.mp4").exists() && !dir.join("door.mp4").exists());

    let (w, h) = (640, 360);
    for cam in ["gate", "door"] {
        let f = file(m, &format!("{cam}-redacted.mp4"));
        assert_eq!(f["role"], "redacted", "{f}");
        let path = dir.join(format!("{cam}-redacted.mp4"));
        // Muted: the audio track is kept, as silence.
        assert_eq!(common::codecs(&path), ["h264", "aac"], "{cam}");
        assert_eq!(f["audio"], true, "{f}");
        assert_eq!(f["audio_muted"], true, "{f}");

        // The original footage, unredacted, from the playback API (the recordings are
        // untouched).
        let (status, orig) = op.get(&format!("/api/cameras/{cam}/video.mp4?start={s}&end={e}"));
        assert_eq!(status, 200);
        let orig_path = tmp.path().join(format!("{cam}-original.mp4"));
        std::fs::write(&orig_path, orig).unwrap();
        assert_silent_like(&path, &orig_path, cam);

        let red = grey_frames(&path, w, h, 1000);
        let org = grey_frames(&orig_path, w, h, 1000);
        assert!(red.len() >= 50, "{cam}: {} frames", red.len());
        assert!((red.len() as i64 - org.len() as i64).abs() <= 2);
        // The box's interior is flat black in every frame, where the original shows the
        // overlay's text.
        assert_flat_black(&red, w, &format!("{cam}, the box"), |_| BOX_INSIDE);
        let (lo, hi) = min_max(&org[0], w, BOX_INSIDE);
        assert!(
            hi - lo > 100,
            "{cam}: the original has no detail under the box ({lo}..{hi})"
        );
        // Outside the box and the time band (top right) the picture is the original's.
        assert_as_original(
            &red,
            &org,
            w,
            (0, 100, w, h),
            &format!("{cam}, below the box"),
        );
    }

    let (ok, text) = verify(&dir);
    assert!(ok, "{text}");
    assert!(text.contains("gate-redacted.mp4"), "{text}");
    let admin = HttpSession::login(&nvr.http, "root", "admin password 12");
    let audit = admin.json("/api/audit?action=export");
    assert!(
        audit.to_string().contains("mute_audio=true"),
        "the audit entry names the muting: {audit}"
    );

    // Muting alone (no box): the picture is the camera's, the sound silence.
    let (id, job) = export(
        &nvr,
        &op,
        json!({ "cameras": ["door"], "start": s, "end": e, "reason": "SAR 2026/15: sound of others",
                "recipient": "the data subject",
                "redact": { "mode": "fill", "boxes": [], "mute_audio": true } }),
    );
    let m = &job["manifest"];
    assert_eq!(m["redaction"]["mute_audio"], true, "{m}");
    assert!(
        m["redaction"]["note"]
            .as_str()
            .unwrap()
            .contains("digital silence"),
        "{m}"
    );
    assert_eq!(file(m, "door-redacted.mp4")["audio_muted"], true, "{m}");
    let dir = tmp.path().join("data/.exports").join(&id);
    let path = dir.join("door-redacted.mp4");
    let orig_path = tmp.path().join("door-original.mp4");
    assert_silent_like(&path, &orig_path, "door, muted only");
    let red = grey_frames(&path, w, h, 1);
    let org = grey_frames(&orig_path, w, h, 1);
    // Nothing obscured: below the time band (top left without boxes) the picture is the
    // camera's, the overlay's text included.
    assert_as_original(&red, &org, w, (0, 100, w, h), "no box, below the band");
    assert_as_original(&red, &org, w, (280, 0, w, 64), "no box, the top right");
    let (ok, text) = verify(&dir);
    assert!(ok, "{text}");

    // Blur: the box keeps its average brightness but loses its detail (the overlay's
    // text); outside it the picture is the camera's.
    let boxed = json!([{ "x": 0.0, "y": 0.0, "w": 0.3, "h": 0.15 }]);
    let inside = BOX_INSIDE;
    let (id, _) = export(
        &nvr,
        &op,
        json!({ "cameras": ["door"], "start": s, "end": e, "reason": "SAR 2026/16: blurred",
                "recipient": "the data subject",
                "redact": { "mode": "blur", "boxes": boxed } }),
    );
    let path = tmp
        .path()
        .join("data/.exports")
        .join(&id)
        .join("door-redacted.mp4");
    let red = grey_frames(&path, w, h, 1000);
    let org = grey_frames(&orig_path, w, h, 1000);
    assert!((red.len() as i64 - org.len() as i64).abs() <= 2);
    for n in [0, red.len() / 2] {
        let (rg, og) = (edges(&red[n], w, inside), edges(&org[n], w, inside));
        assert!(
            og > 4.0 && rg < og / 4.0,
            "blur, frame {n}: edges inside the box {rg}, in the original {og}"
        );
        let (rm, om) = (mean(&red[n], w, inside), mean(&org[n], w, inside));
        assert!(
            (rm - om).abs() < 6.0,
            "blur, frame {n}: the box's mean is {rm}, the original's {om}: not a blur"
        );
    }
    assert_as_original(&red, &org, w, (0, 100, w, h), "blur, below the box");

    // Inverse: the box is the camera's picture (the text), everything else black but the
    // time band (in a corner band a tenth of the height high, away from the box).
    let (id, job) = export(
        &nvr,
        &op,
        json!({ "cameras": ["door"], "start": s, "end": e, "reason": "SAR 2026/17: only the requester",
                "recipient": "the data subject",
                "redact": { "mode": "fill", "boxes": boxed, "invert": true } }),
    );
    assert_eq!(job["manifest"]["redaction"]["invert"], true, "{job}");
    let path = tmp
        .path()
        .join("data/.exports")
        .join(&id)
        .join("door-redacted.mp4");
    let red = grey_frames(&path, w, h, 1000);
    assert!((red.len() as i64 - org.len() as i64).abs() <= 2);
    let rest = (0, 64, w, h - 36);
    assert_flat_black(&red, w, "inverse, outside the box", |_| rest);
    // The ball the peer draws is somewhere in that region in some frame.
    let detail = org.iter().map(|p| {
        let (lo, hi) = min_max(p, w, rest);
        hi - lo
    });
    assert!(
        detail.max().unwrap() > 100,
        "the original is flat outside the box"
    );
    for n in [0, red.len() / 2] {
        let kept = mad(&red[n], &org[n], w, inside);
        let (lo, hi) = min_max(&org[n], w, inside);
        assert!(
            kept < 6.0 && hi - lo > 100,
            "inverse, frame {n}: the box differs by {kept} from the original ({lo}..{hi})"
        );
    }

    // The conversions ran beside the recording at a lower priority: both cameras were
    // recorded without a gap all the while.
    // To the millisecond, as the API's times are.
    let t1 = cleannvr::clock::parse_rfc3339(&cleannvr::clock::rfc3339(now_ns())).unwrap();
    for cam in ["gate", "door"] {
        let deadline = Instant::now() + Duration::from_secs(120);
        let q = format!(
            "/api/cameras/{cam}/recordings?start={}&end={}",
            cleannvr::clock::rfc3339(t0),
            cleannvr::clock::rfc3339(t1)
        );
        loop {
            let r = op.json(&q);
            let ranges = r["ranges"].as_array().unwrap();
            let end = ranges
                .last()
                .map(|x| cleannvr::clock::parse_rfc3339(x["end"].as_str().unwrap()).unwrap());
            if end.is_some_and(|e| e >= t1) {
                assert_eq!(ranges.len(), 1, "{cam}: a gap while converting: {r}");
                assert!(r["gaps"].as_array().unwrap().is_empty(), "{cam}: {r}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{cam}: not recorded up to the end of the conversions: {r}\n{}",
                nvr.log.text()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// Wall time now, ns since the epoch.
fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// Darkest and brightest pixel of `p` (`w` wide) in `[x0, x1) × [y0, y1)`.
fn min_max(p: &[u8], w: usize, (x0, y0, x1, y1): Rect) -> (u8, u8) {
    let v = (y0..y1).flat_map(|y| p[y * w + x0..y * w + x1].iter().copied());
    v.fold((255, 0), |(lo, hi), x| (lo.min(x), hi.max(x)))
}

/// The interior, 4 px in from its edges, of the box the redaction tests draw over the
/// peer's time overlay (x 0..0.3, y 0..0.15 of 640×360, widened to 16-px blocks: x 0..192,
/// y 0..64).
const BOX_INSIDE: Rect = (4, 4, 188, 60);

/// Asserts that every frame `n` of `frames` (`w` wide) is flat black (a filled box, within
/// encoding noise) in the region `at(n)`; a failure names `what` and the frame.
fn assert_flat_black(frames: &[Vec<u8>], w: usize, what: &str, at: impl Fn(usize) -> Rect) {
    for (n, p) in frames.iter().enumerate() {
        let region = at(n);
        let (lo, hi) = min_max(p, w, region);
        assert!(
            hi - lo <= 3 && hi < 40,
            "{what}, frame {n}: {region:?} spans {lo}..{hi}, not flat black"
        );
    }
}

/// Asserts that the first and the middle frame of `got` show `want`'s picture (the same
/// frames, `w` wide) in `region`, within encoding tolerance; a failure names `what`.
fn assert_as_original(got: &[Vec<u8>], want: &[Vec<u8>], w: usize, region: Rect, what: &str) {
    for n in [0, got.len() / 2] {
        let d = mad(&got[n], &want[n], w, region);
        assert!(
            d < 6.0,
            "{what}, frame {n}: {region:?} differs from the original by {d}"
        );
    }
}

/// Mean brightness of `p` (`w` wide) in `[x0, x1) × [y0, y1)`.
fn mean(p: &[u8], w: usize, (x0, y0, x1, y1): Rect) -> f64 {
    let sum: u64 = (y0..y1)
        .flat_map(|y| p[y * w + x0..y * w + x1].iter().map(|v| u64::from(*v)))
        .sum();
    sum as f64 / ((x1 - x0) * (y1 - y0)) as f64
}

/// Mean absolute difference between horizontally neighbouring pixels of `p` in
/// `[x0, x1) × [y0, y1)`: how much detail (edges) the region holds.
fn edges(p: &[u8], w: usize, (x0, y0, x1, y1): Rect) -> f64 {
    let sum: u64 = (y0..y1)
        .flat_map(|y| (x0..x1 - 1).map(move |x| u64::from(p[y * w + x].abs_diff(p[y * w + x + 1]))))
        .sum();
    sum as f64 / ((x1 - x0 - 1) * (y1 - y0)) as f64
}

/// Where a box with key points `(ns, [x, y, w, h])` (time order) is at `at`: linear between
/// two, still before the first and after the last (what the server promises, written out
/// independently of `transcode::redact`).
fn box_at(keys: &[(i64, [f64; 4])], at: i64) -> [f64; 4] {
    if at <= keys[0].0 {
        return keys[0].1;
    }
    for p in keys.windows(2) {
        let ((t0, a), (t1, b)) = (p[0], p[1]);
        if at <= t1 {
            let f = (at - t0) as f64 / (t1 - t0).max(1) as f64;
            return [0, 1, 2, 3].map(|i| a[i] + (b[i] - a[i]) * f);
        }
    }
    keys[keys.len() - 1].1
}

/// The redaction boxes of the export form, end to end in Chromium (`tests/ui/redact.mjs`):
/// the operator drags a box on the still frame with the mouse, scrubs the preview to a
/// later time and moves and widens the box there (a second key point), and exports; the
/// exported MP4, decoded by ffmpeg, is flat black inside the box where it is at each
/// frame's time, the camera's picture where the box was at the start and no longer is at
/// the end (and where it is at the end but not yet at the start), and the camera's
/// picture outside; an admin sees it in the disclosure register as redacted.
#[test]
fn a_box_drawn_in_the_export_form_blanks_that_region_of_the_export() {
    let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    if !common::require_browser(&ui) {
        return;
    }
    let (_gst, tmp, cfg) = cameras(&[("door", "Door", "h264aac")]);
    let nvr = Nvr::start(cfg, &["run"]);
    let op = HttpSession::login(&nvr.http, "op", "operator password 1");
    let first = recorded(&nvr, &op, &["door"], 7_000_000_000);
    // Whole seconds (what the form's fields hold), inside the recording.
    let start = (first / 1_000_000_000 + 2) * 1_000_000_000;
    let end = start + 4_000_000_000;
    let local = |ns: i64| {
        jiff::Timestamp::from_nanosecond(i128::from(ns))
            .unwrap()
            .to_zoned(jiff::tz::TimeZone::get("Europe/London").unwrap())
            .strftime("%Y-%m-%dT%H:%M:%S")
            .to_string()
    };
    // Over the left of the peer's time overlay (text at about x 26..180, y 28..52 of
    // 640×360), then moved right over the rest of it, so the original has detail under the
    // box at both places and where it was before.
    let drawn = [0.02, 0.05, 0.14, 0.12];
    let (shift, grow) = (0.14, 0.02);
    let screens = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-redact");
    std::fs::create_dir_all(&screens).unwrap();
    let ui_cfg = json!({
        "op": ["op", "operator password 1"],
        "admin": ["root", "admin password 12"],
        "camera": "door",
        "start": local(start),
        "end": local(end),
        "box": drawn,
        "shift": shift,
        "grow": grow,
        "screens": screens,
    })
    .to_string();
    // The browser in the server's zone, so the form's times are the server's.
    common::run_ui_script(
        "redact.mjs",
        &nvr.http,
        &ui_cfg,
        &[("TZ", "Europe/London")],
        &nvr.log,
    );
    println!("screenshots in {}", screens.display());

    let exports = tmp.path().join("data/.exports");
    let ids: Vec<String> = std::fs::read_dir(&exports)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let job = op.json(&format!("/api/exports/{}", ids[0]));
    let m = &job["manifest"];
    let r = &m["redaction"];
    assert_eq!(r["mode"], "fill", "{m}");
    assert_eq!(r["by"], "op");
    assert_eq!(r["range"]["start"], cleannvr::clock::rfc3339(start), "{m}");
    let boxes = r["boxes"].as_array().unwrap();
    assert_eq!(boxes.len(), 1, "{m}");
    let four = |v: &Value| ["x", "y", "w", "h"].map(|k| v[k].as_f64().unwrap());
    let near =
        |got: [f64; 4], want: [f64; 4]| got.iter().zip(want).all(|(g, w)| (g - w).abs() < 0.01);
    // The box's place is where it was drawn; its key points, the frames it was placed on.
    assert!(near(four(&boxes[0]), drawn), "drawn {drawn:?}: {m}");
    let keys: Vec<(i64, [f64; 4])> = boxes[0]["keys"]
        .as_array()
        .unwrap_or_else(|| panic!("no key points: {m}"))
        .iter()
        .map(|k| {
            let at = cleannvr::clock::parse_rfc3339(k["at"].as_str().unwrap()).unwrap();
            (at, four(k))
        })
        .collect();
    assert_eq!(keys.len(), 2, "{m}");
    let moved = [drawn[0] + shift, drawn[1], drawn[2] + grow, drawn[3] + grow];
    assert!(near(keys[0].1, drawn) && near(keys[1].1, moved), "{m}");
    // The first on the frame shown for the range's start (the key frame at or before it,
    // one a second), the second on a frame seconds later, inside the range.
    let (k0, k1) = (keys[0].0, keys[1].0);
    assert!(k0 > start - 1_100_000_000 && k0 <= start, "{m}");
    assert!(k1 >= k0 + 1_500_000_000 && k1 < end - 200_000_000, "{m}");

    let path = exports.join(&ids[0]).join("door-redacted.mp4");
    let (s, e) = (
        cleannvr::clock::rfc3339(start),
        cleannvr::clock::rfc3339(end),
    );
    let (status, orig) = op.get(&format!("/api/cameras/door/video.mp4?start={s}&end={e}"));
    assert_eq!(status, 200);
    let orig_path = tmp.path().join("door-original.mp4");
    std::fs::write(&orig_path, orig).unwrap();
    let (w, h) = (640usize, 360usize);
    let (times, red): (Vec<f64>, Vec<Vec<u8>>) = timed_grey_frames(&path, w, h).into_iter().unzip();
    let org: Vec<Vec<u8>> = timed_grey_frames(&orig_path, w, h)
        .into_iter()
        .map(|f| f.1)
        .collect();
    let first_frame = file(m, "door-redacted.mp4")["first_frame"]
        .as_str()
        .unwrap();
    let first_frame = cleannvr::clock::parse_rfc3339(first_frame).unwrap();
    assert!(red.len() >= 75, "{} frames", red.len());
    assert!((red.len() as i64 - org.len() as i64).abs() <= 2);
    // Frame n was recorded at the file's first frame (the key frame at or before the
    // range's start, per the manifest) plus its time after that frame. 6 px in from the
    // box's edges is inside it (the server widens boxes outward to 16-px blocks).
    let px = |v: f64, n: usize| (v * n as f64) as usize;
    let inside = |b: [f64; 4]| {
        (
            px(b[0], w) + 6,
            px(b[1], h) + 6,
            px(b[0] + b[2], w) - 6,
            px(b[1] + b[3], h) - 6,
        )
    };
    let at = |n: usize| first_frame + (times[n] * 1e9).round() as i64;
    assert_flat_black(&red, w, "the box where it is at the frame's time", |n| {
        inside(box_at(&keys, at(n)))
    });
    // The overlay's text where the box is not (yet, or any more) is the camera's: right of
    // it in the first frame, left of it in the last (past the box's 16-px widening).
    let (first_box, last_box) = (box_at(&keys, at(0)), box_at(&keys, at(red.len() - 1)));
    let right = (
        px(first_box[0] + first_box[2], w).div_ceil(16) * 16 + 2,
        30,
        186,
        50,
    );
    let left = (4, 30, px(last_box[0], w) / 16 * 16 - 2, 50);
    for (n, region, what) in [(0, right, "right of"), (red.len() - 1, left, "left of")] {
        assert!(region.2 >= region.0 + 16, "{what} the box {n}: {region:?}");
        let (lo, hi) = min_max(&org[n], w, region);
        assert!(
            hi - lo > 100,
            "frame {n}: no text {what} the box to compare ({lo}..{hi})"
        );
        let d = mad(&red[n], &org[n], w, region);
        assert!(
            d < 6.0,
            "frame {n}: {what} the box differs by {d}, yet it is not there"
        );
    }
    for (n, b) in [(0, first_box), (red.len() - 1, last_box)] {
        let (lo, hi) = min_max(&org[n], w, inside(b));
        assert!(
            hi - lo > 100,
            "frame {n}: the original has no detail under the box ({lo}..{hi})"
        );
    }
    // Outside: below the box the picture is the camera's (the ball the peer draws is there
    // in most frames), not blanked.
    assert_as_original(&red, &org, w, (0, 120, w, h), "below the box");
    assert!(
        red.iter().any(|p| {
            let (lo, hi) = min_max(p, w, (0, 120, w, h));
            hi - lo > 100
        }),
        "the picture below the box is flat in every frame"
    );
}
