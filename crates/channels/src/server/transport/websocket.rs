//! The WebSocket transport: one task per connection reading frames, pubsub messages and queued
//! events, and writing what the connection produced.
//!
//! An idle connection costs what its task and buffers hold while it waits, so that is kept small
//! (`cargo bench -p channels --bench idle_memory` measures it): the read buffer is sized for the
//! small frames Phoenix clients send, and the work done only now and then — a client frame, a
//! queued event, closing — runs in a future boxed while it runs rather than reserved inline in
//! every waiting task. Broadcast deliveries, the hot path, stay inline.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::SinkExt;
use http::StatusCode;
use pubsub::Closed;
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};

use crate::codec::{Frame, FrameKind, Serializer};
use crate::server::connection::{self, CloseReason, Connection, Control};
use crate::server::context::ConnEvent;
use crate::server::metrics;
use crate::server::socket::Assigns;
use crate::server::transport::Mount;
use crate::server::transport::handshake::{self, Accepted, Refused};

/// Small buffers: most frames are a few hundred bytes, and memory per idle connection matters more
/// than throughput of one connection. The read buffer is allocated (and touched) for the whole life
/// of the connection; a larger frame still arrives whole (the buffer grows to the frame's length,
/// read at most this much per system call). The write buffer only fills while frames are written.
const READ_BUFFER: usize = 1024;
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
        .on_upgrade(move |ws| run(ws, mount, serializer, assigns))
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
    limit: Duration,
) -> Result<(), ()> {
    if connection.link.out.is_empty() {
        return Ok(());
    }
    let frames: Vec<Frame> = connection.take_output().collect();
    connection
        .link
        .endpoint
        .metrics()
        .messages_out(frames.len());
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

/// The connection's task. A plain function returning an `async move` block rather than an
/// `async fn`: the block uses its captured arguments in place, where an `async fn` would keep a
/// second copy of each for the connection's life (measured when this was written: the future is
/// 1,720 bytes as an `async fn`, 1,344 as below; the WebSocket alone is 368).
#[allow(clippy::manual_async_fn)]
fn run(
    mut ws: WebSocket,
    mount: Arc<Mount>,
    serializer: Serializer,
    assigns: Assigns,
) -> impl Future<Output = ()> + Send {
    async move {
        let (mut connection, mut inbox) = Connection::new(
            mount.endpoint.clone(),
            mount.socket.clone(),
            serializer,
            assigns,
        );
        let idle_timeout = mount.endpoint.config().idle_timeout;
        let write_timeout = mount.endpoint.config().write_timeout;
        // The idle timer is re-armed only when it fires, from the time the client was last
        // heard: moving it on every frame would touch the shared timer wheel on every heartbeat.
        let mut heard_at = Instant::now();
        let idle = tokio::time::sleep(idle_timeout);
        tokio::pin!(idle);
        let mut drain = mount.endpoint.drain_signal();
        let closing = loop {
            let control = tokio::select! {
                frame = ws.recv() => match frame {
                    Some(Ok(WsMessage::Text(text))) => {
                        heard_at = Instant::now();
                        Box::pin(connection.handle_frame(FrameKind::Text, Bytes::from(text))).await
                    }
                    Some(Ok(WsMessage::Binary(data))) => {
                        heard_at = Instant::now();
                        Box::pin(connection.handle_frame(FrameKind::Binary, data)).await
                    }
                    Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => {
                        heard_at = Instant::now();
                        Control::Continue
                    }
                    Some(Ok(WsMessage::Close(_))) | None => break Err("client closed"),
                    Some(Err(error)) => {
                        let text = error.to_string();
                        if text.contains("too long") || text.contains("Space limit") {
                            tracing::warn!(%error, "frame larger than max_frame_size; closing");
                            break Ok(CloseReason { code: 1009, reason: "frame too large" });
                        }
                        tracing::debug!(%error, "websocket read failed");
                        // A tab closed or a network lost ends the socket without a close frame.
                        if text.contains("without closing handshake") || text.contains("IO error") {
                            break Err("client went away");
                        }
                        break Err("read failed");
                    }
                },
                message = inbox.recv() => match message {
                    Ok(message) => connection.handle_message(message).await,
                    Err(Closed::Lagged) => {
                        tracing::warn!("client could not keep up with its messages; closing");
                        Control::Close(CloseReason::LAGGED)
                    }
                },
                Some(event) = next_event(&mut connection.link.events_rx) => {
                    Box::pin(connection.handle_event(event)).await
                }
                done = connection::next_done(&mut connection.running) => {
                    Box::pin(connection.finished(done)).await
                }
                () = &mut idle => {
                    let deadline = heard_at + idle_timeout;
                    if deadline > Instant::now() {
                        idle.as_mut().reset(deadline);
                        Control::Continue
                    } else {
                        Control::Close(CloseReason::IDLE)
                    }
                }
                () = drain.turn() => Control::Close(CloseReason::DRAIN),
            };
            if write_out(&mut ws, &mut connection, write_timeout)
                .await
                .is_err()
            {
                tracing::debug!("client stopped reading or went away; closing");
                break Err("write failed");
            }
            if let Control::Close(reason) = control {
                break Ok(reason);
            }
        };
        // Ok: the server closes, and says why; Err: the client left or its socket failed.
        let cause = match closing {
            Ok(reason) => reason.reason,
            Err(cause) => cause,
        };
        metrics::closed(cause);
        Box::pin(connection.close()).await;
        if let Ok(reason) = closing {
            let frame = CloseFrame {
                code: reason.code,
                reason: Utf8Bytes::from_static(reason.reason),
            };
            let _ = timeout(write_timeout, ws.send(WsMessage::Close(Some(frame)))).await;
        }
    }
}
