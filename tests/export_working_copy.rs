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
    let gst = GstServer::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("cleannvr.toml");
    let cameras = format!(
        "[[camera]]\nid = \"gate\"\nname = \"Gate\"\nurl = \"{}\"\n\
         [[camera]]\nid = \"door\"\nname = \"Door\"\nurl = \"{}\"\n",
        gst.url("h265aac"),
        gst.url("h264aac")
    );
    let toml = common::config(tmp.path(), 2, &cameras).replacen(
        "[server]\n",
        "[server]\ntimezone = \"Europe/London\"\n",
        1,
    );
    std::fs::write(&cfg, toml).unwrap();
    common::add_user(&cfg, "op", "operator", "operator password 1");
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

/// Mean absolute difference of two pictures over `[x0, x1) × [y0, y1)`.
fn mad(a: &[u8], b: &[u8], w: usize, (x0, y0, x1, y1): (usize, usize, usize, usize)) -> f64 {
    let mut sum = 0u64;
    for y in y0..y1 {
        for x in x0..x1 {
            sum += u64::from(a[y * w + x].abs_diff(b[y * w + x]));
        }
    }
    sum as f64 / ((x1 - x0) * (y1 - y0)) as f64
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
        let rest = mad(&a[0], &b[0], w, (0, 100, w, h));
        assert!(band > 20.0, "{cam}: band differs by only {band}");
        assert!(
            rest < 6.0,
            "{cam}: picture outside the band differs by {rest}"
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
fn redacted_copies_blank_the_box_in_every_frame_mute_audio_and_verify() {
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
        // Muted: no audio at all.
        assert_eq!(common::codecs(&path), ["h264"], "{cam}");

        // The original footage, unredacted, from the playback API (the recordings are
        // untouched).
        let (status, orig) = op.get(&format!("/api/cameras/{cam}/video.mp4?start={s}&end={e}"));
        assert_eq!(status, 200);
        let orig_path = tmp.path().join(format!("{cam}-original.mp4"));
        std::fs::write(&orig_path, orig).unwrap();

        let red = grey_frames(&path, w, h, 1000);
        let org = grey_frames(&orig_path, w, h, 1000);
        assert!(red.len() >= 50, "{cam}: {} frames", red.len());
        assert!((red.len() as i64 - org.len() as i64).abs() <= 2);
        // The box (x 0..0.3, y 0..0.15 of 640×360, widened to 16-px blocks: x 0..192,
        // y 0..64): its interior, 4 px in from the edges, is one flat value in every frame,
        // where the original shows the overlay's text.
        let spread = |p: &[u8]| {
            let inside: Vec<u8> = (4..60)
                .flat_map(|y| p[y * w + 4..y * w + 188].to_vec())
                .collect();
            (*inside.iter().min().unwrap(), *inside.iter().max().unwrap())
        };
        for (n, p) in red.iter().enumerate() {
            let (lo, hi) = spread(p);
            assert!(
                hi - lo <= 3 && hi < 40,
                "{cam} frame {n}: box spans {lo}..{hi}"
            );
        }
        let (lo, hi) = spread(&org[0]);
        assert!(
            hi - lo > 100,
            "{cam}: the original has no detail under the box ({lo}..{hi})"
        );
        // Outside the box and the time band (top right) the picture is the original's.
        for n in [0, red.len() / 2] {
            let below = mad(&red[n], &org[n], w, (0, 100, w, h));
            assert!(
                below < 6.0,
                "{cam} frame {n}: differs by {below} below the box"
            );
        }
    }

    let (ok, text) = verify(&dir);
    assert!(ok, "{text}");
    assert!(text.contains("gate-redacted.mp4"), "{text}");
}
