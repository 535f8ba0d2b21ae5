//! Camera events: each ONVIF camera's own motion, tamper, intrusion and
//! input notifications, pulled from its events service and stored in the
//! index ([`crate::store::events`]) for the timeline and search.
//!
//! One [`EventTask`] per camera with `onvif = { ... }`, run by that camera's
//! supervisor: it keeps a PullPoint subscription (`CreatePullPointSubscription`,
//! a `PullMessages` long poll, `Renew` before it expires, `Unsubscribe` on
//! shutdown) and reconnects with capped backoff, for ever, when the camera
//! reboots, forgets the subscription or answers something unusable. A state
//! (`IsMotion` true, then false) becomes one event with a start and an end.
//!
//! A state can be on when nobody is listening for its end (cleannvr stopped
//! or crashed, the subscription dropped). Such open events are kept in the
//! index with the last time they were seen on, and reconciled with the
//! camera whenever a subscription starts: cameras first send the current
//! state of every property (`PropertyOperation="Initialized"`); an event the
//! camera still reports on goes on, one it reports off or does not report
//! is closed where it was last seen, with an [`EndReason`]. An event not
//! observed for [`Timing::lost_after`] is closed the same way, so nothing
//! stays open for ever on the timeline.
//!
//! Owns: the mapping of vendor topics onto a few [`Kind`]s (the raw topic
//! and items are kept too). Must never: change a camera's settings, or log
//! credentials (errors name host and operation only).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::clock::Clock;
use crate::config::OnvifCameraConfig;
use crate::onvif::events::{Notification, PropertyOperation, Subscription};
use crate::onvif::resolve::credentials;
use crate::onvif::{OnvifClient, OnvifError};
use crate::store::events::{CameraEvent, EndReason, EventKey, Kind};
use crate::store::Store;

/// Timings of a subscription; [`Timing::default`] suits real cameras.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// How long the camera holds a `PullMessages` open waiting for events
    /// (under the ONVIF client's 10 s call deadline).
    pub pull_timeout: Duration,
    /// How long a subscription lives unless renewed.
    pub termination: Duration,
    /// Renewed when this much of it is left.
    pub renew_before: Duration,
    /// First wait after a failure; doubles up to `max_backoff`.
    pub min_backoff: Duration,
    /// Longest wait between attempts.
    pub max_backoff: Duration,
    /// An open event unobserved this long (no subscription) is closed where
    /// it was last seen; still on after such a gap, it starts a new event.
    pub lost_after: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            pull_timeout: Duration::from_secs(5),
            termination: Duration::from_secs(60),
            renew_before: Duration::from_secs(30),
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            lost_after: Duration::from_secs(300),
        }
    }
}

/// Most notifications asked for per pull.
const PULL_LIMIT: u32 = 100;

/// The event subscription of one camera.
pub struct EventTask {
    /// Camera id.
    pub camera: String,
    /// Its `onvif = { ... }` table.
    pub onvif: OnvifCameraConfig,
    /// Where events go.
    pub store: Arc<Store>,
    /// Wall time for events without a usable camera time.
    pub clock: Arc<dyn Clock>,
    /// Cancelled when the camera stops.
    pub shutdown: CancellationToken,
    /// Subscription timings.
    pub timing: Timing,
}

/// Why a subscription ended.
#[derive(Debug, thiserror::Error)]
enum Ended {
    #[error(transparent)]
    Onvif(#[from] OnvifError),
    #[error("the camera has no events service")]
    NoService,
    #[error("storing events: {0:#}")]
    Store(anyhow::Error),
}

/// An event whose state is on, waiting for its end.
struct OpenEvent {
    key: EventKey,
    /// Last time the state was known on (ns, our clock).
    seen_ns: i64,
    /// Whether the current subscription has reported this state; until it
    /// has, the event is only what an earlier subscription saw.
    confirmed: bool,
}

/// Open events by topic and source.
type Open = HashMap<(String, Vec<(String, String)>), OpenEvent>;

impl EventTask {
    /// Subscribes and records until `shutdown`, reconnecting after any failure.
    pub async fn run(self) {
        let mut backoff = self.timing.min_backoff;
        let mut open = self.load_open();
        let mut failures = 0u32;
        loop {
            let no_service;
            match self.subscription(&mut open, &mut backoff).await {
                Ok(()) => return,
                Err(e) => {
                    if let Err(e) = self.close_lost(&mut open).await {
                        warn!(camera = %self.camera, error = %format!("{e:#}"), "camera events: closing unobserved events");
                    }
                    failures += 1;
                    no_service = matches!(e, Ended::NoService);
                    // A camera without events is normal: say so once, then quietly.
                    if matches!(e, Ended::NoService) && failures > 1 {
                        debug!(camera = %self.camera, "camera events: {e}");
                    } else {
                        warn!(camera = %self.camera, error = %e, retry_s = backoff.as_secs_f32(), "camera events: subscription ended; retrying");
                    }
                }
            }
            // Asked again now and then: firmware upgrades add services.
            let wait = if failures > 1 && no_service {
                self.timing.max_backoff * 10
            } else {
                backoff
            };
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            backoff = (backoff * 2).min(self.timing.max_backoff);
        }
    }

    /// The events a previous run left open (it stopped or crashed while
    /// their state was on), to be reconciled with the camera.
    fn load_open(&self) -> Open {
        let rows = match self.store.events().open_events(&self.camera) {
            Ok(rows) => rows,
            Err(e) => {
                warn!(camera = %self.camera, error = %format!("{e:#}"), "camera events: reading open events");
                return Open::new();
            }
        };
        if !rows.is_empty() {
            info!(camera = %self.camera, open = rows.len(), "camera events: events left open by the last run, to reconcile");
        }
        rows.into_iter()
            .map(|(key, ev)| {
                let seen_ns = ev.seen_ns.unwrap_or(ev.start_ns);
                (
                    (ev.topic, ev.source),
                    OpenEvent {
                        key,
                        seen_ns,
                        confirmed: false,
                    },
                )
            })
            .collect()
    }

    /// Closes the open events unobserved for [`Timing::lost_after`], where
    /// they were last seen.
    async fn close_lost(&self, open: &mut Open) -> anyhow::Result<()> {
        let now = self.clock.now_ns();
        let lost = i64::try_from(self.timing.lost_after.as_nanos()).unwrap_or(i64::MAX);
        let before = open.len();
        let mut result = Ok(());
        open.retain(|_, o| {
            if now.saturating_sub(o.seen_ns) <= lost || result.is_err() {
                return true;
            }
            result =
                self.store
                    .events()
                    .close(&o.key, o.seen_ns, Some(EndReason::SubscriptionLost));
            false
        });
        result?;
        if open.len() < before {
            info!(camera = %self.camera, closed = before - open.len(), "camera events: closed events unobserved since the subscription was lost");
            self.flush().await?;
        }
        Ok(())
    }

    /// Makes state changes durable, off the async threads (an fsync).
    async fn flush(&self) -> anyhow::Result<()> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.events().flush()).await?
    }

    /// One subscription, from connecting to its end. `Ok` only on shutdown.
    async fn subscription(&self, open: &mut Open, backoff: &mut Duration) -> Result<(), Ended> {
        let o = &self.onvif;
        let client = tokio::select! {
            _ = self.shutdown.cancelled() => return Ok(()),
            c = OnvifClient::connect(&o.host, o.port, credentials(o)) => c?,
        };
        if !client.has_events() {
            return Err(Ended::NoService);
        }
        let t = self.timing;
        let sub = tokio::select! {
            _ = self.shutdown.cancelled() => return Ok(()),
            s = client.create_pull_point(t.termination) => s?,
        };
        info!(camera = %self.camera, "camera events: subscribed");
        // What is open was seen by an earlier subscription: this one must confirm it.
        for o in open.values_mut() {
            o.confirmed = false;
        }
        let result = self.pull_loop(&client, &sub, open, backoff).await;
        // Cameras allow few subscriptions: free ours, even after an error
        // (the camera may only have sent one bad reply), but never wait long.
        let _ = tokio::time::timeout(Duration::from_secs(2), client.unsubscribe(&sub)).await;
        if result.is_ok() {
            info!(camera = %self.camera, "camera events: unsubscribed");
        }
        result
    }

    async fn pull_loop(
        &self,
        client: &OnvifClient,
        sub: &Subscription,
        open: &mut Open,
        backoff: &mut Duration,
    ) -> Result<(), Ended> {
        let t = self.timing;
        let renew_every = t
            .termination
            .saturating_sub(t.renew_before)
            .max(Duration::from_secs(1));
        let mut renew_at = tokio::time::Instant::now() + renew_every;
        // The camera's initial states come first, in as many replies as
        // they need (a full reply means more may follow).
        let mut initial = true;
        loop {
            let pulled = tokio::select! {
                _ = self.shutdown.cancelled() => return Ok(()),
                r = client.pull_messages(sub, t.pull_timeout, PULL_LIMIT) => r?,
            };
            // Only a pull that worked shows the camera is well again: one
            // that takes subscriptions but refuses every pull must not get
            // a new subscription every `min_backoff`.
            *backoff = t.min_backoff;
            let full = pulled.len() >= PULL_LIMIT as usize;
            let mut changed = !pulled.is_empty()
                && self
                    .record(pulled, client.clock_offset(), open)
                    .map_err(Ended::Store)?;
            if initial && !full {
                initial = false;
                changed |= self.settle(open).map_err(Ended::Store)?;
            }
            self.seen(open).map_err(Ended::Store)?;
            if changed {
                self.flush().await.map_err(Ended::Store)?;
            }
            if tokio::time::Instant::now() >= renew_at {
                tokio::select! {
                    _ = self.shutdown.cancelled() => return Ok(()),
                    r = client.renew(sub, t.termination) => r?,
                }
                debug!(camera = %self.camera, "camera events: renewed");
                renew_at = tokio::time::Instant::now() + renew_every;
            }
        }
    }

    /// After the initial states: the open events the camera did not report
    /// ended while unobserved. Returns whether any was closed.
    fn settle(&self, open: &mut Open) -> anyhow::Result<bool> {
        let before = open.len();
        let mut result = Ok(());
        open.retain(|_, o| {
            if o.confirmed || result.is_err() {
                return true;
            }
            result = self.store.events().close(
                &o.key,
                o.seen_ns,
                Some(EndReason::UnreportedOnResubscribe),
            );
            false
        });
        result?;
        if open.len() < before {
            info!(camera = %self.camera, closed = before - open.len(), "camera events: closed open events the camera no longer reports");
        }
        Ok(open.len() < before)
    }

    /// The subscription is alive: every confirmed open state is still on.
    fn seen(&self, open: &mut Open) -> anyhow::Result<()> {
        let now = self.clock.now_ns();
        for o in open.values_mut().filter(|o| o.confirmed) {
            self.store.events().touch(&o.key, now)?;
            o.seen_ns = now;
        }
        Ok(())
    }

    /// Stores what the camera sent: a state turning on opens an event, turning
    /// off ends it; stateless notifications are events of an instant.
    /// Returns whether a state changed (to be flushed).
    fn record(
        &self,
        notifications: Vec<Notification>,
        offset: time::Duration,
        open: &mut Open,
    ) -> anyhow::Result<bool> {
        let now = self.clock.now_ns();
        let lost = i64::try_from(self.timing.lost_after.as_nanos()).unwrap_or(i64::MAX);
        let events = self.store.events();
        let mut changed = false;
        for n in notifications {
            if n.operation == PropertyOperation::Deleted {
                continue;
            }
            let (kind, state) = classify(&n.topic, &n.data);
            let at = event_time(n.utc, offset, now);
            let key = (n.topic.clone(), n.source.clone());
            match state {
                Some(true) => {
                    if let Some(o) = open.get_mut(&key) {
                        if o.confirmed {
                            continue;
                        }
                        // On before and on now: the same event, unless the
                        // gap is too long to say what happened in it.
                        if now.saturating_sub(o.seen_ns) <= lost {
                            o.confirmed = true;
                            continue;
                        }
                        events.close(&o.key, o.seen_ns, Some(EndReason::Unobserved))?;
                    }
                    // A new event starts after the old one was last seen.
                    let at = open.get(&key).map_or(at, |o| at.max(o.seen_ns + 1));
                    let ev = self.event(&n, kind, at, None, true);
                    let o = OpenEvent {
                        key: events.insert(&ev)?,
                        seen_ns: at,
                        confirmed: true,
                    };
                    open.insert(key, o);
                    changed = true;
                }
                Some(false) => {
                    if let Some(o) = open.remove(&key) {
                        if !o.confirmed && n.operation == PropertyOperation::Initialized {
                            // Off now, but it went off while nobody listened.
                            events.close(
                                &o.key,
                                o.seen_ns,
                                Some(EndReason::InactiveOnResubscribe),
                            )?;
                        } else {
                            events.set_end(&o.key, at)?;
                        }
                        changed = true;
                    }
                }
                // The initial state of something without a state says nothing new.
                None if n.operation == PropertyOperation::Initialized => {}
                None => {
                    events.insert(&self.event(&n, kind, at, Some(at), false))?;
                }
            }
        }
        Ok(changed)
    }

    fn event(
        &self,
        n: &Notification,
        kind: Kind,
        start_ns: i64,
        end_ns: Option<i64>,
        stateful: bool,
    ) -> CameraEvent {
        CameraEvent {
            camera: self.camera.clone(),
            start_ns,
            end_ns,
            stateful,
            kind,
            topic: n.topic.clone(),
            source: n.source.clone(),
            data: n.data.clone(),
            seen_ns: end_ns.is_none().then_some(start_ns),
            end_reason: None,
        }
    }
}

/// The event's time on our clock: the camera's `UtcTime` less its clock
/// offset; our arrival time when it has none, or one more than a day off
/// (a camera that lost its clock).
fn event_time(utc: Option<time::OffsetDateTime>, offset: time::Duration, now_ns: i64) -> i64 {
    const DAY_NS: i128 = 86_400 * 1_000_000_000;
    utc.map(|t| (t - offset).unix_timestamp_nanos())
        .filter(|t| (t - i128::from(now_ns)).abs() < DAY_NS)
        .and_then(|t| i64::try_from(t).ok())
        .unwrap_or(now_ns)
}

/// Maps a topic and its data onto a kind and, where the camera reports
/// one, a state. Topics are matched by their segments without namespace
/// prefixes (`tns1:RuleEngine/tnsaxis:VMD3/x` → `ruleengine/vmd3/x`),
/// because every vendor uses its own prefixes and extensions.
pub fn classify(topic: &str, data: &[(String, String)]) -> (Kind, Option<bool>) {
    let t = topic
        .split('/')
        .map(|seg| seg.rsplit(':').next().unwrap_or(seg).trim())
        .collect::<Vec<_>>()
        .join("/")
        .to_ascii_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|n| t.contains(n));
    let kind = if has(&["tamper", "scenechange", "imagetoo", "defocus"]) {
        Kind::Tamper
    } else if has(&["signalloss", "videoloss"]) {
        Kind::VideoLoss
    } else if has(&[
        "linedetector",
        "linecrossing",
        "crossline",
        "crossed",
        "tripwire",
        "fielddetector",
        "objectsinside",
        "intrusion",
    ]) {
        Kind::Intrusion
    } else if has(&["digitalinput", "/io/port", "/io/virtualinput", "alarminput"]) {
        Kind::Input
    } else if has(&["motion", "vmd"]) {
        Kind::Motion
    } else {
        Kind::Other
    };
    (kind, state(data))
}

/// The state a notification's data reports: a named state item first
/// (`IsMotion`, `State`, ...), else the only item with a boolean value.
fn state(data: &[(String, String)]) -> Option<bool> {
    const NAMES: [&str; 7] = [
        "ismotion",
        "istamper",
        "state",
        "logicalstate",
        "isinside",
        "active",
        "alarm",
    ];
    let named = data
        .iter()
        .find(|(n, _)| NAMES.contains(&n.to_ascii_lowercase().as_str()))
        .and_then(|(_, v)| boolean(v));
    named.or_else(|| {
        let mut bools = data.iter().filter_map(|(_, v)| boolean(v));
        match (bools.next(), bools.next()) {
            (Some(b), None) => Some(b),
            _ => None,
        }
    })
}

fn boolean(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "active" | "on" => Some(true),
        "false" | "0" | "inactive" | "off" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn vendor_topics_map_to_kinds_and_states() {
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], Kind, Option<bool>);
        let cases: &[Case] = &[
            // Hikvision, Dahua, Reolink and most: the ONVIF rule engine.
            (
                "tns1:RuleEngine/CellMotionDetector/Motion",
                &[("IsMotion", "true")],
                Kind::Motion,
                Some(true),
            ),
            (
                "tns1:VideoSource/MotionAlarm",
                &[("State", "false")],
                Kind::Motion,
                Some(false),
            ),
            (
                "tns1:RuleEngine/TamperDetector/Tamper",
                &[("IsTamper", "true")],
                Kind::Tamper,
                Some(true),
            ),
            (
                "tns1:VideoSource/GlobalSceneChange/ImagingService",
                &[("State", "true")],
                Kind::Tamper,
                Some(true),
            ),
            (
                "tns1:VideoSource/ImageTooBlurry/AnalyticsService",
                &[("State", "true")],
                Kind::Tamper,
                Some(true),
            ),
            (
                "tns1:RuleEngine/LineDetector/Crossed",
                &[("ObjectId", "12")],
                Kind::Intrusion,
                None,
            ),
            (
                "tns1:RuleEngine/FieldDetector/ObjectsInside",
                &[("IsInside", "true")],
                Kind::Intrusion,
                Some(true),
            ),
            (
                "tns1:Device/Trigger/DigitalInput",
                &[("LogicalState", "true")],
                Kind::Input,
                Some(true),
            ),
            (
                "tns1:VideoSource/SignalLoss",
                &[("State", "true")],
                Kind::VideoLoss,
                Some(true),
            ),
            // Axis: vendor prefixes inside the path, lower-case items.
            (
                "tns1:RuleEngine/tnsaxis:VMD3/vmd3_video_1",
                &[("active", "1")],
                Kind::Motion,
                Some(true),
            ),
            (
                "tns1:Device/tnsaxis:IO/Port",
                &[("state", "0")],
                Kind::Input,
                Some(false),
            ),
            // Reolink person detection: not one of ours, kept as other with its state.
            (
                "tns1:RuleEngine/MyRuleDetector/PeopleDetect",
                &[("State", "true")],
                Kind::Other,
                Some(true),
            ),
            (
                "tns1:Monitoring/ProcessorUsage",
                &[("Value", "43.5")],
                Kind::Other,
                None,
            ),
            ("", &[], Kind::Other, None),
        ];
        for (topic, data, kind, st) in cases {
            assert_eq!(classify(topic, &d(data)), (*kind, *st), "{topic}");
        }
    }

    #[test]
    fn camera_time_is_corrected_and_checked() {
        let now = 1_700_000_000_000_000_000;
        let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(now) + 30_000_000_000)
            .unwrap();
        // A camera 30 s fast reports an event that happened now.
        assert_eq!(event_time(Some(t), time::Duration::seconds(30), now), now);
        assert_eq!(event_time(None, time::Duration::ZERO, now), now);
        let epoch = time::OffsetDateTime::UNIX_EPOCH;
        assert_eq!(event_time(Some(epoch), time::Duration::ZERO, now), now);
    }
}
