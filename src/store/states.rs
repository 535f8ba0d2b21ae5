//! Camera state changes: when each camera went offline, stopped being
//! recorded or came back, with the reason, in their own sled tree
//! (`camera_states`) keyed by camera and time. The playback timeline draws
//! the spans, so an operator can tell "the camera was down" from "nothing was
//! recorded here".
//!
//! Rows are written only on a change (a few a day for a healthy camera), so
//! the tree stays small. This module only stores and reads them; what counts
//! as a change is decided in [`crate::camera_states`].

use std::ops::Bound;

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// What a camera was doing from a moment on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Streaming and recorded (or streaming, for a camera not meant to record).
    Online,
    /// Not streaming: unreachable, refused, or waiting to retry.
    Offline,
    /// Streaming but nothing recorded (no key frame, a disk error, recording off).
    NotRecording,
    /// Turned off in the configuration.
    Disabled,
}

impl State {
    /// The name used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Online => "online",
            State::Offline => "offline",
            State::NotRecording => "not_recording",
            State::Disabled => "disabled",
        }
    }
}

/// One change, as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// From when, ns since the epoch.
    pub since_ns: i64,
    /// The new state.
    pub state: State,
    /// Why, for an operator (no credentials); empty when online.
    #[serde(default)]
    pub reason: String,
}

/// A stretch of time a camera was not online.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Span {
    /// Start, ns (clipped to the asked range).
    pub start_ns: i64,
    /// End, ns (clipped); `None` while it lasts.
    pub end_ns: Option<i64>,
    /// What it was.
    pub state: State,
    /// Why.
    pub reason: String,
}

/// The camera states tree.
pub struct States {
    db: sled::Db,
    tree: sled::Tree,
}

impl States {
    /// Opens (creating if needed) the `camera_states` tree of `db`.
    pub fn open(db: &sled::Db) -> anyhow::Result<States> {
        Ok(States {
            db: db.clone(),
            tree: db
                .open_tree("camera_states")
                .context("opening the camera states tree")?,
        })
    }

    /// The latest change recorded for `camera`.
    pub fn last(&self, camera: &str) -> anyhow::Result<Option<Change>> {
        let r = (
            Bound::Included(key(camera, i64::MIN)),
            Bound::Included(key(camera, i64::MAX)),
        );
        self.tree
            .range(r)
            .next_back()
            .map(|i| decode(&i?.1))
            .transpose()
    }

    /// Records a change of `camera` and flushes it (changes are rare).
    pub fn record(&self, camera: &str, change: &Change) -> anyhow::Result<()> {
        self.tree
            .insert(key(camera, change.since_ns), serde_json::to_vec(change)?)
            .with_context(|| format!("camera {camera}: storing a state change"))?;
        self.db.flush().context("flushing a camera state change")?;
        Ok(())
    }

    /// The stretches of `[start_ns, end_ns)` in which `camera` was not online,
    /// oldest first (the state in force at `start_ns` included).
    pub fn spans(&self, camera: &str, start_ns: i64, end_ns: i64) -> anyhow::Result<Vec<Span>> {
        let before = (
            Bound::Included(key(camera, i64::MIN)),
            Bound::Excluded(key(camera, start_ns)),
        );
        let mut changes: Vec<Change> = Vec::new();
        if let Some(i) = self.tree.range(before).next_back() {
            changes.push(decode(&i?.1)?);
        }
        for i in self.tree.range(key(camera, start_ns)..key(camera, end_ns)) {
            changes.push(decode(&i?.1)?);
        }
        let mut out = Vec::new();
        for (n, c) in changes.iter().enumerate() {
            if c.state == State::Online {
                continue;
            }
            let end = changes.get(n + 1).map(|next| next.since_ns.min(end_ns));
            out.push(Span {
                start_ns: c.since_ns.max(start_ns),
                end_ns: end,
                state: c.state,
                reason: c.reason.clone(),
            });
        }
        Ok(out)
    }
}

fn decode(v: &[u8]) -> anyhow::Result<Change> {
    serde_json::from_slice(v).context("corrupt camera state row")
}

/// Camera id, NUL, order-preserving time.
fn key(camera: &str, ns: i64) -> Vec<u8> {
    let mut k = Vec::with_capacity(camera.len() + 9);
    k.extend_from_slice(camera.as_bytes());
    k.push(0);
    k.extend_from_slice(&((ns as u64) ^ (1 << 63)).to_be_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch(since_ns: i64, state: State, reason: &str) -> Change {
        Change {
            since_ns,
            state,
            reason: reason.into(),
        }
    }

    #[test]
    fn spans_clip_to_the_range_and_include_the_state_in_force_at_its_start() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let s = States::open(&db).unwrap();
        s.record("a", &ch(10, State::Offline, "refused")).unwrap();
        s.record("a", &ch(20, State::Online, "")).unwrap();
        s.record("a", &ch(30, State::NotRecording, "no key frame"))
            .unwrap();
        s.record("ab", &ch(15, State::Offline, "other camera"))
            .unwrap();
        let got = s.spans("a", 15, 100).unwrap();
        assert_eq!(
            got,
            [
                Span {
                    start_ns: 15,
                    end_ns: Some(20),
                    state: State::Offline,
                    reason: "refused".into()
                },
                Span {
                    start_ns: 30,
                    end_ns: None,
                    state: State::NotRecording,
                    reason: "no key frame".into()
                },
            ]
        );
        assert_eq!(s.spans("a", 21, 29).unwrap(), []);
        assert_eq!(s.spans("b", 0, 100).unwrap(), []);
        assert_eq!(s.last("a").unwrap().unwrap().state, State::NotRecording);
        assert_eq!(s.last("b").unwrap(), None);
    }
}
