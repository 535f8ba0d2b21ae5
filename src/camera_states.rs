//! Keeps the history of each camera's state (online, offline, not recording,
//! disabled) from the live status board, so the playback timeline can show
//! when and why a camera was down instead of a bare "nothing recorded".
//!
//! A state counts once it has lasted [`SETTLE_NS`] (a reconnect of a few
//! seconds, or the connecting at start-up, is not an outage worth a mark);
//! it is then stored from when it began. It never changes what is recorded.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::error;

use crate::clock::NS_PER_SEC;
use crate::config::CameraConfig;
use crate::status::{CameraStatus, StreamState};
use crate::store::states::{Change, State};
use crate::web::App;

/// How often the status board is looked at.
const TICK: Duration = Duration::from_secs(2);
/// How long a state must last before it is recorded.
pub const SETTLE_NS: i64 = 10 * NS_PER_SEC;

/// The state `cam` is in by `s`, since when (if known) and why.
pub fn classify(cam: &CameraConfig, s: &CameraStatus) -> (State, Option<i64>, String) {
    if !cam.enabled || s.state == StreamState::Disabled {
        return (
            State::Disabled,
            None,
            "turned off in the configuration".into(),
        );
    }
    if s.state != StreamState::Streaming {
        // Everyone who sees the timeline reads this: plain words, as on the
        // tile, never the camera's own error text (addresses are for admins).
        let why = crate::status::why_not_streaming(s).to_owned();
        return (State::Offline, s.offline_since_ns, why);
    }
    if !cam.record {
        return (State::NotRecording, None, "recording is turned off".into());
    }
    if s.recorder_error.is_some() {
        let why = crate::status::recorder_words(s);
        return (
            State::NotRecording,
            None,
            format!("recording failed: {why}"),
        );
    }
    if let Some(since) = s.no_key_frame_since_ns {
        return (
            State::NotRecording,
            Some(since),
            crate::status::NO_KEY_FRAME_WORDS.into(),
        );
    }
    (State::Online, None, String::new())
}

/// The change to store for a camera now, if any. `pending` remembers since
/// when a state not yet stored has been seen; `last` is the stored one.
pub fn step(
    now_ns: i64,
    seen: (State, Option<i64>, String),
    pending: &mut Option<(State, i64)>,
    last: Option<State>,
) -> Option<Change> {
    let (state, since, reason) = seen;
    if last == Some(state) {
        *pending = None;
        return None;
    }
    let began = match *pending {
        Some((p, t)) if p == state => t,
        _ => since.unwrap_or(now_ns).min(now_ns),
    };
    *pending = Some((state, began));
    // Online is recorded at once when it follows an outage: the outage's end is
    // what the timeline needs. The first state of a camera never seen waits too.
    let settled = now_ns - began >= SETTLE_NS || (state == State::Online && last.is_some());
    if !settled {
        return None;
    }
    *pending = None;
    Some(Change {
        since_ns: began,
        state,
        reason,
    })
}

/// Runs until `shutdown`, storing each camera's state changes.
pub async fn run(app: Arc<App>, shutdown: CancellationToken) {
    let mut pending: HashMap<String, Option<(State, i64)>> = HashMap::new();
    let mut last: HashMap<String, Option<State>> = HashMap::new();
    loop {
        let status = app.status.snapshot();
        let now = app.clock.now_ns();
        let mut changes = Vec::new();
        for cam in app.cameras.all().iter() {
            let Some(s) = status.get(&cam.id) else {
                continue;
            };
            if !last.contains_key(&cam.id) {
                let a = app.clone();
                let id = cam.id.clone();
                let stored = tokio::task::spawn_blocking(move || a.store.states().last(&id))
                    .await
                    .ok()
                    .and_then(|r| r.ok())
                    .flatten();
                last.insert(cam.id.clone(), stored.map(|c| c.state));
            }
            let p = pending.entry(cam.id.clone()).or_default();
            if let Some(c) = step(now, classify(cam, s), p, last[&cam.id]) {
                last.insert(cam.id.clone(), Some(c.state));
                changes.push((cam.id.clone(), c));
            }
        }
        if !changes.is_empty() {
            let a = app.clone();
            let r = tokio::task::spawn_blocking(move || {
                for (cam, c) in &changes {
                    a.store.states().record(cam, c)?;
                }
                anyhow::Ok(())
            })
            .await;
            match r {
                Ok(Ok(())) => {}
                Ok(Err(e)) => error!(error = %format!("{e:#}"), "storing camera state changes"),
                Err(e) => error!(error = %e, "camera state task"),
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = crate::clock::tick(TICK) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = NS_PER_SEC;

    #[test]
    fn short_outages_are_ignored_and_long_ones_stored_from_their_start() {
        let mut p = None;
        let off = |since| (State::Offline, Some(since), "refused".to_owned());
        let on = || (State::Online, None, String::new());
        // Online stored already; a 5 s reconnect leaves nothing.
        assert_eq!(
            step(100 * S, off(98 * S), &mut p, Some(State::Online)),
            None
        );
        assert_eq!(step(103 * S, on(), &mut p, Some(State::Online)), None);
        assert_eq!(p, None);
        // An outage from 200 s is stored once it has lasted 10 s, from 200 s.
        assert_eq!(
            step(202 * S, off(200 * S), &mut p, Some(State::Online)),
            None
        );
        let c = step(211 * S, off(200 * S), &mut p, Some(State::Online)).unwrap();
        assert_eq!(
            (c.since_ns, c.state, c.reason.as_str()),
            (200 * S, State::Offline, "refused")
        );
        // Back online: stored at once.
        let c = step(230 * S, on(), &mut p, Some(State::Offline)).unwrap();
        assert_eq!((c.since_ns, c.state), (230 * S, State::Online));
        // A camera never seen before: its first state waits to settle too.
        let mut q = None;
        assert_eq!(step(5 * S, on(), &mut q, None), None);
        assert_eq!(step(16 * S, on(), &mut q, None).unwrap().since_ns, 5 * S);
    }
}
