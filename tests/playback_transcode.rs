//! H.265 → H.264 on demand (`video.mp4?codec=h264`) and snapshots (`snapshot.jpg`, latest,
//! `?at=`, `?width=`) of H.264 and H.265 cameras, through the router.

mod common;
mod media;

use axum::http::{Method, StatusCode};
use cleannvr::audit::Action;
use media::*;

/// Width and height of an image or video per ffprobe, and its codec.
fn probe(file: &std::path::Path) -> (String, u64, u64) {
    let v = common::ffprobe(file, &["-show_entries", "stream=codec_name,width,height"]);
    let s = &v["streams"][0];
    (
        s["codec_name"].as_str().unwrap().to_owned(),
        s["width"].as_u64().unwrap(),
        s["height"].as_u64().unwrap(),
    )
}

#[tokio::test]
async fn h265_as_h264_decodes_presents_the_range_and_is_bounded() {
    let web = Web::new();
    segment(web.store(), "hevc", 0.0, 3, Codec::H265, (320, 240), true);
    segment(web.store(), "hevc", 3.0, 3, Codec::H265, (320, 240), true);
    segment(web.store(), "cam", 0.0, 2, Codec::H264, (320, 240), false);
    let s = web.login("viewer").await;

    let uri = video_uri("hevc", 1.5, 5.3) + "&codec=h264";
    let r = web.get(&uri, &s, &[]).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.header("x-transcoded"), "h264");
    assert_eq!(r.header("accept-ranges"), "none");
    assert_eq!(r.header("etag"), "");
    let file = save(web.dir.path(), "h264.mp4", &r.body);
    assert_eq!(probe(&file), ("h264".into(), 320, 240));
    assert!(common::starts_with_key_frame(&file));
    // Starts exactly at `start` (no lead-in to hide), ends at `end`.
    let p = presented(&file);
    assert!((p.duration - 3.8).abs() <= 0.04, "{p:?}");
    assert!(p.frames.abs_diff(95) <= 1, "{p:?}");
    let v = common::ffprobe(
        &file,
        &[
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=start_time",
        ],
    );
    let start: f64 = v["streams"][0]["start_time"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(start.abs() < 0.001, "starts at {start}");
    let e = web.audit(Action::Playback);
    assert!(
        e.iter()
            .any(|e| e.target == "hevc" && e.detail.ends_with("codec=h264")),
        "{e:#?}"
    );

    // H.264 sources asking for H.264 get the remuxed file, with ranges.
    let r = web
        .get(&(video_uri("cam", 0.5, 1.5) + "&codec=h264"), &s, &[])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("accept-ranges"), "bytes");
    assert!(r.header("x-transcoded").is_empty());

    // HEAD describes without transcoding.
    let before = cleannvr::transcode::counters()
        .started
        .load(std::sync::atomic::Ordering::SeqCst);
    let r = web.send(Method::HEAD, &uri, Some(&s), &[], None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.is_empty());
    let after = cleannvr::transcode::counters()
        .started
        .load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(before, after);

    // At the limit, 503 with Retry-After rather than a queue.
    let limiter = cleannvr::transcode::limiter();
    let held: Vec<_> = std::iter::from_fn(|| limiter.try_acquire()).collect();
    assert_eq!(held.len(), limiter.max());
    let r = web.get(&uri, &s, &[]).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.header("retry-after"), "5");
    drop(held);
    assert_eq!(web.get(&uri, &s, &[]).await.status, StatusCode::OK);

    // Reported in /metrics.
    let admin = web.login("admin").await;
    let m = String::from_utf8(web.get("/metrics", &admin, &[]).await.body).unwrap();
    assert!(m.contains("cleannvr_transcodes_active 0"), "{m}");
    assert!(m.contains("cleannvr_transcodes_refused_total "), "{m}");
    assert!(
        m.contains(&format!("cleannvr_transcodes_limit {}", limiter.max())),
        "{m}"
    );
}

#[tokio::test]
async fn snapshots_of_h264_and_h265_are_jpegs_of_the_right_size() {
    let web = Web::new();
    segment(web.store(), "cam", 0.0, 3, Codec::H264, (320, 240), false);
    segment(web.store(), "hevc", 0.0, 3, Codec::H265, (640, 480), false);
    let s = web.login("viewer").await;
    for (cam, w, h) in [("cam", 320, 240), ("hevc", 640, 480)] {
        // Latest: the last key frame of the newest segment.
        let r = web
            .get(&format!("/api/cameras/{cam}/snapshot.jpg"), &s, &[])
            .await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "{cam}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.header("content-type"), "image/jpeg");
        assert_eq!(&r.body[..2], &[0xff, 0xd8], "{cam}: JPEG SOI");
        assert_eq!(r.header("x-frame-time"), rfc(2.0));
        let f = save(web.dir.path(), &format!("{cam}.jpg"), &r.body);
        assert_eq!(probe(&f), ("mjpeg".into(), w, h), "{cam}");
        assert!(common::decode_errors(&f).is_empty());
        // Cached: the same bytes again.
        let again = web
            .get(&format!("/api/cameras/{cam}/snapshot.jpg"), &s, &[])
            .await;
        assert_eq!(again.body, r.body);

        // At a time, scaled: the key frame at or before it.
        let r = web
            .get(
                &format!("/api/cameras/{cam}/snapshot.jpg?at={}&width=160", rfc(1.7)),
                &s,
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header("x-frame-time"), rfc(1.0));
        let f = save(web.dir.path(), &format!("{cam}-160.jpg"), &r.body);
        assert_eq!(probe(&f), ("mjpeg".into(), 160, 120), "{cam}");
    }
    // Not recorded, bad width, other users' cameras.
    let r = web
        .get(
            &format!("/api/cameras/cam/snapshot.jpg?at={}", rfc(10.0)),
            &s,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = web.get("/api/cameras/other/snapshot.jpg", &s, &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = web
        .get("/api/cameras/cam/snapshot.jpg?width=5", &s, &[])
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let limited = web.login("limited").await;
    let r = web
        .get("/api/cameras/cam/snapshot.jpg", &limited, &[])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn latest_snapshot_comes_from_the_segment_being_recorded() {
    let web = Web::new();
    segment(web.store(), "cam", 0.0, 2, Codec::H264, (320, 240), false);
    // A segment still being written: on disk as .part, not in the index.
    let rec = segment(web.store(), "cam", 2.0, 3, Codec::H264, (320, 240), false);
    web.store().remove("cam", rec.start_ns).unwrap();
    let path = web.store().file_path(&rec);
    let mut part = path.clone().into_os_string();
    part.push(".part");
    std::fs::rename(&path, &part).unwrap();
    let s = web.login("viewer").await;
    let r = web
        .get("/api/cameras/cam/snapshot.jpg?width=64", &s, &[])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("x-frame-time"), rfc(4.0));
    let f = save(web.dir.path(), "part.jpg", &r.body);
    assert_eq!(probe(&f), ("mjpeg".into(), 64, 48));
}
