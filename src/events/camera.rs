//! One camera's event record, shared by its two sources: the PullPoint
//! subscription ([`super::EventTask`]) and the RTSP metadata track
//! ([`super::metadata::MetadataTask`]). Both hand over parsed notifications;
//! this turns them into stored events (a state on opens an event, off ends
//! it) on our clock, and keeps the two sources from storing the same thing
//! twice: a camera that sends motion over both says it twice.
//!
//! Owns: the open events of the camera, the camera's clock offset (measured
//! by the ONVIF client, used by both sources) and the store writes.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tracing::{info, warn};

use super::{classify, event_time};
use crate::clock::Clock;
use crate::onvif::events::{Notification, PropertyOperation};
use crate::store::events::{CameraEvent, EndReason, EventKey, Kind};
use crate::store::Store;

/// Instant (stateless) events remembered to drop the other source's copy.
const RECENT_INSTANTS: usize = 64;
/// States whose last end is remembered, so the slower source's late copy of
/// a start that already ended opens nothing.
const ENDED_KEYS: usize = 256;

/// An event whose state is on, waiting for its end.
pub(super) struct OpenEvent {
    pub(super) key: EventKey,
    /// Last time the state was known on (ns, our clock).
    pub(super) seen_ns: i64,
    /// Whether the current subscription has reported this state; until it
    /// has, the event is only what an earlier subscription saw.
    pub(super) confirmed: bool,
}

/// A property: topic and source items.
type PropertyKey = (String, Vec<(String, String)>);
/// An instant event: its property, data items and time.
type Instant = (PropertyKey, Vec<(String, String)>, i64);

#[derive(Default)]
struct State {
    open: HashMap<PropertyKey, OpenEvent>,
    /// Where each recently ended state ended (ns, our clock).
    ended: HashMap<PropertyKey, i64>,
    /// Recent instant events: topic, source, data, time.
    instants: VecDeque<Instant>,
    /// Camera clock minus ours, as the ONVIF client last measured it.
    offset: time::Duration,
}

/// The events of one camera.
pub struct CameraEvents {
    camera: String,
    store: Arc<Store>,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
}

impl CameraEvents {
    /// The camera's event record, with the events a previous run left open
    /// (it stopped or crashed while their state was on), to be reconciled
    /// with the camera.
    pub fn load(camera: &str, store: Arc<Store>, clock: Arc<dyn Clock>) -> Arc<CameraEvents> {
        let rows = store.events().open_events(camera).unwrap_or_else(|e| {
            warn!(camera = %camera, error = %format!("{e:#}"), "camera events: reading open events");
            Vec::new()
        });
        if !rows.is_empty() {
            info!(camera = %camera, open = rows.len(), "camera events: events left open by the last run, to reconcile");
        }
        let open = rows
            .into_iter()
            .map(|(key, ev)| {
                let seen_ns = ev.seen_ns.unwrap_or(ev.start_ns);
                let o = OpenEvent {
                    key,
                    seen_ns,
                    confirmed: false,
                };
                ((ev.topic, ev.source), o)
            })
            .collect();
        Arc::new(CameraEvents {
            camera: camera.to_owned(),
            store,
            clock,
            state: Mutex::new(State {
                open,
                ..State::default()
            }),
        })
    }

    /// The camera id.
    pub fn camera(&self) -> &str {
        &self.camera
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The camera's clock offset, as measured when its events service was
    /// last reached (zero until then).
    pub fn offset(&self) -> time::Duration {
        self.state().offset
    }

    /// Records the camera's clock offset for both sources.
    pub fn set_offset(&self, offset: time::Duration) {
        self.state().offset = offset;
    }

    /// A new subscription starts: what is open was seen by an earlier one
    /// and must be confirmed by this one.
    pub(super) fn resubscribed(&self) {
        for o in self.state().open.values_mut() {
            o.confirmed = false;
        }
    }

    /// Makes state changes durable, off the async threads (an fsync).
    pub async fn flush(&self) -> anyhow::Result<()> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.events().flush()).await?
    }

    /// Closes the open events unobserved for `lost_after`, where they were
    /// last seen. Returns whether any was closed (to be flushed).
    pub(super) fn close_lost(&self, lost_after: Duration) -> anyhow::Result<bool> {
        let now = self.clock.now_ns();
        let lost = i64::try_from(lost_after.as_nanos()).unwrap_or(i64::MAX);
        let mut st = self.state();
        let before = st.open.len();
        let mut result = Ok(());
        st.open.retain(|_, o| {
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
        let closed = before - st.open.len();
        if closed > 0 {
            info!(camera = %self.camera, closed, "camera events: closed events unobserved since the subscription was lost");
        }
        Ok(closed > 0)
    }

    /// After the initial states: the open events the camera did not report
    /// ended while unobserved. Returns whether any was closed.
    pub(super) fn settle(&self) -> anyhow::Result<bool> {
        let mut st = self.state();
        let before = st.open.len();
        let mut result = Ok(());
        st.open.retain(|_, o| {
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
        let closed = before - st.open.len();
        if closed > 0 {
            info!(camera = %self.camera, closed, "camera events: closed open events the camera no longer reports");
        }
        Ok(closed > 0)
    }

    /// A source is alive: every confirmed open state is still on.
    pub fn seen(&self) -> anyhow::Result<()> {
        let now = self.clock.now_ns();
        for o in self.state().open.values_mut().filter(|o| o.confirmed) {
            self.store.events().touch(&o.key, now)?;
            o.seen_ns = now;
        }
        Ok(())
    }

    /// Stores what the camera sent, by its clock less `offset`: a state
    /// turning on opens an event, turning off ends it; stateless
    /// notifications are events of an instant. A state already open, an end
    /// already stored and an instant already stored (the other source's
    /// copy) change nothing. A state on again after more than `lost_after`
    /// unobserved is a new event. Returns whether a state changed (to be
    /// flushed).
    pub fn record(
        &self,
        notifications: Vec<Notification>,
        offset: time::Duration,
        lost_after: Duration,
    ) -> anyhow::Result<bool> {
        let now = self.clock.now_ns();
        let lost = i64::try_from(lost_after.as_nanos()).unwrap_or(i64::MAX);
        let events = self.store.events();
        let mut st = self.state();
        let st = &mut *st;
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
                    if let Some(o) = st.open.get_mut(&key) {
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
                    } else if st.ended.get(&key).is_some_and(|&end| at < end) {
                        // The other source's start of an event already ended.
                        continue;
                    }
                    // A new event starts after the old one was last seen.
                    let at = st.open.get(&key).map_or(at, |o| at.max(o.seen_ns + 1));
                    let ev = self.event(&n, kind, at, None, true);
                    let o = OpenEvent {
                        key: events.insert(&ev)?,
                        seen_ns: at,
                        confirmed: true,
                    };
                    st.open.insert(key, o);
                    changed = true;
                }
                Some(false) => {
                    if let Some(o) = st.open.remove(&key) {
                        let end = if !o.confirmed && n.operation == PropertyOperation::Initialized {
                            // Off now, but it went off while nobody listened.
                            events.close(
                                &o.key,
                                o.seen_ns,
                                Some(EndReason::InactiveOnResubscribe),
                            )?;
                            o.seen_ns
                        } else {
                            events.set_end(&o.key, at)?;
                            at
                        };
                        if st.ended.len() >= ENDED_KEYS {
                            st.ended.clear();
                        }
                        st.ended.insert(key, end.max(at));
                        changed = true;
                    }
                }
                // The initial state of something without a state says nothing new.
                None if n.operation == PropertyOperation::Initialized => {}
                None => {
                    let instant: Instant = (key, n.data.clone(), at);
                    if st.instants.contains(&instant) {
                        continue;
                    }
                    events.insert(&self.event(&n, kind, at, Some(at), false))?;
                    if st.instants.len() >= RECENT_INSTANTS {
                        st.instants.pop_front();
                    }
                    st.instants.push_back(instant);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    const T0: i64 = 1_700_000_000_000_000_000;
    const SECOND: i64 = 1_000_000_000;

    fn note(topic: &str, op: PropertyOperation, at: i64, data: &[(&str, &str)]) -> Notification {
        Notification {
            topic: topic.into(),
            utc: Some(time::OffsetDateTime::from_unix_timestamp_nanos(at.into()).unwrap()),
            operation: op,
            source: vec![("Source".into(), "VideoSource_1".into())],
            data: data
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        }
    }

    fn motion(on: bool, at: i64) -> Notification {
        let v = if on { "true" } else { "false" };
        note(
            "tns1:VideoSource/MotionAlarm",
            PropertyOperation::Changed,
            at,
            &[("State", v)],
        )
    }

    /// A camera that reports over PullPoint and its metadata track: each
    /// event is stored once, whichever source is first, in any interleaving.
    #[test]
    fn the_two_sources_store_each_event_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let clock = Arc::new(ManualClock::new(T0 + 10 * SECOND));
        let events = CameraEvents::load("gate", store.clone(), clock);
        let lost = Duration::from_secs(300);
        let off = time::Duration::ZERO;
        let line = |at| {
            note(
                "tns1:RuleEngine/LineDetector/Crossed",
                PropertyOperation::None,
                at,
                &[("ObjectId", "7")],
            )
        };
        // Metadata first, PullPoint a moment later, with its start after the end.
        events.record(vec![motion(true, T0)], off, lost).unwrap();
        events.record(vec![motion(true, T0)], off, lost).unwrap();
        events
            .record(vec![motion(false, T0 + 2 * SECOND)], off, lost)
            .unwrap();
        events
            .record(vec![motion(false, T0 + 2 * SECOND)], off, lost)
            .unwrap();
        events
            .record(vec![line(T0 + 3 * SECOND)], off, lost)
            .unwrap();
        events
            .record(vec![line(T0 + 3 * SECOND)], off, lost)
            .unwrap();
        // One source late by a whole event: its copy of the start comes after the end.
        events
            .record(vec![motion(true, T0 + 4 * SECOND)], off, lost)
            .unwrap();
        events
            .record(vec![motion(false, T0 + 5 * SECOND)], off, lost)
            .unwrap();
        events
            .record(vec![motion(true, T0 + 4 * SECOND)], off, lost)
            .unwrap();
        events
            .record(vec![motion(false, T0 + 5 * SECOND)], off, lost)
            .unwrap();
        // A new start at the second the last one ended (cameras' clocks tick in seconds).
        events
            .record(vec![motion(true, T0 + 5 * SECOND)], off, lost)
            .unwrap();
        let all = store.events().range("gate", 0, i64::MAX, &[], 100).unwrap();
        let spans: Vec<_> = all
            .iter()
            .map(|e| (e.kind, e.start_ns - T0, e.end_ns.map(|e| e - T0)))
            .collect();
        assert_eq!(
            spans,
            vec![
                (Kind::Motion, 0, Some(2 * SECOND)),
                (Kind::Intrusion, 3 * SECOND, Some(3 * SECOND)),
                (Kind::Motion, 4 * SECOND, Some(5 * SECOND)),
                (Kind::Motion, 5 * SECOND, None),
            ]
        );
    }
}
