//! Assembled playback files decode cleanly with ffmpeg and present exactly the requested
//! range: inside one segment, across two and three, starting mid-GOP, at and across a gap,
//! beyond the recording, H.265, with AAC, and across a codec-parameter change.
//!
//! "Presented" means what ffmpeg shows after applying our edit list: lead-in frames from
//! the key frame before `start` decode with negative timestamps and are not shown.

mod common;
mod media;

use std::path::Path;
use std::sync::Arc;

use cleannvr::playback::{self, Plan, PlanError, PlanReader, Span};
use cleannvr::store::Store;
use media::*;

fn write(dir: &Path, name: &str, plan: &Arc<Plan>) -> std::path::PathBuf {
    let mut out = Vec::new();
    let n = PlanReader::new(plan.clone()).write_all(&mut out).unwrap();
    assert_eq!(n, plan.len, "planned length");
    save(dir, name, &out)
}

/// Decodes the plan's file and checks it presents `want_s` seconds (within a frame) and
/// the matching number of frames, and starts on a key frame.
fn check_presented(dir: &Path, name: &str, plan: &Arc<Plan>, want_s: f64, want_frames: u64) {
    let file = write(dir, name, plan);
    let p = presented(&file);
    assert!(
        (p.duration - want_s).abs() <= 0.040 + 1e-6,
        "{name}: presented {} s, wanted {want_s} s",
        p.duration
    );
    assert!(
        p.frames.abs_diff(want_frames) <= 1,
        "{name}: presented {} frames, wanted {want_frames}",
        p.frames
    );
    assert!(
        common::starts_with_key_frame(&file),
        "{name}: first frame is not a key frame"
    );
}

fn store(dir: &Path) -> Store {
    Store::open(&dir.join("data")).unwrap()
}

#[test]
fn inside_one_segment_starting_mid_gop() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    segment(&s, "cam", 0.0, 6, Codec::H264, (320, 240), false);
    let plan = Arc::new(playback::plan(&s, "cam", at(1.5), at(3.3)).unwrap());
    assert_eq!(plan.lead_in_ns(), 500_000_000, "key frame at 1 s");
    assert!(plan.gaps.is_empty());
    check_presented(dir.path(), "one.mp4", &plan, 1.8, 45);
    // Starting exactly on a key frame: no lead-in.
    let plan = Arc::new(playback::plan(&s, "cam", at(2.0), at(4.0)).unwrap());
    assert_eq!(plan.lead_in_ns(), 0);
    check_presented(dir.path(), "kf.mp4", &plan, 2.0, 50);
}

#[test]
fn across_two_and_three_segments() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    for i in 0..3 {
        segment(&s, "cam", 4.0 * i as f64, 4, Codec::H264, (320, 240), false);
    }
    let two = Arc::new(playback::plan(&s, "cam", at(2.2), at(5.6)).unwrap());
    assert_eq!(two.segment_paths.len(), 2);
    check_presented(dir.path(), "two.mp4", &two, 3.4, 85);
    let three = Arc::new(playback::plan(&s, "cam", at(1.0), at(10.4)).unwrap());
    assert_eq!(three.segment_paths.len(), 3);
    assert!(three.gaps.is_empty(), "{:?}", three.gaps);
    check_presented(dir.path(), "three.mp4", &three, 9.4, 235);
}

#[test]
fn at_a_gap_across_a_gap_and_beyond_the_recording() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    segment(&s, "cam", 0.0, 4, Codec::H264, (320, 240), false);
    segment(&s, "cam", 8.0, 4, Codec::H264, (320, 240), false);

    // Starting in the gap: the file starts at the next recording, the gap is reported.
    let plan = Arc::new(playback::plan(&s, "cam", at(5.0), at(10.0)).unwrap());
    assert_eq!(
        plan.actual,
        Span {
            start_ns: at(8.0),
            end_ns: at(10.0)
        }
    );
    assert_eq!(
        plan.gaps,
        vec![Span {
            start_ns: at(5.0),
            end_ns: at(8.0)
        }]
    );
    check_presented(dir.path(), "at-gap.mp4", &plan, 2.0, 50);

    // Across the gap: it stays a gap in the timeline (4 s of time, no frames), not
    // papered over, so media time still maps to wall time.
    let plan = Arc::new(playback::plan(&s, "cam", at(2.0), at(10.0)).unwrap());
    assert_eq!(
        plan.gaps,
        vec![Span {
            start_ns: at(4.0),
            end_ns: at(8.0)
        }]
    );
    check_presented(dir.path(), "across-gap.mp4", &plan, 8.0, 100);

    // Beyond the end: clipped to what exists.
    let plan = Arc::new(playback::plan(&s, "cam", at(10.0), at(30.0)).unwrap());
    assert_eq!(
        plan.actual,
        Span {
            start_ns: at(10.0),
            end_ns: at(12.0)
        }
    );
    assert_eq!(
        plan.gaps,
        vec![Span {
            start_ns: at(12.0),
            end_ns: at(30.0)
        }]
    );
    check_presented(dir.path(), "beyond.mp4", &plan, 2.0, 50);

    // Entirely outside the recording.
    assert!(matches!(
        playback::plan(&s, "cam", at(20.0), at(30.0)),
        Err(PlanError::NothingRecorded)
    ));
    assert!(matches!(
        playback::plan(&s, "cam", at(4.5), at(7.5)),
        Err(PlanError::NothingRecorded)
    ));
}

#[test]
fn h265_and_aac_segments_assemble_too() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    segment(&s, "hevc", 0.0, 3, Codec::H265, (320, 240), true);
    segment(&s, "hevc", 3.0, 3, Codec::H265, (320, 240), true);
    let plan = Arc::new(playback::plan(&s, "hevc", at(0.7), at(4.9)).unwrap());
    assert!(plan.has_audio);
    assert_eq!(&plan.video_fourcc, b"hvc1");
    check_presented(dir.path(), "hevc.mp4", &plan, 4.2, 105);
    let file = dir.path().join("hevc.mp4");
    assert_eq!(common::codecs(&file), ["hevc", "aac"]);
    // Audio is cut at the same place as video (within one AAC frame, 21 ms).
    let v = common::ffprobe(
        &file,
        &["-select_streams", "a:0", "-show_entries", "packet=pts_time"],
    );
    let pk = v["packets"].as_array().unwrap();
    let end = pk
        .iter()
        .map(|p| p["pts_time"].as_str().unwrap().parse::<f64>().unwrap() + 1024.0 / 48000.0)
        .fold(0.0, f64::max);
    assert!((end - 4.2).abs() < 0.0214, "audio ends at {end}");
}

#[test]
fn codec_parameter_change_is_refused_naming_the_boundary_or_split() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    segment(&s, "cam", 0.0, 3, Codec::H264, (320, 240), false);
    segment(&s, "cam", 3.0, 3, Codec::H264, (640, 480), false);
    match playback::plan(&s, "cam", at(1.0), at(5.0)) {
        Err(e @ PlanError::ParametersChanged { .. }) => {
            let PlanError::ParametersChanged { at_ns, ref parts } = e else {
                unreachable!()
            };
            assert_eq!(at_ns, at(3.0));
            assert_eq!(parts.len(), 2);
            assert!(e.to_string().contains(&rfc(3.0)), "{e}");
        }
        other => panic!("{other:?}"),
    }
    let parts = playback::plan_parts(&s, "cam", at(1.0), at(5.0)).unwrap();
    assert_eq!((parts[0].width, parts[1].width), (320, 640));
    let parts: Vec<Arc<Plan>> = parts.into_iter().map(Arc::new).collect();
    check_presented(dir.path(), "p0.mp4", &parts[0], 2.0, 50);
    check_presented(dir.path(), "p1.mp4", &parts[1], 2.0, 50);
}
