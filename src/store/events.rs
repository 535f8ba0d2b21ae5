//! Camera events (motion, tamper, ...) in their own sled tree (`events`),
//! keyed by camera and start time like the segment index, so one camera's
//! events in a time range are one ordered scan.
//!
//! This module only stores and finds events; what a camera's notification
//! means is decided in [`crate::events`]. Rows are not flushed one by one
//! (a busy camera sends several a second): they become durable with the
//! index's next flush, so a crash loses at most the last few seconds of
//! events, never footage.

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
}

/// Where a stored event is, to set its end later.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventKey(Vec<u8>);

/// The events tree.
pub struct Events {
    tree: sled::Tree,
    db: sled::Db,
}

impl Events {
    /// Opens (creating if needed) the `events` tree of `db`.
    pub fn open(db: &sled::Db) -> anyhow::Result<Events> {
        Ok(Events {
            tree: db.open_tree("events").context("opening the events tree")?,
            db: db.clone(),
        })
    }

    /// Stores an event; returns its key.
    pub fn insert(&self, ev: &CameraEvent) -> anyhow::Result<EventKey> {
        let id = self.db.generate_id()?;
        let mut k = prefix(&ev.camera, ev.start_ns);
        k.extend_from_slice(&id.to_be_bytes());
        self.tree
            .insert(k.as_slice(), serde_json::to_vec(ev)?)
            .with_context(|| format!("camera {}: storing an event", ev.camera))?;
        Ok(EventKey(k))
    }

    /// Sets the end of a stored event (gone already: nothing to do).
    pub fn set_end(&self, key: &EventKey, end_ns: i64) -> anyhow::Result<()> {
        self.tree
            .fetch_and_update(&key.0, |v| {
                let mut ev = decode(v?).ok()?;
                ev.end_ns = Some(end_ns.max(ev.start_ns));
                serde_json::to_vec(&ev).ok()
            })
            .context("ending an event")?;
        Ok(())
    }

    /// Events of `camera` starting in `[start_ns, end_ns)`, oldest first,
    /// of `kinds` (all when empty), at most `limit`.
    pub fn range(
        &self,
        camera: &str,
        start_ns: i64,
        end_ns: i64,
        kinds: &[Kind],
        limit: usize,
    ) -> anyhow::Result<Vec<CameraEvent>> {
        let range = (
            Bound::Included(prefix(camera, start_ns)),
            Bound::Excluded(prefix(camera, end_ns)),
        );
        let mut out = Vec::new();
        for item in self.tree.range(range) {
            let ev = decode(&item?.1)?;
            if kinds.is_empty() || kinds.contains(&ev.kind) {
                out.push(ev);
                if out.len() >= limit {
                    break;
                }
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
            self.tree.remove(k)?;
            n += 1;
        }
        Ok(n)
    }
}

fn decode(v: &[u8]) -> anyhow::Result<CameraEvent> {
    serde_json::from_slice(v).context("corrupt event row")
}

/// Camera id, NUL, order-preserving start time (as the segment index).
fn prefix(camera: &str, start_ns: i64) -> Vec<u8> {
    let mut k = Vec::with_capacity(camera.len() + 17);
    k.extend_from_slice(camera.as_bytes());
    k.push(0);
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
        }
    }

    #[test]
    fn range_by_camera_time_and_kind_and_end() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let e = Events::open(&db).unwrap();
        let k = e.insert(&ev("a", 100, Kind::Motion)).unwrap();
        e.insert(&ev("a", 100, Kind::Tamper)).unwrap();
        e.insert(&ev("a", -5, Kind::Motion)).unwrap();
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
    fn kinds_round_trip() {
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.as_str()), Some(k));
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        assert_eq!(Kind::parse("Motion"), None);
    }
}
