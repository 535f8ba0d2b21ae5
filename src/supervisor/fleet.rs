//! The fleet: one [`Supervisor`] per configured camera, and the camera list
//! everyone else reads. A new list is applied camera by camera: only cameras
//! whose configuration changed are stopped and started again, so the others
//! keep recording without a gap.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use super::{Shared, Supervisor};
use crate::config::CameraConfig;

/// The cameras as configured now, in file order. Readers take a snapshot;
/// [`Fleet::apply`] replaces it whole.
#[derive(Debug, Default)]
pub struct CameraList {
    cameras: RwLock<Arc<Vec<CameraConfig>>>,
    /// Signalled (one stored permit) whenever the list is replaced.
    replaced: tokio::sync::Notify,
}

impl CameraList {
    /// A list holding `cameras`.
    pub fn new(cameras: Vec<CameraConfig>) -> Self {
        Self {
            cameras: RwLock::new(Arc::new(cameras)),
            replaced: Default::default(),
        }
    }

    /// Returns once the list has been replaced since the last call returned (or since it
    /// was made): for one watcher (the web server's descriptor budget).
    pub async fn replaced(&self) {
        self.replaced.notified().await
    }

    /// Every configured camera, in file order.
    pub fn all(&self) -> Arc<Vec<CameraConfig>> {
        self.cameras
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The camera `id`, if configured.
    pub fn get(&self, id: &str) -> Option<CameraConfig> {
        self.all().iter().find(|c| c.id == id).cloned()
    }

    fn set(&self, cameras: Vec<CameraConfig>) {
        *self.cameras.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(cameras);
        self.replaced.notify_one();
    }
}

/// What [`Fleet::apply`] did, camera ids in each.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Cameras started that did not run before.
    pub added: Vec<String>,
    /// Cameras restarted with a new configuration.
    pub changed: Vec<String>,
    /// Cameras stopped and gone from the list.
    pub removed: Vec<String>,
}

impl Applied {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }
}

/// Every camera's supervisor.
pub struct Fleet {
    shared: Shared,
    shutdown: CancellationToken,
    list: Arc<CameraList>,
    /// Held across a whole [`Fleet::apply`], so two changes never interleave.
    running: tokio::sync::Mutex<BTreeMap<String, Supervisor>>,
}

impl Fleet {
    /// An empty fleet publishing its cameras to `list`; supervisors stop with `shutdown`.
    pub fn new(shared: Shared, list: Arc<CameraList>, shutdown: CancellationToken) -> Self {
        Fleet {
            shared,
            shutdown,
            list,
            running: Default::default(),
        }
    }

    /// The RTSP client the cameras use (also for connection tests).
    pub fn opener(&self) -> Arc<dyn crate::ingest::open::Opener> {
        self.shared.opener.clone()
    }

    /// The camera list this fleet publishes.
    pub fn list(&self) -> &Arc<CameraList> {
        &self.list
    }

    /// Makes the running cameras match `cameras`: starts new ones, restarts
    /// changed ones, stops removed ones (their footage stays on disk until
    /// retention). A camera that fails to start is logged and left out; the
    /// others are unaffected.
    pub async fn apply(&self, cameras: Vec<CameraConfig>) -> Applied {
        let mut running = self.running.lock().await;
        let mut out = Applied::default();
        let wanted: BTreeMap<&str, &CameraConfig> =
            cameras.iter().map(|c| (c.id.as_str(), c)).collect();
        let gone: Vec<String> = running
            .keys()
            .filter(|id| !wanted.contains_key(id.as_str()))
            .cloned()
            .collect();
        for id in gone {
            if let Some(sup) = running.remove(&id) {
                sup.stop().await;
            }
            self.shared.status.remove(&id);
            self.shared.live.remove(&id);
            self.shared.live.remove(&crate::live::sub_stream_key(&id));
            info!(camera = %id, "camera removed (its recordings stay until retention deletes them)");
            out.removed.push(id);
        }
        // The list changes before cameras start, so a new camera's status is
        // never shown for a camera the API does not know.
        self.list.set(cameras.clone());
        for cam in cameras {
            match running.get(&cam.id) {
                Some(sup) if sup.camera() == &cam => continue,
                Some(_) => {
                    let sup = running.remove(&cam.id).expect("present");
                    sup.stop().await;
                    if cam.sub_url.is_none() {
                        self.shared
                            .live
                            .remove(&crate::live::sub_stream_key(&cam.id));
                    }
                    out.changed.push(cam.id.clone());
                }
                None => out.added.push(cam.id.clone()),
            }
            let id = cam.id.clone();
            match Supervisor::start(&self.shared, cam, &self.shutdown) {
                Ok(sup) => {
                    running.insert(id, sup);
                }
                Err(e) => error!(camera = %id, error = %format!("{e:#}"), "starting camera"),
            }
        }
        out
    }

    /// After the server's shutdown was cancelled: waits until every camera
    /// has stopped and every recorder has indexed its last segment.
    pub async fn join(&self) {
        let mut running = self.running.lock().await;
        for sup in running.values_mut() {
            sup.join().await;
        }
        running.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The web server's budget follows the list through `replaced`: a replacement made
    /// while nobody waits is not lost.
    #[tokio::test]
    async fn a_replaced_list_is_noticed_even_when_nobody_waits() {
        let list = CameraList::new(Vec::new());
        list.set(Vec::new());
        tokio::time::timeout(std::time::Duration::from_secs(10), list.replaced())
            .await
            .expect("the replacement made before waiting was lost");
        // Nothing new: nothing to notice.
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(100), list.replaced())
                .await
                .is_err()
        );
    }
}
