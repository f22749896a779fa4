//! Testing channels the way `Phoenix.ChannelTest` does: in process, with no network, against the
//! real connection state machine.
//!
//! [`connect`] runs a socket's `connect` and drives a connection exactly as the WebSocket
//! transport does (the same code handles joins, pushes, replies, broadcasts, handles and timers),
//! only the bytes go through in-memory queues instead of a socket. The test plays the client:
//! it [joins](TestSocket::subscribe_and_join), [pushes](TestChannel::push), and asserts on what
//! the server sent back ([`assert_reply`](TestChannel::assert_reply),
//! [`refute_reply`](TestChannel::refute_reply),
//! [`assert_push`](TestChannel::assert_push)) and on what was broadcast to the topic
//! ([`assert_broadcast`](TestChannel::assert_broadcast)).
//!
//! Assertions wait for a matching message up to [`Timeouts::assert`] (5 s by default: generous,
//! since a passing test never waits for it) and panic with what did arrive otherwise; refutations
//! wait [`Timeouts::refute`] (100 ms, as in Phoenix) for a message that must not come. Like
//! ExUnit's `assert_receive`, an assertion takes the first matching message and leaves the others
//! for later assertions.
//!
//! What the kit leaves out, because it belongs to the transports and is tested there: the
//! origin check and `vsn` negotiation (the kit speaks V2 JSON), the idle and join timeouts (a
//! test sends no heartbeats), frame size limits and write back-pressure.
//!
//! For end-to-end tests through the real transports (a browser, phoenix.js, a WebSocket client),
//! [`TestServer`] serves an axum router on a free local port.
//!
//! ```
//! use std::sync::Arc;
//! use channels::codec::Payload;
//! use channels::server::{Channel, ConnectInfo, Context, Endpoint, EndpointConfig, Outcome, Params, Reply, Routes};
//! use channels::testing;
//! use serde_json::json;
//!
//! struct Room;
//!
//! #[async_trait::async_trait]
//! impl Channel for Room {
//!     async fn handle_in(&mut self, event: &str, payload: Payload, ctx: &mut Context<'_>) -> Outcome {
//!         match (event, payload) {
//!             ("ping", _) => Reply::ok_json(&json!({"pong": true})).into(),
//!             ("shout", Payload::Json(body)) => {
//!                 ctx.broadcast("shout", channels::server::to_object(&body));
//!                 Outcome::NoReply
//!             }
//!             _ => Outcome::NoReply,
//!         }
//!     }
//! }
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let endpoint = Endpoint::new(pubsub::PubSub::new("test"), EndpointConfig::default());
//! let socket = Arc::new(Routes::new().route("room:*", |_| Box::new(Room)));
//! let client = testing::connect(&endpoint, socket, &Params::new(), ConnectInfo::default())
//!     .await
//!     .expect("connect");
//! let (_reply, room) = client.subscribe_and_join("room:lobby", json!({})).await.expect("join");
//!
//! let ping = room.push("ping", json!({}));
//! assert_eq!(room.assert_reply(&ping, "ok").await, json!({"pong": true}));
//!
//! room.push("shout", json!({"body": "hi"}));
//! assert_eq!(room.assert_broadcast("shout").await, json!({"body": "hi"}));
//! assert_eq!(room.assert_push("shout").await, json!({"body": "hi"}));
//! room.refute_push("shout").await;
//!
//! let leave = room.leave();
//! room.assert_reply(&leave, "ok").await;
//! client.close().await;
//! # });
//! ```
//!
//! Why one file of about 670 lines: it is the kit's whole public surface (socket, channel,
//! assertions, the end-to-end server) and most of it is documentation with examples; a user reads
//! it as one page, as `Phoenix.ChannelTest`'s.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use pubsub::{Closed, Inbox};
use serde_json::Value;
use tokio::sync::{Mutex, Notify, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::codec::client::{self, Received};
use crate::codec::{Frame, Message, PHX_JOIN, PHX_LEAVE, Payload, Ref, Serializer};
use crate::server::connection::{self, CloseReason, Connection, Control};
use crate::server::context::ConnEvent;
use crate::server::endpoint;
use crate::server::{ConnectError, ConnectInfo, Endpoint, Params, Socket};

/// How long assertions wait for a message that should come, and refutations for one that should
/// not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// The longest an `assert_*` waits (default 5 s).
    pub assert: Duration,
    /// How long a `refute_*` waits (default 100 ms, Phoenix's `refute_push` default).
    pub refute: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            assert: Duration::from_secs(5),
            refute: Duration::from_millis(100),
        }
    }
}

/// Runs `socket`'s `connect` with `params` and `info` (as a transport would with the request's
/// query string and headers) and, when it accepts, starts a connection speaking the V2 protocol.
pub async fn connect(
    endpoint: &Endpoint,
    socket: Arc<dyn Socket>,
    params: &Params,
    info: ConnectInfo,
) -> Result<TestSocket, ConnectError> {
    let assigns = socket.connect(params, &info).await?;
    let (connection, inbox) = Connection::new(endpoint.clone(), socket, Serializer::V2, assigns);
    let (commands, commands_rx) = mpsc::unbounded_channel();
    let delivered = Arc::new(Delivered::default());
    let task = tokio::spawn(drive(connection, inbox, commands_rx, delivered.clone()));
    Ok(TestSocket {
        shared: Arc::new(Shared {
            commands,
            delivered,
            next_ref: AtomicU64::new(1),
        }),
        endpoint: endpoint.clone(),
        task: Some(task),
        timeouts: Timeouts::default(),
    })
}

enum Command {
    Frame(Frame),
    Close(oneshot::Sender<()>),
}

/// The client side of a connection: frames to send, and what the server sent, kept until an
/// assertion takes it.
struct Shared {
    commands: mpsc::UnboundedSender<Command>,
    delivered: Arc<Delivered>,
    next_ref: AtomicU64,
}

/// What the connection sent, shared by its driver (which adds frames) and the assertions (which
/// take them). Assertions never hold the lock while they wait, so that channels of one socket can
/// be asserted on concurrently.
#[derive(Default)]
struct Delivered {
    outbox: parking_lot::Mutex<Outbox>,
    arrived: Notify,
}

#[derive(Default)]
struct Outbox {
    /// Frames not decoded yet.
    frames: Vec<Frame>,
    /// Decoded messages no assertion took yet.
    pending: VecDeque<Received>,
    /// The connection ended: nothing more will come.
    closed: bool,
}

impl Delivered {
    fn send(&self, frames: impl Iterator<Item = Frame>) {
        let mut outbox = self.outbox.lock();
        let before = outbox.frames.len();
        outbox.frames.extend(frames);
        let any = outbox.frames.len() > before;
        drop(outbox);
        if any {
            self.arrived.notify_waiters();
        }
    }

    fn close(&self) {
        self.outbox.lock().closed = true;
        self.arrived.notify_waiters();
    }
}

impl Shared {
    fn send(&self, message: &Message) {
        match client::encode(Serializer::V2, message) {
            Ok(frame) => {
                // A connection that ended drops what the client sends, as a closed socket would.
                let _ = self.commands.send(Command::Frame(frame));
            }
            Err(error) => panic!("message could not be encoded: {error}"),
        }
    }

    fn next_ref(&self) -> String {
        self.next_ref.fetch_add(1, Ordering::Relaxed).to_string()
    }

    /// Takes the first received message `pick` accepts, waiting for more up to `wait`. On
    /// failure, returns a description of what is pending for the panic message.
    async fn take(
        &self,
        wait: Duration,
        mut pick: impl FnMut(&Received) -> bool,
    ) -> Result<Received, String> {
        let deadline = Instant::now() + wait;
        loop {
            let arrived = self.delivered.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            let closed = {
                let mut outbox = self.delivered.outbox.lock();
                let frames = std::mem::take(&mut outbox.frames);
                for frame in frames {
                    match client::decode(Serializer::V2, frame.kind, frame.data) {
                        Ok(received) => outbox.pending.push_back(received),
                        Err(error) => {
                            panic!("the server sent a frame the client cannot decode: {error}")
                        }
                    }
                }
                if let Some(at) = outbox.pending.iter().position(&mut pick)
                    && let Some(found) = outbox.pending.remove(at)
                {
                    return Ok(found);
                }
                if outbox.closed {
                    Some(format!(
                        "received (the connection is closed): {:#?}",
                        outbox.pending
                    ))
                } else {
                    None
                }
            };
            if let Some(seen) = closed {
                return Err(seen);
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                let outbox = self.delivered.outbox.lock();
                return Err(format!("received: {:#?}", outbox.pending));
            }
        }
    }
}

/// A connected client, as [`connect`] returns it. The connection lives until
/// [`close`](TestSocket::close) or until this value is dropped.
pub struct TestSocket {
    shared: Arc<Shared>,
    endpoint: Endpoint,
    task: Option<JoinHandle<()>>,
    timeouts: Timeouts,
}

impl TestSocket {
    /// Changes how long the assertions of channels joined from now on wait.
    pub fn set_timeouts(&mut self, timeouts: Timeouts) {
        self.timeouts = timeouts;
    }

    /// Joins `topic` with `params`: `Ok` with the channel and the join reply's response, `Err`
    /// with the error response when the channel refused.
    pub async fn join(&self, topic: &str, params: Value) -> Result<(Value, TestChannel), Value> {
        self.join_with(topic, params, None).await
    }

    /// Subscribes the test to `topic`, so that [`TestChannel::assert_broadcast`] sees what is
    /// broadcast to it, then joins it like [`join`](TestSocket::join).
    pub async fn subscribe_and_join(
        &self,
        topic: &str,
        params: Value,
    ) -> Result<(Value, TestChannel), Value> {
        let (mailbox, inbox) = self.endpoint.pubsub().mailbox(1024);
        self.endpoint.pubsub().subscribe(topic, &mailbox);
        self.join_with(topic, params, Some(Broadcasts { inbox }))
            .await
    }

    async fn join_with(
        &self,
        topic: &str,
        params: Value,
        broadcasts: Option<Broadcasts>,
    ) -> Result<(Value, TestChannel), Value> {
        let join_ref = self.shared.next_ref();
        self.shared.send(&Message {
            join_ref: Some(Ref::from(join_ref.as_str())),
            ref_: Some(Ref::from(join_ref.as_str())),
            topic: topic.to_owned(),
            event: PHX_JOIN.to_owned(),
            payload: Payload::Json(params),
        });
        let channel = TestChannel {
            shared: self.shared.clone(),
            topic: topic.to_owned(),
            join_ref: join_ref.clone(),
            timeouts: self.timeouts,
            broadcasts: Mutex::new(broadcasts),
        };
        let (status, response) = channel.reply(&PushRef(join_ref)).await;
        match status.as_str() {
            "ok" => Ok((response, channel)),
            _ => Err(response),
        }
    }

    /// Closes the connection as a client going away would: every channel ends with
    /// [`StopReason::Closed`](crate::server::StopReason::Closed) (its `terminate` runs). Returns
    /// when the connection is gone.
    pub async fn close(mut self) {
        let (ack, done) = oneshot::channel();
        if self.shared.commands.send(Command::Close(ack)).is_ok() {
            let _ = done.await;
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Waits until the server closed the connection (a `disconnect` broadcast to the socket's
    /// id, a drain); panics when it is still open after the assert timeout.
    pub async fn assert_closed(&mut self) {
        let Some(task) = self.task.as_mut() else {
            return;
        };
        if tokio::time::timeout(self.timeouts.assert, task)
            .await
            .is_err()
        {
            panic!(
                "the connection is still open after {:?}",
                self.timeouts.assert
            );
        }
        self.task = None;
    }
}

impl Drop for TestSocket {
    fn drop(&mut self) {
        if self.task.is_some() {
            let (ack, _) = oneshot::channel();
            let _ = self.shared.commands.send(Command::Close(ack));
        }
    }
}

/// The `ref` of a message the test pushed, to match its reply with
/// [`TestChannel::assert_reply`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushRef(String);

impl PushRef {
    /// The ref as sent on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The test's own subscription to a topic (unsubscribed when dropped).
struct Broadcasts {
    inbox: Inbox,
}

/// One joined topic of a [`TestSocket`]: push to it and assert on what its channel sends.
pub struct TestChannel {
    shared: Arc<Shared>,
    topic: String,
    join_ref: String,
    timeouts: Timeouts,
    broadcasts: Mutex<Option<Broadcasts>>,
}

fn json(payload: Payload, what: &str) -> Value {
    match payload {
        Payload::Json(value) => value,
        Payload::Binary(bytes) => panic!("{what} is binary ({} bytes), not JSON", bytes.len()),
    }
}

impl TestChannel {
    /// The joined topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Pushes `event` with `payload` to the channel's `handle_in`, as a client does; the returned
    /// ref matches the reply.
    pub fn push(&self, event: &str, payload: Value) -> PushRef {
        let ref_ = self.shared.next_ref();
        self.shared.send(&Message {
            join_ref: Some(Ref::from(self.join_ref.as_str())),
            ref_: Some(Ref::from(ref_.as_str())),
            topic: self.topic.clone(),
            event: event.to_owned(),
            payload: Payload::Json(payload),
        });
        PushRef(ref_)
    }

    /// Leaves the topic (`phx_leave`); the channel's `terminate` runs with
    /// [`StopReason::Left`](crate::server::StopReason::Left) and the reply (`ok`) matches the
    /// returned ref.
    pub fn leave(&self) -> PushRef {
        self.push(PHX_LEAVE, Value::Object(serde_json::Map::new()))
    }

    async fn reply(&self, ref_: &PushRef) -> (String, Value) {
        let found = self
            .shared
            .take(self.timeouts.assert, |received| {
                matches!(received, Received::Reply(reply)
                    if reply.topic == self.topic && reply.ref_.as_deref() == Some(ref_.as_str()))
            })
            .await;
        match found {
            Ok(Received::Reply(reply)) => (reply.status, json(reply.response, "the reply")),
            Ok(Received::Message(_)) => unreachable!("only replies are picked"),
            Err(seen) => panic!(
                "no reply to ref {} on {} within {:?}; {seen}",
                ref_.as_str(),
                self.topic,
                self.timeouts.assert
            ),
        }
    }

    /// Waits for the reply to `ref_`, asserts its status (`"ok"`, `"error"`…) and returns its
    /// response.
    pub async fn assert_reply(&self, ref_: &PushRef, status: &str) -> Value {
        let (got, response) = self.reply(ref_).await;
        assert_eq!(
            got,
            status,
            "reply to ref {} on {} has status {got:?}, response {response}",
            ref_.as_str(),
            self.topic
        );
        response
    }

    /// Asserts that no reply to `ref_` arrives within the refute timeout (a `handle_in` that
    /// returned [`Outcome::NoReply`](crate::server::Outcome::NoReply)).
    pub async fn refute_reply(&self, ref_: &PushRef) {
        let found = self
            .shared
            .take(self.timeouts.refute, |received| {
                matches!(received, Received::Reply(reply)
                    if reply.topic == self.topic && reply.ref_.as_deref() == Some(ref_.as_str()))
            })
            .await;
        if let Ok(Received::Reply(reply)) = found {
            panic!(
                "unexpected reply to ref {} on {}: {} {:?}",
                ref_.as_str(),
                self.topic,
                reply.status,
                reply.response
            );
        }
    }

    fn is_push(&self, received: &Received, event: &str) -> bool {
        matches!(received, Received::Message(message)
            if message.topic == self.topic
                && message.event == event
                && message.join_ref.as_ref().is_none_or(|r| r.as_str() == self.join_ref))
    }

    /// Waits for the server to send `event` to this channel's client (a push, a broadcast that
    /// reached the client, or `phx_close` / `phx_error` when the channel ended) and returns its
    /// payload.
    pub async fn assert_push(&self, event: &str) -> Value {
        match self
            .shared
            .take(self.timeouts.assert, |r| self.is_push(r, event))
            .await
        {
            Ok(Received::Message(message)) => json(message.payload, "the push"),
            Ok(Received::Reply(_)) => unreachable!("only pushes are picked"),
            Err(seen) => panic!(
                "no push {event:?} on {} within {:?}; {seen}",
                self.topic, self.timeouts.assert
            ),
        }
    }

    /// Asserts that the server sends no `event` to this channel's client within the refute
    /// timeout.
    pub async fn refute_push(&self, event: &str) {
        if let Ok(Received::Message(message)) = self
            .shared
            .take(self.timeouts.refute, |r| self.is_push(r, event))
            .await
        {
            panic!(
                "unexpected push {event:?} on {}: {:?}",
                self.topic, message.payload
            );
        }
    }

    /// Waits for `event` to be broadcast to the topic (by any node, from any connection) and
    /// returns its payload. Needs a channel joined with [`TestSocket::subscribe_and_join`].
    pub async fn assert_broadcast(&self, event: &str) -> Value {
        match self.broadcast(event, self.timeouts.assert).await {
            Ok(payload) => payload,
            Err(seen) => panic!(
                "no broadcast {event:?} on {} within {:?}; broadcast meanwhile: {seen:?}",
                self.topic, self.timeouts.assert
            ),
        }
    }

    /// Asserts that `event` is not broadcast to the topic within the refute timeout.
    pub async fn refute_broadcast(&self, event: &str) {
        if let Ok(payload) = self.broadcast(event, self.timeouts.refute).await {
            panic!(
                "unexpected broadcast {event:?} on {}: {payload}",
                self.topic
            );
        }
    }

    /// The next broadcast of `event` on the topic within `wait`; the events skipped otherwise.
    async fn broadcast(&self, event: &str, wait: Duration) -> Result<Value, Vec<String>> {
        let deadline = Instant::now() + wait;
        let mut guard = self.broadcasts.lock().await;
        let Some(broadcasts) = guard.as_mut() else {
            panic!(
                "{} was joined without subscribing; use subscribe_and_join to assert broadcasts",
                self.topic
            );
        };
        let mut skipped = Vec::new();
        loop {
            let message = match tokio::time::timeout_at(deadline, broadcasts.inbox.recv()).await {
                Ok(Ok(message)) => message,
                Ok(Err(Closed::Lagged)) => panic!("more than 1024 broadcasts were not asserted"),
                Err(_) => return Err(skipped),
            };
            let Some(decoded) = endpoint::decode(&message.payload) else {
                continue;
            };
            if decoded.event() != event {
                skipped.push(decoded.event().to_owned());
                continue;
            }
            let frame = decoded.frame;
            return match client::decode(Serializer::V2, frame.kind, frame.data) {
                Ok(Received::Message(message)) => Ok(json(message.payload, "the broadcast")),
                Ok(Received::Reply(reply)) => Ok(json(reply.response, "the broadcast")),
                Err(error) => panic!("a broadcast on {} cannot be decoded: {error}", self.topic),
            };
        }
    }
}

/// Drives a connection as the WebSocket transport does, with in-memory queues for the socket and
/// no idle or join timers (a test sends no heartbeats).
async fn drive(
    mut connection: Connection,
    mut inbox: Inbox,
    mut commands: mpsc::UnboundedReceiver<Command>,
    delivered: Arc<Delivered>,
) {
    let mut drain = connection.link.endpoint.drain_signal();
    let ack = loop {
        let control = tokio::select! {
            command = commands.recv() => match command {
                Some(Command::Frame(frame)) => {
                    Box::pin(connection.handle_frame(frame.kind, frame.data)).await
                }
                Some(Command::Close(ack)) => break Some(ack),
                None => break None,
            },
            message = inbox.recv() => match message {
                Ok(message) => connection.handle_message(message).await,
                Err(Closed::Lagged) => Control::Close(CloseReason::LAGGED),
            },
            Some(event) = next_event(&mut connection.link.events_rx) => {
                Box::pin(connection.handle_event(event)).await
            }
            done = connection::next_done(&mut connection.running) => {
                Box::pin(connection.finished(done)).await
            }
            () = drain.turn() => Control::Close(CloseReason::DRAIN),
        };
        delivered.send(connection.take_output());
        if let Control::Close(_) = control {
            break None;
        }
    };
    Box::pin(connection.close()).await;
    delivered.send(connection.take_output());
    drop(connection);
    delivered.close();
    if let Some(ack) = ack {
        let _ = ack.send(());
    }
}

async fn next_event(rx: &mut Option<mpsc::UnboundedReceiver<ConnEvent>>) -> Option<ConnEvent> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// An axum router served on a free port of 127.0.0.1, for end-to-end tests through the real
/// transports. The server stops when this value is dropped.
///
/// ```
/// use std::sync::Arc;
/// use channels::server::transport::{socket_router, Transports};
/// use channels::server::{Endpoint, EndpointConfig, Routes};
/// use channels::testing::TestServer;
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let endpoint = Endpoint::new(pubsub::PubSub::new("test"), EndpointConfig::default());
/// let socket = Arc::new(Routes::new());
/// let app = axum::Router::new().nest("/socket", socket_router(endpoint, socket, Transports::all()));
/// let server = TestServer::start(app).await.expect("bind");
/// assert!(server.ws_url("/socket/websocket").starts_with("ws://127.0.0.1:"));
/// # });
/// ```
pub struct TestServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl TestServer {
    /// Binds a free port and serves `router` on it (with the peer address available to sockets
    /// as [`ConnectInfo::peer`]).
    pub async fn start(router: axum::Router) -> std::io::Result<TestServer> {
        let listener = tokio::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, service).await {
                tracing::error!(%error, "test server stopped");
            }
        });
        Ok(TestServer { addr, task })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `ws://127.0.0.1:<port><path>`, e.g. `server.ws_url("/socket/websocket?vsn=2.0.0")`.
    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
