//! `GET /api/cameras/{id}/live`: a WebSocket carrying the camera's live
//! fragmented MP4 for Media Source Extensions.
//!
//! Protocol: a text message `{"type":"init","codec":"avc1.…","audio":…,"width":…,"height":…}`
//! announces each init segment, which follows as one binary message; every
//! later binary message is one `moof`+`mdat` holding one frame. A camera with sound
//! the browser can play has a second track: `codec` then names both
//! (`avc1.…,mp4a.40.2`, as `addSourceBuffer` wants it), `audio` the sound's codec
//! (`null` without), and the fragments carry the sound with the pictures. A new init
//! message means the camera changed parameters: start a new SourceBuffer.
//! Before each key frame a text message `{"type":"clock","t":SECONDS,"wall_ms":MS}`
//! says when the frame at decode time `t` arrived, for the tile's date and time.
//!
//! `?codec=h264` serves H.265 cameras through the shared live transcoder
//! ([`crate::transcode::live`]) and H.264 ones untouched. With no transcode slot
//! free it is refused like the recorded transcode (503 + `Retry-After`), or, if the
//! camera's codec only shows once the socket is open, closed with 1013 (try again later).

use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::Response;
use axum::Extension;
use serde_json::json;
use tracing::debug;

use super::error::ApiQuery;
use super::{ApiError, App, Caller};
use crate::audit::{Action, Event};
use crate::live::{LiveMessage, LiveViewer};
use crate::transcode::live::{Busy, H264Viewer};

/// `?stream=main|sub`: the sub stream (config `sub_url`) suits grids.
/// `?codec=h264`: H.264 even from an H.265 camera (transcoded live).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveQuery {
    stream: Option<String>,
    codec: Option<String>,
}

/// What a socket relays: the camera's feed, or H.264 whatever the camera sends.
enum Feed {
    Camera(LiveViewer),
    H264(H264Viewer),
}

impl Feed {
    async fn next(&mut self) -> Result<Option<LiveMessage>, Busy> {
        match self {
            Feed::Camera(v) => Ok(v.next().await),
            Feed::H264(v) => v.next().await,
        }
    }

    fn skipped(&self) -> u64 {
        match self {
            Feed::Camera(v) => v.skipped(),
            Feed::H264(v) => v.skipped(),
        }
    }
}

/// Upgrades to a WebSocket after recording the live view in the audit log.
pub async fn websocket(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Extension(c): Extension<Caller>,
    ApiQuery(q): ApiQuery<LiveQuery>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let Some(cam) = app.cameras.get(&id) else {
        return Err(ApiError::not_found("no such camera"));
    };
    let key = match q.stream.as_deref() {
        None | Some("main") => id.clone(),
        Some("sub") if cam.sub_url.is_some() => crate::live::sub_stream_key(&id),
        Some("sub") => return Err(ApiError::not_found("this camera has no sub stream")),
        Some(_) => return Err(ApiError::invalid_argument("stream must be main or sub")),
    };
    let h264 = match q.codec.as_deref() {
        None => false,
        Some("h264") => true,
        Some(_) => return Err(ApiError::invalid_argument("codec must be h264")),
    };
    let stream = app.live.stream(&key);
    // Before the audit record: a refused view is not a view.
    let viewer = if h264 {
        // Every transcode slot taken: 503 with Retry-After (`From<Busy>`).
        Feed::H264(H264Viewer::new(
            stream,
            app.live_transcoders.clone(),
            crate::transcode::limiter().clone(),
            &key,
        )?)
    } else {
        Feed::Camera(stream.subscribe())
    };
    let mut detail = Vec::new();
    if key != id {
        detail.push("sub stream");
    }
    if h264 {
        detail.push("codec=h264");
    }
    app.record(Event {
        actor: c.user.name.clone(),
        role: Some(c.user.role.as_str().into()),
        action: Action::LiveView,
        target: id.clone(),
        client: c.client.clone(),
        detail: detail.join(", "),
    })
    .await?;
    Ok(ws.on_upgrade(move |socket| pump(socket, viewer, id, app, c)))
}

/// Close code for a view whose session ended (logout, user removed or
/// changed): 1008, policy violation. The UI then checks its session.
const SESSION_ENDED: u16 = 1008;

async fn pump(mut socket: WebSocket, mut viewer: Feed, camera: String, app: Arc<App>, c: Caller) {
    // On the server's tick grid: all viewers' checks wake the runtime once.
    let mut check = crate::clock::interval(super::revocation::CHECK_EVERY);
    loop {
        let msg = tokio::select! {
            m = viewer.next() => m,
            _ = check.tick() => {
                if c.still_valid(&app) {
                    continue;
                }
                debug!(camera, user = %c.user.name, "session ended; closing live view");
                let close = CloseFrame {
                    code: SESSION_ENDED,
                    reason: "session ended".into(),
                };
                let _ = tokio::time::timeout(
                    std::time::Duration::from_secs(1),
                    socket.send(Message::Close(Some(close))),
                )
                .await;
                break;
            }
            // The client never needs to talk; a close or error ends the view.
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => continue,
            },
        };
        let msg = match msg {
            Ok(Some(m)) => m,
            Ok(None) => break,
            Err(Busy) => {
                // 1013 "Try Again Later": the socket is open, so no 503 is possible now.
                let close = CloseFrame {
                    code: 1013,
                    reason: Busy.to_string().into(),
                };
                let _ = socket.send(Message::Close(Some(close))).await;
                break;
            }
        };
        let sent = match msg {
            LiveMessage::Init {
                codec,
                audio,
                width,
                height,
                data,
            } => {
                let head = json!({
                    "type": "init", "codec": codec, "audio": audio,
                    "width": width, "height": height,
                });
                socket
                    .send(Message::Text(head.to_string().into()))
                    .await
                    .is_ok()
                    && socket.send(Message::Binary(data)).await.is_ok()
            }
            LiveMessage::Fragment(data) => socket.send(Message::Binary(data)).await.is_ok(),
            LiveMessage::Clock { dts, wall_ms } => {
                let head = json!({"type": "clock", "t": dts as f64 / 90_000.0, "wall_ms": wall_ms});
                socket
                    .send(Message::Text(head.to_string().into()))
                    .await
                    .is_ok()
            }
        };
        if !sent {
            break;
        }
    }
    debug!(camera, skipped = viewer.skipped(), "live viewer left");
}
