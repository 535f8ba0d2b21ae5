//! Camera events over an ONVIF PullPoint subscription, against the scripted
//! event camera in `common::event_camera` (ipycam, the rig's ONVIF camera,
//! has no events service; see that module for why a fake is needed).
//!
//! The subscription task directly (renewal, a camera reboot, a hostile
//! reply, unsubscribe on shutdown), and the whole server: a camera's motion
//! reaches `GET /api/events` for those who may see the camera.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::event_camera::{self, motion, notification, EventCamera};
use tokio_util::sync::CancellationToken;

use cleannvr::clock::SystemClock;
use cleannvr::config::OnvifCameraConfig;
use cleannvr::events::{EventTask, Timing};
use cleannvr::store::events::{CameraEvent, Kind};
use cleannvr::store::Store;

fn onvif(port: u16) -> OnvifCameraConfig {
    OnvifCameraConfig {
        host: "127.0.0.1".into(),
        port,
        username: Some(event_camera::USER.into()),
        password: Some(event_camera::PASS.into()),
        profile: None,
    }
}

fn all_events(store: &Store) -> Vec<CameraEvent> {
    store
        .events()
        .range("gate", 0, i64::MAX, &[], 1000)
        .unwrap()
}

/// Polls `f` every 50 ms for up to 120 s (the machine is loaded); the panic
/// shows what the camera saw and what was stored.
async fn until(cam: &EventCamera, store: &Store, what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !f() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; camera {:?}, bad requests {:?}, stored {:?}",
            cam.counts(),
            cam.bad_requests(),
            all_events(store)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_records_renews_survives_reboots_and_hostile_replies() {
    let cam = EventCamera::start();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let stop = CancellationToken::new();
    let task = EventTask {
        camera: "gate".into(),
        onvif: onvif(cam.port),
        store: store.clone(),
        clock: Arc::new(SystemClock),
        shutdown: stop.clone(),
        timing: Timing {
            pull_timeout: Duration::from_secs(1),
            termination: Duration::from_secs(3),
            renew_before: Duration::from_secs(1),
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(500),
        },
    };
    let running = tokio::spawn(task.run());
    until(&cam, &store, "a subscription", || cam.counts().created == 1).await;

    // The initial "no motion" says nothing; motion on opens an event, off ends it.
    cam.push(notification(
        "tns1:RuleEngine/CellMotionDetector/Motion",
        "Initialized",
        &[("Rule", "MyMotionDetectorRule")],
        &[("IsMotion", "false")],
    ));
    cam.push(motion(true));
    until(&cam, &store, "motion to start", || {
        all_events(&store).iter().any(|e| e.kind == Kind::Motion)
    })
    .await;
    let ev = &all_events(&store)[0];
    assert_eq!(ev.end_ns, None);
    assert_eq!(ev.topic, "tns1:RuleEngine/CellMotionDetector/Motion");
    assert!(ev
        .source
        .contains(&("Rule".into(), "MyMotionDetectorRule".into())));
    let now = cleannvr::clock::Clock::now_ns(&SystemClock);
    assert!(
        (now - ev.start_ns).abs() < 60_000_000_000,
        "event time is now"
    );
    cam.push(motion(false));
    until(&cam, &store, "motion to end", || {
        all_events(&store)[0].end_ns.is_some()
    })
    .await;
    assert_eq!(all_events(&store).len(), 1, "one event for on and off");

    // Renewed before it expires.
    until(&cam, &store, "a renewal", || cam.counts().renewed >= 1).await;
    assert_eq!(cam.counts().created, 1, "renewal keeps the subscription");

    // The camera reboots and forgets the subscription: we subscribe again.
    cam.reboot();
    until(&cam, &store, "a new subscription after a reboot", || {
        cam.counts().created >= 2
    })
    .await;
    cam.push(notification(
        "tns1:RuleEngine/LineDetector/Crossed",
        "Changed",
        &[("VideoSourceConfigurationToken", "1")],
        &[("ObjectId", "7")],
    ));
    until(&cam, &store, "a line crossing", || {
        all_events(&store).iter().any(|e| e.kind == Kind::Intrusion)
    })
    .await;

    // Hostile replies: an entity bomb and a flood of nesting are refused
    // without expanding anything, nothing is stored, and the task goes on.
    let created = cam.counts().created;
    cam.send_raw_reply(r#"<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><Envelope><Body><PullMessagesResponse><NotificationMessage><Topic>tns1:RuleEngine/TamperDetector/Tamper&b;</Topic></NotificationMessage></PullMessagesResponse></Body></Envelope>"#.into());
    until(&cam, &store, "a new subscription after the bomb", || {
        cam.counts().created > created
    })
    .await;
    let created = cam.counts().created;
    cam.send_raw_reply(format!(
        "<Envelope><Body><PullMessagesResponse>{}{}</PullMessagesResponse></Body></Envelope>",
        "<NotificationMessage>".repeat(10_000),
        "</NotificationMessage>".repeat(10_000)
    ));
    until(
        &cam,
        &store,
        "a new subscription after deep nesting",
        || cam.counts().created > created,
    )
    .await;
    assert!(
        !all_events(&store).iter().any(|e| e.kind == Kind::Tamper),
        "nothing stored from hostile replies"
    );
    cam.push(notification(
        "tns1:RuleEngine/TamperDetector/Tamper",
        "Changed",
        &[],
        &[("IsTamper", "true")],
    ));
    until(&cam, &store, "tamper after the hostile replies", || {
        all_events(&store).iter().any(|e| e.kind == Kind::Tamper)
    })
    .await;

    // Shutdown unsubscribes.
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("the task stops")
        .unwrap();
    let c = cam.counts();
    assert!(c.unsubscribed >= 1, "{c:?}");
    assert_eq!(c.live_subscriptions, 0, "{c:?}");
    assert_eq!(cam.bad_requests(), Vec::<String>::new());
}

#[test]
fn motion_reaches_the_api_for_viewers_of_the_camera() {
    let cam = EventCamera::start();
    let dir = tempfile::tempdir().unwrap();
    let toml = common::config(
        dir.path(),
        60,
        &format!(
            "[[camera]]\nid = \"gate\"\nonvif = {{ host = \"127.0.0.1\", port = {}, username = \"{}\", password = '{}' }}\n\
             [[camera]]\nid = \"yard\"\nurl = \"rtsp://127.0.0.1:9/yard\"\n",
            cam.port,
            event_camera::USER,
            event_camera::PASS
        ),
    );
    let cfg = dir.path().join("cleannvr.toml");
    std::fs::write(&cfg, &toml).unwrap();
    common::add_user(&cfg, "root", "admin", "admin pass 12345");
    let (ok, out) = common::cli(
        &cfg,
        &[
            "user",
            "add",
            "watcher",
            "--role",
            "viewer",
            "--cameras",
            "yard",
        ],
        "viewer pass 12345\n",
    );
    assert!(ok, "user add: {out}");
    let nvr = common::Nvr::start(cfg, &["run"]);
    let admin = common::login(&nvr.http, "root", "admin pass 12345");
    let deadline = Instant::now() + Duration::from_secs(120);
    while cam.counts().created == 0 {
        assert!(
            Instant::now() < deadline,
            "no subscription within 120 s: {:?}\n{}",
            cam.counts(),
            nvr.log.text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    cam.push(motion(true));
    cam.push(motion(false));
    let events = loop {
        let (status, body) = common::get(&nvr.http, "/api/events?camera=gate&kind=motion", &admin);
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let evs = v["events"].as_array().unwrap().clone();
        if evs.first().is_some_and(|e| !e["end"].is_null()) {
            break evs;
        }
        assert!(
            Instant::now() < deadline,
            "no finished motion event within 120 s: {v}\ncamera {:?} {:?}\n{}",
            cam.counts(),
            cam.bad_requests(),
            nvr.log.text()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["camera"], "gate");
    assert_eq!(events[0]["kind"], "motion");
    assert_eq!(events[0]["data"]["IsMotion"], "true");
    // The same through the camera's own route, with the range given.
    let from = events[0]["start"].as_str().unwrap();
    let t0 =
        time::OffsetDateTime::parse(from, &time::format_description::well_known::Rfc3339).unwrap();
    let fmt = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let path = format!(
        "/api/cameras/gate/events?start={}&end={}",
        fmt(t0 - Duration::from_secs(1)),
        fmt(t0 + Duration::from_secs(1))
    );
    let (status, body) = common::get(&nvr.http, &path, &admin);
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["events"].as_array().unwrap().len(), 1, "{v}");
    // A range that ends before it finds nothing.
    let path = format!(
        "/api/events?from={}&to={}",
        fmt(t0 - Duration::from_secs(60)),
        fmt(t0 - Duration::from_secs(1))
    );
    let (_, body) = common::get(&nvr.http, &path, &admin);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["events"], serde_json::json!([]), "{v}");

    // A viewer limited to another camera sees none of gate's events.
    let viewer = common::login(&nvr.http, "watcher", "viewer pass 12345");
    let (status, body) = common::get(&nvr.http, "/api/events", &viewer);
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["events"], serde_json::json!([]), "{v}");
    let (status, _) = common::get(&nvr.http, "/api/events?camera=gate", &viewer);
    assert_eq!(status, 403);
    let (status, _) = common::get(&nvr.http, "/api/cameras/gate/events", &viewer);
    assert_eq!(status, 403);
}

/// A recorded camera (GStreamer's RTSP server) whose ONVIF events come from
/// the scripted event camera: its motion shows on the playback timeline.
#[test]
fn motion_marks_the_playback_timeline_in_chromium() {
    let ui = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    if !common::require_browser(&ui) {
        return;
    }
    let gst = common::GstServer::start(&[]);
    let cam = EventCamera::start();
    let dir = tempfile::tempdir().unwrap();
    let toml = common::config(
        dir.path(),
        3,
        &format!(
            "[[camera]]\nid = \"gate\"\nurl = \"{}\"\nonvif = {{ host = \"127.0.0.1\", port = {}, username = \"{}\", password = '{}' }}\n",
            gst.url("h264aac"),
            cam.port,
            event_camera::USER,
            event_camera::PASS
        ),
    );
    let (nvr, admin) = common::run_with_admin(dir.path(), &toml);
    common::wait_segments(&nvr, Some(&admin), "gate", 1);
    let deadline = Instant::now() + Duration::from_secs(120);
    while cam.counts().created == 0 {
        assert!(
            Instant::now() < deadline,
            "no subscription within 120 s: {:?}\n{}",
            cam.counts(),
            nvr.log.text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    cam.push(motion(true));
    std::thread::sleep(Duration::from_secs(2));
    cam.push(motion(false));
    let at = loop {
        let (_, body) = common::get(&nvr.http, "/api/events?camera=gate", &admin);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        if let Some(e) = v["events"].as_array().and_then(|a| a.first()) {
            if !e["end"].is_null() {
                break e["start"].as_str().unwrap().to_owned();
            }
        }
        assert!(
            Instant::now() < deadline,
            "no motion event within 120 s: {v}\n{}",
            nvr.log.text()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let screens = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-events");
    std::fs::create_dir_all(&screens).unwrap();
    let cfg = serde_json::json!({
        "user": ["root", "admin pass 12345"],
        "camera": "gate",
        "at": at,
        "screens": screens,
    });
    common::run_ui_script("events.mjs", &nvr.http, &cfg.to_string(), &[], &nvr.log);
}
