//! Helpers shared by the playback and export tests: segments written by ffmpeg at exact
//! wall times (so ranges, gaps and parameter changes are deterministic), and measurements
//! of what a file really contains (decoded frames and presented duration).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use cleannvr::store::{check, segment_rel_path, SegmentRecord, Store};

/// 2025-06-01T12:00:00Z, the wall time synthetic recordings start from.
pub const T0: i64 = 1_748_779_200_000_000_000;
/// Frame interval of the synthetic segments (25 fps).
pub const FRAME_NS: i64 = 40_000_000;

/// `T0 + sec` in ns.
pub fn at(sec: f64) -> i64 {
    T0 + (sec * 1e9).round() as i64
}

/// RFC 3339 for `T0 + sec`.
pub fn rfc(sec: f64) -> String {
    cleannvr::clock::rfc3339(at(sec))
}

/// Video codec of a synthetic segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// libx264, baseline-ish, no B-frames.
    H264,
    /// libx265, no B-frames, `hvc1` sample entry.
    H265,
}

/// Writes a `seconds`-long segment of `camera` starting at `T0 + start_s`, shaped like the
/// recorder's (25 fps, one-second GOPs, one fragment per GOP, 90 kHz video, optional AAC),
/// and indexes it the way `cleannvr check --repair` would.
pub fn segment(
    store: &Store,
    camera: &str,
    start_s: f64,
    seconds: u32,
    codec: Codec,
    size: (u32, u32),
    audio: bool,
) -> SegmentRecord {
    let start_ns = at(start_s);
    let rel = segment_rel_path(camera, start_ns);
    let path = store.dir().join(&rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!(
            "testsrc2=size={}x{}:rate=25:duration={seconds}",
            size.0, size.1
        ));
    if audio {
        // Encoded to ADTS first and copied in: muxing straight from the AAC encoder makes
        // ffmpeg shift video by the encoder's priming and stretch the first frame, which
        // the recorder never does.
        let adts = path.with_extension("aac");
        let out = Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg(format!(
                "sine=frequency=440:sample_rate=48000:duration={seconds}"
            ))
            .args(["-c:a", "aac", "-b:a", "64k", "-f", "adts"])
            .arg(&adts)
            .output()
            .expect("running ffmpeg");
        assert!(
            out.status.success(),
            "ffmpeg: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        cmd.arg("-i")
            .arg(&adts)
            .args(["-c:a", "copy", "-bsf:a", "aac_adtstoasc"]);
    }
    match codec {
        Codec::H264 => cmd.args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "25",
            "-keyint_min",
            "25",
            "-sc_threshold",
            "0",
            "-bf",
            "0",
        ]),
        Codec::H265 => cmd.args([
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-x265-params",
            "keyint=25:min-keyint=25:scenecut=0:bframes=0:log-level=error",
            "-tag:v",
            "hvc1",
        ]),
    };
    let out = cmd
        .args(["-pix_fmt", "yuv420p", "-video_track_timescale", "90000"])
        .args(["-movflags", "+frag_keyframe+empty_moov+default_base_moof"])
        .args(["-f", "mp4"])
        .arg(&path)
        .output()
        .expect("running ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_file(path.with_extension("aac"));
    let rec = check::record_from_file(store.dir(), &rel).unwrap();
    store.insert(&rec).unwrap();
    rec
}

/// Writes `bytes` to a file in `dir` and returns its path (ffmpeg wants files to seek in).
pub fn save(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// What ffmpeg presents from a file: frames decoded and shown, and the presented span
/// (first shown frame's time to the last one's end), as the `-f null` muxer sees them.
#[derive(Debug)]
pub struct Presented {
    /// Video frames output.
    pub frames: u64,
    /// Seconds from the first to the end of the last output video frame.
    pub duration: f64,
}

/// Decodes `file` with `ffmpeg -v error -i FILE -f null -`, asserting no errors, and
/// reports what it presented (using `-show_entries` of the decoded frames via ffprobe for
/// the times, which honour the edit list the same way).
pub fn presented(file: &Path) -> Presented {
    let errors = super::common::decode_errors(file);
    assert!(
        errors.is_empty(),
        "{} does not decode cleanly: {errors}",
        file.display()
    );
    let v = super::common::ffprobe(
        file,
        &[
            "-select_streams",
            "v:0",
            "-show_entries",
            "frame=pts_time,duration_time,pkt_duration_time",
        ],
    );
    let frames = v["frames"].as_array().unwrap();
    let t = |f: &serde_json::Value, k: &str| -> Option<f64> { f[k].as_str()?.parse().ok() };
    let times: Vec<(f64, f64)> = frames
        .iter()
        .filter_map(|f| {
            let pts = t(f, "pts_time")?;
            let d = t(f, "duration_time")
                .or_else(|| t(f, "pkt_duration_time"))
                .unwrap_or(0.04);
            Some((pts, d))
        })
        .filter(|(pts, _)| *pts >= -1e-6)
        .collect();
    let first = times.iter().map(|x| x.0).fold(f64::INFINITY, f64::min);
    let last = times
        .iter()
        .map(|x| x.0 + x.1)
        .fold(f64::NEG_INFINITY, f64::max);
    Presented {
        frames: times.len() as u64,
        duration: if times.is_empty() { 0.0 } else { last - first },
    }
}

/// ffprobe's format duration of `file`, seconds.
pub fn format_duration(file: &Path) -> f64 {
    let v = super::common::ffprobe(file, &["-show_entries", "format=duration"]);
    v["format"]["duration"].as_str().unwrap().parse().unwrap()
}
