//! Per-camera supervisor: owns one camera's ingest tasks (main stream and, if
//! configured, the sub stream), its recorder thread, its live streams and,
//! for ONVIF cameras, its event subscription ([`crate::events`]), so
//! a camera can be started, reconfigured and stopped without touching any
//! other camera. [`fleet::Fleet`] keeps one supervisor per configured camera.
//!
//! Stopping follows the shutdown order of the whole server, for one camera:
//! ingest first, so the recorder sees its queue close, finishes and indexes
//! its last segment, and only then is the supervisor gone. Never reads the
//! config file or talks to the web layer.

pub mod fleet;

use std::sync::Arc;

use anyhow::Context;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::clock::Clock;
use crate::config::CameraConfig;
use crate::frame::IngestEvent;
use crate::handoff::FrameSender;
use crate::ingest::open::Opener;
use crate::ingest::paced::IngestThreads;
use crate::ingest::session::IngestTask;
use crate::live::LiveHub;
use crate::recorder::{self, RecorderSettings};
use crate::status::{update, StatusBoard, StreamState};
use crate::store::Store;

/// Frames queued between a camera's ingest and its recorder: about 10 s of
/// 25 fps video plus audio, enough to ride out an fsync on a busy disk.
pub const RECORDER_QUEUE: usize = 512;

/// What every supervisor shares: where frames, status and segments go.
#[derive(Clone)]
pub struct Shared {
    /// The segment index.
    pub store: Arc<Store>,
    /// Per-camera status, written by ingest and the recorder.
    pub status: Arc<StatusBoard>,
    /// Live feeds, read by the web server's viewers.
    pub live: Arc<LiveHub>,
    /// Wall and monotonic time.
    pub clock: Arc<dyn Clock>,
    /// One RTSP client for every camera; each ingest task drives its own sessions.
    pub opener: Arc<dyn Opener>,
    /// Recorders wake retention when the disk fills.
    pub retention: Arc<Notify>,
    /// Target segment length (`[storage] segment_seconds`).
    pub segment_seconds: u32,
    /// The threads every camera's ingest runs on ([`crate::ingest::paced`]).
    pub ingest: Arc<IngestThreads>,
}

/// One running camera.
pub struct Supervisor {
    camera: CameraConfig,
    /// Cancelled to stop this camera only (a child of the server's shutdown).
    stop: CancellationToken,
    /// Ingest tasks and the drains of streams nobody records.
    tasks: Vec<JoinHandle<()>>,
    /// The recorder thread, when the camera records.
    recorder: Option<std::thread::JoinHandle<()>>,
}

impl Supervisor {
    /// Starts `camera`: a disabled camera only shows as disabled; an enabled
    /// one gets its ingest, its recorder (unless `record = false`) and its
    /// live streams. Stops with `shutdown` or [`Supervisor::stop`].
    pub fn start(
        shared: &Shared,
        camera: CameraConfig,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Supervisor> {
        let mut sup = Supervisor {
            stop: shutdown.child_token(),
            tasks: Vec::new(),
            recorder: None,
            camera,
        };
        let cam = &sup.camera;
        let cell = shared.status.camera(&cam.id);
        if !cam.enabled {
            update(&cell, |s| s.state = StreamState::Disabled);
            return Ok(sup);
        }
        update(&cell, |s| s.state = StreamState::Connecting);
        info!(camera = %cam.id, url = %cam.redacted_url(), "camera configured");
        let (tx, rx) = mpsc::channel::<IngestEvent>(RECORDER_QUEUE);
        if cam.record {
            let settings = RecorderSettings {
                camera: cam.id.clone(),
                segment_seconds: shared.segment_seconds,
            };
            sup.recorder = Some(
                recorder::spawn(
                    settings,
                    rx,
                    shared.store.clone(),
                    cell.clone(),
                    shared.retention.clone(),
                )
                .with_context(|| format!("starting recorder for camera {}", cam.id))?,
            );
        } else {
            // Live-only camera: nothing consumes frames but the live hub.
            sup.tasks.push(tokio::spawn(drain(rx)));
        }
        // ONVIF cameras' events: a PullPoint subscription and, when the stream
        // has one, the metadata track of the main stream, both into one record.
        let events = cam.onvif.as_ref().map(|onvif| {
            let events = crate::events::CameraEvents::load(
                &cam.id,
                shared.store.clone(),
                shared.clock.clone(),
            );
            let task = crate::events::EventTask {
                onvif: onvif.clone(),
                events: events.clone(),
                shutdown: sup.stop.clone(),
                timing: crate::events::Timing::for_camera(onvif),
                status: cell.clone(),
            };
            sup.tasks.push(tokio::spawn(task.run()));
            events
        });
        let metadata = events.map(|events| {
            let (tx, documents) = mpsc::channel(crate::ingest::session::METADATA_QUEUE);
            let task = crate::events::metadata::MetadataTask { events, documents };
            sup.tasks.push(tokio::spawn(task.run()));
            tx
        });
        let mut ingest = Vec::new();
        if let Some(sub) = &cam.sub_url {
            // The sub stream only feeds live grids; it is never recorded.
            let key = crate::live::sub_stream_key(&cam.id);
            let mut sub_cam = cam.clone();
            sub_cam.id = key.clone();
            sub_cam.url = Some(sub.clone());
            let (tx, rx) = mpsc::channel::<IngestEvent>(RECORDER_QUEUE);
            sup.tasks.push(tokio::spawn(drain(rx)));
            ingest.push(sup.ingest_task(shared, sub_cam, FrameSender::new(tx, None), &key));
        }
        let wake = sup.recorder.as_ref().map(|r| r.thread().clone());
        let mut main = sup.ingest_task(shared, cam.clone(), FrameSender::new(tx, wake), &cam.id);
        main.metadata = metadata;
        ingest.push(main);
        for task in ingest {
            sup.tasks.push(shared.ingest.spawn(task.run()));
        }
        Ok(sup)
    }

    fn ingest_task(
        &self,
        shared: &Shared,
        camera: CameraConfig,
        tx: FrameSender,
        key: &str,
    ) -> IngestTask {
        IngestTask {
            camera,
            tx,
            live: shared.live.stream(key),
            status: shared.status.camera(key),
            opener: shared.opener.clone(),
            clock: shared.clock.clone(),
            shutdown: self.stop.clone(),
            metadata: None,
        }
    }

    /// The configuration this supervisor runs.
    pub fn camera(&self) -> &CameraConfig {
        &self.camera
    }

    /// Stops ingest, then waits for the recorder to finish and index its
    /// last segment. Returns when nothing of this camera runs any more.
    pub async fn stop(mut self) {
        self.stop.cancel();
        self.join().await;
    }

    /// Waits for everything to end (after the token, or the server's shutdown, was cancelled).
    pub async fn join(&mut self) {
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
        if let Some(r) = self.recorder.take() {
            let _ = tokio::task::spawn_blocking(move || r.join()).await;
        }
    }
}

async fn drain(mut rx: mpsc::Receiver<IngestEvent>) {
    while rx.recv().await.is_some() {}
}
