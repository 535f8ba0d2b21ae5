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
use time::format_description::well_known::Rfc3339;
use tokio_util::sync::CancellationToken;

use cleannvr::clock::SystemClock;
use cleannvr::config::OnvifCameraConfig;
use cleannvr::events::{CameraEvents, EventTask, Timing};
use cleannvr::store::events::{CameraEvent, EndReason, Kind};
use cleannvr::store::Store;

fn onvif(port: u16) -> OnvifCameraConfig {
    OnvifCameraConfig {
        host: "127.0.0.1".into(),
        port,
        username: Some(event_camera::USER.into()),
        password: Some(event_camera::PASS.into()),
        profile: None,
        events_poll_seconds: None,
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
    let (stop, running) = spawn_task(cam.port, &store, renewing());
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
    stop_task(stop, running).await;
    let c = cam.counts();
    assert!(c.unsubscribed >= 1, "{c:?}");
    assert_eq!(c.live_subscriptions, 0, "{c:?}");
    assert_eq!(cam.bad_requests(), Vec::<String>::new());
}

/// A camera that names subscriptions only by a reference parameter (Axis,
/// some Hikvision firmware): pulls, renewals and the unsubscribe all echo it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_parameters_are_echoed_on_every_call() {
    let cam = EventCamera::start_with_reference_parameters();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let (stop, running) = spawn_task(cam.port, &store, renewing());
    until(&cam, &store, "a subscription", || cam.counts().created == 1).await;
    cam.push(motion(true));
    cam.push(motion(false));
    until(&cam, &store, "a motion event with its end", || {
        all_events(&store)
            .first()
            .is_some_and(|e| e.end_ns.is_some())
    })
    .await;
    until(&cam, &store, "a renewal", || cam.counts().renewed >= 1).await;
    stop_task(stop, running).await;
    let c = cam.counts();
    assert_eq!(c.created, 1, "never refused, never resubscribed: {c:?}");
    assert_eq!((c.unsubscribed, c.live_subscriptions), (1, 0), "{c:?}");
    assert_eq!(cam.bad_requests(), Vec::<String>::new());
}

fn tamper(on: bool, operation: &str) -> String {
    notification(
        "tns1:RuleEngine/TamperDetector/Tamper",
        operation,
        &[("VideoSourceConfigurationToken", "VideoSourceToken")],
        &[("IsTamper", if on { "true" } else { "false" })],
    )
}

fn input(on: bool) -> String {
    notification(
        "tns1:Device/Trigger/DigitalInput",
        "Changed",
        &[("InputToken", "DI_1")],
        &[("LogicalState", if on { "true" } else { "false" })],
    )
}

/// `motion(on)` as the initial state a new subscription reports.
fn motion_initially(on: bool) -> String {
    motion(on).replace("\"Changed\"", "\"Initialized\"")
}

fn of_kind(store: &Store, kind: Kind) -> Vec<CameraEvent> {
    all_events(store)
        .into_iter()
        .filter(|e| e.kind == kind)
        .collect()
}

/// Timing that makes the task renew every couple of seconds.
fn renewing() -> Timing {
    Timing {
        termination: Duration::from_secs(3),
        renew_before: Duration::from_secs(1),
        ..patient(Duration::from_secs(300))
    }
}

/// Timing with renewals far off, closing unobserved events after `lost_after`.
fn patient(lost_after: Duration) -> Timing {
    Timing {
        pull_timeout: Duration::from_secs(1),
        termination: Duration::from_secs(60),
        renew_before: Duration::from_secs(20),
        min_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(500),
        lost_after,
        poll_every: Duration::from_secs(5),
    }
}

/// One run of the event task (as one run of cleannvr) on `store`.
fn spawn_task(
    port: u16,
    store: &Arc<Store>,
    timing: Timing,
) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let (stop, running, _) = spawn_task_with_status(port, store, timing);
    (stop, running)
}

type StatusCell = Arc<std::sync::Mutex<cleannvr::status::CameraStatus>>;

/// [`spawn_task`], with the camera status the task writes its mode into.
fn spawn_task_with_status(
    port: u16,
    store: &Arc<Store>,
    timing: Timing,
) -> (CancellationToken, tokio::task::JoinHandle<()>, StatusCell) {
    let stop = CancellationToken::new();
    let status = StatusCell::default();
    let task = EventTask {
        onvif: onvif(port),
        events: CameraEvents::load("gate", store.clone(), Arc::new(SystemClock)),
        shutdown: stop.clone(),
        timing,
        status: status.clone(),
    };
    (stop, tokio::spawn(task.run()), status)
}

fn events_mode(status: &StatusCell) -> Option<String> {
    status.lock().unwrap().events.clone()
}

/// A camera that faults `Renew` (firmware found in the field): its
/// subscription is re-created before each one expires, so events keep
/// flowing past the termination time, one motion event stays one event
/// across the new subscriptions, and after two refusals we stop asking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_without_renew_keeps_events_past_termination() {
    let cam = EventCamera::start_without_renew();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    // Subscriptions of 3 s, replaced when 1 s is left.
    let (stop, running, status) = spawn_task_with_status(cam.port, &store, renewing());
    until(&cam, &store, "a subscription", || cam.counts().created == 1).await;
    assert_eq!(
        events_mode(&status).as_deref(),
        Some("events by subscription")
    );
    cam.set_initial(vec![motion_initially(true)]);
    cam.push(motion(true));
    until(&cam, &store, "motion to start", || {
        !of_kind(&store, Kind::Motion).is_empty()
    })
    .await;
    // Several termination times later, the camera still reports to us.
    until(&cam, &store, "four subscriptions", || {
        cam.counts().created >= 5
    })
    .await;
    cam.set_initial(vec![motion_initially(false)]);
    cam.push(motion(false));
    until(&cam, &store, "motion to end", || {
        of_kind(&store, Kind::Motion)[0].end_ns.is_some()
    })
    .await;
    let motion = of_kind(&store, Kind::Motion);
    assert_eq!(
        motion.len(),
        1,
        "one event across the new subscriptions: {motion:?}"
    );
    assert_eq!(
        motion[0].end_reason, None,
        "ended by the camera: {motion:?}"
    );
    assert_eq!(
        events_mode(&status).as_deref(),
        Some("events by subscription, re-created every 2 s (the camera refuses Renew)")
    );
    stop_task(stop, running).await;
    let c = cam.counts();
    assert_eq!(c.renew_refused, 2, "stops asking for Renew: {c:?}");
    assert_eq!(
        c.expired_pulls, 0,
        "never pulled an expired subscription: {c:?}"
    );
    assert_eq!(
        c.live_subscriptions, 0,
        "every old subscription freed: {c:?}"
    );
    assert_eq!(cam.bad_requests(), Vec::<String>::new());
}

/// A camera that refuses PullPoint subscriptions: its property topics are
/// polled with `GetCurrentMessage`, and motion still gets a start and an end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_refusing_pullpoint_is_polled_for_motion_with_start_and_end() {
    let cam = EventCamera::start_without_pullpoint();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let timing = Timing {
        poll_every: Duration::from_millis(200),
        ..patient(Duration::from_secs(300))
    };
    let (stop, running, status) = spawn_task_with_status(cam.port, &store, timing);
    const ALARM: &str = "tns1:VideoSource/MotionAlarm";
    cam.set_state(ALARM, false);
    until(&cam, &store, "polls", || cam.counts().current_polls >= 4).await;
    assert_eq!(
        events_mode(&status).as_deref(),
        Some("events by polling every 0.2 s")
    );
    assert!(all_events(&store).is_empty(), "no motion, no event");
    cam.set_state(ALARM, true);
    until(&cam, &store, "motion to start", || {
        !of_kind(&store, Kind::Motion).is_empty()
    })
    .await;
    let polls = cam.counts().current_polls;
    until(&cam, &store, "more polls", || {
        cam.counts().current_polls >= polls + 4
    })
    .await;
    cam.set_state(ALARM, false);
    until(&cam, &store, "motion to end", || {
        of_kind(&store, Kind::Motion)[0].end_ns.is_some()
    })
    .await;
    let motion = of_kind(&store, Kind::Motion);
    assert_eq!(motion.len(), 1, "{motion:?}");
    let ev = &motion[0];
    assert_eq!(ev.topic, ALARM);
    assert!(ev
        .source
        .contains(&("Source".into(), "VideoSource_1".into())));
    assert!(ev.start_ns < ev.end_ns.unwrap());
    assert_eq!(ev.end_reason, None);
    stop_task(stop, running).await;
    let c = cam.counts();
    assert!(c.create_refused >= 1 && c.created == 0, "{c:?}");
    assert_eq!(cam.bad_requests(), Vec::<String>::new());
}

async fn stop_task(stop: CancellationToken, running: tokio::task::JoinHandle<()>) {
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("the task stops")
        .unwrap();
}

/// Events open when the task stops are closed or continued by the next
/// run from the camera's initial states; an event nobody could observe for
/// `lost_after` is closed where it was last seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_events_are_reconciled_with_the_cameras_initial_states() {
    let cam = EventCamera::start();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    // Long enough that a loaded machine never closes anything by itself;
    // the last part of the test uses a short one.
    let never_lost = Duration::from_secs(600);

    cam.set_initial(vec![motion_initially(false), tamper(false, "Initialized")]);
    let (stop, running) = spawn_task(cam.port, &store, patient(never_lost));
    until(&cam, &store, "a subscription", || cam.counts().created == 1).await;
    cam.push(motion(true));
    cam.push(tamper(true, "Changed"));
    cam.push(input(true));
    until(&cam, &store, "three open events", || {
        all_events(&store)
            .iter()
            .filter(|e| e.end_ns.is_none())
            .count()
            == 3
    })
    .await;
    // Seen on while the subscription lives.
    let started = of_kind(&store, Kind::Tamper)[0].start_ns;
    until(&cam, &store, "the open events to be seen on later", || {
        of_kind(&store, Kind::Tamper)[0]
            .seen_ns
            .is_some_and(|s| s > started)
    })
    .await;
    stop_task(stop, running).await;
    let stopped = cleannvr::clock::Clock::now_ns(&SystemClock);
    assert!(
        all_events(&store).iter().all(|e| e.end_ns.is_none()),
        "a stop does not end what the camera still reports: {:?}",
        all_events(&store)
    );

    // Next run: motion is still on, tamper went off meanwhile, and the
    // camera no longer reports the input at all.
    cam.set_initial(vec![motion_initially(true), tamper(false, "Initialized")]);
    let (stop, running) = spawn_task(cam.port, &store, patient(never_lost));
    until(&cam, &store, "tamper and input to be reconciled", || {
        all_events(&store)
            .iter()
            .filter(|e| e.end_ns.is_some())
            .count()
            == 2
    })
    .await;
    let t = &of_kind(&store, Kind::Tamper)[0];
    assert_eq!(
        t.end_reason,
        Some(EndReason::InactiveOnResubscribe),
        "{t:?}"
    );
    let end = t.end_ns.unwrap();
    assert!(
        end > t.start_ns && end <= stopped,
        "ends when last seen: {t:?}"
    );
    let i = &of_kind(&store, Kind::Input)[0];
    assert_eq!(
        i.end_reason,
        Some(EndReason::UnreportedOnResubscribe),
        "{i:?}"
    );
    assert!(i.end_ns.unwrap() <= stopped, "{i:?}");
    let m = of_kind(&store, Kind::Motion);
    assert_eq!(m.len(), 1, "motion goes on as the same event: {m:?}");
    assert_eq!(m[0].end_ns, None);
    // ... and ends when the camera says so.
    cam.push(motion(false));
    until(&cam, &store, "motion to end", || {
        of_kind(&store, Kind::Motion)[0].end_ns.is_some()
    })
    .await;
    let m = &of_kind(&store, Kind::Motion)[0];
    assert_eq!(m.end_reason, None, "the camera ended it: {m:?}");
    assert!(m.end_ns.unwrap() > stopped);
    stop_task(stop, running).await;

    // The camera drops off the network in the middle of motion: after
    // `lost_after` the event is closed where it was last seen, and motion
    // still on when the camera is back is a new event.
    let lost_after = Duration::from_secs(3);
    cam.set_initial(vec![motion_initially(false)]);
    let (stop, running) = spawn_task(cam.port, &store, patient(lost_after));
    let created = cam.counts().created;
    until(&cam, &store, "a third subscription", || {
        cam.counts().created > created
    })
    .await;
    cam.push(motion(true));
    until(&cam, &store, "a second motion", || {
        of_kind(&store, Kind::Motion).len() == 2
    })
    .await;
    cam.set_down(true);
    let down = cleannvr::clock::Clock::now_ns(&SystemClock);
    until(&cam, &store, "the unobserved motion to close", || {
        of_kind(&store, Kind::Motion)[1].end_ns.is_some()
    })
    .await;
    let closed_by = cleannvr::clock::Clock::now_ns(&SystemClock);
    let m = &of_kind(&store, Kind::Motion)[1];
    assert_eq!(m.end_reason, Some(EndReason::SubscriptionLost), "{m:?}");
    // Where last seen (about `down`), not when it was closed.
    let end = m.end_ns.unwrap();
    assert!(
        end <= closed_by - lost_after.as_nanos() as i64,
        "{m:?} down at {down}"
    );
    cam.set_initial(vec![motion_initially(true)]);
    cam.set_down(false);
    until(
        &cam,
        &store,
        "motion on again after the camera is back",
        || of_kind(&store, Kind::Motion).len() == 3,
    )
    .await;
    assert_eq!(of_kind(&store, Kind::Motion)[2].end_ns, None);
    stop_task(stop, running).await;

    // cleannvr stopped longer than `lost_after` with motion on: still on
    // at the next start, the old event ends where last seen, a new begins.
    let stopped = cleannvr::clock::Clock::now_ns(&SystemClock);
    tokio::time::sleep(lost_after + Duration::from_secs(1)).await;
    cam.set_initial(vec![motion_initially(true)]);
    let (stop, running) = spawn_task(cam.port, &store, patient(lost_after));
    until(&cam, &store, "a fourth motion after the long stop", || {
        of_kind(&store, Kind::Motion).len() == 4
    })
    .await;
    let m = of_kind(&store, Kind::Motion);
    assert_eq!(m[2].end_reason, Some(EndReason::Unobserved), "{m:?}");
    assert!(m[2].end_ns.unwrap() <= stopped, "{m:?}");
    assert_eq!(m[3].end_ns, None, "{m:?}");
    assert!(m[3].start_ns > stopped, "{m:?}");
    stop_task(stop, running).await;
    assert_eq!(cam.bad_requests(), Vec::<String>::new());
}

/// The events of `gate` through the API, once `done` accepts them.
fn api_events_until(
    nvr: &common::Nvr,
    cookie: &str,
    cam: &EventCamera,
    what: &str,
    done: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (status, body) = common::get(&nvr.http, "/api/events?camera=gate", cookie);
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let evs = v["events"].as_array().unwrap().clone();
        if done(&evs) {
            return evs;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {v}\ncamera {:?} {:?}\n{}",
            cam.counts(),
            cam.bad_requests(),
            nvr.log.text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// cleannvr killed (SIGKILL) in the middle of motion and tamper: after the
/// restart, the camera's initial states decide: motion still on goes on as
/// the same event, tamper now off is closed with its reason.
#[test]
fn events_open_at_a_crash_are_reconciled_after_restart() {
    let cam = EventCamera::start();
    cam.set_initial(vec![motion_initially(false), tamper(false, "Initialized")]);
    let dir = tempfile::tempdir().unwrap();
    let toml = common::config(
        dir.path(),
        60,
        &format!(
            "[[camera]]\nid = \"gate\"\nonvif = {{ host = \"127.0.0.1\", port = {}, username = \"{}\", password = '{}' }}\n",
            cam.port,
            event_camera::USER,
            event_camera::PASS
        ),
    );
    let (mut nvr, admin) = common::run_with_admin(dir.path(), &toml);
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
    cam.push(tamper(true, "Changed"));
    api_events_until(&nvr, &admin, &cam, "motion and tamper to start", |evs| {
        evs.len() == 2 && evs.iter().all(|e| e["active"] == true)
    });
    // A state change is flushed right after it is stored; give a loaded
    // machine's fsync time before pulling the plug.
    std::thread::sleep(Duration::from_secs(3));
    nvr.kill9();
    let killed = time::OffsetDateTime::now_utc();

    cam.set_initial(vec![motion_initially(true), tamper(false, "Initialized")]);
    let config = dir.path().join("cleannvr.toml");
    let nvr = common::Nvr::start(config, &["run"]);
    let admin = common::login(&nvr.http, "root", "admin pass 12345");
    let evs = api_events_until(&nvr, &admin, &cam, "tamper to be closed", |evs| {
        evs.iter()
            .any(|e| e["kind"] == "tamper" && !e["end"].is_null())
    });
    let t = evs.iter().find(|e| e["kind"] == "tamper").unwrap();
    assert_eq!(t["end_reason"], "inactive_on_resubscribe", "{evs:?}");
    let end = time::OffsetDateTime::parse(
        t["end"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!(
        end <= killed,
        "closed where last seen, before the kill: {t}"
    );
    let motions: Vec<_> = evs.iter().filter(|e| e["kind"] == "motion").collect();
    assert_eq!(motions.len(), 1, "motion goes on as one event: {evs:?}");
    assert_eq!(motions[0]["active"], true, "{evs:?}");

    cam.push(motion(false));
    let evs = api_events_until(&nvr, &admin, &cam, "motion to end", |evs| {
        evs.iter()
            .any(|e| e["kind"] == "motion" && !e["end"].is_null())
    });
    let m: Vec<_> = evs.iter().filter(|e| e["kind"] == "motion").collect();
    assert_eq!(m.len(), 1, "{evs:?}");
    assert!(m[0]["end_reason"].is_null(), "the camera ended it: {evs:?}");
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
    let fmt = |t: time::OffsetDateTime| t.format(&Rfc3339).unwrap();
    // A motion that started before the asked range and is still on is in it.
    cam.push(motion(true));
    let on = api_events_until(&nvr, &admin, &cam, "motion to start", |evs| {
        evs.iter().any(|e| e["active"] == true)
    });
    let t0 = time::OffsetDateTime::parse(on[0]["start"].as_str().unwrap(), &Rfc3339).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let inside = format!(
        "/api/cameras/gate/events?start={}&end={}",
        fmt(t0 + Duration::from_secs(1)),
        fmt(t0 + Duration::from_secs(2))
    );
    let (status, body) = common::get(&nvr.http, &inside, &admin);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["events"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["events"][0]["active"], true, "{v}");
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
    assert_eq!(events[0]["start"], on[0]["start"], "one event, now ended");
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
    // Over (lasting 3 s), it is still in a range inside it, not in one after it.
    let (_, body) = common::get(&nvr.http, &inside, &admin);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["events"].as_array().unwrap().len(), 1, "{v}");
    assert!(!v["events"][0]["end"].is_null(), "{v}");
    let t1 = time::OffsetDateTime::parse(events[0]["end"].as_str().unwrap(), &Rfc3339).unwrap();
    let after = format!(
        "/api/cameras/gate/events?start={}&end={}",
        fmt(t1 + Duration::from_secs(1)),
        fmt(t1 + Duration::from_secs(60))
    );
    let (_, body) = common::get(&nvr.http, &after, &admin);
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

/// The server's time zone in the Chromium test: half an hour off the hour and
/// behind UTC, so a time shown in UTC or the browser's zone cannot pass.
const UI_ZONE: &str = "America/St_Johns";

/// `HH:MM:SS` in [`UI_ZONE`] of an API time.
fn local_clock(v: &serde_json::Value) -> serde_json::Value {
    let t: jiff::Timestamp = v.as_str().unwrap().parse().unwrap();
    let z = t.in_tz(UI_ZONE).unwrap();
    serde_json::Value::from(z.strftime("%H:%M:%S").to_string())
}

/// A recorded camera (GStreamer's RTSP server) whose ONVIF events come from
/// the scripted event camera: its motion shows on the playback timeline;
/// then more kinds of event, for the events list beside playback and the
/// search (tests/ui/event_list.mjs), one of them reported while the page is open.
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
    )
    .replace("[server]\n", &format!("[server]\ntimezone = \"{UI_ZONE}\"\n"));
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
    // Motion, tampering, motion: for the marks, "next" and "previous" by
    // kind, and the count in the date picker.
    // (Each notification made when it is sent: it carries the time it was made.)
    for is_motion in [true, false, true] {
        let state = |on| {
            if is_motion {
                motion(on)
            } else {
                tamper(on, "Changed")
            }
        };
        cam.push(state(true));
        std::thread::sleep(Duration::from_secs(2));
        cam.push(state(false));
        std::thread::sleep(Duration::from_secs(1));
    }
    let first_pushed = Instant::now();
    let events = loop {
        let (_, body) = common::get(&nvr.http, "/api/events?camera=gate", &admin);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let evs = v["events"].as_array().cloned().unwrap_or_default();
        if evs.len() == 3 && evs.iter().all(|e| !e["end"].is_null()) {
            break evs;
        }
        assert!(
            Instant::now() < deadline,
            "no three finished events within 120 s: {v}\n{}",
            nvr.log.text()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["motion", "tamper", "motion"], "{events:?}");
    // The API behind the buttons: from the tampering, the motion either side.
    let enc = |v: &serde_json::Value| v.as_str().unwrap().replace('+', "%2B");
    let (status, body) = common::get(
        &nvr.http,
        &format!(
            "/api/cameras/gate/events/adjacent?kind=motion&at={}",
            enc(&events[1]["start"])
        ),
        &admin,
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (&v["previous"]["start"], &v["next"]["start"]),
        (&events[0]["start"], &events[2]["start"]),
        "{v}"
    );
    let (status, body) = common::get(&nvr.http, "/api/cameras/gate/events/days", &admin);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let counts: Vec<u64> = v["days"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .collect();
    assert_eq!(counts.iter().sum::<u64>(), 3, "{v}");
    let screens = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-events");
    std::fs::create_dir_all(&screens).unwrap();
    let cfg = serde_json::json!({
        "user": ["root", "admin pass 12345"],
        "camera": "gate",
        "at": events[0]["start"],
        "starts": events.iter().map(|e| e["start"].clone()).collect::<Vec<_>>(),
        "screens": screens,
    });
    common::run_ui_script("events.mjs", &nvr.http, &cfg.to_string(), &[], &nvr.log);

    // The other kinds, at least 20 s after the first three (the list zoomed
    // to 30 s around the tampering must leave them out): a line crossed (no
    // duration), a digital input, video lost, and a topic of no kind of ours.
    std::thread::sleep(Duration::from_secs(20).saturating_sub(first_pushed.elapsed()));
    let other = |on: bool| {
        notification(
            "tns1:RuleEngine/MyRuleDetector/PeopleDetect",
            "Changed",
            &[("Rule", "People")],
            &[("State", if on { "true" } else { "false" })],
        )
    };
    let video_loss = |on: bool| {
        notification(
            "tns1:VideoSource/SignalLoss",
            "Changed",
            &[("Source", "1")],
            &[("State", if on { "true" } else { "false" })],
        )
    };
    cam.push(notification(
        "tns1:RuleEngine/LineDetector/Crossed",
        "Changed",
        &[("VideoSourceConfigurationToken", "1")],
        &[("ObjectId", "7")],
    ));
    std::thread::sleep(Duration::from_secs(1));
    for state in [&input as &dyn Fn(bool) -> String, &video_loss, &other] {
        cam.push(state(true));
        std::thread::sleep(Duration::from_secs(2));
        cam.push(state(false));
        std::thread::sleep(Duration::from_secs(1));
    }
    let events = api_events_until(&nvr, &admin, &cam, "seven finished events", |evs| {
        evs.len() == 7
            && evs
                .iter()
                .all(|e| !e["end"].is_null() || e["active"] == false)
    });
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "motion",
            "tamper",
            "motion",
            "intrusion",
            "input",
            "video_loss",
            "other"
        ],
        "{events:?}"
    );
    let listed: Vec<serde_json::Value> = events
        .iter()
        .map(|e| {
            serde_json::json!({
                "kind": e["kind"],
                "start": e["start"],
                "end": e["end"],
                "local_start": local_clock(&e["start"]),
                "local_end": if e["end"].is_null() { serde_json::Value::Null } else { local_clock(&e["end"]) },
                "topic": e["topic"],
            })
        })
        .collect();
    let signal = screens.join("new-event-please");
    let _ = std::fs::remove_file(&signal);
    let cfg = serde_json::json!({
        "user": ["root", "admin pass 12345"],
        "camera": "gate",
        "events": listed,
        "signal": signal,
        "screens": screens,
    });
    // While the page is open, when it asks: the camera reports an input.
    let done = std::sync::atomic::AtomicBool::new(false);
    let run = std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if signal.exists() {
                    cam.push(input(true));
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            common::run_ui_script("event_list.mjs", &nvr.http, &cfg.to_string(), &[], &nvr.log)
        }));
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        run
    });
    if let Err(panic) = run {
        std::panic::resume_unwind(panic);
    }
    println!("screenshots in {}", screens.display());
}

/// The time a line of the metadata peer's output names, e.g.
/// `meta motion true 2026-11-30T09:47:20.156Z`.
fn peer_times(gst: &common::GstServer, state: &str) -> Vec<time::OffsetDateTime> {
    let prefix = format!("meta motion {state} ");
    gst.out
        .text()
        .lines()
        .filter_map(|l| l.split_once(&prefix).map(|(_, t)| t.trim().to_owned()))
        .map(|t| time::OffsetDateTime::parse(&t, &Rfc3339).unwrap())
        .collect()
}

fn api_time(v: &serde_json::Value) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(v.as_str().unwrap(), &Rfc3339).unwrap()
}

/// Cameras whose RTSP stream carries an ONVIF metadata track (GStreamer's
/// RTSP server sending captured camera documents, see `/h264meta` in
/// tests/peers/gst_rtsp_server.py) while their PullPoint subscription (the
/// scripted event camera) stays quiet: `gate` records video, and the motion
/// its track announces is stored with the camera's times, once per event;
/// `yard`'s track sends only hostile documents (over the size cap, entity
/// tricks) and torn ones (an RTP depacketization error on the metadata
/// stream): nothing is stored, each is refused in the log, and recording
/// goes on without a video frame lost to them; `door` announces a metadata
/// track whose SETUP GStreamer refuses: it records video anyway, says so
/// once, and its PullPoint events are still stored.
#[test]
fn metadata_track_motion_is_recorded_and_hostile_documents_are_not() {
    let cam = EventCamera::start();
    let door_cam = EventCamera::start();
    let gst = common::GstServer::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let onvif = |port: u16| {
        format!(
            "onvif = {{ host = \"127.0.0.1\", port = {port}, username = \"{}\", password = '{}' }}",
            event_camera::USER,
            event_camera::PASS
        )
    };
    let toml = common::config(
        dir.path(),
        4,
        &format!(
            "[[camera]]\nid = \"gate\"\nurl = \"{}\"\n{}\n[[camera]]\nid = \"yard\"\nurl = \"{}\"\n{}\n\
             [[camera]]\nid = \"door\"\nurl = \"{}\"\n{}\n",
            gst.url("h265meta"),
            onvif(cam.port),
            gst.url("h264metahostile"),
            onvif(cam.port),
            gst.url("h264metanosetup"),
            onvif(door_cam.port),
        ),
    );
    let (nvr, admin) = common::run_with_admin(dir.path(), &toml);
    common::wait_segments(&nvr, Some(&admin), "gate", 1);

    // A whole motion event from the track, at the times the camera wrote.
    let deadline = Instant::now() + Duration::from_secs(120);
    let (motions, starts, ends) = loop {
        let (status, body) = common::get(&nvr.http, "/api/cameras/gate/events?kind=motion", &admin);
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let evs = v["events"].as_array().unwrap().clone();
        // Read the peer's lines after the events: every stored time was sent.
        let (starts, ends) = (peer_times(&gst, "true"), peer_times(&gst, "false"));
        if evs.iter().any(|e| !e["end"].is_null()) {
            break (evs, starts, ends);
        }
        assert!(
            Instant::now() < deadline,
            "no finished motion event from the metadata track within 120 s: {v}\npeer:\n{}\nserver:\n{}",
            gst.out.text(),
            nvr.log.text()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let done = motions.iter().find(|e| !e["end"].is_null()).unwrap();
    assert_eq!(done["topic"], "tns1:VideoSource/tns1:MotionAlarm", "{done}");
    assert_eq!(done["data"]["State"], "true", "{done}");
    let (start, end) = (api_time(&done["start"]), api_time(&done["end"]));
    let i = starts
        .iter()
        .position(|t| *t == start)
        .unwrap_or_else(|| panic!("start {start} is no time the camera sent: {starts:?}"));
    assert_eq!(ends.get(i), Some(&end), "ends {ends:?} starts {starts:?}");
    assert!(
        motions.len() <= starts.len(),
        "one event per start: {motions:?} {starts:?}"
    );
    assert!(
        nvr.log
            .find("the stream has an ONVIF metadata track; reading its events")
            .is_some(),
        "{}",
        nvr.log.text()
    );

    // The hostile track: every kind sent, then a segment later nothing
    // stored, each refused in the log, and still recording.
    let deadline = Instant::now() + Duration::from_secs(120);
    for needle in [
        "meta hostile huge",
        "meta hostile laughs",
        "meta hostile external-entity",
    ] {
        while gst.out.find(needle).is_none() {
            assert!(
                Instant::now() < deadline,
                "the peer sent no {needle:?} within 120 s\npeer:\n{}\nserver:\n{}",
                gst.out.text(),
                nvr.log.text()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let segments = common::files(&dir.path().join("data").join("yard"), ".mp4").len();
    common::wait_segments(&nvr, Some(&admin), "yard", segments + 1);
    let (status, body) = common::get(&nvr.http, "/api/cameras/yard/events", &admin);
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        v["events"],
        serde_json::json!([]),
        "{v}\n{}",
        nvr.log.text()
    );
    for refusal in [
        "dropped an ONVIF metadata document over the size limit",
        "document type declarations (DTDs) are refused",
        "dropped a damaged ONVIF metadata packet and its document; video is not affected",
    ] {
        assert!(
            nvr.log.find(refusal).is_some(),
            "{refusal:?}\n{}",
            nvr.log.text()
        );
    }

    // Torn metadata documents cost no video: across three more of them
    // (and a segment), yard's video counters stay put. (Counted from here,
    // not from zero: a session's first packets may join mid-frame.)
    let video_damage = || {
        let s = common::camera_status(&nvr.http, &admin, "yard");
        (
            s["depacketize_errors"].clone(),
            s["damaged_frames"].clone(),
            s["reconnects"].clone(),
        )
    };
    let before = video_damage();
    let torn = gst.out.count("meta hostile torn");
    let deadline = Instant::now() + Duration::from_secs(120);
    while gst.out.count("meta hostile torn") < torn + 3 {
        assert!(
            Instant::now() < deadline,
            "the peer tore no 3 documents within 120 s\npeer:\n{}",
            gst.out.text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let segments = common::files(&dir.path().join("data").join("yard"), ".mp4").len();
    common::wait_segments(&nvr, Some(&admin), "yard", segments + 1);
    assert_eq!(video_damage(), before, "{}", nvr.log.text());

    // door: video without the track, said once, and PullPoint events kept.
    common::wait_segments(&nvr, Some(&admin), "door", 1);
    assert!(
        gst.out.find("meta setup refused").is_some(),
        "{}",
        gst.out.text()
    );
    let said = "the camera offers an ONVIF metadata track but refused to set it up; recording video without it";
    assert_eq!(nvr.log.count(said), 1, "{}", nvr.log.text());
    door_cam.push(motion(true));
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (status, body) = common::get(&nvr.http, "/api/cameras/door/events?kind=motion", &admin);
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        if !v["events"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "door's PullPoint motion not stored within 120 s: {:?}\n{}",
            door_cam.counts(),
            nvr.log.text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(cam.bad_requests(), Vec::<String>::new());
    assert_eq!(door_cam.bad_requests(), Vec::<String>::new());
}

/// A figure (kB) from `/proc/PID/status`, e.g. `VmRSS`.
fn proc_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in {status}"))
}

/// A camera whose metadata track streams one document without end (60 MB
/// over 15 s, one RTP timestamp, never a marker bit: GStreamer's RTSP server
/// serving `/h264metaendless`, whose metadata packets are scripted in
/// tests/peers/gst_rtsp_server.py, as no camera we can run misbehaves on
/// demand). The document is
/// dropped when it passes the cap, said once in the log naming the camera,
/// and never reaches the event reader; the NVR's memory does not grow with
/// it; the same session's video records on, undamaged; and the motion
/// documents the camera sends after it are stored. `pool` sends the same
/// track beside H.264 and AAC, a stream retina demultiplexes: the track is
/// left alone there (said once), and video with sound records.
#[test]
fn an_endless_metadata_document_is_capped_and_video_and_events_go_on() {
    let cam = EventCamera::start();
    let gst = common::GstServer::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let toml = common::config(
        dir.path(),
        4,
        &["fence", "pool"]
            .iter()
            .zip(["h264metaendless", "h264aacmetaendless"])
            .map(|(id, mount)| {
                format!(
                    "[[camera]]\nid = \"{id}\"\nurl = \"{}\"\n\
                     onvif = {{ host = \"127.0.0.1\", port = {}, username = \"{}\", password = '{}' }}\n",
                    gst.url(mount),
                    cam.port,
                    event_camera::USER,
                    event_camera::PASS
                )
            })
            .collect::<String>(),
    );
    let (nvr, admin) = common::run_with_admin(dir.path(), &toml);
    common::wait_camera(
        &nvr.http,
        &admin,
        "fence",
        Duration::from_secs(60),
        "fence's first video frame",
        |s| s["frames"].as_u64().unwrap_or(0) > 0,
    );
    // The baseline as the endless document starts (6 s after the session
    // did, so start-up allocations are behind us).
    let deadline = Instant::now() + Duration::from_secs(60);
    while gst
        .out
        .find("meta endless start /h264metaendless")
        .is_none()
    {
        assert!(
            Instant::now() < deadline,
            "the peer started no endless document within 60 s\npeer:\n{}",
            gst.out.text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let rss_kb = proc_kb(nvr.pid(), "VmRSS");
    let first = common::camera_status(&nvr.http, &admin, "fence");
    let frames = first["frames"].as_u64().unwrap();
    let damage = |s: &serde_json::Value| (s["damaged_frames"].clone(), s["reconnects"].clone());
    let segments_dir = dir.path().join("data").join("fence");
    let segments = common::files(&segments_dir, ".mp4").len();
    // Memory sampled while it streams (uncapped, the document's buffer is
    // held until its end: a new timestamp, 1 s after the last packet).
    let mut peak_kb = rss_kb;
    let deadline = Instant::now() + Duration::from_secs(90);
    while gst.out.find("meta endless sent /h264metaendless").is_none() {
        assert!(
            Instant::now() < deadline,
            "the peer ended no endless document within 90 s\npeer:\n{}",
            gst.out.text()
        );
        peak_kb = peak_kb.max(proc_kb(nvr.pid(), "VmRSS"));
        std::thread::sleep(Duration::from_millis(50));
    }
    let sent: u64 = gst
        .out
        .find("meta endless sent /h264metaendless")
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    println!(
        "endless document of {sent} bytes: NVR RSS {rss_kb} kB as it started, peak {peak_kb} kB after"
    );
    assert!(sent > 50_000_000, "{sent}");
    // (a) Capped: dropped once, as it passed the cap, in a line naming the
    // camera; the peak memory is nowhere near the document's size (uncapped,
    // it grows by all of it).
    assert!(
        peak_kb.saturating_sub(rss_kb) < 24 * 1024,
        "memory grew with the endless document: {rss_kb} kB -> peak {peak_kb} kB"
    );
    // `pool` reads its track too (our own reassembly since sound took the
    // raw path) and says the same of its own document: find fence's line.
    let said = "dropped an ONVIF metadata document over the size limit as it arrived";
    let log = nvr.log.text();
    let line = log
        .lines()
        .find(|l| l.contains(said) && l.contains("camera{id=fence}"))
        .unwrap_or_else(|| panic!("{said:?} not logged for fence\n{log}"));
    let bytes: usize = line
        .split("bytes=")
        .nth(1)
        .and_then(|b| b.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|b| b.parse().ok())
        .unwrap_or_else(|| panic!("no bytes= in {line}"));
    let cap = cleannvr::ingest::open::MAX_METADATA_DOCUMENT;
    assert!(bytes > cap && bytes <= cap + 16_000, "{line}");
    assert!(
        nvr.log.find("metadata document refused").is_none(),
        "the event reader got (part of) the endless document\n{}",
        nvr.log.text()
    );
    // (b) The same session's video recorded on through it, undamaged.
    let now = common::camera_status(&nvr.http, &admin, "fence");
    assert_eq!(damage(&now), damage(&first), "{now}\n{}", nvr.log.text());
    assert!(now["frames"].as_u64().unwrap() > frames + 100, "{now}");
    common::wait_segments(&nvr, Some(&admin), "fence", segments + 2);
    // (c) The motion the camera sends after it is read and stored.
    let deadline = Instant::now() + Duration::from_secs(60);
    let done = loop {
        let (status, body) =
            common::get(&nvr.http, "/api/cameras/fence/events?kind=motion", &admin);
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        if let Some(e) = v["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| !e["end"].is_null())
        {
            break e.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no finished motion event after the endless document within 60 s: {v}\npeer:\n{}\nserver:\n{}",
            gst.out.text(),
            nvr.log.text()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let start = api_time(&done["start"]);
    assert!(
        peer_times(&gst, "true").contains(&start),
        "start {start} is no time the camera sent: {}",
        gst.out.text()
    );
    // pool: video with sound: its metadata track is read too (our own
    // reassembly, sound and all), and its endless document capped the same way.
    common::wait_segments(&nvr, Some(&admin), "pool", 2);
    let deadline = Instant::now() + Duration::from_secs(90);
    let dropped = "dropped an ONVIF metadata document over the size limit";
    while gst
        .out
        .find("meta endless sent /h264aacmetaendless")
        .is_none()
        || nvr.log.count(dropped) < 2
    {
        assert!(
            Instant::now() < deadline,
            "pool's endless document was not dropped within 90 s\npeer:\n{}\nserver:\n{}",
            gst.out.text(),
            nvr.log.text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = nvr.log.text();
    let pool_line = text
        .lines()
        .find(|l| l.contains(dropped) && l.contains("pool"))
        .unwrap_or_else(|| panic!("pool's document was not dropped\n{text}"));
    assert!(pool_line.contains("bytes="), "{pool_line}");
    assert_eq!(nvr.log.count(dropped), 2, "{text}");
    assert!(
        nvr.log
            .find("metadata track that cleannvr does not read")
            .is_none(),
        "{text}"
    );
    let pool = common::camera_status(&nvr.http, &admin, "pool");
    assert_eq!(pool["audio"], "aac", "{pool}");
    assert_eq!(pool["damaged_frames"], 0, "{pool}");
    assert_eq!(cam.bad_requests(), Vec::<String>::new());
}
