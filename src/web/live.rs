//! `GET /api/cameras/{id}/live`: a WebSocket carrying the camera's live
//! fragmented MP4 for Media Source Extensions.
//!
//! Protocol: a text message `{"type":"init","codec":"avc1.…","width":…,"height":…}`
//! announces each init segment, which follows as one binary message; every
//! later binary message is one `moof`+`mdat` holding one frame. A new text
//! message means the camera changed parameters: start a new SourceBuffer.

use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::Response;
use axum::Extension;
use serde_json::json;
use tracing::debug;

use super::error::ApiQuery;
use super::{ApiError, App, Caller};
use crate::audit::{Action, Event};
use crate::live::LiveMessage;

/// `?stream=main|sub`: the sub stream (config `sub_url`) suits grids.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveQuery {
    stream: Option<String>,
}

/// Upgrades to a WebSocket after recording the live view in the audit log.
pub async fn websocket(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Extension(c): Extension<Caller>,
    ApiQuery(q): ApiQuery<LiveQuery>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let Some(cam) = app.config.cameras.iter().find(|c| c.id == id) else {
        return Err(ApiError::not_found("no such camera"));
    };
    let key = match q.stream.as_deref() {
        None | Some("main") => id.clone(),
        Some("sub") if cam.sub_url.is_some() => crate::live::sub_stream_key(&id),
        Some("sub") => return Err(ApiError::not_found("this camera has no sub stream")),
        Some(_) => return Err(ApiError::bad_request("stream must be main or sub")),
    };
    app.record(Event {
        actor: c.user.name.clone(),
        action: Action::LiveView,
        target: id.clone(),
        client: c.client.clone(),
        detail: if key == id {
            String::new()
        } else {
            "sub stream".into()
        },
    })
    .await?;
    let viewer = app.live.stream(&key).subscribe();
    Ok(ws.on_upgrade(move |socket| pump(socket, viewer, id)))
}

async fn pump(mut socket: WebSocket, mut viewer: crate::live::LiveViewer, camera: String) {
    loop {
        let msg = tokio::select! {
            m = viewer.next() => m,
            // The client never needs to talk; a close or error ends the view.
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => continue,
            },
        };
        let Some(msg) = msg else { break };
        let sent = match msg {
            LiveMessage::Init {
                codec,
                width,
                height,
                data,
            } => {
                let head =
                    json!({"type": "init", "codec": codec, "width": width, "height": height});
                socket
                    .send(Message::Text(head.to_string().into()))
                    .await
                    .is_ok()
                    && socket.send(Message::Binary(data)).await.is_ok()
            }
            LiveMessage::Fragment(data) => socket.send(Message::Binary(data)).await.is_ok(),
        };
        if !sent {
            break;
        }
    }
    debug!(camera, skipped = viewer.skipped(), "live viewer left");
}
