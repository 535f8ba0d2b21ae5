//! PTZ control: operators steer ONVIF cameras, with a dead-man stop.
//!
//! A browser holds a direction by repeating `move` every few hundred
//! milliseconds; if the commands stop coming (a closed tab, a dropped
//! network) the camera is stopped [`AUTO_STOP`] after the last one, so no
//! camera is left spinning. Each uninterrupted run of moves by one user is a
//! *move session*, audited once when it ends (who, camera, start, end, how
//! it ended); presets and home are audited one entry each.
//!
//! Owns: one ONVIF connection per PTZ camera (made on first use, dropped
//! when the camera stops answering) and the move sessions. Must never: move
//! a camera except on a user's command, or log credentials.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::audit::{Action, AuditLog, Event};
use crate::clock::Clock;
use crate::config::OnvifCameraConfig;
use crate::onvif::ptz::{Preset, PtzStatus};
use crate::onvif::resolve::{choose_profiles, credentials};
use crate::onvif::{OnvifClient, OnvifError};
use crate::supervisor::fleet::CameraList;

/// How long a camera keeps moving after the last `move` command.
pub const AUTO_STOP: Duration = Duration::from_millis(1000);

/// Why a PTZ command failed.
#[derive(Debug, thiserror::Error)]
pub enum PtzError {
    /// The camera has no `onvif = { ... }` table, or its ONVIF service
    /// offers no PTZ.
    #[error("camera {0} has no PTZ control")]
    NotPtz(String),
    /// The camera answered with an error or not at all.
    #[error("camera {camera}: {error}")]
    Camera {
        /// Which camera.
        camera: String,
        /// What the ONVIF call said (host, operation, kind; no credentials).
        error: Box<OnvifError>,
    },
}

/// Velocities, each -1..1 (negative: left, down, zoom out).
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
pub struct Velocity {
    /// Pan speed.
    #[serde(default)]
    pub pan: f64,
    /// Tilt speed.
    #[serde(default)]
    pub tilt: f64,
    /// Zoom speed.
    #[serde(default)]
    pub zoom: f64,
}

impl Velocity {
    /// Whether every component is a number within -1..1.
    pub fn is_valid(&self) -> bool {
        [self.pan, self.tilt, self.zoom]
            .iter()
            .all(|v| v.is_finite() && (-1.0..=1.0).contains(v))
    }
}

/// Who asked, for the audit log.
#[derive(Debug, Clone)]
pub struct Actor {
    /// User name.
    pub user: String,
    /// Their role (for the audit entry).
    pub role: Option<String>,
    /// Client address.
    pub client: String,
}

/// PTZ control for every camera configured with `onvif = { ... }`.
pub struct Ptz {
    /// The cameras as configured now (they change while the server runs).
    list: Arc<CameraList>,
    /// Connections and sessions, per camera id and its `onvif` table.
    cameras: Mutex<HashMap<String, Arc<CameraPtz>>>,
    audit: Arc<AuditLog>,
    clock: Arc<dyn Clock>,
}

struct CameraPtz {
    id: String,
    onvif: OnvifCameraConfig,
    conn: tokio::sync::Mutex<Option<Arc<Conn>>>,
    session: Mutex<Option<MoveSession>>,
}

struct Conn {
    client: OnvifClient,
    /// The media profile PTZ commands name (the recorded main profile).
    profile: String,
}

struct MoveSession {
    actor: Actor,
    started_ns: i64,
    /// Monotonic time after which the watchdog stops the camera.
    deadline: Duration,
    /// Tells a watchdog whether the session it watches is still this one.
    generation: u64,
}

impl Ptz {
    /// PTZ for the cameras in `list` that have an `onvif` table; sessions
    /// are audited to `audit`.
    pub fn new(list: Arc<CameraList>, audit: Arc<AuditLog>, clock: Arc<dyn Clock>) -> Ptz {
        Ptz {
            list,
            cameras: Default::default(),
            audit,
            clock,
        }
    }

    /// The camera's PTZ state, made afresh when its `onvif` table changed
    /// (a new address or password needs a new connection).
    fn camera(&self, id: &str) -> Result<Arc<CameraPtz>, PtzError> {
        let onvif = self
            .list
            .get(id)
            .and_then(|c| c.onvif)
            .ok_or_else(|| PtzError::NotPtz(id.to_owned()))?;
        let mut cameras = self.cameras.lock().expect("ptz cameras lock");
        if let Some(c) = cameras.get(id).filter(|c| c.onvif == onvif) {
            return Ok(c.clone());
        }
        let c = Arc::new(CameraPtz {
            id: id.to_owned(),
            onvif,
            conn: Default::default(),
            session: Default::default(),
        });
        cameras.insert(id.to_owned(), c.clone());
        Ok(c)
    }

    /// Moves `camera` at `v` until [`AUTO_STOP`] passes without another move,
    /// or [`Ptz::stop`].
    pub async fn start_move(
        self: &Arc<Self>,
        camera: &str,
        v: Velocity,
        actor: Actor,
    ) -> Result<(), PtzError> {
        let cam = self.camera(camera)?;
        let conn = cam.connect().await?;
        let timeout_ms = AUTO_STOP.as_millis() as u64;
        cam.result(
            conn.client
                .ptz_continuous_move(&conn.profile, v.pan, v.tilt, v.zoom, timeout_ms)
                .await,
        )
        .await?;
        let deadline = self.clock.monotonic() + AUTO_STOP;
        let (ended, watch) = {
            let mut s = cam.session.lock().expect("ptz session lock");
            match s.as_mut() {
                Some(cur) if cur.actor.user == actor.user => {
                    cur.deadline = deadline;
                    (None, None)
                }
                _ => {
                    // A new session (or another user taking over): the old one ends here.
                    let generation = s.as_ref().map_or(0, |c| c.generation + 1);
                    let old = s.replace(MoveSession {
                        actor,
                        started_ns: self.clock.now_ns(),
                        deadline,
                        generation,
                    });
                    (old, Some(generation))
                }
            }
        };
        if let Some(old) = ended {
            self.audit_session(&cam.id, old, "another user took over")
                .await;
        }
        if let Some(generation) = watch {
            let this = self.clone();
            tokio::spawn(async move { this.watchdog(cam, generation).await });
        }
        Ok(())
    }

    /// Stops `camera` now and ends its move session.
    pub async fn stop(&self, camera: &str, actor: Actor) -> Result<(), PtzError> {
        let cam = self.camera(camera)?;
        let conn = cam.connect().await?;
        let session = cam.session.lock().expect("ptz session lock").take();
        let result = cam.result(conn.client.ptz_stop(&conn.profile).await).await;
        if let Some(s) = session {
            let how = if s.actor.user == actor.user {
                "stopped".to_owned()
            } else {
                format!("stopped by {}", actor.user)
            };
            self.audit_session(camera, s, &how).await;
        }
        result
    }

    /// Where the camera points now.
    pub async fn status(&self, camera: &str) -> Result<PtzStatus, PtzError> {
        let cam = self.camera(camera)?;
        let conn = cam.connect().await?;
        cam.result(conn.client.ptz_status(&conn.profile).await)
            .await
    }

    /// The camera's presets.
    pub async fn presets(&self, camera: &str) -> Result<Vec<Preset>, PtzError> {
        let cam = self.camera(camera)?;
        let conn = cam.connect().await?;
        cam.result(conn.client.ptz_presets(&conn.profile).await)
            .await
    }

    /// Goes to a preset (audited).
    pub async fn goto_preset(
        &self,
        camera: &str,
        token: &str,
        actor: Actor,
    ) -> Result<(), PtzError> {
        let cam = self.camera(camera)?;
        let conn = cam.connect().await?;
        cam.result(conn.client.ptz_goto_preset(&conn.profile, token).await)
            .await?;
        self.audit_one(camera, actor, format!("go to preset {token:?}"))
            .await;
        Ok(())
    }

    /// Saves the current position as a preset named `name` (audited);
    /// returns its token.
    pub async fn save_preset(
        &self,
        camera: &str,
        name: &str,
        actor: Actor,
    ) -> Result<String, PtzError> {
        let cam = self.camera(camera)?;
        let conn = cam.connect().await?;
        let token = cam
            .result(conn.client.ptz_set_preset(&conn.profile, name).await)
            .await?;
        self.audit_one(camera, actor, format!("saved preset {name:?} as {token:?}"))
            .await;
        Ok(token)
    }

    /// Goes to the home position (audited).
    pub async fn home(&self, camera: &str, actor: Actor) -> Result<(), PtzError> {
        let cam = self.camera(camera)?;
        let conn = cam.connect().await?;
        cam.result(conn.client.ptz_goto_home(&conn.profile).await)
            .await?;
        self.audit_one(camera, actor, "go to home position".to_owned())
            .await;
        Ok(())
    }

    /// Stops the camera once its session's deadline passes with no newer move.
    async fn watchdog(self: Arc<Self>, cam: Arc<CameraPtz>, generation: u64) {
        loop {
            let deadline = {
                let s = cam.session.lock().expect("ptz session lock");
                match s.as_ref() {
                    Some(cur) if cur.generation == generation => cur.deadline,
                    // Stopped, or replaced by a newer session with its own watchdog.
                    _ => return,
                }
            };
            if self.clock.monotonic() < deadline {
                self.clock.sleep_until(deadline).await;
                continue;
            }
            let ended = {
                let mut s = cam.session.lock().expect("ptz session lock");
                match s.as_ref() {
                    Some(cur) if cur.generation == generation && cur.deadline <= deadline => {
                        s.take()
                    }
                    _ => None,
                }
            };
            let Some(ended) = ended else { continue };
            let how = match cam.connect().await {
                Ok(conn) => match conn.client.ptz_stop(&conn.profile).await {
                    Ok(()) => format!(
                        "stopped automatically {} ms after the last command",
                        AUTO_STOP.as_millis()
                    ),
                    Err(e) => {
                        tracing::warn!(camera = %cam.id, error = %e, "PTZ auto-stop failed; the camera's own move timeout applies");
                        cam.forget().await;
                        format!("auto-stop failed: {}", e.kind)
                    }
                },
                Err(e) => format!("auto-stop failed: {e}"),
            };
            self.audit_session(&cam.id, ended, &how).await;
            return;
        }
    }

    async fn audit_session(&self, camera: &str, s: MoveSession, how: &str) {
        let start = crate::clock::rfc3339(s.started_ns);
        let end = crate::clock::rfc3339(self.clock.now_ns());
        self.append(Event {
            actor: s.actor.user,
            role: s.actor.role,
            action: Action::Ptz,
            target: camera.to_owned(),
            client: s.actor.client,
            detail: format!("moved from {start} to {end}; {how}"),
        })
        .await;
    }

    async fn audit_one(&self, camera: &str, actor: Actor, detail: String) {
        self.append(Event {
            actor: actor.user,
            role: actor.role,
            action: Action::Ptz,
            target: camera.to_owned(),
            client: actor.client,
            detail,
        })
        .await;
    }

    /// Appends off the async threads (the audit log fsyncs). The command has
    /// already reached the camera, so a failed write is logged loudly.
    async fn append(&self, ev: Event) {
        let audit = self.audit.clone();
        let now = self.clock.now_ns();
        let camera = ev.target.clone();
        let r = tokio::task::spawn_blocking(move || audit.append(now, ev)).await;
        if !matches!(r, Ok(Ok(_))) {
            tracing::error!(camera = %camera, "could not write the audit entry for a PTZ command");
        }
    }
}

impl CameraPtz {
    /// The cached connection, or a new one (clock sync, services, profile).
    async fn connect(&self) -> Result<Arc<Conn>, PtzError> {
        let mut conn = self.conn.lock().await;
        if let Some(c) = conn.as_ref() {
            return Ok(c.clone());
        }
        let o = &self.onvif;
        let err = |error| PtzError::Camera {
            camera: self.id.clone(),
            error: Box::new(error),
        };
        let client = OnvifClient::connect(&o.host, o.port, credentials(o))
            .await
            .map_err(err)?;
        if !client.has_ptz() {
            return Err(PtzError::NotPtz(self.id.clone()));
        }
        let profiles = client.profiles().await.map_err(err)?;
        let profile = choose_profiles(&profiles, o.profile.as_deref())
            .map(|(main, _)| main.token.clone())
            .map_err(|what| {
                err(OnvifError {
                    host: client.host().to_owned(),
                    action: "GetProfiles".into(),
                    kind: crate::onvif::ErrorKind::Missing(what),
                })
            })?;
        let c = Arc::new(Conn { client, profile });
        *conn = Some(c.clone());
        Ok(c)
    }

    /// Drops the connection so the next command reconnects (a rebooted
    /// camera may have new nonces, clock or addresses).
    async fn forget(&self) {
        *self.conn.lock().await = None;
    }

    /// Maps a call's result, forgetting the connection when the camera did
    /// not answer.
    async fn result<T>(&self, r: Result<T, OnvifError>) -> Result<T, PtzError> {
        match r {
            Ok(v) => Ok(v),
            Err(error) => {
                if matches!(error.kind, crate::onvif::ErrorKind::Http(_)) {
                    self.forget().await;
                }
                Err(PtzError::Camera {
                    camera: self.id.clone(),
                    error: Box::new(error),
                })
            }
        }
    }
}

impl From<PtzError> for crate::error::Error {
    fn from(e: PtzError) -> Self {
        use crate::error::Error;
        match e {
            PtzError::NotPtz(_) => Error::not_found(e.to_string()),
            // The kind only: the camera's address stays out of replies.
            PtzError::Camera { camera, error } => Error::upstream(format!(
                "camera {camera} did not carry out {}: {}",
                error.action, error.kind
            )),
        }
    }
}
