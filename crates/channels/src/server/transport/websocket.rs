//! The WebSocket transport: one task per connection reading frames, pubsub messages and queued
//! events, and writing what the connection produced.
//!
//! An idle connection costs what its task and buffers hold while it waits, so that is kept small
//! (`cargo bench -p phoenix-channels-server --bench idle_memory` measures it): the read buffer is sized for the
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
use tokio::time::{Instant, timeout, timeout_at};

use crate::codec::{Frame, FrameKind, Serializer};
use crate::server::assigns::Assigns;
use crate::server::connection::{self, CloseReason, Connection, Control};
use crate::server::context::ConnEvent;
use crate::server::log_limit::limited_warn;
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

/// What a read error means: a close code to send the client (RFC 6455 §7.4.1: 1009 too big,
/// 1007 a text frame that is not UTF-8, 1002 any other protocol violation), or the cause of a
/// socket that is already gone.
fn read_error(error: &axum::Error) -> Result<CloseReason, &'static str> {
    let text = error.to_string();
    if text.contains("too long") || text.contains("Space limit") {
        return Ok(CloseReason {
            code: 1009,
            reason: "frame too large",
        });
    }
    // A tab closed or a network lost ends the socket without a close frame.
    if text.contains("without closing handshake") || text.contains("IO error") {
        return Err("client went away");
    }
    if text.contains("UTF-8") || text.contains("utf-8") {
        return Ok(CloseReason {
            code: 1007,
            reason: "invalid UTF-8",
        });
    }
    if text.contains("protocol error") {
        return Ok(CloseReason {
            code: 1002,
            reason: "protocol error",
        });
    }
    Err("read failed")
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
    let count = connection.link.out.len();
    if count == 0 {
        return Ok(());
    }
    connection.link.endpoint.metrics().messages_out(count);
    // One deadline for the whole batch: the client has `limit` to take all of it.
    let deadline = Instant::now() + limit;
    for frame in connection.take_output() {
        let Some(message) = to_ws(frame) else {
            tracing::error!("outbound text frame was not UTF-8; dropped");
            continue;
        };
        match timeout_at(deadline, ws.feed(message)).await {
            Ok(Ok(())) => {}
            _ => return Err(()),
        }
    }
    match timeout_at(deadline, ws.flush()).await {
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
        // The same timer enforces the join deadline: a connection that joined nothing by then is
        // closed (it holds a descriptor and memory and serves no page).
        let join_deadline = heard_at + mount.endpoint.config().join_timeout;
        let idle = tokio::time::sleep_until(join_deadline.min(heard_at + idle_timeout));
        tokio::pin!(idle);
        // A new wait on the drain every turn costs a registration with the server-wide watch
        // per frame (~550 instructions); one kept across the loop would save it but stays in
        // the connection's future: +0.22 KiB per idle connection, measured, so it is not kept.
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
                    Some(Ok(WsMessage::Close(_))) => {
                        // The close frame is answered (tungstenite queued the echo of the client's
                        // code): a client's disconnect() ends cleanly, 1000 both ways.
                        let _ = timeout(write_timeout, ws.flush()).await;
                        break Err("client closed");
                    }
                    None => break Err("client went away"),
                    Some(Err(error)) => match read_error(&error) {
                        Ok(reason) => {
                            limited_warn!(%error, code = reason.code, "websocket protocol violation; closing");
                            break Ok(reason);
                        }
                        Err(cause) => {
                            tracing::debug!(%error, "websocket read failed");
                            break Err(cause);
                        }
                    },
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
                    let now = Instant::now();
                    let deadline = heard_at + idle_timeout;
                    if !connection.ever_joined() && join_deadline <= now {
                        Control::Close(CloseReason::NO_JOIN)
                    } else if deadline > now {
                        let next = if connection.ever_joined() {
                            deadline
                        } else {
                            deadline.min(join_deadline)
                        };
                        idle.as_mut().reset(next);
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
        mount.endpoint.metrics().closed(cause);
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
