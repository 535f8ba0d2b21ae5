//! Events from a camera's RTSP metadata track (`application/vnd.onvif.metadata`).
//!
//! Many Hikvision, Dahua and Axis cameras announce their analytics in a
//! metadata track beside the video: `tt:MetadataStream` XML documents whose
//! `tt:Event` elements hold the same `wsnt:NotificationMessage`s the
//! PullPoint subscription returns. Ingest reassembles the documents (and
//! drops any over its size cap); this task reads them with the one
//! notification parser ([`parse_notifications`], behind the same hostile-XML
//! limits) and records them in the camera's [`CameraEvents`], which the
//! PullPoint subscription feeds too, so an event both report is stored once.
//!
//! Owns: nothing but the reading. Must never: stop on a bad document (a
//! refused one is logged and skipped; recording never depends on it).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::{CameraEvents, Timing};
use crate::onvif::events::{parse_notifications, Notification};
use crate::onvif::xml;

/// A refusal with the same reason is logged again after this long (a
/// hostile or broken camera repeats itself many times a second).
const REPEAT_LOG_AFTER: Duration = Duration::from_secs(60);

/// Open events are marked seen at most this often from the track.
const SEEN_EVERY: Duration = Duration::from_secs(1);

/// Reads one camera's metadata documents until ingest stops sending them.
pub struct MetadataTask {
    /// The camera's event record, shared with its PullPoint subscription.
    pub events: Arc<CameraEvents>,
    /// Documents from the camera's ingest.
    pub documents: mpsc::Receiver<Bytes>,
}

impl MetadataTask {
    /// Runs until ingest drops its sender (the camera stopped).
    pub async fn run(mut self) {
        let lost_after = Timing::default().lost_after;
        let mut last_refusal: Option<(String, Instant)> = None;
        let mut seen_at: Option<Instant> = None;
        while let Some(doc) = self.documents.recv().await {
            let notifications = match read(&doc) {
                Ok(n) => n,
                Err(why) => {
                    let repeat = last_refusal
                        .as_ref()
                        .is_some_and(|(w, t)| *w == why && t.elapsed() < REPEAT_LOG_AFTER);
                    if repeat {
                        debug!(camera = %self.events.camera(), error = %why, "camera events: metadata document refused");
                    } else {
                        warn!(camera = %self.events.camera(), error = %why, bytes = doc.len(), "camera events: metadata document refused; nothing from it is recorded");
                        last_refusal = Some((why, Instant::now()));
                    }
                    continue;
                }
            };
            if let Err(e) = self.record(notifications, lost_after, &mut seen_at).await {
                warn!(camera = %self.events.camera(), error = %format!("{e:#}"), "camera events: storing metadata track events");
            }
        }
    }

    async fn record(
        &self,
        notifications: Vec<Notification>,
        lost_after: Duration,
        seen_at: &mut Option<Instant>,
    ) -> anyhow::Result<()> {
        let changed = !notifications.is_empty()
            && self
                .events
                .record(notifications, self.events.offset(), lost_after)?;
        // The track is alive: what it reported on is still on.
        if seen_at.is_none_or(|t| t.elapsed() >= SEEN_EVERY) {
            self.events.seen()?;
            *seen_at = Some(Instant::now());
        }
        if changed {
            self.events.flush().await?;
        }
        Ok(())
    }
}

/// The notifications of one document, or why it was refused.
fn read(doc: &[u8]) -> Result<Vec<Notification>, String> {
    let root = xml::parse(doc).map_err(|e| e.to_string())?;
    parse_notifications(&root).map_err(|e| e.to_string())
}
