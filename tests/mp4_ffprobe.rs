//! Round trip through a real peer: segments written by `cleannvr::mp4` must be read by
//! ffprobe/ffmpeg with the right codec, size, frame count and duration and no errors, and
//! the scanner must read them back, plus what ffmpeg itself writes.

mod common;

use cleannvr::mp4::{
    avc1_sample_entry, avcc_from_parameter_sets, scan_path, write_fragment_header, write_init,
    Sample, TrackConfig, TrackKind, TrackRun,
};
use std::path::Path;
use std::process::Command;

/// 90 kHz ticks per frame at 25 fps.
const FRAME_TICKS: u32 = 3600;

/// Runs a command, returning (stdout, stderr); fails the test on a non-zero exit.
fn run(cmd: &mut Command) -> (String, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{cmd:?} failed: {}", head(&stderr));
    (stdout, stderr)
}

/// The first lines of a tool's complaints: a broken file makes ffmpeg log one per frame.
fn head(s: &str) -> String {
    s.lines().take(5).collect::<Vec<_>>().join("\n")
}

fn have_ffmpeg() -> bool {
    ["ffmpeg", "ffprobe"]
        .iter()
        .all(|t| Command::new(t).arg("-version").output().is_ok())
}

/// Splits an Annex B stream into NAL units (without start codes).
fn annex_b_nals(data: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new(); // (start code position, payload position)
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            let sc = if i > 0 && data[i - 1] == 0 { i - 1 } else { i };
            starts.push((sc, i + 3));
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut nals = Vec::new();
    for (n, &(_, payload)) in starts.iter().enumerate() {
        let end = starts.get(n + 1).map_or(data.len(), |&(sc, _)| sc);
        if end > payload {
            nals.push(&data[payload..end]);
        }
    }
    nals
}

/// One access unit in AVC (4-byte length-prefixed) form.
struct Frame {
    data: Vec<u8>,
    is_idr: bool,
}

/// Returns SPS, PPS and the frames. A frame starts at a slice with first_mb_in_slice == 0
/// (its ue(v) code is a single 1 bit); SEI before a frame is kept with it, while SPS, PPS
/// and access unit delimiters are dropped since the parameter sets live in avcC.
fn access_units(nals: &[&[u8]]) -> (Vec<u8>, Vec<u8>, Vec<Frame>) {
    let (mut sps, mut pps) = (None, None);
    let mut frames: Vec<Frame> = Vec::new();
    let mut pending = Vec::new(); // non-VCL NALs waiting for their frame
    for nal in nals {
        let t = nal[0] & 0x1f;
        match t {
            7 => sps = Some(nal.to_vec()),
            8 => pps = Some(nal.to_vec()),
            9 => {}
            1 | 5 => {
                let first_mb_zero = nal.get(1).is_some_and(|b| b & 0x80 != 0);
                if first_mb_zero || frames.is_empty() {
                    frames.push(Frame {
                        data: std::mem::take(&mut pending),
                        is_idr: t == 5,
                    });
                }
                let f = frames.last_mut().unwrap();
                f.data.extend_from_slice(&(nal.len() as u32).to_be_bytes());
                f.data.extend_from_slice(nal);
            }
            _ => {
                pending.extend_from_slice(&(nal.len() as u32).to_be_bytes());
                pending.extend_from_slice(nal);
            }
        }
    }
    (sps.expect("no SPS"), pps.expect("no PPS"), frames)
}

/// Writes init + one fragment per GOP; returns each fragment's end offset.
fn write_segment(path: &Path, sps: &[u8], pps: &[u8], frames: &[Frame]) -> Vec<u64> {
    let mut out = Vec::new();
    let avcc = avcc_from_parameter_sets(sps, pps);
    let track = TrackConfig {
        track_id: 1,
        kind: TrackKind::Video {
            width: 320,
            height: 240,
        },
        timescale: 90_000,
        sample_entry: avc1_sample_entry(320, 240, &avcc),
    };
    write_init(&[track], &mut out);
    let mut ends = Vec::new();
    let mut start = 0;
    let mut seq = 1;
    while start < frames.len() {
        assert!(frames[start].is_idr, "GOP must start at an IDR");
        let end = (start + 1..frames.len())
            .find(|&i| frames[i].is_idr)
            .unwrap_or(frames.len());
        let gop = &frames[start..end];
        let samples: Vec<Sample> = gop
            .iter()
            .map(|f| Sample {
                duration: FRAME_TICKS,
                size: f.data.len() as u32,
                is_sync: f.is_idr,
                composition_offset: 0,
            })
            .collect();
        let run = TrackRun {
            track_id: 1,
            base_decode_time: start as u64 * u64::from(FRAME_TICKS),
            samples: &samples,
        };
        write_fragment_header(seq, &[run], &mut out);
        for f in gop {
            out.extend_from_slice(&f.data);
        }
        ends.push(out.len() as u64);
        seq += 1;
        start = end;
    }
    std::fs::write(path, &out).unwrap();
    ends
}

/// ffprobe's view of a file: (codec, width, height, frames read, duration in seconds).
fn probe(path: &Path) -> (String, u64, u64, u64, f64) {
    let (stdout, stderr) = run(Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration:stream=codec_name,width,height,nb_read_frames",
            "-count_frames",
            "-of",
            "json",
        ])
        .arg(path));
    assert!(
        stderr.is_empty(),
        "ffprobe complained about {}: {}",
        path.display(),
        head(&stderr)
    );
    let j: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let s = &j["streams"][0];
    let num = |v: &serde_json::Value| -> u64 {
        v.as_u64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .unwrap_or_else(|| panic!("{stdout}"))
    };
    (
        s["codec_name"].as_str().unwrap_or_default().to_string(),
        num(&s["width"]),
        num(&s["height"]),
        num(&s["nb_read_frames"]),
        j["format"]["duration"]
            .as_str()
            .and_then(|d| d.parse().ok())
            .unwrap_or(-1.0),
    )
}

/// `file` decodes cleanly by the one strict check every recording test uses.
fn decodes_cleanly(path: &Path) {
    let errors = common::decode_errors(path);
    assert!(
        errors.is_empty(),
        "ffmpeg decode errors for {}: {}",
        path.display(),
        head(&errors)
    );
}

#[test]
fn ffprobe_reads_our_fragmented_mp4() {
    if !common::require_peer(have_ffmpeg(), "ffmpeg and ffprobe") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let h264 = dir.path().join("out.h264");
    run(Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25",
            "-t",
            "3",
        ])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "25",
            "-bf",
            "0",
            "-f",
            "h264",
        ])
        .arg(&h264));
    let es = std::fs::read(&h264).unwrap();
    let nals = annex_b_nals(&es);
    let (sps, pps, frames) = access_units(&nals);
    assert_eq!(frames.len(), 75);

    let seg = dir.path().join("segment.mp4");
    let ends = write_segment(&seg, &sps, &pps, &frames);
    assert_eq!(ends.len(), 3, "one fragment per 25-frame GOP");

    let (codec, w, h, n, duration) = probe(&seg);
    assert_eq!((codec.as_str(), w, h, n), ("h264", 320, 240, 75));
    assert!((duration - 3.0).abs() < 0.01, "duration {duration}");
    decodes_cleanly(&seg);

    let s = scan_path(&seg).unwrap();
    assert!(!s.is_torn());
    let v = s.video_track().unwrap();
    assert_eq!(
        (&v.codec, v.width, v.height, v.timescale),
        (b"avc1", 320, 240, 90_000)
    );
    assert_eq!(s.fragments.len(), 3);
    assert_eq!(s.fragments.iter().map(|f| f.end).collect::<Vec<_>>(), ends);
    for (i, f) in s.fragments.iter().enumerate() {
        let r = &f.runs[0];
        assert_eq!(
            (f.sequence, r.sample_count, r.first_is_sync),
            (i as u32 + 1, 25, true)
        );
        assert_eq!(r.base_decode_time, i as u64 * 25 * 3600);
    }
    assert_eq!(s.track_duration(1), 75 * 3600);

    // Recovery: tear the last fragment, truncate to valid_len, and the rest still plays.
    let torn = dir.path().join("torn.mp4");
    let bytes = std::fs::read(&seg).unwrap();
    std::fs::write(
        &torn,
        &bytes[..(ends[1] + (ends[2] - ends[1]) / 2) as usize],
    )
    .unwrap();
    let s = scan_path(&torn).unwrap();
    assert!(s.is_torn());
    assert_eq!(s.valid_len, ends[1]);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&torn)
        .unwrap()
        .set_len(s.valid_len)
        .unwrap();
    let (_, _, _, n, duration) = probe(&torn);
    assert_eq!(n, 50);
    assert!((duration - 2.0).abs() < 0.01, "duration {duration}");
    decodes_cleanly(&torn);

    // What ffmpeg writes when it fragments (absolute base_data_offset, its own timescale)
    // must scan too.
    let ff = dir.path().join("ffmpeg-frag.mp4");
    run(Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&seg)
        .args(["-c", "copy", "-movflags", "frag_keyframe+empty_moov"])
        .arg(&ff));
    let s = scan_path(&ff).unwrap();
    assert!(!s.is_torn(), "{:?}", s.torn_reason);
    let v = s.video_track().unwrap();
    assert_eq!((&v.codec, v.width, v.height), (b"avc1", 320, 240));
    let frames: u32 = s
        .fragments
        .iter()
        .flat_map(|f| &f.runs)
        .map(|r| r.sample_count)
        .sum();
    assert_eq!(frames, 75);
    assert!(s.fragments.iter().all(|f| f.runs[0].first_is_sync));
    let secs = s.track_duration(v.track_id) as f64 / f64::from(v.timescale);
    assert!((secs - 3.0).abs() < 0.01, "ffmpeg-written duration {secs}");
}
