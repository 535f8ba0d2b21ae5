//! A scripted ONVIF camera with an events service (PullPoint), on loopback.
//!
//! Our own fake, because no peer in the rig can do this: ipycam (the rig's
//! ONVIF camera) has device, media and PTZ services but no events service
//! (its `onvif.py` answers no `CreatePullPointSubscription`), and no other
//! installable camera simulator speaks WS-BaseNotification. It follows the
//! ONVIF events WSDL (PullPointSubscription binding, WS-Addressing actions)
//! and checks each request it receives against it, recording violations in
//! [`EventCamera::bad_requests`]. Notifications are queued by the test;
//! [`EventCamera::reboot`] forgets every subscription, and
//! [`EventCamera::send_raw_reply`] answers the next pull with any bytes.
//! Like a real camera, a new subscription first gets the current state of
//! each property ([`EventCamera::set_initial`], `PropertyOperation="Initialized"`).
//!
//! [`EventCamera::start_with_reference_parameters`] behaves like Axis (and
//! some Hikvision) firmware: every subscription shares one address and is
//! named only by a `SubscriptionId` reference parameter, which each
//! `PullMessages`, `Renew` and `Unsubscribe` must echo as a SOAP header; a
//! call without it is faulted. Faked too, for the same reason: ipycam has no
//! events service whose replies could be proxied with parameters added.
//!
//! Subscriptions expire at the termination time asked for (`PT<n>S`),
//! unless renewed. Two kinds of firmware found in the field are scripted
//! too: [`EventCamera::start_without_renew`] faults every `Renew` (its
//! subscriptions run out unless re-created), and
//! [`EventCamera::start_without_pullpoint`] faults `CreatePullPointSubscription`
//! but answers `GetEventProperties` and WS-BaseNotification's
//! `GetCurrentMessage` with the state set by [`EventCamera::set_state`].

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use sha1::Digest as _;

pub const USER: &str = "events";
pub const PASS: &str = "ev<ents&pass";

const NS_EVENTS: &str = "http://www.onvif.org/ver10/events/wsdl";
const NS_WSNT: &str = "http://docs.oasis-open.org/wsn/b-2";
/// Axis's event namespace, where its `SubscriptionId` parameter lives.
pub const NS_AXIS_EVENT: &str = "http://www.axis.com/2009/event";

#[derive(Default)]
struct Inner {
    queue: VecDeque<String>,
    initial: Vec<String>,
    down: bool,
    raw: Option<String>,
    /// Live subscriptions and when each expires.
    subs: HashMap<u32, std::time::Instant>,
    /// Current message (`tt:Message`) per topic, for `GetCurrentMessage`.
    current: HashMap<String, String>,
    renew_refused: u32,
    create_refused: u32,
    current_polls: u32,
    expired_pulls: u32,
    next_sub: u32,
    created: u32,
    renewed: u32,
    unsubscribed: u32,
    pulls: u32,
    bad: Vec<String>,
}

struct Cam {
    port: u16,
    reference_parameters: bool,
    renew: bool,
    pullpoint: bool,
    inner: Mutex<Inner>,
    wake: tokio::sync::Notify,
}

/// The camera; stops with the test process.
pub struct EventCamera {
    pub port: u16,
    cam: Arc<Cam>,
}

/// Counters of what the camera was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub created: u32,
    pub renewed: u32,
    pub unsubscribed: u32,
    pub pulls: u32,
    pub live_subscriptions: usize,
    /// `Renew`s faulted (camera without Renew).
    pub renew_refused: u32,
    /// `CreatePullPointSubscription`s faulted (camera without PullPoint).
    pub create_refused: u32,
    /// `GetCurrentMessage`s answered.
    pub current_polls: u32,
    /// Pulls on a subscription that had expired.
    pub expired_pulls: u32,
}

impl EventCamera {
    /// Starts the camera on a free loopback port, on its own runtime thread
    /// (so blocking tests can use it too).
    pub fn start() -> EventCamera {
        Self::start_with(false, true, true)
    }

    /// A camera that faults every `Renew`: subscriptions end at their
    /// termination time unless the client makes new ones.
    pub fn start_without_renew() -> EventCamera {
        Self::start_with(false, false, true)
    }

    /// A camera that faults `CreatePullPointSubscription` and can only be
    /// asked for its current states.
    pub fn start_without_pullpoint() -> EventCamera {
        Self::start_with(false, true, false)
    }

    /// A camera whose subscriptions share one address and are told apart by
    /// a reference parameter that every call must echo.
    pub fn start_with_reference_parameters() -> EventCamera {
        Self::start_with(true, true, true)
    }

    fn start_with(reference_parameters: bool, renew: bool, pullpoint: bool) -> EventCamera {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let cam = Arc::new(Cam {
            port,
            reference_parameters,
            renew,
            pullpoint,
            inner: Default::default(),
            wake: Default::default(),
        });
        let state = cam.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let app = axum::Router::new()
                    .route("/onvif/device_service", axum::routing::post(device))
                    .route("/onvif/events", axum::routing::post(events))
                    .route("/onvif/subscription/{n}", axum::routing::post(subscription))
                    .with_state(state);
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app).await.unwrap();
            });
        });
        EventCamera { port, cam }
    }

    /// Queues a notification for the next pull.
    pub fn push(&self, notification: String) {
        self.cam.inner.lock().unwrap().queue.push_back(notification);
        self.cam.wake.notify_waiters();
    }

    /// Answers the next pull with these bytes instead of a reply.
    pub fn send_raw_reply(&self, body: String) {
        self.cam.inner.lock().unwrap().raw = Some(body);
        self.cam.wake.notify_waiters();
    }

    /// The notifications every new subscription starts with (the current
    /// states, as `notification(.., "Initialized", ..)`).
    pub fn set_initial(&self, notifications: Vec<String>) {
        self.cam.inner.lock().unwrap().initial = notifications;
    }

    /// While down, every request fails with 503 (a camera off the network
    /// as far as the events service goes).
    pub fn set_down(&self, down: bool) {
        let mut i = self.cam.inner.lock().unwrap();
        i.down = down;
        if down {
            i.subs.clear();
        }
        drop(i);
        self.cam.wake.notify_waiters();
    }

    /// Forgets every subscription, as a rebooted camera does.
    pub fn reboot(&self) {
        self.cam.inner.lock().unwrap().subs.clear();
        self.cam.wake.notify_waiters();
    }

    pub fn counts(&self) -> Counts {
        let i = self.cam.inner.lock().unwrap();
        Counts {
            created: i.created,
            renewed: i.renewed,
            unsubscribed: i.unsubscribed,
            pulls: i.pulls,
            live_subscriptions: i.subs.len(),
            renew_refused: i.renew_refused,
            create_refused: i.create_refused,
            current_polls: i.current_polls,
            expired_pulls: i.expired_pulls,
        }
    }

    /// Sets the state `GetCurrentMessage` reports for `topic` (a
    /// `State` item, changed now).
    pub fn set_state(&self, topic: &str, on: bool) {
        let now = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        let msg = format!(
            r#"<tt:Message UtcTime="{now}" PropertyOperation="Changed"><tt:Source><tt:SimpleItem Name="Source" Value="VideoSource_1"/></tt:Source><tt:Data><tt:SimpleItem Name="State" Value="{on}"/></tt:Data></tt:Message>"#
        );
        self.cam
            .inner
            .lock()
            .unwrap()
            .current
            .insert(topic.to_owned(), msg);
    }

    /// Requests that broke the WSDL or carried no valid UsernameToken.
    pub fn bad_requests(&self) -> Vec<String> {
        self.cam.inner.lock().unwrap().bad.clone()
    }
}

/// A `wsnt:NotificationMessage` as cameras send it.
pub fn notification(
    topic: &str,
    operation: &str,
    source: &[(&str, &str)],
    data: &[(&str, &str)],
) -> String {
    let items = |v: &[(&str, &str)]| {
        v.iter()
            .map(|(n, v)| format!(r#"<tt:SimpleItem Name="{n}" Value="{v}"/>"#))
            .collect::<String>()
    };
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    format!(
        r#"<wsnt:NotificationMessage><wsnt:Topic Dialect="http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet">{topic}</wsnt:Topic><wsnt:Message><tt:Message UtcTime="{now}" PropertyOperation="{operation}"><tt:Source>{}</tt:Source><tt:Data>{}</tt:Data></tt:Message></wsnt:Message></wsnt:NotificationMessage>"#,
        items(source),
        items(data)
    )
}

/// Hikvision's cell motion notification.
pub fn motion(on: bool) -> String {
    notification(
        "tns1:RuleEngine/CellMotionDetector/Motion",
        "Changed",
        &[
            ("VideoSourceConfigurationToken", "VideoSourceToken"),
            ("VideoAnalyticsConfigurationToken", "VideoAnalyticsToken"),
            ("Rule", "MyMotionDetectorRule"),
        ],
        &[("IsMotion", if on { "true" } else { "false" })],
    )
}

fn envelope(body: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope" xmlns:tds="http://www.onvif.org/ver10/device/wsdl" xmlns:trt="http://www.onvif.org/ver10/media/wsdl" xmlns:tt="http://www.onvif.org/ver10/schema" xmlns:tev="{NS_EVENTS}" xmlns:wsnt="{NS_WSNT}" xmlns:wsa5="http://www.w3.org/2005/08/addressing" xmlns:tns1="http://www.onvif.org/ver10/topics" xmlns:ter="http://www.onvif.org/ver10/error"><env:Body>{body}</env:Body></env:Envelope>"#
    )
}

fn fault(subcode: &str, reason: &str) -> Response {
    let body = envelope(&format!(
        "<env:Fault><env:Code><env:Value>env:Sender</env:Value><env:Subcode><env:Value>{subcode}</env:Value></env:Subcode></env:Code><env:Reason><env:Text xml:lang=\"en\">{reason}</env:Text></env:Reason></env:Fault>"
    ));
    (StatusCode::BAD_REQUEST, body).into_response()
}

fn text_of(body: &str, name: &str) -> Option<String> {
    let root = cleannvr::onvif::xml::parse(body.as_bytes()).ok()?;
    root.find(name).map(|e| e.text.trim().to_owned())
}

fn token_ok(body: &str) -> bool {
    let (Some(user), Some(pw), Some(nonce), Some(created)) = (
        text_of(body, "Username"),
        text_of(body, "Password"),
        text_of(body, "Nonce"),
        text_of(body, "Created"),
    ) else {
        return false;
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    let Ok(nonce) = b64.decode(nonce) else {
        return false;
    };
    let mut h = sha1::Sha1::new();
    h.update(nonce);
    h.update(created.as_bytes());
    h.update(PASS.as_bytes());
    user == USER && pw == b64.encode(h.finalize())
}

/// Checks a request against the WSDL: the SOAP action (header and
/// WS-Addressing), the body element and its namespace, and the token.
fn check(
    cam: &Cam,
    headers: &HeaderMap,
    body: &str,
    action: &str,
    element: &str,
    ns: &str,
) -> bool {
    let mut bad = Vec::new();
    let soap_action = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !soap_action.contains(&format!("action=\"{action}\"")) {
        bad.push(format!("{element}: Content-Type action is {soap_action:?}"));
    }
    if text_of(body, "Action").as_deref() != Some(action) {
        bad.push(format!(
            "{element}: wsa:Action is {:?}",
            text_of(body, "Action")
        ));
    }
    // The element must be in the WSDL's namespace, whatever the prefix.
    let root = cleannvr::onvif::xml::parse(body.as_bytes());
    let found = root.as_ref().ok().and_then(|r| r.find(element)).is_some();
    let prefix_ns = body.find(&format!(":{element}")).and_then(|i| {
        let start = body[..i].rfind('<')? + 1;
        let prefix = &body[start..i];
        Some(body.contains(&format!("xmlns:{prefix}=\"{ns}\"")))
    });
    if !found || prefix_ns != Some(true) {
        bad.push(format!("{element}: missing or not in {ns}"));
    }
    if !token_ok(body) {
        bad.push(format!("{element}: no valid UsernameToken"));
    }
    let ok = bad.is_empty();
    cam.inner.lock().unwrap().bad.extend(bad);
    ok
}

async fn device(State(cam): State<Arc<Cam>>, body: String) -> Response {
    if cam.inner.lock().unwrap().down {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let op = |n: &str| body.contains(&format!(":{n}>")) || body.contains(&format!(":{n}/>"));
    let reply = if op("GetSystemDateAndTime") {
        let t = time::OffsetDateTime::now_utc();
        format!(
            "<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime><tt:DateTimeType>NTP</tt:DateTimeType><tt:UTCDateTime><tt:Time><tt:Hour>{}</tt:Hour><tt:Minute>{}</tt:Minute><tt:Second>{}</tt:Second></tt:Time><tt:Date><tt:Year>{}</tt:Year><tt:Month>{}</tt:Month><tt:Day>{}</tt:Day></tt:Date></tt:UTCDateTime></tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>",
            t.hour(), t.minute(), t.second(), t.year(), u8::from(t.month()), t.day()
        )
    } else if !token_ok(&body) {
        return fault("ter:NotAuthorized", "Sender not Authorized");
    } else if op("GetServices") {
        // The camera names an address it cannot be reached at (NAT); clients keep our host.
        format!(
            "<tds:GetServicesResponse>\
             <tds:Service><tds:Namespace>http://www.onvif.org/ver10/media/wsdl</tds:Namespace><tds:XAddr>http://192.0.2.1:{p}/onvif/media</tds:XAddr></tds:Service>\
             <tds:Service><tds:Namespace>{NS_EVENTS}</tds:Namespace><tds:XAddr>http://192.0.2.1:{p}/onvif/events</tds:XAddr></tds:Service>\
             </tds:GetServicesResponse>",
            p = cam.port
        )
    } else {
        return fault("ter:ActionNotSupported", "not implemented");
    };
    envelope(&reply).into_response()
}

/// The topic set a camera without PullPoint advertises: two motion
/// properties and a line crossing (an instant, not a property).
const TOPIC_SET: &str = r#"<wstop:TopicSet xmlns:wstop="http://docs.oasis-open.org/wsn/t-1"><tns1:VideoSource wstop:topic="false"><MotionAlarm wstop:topic="true"><tt:MessageDescription IsProperty="true"><tt:Source><tt:SimpleItemDescription Name="Source" Type="tt:ReferenceToken"/></tt:Source><tt:Data><tt:SimpleItemDescription Name="State" Type="xs:boolean"/></tt:Data></tt:MessageDescription></MotionAlarm></tns1:VideoSource><tns1:RuleEngine><CellMotionDetector><Motion wstop:topic="true"><tt:MessageDescription IsProperty="true"><tt:Data><tt:SimpleItemDescription Name="IsMotion" Type="xs:boolean"/></tt:Data></tt:MessageDescription></Motion></CellMotionDetector><LineDetector><Crossed wstop:topic="true"><tt:MessageDescription><tt:Data><tt:SimpleItemDescription Name="ObjectId" Type="xs:integer"/></tt:Data></tt:MessageDescription></Crossed></LineDetector></tns1:RuleEngine></wstop:TopicSet>"#;

/// `GetEventProperties` and `GetCurrentMessage` (events service port).
fn event_properties_or_current(cam: &Cam, headers: &HeaderMap, body: &str) -> Response {
    if body.contains(":GetEventProperties") {
        let action =
            "http://www.onvif.org/ver10/events/wsdl/EventPortType/GetEventPropertiesRequest";
        if !check(cam, headers, body, action, "GetEventProperties", NS_EVENTS) {
            return fault("ter:InvalidArgVal", "bad GetEventProperties");
        }
        return envelope(&format!(
            "<tev:GetEventPropertiesResponse><tev:TopicNamespaceLocation>http://www.onvif.org/onvif/ver10/topics/topicns.xml</tev:TopicNamespaceLocation><wsnt:FixedTopicSet>true</wsnt:FixedTopicSet>{TOPIC_SET}<wsnt:TopicExpressionDialect>http://docs.oasis-open.org/wsn/t-1/TopicExpression/Concrete</wsnt:TopicExpressionDialect><tev:MessageContentFilterDialect>http://www.onvif.org/ver10/tev/messageContentFilter/ItemFilter</tev:MessageContentFilterDialect><tev:MessageContentSchemaLocation>http://www.onvif.org/onvif/ver10/schema/onvif.xsd</tev:MessageContentSchemaLocation></tev:GetEventPropertiesResponse>"
        ))
        .into_response();
    }
    let action =
        "http://docs.oasis-open.org/wsn/bw-2/NotificationProducer/GetCurrentMessageRequest";
    if !check(cam, headers, body, action, "GetCurrentMessage", NS_WSNT) {
        return fault("ter:InvalidArgVal", "bad GetCurrentMessage");
    }
    // b-2.xsd: one wsnt:Topic, a TopicExpressionType with a Dialect, whose
    // prefixes are declared.
    let root = cleannvr::onvif::xml::parse(body.as_bytes()).ok();
    let topic = root.as_ref().and_then(|r| r.find("Topic"));
    let Some(topic) = topic.filter(|t| t.ns == NS_WSNT) else {
        cam.inner
            .lock()
            .unwrap()
            .bad
            .push("GetCurrentMessage without wsnt:Topic".into());
        return fault("ter:InvalidArgVal", "no Topic");
    };
    let expr = topic.text.trim().to_owned();
    if topic.attr("Dialect") != Some("http://docs.oasis-open.org/wsn/t-1/TopicExpression/Concrete")
        || !body.contains("xmlns:tns1=\"http://www.onvif.org/ver10/topics\"")
    {
        cam.inner.lock().unwrap().bad.push(format!(
            "GetCurrentMessage topic {expr:?}: dialect or prefix undeclared"
        ));
    }
    let mut i = cam.inner.lock().unwrap();
    i.current_polls += 1;
    match i.current.get(&expr) {
        Some(msg) => envelope(&format!(
            "<wsnt:GetCurrentMessageResponse>{msg}</wsnt:GetCurrentMessageResponse>"
        ))
        .into_response(),
        None => fault(
            "wsnt:NoCurrentMessageOnTopicFault",
            "no message on this topic yet",
        ),
    }
}

/// Seconds of an `xs:duration` `PT<n>S`.
fn pt_seconds(d: Option<String>) -> Option<u64> {
    d?.strip_prefix("PT")?.strip_suffix('S')?.parse().ok()
}

async fn events(State(cam): State<Arc<Cam>>, headers: HeaderMap, body: String) -> Response {
    if cam.inner.lock().unwrap().down {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    if body.contains(":GetEventProperties") || body.contains(":GetCurrentMessage") {
        return event_properties_or_current(&cam, &headers, &body);
    }
    if !cam.pullpoint {
        cam.inner.lock().unwrap().create_refused += 1;
        return fault("ter:ActionNotSupported", "PullPoint is not supported");
    }
    let action =
        "http://www.onvif.org/ver10/events/wsdl/EventPortType/CreatePullPointSubscriptionRequest";
    if !check(
        &cam,
        &headers,
        &body,
        action,
        "CreatePullPointSubscription",
        NS_EVENTS,
    ) {
        return fault("ter:InvalidArgVal", "bad CreatePullPointSubscription");
    }
    let Some(termination) = pt_seconds(text_of(&body, "InitialTerminationTime")) else {
        cam.inner
            .lock()
            .unwrap()
            .bad
            .push("CreatePullPointSubscription without InitialTerminationTime PT<n>S".into());
        return fault("ter:InvalidArgVal", "bad InitialTerminationTime");
    };
    let n = {
        let mut i = cam.inner.lock().unwrap();
        i.next_sub += 1;
        i.created += 1;
        let n = i.next_sub;
        let expires = std::time::Instant::now() + Duration::from_secs(termination);
        i.subs.insert(n, expires);
        let initial = i.initial.clone();
        i.queue.extend(initial);
        n
    };
    let now = time::OffsetDateTime::now_utc();
    let fmt = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let reference = if cam.reference_parameters {
        format!("<wsa5:Address>http://192.0.2.1:{}/onvif/subscription/0</wsa5:Address><wsa5:ReferenceParameters><dom0:SubscriptionId xmlns:dom0=\"{NS_AXIS_EVENT}\">{n}</dom0:SubscriptionId></wsa5:ReferenceParameters>", cam.port)
    } else {
        format!(
            "<wsa5:Address>http://192.0.2.1:{}/onvif/subscription/{n}</wsa5:Address>",
            cam.port
        )
    };
    envelope(&format!(
        "<tev:CreatePullPointSubscriptionResponse><tev:SubscriptionReference>{reference}</tev:SubscriptionReference><wsnt:CurrentTime>{}</wsnt:CurrentTime><wsnt:TerminationTime>{}</wsnt:TerminationTime></tev:CreatePullPointSubscriptionResponse>",
        fmt(now),
        fmt(now + Duration::from_secs(60))
    ))
    .into_response()
}

/// The `SubscriptionId` reference parameter a call echoed: a SOAP header
/// in Axis's namespace marked `wsa:IsReferenceParameter="true"`.
fn echoed_subscription_id(body: &str) -> Result<u32, String> {
    let root = cleannvr::onvif::xml::parse(body.as_bytes()).map_err(|e| e.to_string())?;
    let id = root
        .child("Header")
        .and_then(|h| h.child("SubscriptionId"))
        .ok_or("no SubscriptionId header")?;
    if id.ns != NS_AXIS_EVENT || id.attr("IsReferenceParameter") != Some("true") {
        return Err(format!(
            "SubscriptionId header in {:?}, IsReferenceParameter {:?}",
            id.ns,
            id.attr("IsReferenceParameter")
        ));
    }
    id.text
        .trim()
        .parse()
        .map_err(|_| format!("SubscriptionId {:?}", id.text))
}

async fn subscription(
    State(cam): State<Arc<Cam>>,
    Path(n): Path<u32>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if cam.inner.lock().unwrap().down {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    // WS-Addressing `To` is the address as the camera gave it.
    let to = format!("http://192.0.2.1:{}/onvif/subscription/{n}", cam.port);
    if text_of(&body, "To").as_deref() != Some(to.as_str()) {
        cam.inner
            .lock()
            .unwrap()
            .bad
            .push(format!("wsa:To is {:?}, not {to}", text_of(&body, "To")));
    }
    let n = if cam.reference_parameters {
        match echoed_subscription_id(&body) {
            Ok(id) => id,
            Err(why) => {
                cam.inner.lock().unwrap().bad.push(why);
                return fault("ter:InvalidArgVal", "no SubscriptionId");
            }
        }
    } else {
        n
    };
    let known = {
        let mut i = cam.inner.lock().unwrap();
        // An expired subscription is gone, as on a real camera.
        let expired = i
            .subs
            .get(&n)
            .is_some_and(|&t| t <= std::time::Instant::now());
        if expired {
            i.subs.remove(&n);
            if body.contains(":PullMessages>") {
                i.expired_pulls += 1;
            }
        }
        i.subs.contains_key(&n)
    };
    if body.contains(":PullMessages>") {
        let action =
            "http://www.onvif.org/ver10/events/wsdl/PullPointSubscription/PullMessagesRequest";
        if !check(&cam, &headers, &body, action, "PullMessages", NS_EVENTS) {
            return fault("ter:InvalidArgVal", "bad PullMessages");
        }
        if text_of(&body, "Timeout").is_none_or(|t| !t.starts_with("PT"))
            || text_of(&body, "MessageLimit").is_none_or(|m| m.parse::<u32>().is_err())
        {
            cam.inner
                .lock()
                .unwrap()
                .bad
                .push("PullMessages without Timeout or MessageLimit".into());
        }
        if !known {
            return fault("ter:InvalidArgVal", "unknown subscription");
        }
        cam.inner.lock().unwrap().pulls += 1;
        // Hold the pull open (up to a second) until something is queued.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        loop {
            let wait = cam.wake.notified();
            {
                let mut i = cam.inner.lock().unwrap();
                if let Some(raw) = i.raw.take() {
                    return (StatusCode::OK, raw).into_response();
                }
                if !i.subs.contains_key(&n) {
                    return fault("ter:InvalidArgVal", "unknown subscription");
                }
                if !i.queue.is_empty() || tokio::time::Instant::now() >= deadline {
                    let msgs: String = i.queue.drain(..).collect();
                    let now = time::OffsetDateTime::now_utc()
                        .format(&time::format_description::well_known::Rfc3339)
                        .unwrap();
                    return envelope(&format!(
                        "<tev:PullMessagesResponse><tev:CurrentTime>{now}</tev:CurrentTime><tev:TerminationTime>{now}</tev:TerminationTime>{msgs}</tev:PullMessagesResponse>"
                    ))
                    .into_response();
                }
            }
            let _ = tokio::time::timeout_at(deadline, wait).await;
        }
    } else if body.contains(":Renew>") {
        let action = "http://docs.oasis-open.org/wsn/bw-2/SubscriptionManager/RenewRequest";
        if !check(&cam, &headers, &body, action, "Renew", NS_WSNT) || !known {
            return fault("ter:InvalidArgVal", "cannot renew");
        }
        if !cam.renew {
            cam.inner.lock().unwrap().renew_refused += 1;
            return fault("ter:ActionNotSupported", "Renew is not supported");
        }
        let Some(termination) = pt_seconds(text_of(&body, "TerminationTime")) else {
            cam.inner
                .lock()
                .unwrap()
                .bad
                .push("Renew without TerminationTime PT<n>S".into());
            return fault("ter:InvalidArgVal", "bad TerminationTime");
        };
        let mut i = cam.inner.lock().unwrap();
        i.renewed += 1;
        i.subs.insert(
            n,
            std::time::Instant::now() + Duration::from_secs(termination),
        );
        drop(i);
        envelope("<wsnt:RenewResponse><wsnt:TerminationTime>2099-01-01T00:00:00Z</wsnt:TerminationTime></wsnt:RenewResponse>").into_response()
    } else if body.contains(":Unsubscribe") {
        let action = "http://docs.oasis-open.org/wsn/bw-2/SubscriptionManager/UnsubscribeRequest";
        if !check(&cam, &headers, &body, action, "Unsubscribe", NS_WSNT) || !known {
            return fault("ter:InvalidArgVal", "cannot unsubscribe");
        }
        let mut i = cam.inner.lock().unwrap();
        i.subs.remove(&n);
        i.unsubscribed += 1;
        envelope("<wsnt:UnsubscribeResponse/>").into_response()
    } else {
        cam.inner
            .lock()
            .unwrap()
            .bad
            .push("unknown subscription operation".into());
        fault("ter:ActionNotSupported", "unknown operation")
    }
}
