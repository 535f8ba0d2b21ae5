//! Camera events (motion, tamper, ...) in their own sled tree (`events`),
//! keyed by camera and start time like the segment index, so one camera's
//! events in a time range are one ordered scan.
//!
//! This module only stores and finds events; what a camera's notification
//! means is decided in [`crate::events`]. Rows are not flushed one by one
//! (a busy camera sends several a second): they become durable with the
//! index's next flush, so a crash loses at most the last few seconds of
//! events, never footage. The exception is a state turning on or off
//! ([`Events::flush`] after it): an event left open by a crash must be found
//! again at the next start, to be closed (see `open_events`).
//!
//! A range asks for every event that overlaps it, also those that started
//! before it. Without scanning all history: an event still open is in the
//! small `events_open` tree, and a closed one started at most the camera's
//! longest closed event before (`events_longest`, camera → ns, only grows),
//! so the scan of `events` starts that far back.

use std::ops::Bound;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::holds::Held;

/// What kind of thing a camera reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Motion detection (cell motion, motion alarm, VMD).
    Motion,
    /// Tampering: the view blocked, moved or defocused.
    Tamper,
    /// Line crossing or intrusion into a field.
    Intrusion,
    /// A digital input (alarm contact) changed.
    Input,
    /// The video signal was lost.
    VideoLoss,
    /// Anything else; the topic says what.
    Other,
}

impl Kind {
    /// Every kind, for parsing and listing.
    pub const ALL: [Kind; 6] = [
        Kind::Motion,
        Kind::Tamper,
        Kind::Intrusion,
        Kind::Input,
        Kind::VideoLoss,
        Kind::Other,
    ];

    /// The name used in the API (`motion`, `video_loss`...).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Motion => "motion",
            Kind::Tamper => "tamper",
            Kind::Intrusion => "intrusion",
            Kind::Input => "input",
            Kind::VideoLoss => "video_loss",
            Kind::Other => "other",
        }
    }

    /// The kind named `s`, if any.
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One stored event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CameraEvent {
    /// Camera id.
    pub camera: String,
    /// When it started (or happened), ns since the epoch, on our clock.
    pub start_ns: i64,
    /// When it ended, for events with a state (`IsMotion` true, then
    /// false); `None` while still active or for instantaneous events.
    pub end_ns: Option<i64>,
    /// Whether the camera reports a state for it (so `end_ns` will come).
    pub stateful: bool,
    /// Normalised kind.
    pub kind: Kind,
    /// The topic as the camera sent it.
    pub topic: String,
    /// The notification's source items (video source, rule, input token).
    pub source: Vec<(String, String)>,
    /// The notification's data items.
    pub data: Vec<(String, String)>,
    /// While open: the last time the state was known to be on (the
    /// subscription was alive); where an event is closed when its real end
    /// was not observed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen_ns: Option<i64>,
    /// Why the event ended, when the camera did not say so itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<EndReason>,
}

/// Why an event was closed without the camera reporting its end: the end
/// happened while nobody was listening (cleannvr stopped or crashed, the
/// subscription dropped), so `end_ns` is the last time it was seen on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// Resubscribed, the camera's initial state (`PropertyOperation="Initialized"`) says off.
    InactiveOnResubscribe,
    /// Resubscribed, the camera did not report this state at all.
    UnreportedOnResubscribe,
    /// Still on when resubscribed, but unobserved so long that this is
    /// taken as a new event (the old one ends when last seen).
    Unobserved,
    /// No subscription for so long that the state is unknown.
    SubscriptionLost,
}

impl EndReason {
    /// The name used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::InactiveOnResubscribe => "inactive_on_resubscribe",
            EndReason::UnreportedOnResubscribe => "unreported_on_resubscribe",
            EndReason::Unobserved => "unobserved",
            EndReason::SubscriptionLost => "subscription_lost",
        }
    }
}

/// Where a stored event is, to set its end later.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventKey(Vec<u8>);

/// The events tree, the keys of stateful events still open (`events_open`)
/// and each camera's longest closed event (`events_longest`).
pub struct Events {
    tree: sled::Tree,
    open: sled::Tree,
    longest: sled::Tree,
    db: sled::Db,
}

impl Events {
    /// Opens (creating if needed) the `events` tree of `db`.
    pub fn open(db: &sled::Db) -> anyhow::Result<Events> {
        let new_longest = !db.tree_names().iter().any(|n| n == b"events_longest");
        let events = Events {
            tree: db.open_tree("events").context("opening the events tree")?,
            open: db
                .open_tree("events_open")
                .context("opening the open-events tree")?,
            longest: db
                .open_tree("events_longest")
                .context("opening the longest-events tree")?,
            db: db.clone(),
        };
        if new_longest {
            // An index from before `events_longest`: measured once, here.
            for item in events.tree.iter() {
                let ev = decode(&item.context("reading the events tree")?.1)?;
                if let Some(end) = ev.end_ns {
                    events.lengthen(&ev.camera, end.saturating_sub(ev.start_ns))?;
                }
            }
        }
        Ok(events)
    }

    /// The longest closed event of `camera`, ns (0 when none).
    fn longest(&self, camera: &str) -> anyhow::Result<i64> {
        let v = self
            .longest
            .get(camera.as_bytes())
            .context("reading the longest event")?;
        Ok(v.and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map_or(0, i64::from_be_bytes))
    }

    /// Records that `camera` had a closed event lasting `ns`.
    fn lengthen(&self, camera: &str, ns: i64) -> anyhow::Result<()> {
        if ns > self.longest(camera)? {
            self.longest
                .fetch_and_update(camera.as_bytes(), |v| {
                    let old = v
                        .and_then(|v| <[u8; 8]>::try_from(v).ok())
                        .map_or(0, i64::from_be_bytes);
                    Some(old.max(ns).to_be_bytes().to_vec())
                })
                .with_context(|| format!("camera {camera}: recording the longest event"))?;
        }
        Ok(())
    }

    /// Stores an event; returns its key.
    pub fn insert(&self, ev: &CameraEvent) -> anyhow::Result<EventKey> {
        let id = self.db.generate_id()?;
        let mut k = prefix(&ev.camera, ev.start_ns);
        k.extend_from_slice(&id.to_be_bytes());
        self.tree
            .insert(k.as_slice(), serde_json::to_vec(ev)?)
            .with_context(|| format!("camera {}: storing an event", ev.camera))?;
        if ev.stateful && ev.end_ns.is_none() {
            self.open
                .insert(k.as_slice(), &[])
                .with_context(|| format!("camera {}: storing an open event", ev.camera))?;
        }
        if let Some(end) = ev.end_ns {
            self.lengthen(&ev.camera, end.saturating_sub(ev.start_ns))?;
        }
        Ok(EventKey(k))
    }

    /// Sets the end of a stored event, reported by the camera (gone
    /// already: nothing to do).
    pub fn set_end(&self, key: &EventKey, end_ns: i64) -> anyhow::Result<()> {
        self.close(key, end_ns, None)
    }

    /// Ends an event, with the reason when the camera did not end it.
    pub fn close(
        &self,
        key: &EventKey,
        end_ns: i64,
        reason: Option<EndReason>,
    ) -> anyhow::Result<()> {
        let mut closed = None;
        self.tree
            .fetch_and_update(&key.0, |v| {
                let mut ev = decode(v?).ok()?;
                ev.end_ns = Some(end_ns.max(ev.start_ns));
                ev.seen_ns = None;
                ev.end_reason = reason;
                closed = Some((ev.camera.clone(), end_ns.saturating_sub(ev.start_ns)));
                serde_json::to_vec(&ev).ok()
            })
            .context("ending an event")?;
        if let Some((camera, ns)) = closed {
            self.lengthen(&camera, ns)?;
        }
        self.open.remove(&key.0).context("ending an event")?;
        Ok(())
    }

    /// Records that an open event's state was still on at `seen_ns`.
    pub fn touch(&self, key: &EventKey, seen_ns: i64) -> anyhow::Result<()> {
        self.tree
            .fetch_and_update(&key.0, |v| {
                let mut ev = decode(v?).ok()?;
                if ev.end_ns.is_none() {
                    ev.seen_ns = Some(seen_ns.max(ev.seen_ns.unwrap_or(ev.start_ns)));
                }
                serde_json::to_vec(&ev).ok()
            })
            .context("updating an open event")?;
        Ok(())
    }

    /// `camera`'s stateful events that are still open (their end never
    /// came, e.g. cleannvr stopped in the middle), oldest first.
    pub fn open_events(&self, camera: &str) -> anyhow::Result<Vec<(EventKey, CameraEvent)>> {
        let mut out = Vec::new();
        for item in self.open.scan_prefix(prefix_of(camera)) {
            let (k, _) = item?;
            match self.tree.get(&k)?.map(|v| decode(&v)).transpose()? {
                Some(ev) if ev.end_ns.is_none() => out.push((EventKey(k.to_vec()), ev)),
                // Ended or pruned meanwhile: forget the stale mark.
                _ => {
                    self.open.remove(&k)?;
                }
            }
        }
        Ok(out)
    }

    /// Makes what was written so far durable (after a state change).
    pub fn flush(&self) -> anyhow::Result<()> {
        self.db.flush().context("flushing events")?;
        Ok(())
    }

    /// Events of `camera` overlapping `[start_ns, end_ns)`, oldest first,
    /// of `kinds` (all when empty), at most `limit`: those starting in it,
    /// and those started before it that end after `start_ns` or are still on.
    pub fn range(
        &self,
        camera: &str,
        start_ns: i64,
        end_ns: i64,
        kinds: &[Kind],
        limit: usize,
    ) -> anyhow::Result<Vec<CameraEvent>> {
        // No closed event started before this and reaches `start_ns`.
        let scan_from = start_ns.saturating_sub(self.longest(camera)?);
        let wanted = |ev: &CameraEvent| {
            (kinds.is_empty() || kinds.contains(&ev.kind))
                && ev.start_ns < end_ns
                && (ev.start_ns >= start_ns || ev.end_ns.map_or(ev.stateful, |end| end > start_ns))
        };
        // Still open and started earlier: found through `events_open`.
        let mut older = Vec::new();
        for item in self
            .open
            .range(prefix_of(camera)..prefix(camera, scan_from))
        {
            let (k, _) = item?;
            if let Some(v) = self.tree.get(&k)? {
                older.push(decode(&v)?);
            }
        }
        let range = (
            Bound::Included(prefix(camera, scan_from)),
            Bound::Excluded(prefix(camera, end_ns)),
        );
        let rest = self.tree.range(range).map(|item| decode(&item?.1));
        let mut out = Vec::new();
        for ev in older.into_iter().map(Ok).chain(rest) {
            let ev = ev?;
            if wanted(&ev) {
                out.push(ev);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// `camera`'s events starting at or after `start_ns`, oldest first, read
    /// as they are taken.
    pub fn iter_from(
        &self,
        camera: &str,
        start_ns: i64,
    ) -> impl Iterator<Item = anyhow::Result<CameraEvent>> {
        let mine = prefix_of(camera);
        self.tree
            .range(prefix(camera, start_ns)..)
            .take_while(move |item| item.as_ref().map_or(true, |(k, _)| k.starts_with(&mine)))
            .map(|item| decode(&item?.1))
    }

    /// `camera`'s last event of `kinds` (all when empty) starting before
    /// `at_ns`, and its first starting after it: "previous" and "next event"
    /// beside playback. Each is one ordered scan from `at_ns`, however far
    /// away the event is.
    pub fn adjacent(
        &self,
        camera: &str,
        at_ns: i64,
        kinds: &[Kind],
    ) -> anyhow::Result<(Option<CameraEvent>, Option<CameraEvent>)> {
        let wanted = |ev: &CameraEvent| kinds.is_empty() || kinds.contains(&ev.kind);
        let mut previous = None;
        for item in self
            .tree
            .range(prefix_of(camera)..prefix(camera, at_ns))
            .rev()
        {
            let ev = decode(&item?.1)?;
            if wanted(&ev) {
                previous = Some(ev);
                break;
            }
        }
        let mine = prefix_of(camera);
        let mut next = None;
        for item in self.tree.range(prefix(camera, at_ns.saturating_add(1))..) {
            let (k, v) = item?;
            if !k.starts_with(&mine) {
                break;
            }
            let ev = decode(&v)?;
            if wanted(&ev) {
                next = Some(ev);
                break;
            }
        }
        Ok((previous, next))
    }

    /// How many of `camera`'s events of `kinds` (all when empty) start on
    /// each day in `tz` (days with none left out), for `[start_ns, end_ns)`:
    /// the counts in the playback date picker.
    pub fn count_by_day(
        &self,
        camera: &str,
        start_ns: i64,
        end_ns: i64,
        kinds: &[Kind],
        tz: &jiff::tz::TimeZone,
    ) -> anyhow::Result<Vec<(jiff::civil::Date, u64)>> {
        let mut out: Vec<(jiff::civil::Date, u64)> = Vec::new();
        for item in self
            .tree
            .range(prefix(camera, start_ns)..prefix(camera, end_ns))
        {
            let ev = decode(&item?.1)?;
            if !kinds.is_empty() && !kinds.contains(&ev.kind) {
                continue;
            }
            let day = jiff::Timestamp::from_nanosecond(i128::from(ev.start_ns))
                .context("an event's start out of range")?
                .to_zoned(tz.clone())
                .date();
            match out.last_mut() {
                Some((d, n)) if *d == day => *n += 1,
                _ => out.push((day, 1)),
            }
        }
        Ok(out)
    }

    /// Deletes `camera`'s events that ended before `before_ns`, except those
    /// a hold covers; returns how many.
    pub fn prune(&self, camera: &str, before_ns: i64, held: &Held) -> anyhow::Result<u64> {
        let mut n = 0;
        for item in self
            .tree
            .range(prefix(camera, i64::MIN)..prefix(camera, before_ns))
        {
            let (k, v) = item?;
            let ev = decode(&v)?;
            let end = ev.end_ns.unwrap_or(ev.start_ns);
            if end >= before_ns || held.covers(camera, ev.start_ns, end.max(ev.start_ns + 1)) {
                continue;
            }
            self.tree.remove(&k)?;
            self.open.remove(&k)?;
            n += 1;
        }
        Ok(n)
    }
}

fn decode(v: &[u8]) -> anyhow::Result<CameraEvent> {
    serde_json::from_slice(v).context("corrupt event row")
}

/// Camera id, NUL: the start of every key of the camera's events.
fn prefix_of(camera: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(camera.len() + 17);
    k.extend_from_slice(camera.as_bytes());
    k.push(0);
    k
}

/// Camera id, NUL, order-preserving start time (as the segment index).
fn prefix(camera: &str, start_ns: i64) -> Vec<u8> {
    let mut k = prefix_of(camera);
    k.extend_from_slice(&((start_ns as u64) ^ (1 << 63)).to_be_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(camera: &str, start_ns: i64, kind: Kind) -> CameraEvent {
        CameraEvent {
            camera: camera.into(),
            start_ns,
            end_ns: None,
            stateful: true,
            kind,
            topic: "tns1:x".into(),
            source: vec![],
            data: vec![],
            seen_ns: None,
            end_reason: None,
        }
    }

    #[test]
    fn open_events_are_found_until_closed_or_pruned() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let e = Events::open(&db).unwrap();
        let a = e.insert(&ev("a", 10, Kind::Motion)).unwrap();
        let b = e.insert(&ev("a", 20, Kind::Tamper)).unwrap();
        e.insert(&ev("ab", 15, Kind::Motion)).unwrap();
        let mut instant = ev("a", 30, Kind::Other);
        instant.stateful = false;
        instant.end_ns = Some(30);
        e.insert(&instant).unwrap();
        e.touch(&a, 18).unwrap();
        e.touch(&a, 12).unwrap();
        let open = e.open_events("a").unwrap();
        assert_eq!(open.iter().map(|(k, _)| k).collect::<Vec<_>>(), [&a, &b]);
        assert_eq!(open[0].1.seen_ns, Some(18), "seen only moves forward");
        e.close(&a, 18, Some(EndReason::InactiveOnResubscribe))
            .unwrap();
        let open = e.open_events("a").unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].0, b);
        let closed = &e.range("a", 10, 11, &[], 10).unwrap()[0];
        assert_eq!(closed.end_ns, Some(18));
        assert_eq!(closed.seen_ns, None);
        assert_eq!(closed.end_reason, Some(EndReason::InactiveOnResubscribe));
        // Pruning an old open event forgets it as open too.
        assert_eq!(e.prune("a", 25, &Held::default()).unwrap(), 2);
        assert!(e.open_events("a").unwrap().is_empty());
        assert_eq!(e.open_events("ab").unwrap().len(), 1);
    }

    #[test]
    fn rows_from_before_the_end_reason_still_read() {
        let old = br#"{"camera":"a","start_ns":1,"end_ns":null,"stateful":true,"kind":"motion","topic":"t","source":[],"data":[]}"#;
        let ev = decode(old).unwrap();
        assert_eq!((ev.seen_ns, ev.end_reason), (None, None));
    }

    #[test]
    fn range_by_camera_time_and_kind_and_end() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let e = Events::open(&db).unwrap();
        let k = e.insert(&ev("a", 100, Kind::Motion)).unwrap();
        e.insert(&ev("a", 100, Kind::Tamper)).unwrap();
        let early = e.insert(&ev("a", -5, Kind::Motion)).unwrap();
        e.set_end(&early, 0).unwrap();
        e.insert(&ev("ab", 150, Kind::Motion)).unwrap();
        e.insert(&ev("a", 300, Kind::Input)).unwrap();
        e.set_end(&k, 120).unwrap();
        let all = e.range("a", -10, 300, &[], 100).unwrap();
        assert_eq!(
            all.iter().map(|x| x.start_ns).collect::<Vec<_>>(),
            vec![-5, 100, 100]
        );
        let m = e.range("a", 0, 1000, &[Kind::Motion], 100).unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].end_ns, Some(120));
        assert_eq!(e.range("a", 0, 1000, &[], 2).unwrap().len(), 2);
    }

    /// Starts of `camera`'s events overlapping `[a, b)`.
    fn starts(e: &Events, camera: &str, a: i64, b: i64) -> Vec<i64> {
        let evs = e.range(camera, a, b, &[], 100).unwrap();
        evs.iter().map(|x| x.start_ns).collect()
    }

    #[test]
    fn range_finds_events_overlapping_it_not_only_starting_in_it() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let e = Events::open(&db).unwrap();
        // Before the range [1000, 2000): one ending inside it, one still
        // on, one over before it starts (ending exactly at its start too).
        let ends_inside = e.insert(&ev("a", 100, Kind::VideoLoss)).unwrap();
        e.set_end(&ends_inside, 1500).unwrap();
        e.insert(&ev("a", 200, Kind::Input)).unwrap();
        let before = e.insert(&ev("a", 300, Kind::Motion)).unwrap();
        e.set_end(&before, 1000).unwrap();
        let mut instant = ev("a", 900, Kind::Intrusion);
        (instant.stateful, instant.end_ns) = (false, None);
        e.insert(&instant).unwrap();
        // Spanning the whole range; inside it; after it; another camera's.
        let spans = e.insert(&ev("a", 400, Kind::Tamper)).unwrap();
        e.set_end(&spans, 5000).unwrap();
        for t in [1200, 2000] {
            let k = e.insert(&ev("a", t, Kind::Motion)).unwrap();
            e.set_end(&k, t + 100).unwrap();
        }
        e.insert(&ev("ab", 500, Kind::Motion)).unwrap();
        assert_eq!(starts(&e, "a", 1000, 2000), [100, 200, 400, 1200]);
        let kinds = e.range("a", 1000, 2000, &[Kind::Input], 100).unwrap();
        assert_eq!(kinds.len(), 1);
        assert_eq!(kinds[0].end_ns, None, "still on");
        // The look-back is the longest closed event (4600 ns): the open
        // event found further back comes first, the limit still holds.
        assert_eq!(starts(&e, "a", 10_000, 20_000), [200]);
        assert_eq!(e.range("a", 1000, 2000, &[], 2).unwrap().len(), 2);
        // Measured again from the rows when the index is from before it.
        drop(e);
        db.drop_tree("events_longest").unwrap();
        let e = Events::open(&db).unwrap();
        assert_eq!(e.longest("a").unwrap(), 4600);
        assert_eq!(starts(&e, "a", 1000, 2000), [100, 200, 400, 1200]);
    }

    #[test]
    fn prune_keeps_recent_and_held() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let e = Events::open(&db).unwrap();
        for t in [10, 20, 30, 40] {
            e.insert(&ev("a", t, Kind::Motion)).unwrap();
        }
        let mut held = Held::default();
        held.ranges.insert("a".into(), vec![(15, 25)]);
        assert_eq!(e.prune("a", 35, &held).unwrap(), 2);
        let left: Vec<i64> = e
            .range("a", 0, 100, &[], 100)
            .unwrap()
            .iter()
            .map(|x| x.start_ns)
            .collect();
        assert_eq!(left, vec![20, 40]);
    }

    #[test]
    fn adjacent_events_by_kind_stay_within_the_camera() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let e = Events::open(&db).unwrap();
        e.insert(&ev("a", 10, Kind::Motion)).unwrap();
        e.insert(&ev("a", 20, Kind::Tamper)).unwrap();
        e.insert(&ev("a", 30, Kind::Motion)).unwrap();
        e.insert(&ev("a", 40, Kind::Input)).unwrap();
        e.insert(&ev("ab", 35, Kind::Motion)).unwrap();
        e.insert(&ev("", 25, Kind::Motion)).unwrap();
        let at = |t, kinds: &[Kind]| {
            let (p, n) = e.adjacent("a", t, kinds).unwrap();
            (p.map(|x| x.start_ns), n.map(|x| x.start_ns))
        };
        assert_eq!(
            at(20, &[]),
            (Some(10), Some(30)),
            "strictly before and after"
        );
        assert_eq!(at(20, &[Kind::Motion]), (Some(10), Some(30)));
        assert_eq!(at(30, &[Kind::Motion]), (Some(10), None), "not camera ab's");
        assert_eq!(at(5, &[Kind::Tamper]), (None, Some(20)));
        assert_eq!(at(100, &[Kind::Tamper, Kind::Input]), (Some(40), None));
        assert_eq!(at(15, &[Kind::VideoLoss]), (None, None));
    }

    #[test]
    fn counts_per_local_day_by_kind() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let e = Events::open(&db).unwrap();
        let ns =
            |s: &str| i64::try_from(s.parse::<jiff::Timestamp>().unwrap().as_nanosecond()).unwrap();
        // 23:30 UTC on the 1st is the 2nd in Helsinki (UTC+2 in December).
        for (t, k) in [
            ("2026-12-01T10:00:00Z", Kind::Motion),
            ("2026-12-01T23:30:00Z", Kind::Motion),
            ("2026-12-02T08:00:00Z", Kind::Tamper),
            ("2026-12-02T09:00:00Z", Kind::Motion),
            ("2026-12-05T09:00:00Z", Kind::Motion),
        ] {
            e.insert(&ev("a", ns(t), k)).unwrap();
        }
        e.insert(&ev("ab", ns("2026-12-03T09:00:00Z"), Kind::Motion))
            .unwrap();
        let tz = jiff::tz::TimeZone::get("Europe/Helsinki").unwrap();
        let (a, b) = (ns("2026-11-01T00:00:00Z"), ns("2026-12-05T00:00:00Z"));
        let days = |kinds: &[Kind]| {
            e.count_by_day("a", a, b, kinds, &tz)
                .unwrap()
                .into_iter()
                .map(|(d, n)| (d.to_string(), n))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            days(&[]),
            [("2026-12-01".to_owned(), 1), ("2026-12-02".to_owned(), 3)]
        );
        assert_eq!(
            days(&[Kind::Motion]),
            [("2026-12-01".to_owned(), 1), ("2026-12-02".to_owned(), 2)]
        );
    }

    #[test]
    fn kinds_round_trip() {
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.as_str()), Some(k));
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        assert_eq!(Kind::parse("Motion"), None);
    }
}
