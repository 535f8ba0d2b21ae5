//! Turning `onvif = { host, ... }` into RTSP URLs for ingest.
//!
//! Cameras change ports and paths after firmware updates, so the URL is
//! asked for at start and asked again after repeated RTSP failures rather
//! than written into the config once.

use super::auth::Credentials;
use super::client::{DeviceInfo, ErrorKind, OnvifClient, OnvifError, Profile};
use crate::config::{CameraConfig, OnvifCameraConfig};

/// RTSP sessions that must fail in a row before we ask the camera again.
pub const RESOLVE_AFTER_FAILURES: u32 = 3;

/// The camera's streams as ONVIF describes them.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedStreams {
    /// Main stream URI and its profile.
    pub main: (String, Profile),
    /// A lower-resolution stream for grids, when the camera has one.
    pub sub: Option<(String, Profile)>,
}

/// The credentials in an `onvif` table, if a username is set.
pub fn credentials(o: &OnvifCameraConfig) -> Option<Credentials> {
    o.username
        .as_ref()
        .filter(|u| !u.is_empty())
        .map(|u| Credentials {
            username: u.clone(),
            password: o.password.clone().unwrap_or_default(),
        })
}

/// Picks the main profile (the configured one, else the largest video
/// profile; ties go to the camera's first) and the sub profile (the smallest
/// other one).
pub fn choose_profiles<'a>(
    profiles: &'a [Profile],
    wanted: Option<&str>,
) -> Result<(&'a Profile, Option<&'a Profile>), String> {
    let main = match wanted {
        Some(w) => profiles.iter().find(|p| p.matches(w)).ok_or_else(|| {
            let offered: Vec<&str> = profiles.iter().map(|p| p.token.as_str()).collect();
            format!("profile {w:?} (camera offers {offered:?})")
        })?,
        None => {
            // Stable: the first of the largest.
            let best = profiles.iter().map(Profile::pixels).max().unwrap_or(0);
            profiles
                .iter()
                .find(|p| p.pixels() == best)
                .ok_or_else(|| "any media profile".to_owned())?
        }
    };
    let sub = profiles
        .iter()
        .filter(|p| p.token != main.token && p.pixels() < main.pixels())
        .min_by_key(|p| p.pixels());
    Ok((main, sub))
}

/// Connects to the camera and asks for its stream URIs.
pub async fn resolve(o: &OnvifCameraConfig) -> Result<ResolvedStreams, OnvifError> {
    let client = OnvifClient::connect(&o.host, o.port, credentials(o)).await?;
    let profiles = client.profiles().await?;
    let (main, sub) =
        choose_profiles(&profiles, o.profile.as_deref()).map_err(|what| OnvifError {
            host: client.host().to_owned(),
            action: "GetProfiles".into(),
            kind: ErrorKind::Missing(what),
        })?;
    let main_uri = fix_host(&client.stream_uri(&main.token).await?, &o.host);
    let sub = match sub {
        // A camera whose sub stream cannot be resolved still records its main stream.
        Some(p) => client
            .stream_uri(&p.token)
            .await
            .ok()
            .map(|u| (fix_host(&u, &o.host), p.clone())),
        None => None,
    };
    Ok(ResolvedStreams {
        main: (main_uri, main.clone()),
        sub,
    })
}

/// What a camera offers: for `cleannvr discover` and the admin probe API.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CameraSummary {
    /// `host:port` of the device service.
    pub host: String,
    /// `GetDeviceInformation`.
    pub device: DeviceInfo,
    /// Every profile with its URIs.
    pub profiles: Vec<ProfileSummary>,
}

/// One profile and what the camera said about its URIs.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ProfileSummary {
    /// The profile.
    #[serde(flatten)]
    pub profile: Profile,
    /// `GetStreamUri` (RTSP), when it answered.
    pub stream_uri: Option<String>,
    /// `GetSnapshotUri`, when it answered (many cameras do not).
    pub snapshot_uri: Option<String>,
    /// Why the stream URI is missing.
    pub error: Option<String>,
}

/// Asks a connected camera for its identity, profiles and URIs. Per-profile
/// failures are recorded in the summary; identity or profile-list failures
/// (such as wrong credentials) are errors.
pub async fn describe(client: &OnvifClient) -> Result<CameraSummary, OnvifError> {
    let device = client.device_information().await?;
    let host = client.device_host().to_owned();
    let mut profiles = Vec::new();
    for p in client.profiles().await? {
        let (stream_uri, error) = match client.stream_uri(&p.token).await {
            Ok(u) => (Some(fix_host(&u, &host)), None),
            Err(e) => (None, Some(e.kind.to_string())),
        };
        let snapshot_uri = client.snapshot_uri(&p.token).await.ok();
        profiles.push(ProfileSummary {
            profile: p,
            stream_uri,
            snapshot_uri,
            error,
        });
    }
    Ok(CameraSummary {
        host: client.host().to_owned(),
        device,
        profiles,
    })
}

/// Some firmware answers with `0.0.0.0`, `localhost` or no host at all in the
/// stream URI (it does not know its own address); use the one we reached it at.
pub fn fix_host(uri: &str, host: &str) -> String {
    let Ok(mut u) = url::Url::parse(uri) else {
        return uri.to_owned();
    };
    let bad = match u.host_str() {
        None | Some("") | Some("0.0.0.0") | Some("[::]") => true,
        Some(h) => {
            h.eq_ignore_ascii_case("localhost")
                && !host.eq_ignore_ascii_case("localhost")
                && host != "127.0.0.1"
        }
    };
    if bad && u.set_host(Some(host)).is_ok() {
        return u.to_string();
    }
    uri.to_owned()
}

/// Where an ingest task gets its RTSP URL: the configured one, or one asked
/// of the camera over ONVIF and kept until sessions keep failing.
pub struct StreamSource {
    camera: CameraConfig,
    resolved: Option<String>,
    failures: u32,
}

impl StreamSource {
    /// A source for this camera.
    pub fn new(camera: &CameraConfig) -> Self {
        Self {
            camera: camera.clone(),
            resolved: None,
            failures: 0,
        }
    }

    /// The URL to connect to now. An ONVIF camera is (re)asked when nothing
    /// is known yet or after [`RESOLVE_AFTER_FAILURES`] failed sessions; if
    /// asking fails but an older URL is known, the older one is tried.
    pub async fn url(&mut self) -> anyhow::Result<String> {
        let Some(o) = &self.camera.onvif else {
            return self
                .camera
                .url
                .clone()
                .ok_or_else(|| anyhow::anyhow!("camera {} has no url", self.camera.id));
        };
        // A configured URL wins; ONVIF is then only for discovery and audit.
        if let Some(u) = &self.camera.url {
            return Ok(u.clone());
        }
        if self.resolved.is_none() || self.failures >= RESOLVE_AFTER_FAILURES {
            match resolve(o).await {
                Ok(r) => {
                    let (uri, profile) = &r.main;
                    tracing::info!(
                        profile = %profile.token,
                        url = %crate::config::redact_url(uri),
                        "stream URI from ONVIF"
                    );
                    self.resolved = Some(uri.clone());
                    self.failures = 0;
                }
                Err(e) if self.resolved.is_some() && !e.is_not_authorized() => {
                    tracing::warn!(error = %e, "ONVIF re-resolve failed; keeping the previous stream URI");
                    self.failures = 0;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(self.resolved.clone().expect("set above"))
    }

    /// Records how a session went: `delivered` when it carried frames.
    pub fn session_ended(&mut self, delivered: bool) {
        if delivered {
            self.failures = 0;
        } else {
            self.failures += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(token: &str, w: u32, h: u32) -> Profile {
        Profile {
            token: token.into(),
            name: token.to_uppercase(),
            width: Some(w),
            height: Some(h),
            ..Default::default()
        }
    }

    #[test]
    fn chooses_largest_main_and_smallest_sub() {
        let ps = vec![
            p("sub", 640, 360),
            p("main", 1920, 1080),
            p("third", 1280, 720),
        ];
        let (m, s) = choose_profiles(&ps, None).unwrap();
        assert_eq!(
            (m.token.as_str(), s.unwrap().token.as_str()),
            ("main", "sub")
        );
        let (m, s) = choose_profiles(&ps, Some("THIRD")).unwrap();
        assert_eq!(
            (m.token.as_str(), s.unwrap().token.as_str()),
            ("third", "sub")
        );
        let err = choose_profiles(&ps, Some("nope")).unwrap_err();
        assert!(err.contains("\"main\""), "{err}");
        let (m, s) = choose_profiles(&ps[..1], None).unwrap();
        assert_eq!(m.token, "sub");
        assert!(s.is_none());
        assert!(choose_profiles(&[], None).is_err());
    }

    #[test]
    fn fixes_placeholder_hosts_only() {
        assert_eq!(
            fix_host("rtsp://0.0.0.0:554/s0", "10.0.0.5"),
            "rtsp://10.0.0.5:554/s0"
        );
        assert_eq!(
            fix_host("rtsp://localhost/s0", "10.0.0.5"),
            "rtsp://10.0.0.5/s0"
        );
        assert_eq!(
            fix_host("rtsp://192.168.1.9/s0", "10.0.0.5"),
            "rtsp://192.168.1.9/s0"
        );
        assert_eq!(fix_host("not a url", "h"), "not a url");
    }
}
