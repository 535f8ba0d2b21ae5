//! Events from a camera that refuses PullPoint subscriptions: its property
//! topics (from `GetEventProperties`) are asked for their current message
//! (`GetCurrentMessage`) every [`Timing::poll_every`], and a state that
//! changed between two polls becomes the start or end of an event, as a
//! subscription's `Changed` message would. The first round plays the part
//! of a subscription's initial states, so events left open are reconciled
//! the same way.
//!
//! Polling sees states only (an instant event such as a line crossing has no
//! current state worth asking for), and a state that goes on and off between
//! two polls is missed: that is the price of a camera without PullPoint.
//! It needs no connection from the camera to us, unlike WS-BaseNotification
//! `Subscribe`, which the NVR's isolation rules out.

use std::time::Duration;

use tracing::info;

use super::{classify, refused, Ended, EventTask};
use crate::onvif::events::PropertyOperation;
use crate::onvif::{OnvifClient, OnvifError};

impl EventTask {
    /// Polls the camera's states until shutdown (`Ok`) or a failure.
    /// `why` is the camera's refusal of `CreatePullPointSubscription`.
    pub(super) async fn poll(
        &self,
        client: &OnvifClient,
        why: &OnvifError,
        backoff: &mut Duration,
    ) -> Result<(), Ended> {
        let t = self.timing;
        let events = &self.events;
        let camera = events.camera();
        let mut topics = tokio::select! {
            _ = self.shutdown.cancelled() => return Ok(()),
            r = client.property_topics() => match r {
                Ok(t) => t,
                Err(e) if refused(&e) => return Err(Ended::Unpollable(e.to_string())),
                Err(e) => return Err(e.into()),
            },
        };
        if topics.is_empty() {
            return Err(Ended::Unpollable(
                "GetEventProperties lists no property topics".into(),
            ));
        }
        let every = t.poll_every.max(Duration::from_millis(100));
        info!(camera = %camera, refusal = %why, topics = topics.len(), every_s = every.as_secs_f32(), "camera events: the camera refuses PullPoint subscriptions; polling its event states instead");
        events.resubscribed();
        let mut first = true;
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return Ok(()),
                _ = tick.tick() => {}
            }
            let mut states = Vec::new();
            let mut usable = Vec::with_capacity(topics.len());
            for topic in topics.drain(..) {
                let current = tokio::select! {
                    _ = self.shutdown.cancelled() => return Ok(()),
                    r = client.current_message(&topic) => r,
                };
                match current {
                    Ok(Some(mut n)) => {
                        // Only states are polled; a value like processor
                        // load would be an event every poll.
                        if classify(&n.topic, &n.data).1.is_some() {
                            n.operation = if first {
                                PropertyOperation::Initialized
                            } else {
                                PropertyOperation::Changed
                            };
                            states.push(n);
                        }
                        usable.push(topic);
                    }
                    Ok(None) => usable.push(topic),
                    // A topic the camera will not answer for is dropped
                    // after the first round; later, a refusal is a failure.
                    Err(e) if first && refused(&e) => {
                        tracing::debug!(camera = %camera, topic = %topic.expression, error = %e, "camera events: topic not pollable");
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            topics = usable;
            if topics.is_empty() {
                return Err(Ended::Unpollable(
                    "it refuses GetCurrentMessage on every property topic".into(),
                ));
            }
            if first {
                self.say(format!("events by polling every {} s", secs(every)));
            }
            *backoff = t.min_backoff;
            let mut changed = !states.is_empty()
                && events
                    .record(states, client.clock_offset(), t.lost_after)
                    .map_err(Ended::Store)?;
            if first {
                first = false;
                changed |= events.settle().map_err(Ended::Store)?;
            }
            events.seen().map_err(Ended::Store)?;
            if changed {
                events.flush().await.map_err(Ended::Store)?;
            }
        }
    }
}

/// Seconds for people: whole when whole, else one decimal.
fn secs(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        d.as_secs().to_string()
    } else {
        format!("{:.1}", d.as_secs_f32())
    }
}
