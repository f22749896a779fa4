//! The WebSocket transport: one task per connection reading frames, pubsub messages and queued
//! events, and writing what the connection produced.

use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::SinkExt;
use http::StatusCode;
use pubsub::Closed;
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};

use crate::codec::{Frame, FrameKind};
use crate::server::connection::{CloseReason, Connection, Control};
use crate::server::context::ConnEvent;
use crate::server::metrics;
use crate::server::transport::Mount;
use crate::server::transport::handshake::{self, Accepted, Refused};

/// Small buffers: most frames are a few hundred bytes, and memory per idle connection matters more
/// than throughput of one connection.
const READ_BUFFER: usize = 4 * 1024;
const WRITE_BUFFER: usize = 4 * 1024;

pub(crate) async fn handle(State(mount): State<Arc<Mount>>, request: Request) -> Response {
    let (mut parts, _body) = request.into_parts();
    let params = handshake::query_params(parts.uri.query());
    let Accepted {
        serializer,
        assigns,
    } = match handshake::accept(&mount, &parts, &params, None).await {
        Ok(accepted) => accepted,
        Err(Refused::Forbidden) => return StatusCode::FORBIDDEN.into_response(),
        Err(Refused::Draining) => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
    };
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    let max = mount.endpoint.config().max_frame_size;
    upgrade
        .protocols(["phoenix"])
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| async move {
            let (connection, inbox) = Connection::new(
                mount.endpoint.clone(),
                mount.socket.clone(),
                serializer,
                assigns,
            );
            run(socket, connection, inbox, &mount).await;
        })
}

async fn next_event(rx: &mut Option<mpsc::UnboundedReceiver<ConnEvent>>) -> Option<ConnEvent> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

fn to_ws(frame: Frame) -> Option<WsMessage> {
    match frame.kind {
        FrameKind::Text => Utf8Bytes::try_from(frame.data).ok().map(WsMessage::Text),
        FrameKind::Binary => Some(WsMessage::Binary(frame.data)),
    }
}

/// Writes every produced frame; `Err` when the client stopped reading or went away.
async fn write_out(
    ws: &mut WebSocket,
    connection: &mut Connection,
    mount: &Mount,
) -> Result<(), ()> {
    if connection.link.out.is_empty() {
        return Ok(());
    }
    let limit = mount.endpoint.config().write_timeout;
    let frames: Vec<Frame> = connection.take_output().collect();
    metrics::messages_out(frames.len());
    for frame in frames {
        let Some(message) = to_ws(frame) else {
            tracing::error!("outbound text frame was not UTF-8; dropped");
            continue;
        };
        match timeout(limit, ws.feed(message)).await {
            Ok(Ok(())) => {}
            _ => return Err(()),
        }
    }
    match timeout(limit, ws.flush()).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

async fn run(
    mut ws: WebSocket,
    mut connection: Connection,
    mut inbox: pubsub::Inbox,
    mount: &Mount,
) {
    let config = mount.endpoint.config().clone();
    let idle = tokio::time::sleep(config.idle_timeout);
    tokio::pin!(idle);
    let mut drain = mount.endpoint.drain_signal();
    let closing = loop {
        let control = tokio::select! {
            frame = ws.recv() => match frame {
                Some(Ok(WsMessage::Text(text))) => {
                    idle.as_mut().reset(Instant::now() + config.idle_timeout);
                    connection.handle_frame(FrameKind::Text, Bytes::from(text)).await
                }
                Some(Ok(WsMessage::Binary(data))) => {
                    idle.as_mut().reset(Instant::now() + config.idle_timeout);
                    connection.handle_frame(FrameKind::Binary, data).await
                }
                Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => {
                    idle.as_mut().reset(Instant::now() + config.idle_timeout);
                    Control::Continue
                }
                Some(Ok(WsMessage::Close(_))) | None => break None,
                Some(Err(error)) => {
                    let text = error.to_string();
                    if text.contains("too long") || text.contains("Space limit") {
                        tracing::warn!(%error, "frame larger than max_frame_size; closing");
                        break Some(CloseReason { code: 1009, reason: "frame too large" });
                    }
                    tracing::debug!(%error, "websocket read failed");
                    break None;
                }
            },
            message = inbox.recv() => match message {
                Ok(message) => connection.handle_message(message).await,
                Err(Closed::Lagged) => {
                    tracing::warn!("client could not keep up with its messages; closing");
                    Control::Close(CloseReason::LAGGED)
                }
                Err(Closed::Dropped) => break None,
            },
            Some(event) = next_event(&mut connection.link.events_rx) => {
                connection.handle_event(event).await
            }
            () = &mut idle => Control::Close(CloseReason::IDLE),
            () = drain.turn() => Control::Close(CloseReason::DRAIN),
        };
        if write_out(&mut ws, &mut connection, mount).await.is_err() {
            tracing::debug!("client stopped reading or went away; closing");
            break None;
        }
        if let Control::Close(reason) = control {
            break Some(reason);
        }
    };
    connection.close().await;
    if let Some(reason) = closing {
        let frame = CloseFrame {
            code: reason.code,
            reason: Utf8Bytes::from_static(reason.reason),
        };
        let _ = timeout(config.write_timeout, ws.send(WsMessage::Close(Some(frame)))).await;
    }
}
