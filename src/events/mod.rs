//! Camera events: each ONVIF camera's own motion, tamper, intrusion and
//! input notifications, pulled from its events service and, where its RTSP
//! stream has a metadata track, read from that too ([`metadata`]); stored
//! in the index ([`crate::store::events`]) for the timeline and search. Both
//! sources feed one [`CameraEvents`], which stores each event once.
//!
//! One [`EventTask`] per camera with `onvif = { ... }`, run by that camera's
//! supervisor: it keeps a PullPoint subscription (`CreatePullPointSubscription`,
//! a `PullMessages` long poll, `Renew` before it expires, `Unsubscribe` on
//! shutdown) and reconnects with capped backoff, for ever, when the camera
//! reboots, forgets the subscription or answers something unusable. A state
//! (`IsMotion` true, then false) becomes one event with a start and an end.
//! A camera that faults `Renew` gets a new subscription before each one
//! expires instead; one that refuses PullPoint altogether is polled for its
//! states ([`poll`]). The camera's status says which, in plain words.
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

pub mod camera;
pub mod metadata;
mod poll;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

pub use camera::CameraEvents;

use crate::config::OnvifCameraConfig;
use crate::onvif::events::Subscription;
use crate::onvif::resolve::credentials;
use crate::onvif::{ErrorKind, OnvifClient, OnvifError};
use crate::status::CameraStatus;
use crate::store::events::Kind;

/// Timings of a subscription; [`Timing::default`] suits real cameras.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// How long the camera holds a `PullMessages` open waiting for events
    /// (under the ONVIF client's 10 s call deadline).
    pub pull_timeout: Duration,
    /// How long a subscription lives unless renewed.
    pub termination: Duration,
    /// Renewed (or, where the camera refuses `Renew`, re-created) when this
    /// much of it is left.
    pub renew_before: Duration,
    /// First wait after a failure; doubles up to `max_backoff`.
    pub min_backoff: Duration,
    /// Longest wait between attempts.
    pub max_backoff: Duration,
    /// An open event unobserved this long (no subscription) is closed where
    /// it was last seen; still on after such a gap, it starts a new event.
    pub lost_after: Duration,
    /// How often a camera that refuses PullPoint is asked for its states
    /// (`onvif.events_poll_seconds`).
    pub poll_every: Duration,
}

/// Default of `onvif.events_poll_seconds`.
pub const DEFAULT_POLL_SECONDS: u64 = 5;

impl Default for Timing {
    fn default() -> Self {
        Timing {
            pull_timeout: Duration::from_secs(5),
            termination: Duration::from_secs(60),
            renew_before: Duration::from_secs(30),
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            lost_after: Duration::from_secs(300),
            poll_every: Duration::from_secs(DEFAULT_POLL_SECONDS),
        }
    }
}

impl Timing {
    /// The default timings with the camera's own poll interval.
    pub fn for_camera(onvif: &OnvifCameraConfig) -> Timing {
        let secs = onvif.events_poll_seconds.unwrap_or(DEFAULT_POLL_SECONDS);
        Timing {
            poll_every: Duration::from_secs(secs.clamp(1, 3600)),
            ..Timing::default()
        }
    }
}

/// Most notifications asked for per pull.
const PULL_LIMIT: u32 = 100;

/// `Renew` faults, each followed by a subscription the camera did create,
/// after which the camera is taken not to support `Renew` (one alone may be
/// a reboot that forgot the subscription).
const RENEW_FAULTS_TO_GIVE_UP: u32 = 2;

/// The event subscription of one camera.
pub struct EventTask {
    /// Its `onvif = { ... }` table.
    pub onvif: OnvifCameraConfig,
    /// The camera's event record, shared with its metadata track.
    pub events: Arc<CameraEvents>,
    /// Cancelled when the camera stops.
    pub shutdown: CancellationToken,
    /// Subscription timings.
    pub timing: Timing,
    /// The camera's status, whose `events` says in plain words how its
    /// events arrive.
    pub status: Arc<Mutex<CameraStatus>>,
}

/// Why a subscription ended.
#[derive(Debug, thiserror::Error)]
enum Ended {
    #[error(transparent)]
    Onvif(#[from] OnvifError),
    #[error("the camera has no events service")]
    NoService,
    #[error("the camera refuses PullPoint subscriptions and offers no state to poll: {0}")]
    Unpollable(String),
    #[error("storing events: {0:#}")]
    Store(anyhow::Error),
}

impl Ended {
    /// The camera cannot give us events at all (as opposed to a failure).
    fn is_unsupported(&self) -> bool {
        matches!(self, Ended::NoService | Ended::Unpollable(_))
    }
}

/// Whether the camera answered an operation with a refusal (a SOAP fault or
/// an HTTP error meaning "not here"), not a failure to reach it.
fn refused(e: &OnvifError) -> bool {
    match &e.kind {
        ErrorKind::Fault(_) => true,
        ErrorKind::Status(s) => matches!(s, 400 | 404 | 405 | 500 | 501),
        _ => false,
    }
}

impl EventTask {
    /// Subscribes and records until `shutdown`, reconnecting after any failure.
    pub async fn run(self) {
        let camera = self.events.camera().to_owned();
        let mut backoff = self.timing.min_backoff;
        let mut failures = 0u32;
        let mut renew_faults = 0u32;
        loop {
            let unsupported;
            match self.subscription(&mut backoff, &mut renew_faults).await {
                Ok(()) => return,
                Err(e) => {
                    if let Err(e) = self.close_lost().await {
                        warn!(camera = %camera, error = %format!("{e:#}"), "camera events: closing unobserved events");
                    }
                    failures += 1;
                    unsupported = e.is_unsupported();
                    self.say(match &e {
                        Ended::NoService => "camera has no event service".into(),
                        Ended::Unpollable(_) => "camera has no event service cleannvr can use (it refuses subscriptions and polling)".into(),
                        _ => "events interrupted; retrying".into(),
                    });
                    // A camera without events is normal: say so once, then quietly.
                    if unsupported && failures > 1 {
                        debug!(camera = %camera, "camera events: {e}");
                    } else {
                        warn!(camera = %camera, error = %e, retry_s = backoff.as_secs_f32(), "camera events: subscription ended; retrying");
                    }
                }
            }
            // Asked again now and then: firmware upgrades add services.
            let wait = if failures > 1 && unsupported {
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

    /// Puts how the camera's events arrive into its status.
    fn say(&self, mode: String) {
        // Not `status::update`: that also keeps ingest's offline time.
        let mut s = self.status.lock().unwrap_or_else(|p| p.into_inner());
        s.events = Some(mode);
    }

    /// Closes the open events unobserved for [`Timing::lost_after`], where
    /// they were last seen.
    async fn close_lost(&self) -> anyhow::Result<()> {
        if self.events.close_lost(self.timing.lost_after)? {
            self.events.flush().await?;
        }
        Ok(())
    }

    /// One subscription (or, for a camera that refuses them, one run of
    /// polling), from connecting to its end. `Ok` only on shutdown.
    async fn subscription(
        &self,
        backoff: &mut Duration,
        renew_faults: &mut u32,
    ) -> Result<(), Ended> {
        let o = &self.onvif;
        let camera = self.events.camera();
        let client = tokio::select! {
            _ = self.shutdown.cancelled() => return Ok(()),
            c = OnvifClient::connect(&o.host, o.port, credentials(o)) => c?,
        };
        // The metadata track's events are on the camera's clock too.
        self.events.set_offset(client.clock_offset());
        if !client.has_events() {
            return Err(Ended::NoService);
        }
        let t = self.timing;
        let created = tokio::select! {
            _ = self.shutdown.cancelled() => return Ok(()),
            s = client.create_pull_point(t.termination) => s,
        };
        let mut sub = match created {
            Ok(sub) => sub,
            Err(e) if refused(&e) => return self.poll(&client, &e, backoff).await,
            Err(e) => return Err(e.into()),
        };
        info!(camera = %camera, "camera events: subscribed");
        self.say_subscribed(*renew_faults);
        self.events.resubscribed();
        let result = self
            .pull_loop(&client, &mut sub, backoff, renew_faults)
            .await;
        // Cameras allow few subscriptions: free ours, even after an error
        // (the camera may only have sent one bad reply), but never wait long.
        let _ = tokio::time::timeout(Duration::from_secs(2), client.unsubscribe(&sub)).await;
        if result.is_ok() {
            info!(camera = %camera, "camera events: unsubscribed");
        }
        result
    }

    fn say_subscribed(&self, renew_faults: u32) {
        self.say(if renew_faults >= RENEW_FAULTS_TO_GIVE_UP {
            let every = self.renew_every().as_secs();
            format!("events by subscription, re-created every {every} s (the camera refuses Renew)")
        } else {
            "events by subscription".into()
        });
    }

    fn renew_every(&self) -> Duration {
        let t = self.timing;
        t.termination
            .saturating_sub(t.renew_before)
            .max(Duration::from_secs(1))
    }

    async fn pull_loop(
        &self,
        client: &OnvifClient,
        sub: &mut Subscription,
        backoff: &mut Duration,
        renew_faults: &mut u32,
    ) -> Result<(), Ended> {
        let t = self.timing;
        let events = &self.events;
        let camera = events.camera();
        let renew_every = self.renew_every();
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
                && events
                    .record(pulled, client.clock_offset(), t.lost_after)
                    .map_err(Ended::Store)?;
            if initial && !full {
                initial = false;
                changed |= events.settle().map_err(Ended::Store)?;
            }
            events.seen().map_err(Ended::Store)?;
            if changed {
                events.flush().await.map_err(Ended::Store)?;
            }
            if tokio::time::Instant::now() < renew_at {
                continue;
            }
            if *renew_faults < RENEW_FAULTS_TO_GIVE_UP {
                let renewed = tokio::select! {
                    _ = self.shutdown.cancelled() => return Ok(()),
                    r = client.renew(sub, t.termination) => r,
                };
                match renewed {
                    Ok(()) => {
                        *renew_faults = 0;
                        debug!(camera = %camera, "camera events: renewed");
                        renew_at = tokio::time::Instant::now() + renew_every;
                        continue;
                    }
                    // Refused: the camera lacks Renew, or it rebooted and
                    // forgot the subscription. A new one answers both.
                    Err(e) if refused(&e) => {
                        *renew_faults += 1;
                        if *renew_faults == RENEW_FAULTS_TO_GIVE_UP {
                            info!(camera = %camera, error = %e, every_s = renew_every.as_secs(), "camera events: the camera refuses Renew; re-creating the subscription before it expires instead");
                        } else {
                            debug!(camera = %camera, error = %e, "camera events: Renew refused; subscribing again");
                        }
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            // A new subscription before the old one expires, then the old
            // one freed: no gap in which a change could go unseen (and the
            // new one's initial states confirm what is still on).
            let new = tokio::select! {
                _ = self.shutdown.cancelled() => return Ok(()),
                s = client.create_pull_point(t.termination) => s?,
            };
            let old = std::mem::replace(sub, new);
            let _ = tokio::time::timeout(Duration::from_secs(2), client.unsubscribe(&old)).await;
            debug!(camera = %camera, "camera events: subscription re-created");
            self.say_subscribed(*renew_faults);
            events.resubscribed();
            initial = true;
            renew_at = tokio::time::Instant::now() + renew_every;
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
