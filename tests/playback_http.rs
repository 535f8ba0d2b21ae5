//! `GET|HEAD /api/cameras/{id}/video.mp4` through the real router (in process): the body
//! decodes and presents the range, byte ranges (first bytes, middle, suffix, several at
//! once, unsatisfiable), ETag/If-None-Match/If-Range, gap and range headers, 404/409/400,
//! access control and the playback audit entry.

mod common;
mod media;

use axum::http::{Method, StatusCode};
use cleannvr::audit::Action;
use media::*;

fn recorded(web: &Web) {
    segment(web.store(), "cam", 0.0, 4, Codec::H264, (320, 240), true);
    segment(web.store(), "cam", 4.0, 4, Codec::H264, (320, 240), true);
    // A gap from 8 s to 12 s, then a resolution change at 16 s.
    segment(web.store(), "cam", 12.0, 4, Codec::H264, (320, 240), true);
    segment(web.store(), "cam", 16.0, 2, Codec::H264, (640, 480), false);
}

#[tokio::test]
async fn full_body_decodes_and_describes_the_range() {
    let web = Web::new();
    recorded(&web);
    let s = web.login("viewer").await;
    let r = web.get(&video_uri("cam", 2.5, 13.0), &s, &[]).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.header("content-type"), "video/mp4");
    assert_eq!(r.header("accept-ranges"), "bytes");
    assert_eq!(r.header("content-length"), r.body.len().to_string());
    assert!(r.header("etag").starts_with('"'));
    assert_eq!(r.header("x-recording-start"), rfc(2.5));
    assert_eq!(r.header("x-recording-end"), rfc(13.0));
    assert_eq!(r.header("x-first-frame"), rfc(2.0));
    assert_eq!(r.header("x-lead-in-ms"), "500");
    assert_eq!(r.header("x-recording-gap-count"), "1");
    assert_eq!(
        r.header("x-recording-gaps"),
        format!("{}/{}", rfc(8.0), rfc(12.0))
    );
    let file = save(web.dir.path(), "full.mp4", &r.body);
    let p = presented(&file);
    // 2.5 .. 13 s with a 4 s hole: 10.5 s of timeline, 6.5 s of frames.
    assert!((p.duration - 10.5).abs() <= 0.04, "{p:?}");
    assert!(p.frames.abs_diff(163) <= 1, "{p:?}");
    assert_eq!(common::codecs(&file), ["h264", "aac"]);
}

#[tokio::test]
async fn byte_ranges_etags_and_head() {
    let web = Web::new();
    recorded(&web);
    let s = web.login("viewer").await;
    let uri = video_uri("cam", 1.2, 6.7);
    let full = web.get(&uri, &s, &[]).await;
    let len = full.body.len();
    let etag = full.header("etag");

    // First bytes, middle, suffix, open-ended, several at once (coalesced).
    let mid = len / 2;
    let cases = [
        ("bytes=0-99".to_string(), 0, 100),
        (format!("bytes={mid}-{}", mid + 4999), mid, mid + 5000),
        ("bytes=-777".to_string(), len - 777, len),
        (format!("bytes={}-", len - 10), len - 10, len),
        (format!("bytes={}-{}", len - 10, len + 1000), len - 10, len),
        ("bytes=10-19, 30-39".to_string(), 10, 40),
    ];
    for (range, a, b) in cases {
        let r = web.get(&uri, &s, &[("range", &range)]).await;
        assert_eq!(r.status, StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(
            r.header("content-range"),
            format!("bytes {a}-{}/{len}", b - 1),
            "{range}"
        );
        assert_eq!(r.header("content-length"), (b - a).to_string());
        assert_eq!(r.body, full.body[a..b], "{range}");
        assert_eq!(r.header("etag"), etag);
    }
    // Seeking around in any order gives the same bytes (a browser's pattern).
    let mut pos = 7usize;
    for _ in 0..20 {
        pos = (pos * 7919 + 104_729) % len;
        let end = (pos + 65_536).min(len);
        let r = web
            .get(&uri, &s, &[("range", &format!("bytes={pos}-{}", end - 1))])
            .await;
        assert_eq!(r.body, full.body[pos..end]);
    }
    // Unsatisfiable.
    let r = web
        .get(&uri, &s, &[("range", &format!("bytes={len}-"))])
        .await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.header("content-range"), format!("bytes */{len}"));
    // Conditional requests.
    let r = web.get(&uri, &s, &[("if-none-match", &etag)]).await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    assert!(r.body.is_empty());
    let r = web
        .get(
            &uri,
            &s,
            &[("range", "bytes=0-9"), ("if-range", "\"stale\"")],
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "If-Range mismatch sends the whole file"
    );
    assert_eq!(r.body.len(), len);
    let r = web
        .get(&uri, &s, &[("range", "bytes=0-9"), ("if-range", &etag)])
        .await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    // HEAD: same headers, no body.
    let r = web.send(Method::HEAD, &uri, Some(&s), &[], None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-length"), len.to_string());
    assert!(r.body.is_empty());
    // All of that was one viewing: one audit entry.
    let entries = web.audit(Action::Playback);
    assert_eq!(entries.len(), 1, "{entries:#?}");
    assert_eq!(entries[0].actor, "viewer");
    assert_eq!(entries[0].target, "cam");
    assert!(
        entries[0].detail.contains(&rfc(1.2)),
        "{}",
        entries[0].detail
    );
}

#[tokio::test]
async fn errors_name_the_problem() {
    let web = Web::new();
    recorded(&web);
    let s = web.login("viewer").await;
    // Across the resolution change: 409 naming the boundary and the parts.
    let r = web.get(&video_uri("cam", 14.0, 17.0), &s, &[]).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let j = r.json();
    assert_eq!(j["boundary"], rfc(16.0));
    assert_eq!(j["parts"][1]["start"], rfc(16.0));
    assert!(j["detail"].as_str().unwrap().contains(&rfc(16.0)));
    // Nothing recorded.
    let r = web.get(&video_uri("cam", 9.0, 11.0), &s, &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = web.get(&video_uri("cam", 100.0, 110.0), &s, &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Bad input.
    let r = web.get(&video_uri("cam", 5.0, 4.0), &s, &[]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = web
        .get(
            "/api/cameras/cam/video.mp4?start=yesterday&end=today",
            &s,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = web
        .get(&(video_uri("cam", 1.0, 2.0) + "&codec=vp9"), &s, &[])
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = web.get(&video_uri("cam", 0.0, 86_401.0), &s, &[]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = web.get(&video_uri("nope", 1.0, 2.0), &s, &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Beyond the end: clipped and still playable.
    let r = web.get(&video_uri("cam", 17.0, 30.0), &s, &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("x-recording-end"), rfc(18.0));
    let p = presented(&save(web.dir.path(), "beyond.mp4", &r.body));
    assert!((p.duration - 1.0).abs() <= 0.04, "{p:?}");
}

#[tokio::test]
async fn restricted_users_cannot_read_other_cameras_and_sessions_are_required() {
    let web = Web::new();
    recorded(&web);
    segment(web.store(), "other", 0.0, 2, Codec::H264, (320, 240), false);
    let uri = video_uri("cam", 1.0, 2.0);
    let r = web.send(Method::GET, &uri, None, &[], None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let limited = web.login("limited").await;
    let r = web.get(&uri, &limited, &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = web
        .send(Method::HEAD, &uri, Some(&limited), &[], None)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = web.get(&video_uri("other", 0.5, 1.5), &limited, &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(web
        .audit(Action::Playback)
        .iter()
        .all(|e| e.target == "other"));
}
