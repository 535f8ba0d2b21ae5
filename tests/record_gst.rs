//! End-to-end recording against a real third-party RTSP server (GStreamer's
//! gst-rtsp-server): H.264 and H.265 with AAC, digest auth, server restarts,
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

/// Waits until `n` finished segments of `camera` exist on disk.
fn wait_segments(dir: &Path, camera: &str, n: usize, timeout: Duration) {
    let cam_dir = dir.join("data").join(camera);
    wait_for(timeout, &format!("{n} segments of {camera}"), || {
        (files(&cam_dir, ".mp4").len() >= n).then_some(())
    });
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
        // The file on its own reports the duration the index claims.
        let probed = ffprobe(&file, &["-show_entries", "format=duration"]);
        let secs: f64 = probed["format"]["duration"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let indexed = (r.end_ns - r.start_ns) as f64 / 1e9;
        assert!(
            (secs - indexed).abs() < 0.1,
            "{}: ffprobe {secs} s, index {indexed} s",
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

#[test]
fn records_h264_and_h265_with_aac_in_playable_contiguous_segments() {
    let gst = GstServer::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let cams = camera("h264", &gst.url("h264aac"), "") + &camera("h265", &gst.url("h265aac"), "");
    let mut nvr = Nvr::run(dir.path(), &config(dir.path(), 2, &cams));
    let started = Instant::now();
    wait_segments(dir.path(), "h264", 3, Duration::from_secs(60));
    wait_segments(dir.path(), "h265", 3, Duration::from_secs(60));
    nvr.stop();
    let wall = started.elapsed().as_secs_f64();

    for (cam, video) in [("h264", "h264"), ("h265", "hevc")] {
        let rows = index(dir.path(), cam);
        assert!(rows.len() >= 3, "{cam}: {rows:#?}");
        assert!(
            rows.iter().all(|r| r.has_audio),
            "{cam}: AAC is recorded as a second track"
        );
        assert_contiguous_playable(&rows, dir.path(), &[video, "aac"]);
        // Summed durations match the wall time the recording ran (it starts
        // after connecting, so allow the connect time plus one second).
        let total: f64 = rows
            .iter()
            .map(|r| (r.end_ns - r.start_ns) as f64 / 1e9)
            .sum();
        let span = (rows.last().unwrap().end_ns - rows[0].start_ns) as f64 / 1e9;
        assert!(
            (total - span).abs() < 0.1,
            "{cam}: {total} s recorded over {span} s"
        );
        assert!(
            total <= wall + 1.0 && total >= wall - 3.0,
            "{cam}: {total} s recorded in {wall} s"
        );
        assert!(rows.iter().all(|r| r.width == 640 && r.height == 360));
    }

    // The index is a cache of the files: lose it, and `check --repair` rebuilds
    // the same rows (drift is the one thing only the live recorder knew).
    let before: Vec<_> = ["h264", "h265"]
        .iter()
        .flat_map(|c| index(dir.path(), c))
        .map(|r| SegmentRecord { drift_ms: 0, ..r })
        .collect();
    std::fs::remove_dir_all(dir.path().join("data/index")).unwrap();
    let (ok, out) = cli(&nvr.config, &["check"], "");
    assert!(!ok && out.contains("not in the index"), "{out}");
    let (ok, out) = cli(&nvr.config, &["check", "--repair"], "");
    assert!(ok, "{out}");
    let after: Vec<_> = ["h264", "h265"]
        .iter()
        .flat_map(|c| index(dir.path(), c))
        .collect();
    assert_eq!(before, after);
    let (ok, out) = cli(&nvr.config, &["check"], "");
    assert!(ok && out.contains(" 0 problems"), "{out}");
}

#[test]
fn g711_audio_is_skipped_with_one_log_line_and_video_recorded() {
    let gst = GstServer::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let mut nvr = Nvr::run(
        dir.path(),
        &config(dir.path(), 2, &camera("pcmu", &gst.url("h264pcmu"), "")),
    );
    wait_segments(dir.path(), "pcmu", 1, Duration::from_secs(60));
    nvr.stop();
    assert_eq!(
        nvr.log.count("recording video only"),
        1,
        "{}",
        nvr.log.text()
    );
    let rows = index(dir.path(), "pcmu");
    assert_contiguous_playable(&rows, dir.path(), &["h264"]);
}

#[test]
fn digest_auth_right_password_records_wrong_password_is_reported_and_retried_slowly() {
    let gst = GstServer::start(&["--user", "nvr", "--password", "s3cret!", "--auth", "digest"]);
    let dir = tempfile::tempdir().unwrap();
    let url = gst.url("h264aac");
    let cams = camera("good", &url, "username = \"nvr\"\npassword = \"s3cret!\"")
        + &camera(
            "bad",
            &url,
            "username = \"nvr\"\npassword = \"wrong-password\"",
        );
    let mut nvr = Nvr::run(dir.path(), &config(dir.path(), 2, &cams));
    wait_segments(dir.path(), "good", 2, Duration::from_secs(60));
    let first = wait_for(Duration::from_secs(20), "auth failure report", || {
        nvr.log.find("authentication failed")
    });
    assert!(
        first.contains("bad"),
        "the failure names the camera: {first}"
    );
    // Let 4 more seconds pass: a fast retry loop would fail again within them.
    std::thread::sleep(Duration::from_secs(4));
    nvr.stop();
    let log = nvr.log.text();
    assert_eq!(
        nvr.log.count("authentication failed"),
        1,
        "retried too fast:\n{log}"
    );
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
    wait_segments(dir.path(), "cam", 2, Duration::from_secs(60));
    gst.kill();
    let down = Instant::now();
    wait_for(Duration::from_secs(30), "the session to end", || {
        nvr.log.find("session ended")
    });
    std::thread::sleep(Duration::from_secs(2).saturating_sub(down.elapsed()));
    let before = files(&dir.path().join("data/cam"), ".mp4").len();
    let _gst = GstServer::start_on(port, &[]);
    wait_segments(dir.path(), "cam", before + 2, Duration::from_secs(60));
    nvr.stop();
    let rows = index(dir.path(), "cam");
    let gaps: Vec<i64> = rows
        .windows(2)
        .map(|w| w[1].start_ns - w[0].end_ns)
        .collect();
    let big: Vec<&i64> = gaps.iter().filter(|g| **g > 1_500_000_000).collect();
    assert_eq!(big.len(), 1, "exactly one outage gap: {gaps:?}");
    for r in &rows {
        assert!(decode_errors(&dir.path().join("data").join(&r.path)).is_empty());
    }
}

#[test]
fn kill_9_mid_segment_is_repaired_on_restart_and_check_passes() {
    let gst = GstServer::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let toml = config(dir.path(), 60, &camera("cam", &gst.url("h264aac"), ""));
    let mut nvr = Nvr::run(dir.path(), &toml);
    let data = dir.path().join("data");
    // Wait for a few fragments (one per key frame, every second) in the open segment.
    wait_for(Duration::from_secs(60), "a growing segment", || {
        let part = files(&data, ".part").pop()?;
        (std::fs::metadata(&part).ok()?.len() > 150_000).then_some(())
    });
    nvr.kill9();
    let part = files(&data, ".part")
        .pop()
        .expect("the open segment is left as .part");
    let torn_len = std::fs::metadata(&part).unwrap().len();

    // Restart: recovery runs before recording resumes.
    let mut nvr = Nvr::start(nvr.config.clone(), &["run"]);
    wait_for(Duration::from_secs(20), "recovery", || {
        nvr.log.find("recovered unfinished segment")
    });
    nvr.stop();
    let done = part.with_extension("");
    assert!(done.exists() && !part.exists());
    assert!(std::fs::metadata(&done).unwrap().len() <= torn_len);
    assert_eq!(decode_errors(&done), "");
    assert!(starts_with_key_frame(&done));
    let rows = index(dir.path(), "cam");
    assert!(
        rows.iter().any(|r| data.join(&r.path) == done),
        "recovered file is indexed"
    );

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
    wait_segments(dir.path(), "udp", 2, Duration::from_secs(60));
    nvr.stop();
    let rows = index(dir.path(), "udp");
    assert!(rows.len() >= 2);
    for r in &rows {
        let file = dir.path().join("data").join(&r.path);
        assert_eq!(decode_errors(&file), "", "{}", r.path);
        assert!(starts_with_key_frame(&file));
    }
}
