//! The LongPoll transport: the same connection, carried by plain HTTP requests.
//!
//! `GET` without a known token runs `connect` and answers `{"status":410,"token":T}` (a new
//! session); `GET` with a token waits up to the window for messages (`200` with them, or `204`);
//! `POST` with a token carries client frames, one per line with `application/x-ndjson`. Every
//! answer is HTTP 200 with the logical status in the JSON body, as phoenix.js expects. A session
//! nobody polls for 1.5 windows ends, and its channels with it.
//!
//! Session tokens are random and unguessable; sessions live on the node that created them (put
//! LongPoll clients on sticky sessions behind a load balancer).

use std::collections::VecDeque;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_MAX_AGE, CACHE_CONTROL, CONTENT_TYPE,
};
use http::{HeaderMap, HeaderValue};
use parking_lot::Mutex;
use pubsub::Closed;
use rustc_hash::FxHashMap;
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

use crate::codec::FrameKind;
use crate::server::connection::{Connection, Control};
use crate::server::context::ConnEvent;
use crate::server::transport::Mount;
use crate::server::transport::handshake::{self, Refused};

/// The most frames one POST may carry, as in Phoenix.
const MAX_BATCH: usize = 100;
/// The largest POST body accepted.
const MAX_BODY: usize = 10 * 1024 * 1024;

struct Session {
    inbound: mpsc::Sender<(FrameKind, Bytes)>,
    outbox: Mutex<VecDeque<String>>,
    ready: Notify,
    last_poll: Mutex<Instant>,
}

/// The open LongPoll sessions of one socket.
#[derive(Default)]
pub(crate) struct Sessions {
    by_token: Mutex<FxHashMap<String, Arc<Session>>>,
}

impl Sessions {
    fn get(&self, token: &str) -> Option<Arc<Session>> {
        self.by_token.lock().get(token).cloned()
    }
}

fn answer(body: Value) -> Response {
    let mut response = Json(body).into_response();
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    response
}

fn token_of(params: &crate::server::Params, headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-phoenix-longpoll-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| params.get("token").cloned())
}

fn new_token() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 24]>())
}

pub(crate) async fn preflight() -> Response {
    let mut response = answer(json!({}));
    let headers = response.headers_mut();
    headers.insert(
        ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("get, post, options"),
    );
    headers.insert(
        ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("content-type, x-phoenix-authtoken, x-phoenix-longpoll-token"),
    );
    headers.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("3600"));
    response
}

pub(crate) async fn poll(State(mount): State<Arc<Mount>>, request: Request) -> Response {
    let (parts, _body) = request.into_parts();
    let params = handshake::query_params(parts.uri.query());
    if let Some(session) =
        token_of(&params, &parts.headers).and_then(|t| mount.sessions.get(&t).map(|s| (t, s)))
    {
        let (token, session) = session;
        return wait_for_messages(&mount, token, session).await;
    }
    let auth_token = parts
        .headers
        .get("x-phoenix-authtoken")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let accepted = match handshake::accept(&mount, &parts, &params, auth_token).await {
        Ok(accepted) => accepted,
        Err(Refused::Forbidden) => return answer(json!({"status": 403})),
        Err(Refused::Draining) => return answer(json!({"status": 503})),
    };
    let (connection, inbox) = Connection::new(
        mount.endpoint.clone(),
        mount.socket.clone(),
        accepted.serializer,
        accepted.assigns,
    );
    let (inbound, rx) = mpsc::channel(MAX_BATCH);
    let session = Arc::new(Session {
        inbound,
        outbox: Mutex::new(VecDeque::new()),
        ready: Notify::new(),
        last_poll: Mutex::new(Instant::now()),
    });
    let token = new_token();
    mount
        .sessions
        .by_token
        .lock()
        .insert(token.clone(), session.clone());
    tokio::spawn(run(
        mount.clone(),
        token.clone(),
        session,
        connection,
        inbox,
        rx,
    ));
    answer(json!({"status": 410, "token": token, "messages": []}))
}

async fn wait_for_messages(mount: &Mount, token: String, session: Arc<Session>) -> Response {
    *session.last_poll.lock() = Instant::now();
    let deadline = Instant::now() + mount.endpoint.config().longpoll_window;
    loop {
        let ready = session.ready.notified();
        let messages: Vec<String> = session.outbox.lock().drain(..).collect();
        if !messages.is_empty() {
            *session.last_poll.lock() = Instant::now();
            return answer(json!({"status": 200, "token": token, "messages": messages}));
        }
        if tokio::time::timeout_at(deadline, ready).await.is_err() {
            *session.last_poll.lock() = Instant::now();
            return answer(json!({"status": 204, "token": token, "messages": []}));
        }
        if mount.sessions.get(&token).is_none() {
            return answer(json!({"status": 410, "token": token, "messages": []}));
        }
    }
}

pub(crate) async fn publish(State(mount): State<Arc<Mount>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let params = handshake::query_params(parts.uri.query());
    let Some(session) = token_of(&params, &parts.headers).and_then(|t| mount.sessions.get(&t))
    else {
        return answer(json!({"status": 410}));
    };
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY).await else {
        return answer(json!({"status": 413}));
    };
    let ndjson = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-ndjson"));
    let frames: Vec<(FrameKind, Bytes)> = if ndjson {
        body.split(|b| *b == b'\n')
            .filter(|line| !line.is_empty())
            .take(MAX_BATCH)
            .filter_map(|line| {
                if line.first() == Some(&b'[') {
                    Some((FrameKind::Text, body.slice_ref(line)))
                } else {
                    base64::engine::general_purpose::STANDARD
                        .decode(line)
                        .ok()
                        .map(|bytes| (FrameKind::Binary, Bytes::from(bytes)))
                }
            })
            .collect()
    } else {
        vec![(FrameKind::Text, body)]
    };
    let window = mount.endpoint.config().longpoll_window;
    for frame in frames {
        match tokio::time::timeout(window, session.inbound.send(frame)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return answer(json!({"status": 410})),
            Err(_) => return answer(json!({"status": 408})),
        }
    }
    answer(json!({"status": 200}))
}

async fn next_event(rx: &mut Option<mpsc::UnboundedReceiver<ConnEvent>>) -> Option<ConnEvent> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn run(
    mount: Arc<Mount>,
    token: String,
    session: Arc<Session>,
    mut connection: Connection,
    mut inbox: pubsub::Inbox,
    mut inbound: mpsc::Receiver<(FrameKind, Bytes)>,
) {
    let window = mount.endpoint.config().longpoll_window;
    let expiry = window + window / 2;
    let mut check = tokio::time::interval(window / 2);
    let mut drain = mount.endpoint.drain_signal();
    loop {
        let control = tokio::select! {
            Some((kind, data)) = inbound.recv() => connection.handle_frame(kind, data).await,
            message = inbox.recv() => match message {
                Ok(message) => connection.handle_message(message).await,
                Err(Closed::Lagged) => Control::Close(crate::server::connection::CloseReason::LAGGED),
            },
            Some(event) = next_event(&mut connection.link.events_rx) => connection.handle_event(event).await,
            done = crate::server::connection::next_done(&mut connection.running) => connection.finished(done).await,
            _ = check.tick() => {
                if session.last_poll.lock().elapsed() > expiry {
                    tracing::debug!("longpoll session expired: nobody polled it");
                    break;
                }
                Control::Continue
            }
            () = drain.turn() => break,
        };
        let frames: Vec<String> = connection
            .take_output()
            .filter_map(|frame| frame.as_text().map(str::to_owned))
            .collect();
        if !frames.is_empty() {
            connection
                .link
                .endpoint
                .metrics()
                .messages_out(frames.len());
            session.outbox.lock().extend(frames);
            session.ready.notify_waiters();
        }
        if let Control::Close(_) = control {
            break;
        }
    }
    mount.sessions.by_token.lock().remove(&token);
    session.ready.notify_waiters();
    connection.close().await;
}
